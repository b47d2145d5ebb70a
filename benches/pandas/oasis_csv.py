"""What `signals parse --summary FILE` does to a CAISO OASIS CSV, in pandas with the pyarrow
engine: read, both timestamps, the five components pivoted into one row per (start, end,
node, run), sorted, then the summary the example prints (count, nodes, first start, last
end, min/mean/max LMP).

Reads what `GRIDFLEX_BENCH_DUMP=DIR cargo bench --bench signals_parse -- 'oasis rtm dst day'`
writes (`DIR/oasis_rtm_dst_day.csv`), or any OASIS CSV. Times the work in this warm process
(the interpreter's start and the imports are not counted): one warm-up run, then the median
of RUNS. `--memory` reads the file's bytes from a `BytesIO` instead (the criterion bench's
basis: the parse in memory). Prints the summary so it can be compared with the example's.

usage: python benches/pandas/oasis_csv.py FILE [RUNS] [--memory]
       (pandas and pyarrow installed; pin it like the example: taskset -c 0 ...)
"""

import io
import pandas as pd
from warm_timing import arguments, time_warm

PATH, RUNS, MEMORY, BYTES = arguments()


def summarise():
    src = io.BytesIO(BYTES) if MEMORY else PATH
    df = pd.read_csv(src, engine="pyarrow")
    df["start"] = pd.to_datetime(df["INTERVALSTARTTIME_GMT"], utc=True)
    df["end"] = pd.to_datetime(df["INTERVALENDTIME_GMT"], utc=True)
    wide = df.pivot(
        index=["start", "end", "NODE", "MARKET_RUN_ID"], columns="LMP_TYPE", values="VALUE"
    ).sort_index()
    lmp = wide["LMP"]
    index = wide.index
    return {
        "count": len(wide),
        "nodes": index.get_level_values("NODE").nunique(),
        "first_start": index.get_level_values("start").min().isoformat(),
        "last_end": index.get_level_values("end").max().isoformat(),
        "min_lmp": float(lmp.min()),
        "mean_lmp": float(lmp.mean()),
        "max_lmp": float(lmp.max()),
    }


time_warm(summarise, RUNS, "memory" if MEMORY else "file")
