//! The safety promise as a property, in the style of deterministic simulation testing:
//! random signal sequences (extensions, overlapping events of every kind, windows in the
//! far past and at the end of time), transient and permanent device faults at random
//! instants (mid-stage, mid-restore), source errors, and a shutdown at any point. After
//! each run the simulated hardware's own record is checked: no flexible job paused
//! longer than its budget in one episode, the critical job never below its floor, the
//! deferrable job running by its deadline, every GPU and job back at its pre-event
//! level, and an audit log without gaps. A failing case replays exactly from its seed.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use gridflex::OrchestratorOptions;
use gridflex::audit::AuditLog;
use gridflex::hal::ErrorKind;
use gridflex::prelude::*;
use gridflex::signals::{
    DispatchEvent, DispatchTarget, EventWindow, Program, RegulationKind, RegulationSample,
    RegulationSignal, SignalError,
};
use proptest::prelude::*;

/// Most GPU time a retry can add after a fault clears (the test's `retry_max`).
const RETRY_MAX: Duration = Duration::from_secs(5);

/// One random input: a signal (by kind), a source error, or a fault.
#[derive(Debug, Clone)]
enum Input {
    Signal {
        kind: u8,
        minute: i64,
        x: f64,
    },
    SourceError {
        minute: i64,
    },
    Fault {
        gpu: usize,
        at_ms: i64,
        seconds: u64,
    },
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        6 => (any::<u8>(), 0i64..90, 0.0f64..1.0).prop_map(|(kind, minute, x)| Input::Signal { kind, minute, x }),
        1 => (0i64..90).prop_map(|minute| Input::SourceError { minute }),
        2 => (0usize..40, 0i64..100 * 60_000, 1u64..40).prop_map(|(gpu, at_ms, seconds)| Input::Fault { gpu, at_ms, seconds }),
    ]
}

fn signal(kind: u8, minute: i64, x: f64) -> GridSignal {
    let start = at(minute);
    match kind % 8 {
        0 | 1 => price(start, -50.0 + 1500.0 * x),
        2 => {
            let id = if x < 0.5 { "PDR-A" } else { "PDR-B" };
            dispatch(
                id,
                start,
                start + TimeDelta::minutes(3 + (x * 40.0) as i64),
                11.0 + 14.0 * x,
            )
        }
        3 => alert(start, start + TimeDelta::minutes(2 + (x * 30.0) as i64)),
        4 => {
            // Far past (refused), or open at the end of time (refused), or far ahead
            // (bounded by max_event).
            let window = if x < 0.33 {
                EventWindow::new(
                    start - TimeDelta::days(400),
                    Some(start - TimeDelta::days(399)),
                )
            } else if x < 0.66 {
                EventWindow::new(DateTime::<Utc>::MAX_UTC - TimeDelta::seconds(1), None)
            } else {
                EventWindow::new(start, Some(start + TimeDelta::days(365 * 150)))
            };
            GridSignal::Dispatch(
                DispatchEvent::new(
                    "EDGE",
                    Program::CaisoPdr,
                    start,
                    window.unwrap(),
                    DispatchTarget::CapAt { power: kw(18.0) },
                    None,
                )
                .unwrap(),
            )
        }
        _ => GridSignal::Regulation(RegulationSample::new(
            start,
            RegulationKind::RegD,
            RegulationSignal::new(2.0 * x - 1.0).unwrap(),
        )),
    }
}

