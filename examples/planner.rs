//! Command-line front end of `gridflex-planner`.
//!
//! ```text
//! cargo run --release --example planner -- plan --fleet FLEET.json --request REQUEST.json [--options OPTIONS.json]
//! cargo run --release --example planner -- plan --input EXAMPLE.json
//! cargo run --release --example planner -- --example-input > example.json
//! ```
//!
//! `plan` prints the plan as JSON. `--example-input` prints a sample
//! `{"fleet": ..., "request": ...}` to start from (usable with `plan --input`).
//! Bad input prints a message naming the field and exits with code 2.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use gridflex_core::{Interval, JobId, Power};
use gridflex_planner::{
    CapRange, CurtailmentRequest, FacilityModel, Fleet, JobClass, JobSpec, PlannerOptions,
    RampRate, Target, ThroughputCurve, WorkloadKind,
};
use serde::{Deserialize, Serialize};

const USAGE: &str = "usage:
  planner plan --fleet FLEET.json --request REQUEST.json [--options OPTIONS.json]
  planner plan --input INPUT.json [--options OPTIONS.json]   (INPUT = {\"fleet\":..., \"request\":...})
  planner --example-input";

#[derive(Serialize, Deserialize)]
struct Input {
    fleet: Fleet,
    request: CurtailmentRequest,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    match args.first().map(String::as_str) {
        Some("--example-input") => {
            let input = example().map_err(|e| e.to_string())?;
            serde_json::to_string_pretty(&input).map_err(|e| e.to_string())
        }
        Some("plan") => {
            let mut fleet_path = None;
            let mut request_path = None;
            let mut input_path = None;
            let mut options_path = None;
            let mut it = args[1..].iter();
            while let Some(flag) = it.next() {
                let slot = match flag.as_str() {
                    "--fleet" => &mut fleet_path,
                    "--request" => &mut request_path,
                    "--input" => &mut input_path,
                    "--options" => &mut options_path,
                    other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
                };
                *slot = Some(it.next().ok_or(format!("{flag} needs a file\n{USAGE}"))?);
            }
            let (fleet, request) = match (input_path, fleet_path, request_path) {
                (Some(i), None, None) => {
                    let input: Input = read(i)?;
                    (input.fleet, input.request)
                }
                (None, Some(f), Some(r)) => (read(f)?, read(r)?),
                _ => return Err(format!("give --fleet and --request, or --input\n{USAGE}")),
            };
            let options: PlannerOptions = match options_path {
                Some(o) => read(o)?,
                None => PlannerOptions::default(),
            };
            let plan =
                gridflex_planner::plan(&fleet, &request, &options).map_err(|e| e.to_string())?;
            serde_json::to_string_pretty(&plan).map_err(|e| e.to_string())
        }
        _ => Err(USAGE.to_owned()),
    }
}

/// Reads and validates one JSON file; the message names the file, the field and the line.
fn read<T: for<'de> Deserialize<'de>>(path: &str) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
}

fn example() -> Result<Input, Box<dyn std::error::Error>> {
    let w = Power::watts;
    let h100 = CapRange {
        min: w(200.0)?,
        max: w(700.0)?,
    };
    let job = |id: &str,
               gpus,
               draw,
               kind,
               weight,
               class|
     -> Result<JobSpec, Box<dyn std::error::Error>> {
        Ok(JobSpec {
            id: JobId::new(id)?,
            gpus,
            draw_per_gpu: w(draw)?,
            cap_range: h100,
            paused_draw_per_gpu: w(130.0)?,
            curve: ThroughputCurve::default_for(kind),
            weight,
            class,
        })
    };
    let start = Utc
        .with_ymd_and_hms(2025, 8, 14, 18, 0, 0)
        .single()
        .ok_or("bad date")?;
    let specs = vec![
        job(
            "chat-serving",
            64,
            520.0,
            WorkloadKind::Inference,
            3.0,
            JobClass::Critical { floor: 0.95 },
        )?,
        job(
            "llm-pretrain-70b",
            512,
            690.0,
            WorkloadKind::Pretraining,
            1.0,
            JobClass::Flexible {
                floor: 0.6,
                max_pause: Duration::from_secs(900),
            },
        )?,
        job(
            "finetune-8b",
            128,
            650.0,
            WorkloadKind::FineTuning,
            1.0,
            JobClass::Flexible {
                floor: 0.5,
                max_pause: Duration::from_secs(4 * 3600),
            },
        )?,
        job(
            "eval-sweep",
            256,
            600.0,
            WorkloadKind::Generic,
            0.5,
            JobClass::Deferrable {
                deadline: start + TimeDelta::hours(8),
            },
        )?,
        job(
            "embeddings-batch",
            32,
            450.0,
            WorkloadKind::Inference,
            0.5,
            JobClass::Deferrable {
                deadline: start + TimeDelta::hours(1),
            },
        )?,
    ];
    let fleet = Fleet::from_specs(specs, FacilityModel::new(Power::kilowatts(150.0)?, 1.25)?)?;
    let request = CurtailmentRequest::new(
        Target::ReduceBy(Power::kilowatts(350.0)?),
        Interval::new(start, start + TimeDelta::hours(2))?,
        Duration::from_millis(50),
        RampRate::per_second(Power::kilowatts(100.0)?)?,
    )?;
    Ok(Input { fleet, request })
}
