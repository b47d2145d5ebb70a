//! The simulated facility enrolled with an OpenADR 3.1 VTN: events on the VTN curtail
//! the simulated GPUs, and when the run ends a report per event (metered usage, MBMA
//! baseline, change against it) goes back to the VTN.
//!
//! ```text
//! GRIDFLEX_OPENADR_CLIENT_ID=ven GRIDFLEX_OPENADR_CLIENT_SECRET_FILE=/run/secrets/ven \
//!   cargo run --example openadr_ven --features openadr -- \
//!   --url http://127.0.0.1:3100 --ven site-a --program peak-relief --seconds 120
//! ```
//!
//! `--demo-event-kw KW` also plays the utility's back office (with the business-logic
//! credentials in `GRIDFLEX_OPENADR_BL_CLIENT_ID`/`_SECRET`): it creates the program and,
//! 10 s after the start, a 15-second `IMPORT_CAPACITY_LIMIT` event of KW kilowatts.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use gridflex::OrchestratorOptions;
use gridflex::audit::{AuditEvent, AuditLog};
use gridflex::clock::TokioClock;
use gridflex::core::{MarketZone, Power};
use gridflex::openadr::{
    Credentials, Mapping, SimpleLevel, VenClient, VenConfig, VenSource, VtnEndpoint, report_input,
};
use gridflex::orchestrator::ctrl_c;
use gridflex::planner::{FacilityModel, JobClass, WorkloadKind};
use gridflex::program::{DispatchRule, ProgramRules};
use gridflex::signals::{DispatchTarget, Market, Program};
use gridflex::simulated::{JobPlan, SimulatedFacility};

type Error = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: openadr_ven --url URL --ven NAME --program NAME [--program NAME ...]
                   [--seconds N] [--poll-ms MS] [--allow-insecure-http] [--demo-event-kw KW]
  Credentials: GRIDFLEX_OPENADR_CLIENT_ID and GRIDFLEX_OPENADR_CLIENT_SECRET_FILE (or
  GRIDFLEX_OPENADR_CLIENT_SECRET). Plain http is refused unless the VTN is on loopback or
  --allow-insecure-http is given. Runs until ctrl-c, or for --seconds.";

#[derive(Debug)]
struct Args {
    url: String,
    ven: String,
    programs: Vec<String>,
    seconds: Option<u64>,
    poll_ms: u64,
    allow_insecure_http: bool,
    demo_event_kw: Option<f64>,
}

/// `Ok(None)`: `--help`.
fn parse_args(argv: &[String]) -> Result<Option<Args>, String> {
    let mut args = Args {
        url: String::new(),
        ven: String::new(),
        programs: Vec::new(),
        seconds: None,
        poll_ms: 1000,
        allow_insecure_http: false,
        demo_event_kw: None,
    };
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value (try --help)"))
        };
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--url" => args.url = value("--url")?,
            "--ven" => args.ven = value("--ven")?,
            "--program" => args.programs.push(value("--program")?),
            "--seconds" => {
                let v = value("--seconds")?;
                args.seconds = Some(
                    v.parse()
                        .map_err(|_| format!("--seconds {v:?}: not a whole number"))?,
                );
            }
            "--poll-ms" => {
                let v = value("--poll-ms")?;
                args.poll_ms = v
                    .parse()
                    .ok()
                    .filter(|&ms| ms >= 50)
                    .ok_or_else(|| format!("--poll-ms {v:?}: a whole number of at least 50"))?;
            }
            "--allow-insecure-http" => args.allow_insecure_http = true,
            "--demo-event-kw" => {
                let v = value("--demo-event-kw")?;
                args.demo_event_kw = Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|kw| kw.is_finite() && *kw > 0.0)
                        .ok_or_else(|| format!("--demo-event-kw {v:?}: a positive number"))?,
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if args.url.is_empty() || args.ven.is_empty() || args.programs.is_empty() {
        return Err("--url, --ven and at least one --program are required (try --help)".into());
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("openadr_ven: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openadr_ven: {e}");
            ExitCode::from(1)
        }
    }
}

fn kw(v: f64) -> Result<Power, Error> {
    Ok(Power::kilowatts(v)?)
}

