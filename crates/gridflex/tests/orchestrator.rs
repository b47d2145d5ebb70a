//! End-to-end tests of the orchestrator on the simulator, in virtual time: a price
//! spike, a dispatch with lead time, a regulation period, fault injection, a dying
//! signal source, refused signals, shutdown, and the audit log read back.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex::audit::{ActionOutcome, AuditEvent, AuditLog, AuditRecord, MemoryLog, Replan};
use gridflex::hal::ErrorKind;
use gridflex::prelude::*;
use gridflex::program::{Decision, IgnoreReason, Refusal};
use gridflex::signals::source::channel;
use gridflex::signals::{
    AlertKind, DispatchEvent, DispatchTarget, EventWindow, GridAlert, LeadTime, Program,
    RegulationKind, RegulationSample, RegulationSignal,
};
use gridflex::simulated::{JobPlan, SimulatedFacility};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 8, 14, 16, 0, 0).unwrap()
}

fn node() -> PricingNodeId {
    PricingNodeId::new("TH_SP15_GEN-APND").unwrap()
}

fn kw(v: f64) -> Power {
    Power::kilowatts(v).unwrap()
}

/// 64 GPUs: inference (critical), training (flexible), batch (deferrable).
fn facility() -> SimulatedFacility {
    SimulatedFacility::build(
        t0(),
        &[
            JobPlan::new(
                "chat",
                16,
                JobClass::Critical { floor: 0.85 },
                WorkloadKind::Inference,
            ),
            JobPlan::new(
                "pretrain",
                32,
                JobClass::Flexible {
                    floor: 0.5,
                    max_pause: Duration::from_secs(300),
                },
                WorkloadKind::Pretraining,
            ),
            JobPlan::new(
                "batch",
                16,
                JobClass::Deferrable {
                    deadline: t0() + TimeDelta::hours(12),
                },
                WorkloadKind::FineTuning,
            ),
        ],
    )
    .unwrap()
}

fn rules() -> ProgramRules {
    let mut rules = ProgramRules::new(Market::Caiso, power!(40 kW));
    rules.markets.push(Market::Pjm);
    let mut price = PriceRule::new(
        node(),
        MarketRun::CaisoRtm,
        price!(300 per MWh),
        power!(30 kW),
    );
    // Demand the field demonstration's speed: pauses first, then caps.
    price.response_time = TimeDelta::milliseconds(20);
    rules.price = Some(price);
    rules.dispatch = Some(DispatchRule::new(vec![
        Program::PjmEmergencyLoadManagement {
            lead_time: LeadTime::Minutes30,
        },
    ]));
    rules.emergency = Some(EmergencyRule::new(vec![LevelCap::new(
        gridflex::signals::AlertLevel::Eea2,
        power!(25 kW),
    )]));
    rules.regulation = Some(RegulationRule::new(
        RegulationKind::RegD,
        power!(36 kW),
        power!(6 kW),
    ));
    rules
}

fn build(f: &SimulatedFacility, clock: TokioClock) -> (Orchestrator<TokioClock>, MemoryLog) {
    let (audit, memory) = AuditLog::memory();
    let o = f
        .orchestrator(clock)
        .facility(FacilityModel::new(power!(2 kW), 1.1).unwrap())
        .rules(rules())
        .audit(audit)
        .build()
        .unwrap();
    (o, memory)
}

fn price(at: DateTime<Utc>, lmp: f64) -> GridSignal {
    let i = Interval::new(at, at + TimeDelta::minutes(5)).unwrap();
    GridSignal::Price(PricePoint::new(
        MarketRun::CaisoRtm,
        node(),
        i,
        Price::per_megawatt_hour(lmp).unwrap(),
    ))
}

