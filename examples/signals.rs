//! `signals`: parse an operator price file you downloaded and print what it holds.
//!
//! ```text
//! cargo run --release --example signals -- parse FILE
//! cargo run --release --example signals -- parse --summary FILE
//! cargo run --release --example signals -- parse --lenient FILE
//! ```
//!
//! The format (CAISO OASIS CSV/XML/zip, PJM Data Miner JSON/CSV) is detected from the
//! content. `parse` prints one JSON object per price point with the keys `market`,
//! `run`, `node`, `pnode_name` (PJM's node name; null when the file has none),
//! `interval_start`, `interval_end` (RFC 3339, UTC), `lmp`, `energy`,
//! `congestion`, `loss` (null when the file lacks them). `--summary` prints one object
//! with `count`, `nodes`, `first_start`, `last_end`, `min_lmp`, `mean_lmp`, `max_lmp`.
//! `--lenient` skips bad rows and lists the first 100 of them, and their count, on
//! stderr. Bad input, or output that cannot be written (a closed pipe, a full disk): a
//! one-line message on stderr and exit code 2. `--help`: the usage on stdout, exit 0.

use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use gridflex_signals::PricePoint;
use gridflex_signals::parse::{ParseOptions, parse_prices_seekable};
use serde::Serialize;

const USAGE: &str = "usage: signals parse [--summary] [--lenient] FILE";

/// The argument parser, kept apart so that its tests run with `cargo test`.
mod cli {
    /// What the command line asks for.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) enum Command {
        /// Print the usage and exit 0.
        Help,
        /// Parse `file`.
        Parse {
            summary: bool,
            lenient: bool,
            file: String,
        },
    }

    /// Reads the arguments (without the program name); the error is the message.
    pub(crate) fn parse(args: &[String]) -> Result<Command, String> {
        let usage = super::USAGE;
        let Some((command, rest)) = args.split_first() else {
            return Err(usage.into());
        };
        match command.as_str() {
            "-h" | "--help" | "help" => return Ok(Command::Help),
            "parse" => {}
            _ => return Err(format!("unknown command {command:?}; {usage}")),
        }
        let mut summary = false;
        let mut lenient = false;
        let mut file = None;
        for a in rest {
            match a.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "--summary" => summary = true,
                "--lenient" => lenient = true,
                f if !f.starts_with('-') && file.is_none() => file = Some(f.to_owned()),
                other => return Err(format!("unexpected argument {other:?}; {usage}")),
            }
        }
        let file = file.ok_or_else(|| format!("no FILE given; {usage}"))?;
        Ok(Command::Parse {
            summary,
            lenient,
            file,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;

        fn args(v: &[&str]) -> Vec<String> {
            v.iter().map(|s| (*s).to_owned()).collect()
        }

        #[test]
        fn commands() {
            assert_eq!(parse(&args(&["--help"])), Ok(Command::Help));
            assert_eq!(parse(&args(&["parse", "-h"])), Ok(Command::Help));
            assert_eq!(
                parse(&args(&["parse", "--lenient", "f.csv"])),
                Ok(Command::Parse {
                    summary: false,
                    lenient: true,
                    file: "f.csv".into()
                })
            );
            assert!(parse(&args(&[])).is_err());
            assert!(parse(&args(&["parse"])).is_err());
            assert!(parse(&args(&["parse", "a", "b"])).is_err());
            assert!(parse(&args(&["parse", "--bogus", "a"])).is_err());
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            /// Any argument list gives a command or a message, never a panic.
            #[test]
            fn any_arguments_never_panic(
                raw in proptest::collection::vec(
                    prop_oneof![
                        Just("parse".to_owned()),
                        Just("--summary".to_owned()),
                        Just("--lenient".to_owned()),
                        Just("--help".to_owned()),
                        ".{0,12}",
                    ],
                    0..6,
                )
            ) {
                match parse(&raw) {
                    Ok(Command::Parse { file, .. }) => prop_assert!(raw.contains(&file)),
                    Ok(Command::Help) => {}
                    Err(msg) => prop_assert!(!msg.is_empty()),
                }
            }
        }
    }
}

