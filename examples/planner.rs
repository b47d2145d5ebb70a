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
//! Bad input, or output that cannot be written (a closed pipe, a full disk), prints a
//! one-line message on stderr and exits with code 2. `--help` prints the usage on
//! stdout and exits 0.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use gridflex_core::{Interval, JobId, Power};
use gridflex_planner::{
    CapRange, CurtailmentRequest, FacilityModel, Fleet, JobClass, JobSpec, PlannerOptions,
    RampRate, Target, WorkloadKind,
};
use serde::{Deserialize, Serialize};

const USAGE: &str = "usage:
  planner --help
  planner plan --fleet FLEET.json --request REQUEST.json [--options OPTIONS.json]
  planner plan --input INPUT.json [--options OPTIONS.json]   (INPUT = {\"fleet\":..., \"request\":...})
  planner --example-input";

#[derive(Serialize, Deserialize)]
struct Input {
    fleet: Fleet,
    request: CurtailmentRequest,
}

/// The argument parser, kept apart so that its tests run with
/// `cargo test --example planner` (as `.ci/examples` does).
mod cli {
    /// What the command line asks for.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) enum Command {
        /// Print the usage and exit 0.
        Help,
        /// Print the example input.
        ExampleInput,
        /// Plan from `--input`, or from `--fleet` and `--request`.
        Plan {
            input: Option<String>,
            fleet_request: Option<(String, String)>,
            options: Option<String>,
        },
    }

    /// Reads the arguments (without the program name); the error is the message.
    pub(crate) fn parse(args: &[String]) -> Result<Command, String> {
        let usage = super::USAGE;
        match args.first().map(String::as_str) {
            Some("-h" | "--help" | "help") => Ok(Command::Help),
            Some("--example-input") if args.len() == 1 => Ok(Command::ExampleInput),
            Some("plan") => {
                let mut fleet = None;
                let mut request = None;
                let mut input = None;
                let mut options = None;
                let mut it = args[1..].iter();
                while let Some(flag) = it.next() {
                    let slot = match flag.as_str() {
                        "-h" | "--help" => return Ok(Command::Help),
                        "--fleet" => &mut fleet,
                        "--request" => &mut request,
                        "--input" => &mut input,
                        "--options" => &mut options,
                        other => return Err(format!("unknown argument {other:?}\n{usage}")),
                    };
                    if slot.is_some() {
                        return Err(format!("{flag} given twice\n{usage}"));
                    }
                    *slot = Some(
                        it.next()
                            .ok_or_else(|| format!("{flag} needs a file\n{usage}"))?
                            .clone(),
                    );
                }
                match (input, fleet, request) {
                    (Some(i), None, None) => Ok(Command::Plan {
                        input: Some(i),
                        fleet_request: None,
                        options,
                    }),
                    (None, Some(f), Some(r)) => Ok(Command::Plan {
                        input: None,
                        fleet_request: Some((f, r)),
                        options,
                    }),
                    _ => Err(format!("give --fleet and --request, or --input\n{usage}")),
                }
            }
            _ => Err(usage.to_owned()),
        }
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
            assert_eq!(parse(&args(&["plan", "--help"])), Ok(Command::Help));
            assert_eq!(
                parse(&args(&["--example-input"])),
                Ok(Command::ExampleInput)
            );
            assert_eq!(
                parse(&args(&["plan", "--input", "i.json"])),
                Ok(Command::Plan {
                    input: Some("i.json".into()),
                    fleet_request: None,
                    options: None
                })
            );
            assert!(parse(&args(&[])).is_err());
            assert!(parse(&args(&["plan", "--input"])).is_err());
            assert!(parse(&args(&["plan", "--input", "a", "--input", "b"])).is_err());
            assert!(parse(&args(&["plan", "--fleet", "f"])).is_err());
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            /// Any argument list gives a command or a message, never a panic.
            #[test]
            fn any_arguments_never_panic(
                raw in proptest::collection::vec(
                    prop_oneof![
                        Just("plan".to_owned()),
                        Just("--fleet".to_owned()),
                        Just("--request".to_owned()),
                        Just("--input".to_owned()),
                        Just("--options".to_owned()),
                        Just("--example-input".to_owned()),
                        ".{0,10}",
                    ],
                    0..7,
                )
            ) {
                match parse(&raw) {
                    Ok(_) => {}
                    Err(msg) => prop_assert!(!msg.is_empty()),
                }
            }
        }
    }
}

fn main() -> ExitCode {
    // Nothing here panics on a closed or full stdout/stderr: a write error is an error
    // (exit 2), reported on stderr when stderr still works.
    use std::io::Write;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = run(&args).and_then(|out| {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{out}")
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("writing output: {e}"))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            let _ = writeln!(std::io::stderr().lock(), "error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    match cli::parse(args)? {
        cli::Command::Help => Ok(USAGE.to_owned()),
        cli::Command::ExampleInput => {
            let input = example().map_err(|e| e.to_string())?;
            serde_json::to_string_pretty(&input).map_err(|e| e.to_string())
        }
        cli::Command::Plan {
            input,
            fleet_request,
            options,
        } => {
            let (fleet, request) = match (input, fleet_request) {
                (Some(i), _) => {
                    let input: Input = read(&i)?;
                    (input.fleet, input.request)
                }
                (None, Some((f, r))) => (read(&f)?, read(&r)?),
                (None, None) => return Err(USAGE.to_owned()),
            };
            let options: PlannerOptions = match options {
                Some(o) => read(&o)?,
                None => PlannerOptions::default(),
            };
            let plan =
                gridflex_planner::plan(&fleet, &request, &options).map_err(|e| e.to_string())?;
            serde_json::to_string_pretty(&plan).map_err(|e| e.to_string())
        }
    }
}

/// Reads and validates one JSON file; the message names the file, the field and the line.
fn read<T: for<'de> Deserialize<'de>>(path: &str) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    // Files written by earlier versions (millisecond fields) are read too.
    gridflex_planner::json::from_str(&text).map_err(|e| format!("{path}: {e}"))
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
               kind: WorkloadKind,
               weight,
               class|
     -> Result<JobSpec, Box<dyn std::error::Error>> {
        Ok(JobSpec {
            id: JobId::new(id)?,
            gpus,
            draw_per_gpu: w(draw)?,
            cap_range: h100,
            paused_draw_per_gpu: w(130.0)?,
            curve: kind.default_curve(),
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
