//! `mv`: measurement and verification on your own meter data. CSV in, JSON out.
//!
//! ```text
//! mv baseline --method caiso-10in10|caiso-5in10|pjm-cbl|pjm-same-day|nyiso-cbl|ercot-m8of10|mbma
//!    --meter METER.csv --event-start T --event-end T [--tz ZONE]
//!    [--exclude-days D,D,...] [--holidays D,D,...]
//!    [--adjust multiplicative|additive|none] [--adjust-window-hours H] [--adjust-gap-hours G]
//!    [--cap C|none] [--gap-policy error|skip-day] [--instruction T]
//!    [--lmp PRICES.csv] [--nbt PRICE] [--notified T] [--low-usage-reference first-window|refreshed]
//! mv response-time --samples POWER.csv --at T [--at T ...] [--pre-window-s S] [--post-window-s S]
//! mv regulation-score --signal SIGNAL.csv --response RESPONSE.csv [--regulation-mw M]
//! mv fleet (--meters DIR | --meter-file LONG.csv) --events EVENTS.csv --methods M,M,...
//!    [--tz ZONE] [--threads N] [--exclude-days D,D,...] [--holidays D,D,...]
//! mv cache --meters DIR --out DIR [--tz ZONE]
//! ```
//!
//! `fleet` settles many sites at once: every `*.csv` meter file in DIR (the meter id is
//! the file name without `.csv`) and every `*.gfm` meter cache (written by `mv cache`,
//! read without parsing; `gridflex_mv::cache`), or every meter of one long-format LONG.csv
//! (`meter_id,interval_start,kw`, rows of meters in any interleaving), every event of
//! EVENTS.csv (`event_id,start,end`, RFC 3339) with every method, each meter read once;
//! files are read and baselines computed on `--threads` threads (default: the cores
//! available), one meter per thread in memory at a time, with a progress line on stderr
//! when it is a terminal. Output: `{"meters", "events",
//! "rows": [{"meter", "event", "method", "baseline_kwh", "metered_kwh", "reduction_kwh",
//! "selected_days"} or {"meter", "event", "method", "error"}]}`, rows by meter, event,
//! method. A meter file that cannot be read is an error naming the file (exit 2).
//!
//! METER.csv: `interval_start,kw` (RFC 3339 with offset, regular spacing; an empty kw is
//! a missing value). PRICES.csv: `interval_start,lmp` ($/MWh). POWER.csv: `time,power_w`;
//! SIGNAL.csv / RESPONSE.csv: `time,value` (signal in [-1, 1], response in MW); times
//! RFC 3339 or Unix seconds with a fraction. `response-time` takes one `--at` per
//! instruction in the record (in time order): each is measured between its neighbours
//! (pre level from the steady period just before it, post level from the end of its
//! segment, never past the next instruction); with several, the output is
//! `{"instructions": [...]}`, one object each, with its `at`. Bad input prints a message naming the line
//! and field (or the argument) and exits with code 2.
//!
//! Run: `cargo run -p gridflex-mv --example mv -- baseline --method pjm-cbl --meter m.csv ...`

use std::io::Write;
use std::process::ExitCode;

use chrono::TimeDelta;
use cli::{Failure, Flags, bad};
use gridflex_core::{Interval, MarketZone, Power, Price};
use gridflex_mv::baseline::{AdjustmentValue, DayOutcome};
use gridflex_mv::input::{parse_instant, parse_meter_bytes, parse_price_csv, parse_samples_csv};
use gridflex_mv::regulation::{RegulationConfig, regulation_score};
use gridflex_mv::response::{ResponseConfig, Sample, response_times};
use gridflex_mv::settlement::{PaymentRule, energy_credits};
use gridflex_mv::{
    Adjustment, AdjustmentKind, Calendar, GapPolicy, LowUsageReference, Meter, Method,
};
use serde_json::{Value, json};

const USAGE: &str =
    "usage: mv baseline --method M --meter METER.csv --event-start T --event-end T [options]
       mv response-time --samples POWER.csv --at T [--at T ...] [--pre-window-s S] [--post-window-s S]
       mv regulation-score --signal SIGNAL.csv --response RESPONSE.csv [--regulation-mw M]
       mv fleet (--meters DIR | --meter-file LONG.csv) --events EVENTS.csv --methods M,M,... [--tz ZONE] [--threads N]
       mv cache --meters DIR --out DIR [--tz ZONE]
(see the header of examples/mv.rs for every option)";

/// The argument parser, kept apart so that its property tests run with `cargo test`.
mod cli {
    use std::collections::HashMap;

    use chrono::{NaiveDate, TimeDelta};

    /// A failure to report: the message, and the exit code.
    pub(crate) struct Failure(pub(crate) String, pub(crate) u8);

    pub(crate) fn bad(msg: impl Into<String>) -> Failure {
        Failure(msg.into(), 2)
    }

    /// `--name value` pairs; a name in `repeatable` may be given more than once.
    pub(crate) struct Flags(HashMap<String, Vec<String>>);

