//! gridflex-mv benches: one event on 45 days of 5-minute data, and every method on a
//! year of 5-minute data for a fleet of meters; reading a meter-year of interval CSV,
//! alone and ten to a long-format file.
use std::hint::black_box;

use chrono::{Datelike, NaiveDate, TimeDelta, Weekday};
use criterion::{Criterion, criterion_group, criterion_main};
use gridflex_core::{Interval, IntervalSeries, MarketZone, OperatingDay, Power};
use gridflex_mv::{Calendar, Meter, Method};

/// `days` local days of 5-minute data from local midnight of `first`: a daily shape
/// plus a deterministic wobble per meter.
fn series(zone: MarketZone, first: NaiveDate, days: u64, seed: u64) -> IntervalSeries<Power> {
    let start = OperatingDay::new(zone, first)
        .map(|d| d.interval().start())
        .unwrap_or_else(|e| panic!("{e}"));
    let end = OperatingDay::new(zone, first + chrono::Days::new(days))
        .map(|d| d.interval().start())
        .unwrap_or_else(|e| panic!("{e}"));
    let n = ((end - start).num_minutes() / 5) as usize;
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let values = (0..n).map(|i| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let noise = (x >> 33) as f64 / (1u64 << 31) as f64;
        let hour = (i % 288) as f64 / 12.0;
        let shape = 600.0 + 300.0 * ((hour - 6.0) / 24.0 * std::f64::consts::TAU).sin().max(0.0);
        Power::kilowatts(shape * (0.9 + 0.2 * noise)).ok()
    });
    IntervalSeries::new(start, TimeDelta::minutes(5), values.collect())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn event(zone: MarketZone, d: NaiveDate) -> Interval {
    let at = |h| {
        zone.to_utc(d.and_hms_opt(h, 0, 0).unwrap_or_default())
            .map(|m| m.earlier())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    Interval::new(at(14), at(18)).unwrap_or_else(|e| panic!("{e}"))
}

fn one_event(c: &mut Criterion) {
    let zone = MarketZone::Caiso;
    let first = NaiveDate::from_ymd_opt(2025, 6, 1).unwrap_or_default();
    // 45 days of history plus the event day (46 local days, 13,248 intervals).
    let s = series(zone, first, 46, 1);
    let meter = Meter::new(s.clone(), zone).unwrap_or_else(|e| panic!("{e}"));
    let cal = Calendar::new(zone);
    let ev = event(
        zone,
        NaiveDate::from_ymd_opt(2025, 7, 16).unwrap_or_default(),
    );
    for method in [
        Method::Caiso10in10,
        Method::PjmCbl,
        Method::ErcotMiddle8of10,
    ] {
        let b = method.baseline();
        c.bench_function(
            &format!("one event 45 days 5-min: {method} + reduction"),
            |bch| {
                bch.iter(|| {
                    let r = b.compute(black_box(&meter), &cal, black_box(ev));
                    r.map(|r| r.reduction().settled_energy)
                })
            },
        );
    }
    let b = Method::Caiso10in10.baseline();
    c.bench_function(
        "one event 45 days 5-min: index meter + caiso-10in10 + reduction",
        |bch| {
            bch.iter_batched(
                || s.clone(),
                |s| {
                    let meter = Meter::new(s, zone)?;
                    b.compute(&meter, &cal, ev)
                        .map(|r| r.reduction().settled_energy)
                },
                criterion::BatchSize::LargeInput,
            )
        },
    );
}

fn fleet_year(c: &mut Criterion) {
    let zone = MarketZone::Pjm;
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default();
    const METERS: u64 = 100;
    let meters: Vec<Meter> = (0..METERS)
        .map(|k| Meter::new(series(zone, first, 365, k), zone).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let cal = Calendar::new(zone);
    // One weekday event a month, from February (so every lookback is inside the year).
    let events: Vec<Interval> = (2..=12)
        .map(|m| {
            let mut d = NaiveDate::from_ymd_opt(2025, m, 15).unwrap_or_default();
            while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                d = d.succ_opt().unwrap_or(d);
            }
            event(zone, d)
        })
        .collect();
    let methods: Vec<_> = Method::ALL.iter().map(|m| m.baseline()).collect();
    let mut group = c.benchmark_group("fleet year");
    group.sample_size(10);
    group.bench_function(
        format!("{METERS} meters x 1 year 5-min x 7 methods x 11 events"),
        |bch| {
            bch.iter(|| {
                let mut total = 0.0;
                for m in &meters {
                    for ev in &events {
                        for b in &methods {
                            if let Ok(r) = b.compute(m, &cal, *ev) {
                                total += r.reduction().settled_energy.as_kilowatt_hours();
                            }
                        }
                    }
                }
                total
            })
        },
    );
    let fleet: Vec<_> = meters
        .iter()
        .enumerate()
        .map(|(k, m)| gridflex_mv::fleet::FleetMeter::new(format!("m{k}"), m.clone()))
        .collect();
    let fleet_events: Vec<_> = events
        .iter()
        .enumerate()
        .map(|(k, e)| gridflex_mv::fleet::FleetEvent::new(format!("e{k}"), *e))
        .collect();
    for threads in [1usize, 2] {
        let n = std::num::NonZeroUsize::new(threads).unwrap_or(std::num::NonZeroUsize::MIN);
        group.bench_function(
            format!("fleet::settle, {METERS} meters x 7 methods x 11 events, {threads} thread(s)"),
            |bch| {
                bch.iter(|| {
                    gridflex_mv::fleet::settle(&fleet, &cal, &fleet_events, &Method::ALL, n).len()
                })
            },
        );
    }
    let s = series(zone, first, 365, 7);
    group.bench_function("index one meter-year of 5-min data", |bch| {
        bch.iter_batched(
            || s.clone(),
            |s| Meter::new(s, zone),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// The issue's fleet: 1,000 meter-years of 5-minute data, 10 weekday events (one a month
/// from March, 14:00-18:00 local, each marked as an event day) and the two methods an
/// aggregator settles with (CAISO 10-in-10 with the load-point adjustment, PJM CBL with
/// the SAA): 20,000 baselines, all in memory, on one thread and on every core.
fn fleet_20k(c: &mut Criterion) {
    let zone = MarketZone::Pjm;
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default();
    const METERS: u64 = 1_000;
    let fleet: Vec<_> = (0..METERS)
        .map(|k| {
            let m = Meter::new(series(zone, first, 365, 100 + k), zone)
                .unwrap_or_else(|e| panic!("{e}"));
            gridflex_mv::fleet::FleetMeter::new(format!("m{k}"), m)
        })
        .collect();
    let days: Vec<NaiveDate> = (3..=12)
        .map(|m| {
            let mut d = NaiveDate::from_ymd_opt(2025, m, 10).unwrap_or_default();
            while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                d = d.succ_opt().unwrap_or(d);
            }
            d
        })
        .collect();
    let mut cal = Calendar::new(zone);
    cal.add_event_days(days.iter().copied());
    let events: Vec<_> = days
        .iter()
        .map(|d| gridflex_mv::fleet::FleetEvent::new(d.to_string(), event(zone, *d)))
        .collect();
    let methods = [Method::Caiso10in10.baseline(), Method::PjmCbl.baseline()];
    let mut group = c.benchmark_group("fleet 20k");
    group.sample_size(10);
    on_one_and_two_threads(&mut group, &format!("{METERS} meter-years"), |n| {
        gridflex_mv::fleet::settle_with(&fleet, &cal, &events, &methods, n)
    });
    // The same meters on one grid (built once, as a fleet loaded for settling is).
    let grid = gridflex_mv::fleet::FleetGrid::from_meters(&fleet).unwrap_or_else(|e| panic!("{e}"));
    // For comparisons with other tools (pandas): the meters, the events and the figures,
    // written on request.
    if let Some(dir) = std::env::var_os("GRIDFLEX_BENCH_DUMP") {
        let fleet = (zone, fleet.as_slice(), &grid);
        dump_fleet(std::path::Path::new(&dir), fleet, &cal, &events, &methods)
            .unwrap_or_else(|e| panic!("GRIDFLEX_BENCH_DUMP: {e}"));
    }
    drop(fleet);
    on_one_and_two_threads(&mut group, &format!("grid: {METERS} meter-years"), |n| {
        gridflex_mv::fleet::settle_grid(&grid, &cal, &events, &methods, n)
    });
    group.finish();
}

/// Writes the fleet of [`fleet_20k`] into `dir`: `fleet_20k_w.f64`, every meter's values
/// in watts one meter after another (little-endian `f64`); `fleet_20k.json`, the time
/// axis, the zone, the calendar's holidays and the events; `fleet_20k_rows.csv`, the
/// figures `settle_grid` gives on one thread (energies in kWh, the selected days most
/// recent first, separated by spaces).
fn dump_fleet(
    dir: &std::path::Path,
    (zone, fleet, grid): (
        MarketZone,
        &[gridflex_mv::fleet::FleetMeter],
        &gridflex_mv::fleet::FleetGrid,
    ),
    cal: &Calendar,
    events: &[gridflex_mv::fleet::FleetEvent],
    methods: &[gridflex_mv::Baseline],
) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let mut values = Vec::new();
    let mut series = None;
    for m in fleet {
        let s = m.meter.to_series().map_err(std::io::Error::other)?;
        for v in s.values() {
            let w = v.map_or(f64::NAN, |p| p.as_watts());
            values.extend_from_slice(&w.to_le_bytes());
        }
        series.get_or_insert(s);
    }
    std::fs::write(dir.join("fleet_20k_w.f64"), values)?;
    let series = series.as_ref();
    let (start, step_s, intervals) = series.map_or((String::new(), 0, 0), |s| {
        (
            s.start().to_rfc3339(),
            s.step().num_seconds(),
            s.values().len(),
        )
    });
    let holidays: Vec<String> = series
        .iter()
        .flat_map(|s| {
            let first = zone.operating_date(s.start());
            first.iter_days().take(s.values().len() / 288 + 2)
        })
        .filter(|d| cal.day_type(*d) == gridflex_mv::calendar::DayType::Holiday)
        .map(|d| format!("\"{d}\""))
        .collect();
    let events_json: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                r#"{{"id": "{}", "start": "{}", "end": "{}"}}"#,
                e.id,
                e.window.start().to_rfc3339(),
                e.window.end().to_rfc3339()
            )
        })
        .collect();
    let json = format!(
        r#"{{"tz": "{}", "start": "{start}", "step_s": {step_s}, "intervals": {intervals}, "meters": {}, "holidays": [{}], "events": [{}]}}"#,
        zone.tz().name(),
        fleet.len(),
        holidays.join(", "),
        events_json.join(", ")
    );
    std::fs::write(dir.join("fleet_20k.json"), json)?;
    let rows =
        gridflex_mv::fleet::settle_grid(grid, cal, events, methods, std::num::NonZeroUsize::MIN);
    let mut csv = String::from(
        "meter,event,method,baseline_kwh,metered_kwh,reduction_kwh,mean_reduction_kw,selected_days\n",
    );
    for r in &rows {
        let f = r
            .figures
            .as_ref()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let days: Vec<String> = f.selected_days.iter().map(|d| d.to_string()).collect();
        let _ = writeln!(
            csv,
            "{},{},{},{:?},{:?},{:?},{:?},{}",
            fleet[r.meter].id,
            events[r.event].id,
            r.method.name(),
            f.baseline_energy.as_kilowatt_hours(),
            f.metered_energy.as_kilowatt_hours(),
            f.reduction_energy.as_kilowatt_hours(),
            f.mean_reduction.as_kilowatts(),
            days.join(" ")
        );
    }
    std::fs::write(dir.join("fleet_20k_rows.csv"), csv)
}

