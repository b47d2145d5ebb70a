//! Regression tests of the safety promise: service levels hold across re-plans,
//! take-overs and faults, restores converge, intake survives a failing or slow source,
//! and windows at the edges of time neither panic nor run unbounded. Every check reads
//! the simulated hardware (each GPU's command history and reported throughput), not
//! the orchestrator's beliefs.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use common::*;
use gridflex::RunSummary;
use gridflex::audit::{ActionOutcome, AuditEvent, AuditLog, MemoryLog};
use gridflex::hal::ErrorKind;
use gridflex::hal::sim::{SimActivity, SimCommand};
use gridflex::planner::Action;
use gridflex::prelude::*;
use gridflex::program::Refusal;
use gridflex::signals::source::channel;
use gridflex::signals::{
    DispatchEvent, DispatchTarget, EventWindow, Program, RegulationKind, RegulationSample,
    RegulationSignal, SignalError,
};
use gridflex::simulated::SimulatedFacility;

fn build(f: &SimulatedFacility, rules: ProgramRules) -> (Orchestrator<TokioClock>, MemoryLog) {
    build_with(f, rules, OrchestratorOptions::default())
}

fn build_with(
    f: &SimulatedFacility,
    rules: ProgramRules,
    options: OrchestratorOptions,
) -> (Orchestrator<TokioClock>, MemoryLog) {
    let (audit, memory) = AuditLog::memory();
    let o = f
        .orchestrator(f.clock())
        .facility(FacilityModel::new(kw(1.0), 1.0).unwrap())
        .rules(rules)
        .audit(audit)
        .options(options)
        .build()
        .unwrap();
    (o, memory)
}

/// Runs the orchestrator on `source` with a throughput monitor beside it, then checks
/// the promise from the hardware: the critical floor, the pause budget per episode, the
/// deferrable deadline, no resume-and-re-pause flicker, and a full restore.
async fn run_and_check<S: SignalSource>(
    f: &SimulatedFacility,
    o: &mut Orchestrator<TokioClock>,
    source: S,
    shutdown: impl std::future::Future<Output = ()>,
) -> RunSummary {
    let monitor = FloorMonitor::default();
    let watch = monitor.watch(f, &[SERVE], f.clock(), Duration::from_millis(250));
    let summary = tokio::select! {
        s = o.run(source, shutdown) => s.unwrap(),
        () = watch => unreachable!("the monitor never ends"),
    };
    let end = f.clock().now();
    assert!(
        monitor.lowest(SERVE) >= FLOOR - 1e-9,
        "critical job at {:.4} of its throughput, floor {FLOOR}",
        monitor.lowest(SERVE)
    );
    let worst = common::worst_pause_per_episode(f, TRAIN, t0(), end);
    assert!(worst <= MAX_PAUSE, "train paused {worst:?} in one episode");
    let train = common::job_trace(f, TRAIN, t0(), end);
    assert_eq!(
        train.flickers, 0,
        "train resumed and paused again at one instant"
    );
    let batch = common::job_trace(f, BATCH, t0(), end);
    assert!(batch.paused.iter().all(|&(_, e)| e <= at(12 * 60)));
    common::fully_restored(f).unwrap();
    assert!(o.curtailed_jobs().is_empty(), "{:?}", o.curtailed_jobs());
    summary
}

fn paused_total(f: &SimulatedFacility, job: usize) -> Duration {
    common::job_trace(f, job, t0(), f.clock().now())
        .paused
        .iter()
        .map(|&(s, e)| (e - s).to_std().unwrap())
        .sum()
}

/// Twelve 5-minute prices above the strike: every re-plan spends what is left of the
/// one budget, so training is paused at most `max_pause` in all (it was 3,600 s).
#[tokio::test(start_paused = true)]
async fn an_extended_price_event_spends_one_pause_budget() {
    let f = facility();
    let (mut o, _) = build(&f, rules());
    let signals = (0..12).map(|k| price(at(5 + 5 * k), 950.0)).collect();
    let source = ReplaySource::from_signals(signals, f.clock()).unwrap();
    run_and_check(&f, &mut o, source, std::future::pending()).await;
    let paused = paused_total(&f, TRAIN);
    assert!(
        paused > Duration::ZERO,
        "the deep cut needs training's pause"
    );
    assert!(paused <= MAX_PAUSE, "{paused:?}");
}