    impl Flags {
        pub(crate) fn parse(
            args: &[String],
            known: &[&str],
            repeatable: &[&str],
        ) -> Result<Self, Failure> {
            let mut map: HashMap<String, Vec<String>> = HashMap::new();
            let mut it = args.iter();
            while let Some(a) = it.next() {
                let Some(name) = a.strip_prefix("--") else {
                    return Err(bad(format!("unexpected argument {a:?}\n{}", super::USAGE)));
                };
                let (name, value) = match name.split_once('=') {
                    Some((n, v)) => (n.to_owned(), v.to_owned()),
                    None => {
                        let v = it
                            .next()
                            .ok_or_else(|| bad(format!("argument --{name}: missing value")))?;
                        (name.to_owned(), v.clone())
                    }
                };
                if !known.contains(&name.as_str()) {
                    return Err(bad(format!("unknown argument --{name}\n{}", super::USAGE)));
                }
                let values = map.entry(name.clone()).or_default();
                if !values.is_empty() && !repeatable.contains(&name.as_str()) {
                    return Err(bad(format!("argument --{name} given twice")));
                }
                values.push(value);
            }
            Ok(Self(map))
        }

        pub(crate) fn get(&self, name: &str) -> Option<&str> {
            self.0.get(name).and_then(|v| v.first()).map(String::as_str)
        }

        /// Every value of a repeatable argument, in the order given.
        pub(crate) fn all(&self, name: &str) -> Vec<&str> {
            self.0
                .get(name)
                .map(|v| v.iter().map(String::as_str).collect())
                .unwrap_or_default()
        }

        pub(crate) fn required(&self, name: &str) -> Result<&str, Failure> {
            self.get(name)
                .ok_or_else(|| bad(format!("argument --{name} is required\n{}", super::USAGE)))
        }

        pub(crate) fn number(&self, name: &str) -> Result<Option<f64>, Failure> {
            self.get(name)
                .map(|v| match v.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() => Ok(x),
                    _ => Err(bad(format!("argument --{name}: not a number: {v:?}"))),
                })
                .transpose()
        }

        /// A duration argument in units of `unit_s` seconds, checked to lie in
        /// `(0, max_s]` seconds (`[0, max_s]` when `zero_ok`), so that no argument can
        /// overflow a time type.
        pub(crate) fn duration(
            &self,
            name: &str,
            unit_s: f64,
            max_s: f64,
            zero_ok: bool,
        ) -> Result<Option<TimeDelta>, Failure> {
            let Some(x) = self.number(name)? else {
                return Ok(None);
            };
            let s = x * unit_s;
            let low_ok = if zero_ok { s >= 0.0 } else { s > 0.0 };
            if !(low_ok && s <= max_s) {
                let low = if zero_ok { "[0" } else { "(0" };
                return Err(bad(format!(
                    "argument --{name}: {x} is outside {low}, {}]",
                    max_s / unit_s
                )));
            }
            Ok(Some(TimeDelta::microseconds((s * 1e6).round() as i64)))
        }

        pub(crate) fn dates(&self, name: &str) -> Result<Vec<NaiveDate>, Failure> {
            let Some(list) = self.get(name) else {
                return Ok(Vec::new());
            };
            list.split(',')
                .filter(|d| !d.trim().is_empty())
                .map(|d| {
                    NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|_| {
                        bad(format!("argument --{name}: not a YYYY-MM-DD date: {d:?}"))
                    })
                })
                .collect()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;

        const KNOWN: &[&str] = &["meter", "at", "adjust-window-hours", "pre-window-s"];

        fn args(v: &[&str]) -> Vec<String> {
            v.iter().map(|s| (*s).to_owned()).collect()
        }

        #[test]
        fn durations_are_range_checked_never_overflow() {
            for bad_value in ["-1e300", "1e300", "-1", "0", "169", "NaN", "inf", "x"] {
                let f = Flags::parse(&args(&["--adjust-window-hours", bad_value]), KNOWN, &[])
                    .ok()
                    .unwrap();
                let r = f.duration("adjust-window-hours", 3600.0, 168.0 * 3600.0, false);
                assert!(r.is_err(), "{bad_value} accepted");
            }
            let f = Flags::parse(&args(&["--adjust-window-hours=2.5"]), KNOWN, &[])
                .ok()
                .unwrap();
            let d = f
                .duration("adjust-window-hours", 3600.0, 168.0 * 3600.0, false)
                .ok()
                .unwrap();
            assert_eq!(d, Some(TimeDelta::minutes(150)));
            let f = Flags::parse(&args(&["--adjust-window-hours", "0"]), KNOWN, &[])
                .ok()
                .unwrap();
            assert!(
                f.duration("adjust-window-hours", 3600.0, 3600.0, true)
                    .is_ok()
            );
        }

