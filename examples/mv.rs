//! `mv`: measurement and verification on your own meter data. CSV in, JSON out.
//!
//! ```text
//! mv baseline --method caiso-10in10|caiso-5in10|pjm-cbl|pjm-same-day|nyiso-cbl|ercot-m8of10|mbma
//!    --meter METER.csv --event-start T --event-end T [--tz ZONE]
//!    [--exclude-days D,D,...] [--holidays D,D,...]
//!    [--adjust multiplicative|additive|none] [--adjust-window-hours H] [--adjust-gap-hours G]
//!    [--cap C|none] [--gap-policy error|skip-day] [--instruction T]
//!    [--lmp PRICES.csv] [--nbt PRICE]
//! mv response-time --samples POWER.csv --at T [--pre-window-s S] [--post-window-s S]
//! mv regulation-score --signal SIGNAL.csv --response RESPONSE.csv [--regulation-mw M]
//! ```
//!
//! METER.csv: `interval_start,kw` (RFC 3339 with offset, regular spacing; an empty kw is
//! a missing value). PRICES.csv: `interval_start,lmp` ($/MWh). POWER.csv: `time,power_w`;
//! SIGNAL.csv / RESPONSE.csv: `time,value` (signal in [-1, 1], response in MW); times
//! RFC 3339 or Unix seconds with a fraction. Bad input prints a message naming the line
//! and field (or the argument) and exits with code 2.
//!
//! Run: `cargo run -p gridflex-mv --example mv -- baseline --method pjm-cbl --meter m.csv ...`

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use chrono::{NaiveDate, TimeDelta};
use gridflex_core::{Interval, MarketZone, Power, Price};
use gridflex_mv::baseline::{AdjustmentValue, DayOutcome};
use gridflex_mv::input::{parse_instant, parse_meter_csv, parse_price_csv, parse_samples_csv};
use gridflex_mv::regulation::{RegulationConfig, regulation_score};
use gridflex_mv::response::{ResponseConfig, Sample, response_time};
use gridflex_mv::settlement::{PaymentRule, energy_credits};
use gridflex_mv::{Adjustment, AdjustmentKind, Calendar, GapPolicy, Meter, Method};
use serde_json::{Value, json};

const USAGE: &str =
    "usage: mv baseline --method M --meter METER.csv --event-start T --event-end T [options]
       mv response-time --samples POWER.csv --at T [--pre-window-s S] [--post-window-s S]
       mv regulation-score --signal SIGNAL.csv --response RESPONSE.csv [--regulation-mw M]
(see the header of examples/mv.rs for every option)";

/// A failure to report: the message, and the exit code.
struct Failure(String, u8);

fn bad(msg: impl Into<String>) -> Failure {
    Failure(msg.into(), 2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            // A closed pipe (`mv ... | head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout().lock(), "{out:#}");
            ExitCode::SUCCESS
        }
        Err(Failure(msg, code)) => {
            eprintln!("mv: {msg}");
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
            ],
        )?),
        "response-time" => response(&Flags::parse(
            rest,
            &["samples", "at", "pre-window-s", "post-window-s"],
        )?),
        "regulation-score" => regulation(&Flags::parse(
            rest,
            &["signal", "response", "regulation-mw"],
        )?),
        "-h" | "--help" | "help" => Err(Failure(USAGE.into(), 0)),
        other => Err(bad(format!("unknown command {other:?}\n{USAGE}"))),
    }
}

/// `--name value` pairs.
struct Flags(HashMap<String, String>);

impl Flags {
    fn parse(args: &[String], known: &[&str]) -> Result<Self, Failure> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                return Err(bad(format!("unexpected argument {a:?}\n{USAGE}")));
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
                return Err(bad(format!("unknown argument --{name}\n{USAGE}")));
            }
            if map.insert(name.clone(), value).is_some() {
                return Err(bad(format!("argument --{name} given twice")));
            }
        }
        Ok(Self(map))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn required(&self, name: &str) -> Result<&str, Failure> {
        self.get(name)
            .ok_or_else(|| bad(format!("argument --{name} is required\n{USAGE}")))
    }

    fn number(&self, name: &str) -> Result<Option<f64>, Failure> {
        self.get(name)
            .map(|v| match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(x),
                _ => Err(bad(format!("argument --{name}: not a number: {v:?}"))),
            })
            .transpose()
    }

    fn dates(&self, name: &str) -> Result<Vec<NaiveDate>, Failure> {
        let Some(list) = self.get(name) else {
            return Ok(Vec::new());
        };
        list.split(',')
            .filter(|d| !d.trim().is_empty())
            .map(|d| {
                NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                    .map_err(|_| bad(format!("argument --{name}: not a YYYY-MM-DD date: {d:?}")))
            })
            .collect()
    }
}

fn read(path: &str, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| bad(format!("{what} {path}: {e}")))
}

fn in_file(path: &str) -> impl Fn(gridflex_mv::MvError) -> Failure + '_ {
    move |e| bad(format!("{path}: {e}"))
}

fn arg_err(name: &'static str) -> impl Fn(gridflex_mv::MvError) -> Failure {
    move |e| bad(format!("argument --{name}: {e}"))
}

fn hours(h: f64) -> TimeDelta {
    TimeDelta::milliseconds((h * 3.6e6).round() as i64)
}

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
        let adj = Adjustment {
            kind,
            window: hours(f.number("adjust-window-hours")?.unwrap_or(default_window)),
            gap: hours(f.number("adjust-gap-hours")?.unwrap_or(default_gap)),
            cap,
        };
        b = b.with_adjustment(adj);
    }

    let series = parse_meter_csv(&read(meter_path, "meter file")?).map_err(in_file(meter_path))?;
    let meter = Meter::new(series, zone).map_err(in_file(meter_path))?;
    let result = b
        .compute(&meter, &calendar, event)
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
    let at = parse_instant(0, "at", f.required("at")?).map_err(arg_err("at"))?;
    let raw = parse_samples_csv(&read(path, "samples file")?, "power_w").map_err(in_file(path))?;
    let mut samples = Vec::with_capacity(raw.len());
    for (k, s) in raw.iter().enumerate() {
        let value = Power::watts(s.value)
            .map_err(|e| bad(format!("{path}: line {}, field power_w: {e}", k + 2)))?;
        samples.push(Sample { at: s.at, value });
    }
    let window = |name: &str| -> Result<Option<TimeDelta>, Failure> {
        Ok(f.number(name)?
            .map(|s| TimeDelta::microseconds((s * 1e6).round() as i64)))
    };
    let config = ResponseConfig {
        pre_window: window("pre-window-s")?,
        post_window: window("post-window-s")?,
        ..ResponseConfig::default()
    };
    let r = response_time(&samples, at, &config).map_err(in_file(path))?;
    Ok(json!({
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
    }))
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
    let score = regulation_score(&signal, &response, &RegulationConfig::new(reg))
        .map_err(|e| bad(format!("regulation score: {e}")))?;
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