/// A stricter alert takes over a dispatch while training is paused: the job stays
/// paused through the hand-over (no resume and re-pause) and the budget carries on.
#[tokio::test(start_paused = true)]
async fn a_stricter_take_over_keeps_the_pause_and_its_budget() {
    let f = facility();
    let (mut o, memory) = build(&f, rules());
    let signals = vec![dispatch("PDR-1", at(5), at(13), 12.5), alert(at(8), at(16))];
    let source = ReplaySource::from_signals(signals, f.clock()).unwrap();
    run_and_check(&f, &mut o, source, std::future::pending()).await;
    assert!(paused_total(&f, TRAIN) > Duration::ZERO);
    let records = memory.records().unwrap();
    assert!(
        records
            .iter()
            .any(|r| matches!(r.event, AuditEvent::TakenOver { .. }))
    );
}

/// A looser dispatch waits behind a price event and takes over at its window end,
/// from the fleet as it is.
#[tokio::test(start_paused = true)]
async fn a_waiting_obligation_takes_over_without_a_restore() {
    let f = facility();
    let (mut o, _) = build(&f, rules());
    let signals = vec![price(at(5), 950.0), dispatch("PDR-2", at(7), at(17), 12.5)];
    let source = ReplaySource::from_signals(signals, f.clock()).unwrap();
    run_and_check(&f, &mut o, source, std::future::pending()).await;
    let causes: Vec<String> = o.reports().iter().map(|r| r.cause.to_string()).collect();
    assert_eq!(causes.len(), 2, "{causes:?}");
    assert!(causes[1].starts_with("dispatch PDR-2"));
}

/// A chain of take-overs (price, then a stricter alert, then the waiting dispatch)
/// still spends one budget.
#[tokio::test(start_paused = true)]
async fn chains_of_take_overs_spend_one_budget() {
    let f = facility();
    let (mut o, _) = build(&f, rules());
    let signals = vec![
        dispatch("PDR-3", at(5), at(30), 12.5),
        price(at(6), 950.0),
        alert(at(9), at(14)),
    ];
    let source = ReplaySource::from_signals(signals, f.clock()).unwrap();
    run_and_check(&f, &mut o, source, std::future::pending()).await;
}

/// An unrelated, looser dispatch does not shorten the active one: it is an obligation
/// of its own and waits (here until its window is over).
#[tokio::test(start_paused = true)]
async fn an_unrelated_dispatch_does_not_cut_the_active_one_short() {
    let f = facility();
    let (mut o, _) = build(&f, rules());
    let signals = vec![
        dispatch("PDR-A", at(5), at(70), 20.0),
        dispatch("PDR-B", at(10), at(17), 24.0),
    ];
    let source = ReplaySource::from_signals(signals, f.clock()).unwrap();
    run_and_check(&f, &mut o, source, std::future::pending()).await;
    let reports = o.reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].cause.to_string().starts_with("dispatch PDR-A"));
    assert_eq!(reports[0].window.end(), at(70));
}