fn main() -> ExitCode {
    // Nothing here panics on a closed or full stdout/stderr: a write error is an error
    // (exit 2), reported on stderr when stderr still works.
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            let _ = writeln!(std::io::stderr().lock(), "signals: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let write_err = |e: std::io::Error| format!("writing output: {e}");
    let (summary, lenient, path) = match cli::parse(args)? {
        cli::Command::Help => {
            let mut out = std::io::stdout().lock();
            return writeln!(out, "{USAGE}")
                .and_then(|()| out.flush())
                .map_err(write_err);
        }
        cli::Command::Parse {
            summary,
            lenient,
            file,
        } => (summary, lenient, file),
    };
    let options = if lenient {
        ParseOptions::lenient()
    } else {
        ParseOptions::strict()
    };
    let input = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    let out = parse_prices_seekable(input, &options).map_err(|e| format!("{path}: {e}"))?;
    if out.skipped_count > 0 {
        let mut err = std::io::stderr().lock();
        for s in &out.skipped {
            writeln!(err, "{path}: skipped: {}", s.reason)
                .map_err(|e| format!("writing to stderr: {e}"))?;
        }
        writeln!(
            err,
            "{path}: {} rows skipped in all ({} shown)",
            out.skipped_count,
            out.skipped.len()
        )
        .map_err(|e| format!("writing to stderr: {e}"))?;
    }
    let stdout = std::io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let result = if summary {
        writeln!(w, "{}", summarise(&out.points))
    } else {
        out.points
            .iter()
            .try_for_each(|p| writeln!(w, "{}", point_json(p)))
    };
    result.and_then(|()| w.flush()).map_err(write_err)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One output line; the field order is the documented key order.
#[derive(Serialize)]
struct Row<'a> {
    market: &'static str,
    run: &'static str,
    node: &'a str,
    pnode_name: Option<&'a str>,
    interval_start: String,
    interval_end: String,
    lmp: f64,
    energy: Option<f64>,
    congestion: Option<f64>,
    loss: Option<f64>,
}

fn point_json(p: &PricePoint) -> String {
    let num = |v: Option<gridflex_core::Price>| v.map(|v| v.as_per_megawatt_hour());
    let row = Row {
        market: p.market.name(),
        run: p.run.name(),
        node: p.node.as_str(),
        pnode_name: p.pnode_name.as_deref(),
        interval_start: rfc3339(p.interval.start()),
        interval_end: rfc3339(p.interval.end()),
        lmp: p.lmp.as_per_megawatt_hour(),
        energy: num(p.energy),
        congestion: num(p.congestion),
        loss: num(p.loss),
    };
    serde_json::to_string(&row).unwrap_or_default()
}

#[derive(Serialize)]
struct Summary {
    count: usize,
    nodes: usize,
    first_start: Option<String>,
    last_end: Option<String>,
    min_lmp: Option<f64>,
    mean_lmp: Option<f64>,
    max_lmp: Option<f64>,
}

fn summarise(points: &[PricePoint]) -> String {
    // One pass for everything but the mean (a day of every node's prices is tens of
    // megabytes of points; each pass reads them all again). The nodes are counted by
    // where their text is first: the points of one node share it (ids share their
    // text), so that set stays as small as the nodes and is quick to hash; the texts
    // are then compared for the ones that do not share it. foldhash: with SipHash,
    // counting them cost as much as a tenth of the parse.
    let mut texts: HashSet<*const u8, foldhash::fast::RandomState> = HashSet::default();
    let mut nodes: HashSet<&str, foldhash::fast::RandomState> = HashSet::default();
    let mut first_start: Option<DateTime<Utc>> = None;
    let mut last_end: Option<DateTime<Utc>> = None;
    let (mut min_lmp, mut max_lmp): (Option<f64>, Option<f64>) = (None, None);
    for p in points {
        if texts.insert(p.node.as_str().as_ptr()) {
            nodes.insert(p.node.as_str());
        }
        let (start, end) = (p.interval.start(), p.interval.end());
        first_start = Some(first_start.map_or(start, |t| t.min(start)));
        last_end = Some(last_end.map_or(end, |t| t.max(end)));
        let lmp = p.lmp.as_per_megawatt_hour();
        min_lmp = Some(min_lmp.map_or(lmp, |m| m.min(lmp)));
        max_lmp = Some(max_lmp.map_or(lmp, |m| m.max(lmp)));
    }
    let summary = Summary {
        count: points.len(),
        nodes: nodes.len(),
        first_start: first_start.map(rfc3339),
        last_end: last_end.map(rfc3339),
        min_lmp,
        mean_lmp: gridflex_core::Price::mean(points.iter().map(|p| p.lmp))
            .map(gridflex_core::Price::as_per_megawatt_hour),
        max_lmp,
    };
    serde_json::to_string(&summary).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};
    use gridflex_core::{Interval, Price, PricingNodeId};
    use gridflex_signals::MarketRun;

    #[test]
    fn summary_mean_of_huge_prices_is_finite() {
        let t = Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap();
        let points: Vec<PricePoint> = (0..2)
            .map(|k| {
                PricePoint::new(
                    MarketRun::PjmDayAheadHourly,
                    PricingNodeId::new("1").unwrap(),
                    Interval::starting_at(t + TimeDelta::hours(k), TimeDelta::hours(1)).unwrap(),
                    Price::per_megawatt_hour(gridflex_core::MAX_MAGNITUDE).unwrap(),
                )
            })
            .collect();
        let v: serde_json::Value = serde_json::from_str(&summarise(&points)).unwrap();
        assert_eq!(v["mean_lmp"].as_f64(), Some(gridflex_core::MAX_MAGNITUDE));
        assert_eq!(v["count"].as_u64(), Some(2));
        let v: serde_json::Value = serde_json::from_str(&summarise(&[])).unwrap();
        assert!(v["mean_lmp"].is_null());
    }

    #[test]
    fn summary_counts_nodes_by_text_whether_or_not_ids_share_it() {
        let t = Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap();
        let shared = PricingNodeId::new("A").unwrap();
        let point = |node: PricingNodeId, k: i64| {
            PricePoint::new(
                MarketRun::CaisoRtm,
                node,
                Interval::starting_at(t + TimeDelta::minutes(5 * k), TimeDelta::minutes(5))
                    .unwrap(),
                Price::ZERO,
            )
        };
        let points = vec![
            point(shared.clone(), 0),
            point(shared, 1),
            // The same text made apart, and another node.
            point(PricingNodeId::new("A").unwrap(), 2),
            point(PricingNodeId::new("B").unwrap(), 0),
            point(PricingNodeId::new("B").unwrap(), 1),
        ];
        let v: serde_json::Value = serde_json::from_str(&summarise(&points)).unwrap();
        assert_eq!(v["nodes"].as_u64(), Some(2));
        assert_eq!(v["count"].as_u64(), Some(5));
    }
}