        #[test]
        fn repeats_only_where_allowed() {
            assert!(Flags::parse(&args(&["--at", "1", "--at", "2"]), KNOWN, &[]).is_err());
            let f = Flags::parse(&args(&["--at", "1", "--at=2"]), KNOWN, &["at"])
                .ok()
                .unwrap();
            assert_eq!(f.all("at"), vec!["1", "2"]);
            assert!(Flags::parse(&args(&["--nope", "1"]), KNOWN, &[]).is_err());
            assert!(Flags::parse(&args(&["--meter"]), KNOWN, &[]).is_err());
            assert!(Flags::parse(&args(&["stray"]), KNOWN, &[]).is_err());
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            /// Any argument list parses or fails with a message; no accessor panics.
            #[test]
            fn any_arguments_never_panic(
                raw in proptest::collection::vec(
                    prop_oneof![
                        Just("--meter".to_owned()),
                        Just("--at".to_owned()),
                        Just("--adjust-window-hours".to_owned()),
                        Just("--pre-window-s=".to_owned()),
                        "--[a-z-]{0,12}(=.{0,8})?",
                        "-?[0-9]{0,5}(\\.[0-9]{0,3})?(e[+-]?[0-9]{1,3})?",
                        ".{0,12}",
                    ],
                    0..8,
                )
            ) {
                if let Ok(f) = Flags::parse(&raw, KNOWN, &["at"]) {
                    for name in KNOWN {
                        let _ = f.number(name);
                        let _ = f.dates(name);
                        let _ = f.duration(name, 3600.0, 168.0 * 3600.0, false);
                        let _ = f.duration(name, 1.0, 86_400.0, true);
                        let _ = f.required(name);
                        let _ = f.all(name);
                    }
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Nothing here panics on a closed or full stdout/stderr: a write error is an error
    // (exit 2), reported on stderr when stderr still works.
    let complain = |msg: &str| {
        let _ = writeln!(std::io::stderr().lock(), "mv: {msg}");
    };
    match run(&args) {
        Ok(out) => {
            // Buffered: stdout alone writes a line at a time, and a fleet's JSON has a
            // line per field (340,000 `write` calls for 1,000 meters).
            let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            match writeln!(stdout, "{out:#}").and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    complain(&format!("writing output: {e}"));
                    ExitCode::from(2)
                }
            }
        }
        Err(Failure(msg, 0)) => {
            // `--help`: the usage on stdout, exit 0.
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "{msg}").and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    complain(&format!("writing output: {e}"));
                    ExitCode::from(2)
                }
            }
        }
        Err(Failure(msg, code)) => {
            complain(&msg);
            ExitCode::from(code)
        }
    }
}

fn run(args: &[String]) -> Result<Value, Failure> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(bad(USAGE));
    };
    match cmd.as_str() {
        "baseline" => baseline(&Flags::parse(
            rest,
            &[
                "method",
                "meter",
                "event-start",
                "event-end",
                "tz",
                "exclude-days",
                "holidays",
                "adjust",
                "adjust-window-hours",
                "adjust-gap-hours",
                "cap",
                "gap-policy",
                "instruction",
                "lmp",
                "nbt",
                "notified",
                "low-usage-reference",
            ],
            &[],
        )?),
        "response-time" => response(&Flags::parse(
            rest,
            &["samples", "at", "pre-window-s", "post-window-s"],
            &["at"],
        )?),
        "regulation-score" => regulation(&Flags::parse(
            rest,
            &["signal", "response", "regulation-mw"],
            &[],
        )?),
        "fleet" => fleet(&Flags::parse(
            rest,
            &[
                "meters",
                "meter-file",
                "events",
                "methods",
                "tz",
                "threads",
                "exclude-days",
                "holidays",
            ],
            &[],
        )?),
        "cache" => cache(&Flags::parse(rest, &["meters", "out", "tz"], &[])?),
        "-h" | "--help" | "help" => Err(Failure(USAGE.into(), 0)),
        other => Err(bad(format!("unknown command {other:?}\n{USAGE}"))),
    }
}