/// Benches `settle` (the fleet's 10 events x 2 methods) on 1 and 2 threads, checking
/// that every baseline computes.
fn on_one_and_two_threads(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    fleet: &str,
    settle: impl Fn(std::num::NonZeroUsize) -> Vec<gridflex_mv::fleet::FleetRow>,
) {
    for threads in [1usize, 2] {
        let n = std::num::NonZeroUsize::new(threads).unwrap_or(std::num::NonZeroUsize::MIN);
        group.bench_function(
            format!("{fleet} x 10 events x 2 methods, {threads} thread(s)"),
            |bch| {
                bch.iter(|| {
                    let rows = settle(n);
                    assert!(
                        rows.iter().all(|r| r.figures.is_ok()),
                        "every baseline computes"
                    );
                    rows.len()
                })
            },
        );
    }
}

/// A meter-year of 5-minute data as the utility's interval CSV (`interval_start,kw`, local
/// times with their offset, 3 decimals), parsed with `gridflex_mv::input::parse_meter_csv`.
fn meter_csv(c: &mut Criterion) {
    let zone = MarketZone::Caiso;
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default();
    let s = series(zone, first, 365, 3);
    let mut csv = String::from("interval_start,kw\n");
    let tz = chrono::FixedOffset::west_opt(8 * 3600).unwrap_or_else(|| panic!("offset"));
    for (interval, v) in s.iter() {
        let t = interval
            .start()
            .with_timezone(&tz)
            .format("%Y-%m-%dT%H:%M:%S%:z");
        match v {
            Some(p) => csv.push_str(&format!("{t},{:.3}\n", p.as_kilowatts())),
            None => csv.push_str(&format!("{t},\n")),
        }
    }
    let mut group = c.benchmark_group("meter csv");
    group.throughput(criterion::Throughput::Bytes(csv.len() as u64));
    group.bench_function(format!("one meter-year, {} rows", s.len()), |b| {
        b.iter(|| gridflex_mv::input::parse_meter_csv(black_box(&csv)))
    });
    // The same meter ten times larger (values of 1,000 kW and more: `1234.567`, eight
    // bytes, which the value reader takes as two words).
    let large: String = csv
        .lines()
        .enumerate()
        .map(|(i, line)| match line.split_once(',') {
            Some((t, v)) if i > 0 && !v.is_empty() => format!("{t},1{v}\n"),
            _ => format!("{line}\n"),
        })
        .collect();
    group.bench_function("the same meter-year, values of 1,000 kW and more", |b| {
        b.iter(|| gridflex_mv::input::parse_meter_csv(black_box(&large)))
    });
    // The same bytes through the general parser (the price reader has no fast path):
    // the before/after of the meter's fast path in one run.
    let prices = csv.replacen("interval_start,kw", "interval_start,lmp", 1);
    group.bench_function("the same file, general parser (as prices)", |b| {
        b.iter(|| gridflex_mv::input::parse_price_csv(black_box(&prices)))
    });
    // The same meter-year from the binary cache (`gridflex_mv::cache`), indexed: the
    // throughput is of the CSV bytes it replaces, so the rows compare directly.
    let meter = Meter::new(s.clone(), zone).unwrap_or_else(|e| panic!("{e}"));
    let mut cached = Vec::new();
    gridflex_mv::cache::write_meter(&meter, &mut cached).unwrap_or_else(|e| panic!("{e}"));
    group.bench_function(
        format!(
            "the same meter-year from the binary cache ({} bytes), indexed",
            cached.len()
        ),
        |b| b.iter(|| gridflex_mv::cache::read_meter(black_box(cached.as_slice()), zone)),
    );
    group.bench_function("the same file, parsed and indexed", |b| {
        b.iter(|| {
            gridflex_mv::input::parse_meter_csv(black_box(&csv)).and_then(|s| Meter::new(s, zone))
        })
    });
    group.finish();

    // Ten such meters in one long-format file (`meter_id,interval_start,kw`), each
    // meter's rows together, streamed a meter at a time and indexed; the same file
    // read whole by the interleaving-tolerant parser, then indexed.
    let mut long = String::from("meter_id,interval_start,kw\n");
    for k in 0..10 {
        for row in csv.lines().skip(1) {
            long.push_str(&format!("site-{k:04},{row}\n"));
        }
    }
    let mut group = c.benchmark_group("long meter csv");
    group.throughput(criterion::Throughput::Bytes(long.len() as u64));
    group.sample_size(20);
    group.bench_function("10 meter-years, streamed (LongMeterReader), indexed", |b| {
        b.iter(|| {
            gridflex_mv::input::LongMeterReader::new(black_box(long.as_bytes()), zone)
                .map(|m| m.map(|(_, m)| m.len()))
                .sum::<Result<usize, _>>()
        })
    });
    group.bench_function(
        "the same file, read whole (parse_long_meter_csv), indexed",
        |b| {
            b.iter(|| {
                gridflex_mv::input::parse_long_meter_csv(black_box(&long)).and_then(|meters| {
                    meters
                        .into_iter()
                        .map(|(_, s)| Meter::new(s, zone).map(|m| m.len()))
                        .sum::<Result<usize, _>>()
                })
            })
        },
    );
    group.finish();
}

criterion_group!(benches, one_event, fleet_year, fleet_20k, meter_csv);
criterion_main!(benches);