fn run(args: Args) -> Result<(), Error> {
    let credentials = Credentials::from_env("GRIDFLEX_OPENADR")?;
    let mut endpoint = VtnEndpoint::new(args.url.clone(), credentials);
    endpoint.allow_insecure_http = args.allow_insecure_http;
    let client = VenClient::new(endpoint)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        if let Some(limit) = args.demo_event_kw {
            let (url, program) = (args.url.clone(), args.programs[0].clone());
            demo::back_office(&url, &program, limit).await?;
        }
        // 24 simulated H100s: an inference service that must keep 90 % of its speed
        // and a training run that may slow to half or pause.
        let facility = SimulatedFacility::build(
            Utc::now(),
            &[
                JobPlan::new("chat", 8, JobClass::Critical { floor: 0.9 }, WorkloadKind::Inference),
                JobPlan::new(
                    "train",
                    16,
                    JobClass::Flexible { floor: 0.5, max_pause: Duration::from_secs(900) },
                    WorkloadKind::Pretraining,
                ),
            ],
        )?;
        let clock = facility.clock();
        let mut rules = ProgramRules::new(Market::Caiso, kw(15.0)?);
        rules.dispatch = Some(DispatchRule::new(
            args.programs
                .iter()
                .map(|name| Program::Custom { name: name.clone(), market: Market::Caiso })
                .collect(),
        ));
        let mut options = OrchestratorOptions::default();
        options.telemetry_step = TimeDelta::seconds(1);
        options.meter_step = TimeDelta::seconds(5);
        let (audit, audit_records) = AuditLog::memory();
        let mut orchestrator = facility
            .orchestrator(clock.clone())
            .facility(FacilityModel::new(kw(1.5)?, 1.2)?)
            .rules(rules)
            .options(options)
            .audit(audit)
            .build()?;

        let mut mapping = Mapping::new(Market::Caiso);
        mapping.response_time = TimeDelta::seconds(10);
        mapping.simple_levels = vec![
            SimpleLevel::new(1, DispatchTarget::ReduceBy { power: kw(2.0)? }),
            SimpleLevel::new(2, DispatchTarget::ReduceBy { power: kw(4.0)? }),
            SimpleLevel::new(3, DispatchTarget::ReduceBy { power: kw(8.0)? }),
        ];
        let mut config = VenConfig::new(args.ven.clone(), mapping);
        config.programs = args.programs.clone();
        config.poll_interval = Duration::from_millis(args.poll_ms);
        config.stale_after = config.poll_interval.max(Duration::from_secs(3)) * 3;
        let source = VenSource::new(client.clone(), config, TokioClock::real())?;
        let log = source.log();
        println!(
            "openadr_ven: VEN {:?} polling {} every {} ms for programs {:?}",
            args.ven, args.url, args.poll_ms, args.programs
        );
        let printer = tokio::spawn({
            let log = log.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    for n in log.drain() {
                        println!("{}  note: {}", n.at.format("%H:%M:%S%.3f"), n.message);
                    }
                }
            }
        });
        let stop = async {
            match args.seconds {
                Some(s) => {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(s)) => {}
                        () = ctrl_c() => {}
                    }
                }
                None => ctrl_c().await,
            }
        };
        let summary = orchestrator.run(source, stop).await?;
        printer.abort();
        for n in log.drain() {
            println!("{}  note: {}", n.at.format("%H:%M:%S%.3f"), n.message);
        }
        let records = audit_records.records()?;
        for r in &records {
            match &r.event {
                AuditEvent::Decision { decision, event_id } => {
                    println!("{}  decision (event {event_id:?}): {decision:?}", r.at.format("%H:%M:%S%.3f"));
                }
                AuditEvent::Restore { event_id, reason } => {
                    println!("{}  restore event {event_id}: {reason}", r.at.format("%H:%M:%S%.3f"));
                }
                AuditEvent::SourceFailed { error, .. } => {
                    println!("{}  VTN error: {error}", r.at.format("%H:%M:%S%.3f"));
                }
                AuditEvent::PlanFailed { error, .. } => {
                    println!("{}  no plan: {error}", r.at.format("%H:%M:%S%.3f"));
                }
                _ => {}
            }
        }
        println!(
            "run ended: {} signals, {} events, {} commands, {} refused, {} source errors",
            summary.signals, summary.events, summary.commands, summary.refused, summary.source_errors
        );
        let Some(meter) = orchestrator.meter()? else {
            return Ok(());
        };
        for r in orchestrator.reports() {
            if let Some(d) = &r.delivery {
                println!(
                    "event {}: {} window {} .. {}: baseline {:.2} kW, actual {:.2} kW, delivered {:.2} kW",
                    r.event_id,
                    r.cause,
                    r.window.start().format("%H:%M:%S"),
                    r.window.end().format("%H:%M:%S"),
                    d.baseline.as_kilowatts(),
                    d.actual.as_kilowatts(),
                    d.delivered.as_kilowatts()
                );
            }
            match report_input(&r.cause, r.window, &meter, MarketZone::Caiso, "gridflex-facility") {
                Ok(Some(input)) => match client.report_event(&args.ven, &input).await {
                    Ok(posted) => println!(
                        "report posted for OpenADR event {}: id {}, {} intervals",
                        input.event_id,
                        posted.id.as_deref().unwrap_or("?"),
                        input.intervals.len()
                    ),
                    Err(e) => println!("report for OpenADR event {} failed: {e}", input.event_id),
                },
                Ok(None) => {}
                Err(e) => println!("no report for event {}: {e}", r.event_id),
            }
        }
        Ok::<(), Error>(())
    })?;
    Ok(())
}