/// Converts every meter CSV of a folder to the binary meter cache (`OUT/<id>.gfm`),
/// which `fleet --meters` reads without parsing.
fn cache(f: &Flags) -> Result<Value, Failure> {
    let dir = f.required("meters")?;
    let out = f.required("out")?;
    let zone: MarketZone = match f.get("tz") {
        Some(z) => z.parse().map_err(|e| bad(format!("argument --tz: {e}")))?,
        None => MarketZone::Caiso,
    };
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| bad(format!("meter folder {dir}: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    paths.sort();
    std::fs::create_dir_all(out).map_err(|e| bad(format!("output folder {out}: {e}")))?;
    let (mut bytes_in, mut bytes_out) = (0u64, 0u64);
    for p in &paths {
        let path = p.display().to_string();
        let bytes = read_bytes(&path, "meter file")?;
        bytes_in += bytes.len() as u64;
        let meter = parse_meter_bytes(&bytes, zone).map_err(in_file(&path))?;
        let target = std::path::Path::new(out)
            .join(p.file_stem().unwrap_or_default())
            .with_extension("gfm");
        let shown = target.display().to_string();
        // Written beside, then renamed: a reader never sees half a file.
        let partial = target.with_extension("gfm.partial");
        let file =
            std::fs::File::create(&partial).map_err(|e| bad(format!("cache file {shown}: {e}")))?;
        let mut w = std::io::BufWriter::new(file);
        gridflex_mv::cache::write_meter(&meter, &mut w).map_err(in_file(&shown))?;
        drop(w);
        std::fs::rename(&partial, &target).map_err(|e| bad(format!("cache file {shown}: {e}")))?;
        bytes_out += std::fs::metadata(&target).map_or(0, |m| m.len());
    }
    Ok(json!({ "meters": paths.len(), "csv_bytes": bytes_in, "cache_bytes": bytes_out }))
}

/// Settles every event with every method on every meter file of a folder.
fn fleet(f: &Flags) -> Result<Value, Failure> {
    use std::num::NonZeroUsize;

    use gridflex_mv::fleet::FleetEvent;

    let dir = f.get("meters");
    let methods = f
        .required("methods")?
        .split(',')
        .map(|m| m.trim().parse::<Method>().map_err(arg_err("methods")))
        .collect::<Result<Vec<_>, _>>()?;
    let zone: MarketZone = match f.get("tz") {
        Some(z) => z.parse().map_err(|e| bad(format!("argument --tz: {e}")))?,
        None => MarketZone::Caiso,
    };
    let threads = match f.number("threads")? {
        None => std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
        Some(n) if (1.0..=1024.0).contains(&n) && n.fract() == 0.0 => {
            NonZeroUsize::new(n as usize).unwrap_or(NonZeroUsize::MIN)
        }
        Some(n) => {
            return Err(bad(format!(
                "argument --threads: expected 1 to 1024, got {n}"
            )));
        }
    };
    let mut calendar = Calendar::new(zone);
    calendar.add_event_days(f.dates("exclude-days")?);
    for d in f.dates("holidays")? {
        calendar.add_holiday(d);
    }
    let events_path = f.required("events")?;
    let events = read(events_path, "events file")?
        .lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let at = |field, s: &str| parse_instant(i + 1, field, s).map_err(in_file(events_path));
            match l.split(',').map(str::trim).collect::<Vec<_>>()[..] {
                [id, start, end] => Interval::new(at("start", start)?, at("end", end)?)
                    .map(|w| FleetEvent::new(id, w))
                    .map_err(|e| bad(format!("{events_path}: line {}: {e}", i + 1))),
                _ => Err(bad(format!(
                    "{events_path}: line {}: expected event_id,start,end",
                    i + 1
                ))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let run = FleetRun {
        zone,
        calendar: &calendar,
        events: &events,
        methods: &methods,
        threads,
    };
    let (ids, rows) = match (dir, f.get("meter-file")) {
        (Some(dir), None) => fleet_folder(dir, &run)?,
        (None, Some(path)) => fleet_long(path, &run)?,
        _ => {
            return Err(bad(
                "fleet needs one of --meters DIR (one file per meter) or --meter-file LONG.csv",
            ));
        }
    };
    let kwh = |e: gridflex_core::Energy| e.as_kilowatt_hours();
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let (meter, event) = (&ids[r.meter], &events[r.event].id);
            match r.figures {
                Ok(x) => json!({
                    "meter": meter,
                    "event": event,
                    "method": r.method.name(),
                    "baseline_kwh": kwh(x.baseline_energy),
                    "metered_kwh": kwh(x.metered_energy),
                    "reduction_kwh": kwh(x.reduction_energy),
                    "selected_days": x.selected_days.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                }),
                Err(e) => json!({
                    "meter": meter,
                    "event": event,
                    "method": r.method.name(),
                    "error": e.to_string(),
                }),
            }
        })
        .collect();
    Ok(json!({ "meters": ids.len(), "events": events.len(), "rows": rows }))
}

/// What settling a fleet needs besides its meters.
#[derive(Clone, Copy)]
struct FleetRun<'a> {
    zone: MarketZone,
    calendar: &'a Calendar,
    events: &'a [gridflex_mv::fleet::FleetEvent],
    methods: &'a [Method],
    /// Worker threads.
    threads: std::num::NonZeroUsize,
}

impl FleetRun<'_> {
    /// Settles one meter on the calling thread: its id back, and its rows (their
    /// `meter` index is 0).
    fn settle_one(&self, id: String, meter: Meter) -> (String, Vec<gridflex_mv::fleet::FleetRow>) {
        use gridflex_mv::fleet::{FleetMeter, settle};

        let one = [FleetMeter::new(id, meter)];
        let rows = settle(
            &one,
            self.calendar,
            self.events,
            self.methods,
            std::num::NonZeroUsize::MIN,
        );
        let [FleetMeter { id, .. }] = one;
        (id, rows)
    }
}