fn overrun(faulted: Duration) -> Duration {
    if faulted.is_zero() {
        Duration::ZERO
    } else {
        faulted + RETRY_MAX
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn the_promise_holds_on_the_hardware(
        inputs in prop::collection::vec(input(), 1..14),
        permanent in prop::option::weighted(0.25, (0usize..40, 0i64..90)),
        shutdown in prop::option::weighted(0.3, 1i64..150),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        let result: Result<(), TestCaseError> = runtime.block_on(async {
            let deadline = at(60);
            let f = facility_until(deadline);
            let clock = f.clock();
            let (audit, memory) = AuditLog::memory();
            let mut rules = rules();
            rules.max_event = TimeDelta::minutes(40);
            let mut options = OrchestratorOptions::default();
            options.retry_max = TimeDelta::from_std(RETRY_MAX).unwrap();
            let mut o = f.orchestrator(clock.clone())
                .facility(FacilityModel::new(kw(1.0), 1.0).unwrap())
                .rules(rules)
                .options(options)
                .audit(audit)
                .build()
                .unwrap();
            // The source: signals and errors in time order.
            let mut items: Vec<(DateTime<Utc>, Result<GridSignal, SignalError>)> = Vec::new();
            let mut faults: Vec<(usize, DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
            for i in &inputs {
                match *i {
                    Input::Signal { kind, minute, x } => items.push((at(minute), Ok(signal(kind, minute, x)))),
                    Input::SourceError { minute } => items.push((at(minute), Err(SignalError::Invalid { what: "poll", reason: "HTTP 500".into() }))),
                    Input::Fault { gpu, at_ms, seconds } => {
                        let from = at(0) + TimeDelta::milliseconds(at_ms);
                        faults.push((gpu, from, Some(from + TimeDelta::seconds(seconds as i64))));
                    }
                }
            }
            if let Some((gpu, minute)) = permanent {
                faults.push((gpu, at(minute), None));
            }
            items.sort_by_key(|(t, _)| *t);
            let source = Scripted { items: VecDeque::from(items), clock: clock.clone(), started: Arc::default() };
            // Faults: each injected at its instant and cleared at its end (or never).
            let injector = {
                let clock = clock.clone();
                let gpus: Vec<_> = faults.iter().map(|(g, from, to)| (f.fleet().gpu(*g).unwrap().clone(), *from, *to)).collect();
                async move {
                    let mut steps: Vec<(DateTime<Utc>, usize, bool)> = Vec::new();
                    for (k, (_, from, to)) in gpus.iter().enumerate() {
                        steps.push((*from, k, true));
                        if let Some(to) = to { steps.push((*to, k, false)); }
                    }
                    steps.sort_by_key(|s| s.0);
                    for (when, k, on) in steps {
                        clock.sleep_until(when).await;
                        let kind = if gpus[k].2.is_none() { ErrorKind::DeviceLost } else { ErrorKind::Transient };
                        gpus[k].0.inject_fault(on.then_some(kind));
                    }
                    std::future::pending::<()>().await;
                }
            };
            let stop = {
                let clock = clock.clone();
                async move {
                    match shutdown {
                        Some(minute) => clock.sleep_until(at(minute)).await,
                        None => std::future::pending().await,
                    }
                }
            };
            let monitor = FloorMonitor::default();
            let watch = monitor.watch(&f, &[SERVE], clock.clone(), Duration::from_millis(500));
            let summary = tokio::select! {
                s = o.run(source, stop) => s,
                () = injector => unreachable!(),
                () = watch => unreachable!(),
            };
            prop_assert!(summary.is_ok(), "{summary:?}");
            let end = clock.now();

            // What each job's GPUs spent refusing commands (transient) or lost (permanent).
            let job_of = |gpu: usize| f.jobs().iter().position(|(_, j)| j.gpus().iter().any(|g| g.info().id == f.fleet().gpu(gpu).unwrap().info().id)).unwrap();
            let mut faulted = [Duration::ZERO; 3];
            let mut lost = [false; 3];
            for (g, from, to) in &faults {
                let j = job_of(*g);
                match to {
                    Some(to) => faulted[j] += (*to - *from).to_std().unwrap(),
                    None => lost[j] = true,
                }
            }
            prop_assert!(monitor.lowest(SERVE) >= FLOOR - 1e-9, "critical job at {}", monitor.lowest(SERVE));
            if !lost[TRAIN] {
                let worst = worst_pause_per_episode(&f, TRAIN, t0(), end);
                prop_assert!(worst <= MAX_PAUSE + overrun(faulted[TRAIN]), "train paused {worst:?} in one episode (faulted {:?})", faulted[TRAIN]);
            }
            if !lost[BATCH] {
                let late = deadline + TimeDelta::from_std(overrun(faulted[BATCH])).unwrap();
                let batch = job_trace(&f, BATCH, t0(), end);
                prop_assert!(batch.paused.iter().all(|&(_, e)| e <= late), "batch paused past its deadline: {:?}", batch.paused);
            }
            // Everything not lost is back at its pre-event level, from the hardware.
            for (j, (_, job)) in f.jobs().iter().enumerate() {
                if lost[j] { continue; }
                for g in job.gpus() {
                    prop_assert_eq!(g.requested_limit(), g.info().limit_at_discovery, "{} capped", g.info().id);
                    prop_assert_eq!(g.activity(), gridflex::hal::sim::SimActivity::Running, "{} not running", g.info().id);
                }
            }
            let left = o.curtailed_jobs();
            prop_assert!(left.iter().all(|id| lost[f.jobs().iter().position(|(e, _)| &e.id == id).unwrap()]), "{left:?}");
            // The audit log reads back whole, without gaps.
            let records = memory.records();
            prop_assert!(records.is_ok(), "{records:?}");
            Ok(())
        });
        result?;
    }
}