/// The utility's side, only for `--demo-event-kw`: the business-logic user, through the
/// same OAuth client the VEN uses (it is a plain OpenADR client).
mod demo {
    use super::Error;
    use chrono::{SecondsFormat, TimeDelta, Utc};
    use gridflex::openadr::{Credentials, Secret, VenClient, VtnEndpoint};
    use serde_json::{Value, json};

    pub(super) async fn back_office(url: &str, program: &str, limit_kw: f64) -> Result<(), Error> {
        let id = std::env::var("GRIDFLEX_OPENADR_BL_CLIENT_ID")
            .map_err(|_| "--demo-event-kw needs GRIDFLEX_OPENADR_BL_CLIENT_ID")?;
        let secret = std::env::var("GRIDFLEX_OPENADR_BL_CLIENT_SECRET")
            .map_err(|_| "--demo-event-kw needs GRIDFLEX_OPENADR_BL_CLIENT_SECRET")?;
        let bl = VenClient::new(VtnEndpoint::new(
            url,
            Credentials::new(id, Secret::new(secret)),
        ))?;
        let programs: Vec<Value> = bl.get("/programs").await?;
        let existing = programs
            .iter()
            .find(|p| p["programName"] == program)
            .and_then(|p| p["id"].as_str().map(str::to_owned));
        let program_id = match existing {
            Some(id) => id,
            None => {
                let p: Value = bl
                    .post(
                        "/programs",
                        &json!({"objectType": "PROGRAM", "programName": program}),
                    )
                    .await?;
                p["id"].as_str().ok_or("program without id")?.to_owned()
            }
        };
        let start =
            (Utc::now() + TimeDelta::seconds(10)).to_rfc3339_opts(SecondsFormat::Secs, true);
        let event: Value = bl
            .post(
                "/events",
                &json!({
                    "objectType": "EVENT", "programID": program_id, "eventName": "gridflex demo",
                    "payloadDescriptors": [{"objectType": "EVENT_PAYLOAD_DESCRIPTOR",
                                            "payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}],
                    "reportDescriptors": [{"payloadType": "USAGE"}, {"payloadType": "BASELINE"},
                                          {"payloadType": "DELTA_USAGE"}],
                    "intervalPeriod": {"start": start, "duration": "PT15S"},
                    "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [limit_kw]}]}],
                }),
            )
            .await?;
        println!(
            "demo back office: event {} in program {program}: import capacity limit {limit_kw} kW from {start} for 15 s",
            event["id"].as_str().unwrap_or("?")
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_and_refuses() {
        let a = parse_args(&args(
            "--url http://127.0.0.1:3100 --ven v --program p --seconds 5",
        ))
        .unwrap()
        .unwrap();
        assert_eq!((a.seconds, a.poll_ms, a.programs.len()), (Some(5), 1000, 1));
        assert!(parse_args(&args("--help")).unwrap().is_none());
        for bad in [
            "",
            "--url x --ven v",
            "--url x --ven v --program p --seconds -1",
            "--url x --ven v --program p --poll-ms 10",
            "--url x --ven v --program p --demo-event-kw nan",
            "--url x --ven v --program p --bogus",
            "--url",
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_arguments_never_panic(v in proptest::collection::vec("\\PC{0,12}", 0..8)) {
            let _ = parse_args(&v);
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = Credentials::new("id", gridflex::openadr::Secret::new("topsecret"));
        assert!(!format!("{c:?}").contains("topsecret"));
    }
}
