"""The fleet M&V maths of benches/mv.rs `fleet 20k` in pandas + numpy, vectorised over
meters: CAISO 10-in-10 with the load-point adjustment and PJM CBL (High 4 of 5, low-usage
test against the first window, Symmetric Additive Adjustment), for every meter and event.

Reads what `GRIDFLEX_BENCH_DUMP=DIR cargo bench --bench mv -- 'fleet 20k'` writes, times the
maths on the in-memory DataFrame (median of RUNS after one warm-up), and checks every figure
against gridflex's.

usage: python benches/pandas/fleet_maths.py DIR [RUNS]   (pandas and numpy installed)

The figures are compared relative to the event's metered energy (a reduction is a small
difference of two large energies, so its own relative error says little).
"""

import json
import statistics
import sys
import time

import numpy as np
import pandas as pd

DIR = sys.argv[1]
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 7

meta = json.load(open(f"{DIR}/fleet_20k.json"))
n, meters, step_s = meta["intervals"], meta["meters"], meta["step_s"]
raw = np.fromfile(f"{DIR}/fleet_20k_w.f64", dtype="<f8").reshape(meters, n)
index = pd.date_range(pd.Timestamp(meta["start"]), periods=n, freq=f"{step_s}s")
# The loaded fleet: one row per interval, one column per meter (watts).
df = pd.DataFrame(np.ascontiguousarray(raw.T), index=index, columns=[f"m{k}" for k in range(meters)])
del raw
holidays = {pd.Timestamp(d).date() for d in meta["holidays"]}
events = [(e["id"], pd.Timestamp(e["start"]), pd.Timestamp(e["end"])) for e in meta["events"]]
event_days_all = {s.tz_convert(meta["tz"]).date() for _, s, _ in events}

STEP_H = step_s / 3600.0
LOOKBACK = 45