/// Settles a long-format meter file (`meter_id,interval_start,kw`). A file whose
/// meters' rows are together (as exports write them) is streamed, cut into parts at
/// meters' first rows, one part a thread (`threads`; a part is at least 8 MiB): each
/// meter is settled as soon as its rows end and dropped, so memory holds one meter a
/// thread. When streaming fails and the file is small enough to hold
/// (`WHOLE_FILE_BYTES`), it is read whole instead and its meters settled on `threads`
/// threads: a file whose meters are interleaved reads that way (streaming it fails at
/// its first meter, whose rows end after a row or two), and a faulty file gets the
/// whole-file parser's error. A progress line goes to stderr when it is a terminal.
fn fleet_long(
    path: &str,
    run: &FleetRun<'_>,
) -> Result<(Vec<String>, Vec<gridflex_mv::fleet::FleetRow>), Failure> {
    let FleetRun {
        zone,
        calendar,
        events,
        methods,
        threads,
    } = *run;
    use std::io::IsTerminal;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use gridflex_mv::fleet::{FleetMeter, FleetRow, settle};
    use gridflex_mv::input::{map_long_meter_file, parse_long_meter_csv};

    /// The largest long file read whole when streaming it fails (the whole-file parser
    /// takes at most 16 million rows, about 0.7 GB).
    const WHOLE_FILE_BYTES: u64 = 1 << 30;

    let progress = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let (count, shown) = (AtomicUsize::new(0), Mutex::new(started));
    let show = |done: usize, last: bool| {
        if let Ok(mut at) = shown.lock()
            && (last || at.elapsed().as_millis() >= 200)
        {
            *at = std::time::Instant::now();
            eprint!(
                "\r{done} meters settled ({:.1} s){}",
                started.elapsed().as_secs_f64(),
                if last { "\n" } else { "" }
            );
        }
    };
    let streamed = map_long_meter_file(
        || std::fs::File::open(path),
        zone,
        threads,
        |id, meter| {
            let (_, rows) = run.settle_one(id.to_owned(), meter);
            let done = count.fetch_add(1, Ordering::Relaxed) + 1;
            if progress {
                show(done, false);
            }
            rows
        },
    );
    let streamed = match streamed {
        Ok(meters) => meters,
        // Interleaved meters, or a fault: the whole file at once, if it fits.
        Err(_) if std::fs::metadata(path).is_ok_and(|m| m.len() <= WHOLE_FILE_BYTES) => {
            let meters = parse_long_meter_csv(&read(path, "meter file")?)
                .map_err(in_file(path))?
                .into_iter()
                .map(|(id, series)| {
                    Meter::new(series, zone)
                        .map(|m| FleetMeter::new(id.clone(), m))
                        .map_err(|e| bad(format!("{path}: meter {id:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let rows = settle(&meters, calendar, events, methods, threads);
            return Ok((meters.into_iter().map(|m| m.id).collect(), rows));
        }
        Err(e) => return Err(in_file(path)(e)),
    };
    if progress {
        show(streamed.len(), true);
    }
    let mut ids = Vec::with_capacity(streamed.len());
    let mut rows = Vec::new();
    for (i, (id, meter_rows)) in streamed.into_iter().enumerate() {
        ids.push(id);
        rows.extend(meter_rows.into_iter().map(|r| FleetRow { meter: i, ..r }));
    }
    Ok((ids, rows))
}

/// Settles a folder of meter files (`*.csv`, sorted by name; the id is the name without
/// `.csv`): each worker thread takes the next file, reads it, settles it and drops it,
/// so memory holds one meter per thread, not the fleet. A progress line goes to stderr
/// when it is a terminal. A file that cannot be read is an error naming it (the first
/// in name order).
fn fleet_folder(
    dir: &str,
    run: &FleetRun<'_>,
) -> Result<(Vec<String>, Vec<gridflex_mv::fleet::FleetRow>), Failure> {
    let (zone, threads) = (run.zone, run.threads);
    use std::io::IsTerminal;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use gridflex_mv::cache::read_meter;
    use gridflex_mv::fleet::FleetRow;

    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| bad(format!("meter folder {dir}: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv" || x == "gfm"))
        .collect();
    paths.sort();
    if let Some(twice) = paths
        .windows(2)
        .find(|w| w[0].file_stem() == w[1].file_stem())
    {
        return Err(bad(format!(
            "meter folder {dir}: meter {:?} is there twice ({} and {})",
            twice[0].file_stem().unwrap_or_default(),
            twice[0].display(),
            twice[1].display()
        )));
    }
    let paths = &paths;
    /// One meter's id and rows, or why its file could not be settled.
    type Settled = Result<(String, Vec<FleetRow>), Failure>;
    let one = |i: usize| -> Settled {
        let p = &paths[i];
        let path = p.display().to_string();
        let meter = if p.extension().is_some_and(|x| x == "gfm") {
            let file =
                std::fs::File::open(p).map_err(|e| bad(format!("meter file {path}: {e}")))?;
            read_meter(std::io::BufReader::new(file), zone).map_err(in_file(&path))?
        } else {
            parse_meter_bytes(&read_bytes(&path, "meter file")?, zone).map_err(in_file(&path))?
        };
        let id = p
            .file_stem()
            .map_or(path.clone(), |s| s.to_string_lossy().into_owned());
        let (id, rows) = run.settle_one(id, meter);
        let rows = rows
            .into_iter()
            .map(|r| FleetRow { meter: i, ..r })
            .collect();
        Ok((id, rows))
    };
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel();
    let progress = std::io::stderr().is_terminal();
    let mut done: Vec<Option<Settled>> = (0..paths.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads.get().min(paths.len().max(1)) {
            let (tx, next, one) = (tx.clone(), &next, &one);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= paths.len() || tx.send((i, one(i))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let started = std::time::Instant::now();
        let mut shown = std::time::Instant::now();
        for (count, (i, result)) in rx.iter().enumerate() {
            done[i] = Some(result);
            if progress && (shown.elapsed().as_millis() >= 200 || count + 1 == paths.len()) {
                shown = std::time::Instant::now();
                eprint!(
                    "\r{} of {} meters settled ({:.1} s)",
                    count + 1,
                    paths.len(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        if progress {
            eprintln!();
        }
    });
    let mut ids = Vec::with_capacity(paths.len());
    let mut rows = Vec::new();
    for result in done {
        let (id, r) =
            result.ok_or_else(|| bad("a meter file was not read (a worker stopped)"))??;
        ids.push(id);
        rows.extend(r);
    }
    Ok((ids, rows))
}

fn read(path: &str, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| bad(format!("{what} {path}: {e}")))
}

/// A file's bytes, for the readers that check UTF-8 only where they need to.
fn read_bytes(path: &str, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| bad(format!("{what} {path}: {e}")))
}

fn in_file(path: &str) -> impl Fn(gridflex_mv::MvError) -> Failure + '_ {
    move |e| bad(format!("{path}: {e}"))
}

fn arg_err(name: &'static str) -> impl Fn(gridflex_mv::MvError) -> Failure {
    move |e| bad(format!("argument --{name}: {e}"))
}

/// The longest adjustment window or gap accepted, in hours (a week).
const MAX_ADJUST_HOURS: f64 = 168.0;

fn baseline(f: &Flags) -> Result<Value, Failure> {
    let method: Method = f.required("method")?.parse().map_err(arg_err("method"))?;
    let meter_path = f.required("meter")?;
    let start = parse_instant(0, "event-start", f.required("event-start")?)
        .map_err(arg_err("event-start"))?;
    let end =
        parse_instant(0, "event-end", f.required("event-end")?).map_err(arg_err("event-end"))?;
    let event = Interval::new(start, end).map_err(|e| bad(format!("argument --event-end: {e}")))?;
    let zone: MarketZone = match f.get("tz") {
        Some(z) => z.parse().map_err(|e| bad(format!("argument --tz: {e}")))?,
        None => match method {
            Method::PjmCbl | Method::PjmSameDay => MarketZone::Pjm,
            Method::NyisoCbl => MarketZone::Nyiso,
            Method::ErcotMiddle8of10 => MarketZone::Ercot,
            _ => MarketZone::Caiso,
        },
    };
    let mut calendar = Calendar::new(zone);
    calendar.add_event_days(f.dates("exclude-days")?);
    for d in f.dates("holidays")? {
        calendar.add_holiday(d);
    }

    let mut b = method.baseline();
    if let Some(p) = f.get("gap-policy") {
        b = b.with_gap_policy(match p {
            "error" => GapPolicy::Error,
            "skip-day" => GapPolicy::SkipDay,
            _ => {
                return Err(bad(format!(
                    "argument --gap-policy: expected error or skip-day, got {p:?}"
                )));
            }
        });
    }
    if let Some(t) = f.get("instruction") {
        let at = parse_instant(0, "instruction", t).map_err(arg_err("instruction"))?;
        match &mut b.rule {
            gridflex_mv::BaselineRule::MeterBefore { instruction } => *instruction = Some(at),
            _ => {
                return Err(bad(
                    "argument --instruction: only the mbma method takes an instruction time",
                ));
            }
        }
    }
    if let Some(r) = f.get("low-usage-reference") {
        let reference = match r {
            "first-window" => LowUsageReference::InitialWindow,
            "refreshed" => LowUsageReference::Refreshed,
            _ => {
                return Err(bad(format!(
                    "argument --low-usage-reference: expected first-window or refreshed, got {r:?}"
                )));
            }
        };
        match &mut b.rule {
            gridflex_mv::BaselineRule::DayMatching { days, .. }
                if days.weekday.low_usage_threshold.is_some() =>
            {
                days.weekday.low_usage_reference = reference;
                days.saturday.low_usage_reference = reference;
                days.sunday_holiday.low_usage_reference = reference;
            }
            _ => {
                return Err(bad(format!(
                    "argument --low-usage-reference: the {method} method has no low-usage test"
                )));
            }
        }
    }
    let notified = match f.get("notified") {
        Some(t) => Some(parse_instant(0, "notified", t).map_err(arg_err("notified"))?),
        None => None,
    };
    let adjust_flags = ["adjust", "adjust-window-hours", "adjust-gap-hours", "cap"];
    if adjust_flags.iter().any(|n| f.get(n).is_some()) {
        let Some(current) = b.adjustment().copied() else {
            return Err(bad(format!(
                "argument --adjust: the {method} method has no day-of adjustment"
            )));
        };
        let kind = match f.get("adjust") {
            None => current.kind,
            Some("multiplicative") => AdjustmentKind::Multiplicative,
            Some("additive") => AdjustmentKind::Additive,
            Some("none") => AdjustmentKind::None,
            Some(other) => {
                return Err(bad(format!(
                    "argument --adjust: expected multiplicative, additive or none, got {other:?}"
                )));
            }
        };
        // A method without an adjustment by default gets the common 3 h window, 1 h gap.
        let default_window = if current.kind == AdjustmentKind::None {
            3.0
        } else {
            current.window.num_seconds() as f64 / 3600.0
        };
        let default_gap = if current.kind == AdjustmentKind::None {
            1.0
        } else {
            current.gap.num_seconds() as f64 / 3600.0
        };
        let cap = match f.get("cap") {
            None => current.cap,
            Some("none") => None,
            Some(_) => f.number("cap")?,
        };
        let hours = |h: f64| TimeDelta::seconds((h * 3600.0).round() as i64);
        let max = MAX_ADJUST_HOURS * 3600.0;
        let adj = Adjustment {
            kind,
            window: f
                .duration("adjust-window-hours", 3600.0, max, false)?
                .unwrap_or(hours(default_window)),
            gap: f
                .duration("adjust-gap-hours", 3600.0, max, true)?
                .unwrap_or(hours(default_gap)),
            cap,
        };
        b = b.with_adjustment(adj);
    }

    let meter = parse_meter_bytes(&read_bytes(meter_path, "meter file")?, zone)
        .map_err(in_file(meter_path))?;
    let result = b
        .compute_notified(&meter, &calendar, event, notified)
        .map_err(|e| bad(format!("baseline: {e}")))?;
    let reduction = result.reduction();

    let credit = match f.get("lmp") {
        Some(path) => {
            let lmp = parse_price_csv(&read(path, "price file")?).map_err(in_file(path))?;
            let rule = match f.number("nbt")? {
                Some(p) => PaymentRule::NetBenefitsTest(
                    Price::per_megawatt_hour(p).map_err(|e| bad(format!("argument --nbt: {e}")))?,
                ),
                None => PaymentRule::AllIntervals,
            };
            Some(energy_credits(&reduction, &lmp, rule).map_err(in_file(path))?)
        }
        None if f.get("nbt").is_some() => {
            return Err(bad("argument --nbt needs --lmp"));
        }
        None => None,
    };

    let kw = |p: Power| p.as_kilowatts();
    let intervals: Vec<Value> = result
        .intervals
        .iter()
        .zip(&reduction.intervals)
        .map(|(i, r)| {
            json!({
                "start": i.interval.start().to_rfc3339(),
                "end": i.interval.end().to_rfc3339(),
                "baseline_kw": kw(i.baseline),
                "adjusted_baseline_kw": kw(i.adjusted_baseline),
                "actual_kw": kw(i.actual),
                "reduction_kw": kw(r.raw),
                "settled_reduction_kw": kw(r.settled),
            })
        })
        .collect();
    let dropped: Vec<Value> = result
        .days
        .iter()
        .filter_map(|d| match d.outcome {
            DayOutcome::Dropped(reason) => {
                // The reason serialises as {"reason": name, ...details}; merge it in.
                let mut o = json!({
                    "date": d.date.to_string(),
                    "day_type": d.day_type.name(),
                    "event_window_kw": d.event_window_load.map(|p| p.as_kilowatts()),
                });
                if let (Some(o), Value::Object(r)) = (o.as_object_mut(), json!(reason)) {
                    o.extend(r);
                }
                Some(o)
            }
            DayOutcome::Selected => None,
        })
        .collect();
    let adj = result.adjustment;
    let value = match adj.value {
        AdjustmentValue::None => Value::Null,
        v => json!(v.as_number()),
    };
    let mut out = json!({
        "method": method.name(),
        "zone": zone.name(),
        "event_day": result.event_day.to_string(),
        "day_type": result.day_type.name(),
        "selected_days": result.selected_days.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "dropped_days": dropped,
        "adjustment": {
            "kind": adj.kind.name(),
            "value": value,
            "unit": match adj.value { AdjustmentValue::Offset(_) => "kW", AdjustmentValue::Factor(_) => "factor", AdjustmentValue::None => "none" },
            "uncapped": match adj.uncapped { AdjustmentValue::None => Value::Null, v => json!(v.as_number()) },
            "capped": adj.capped,
            "window_start": adj.window.map(|w| w.start().to_rfc3339()),
            "window_end": adj.window.map(|w| w.end().to_rfc3339()),
        },
        "settlement": reduction.rule,
        "intervals": intervals,
        "reduction_kwh": reduction.raw_energy.as_kilowatt_hours(),
        "settled_kwh": reduction.settled_energy.as_kilowatt_hours(),
    });
    if let (Some(c), Some(obj)) = (credit, out.as_object_mut()) {
        obj.insert("credit_usd".into(), json!(c.total.as_usd()));
        obj.insert(
            "unpaid_intervals".into(),
            json!(c.intervals.iter().filter(|i| !i.paid).count()),
        );
    }
    Ok(out)
}

fn ms(d: TimeDelta) -> f64 {
    // Whole microseconds first, so 60 ms prints as 60.0 rather than 60.00000000000001.
    d.num_microseconds().map_or(f64::NAN, |us| us as f64 / 1e3)
}

fn response(f: &Flags) -> Result<Value, Failure> {
    let path = f.required("samples")?;
    f.required("at")?;
    let mut instructions = Vec::new();
    for t in f.all("at") {
        instructions.push(parse_instant(0, "at", t).map_err(arg_err("at"))?);
    }
    let raw = parse_samples_csv(&read(path, "samples file")?, "power_w").map_err(in_file(path))?;
    let mut samples = Vec::with_capacity(raw.len());
    for (k, s) in raw.iter().enumerate() {
        let value = Power::watts(s.value).map_err(|e| {
            bad(format!(
                "{path}: sample {k} at {}, field power_w: {e}",
                s.at
            ))
        })?;
        samples.push(Sample { at: s.at, value });
    }
    let config = ResponseConfig {
        pre_window: f.duration("pre-window-s", 1.0, 86_400.0, false)?,
        post_window: f.duration("post-window-s", 1.0, 86_400.0, false)?,
        ..ResponseConfig::default()
    };
    let results = response_times(&samples, &instructions, &config).map_err(in_file(path))?;
    let each: Vec<Value> = instructions
        .iter()
        .zip(&results)
        .map(|(at, r)| {
            json!({
                "at": at.to_rfc3339(),
                "from_w": r.from.as_watts(),
                "to_w": r.to.as_watts(),
                "t50_ms": ms(r.t50.interpolated),
                "t90_ms": ms(r.t90.interpolated),
                "t50_first_sample_ms": ms(r.t50.first_sample),
                "t90_first_sample_ms": ms(r.t90.first_sample),
                "sample_period_ms": ms(r.sample_period),
                "max_sample_gap_ms": ms(r.max_sample_gap),
                "pre_samples": r.pre_samples,
                "post_samples": r.post_samples,
            })
        })
        .collect();
    Ok(match <[Value; 1]>::try_from(each) {
        Ok([one]) => one,
        Err(many) => json!({ "instructions": many }),
    })
}

fn regulation(f: &Flags) -> Result<Value, Failure> {
    let sp = f.required("signal")?;
    let rp = f.required("response")?;
    let signal = parse_samples_csv(&read(sp, "signal file")?, "value").map_err(in_file(sp))?;
    let raw = parse_samples_csv(&read(rp, "response file")?, "value").map_err(in_file(rp))?;
    let mut response = Vec::with_capacity(raw.len());
    for (k, s) in raw.iter().enumerate() {
        let value = Power::megawatts(s.value)
            .map_err(|e| bad(format!("{rp}: line {}, field value: {e}", k + 2)))?;
        response.push(Sample { at: s.at, value });
    }
    let mw = f.number("regulation-mw")?.unwrap_or(1.0);
    let reg = Power::megawatts(mw).map_err(|e| bad(format!("argument --regulation-mw: {e}")))?;
    let score =
        regulation_score(&signal, &response, &RegulationConfig::new(reg)).map_err(|e| match e {
            gridflex_mv::MvError::SampleOutOfRange { what: "signal", .. } => {
                bad(format!("{sp}: {e}"))
            }
            e => bad(format!("regulation score: {e}")),
        })?;
    Ok(json!({
        "regulation_mw": mw,
        "accuracy": score.accuracy,
        "delay": score.delay,
        "precision": score.precision,
        "composite": score.composite,
        "mileage": score.mileage,
        "hours": score.hours.iter().map(|h| json!({
            "start": h.start.to_rfc3339(),
            "windows": h.windows,
            "accuracy": h.accuracy,
            "delay": h.delay,
            "precision": h.precision,
            "composite": h.composite,
            "mileage": h.mileage,
        })).collect::<Vec<_>>(),
        "windows": score.windows.iter().map(|w| json!({
            "start": w.start.to_rfc3339(),
            "accuracy": w.accuracy,
            "delay": w.delay,
            "precision": w.precision,
            "composite": w.composite,
            "best_delay_s": gridflex_core::units::seconds_f64(w.best_delay),
        })).collect::<Vec<_>>(),
    }))
}