fn events(records: &[AuditRecord]) -> Vec<&'static str> {
    records
        .iter()
        .map(|r| match r.event {
            AuditEvent::Signal { .. } => "signal",
            AuditEvent::Decision { .. } => "decision",
            AuditEvent::Refused { .. } => "refused",
            AuditEvent::Plan { .. } => "plan",
            AuditEvent::Action { .. } => "action",
            AuditEvent::Restore { .. } => "restore",
            AuditEvent::Report { .. } => "report",
            AuditEvent::Started { .. } => "started",
            AuditEvent::Stopped { .. } => "stopped",
            _ => "other",
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn price_spike_is_curtailed_measured_and_restored() {
    let f = facility();
    let clock = f.clock();
    let (mut o, memory) = build(&f, clock.clone());
    let spike_at = t0() + TimeDelta::minutes(30);
    // The real-time feed: a quiet interval, the spike, then prices below the release.
    let source = ReplaySource::from_signals(
        vec![
            price(t0() + TimeDelta::minutes(10), 80.0),
            price(spike_at, 950.0),
            price(spike_at + TimeDelta::minutes(5), 120.0),
            price(spike_at + TimeDelta::minutes(10), 90.0),
        ],
        clock.clone(),
    )
    .unwrap();
    let summary = o.run(source, std::future::pending()).await.unwrap();
    assert_eq!(summary.signals, 4);
    assert_eq!(summary.events, 1);
    assert!(
        o.curtailed_jobs().is_empty(),
        "left curtailed: {:?}",
        o.curtailed_jobs()
    );

    let report = &o.reports()[0];
    assert_eq!(report.window.start(), spike_at);
    assert_eq!(
        report.window.duration(),
        TimeDelta::minutes(15),
        "minimum hold"
    );
    assert!(report.shortfall.is_none());
    assert!(report.predicted <= power!(30.001 kW));
    let d = report
        .delivery
        .as_ref()
        .unwrap_or_else(|| panic!("{:?}", report.not_computed));
    // The site drew about 43 kW before; the cap is 30 kW.
    assert!(d.baseline > power!(38 kW), "{d:?}");
    assert!(d.actual <= power!(30.5 kW), "{d:?}");
    assert!(d.delivered > power!(8 kW), "{d:?}");
    // Settled at each interval's own LMP (950, 120 and 90 $/MWh): about 1.2 kWh
    // (15 kW for 5 minutes) per interval, so about $1.45 in all.
    let credit = d.credit.unwrap().as_usd();
    assert!(credit > 1.0 && credit < 5.0, "{credit}");
    assert!(report.not_computed.is_empty(), "{:?}", report.not_computed);
    let r = report.response.expect("response measured");
    assert!(
        r.t50 < TimeDelta::milliseconds(40) && r.t90 < TimeDelta::milliseconds(100),
        "{r:?}"
    );
    assert!(r.sample_period <= TimeDelta::milliseconds(25), "{r:?}");

    let records = memory.records().unwrap();
    let kinds = events(&records);
    let first = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(
        first("plan") < first("restore") && first("restore") < first("report"),
        "{kinds:?}"
    );
    assert!(
        records.windows(2).all(|w| w[0].at <= w[1].at),
        "audit times are ordered"
    );
    // Every action succeeded and the restore put every job back.
    assert!(records.iter().all(|r| !matches!(
        &r.event,
        AuditEvent::Action {
            outcome: ActionOutcome::Failed { .. },
            ..
        }
    )));
}

#[tokio::test(start_paused = true)]
async fn dispatch_with_lead_time_starts_at_its_window() {
    let f = facility();
    let clock = f.clock();
    let (mut o, memory) = build(&f, clock.clone());
    let issued = t0() + TimeDelta::minutes(5);
    let window = EventWindow::new(
        issued + TimeDelta::minutes(30),
        Some(issued + TimeDelta::minutes(90)),
    )
    .unwrap();
    let event = DispatchEvent::new(
        "PJM-LM-1",
        Program::PjmEmergencyLoadManagement {
            lead_time: LeadTime::Minutes30,
        },
        issued,
        window,
        DispatchTarget::ReduceBy {
            power: power!(12 kW),
        },
        None,
    )
    .unwrap();
    let source =
        ReplaySource::from_signals(vec![GridSignal::Dispatch(event)], clock.clone()).unwrap();
    o.run(source, std::future::pending()).await.unwrap();
    assert!(o.curtailed_jobs().is_empty());
    let report = &o.reports()[0];
    assert_eq!(report.window.start(), issued + TimeDelta::minutes(30));
    let d = report.delivery.as_ref().unwrap();
    assert!(d.delivered > power!(11 kW), "{d:?}");
    let records = memory.records().unwrap();
    let plan_at = records
        .iter()
        .find(|r| matches!(r.event, AuditEvent::Plan { .. }))
        .unwrap()
        .at;
    assert_eq!(
        plan_at,
        issued + TimeDelta::minutes(30),
        "nothing is actuated before the window"
    );
}

#[tokio::test(start_paused = true)]
async fn regulation_follows_the_signal_and_is_scored() {
    let f = facility();
    let clock = f.clock();
    let (mut o, _memory) = build(&f, clock.clone());
    let start = t0() + TimeDelta::minutes(10);
    // 20 minutes of a RegD-like signal every 2 s.
    let signals: Vec<GridSignal> = (0..600)
        .map(|k| {
            let at = start + TimeDelta::seconds(2 * k);
            // Two incommensurate sines: no period lines up with the 5-minute scoring
            // window, so the best-correlation delay is unambiguous.
            let t = 2.0 * k as f64;
            let v = 0.6 * (t / 97.0).sin() + 0.3 * (t / 23.0).sin();
            GridSignal::Regulation(RegulationSample::new(
                at,
                RegulationKind::RegD,
                RegulationSignal::new(v).unwrap(),
            ))
        })
        .collect();
    let source = ReplaySource::from_signals(signals, clock.clone()).unwrap();
    o.run(source, std::future::pending()).await.unwrap();
    assert!(o.curtailed_jobs().is_empty());
    assert_eq!(o.reports().len(), 1);
    let reg = o.reports()[0].regulation.expect("regulation scored");
    assert!(reg.composite > 0.9, "{reg:?}");
    assert!(reg.accuracy > 0.9, "{reg:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failing_device_is_reported_and_the_plan_re_solved() {
    let f = facility();
    let clock = f.clock();
    let (mut o, memory) = build(&f, clock.clone());
    // A training GPU refuses every command from the start of the event...
    let bad = f.fleet().gpu(20).unwrap().clone();
    bad.inject_fault(Some(ErrorKind::DeviceLost));
    let spike_at = t0() + TimeDelta::minutes(30);
    let (tx, rx) = channel(8);
    let feeder = {
        let clock = clock.clone();
        let bad = bad.clone();
        async move {
            clock.sleep_until(spike_at).await;
            tx.send(price(spike_at, 950.0)).await.unwrap();
            // ...and recovers before the window ends, so the restore can reach it.
            clock.sleep_until(spike_at + TimeDelta::minutes(10)).await;
            bad.inject_fault(None);
        }
    };
    let (summary, ()) = tokio::join!(o.run(rx, std::future::pending()), feeder);
    summary.unwrap();
    assert!(o.curtailed_jobs().is_empty(), "{:?}", o.curtailed_jobs());
    let records = memory.records().unwrap();
    // The cap command to the lost GPU fails with its kind; the job's pause may fail too
    // (the simulated job cannot stop a workload on a lost GPU).
    let failed = records.iter().find_map(|r| match &r.event {
        AuditEvent::Action {
            outcome: ActionOutcome::Failed { failures },
            action: action @ gridflex::planner::Action::SetCap { .. },
            ..
        } => Some((action.job().clone(), failures.clone())),
        _ => None,
    });
    let (job, failures) = failed.expect("the failure is in the audit log");
    assert_eq!(job.as_str(), "pretrain");
    assert_eq!(failures[0].kind, ErrorKind::DeviceLost);
    assert_eq!(failures[0].device.as_ref().unwrap(), &bad.info().id);
    assert!(records.iter().any(|r| matches!(
        &r.event,
        AuditEvent::Replanned { reason: Replan::JobsFailed { jobs }, .. } if jobs[0].as_str() == "pretrain"
    )));
    // The re-solved plan still meets the target without the failed job.
    let plans: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.event {
            AuditEvent::Plan { plan, .. } => Some(plan),
            _ => None,
        })
        .collect();
    assert!(plans.len() >= 2);
    assert!(plans.last().unwrap().predicted_power <= power!(30.001 kW));
}

#[tokio::test(start_paused = true)]
async fn a_source_that_dies_mid_event_still_gets_restored() {
    let f = facility();
    let clock = f.clock();
    let (mut o, memory) = build(&f, clock.clone());
    let (tx, rx) = channel(8);
    let alert_at = t0() + TimeDelta::minutes(5);
    let feeder = {
        let clock = clock.clone();
        async move {
            clock.sleep_until(alert_at).await;
            let alert = GridAlert::new(
                Market::Caiso,
                AlertKind::Eea2,
                alert_at,
                EventWindow::new(alert_at, None).unwrap(),
            )
            .unwrap();
            tx.send(GridSignal::Alert(alert)).await.unwrap();
            clock.sleep_until(alert_at + TimeDelta::minutes(1)).await;
            drop(tx); // the source dies; the open-ended alert must still end
        }
    };
    let (summary, ()) = tokio::join!(o.run(rx, std::future::pending()), feeder);
    summary.unwrap();
    assert!(o.curtailed_jobs().is_empty());
    let report = &o.reports()[0];
    assert_eq!(
        report.window.duration(),
        TimeDelta::hours(4),
        "max_event closes the open window"
    );
    let records = memory.records().unwrap();
    assert!(
        records
            .iter()
            .any(|r| matches!(r.event, AuditEvent::SourceEnded))
    );
    // The restore starts once the window is over (the first resume waits for the ramp).
    let restore = records
        .iter()
        .find(|r| matches!(r.event, AuditEvent::Restore { .. }))
        .unwrap();
    let end = alert_at + TimeDelta::hours(4);
    assert!(
        restore.at >= end && restore.at < end + TimeDelta::seconds(1),
        "{}",
        restore.at
    );
}

#[tokio::test(start_paused = true)]
async fn refused_signals_are_logged_and_never_executed() {
    let f = facility();
    let clock = f.clock();
    let (mut o, memory) = build(&f, clock.clone());
    let at = t0() + TimeDelta::minutes(1);
    let window = EventWindow::new(at, Some(at + TimeDelta::hours(1))).unwrap();
    let not_enrolled = DispatchEvent::new(
        "SR-1",
        Program::PjmSynchronizedReserve,
        at,
        window,
        DispatchTarget::ReduceBy {
            power: power!(5 kW),
        },
        None,
    )
    .unwrap();
    let too_big = DispatchEvent::new(
        "LM-2",
        Program::PjmEmergencyLoadManagement {
            lead_time: LeadTime::Minutes30,
        },
        at,
        window,
        DispatchTarget::ReduceBy {
            power: power!(400 kW),
        },
        None,
    )
    .unwrap();
    let source = ReplaySource::from_signals(
        vec![
            GridSignal::Dispatch(not_enrolled),
            GridSignal::Dispatch(too_big),
        ],
        clock.clone(),
    )
    .unwrap();
    let summary = o.run(source, std::future::pending()).await.unwrap();
    assert_eq!(summary.refused, 2);
    assert_eq!(summary.commands, 0);
    let records = memory.records().unwrap();
    let refusals: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.event {
            AuditEvent::Refused { refusal } => Some(refusal.clone()),
            _ => None,
        })
        .collect();
    assert!(matches!(refusals[0], Refusal::NotEnrolled { .. }));
    assert!(matches!(refusals[1], Refusal::BeyondEnrolled { .. }));
    assert!(!events(&records).contains(&"action"));
}

#[tokio::test(start_paused = true)]
async fn shutdown_restores_everything_before_returning() {
    let f = facility();
    let clock = f.clock();
    let (mut o, _memory) = build(&f, clock.clone());
    let spike_at = t0() + TimeDelta::minutes(1);
    let source = ReplaySource::from_signals(vec![price(spike_at, 2000.0)], clock.clone()).unwrap();
    let stop = {
        let clock = clock.clone();
        async move { clock.sleep_until(spike_at + TimeDelta::minutes(3)).await }
    };
    o.run(source, stop).await.unwrap();
    assert!(o.curtailed_jobs().is_empty());
    assert_eq!(o.reports().len(), 1);
    // Every simulated GPU is back at its discovery limit and running.
    for gpu in f.fleet().iter() {
        assert_eq!(gpu.requested_limit(), gpu.info().limit_at_discovery);
    }
    for (_, job) in f.jobs() {
        assert_eq!(job.status_now(), gridflex::hal::WorkloadState::Running);
    }
}

#[tokio::test(start_paused = true)]
async fn audit_log_round_trips_through_a_file() {
    let f = facility();
    let clock = f.clock();
    let dir = std::env::temp_dir().join(format!("gridflex-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    let _ = std::fs::remove_file(&path);
    let mut o = f
        .orchestrator(clock.clone())
        .facility(FacilityModel::new(power!(2 kW), 1.1).unwrap())
        .rules(rules())
        .audit(AuditLog::append_to_file(&path).unwrap())
        .build()
        .unwrap();
    let source = ReplaySource::from_signals(
        vec![price(t0() + TimeDelta::minutes(2), 999.0)],
        clock.clone(),
    )
    .unwrap();
    o.run(source, std::future::pending()).await.unwrap();
    let records = gridflex::audit::read_audit_file(&path)
        .unwrap()
        .into_complete()
        .unwrap();
    assert!(records.len() > 5);
    assert!(matches!(
        &records[0].event,
        AuditEvent::Started { jobs: 3, .. }
    ));
    let report = records.iter().find_map(|r| match &r.event {
        AuditEvent::Report { report, .. } => Some(report.clone()),
        _ => None,
    });
    assert_eq!(report.as_deref(), Some(&o.reports()[0]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(start_paused = true)]
async fn the_run_future_can_be_spawned_on_a_multi_threaded_runtime() {
    fn assert_send<T: Send>(_: &T) {}
    let f = facility();
    let clock = f.clock();
    let (mut o, _memory) = build(&f, clock.clone());
    let source = ReplaySource::from_signals(Vec::new(), clock).unwrap();
    let run = o.run(source, std::future::pending::<()>());
    assert_send(&run);
}

#[tokio::test(start_paused = true)]
async fn regulation_yields_to_a_curtailment_event() {
    let f = facility();
    let clock = f.clock();
    let (mut o, memory) = build(&f, clock.clone());
    let start = t0() + TimeDelta::minutes(10);
    let mut signals: Vec<GridSignal> = (0..150)
        .map(|k| {
            let at = start + TimeDelta::seconds(2 * k);
            let v = RegulationSignal::new(0.3).unwrap();
            GridSignal::Regulation(RegulationSample::new(at, RegulationKind::RegD, v))
        })
        .collect();
    // A price spike one minute in: it replaces regulation; later set-points are ignored.
    signals.push(price(start + TimeDelta::minutes(1), 900.0));
    signals.sort_by_key(GridSignal::time);
    let source = ReplaySource::from_signals(signals, clock.clone()).unwrap();
    o.run(source, std::future::pending()).await.unwrap();
    assert!(o.curtailed_jobs().is_empty());
    let causes: Vec<String> = o.reports().iter().map(|r| r.cause.to_string()).collect();
    assert_eq!(causes.len(), 2, "{causes:?}");
    assert_eq!(causes[0], "regulation");
    assert!(causes[1].starts_with("price"), "{causes:?}");
    let ignored = memory
        .records()
        .unwrap()
        .iter()
        .filter(|r| {
            matches!(
                &r.event,
                AuditEvent::Decision {
                    decision: Decision::Ignore {
                        reason: IgnoreReason::RegulationSuspended { .. }
                    },
                    ..
                }
            )
        })
        .count();
    assert!(ignored > 100, "{ignored}");
}

#[tokio::test(start_paused = true)]
async fn shutdown_before_a_scheduled_dispatch_starts_actuates_nothing() {
    let f = facility();
    let clock = f.clock();
    let (mut o, memory) = build(&f, clock.clone());
    let issued = t0() + TimeDelta::minutes(1);
    let window = EventWindow::new(
        issued + TimeDelta::minutes(30),
        Some(issued + TimeDelta::minutes(60)),
    )
    .unwrap();
    let event = DispatchEvent::new(
        "PJM-LM-2",
        Program::PjmEmergencyLoadManagement {
            lead_time: LeadTime::Minutes30,
        },
        issued,
        window,
        DispatchTarget::ReduceBy {
            power: power!(10 kW),
        },
        None,
    )
    .unwrap();
    let source =
        ReplaySource::from_signals(vec![GridSignal::Dispatch(event)], clock.clone()).unwrap();
    let stop = {
        let clock = clock.clone();
        async move { clock.sleep_until(issued + TimeDelta::minutes(10)).await }
    };
    let summary = o.run(source, stop).await.unwrap();
    assert_eq!(summary.commands, 0);
    assert!(o.reports().is_empty());
    let records = memory.records().unwrap();
    assert!(!events(&records).contains(&"action"));
    assert!(records.iter().any(|r| matches!(
        r.event,
        AuditEvent::ObligationsDropped {
            scheduled: 1,
            waiting: 0
        }
    )));
}

fn dispatch(id: &str, issued: DateTime<Utc>, minutes: i64, reduce_kw: f64) -> GridSignal {
    let window = EventWindow::new(issued, Some(issued + TimeDelta::minutes(minutes))).unwrap();
    GridSignal::Dispatch(
        DispatchEvent::new(
            id,
            Program::PjmEmergencyLoadManagement {
                lead_time: LeadTime::Minutes30,
            },
            issued,
            window,
            DispatchTarget::ReduceBy {
                power: kw(reduce_kw),
            },
            None,
        )
        .unwrap(),
    )
}

/// A dispatch (reduce by 5 kW: a cap near 38 kW) is running when a price spike asks for
/// 30 kW: the stricter price event takes over, and the dispatch resumes when it ends.
#[tokio::test(start_paused = true)]
async fn a_stricter_event_takes_over_and_the_interrupted_one_resumes() {
    let f = facility();
    let clock = f.clock();
    let (mut o, memory) = build(&f, clock.clone());
    let start = t0() + TimeDelta::minutes(5);
    let signals = vec![
        dispatch("LM-A", start, 60, 5.0),
        price(start + TimeDelta::minutes(10), 950.0),
    ];
    let source = ReplaySource::from_signals(signals, clock.clone()).unwrap();
    o.run(source, std::future::pending()).await.unwrap();
    assert!(o.curtailed_jobs().is_empty());
    let windows: Vec<(String, Interval)> = o
        .reports()
        .iter()
        .map(|r| (r.cause.to_string(), r.window))
        .collect();
    assert_eq!(windows.len(), 3, "{windows:?}");
    assert!(windows[0].0.starts_with("dispatch LM-A"));
    assert_eq!(windows[0].1.end(), start + TimeDelta::minutes(10));
    assert!(windows[1].0.starts_with("price"));
    assert!(windows[2].0.starts_with("dispatch LM-A"), "{windows:?}");
    assert_eq!(windows[2].1.start(), start + TimeDelta::minutes(25));
    assert_eq!(windows[2].1.end(), start + TimeDelta::minutes(60));
    // The fleet never went back up between the price event and the resumed dispatch:
    // the price event hands over without a restore.
    let records = memory.records().unwrap();
    assert!(
        records
            .iter()
            .any(|r| matches!(r.event, AuditEvent::TakenOver { event_id: 1 }))
    );
    let handover = start + TimeDelta::minutes(25);
    assert!(
        !records
            .iter()
            .any(|r| r.at == handover && matches!(r.event, AuditEvent::Restore { .. }))
    );
}

/// A looser signal during a stricter event waits, then runs for what is left of its window.
#[tokio::test(start_paused = true)]
async fn a_looser_event_waits_for_the_stricter_one() {
    let f = facility();
    let clock = f.clock();
    let (mut o, memory) = build(&f, clock.clone());
    let start = t0() + TimeDelta::minutes(5);
    // The price event caps at 30 kW for 15 minutes; the dispatch (about 38 kW) arrives
    // 5 minutes in and lasts 40 minutes.
    let signals = vec![
        price(start, 950.0),
        dispatch("LM-B", start + TimeDelta::minutes(5), 40, 5.0),
    ];
    let source = ReplaySource::from_signals(signals, clock.clone()).unwrap();
    o.run(source, std::future::pending()).await.unwrap();
    assert!(o.curtailed_jobs().is_empty());
    let causes: Vec<String> = o.reports().iter().map(|r| r.cause.to_string()).collect();
    assert_eq!(causes.len(), 2, "{causes:?}");
    assert!(causes[0].starts_with("price"));
    assert!(causes[1].starts_with("dispatch LM-B"));
    assert_eq!(o.reports()[0].window.end(), start + TimeDelta::minutes(15));
    assert_eq!(
        o.reports()[1].window.start(),
        start + TimeDelta::minutes(15)
    );
    assert_eq!(o.reports()[1].window.end(), start + TimeDelta::minutes(45));
    let records = memory.records().unwrap();
    assert!(
        records
            .iter()
            .any(|r| matches!(r.event, AuditEvent::Waiting { behind: 1, .. }))
    );
}