def settle(df):
    """Every (meter, event, method) row as a DataFrame, meters, then events, then methods."""
    values = df.to_numpy()  # (intervals, meters), no copy
    local = df.index.tz_convert(meta["tz"])
    # Shared per zone: each interval's local date and wall-clock second of the day.
    key = pd.MultiIndex.from_arrays(
        [local.normalize().tz_localize(None), local.hour * 3600 + local.minute * 60 + local.second]
    )
    # A wall-clock time that occurs twice (the autumn change) is taken at its first.
    first = ~key.duplicated(keep="first")
    key, key_rows = key[first], np.flatnonzero(first)
    out = []
    for eid, start, end in events:
        day = start.tz_convert(meta["tz"]).normalize().tz_localize(None)
        t0 = start.tz_convert(meta["tz"])
        c0 = t0.hour * 3600 + t0.minute * 60
        n_ev = int((end - start).total_seconds() // step_s)
        n_adj = 3 * 3600 // step_s
        # The adjustment window: 3 hours ending 1 hour before the event (same for both).
        adj_start = start - pd.Timedelta(hours=4)
        clocks = [(c0 - 4 * 3600 + k * step_s) for k in range(n_adj)] + [
            c0 + k * step_s for k in range(n_ev)
        ]
        # Candidate days, most recent first: non-holiday, non-event weekdays.
        cands = []
        for back in range(1, LOOKBACK + 1):
            d = day - pd.Timedelta(days=back)
            if d.weekday() < 5 and d.date() not in holidays and d.date() not in event_days_all:
                cands.append(d)
        # Their rows at the event's clock times: (days, slots, meters).
        want = pd.MultiIndex.from_arrays(
            [np.repeat(np.array(cands, dtype="datetime64[ns]"), len(clocks)), np.tile(clocks, len(cands))]
        )
        found = key.get_indexer(want)
        if (found < 0).any():
            raise ValueError(f"{eid}: a candidate day lacks an interval")
        pos = key_rows[found].reshape(len(cands), len(clocks))
        x = values[pos]  # (days, slots, meters)
        ev_mean = x[:, n_adj:, :].mean(axis=1)  # (days, meters)
        i_adj = index.get_loc(adj_start)
        i_ev = index.get_loc(start)
        actual_adj = values[i_adj : i_adj + n_adj].mean(axis=0)
        actual_ev = values[i_ev : i_ev + n_ev]  # (n_ev, meters)
        metered = actual_ev.sum(axis=0) * STEP_H / 1000.0

        def rows_of(method, adjusted, reductions, selected):
            """One row per meter: energies in kWh from watts per interval."""
            return pd.DataFrame(
                {
                    "meter": df.columns,
                    "event": eid,
                    "method": method,
                    "baseline_kwh": adjusted.sum(axis=0) * STEP_H / 1000.0,
                    "metered_kwh": metered,
                    "reduction_kwh": reductions.sum(axis=0) * STEP_H / 1000.0,
                    "selected_days": selected,
                }
            )

        # CAISO 10-in-10: the 10 most recent days, averaged; load-point factor in [0.8, 1.2].
        sel = slice(0, min(10, len(cands)))
        if sel.stop < 5:
            raise ValueError(f"{eid}: fewer than 5 days for 10-in-10")
        base = x[sel].mean(axis=0)  # (slots, meters)
        f = np.clip(actual_adj / base[:n_adj].mean(axis=0), 0.8, 1.2)
        adjusted = base[n_adj:] * f
        caiso = rows_of("caiso-10in10", adjusted, np.maximum(adjusted - actual_ev, 0.0),
                        " ".join(str(d.date()) for d in cands[sel]))

        # PJM CBL: the first 5 days; days below 25 % of their mean event-window load are
        # replaced by the next older; the 4 highest of the 5 (ties: the more recent).
        initial = ev_mean[:5].mean(axis=0)
        passes = (ev_mean / initial >= 0.25) | (initial <= 0.0)
        window = passes & (np.cumsum(passes, axis=0) <= 5)
        if (window.sum(axis=0) < 5).any():
            raise ValueError(f"{eid}: fewer than 5 days for the CBL")
        rank = np.argsort(-np.where(window, ev_mean, -np.inf), axis=0, kind="stable")[:4]
        weights = np.zeros_like(ev_mean)
        np.put_along_axis(weights, rank, 1.0, axis=0)
        cbl = np.einsum("dsm,dm->sm", x, weights) / 4.0
        saa = actual_adj - cbl[:n_adj].mean(axis=0)
        adj_cbl = cbl[n_adj:] + saa
        chosen = np.sort(rank, axis=0)  # most recent first
        days = np.array([str(d.date()) for d in cands])
        pjm = rows_of("pjm-cbl", adj_cbl, adj_cbl - actual_ev,
                      [" ".join(days[chosen[:, m]]) for m in range(meters)])
        out += [caiso, pjm]
    rows = pd.concat(out, ignore_index=True)
    rows["mean_reduction_kw"] = rows["reduction_kwh"] / ((events[0][2] - events[0][1]).total_seconds() / 3600.0)
    order = {m: k for k, m in enumerate(df.columns)}
    rows["_m"] = rows["meter"].map(order)
    return rows.sort_values(["_m"], kind="stable").drop(columns="_m").reset_index(drop=True)


settle(df)  # warm-up
times = []
for _ in range(RUNS):
    t = time.perf_counter()
    rows = settle(df)
    times.append(time.perf_counter() - t)
print(f"pandas maths: median {statistics.median(times):.3f} s, runs {' '.join(f'{t:.3f}' for t in times)}")

ours = pd.read_csv(f"{DIR}/fleet_20k_rows.csv")
assert len(ours) == len(rows) == meters * len(events) * 2, (len(ours), len(rows))
for col in ["meter", "event", "method", "selected_days"]:
    bad = (ours[col].astype(str) != rows[col].astype(str)).sum()
    assert bad == 0, f"{col}: {bad} rows differ"
scale = np.maximum(np.abs(ours["metered_kwh"].to_numpy()), 1e-9)
hours = (events[0][2] - events[0][1]).total_seconds() / 3600.0
worst = 0.0
for col, per in [("baseline_kwh", 1.0), ("metered_kwh", 1.0), ("reduction_kwh", 1.0), ("mean_reduction_kw", hours)]:
    a, b = ours[col].to_numpy(), rows[col].to_numpy()
    worst = max(worst, (np.abs(a - b) * per / scale).max())
print(f"all {len(rows)} rows agree: the same days, every figure within {worst:.1e} of the metered energy")