fn inject_at(
    f: &SimulatedFacility,
    gpu: usize,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> impl std::future::Future<Output = ()> {
    let gpu = f.fleet().gpu(gpu).unwrap().clone();
    let clock = f.clock();
    async move {
        clock.sleep_until(from).await;
        gpu.inject_fault(Some(ErrorKind::Transient));
        clock.sleep_until(to).await;
        gpu.inject_fault(None);
    }
}

/// A 2-second transient fault on a GPU of each pausable job right after a fast stage:
/// the failed resume is retried until it takes, instead of leaving the job paused for
/// the whole event.
#[tokio::test(start_paused = true)]
async fn a_transient_fault_at_a_stage_resume_is_retried() {
    let f = facility();
    let mut rules = rules();
    let mut rule = rules.price.clone().unwrap();
    // Fast response, moderate cap: extras are paused first, then resumed once caps settle.
    rule.response_time = TimeDelta::milliseconds(20);
    rule.facility_cap = kw(20.0);
    rule.min_hold = TimeDelta::minutes(15);
    rules.price = Some(rule);
    // Weights alone: the plan pauses the extras only until the caps settle (under the
    // class order the deferrable job would stay paused, and no resume would be hit).
    let mut options = OrchestratorOptions::default();
    options.priority = gridflex::orchestrator::Priority::Weights;
    let (mut o, memory) = build_with(&f, rules, options);
    let spike = at(5);
    let faults = async {
        let from = spike + TimeDelta::milliseconds(10);
        let to = from + TimeDelta::seconds(2);
        tokio::join!(inject_at(&f, 8, from, to), inject_at(&f, 32, from, to));
    };
    let source = ReplaySource::from_signals(vec![price(spike, 950.0)], f.clock()).unwrap();
    let (summary, ()) = tokio::join!(
        run_and_check(&f, &mut o, source, std::future::pending()),
        faults
    );
    assert_eq!(summary.events, 1);
    let records = memory.records().unwrap();
    let failed_resume = records.iter().any(|r| {
        matches!(
            &r.event,
            AuditEvent::Action {
                action: Action::Resume { .. },
                outcome: ActionOutcome::Failed { .. },
                ..
            }
        )
    });
    assert!(
        failed_resume,
        "the fault must hit a resume for this test to mean anything"
    );
    for job in [TRAIN, BATCH] {
        let paused = paused_total(&f, job);
        assert!(
            paused < Duration::from_secs(10),
            "job {job} paused {paused:?}"
        );
    }
}

/// A 12-second transient fault across the restore: the restore is retried until
/// confirmed, and never sends a curtailed level (no pause, no lower cap) after the
/// window end.
#[tokio::test(start_paused = true)]
async fn a_transient_fault_during_the_restore_is_retried_until_confirmed() {
    let f = facility();
    let (mut o, _) = build(&f, rules());
    let end = at(10);
    let source = ReplaySource::from_signals(vec![price(at(5), 950.0)], f.clock()).unwrap();
    let fault = inject_at(
        &f,
        8,
        end - TimeDelta::seconds(1),
        end + TimeDelta::seconds(12),
    );
    let (summary, ()) = tokio::join!(
        run_and_check(&f, &mut o, source, std::future::pending()),
        fault
    );
    assert_eq!(summary.events, 1);
    for g in f.fleet().iter() {
        let mut last = Power::ZERO;
        for (when, command) in g.history() {
            if when < end {
                if let SimCommand::Limit(l) = command {
                    last = l;
                }
                continue;
            }
            match command {
                SimCommand::Activity(a) => {
                    assert_ne!(a, SimActivity::Paused, "{} paused at {when}", g.info().id)
                }
                SimCommand::Limit(l) => {
                    assert!(l >= last, "{} sent {l} after {last} at {when}", g.info().id);
                    last = l;
                }
                _ => {}
            }
        }
    }
}

/// Windows at the end of representable time are refused without a panic, and a
/// dispatch to the year 2200 holds for `max_event` only.
#[tokio::test(start_paused = true)]
async fn windows_at_the_edges_of_time_are_bounded() {
    let f = facility();
    let (mut o, memory) = build(&f, rules());
    let clock = f.clock();
    let (tx, rx) = channel(8);
    let end_of_time = DateTime::<Utc>::MAX_UTC - TimeDelta::seconds(1);
    let feeder = async move {
        clock.sleep_until(at(1)).await;
        let far = DispatchEvent::new(
            "FAR",
            Program::CaisoPdr,
            at(1),
            EventWindow::new(end_of_time, None).unwrap(),
            DispatchTarget::CapAt { power: kw(20.0) },
            None,
        )
        .unwrap();
        let line = GridSignal::Dispatch(far).to_json_line().unwrap();
        tx.send(GridSignal::from_json_line(&line).unwrap())
            .await
            .unwrap();
        let reg = RegulationSample::new(
            end_of_time,
            RegulationKind::RegD,
            RegulationSignal::new(0.5).unwrap(),
        );
        tx.send(GridSignal::Regulation(reg)).await.unwrap();
        let until_2200 = Utc.with_ymd_and_hms(2200, 1, 1, 0, 0, 0).unwrap();
        tx.send(dispatch("LONG", at(1), until_2200, 20.0))
            .await
            .unwrap();
    };
    let (summary, ()) = tokio::join!(
        run_and_check(&f, &mut o, rx, std::future::pending()),
        feeder
    );
    assert_eq!(summary.refused, 2);
    let records = memory.records().unwrap();
    let out_of_range = records
        .iter()
        .filter(|r| {
            matches!(
                &r.event,
                AuditEvent::Refused {
                    refusal: Refusal::WindowOutOfRange { .. }
                }
            )
        })
        .count();
    assert_eq!(out_of_range, 2);
    assert_eq!(o.reports().len(), 1);
    assert_eq!(o.reports()[0].window.duration(), o_max_event());
}

fn o_max_event() -> TimeDelta {
    rules().max_event
}

/// An error from the source (a poller's HTTP 500) is logged and reading goes on: the
/// next price is read and acted on.
#[tokio::test(start_paused = true)]
async fn a_source_error_does_not_close_intake() {
    let f = facility();
    let (mut o, memory) = build(&f, rules());
    let error = SignalError::Invalid {
        what: "poll",
        reason: "HTTP 500".into(),
    };
    let source = Scripted {
        items: VecDeque::from([(at(1), Err(error)), (at(5), Ok(price(at(5), 950.0)))]),
        clock: f.clock(),
        started: Arc::default(),
    };
    let summary = run_and_check(&f, &mut o, source, std::future::pending()).await;
    assert_eq!(summary.source_errors, 1);
    assert_eq!(summary.signals, 1);
    assert_eq!(summary.events, 1);
    let records = memory.records().unwrap();
    // The source's own error is kept in the record; the record itself is typed.
    assert!(records.iter().any(|r| matches!(
        &r.event,
        AuditEvent::SourceFailed { consecutive: 1, error, .. } if error.contains("HTTP 500")
    )));
}

/// A slow source (each read takes a minute, longer than the telemetry step) loses no
/// read to the timers: 13 reads for 12 prices and the end.
#[tokio::test(start_paused = true)]
async fn reads_in_flight_are_never_cancelled() {
    let f = facility();
    let (mut o, _) = build(&f, rules());
    let started = Arc::new(AtomicUsize::new(0));
    let source = Scripted {
        items: (0..12)
            .map(|k| (at(1 + k), Ok(price(at(1 + k), 100.0))))
            .collect(),
        clock: f.clock(),
        started: started.clone(),
    };
    let summary = run_and_check(&f, &mut o, source, std::future::pending()).await;
    assert_eq!(summary.signals, 12);
    assert_eq!(started.load(Ordering::SeqCst), 13);
}

/// A permanent fault keeps its job unconfirmed: the run still ends (after the grace
/// period of retries), says so in the audit, and everything else is restored.
#[tokio::test(start_paused = true)]
async fn a_permanent_fault_is_reported_after_the_grace_period() {
    let f = facility();
    let (mut o, memory) = build(&f, rules());
    let bad = f.fleet().gpu(8).unwrap().clone();
    let source = ReplaySource::from_signals(vec![price(at(5), 950.0)], f.clock()).unwrap();
    let clock = f.clock();
    let fault = async {
        clock.sleep_until(at(7)).await;
        bad.inject_fault(Some(ErrorKind::DeviceLost));
    };
    let (summary, ()) = tokio::join!(o.run(source, std::future::pending()), fault);
    summary.unwrap();
    assert_eq!(o.curtailed_jobs().len(), 1);
    assert_eq!(o.curtailed_jobs()[0].as_str(), "train");
    for g in f.fleet().iter().filter(|g| g.info().id != bad.info().id) {
        let job_of_bad = f.jobs()[TRAIN]
            .1
            .gpus()
            .iter()
            .any(|x| x.info().id == g.info().id);
        if !job_of_bad {
            assert_eq!(g.requested_limit(), g.info().limit_at_discovery);
            assert_eq!(g.activity(), SimActivity::Running);
        }
    }
    let records = memory.records().unwrap();
    assert!(records.iter().any(
        |r| matches!(&r.event, AuditEvent::RestoreIncomplete { jobs, .. } if !jobs.is_empty())
    ));
}

/// An orchestrator of `f` with the serving job pinned by the integrator.
fn with_serve_pinned(f: &SimulatedFacility) -> Orchestrator<TokioClock> {
    with_pinned(f, rules(), AuditLog::memory().0, Some(SERVE))
}

/// An orchestrator over the whole facility with `rules`, job `pinned` pinned.
fn with_pinned(
    f: &SimulatedFacility,
    rules: ProgramRules,
    audit: AuditLog,
    pinned: Option<usize>,
) -> Orchestrator<TokioClock> {
    let mut builder = Orchestrator::builder(f.clock())
        .devices(
            f.fleet()
                .iter()
                .cloned()
                .map(gridflex::inventory::DeviceHandle::with_samples),
        )
        .facility(FacilityModel::new(kw(1.0), 1.0).unwrap())
        .rules(rules)
        .audit(audit);
    for (k, (entry, job)) in f.jobs().iter().enumerate() {
        let mut entry = entry.clone();
        entry.pinned = Some(k) == pinned;
        let control: Arc<dyn gridflex::hal::WorkloadControl> = job.clone();
        builder = builder.job(entry, Some(control));
    }
    builder.build().unwrap()
}

/// A job whose GPUs never answer (every read and command fails) does not stop the rest
/// of the fleet from answering: it is left as it is, counted at its GPUs' limits, and
/// the others carry the price cap (read from the simulated GPUs).
#[tokio::test(start_paused = true)]
async fn a_job_that_never_answers_is_planned_around() {
    let f = facility();
    let (audit, memory) = AuditLog::memory();
    let mut o = with_pinned(&f, rules(), audit, None);
    for g in f.jobs()[SERVE].1.gpus() {
        g.inject_fault(Some(ErrorKind::Transient));
    }
    serve_untouched_under_the_price_cap(&f, &mut o).await;
    let records = memory.records().unwrap();
    assert!(
        !records
            .iter()
            .any(|r| matches!(&r.event, AuditEvent::PlanFailed { .. })),
        "a plan was made"
    );
}

/// A job that cannot be read counts in the reduction a signal asks for: a price cap
/// that truly asks for more than the site enrolled is refused, though the load the
/// sweep could read alone would be within it (read from the simulated GPUs).
#[tokio::test(start_paused = true)]
async fn a_job_that_cannot_be_read_counts_in_the_reduction_a_signal_asks_for() {
    let f = facility();
    let clock = f.clock();
    // What the facility draws once its workloads run, read from the GPUs.
    clock.sleep_until(at(4)).await;
    let truth = kw(1.0) + f.fleet().true_power_total();
    let serve: Power = f.jobs()[SERVE]
        .1
        .gpus()
        .iter()
        .map(|g| g.true_power())
        .sum();
    let mut rules = rules();
    let cap = rules.price.as_ref().unwrap().facility_cap;
    // Enrolled for 1 kW less than the cap truly asks for, and for more than it asks
    // when the serving job is left out.
    rules.enrolled_reduction = truth - cap - kw(1.0);
    assert!(truth - serve - cap < rules.enrolled_reduction);
    let (audit, memory) = AuditLog::memory();
    let mut o = with_pinned(&f, rules, audit, Some(SERVE));
    for g in f.jobs()[SERVE].1.gpus() {
        g.inject_fault(Some(ErrorKind::Transient));
    }
    let source = ReplaySource::from_signals(vec![price(at(5), 950.0)], clock).unwrap();
    let summary = o.run(source, std::future::pending::<()>()).await.unwrap();
    assert_eq!(summary.refused, 1, "{summary:?}");
    let records = memory.records().unwrap();
    assert!(records.iter().any(|r| matches!(
        &r.event,
        AuditEvent::Refused {
            refusal: Refusal::BeyondEnrolled { .. }
        }
    )));
    for g in f.fleet().iter() {
        assert!(g.history().is_empty(), "{} was commanded", g.info().id);
    }
}

/// A pinned job is never commanded: its GPUs receive no command at all while the rest
/// of the fleet answers a deep cut, and the plan counts its draw as fixed load.
#[tokio::test(start_paused = true)]
async fn a_pinned_job_is_never_touched() {
    let f = facility();
    let mut o = with_serve_pinned(&f);
    let source = ReplaySource::from_signals(vec![price(at(5), 950.0)], f.clock()).unwrap();
    run_and_check(&f, &mut o, source, std::future::pending()).await;
    for g in f.jobs()[SERVE].1.gpus() {
        assert!(g.history().is_empty(), "{} was commanded", g.info().id);
    }
    assert!(paused_total(&f, TRAIN) > Duration::ZERO);
}

/// A pinned job whose GPUs cannot be read counts at the most they may draw, not at
/// nothing: the price rule's facility cap holds on the hardware (the simulated GPUs'
/// true power plus the facility's fixed load), with the pinned job still untouched.
#[tokio::test(start_paused = true)]
async fn a_pinned_job_that_cannot_be_read_counts_at_its_limits() {
    let f = facility();
    let mut o = with_serve_pinned(&f);
    for g in f.jobs()[SERVE].1.gpus() {
        g.inject_fault(Some(ErrorKind::Transient));
    }
    serve_untouched_under_the_price_cap(&f, &mut o).await;
}

/// Runs a 950 $/MWh price from minute 5 and checks, two minutes in (every cap
/// settled), that the facility's true power is under the price cap and that the
/// serving job's GPUs were never commanded.
async fn serve_untouched_under_the_price_cap(
    f: &SimulatedFacility,
    o: &mut Orchestrator<TokioClock>,
) {
    let source = ReplaySource::from_signals(vec![price(at(5), 950.0)], f.clock()).unwrap();
    let facility_at = Arc::new(std::sync::Mutex::new(None));
    let seen = facility_at.clone();
    let clock = f.clock();
    let fleet = f.fleet();
    let check = async move {
        clock.sleep_until(at(7)).await;
        *seen.lock().unwrap() = Some(kw(1.0) + fleet.true_power_total());
    };
    o.run(source, check).await.unwrap();
    let at_7 = facility_at
        .lock()
        .unwrap()
        .expect("the run lasted past the check");
    let cap = rules().price.unwrap().facility_cap;
    assert!(at_7 <= cap, "the facility drew {at_7} under a {cap} cap");
    for g in f.jobs()[SERVE].1.gpus() {
        assert!(g.history().is_empty(), "{} was commanded", g.info().id);
    }
}
