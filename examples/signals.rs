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
//! `run`, `node`, `interval_start`, `interval_end` (RFC 3339, UTC), `lmp`, `energy`,
//! `congestion`, `loss` (null when the file lacks them). `--summary` prints one object
//! with `count`, `nodes`, `first_start`, `last_end`, `min_lmp`, `mean_lmp`, `max_lmp`.
//! `--lenient` skips bad rows and lists them on stderr. Bad input: a message naming the
//! position on stderr and exit code 2.

use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use gridflex_signals::PricePoint;
use gridflex_signals::parse::{ParseOptions, parse_prices};
use serde::Serialize;

const USAGE: &str = "usage: signals parse [--summary] [--lenient] FILE";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("signals: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        return Err(USAGE.into());
    };
    if command != "parse" {
        return Err(format!("unknown command {command:?}; {USAGE}"));
    }
    let mut summary = false;
    let mut options = ParseOptions::strict();
    let mut file = None;
    for a in rest {
        match a.as_str() {
            "--summary" => summary = true,
            "--lenient" => options = ParseOptions::lenient(),
            f if !f.starts_with("--") && file.is_none() => file = Some(f.to_owned()),
            other => return Err(format!("unexpected argument {other:?}; {USAGE}")),
        }
    }
    let path = file.ok_or(USAGE)?;
    let input = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    let out = parse_prices(input, &options).map_err(|e| format!("{path}: {e}"))?;
    for s in &out.skipped {
        eprintln!("{path}: skipped: {}", s.reason);
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
    match result.and_then(|()| w.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("writing output: {e}")),
        _ => Ok(()),
    }
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
    let nodes: HashSet<&str> = points.iter().map(|p| p.node.as_str()).collect();
    let lmps = points.iter().map(|p| p.lmp.as_per_megawatt_hour());
    let summary = Summary {
        count: points.len(),
        nodes: nodes.len(),
        first_start: points.iter().map(|p| p.interval.start()).min().map(rfc3339),
        last_end: points.iter().map(|p| p.interval.end()).max().map(rfc3339),
        min_lmp: lmps.clone().reduce(f64::min),
        mean_lmp: (!points.is_empty()).then(|| lmps.clone().sum::<f64>() / points.len() as f64),
        max_lmp: lmps.reduce(f64::max),
    };
    serde_json::to_string(&summary).unwrap_or_default()
}
