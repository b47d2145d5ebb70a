//! The orchestrator as a service, driven through its live handle: jobs that arrive and
//! leave mid-stage and mid-restore, an operator's end, shutdowns with commands in
//! flight, and every handle dropped. The promise is checked from the simulated
//! hardware (each GPU's limit, activity and reported throughput), not from what the
//! orchestrator says.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use gridflex::audit::{AuditEvent, AuditLog, MemoryLog, Replan, RestoreReason};
use gridflex::hal::sim::{SimActivity, SimJob};
use gridflex::hal::{HalError, WorkloadState};
use gridflex::orchestrator::{JobRemoval, OrchestratorHandle, OutsideRestore};
use gridflex::prelude::*;
use gridflex::signals::source::channel;
use gridflex::simulated::SimulatedFacility;

/// An orchestrator on the safety tests' facility with only `jobs` registered (every
/// GPU is; the others' GPUs count as facility load until their job is added).
fn build(
    f: &SimulatedFacility,
    clock: &TokioClock,
    jobs: &[usize],
) -> (Orchestrator<TokioClock>, MemoryLog) {
    build_with(f, clock, jobs, rules())
}

fn build_with(
    f: &SimulatedFacility,
    clock: &TokioClock,
    jobs: &[usize],
    rules: ProgramRules,
) -> (Orchestrator<TokioClock>, MemoryLog) {
    let (audit, memory) = AuditLog::memory();
    let mut b = Orchestrator::builder(clock.clone())
        .devices(f.fleet().iter().cloned().map(DeviceHandle::with_samples))
        .facility(FacilityModel::new(kw(1.0), 1.0).unwrap())
        .rules(rules)
        .audit(audit);
    for &j in jobs {
        let (entry, job) = &f.jobs()[j];
        let control: Arc<dyn WorkloadControl> = job.clone();
        b = b.job(entry.clone(), Some(control));
    }
    (b.build().unwrap(), memory)
}

/// Facility power as the simulated GPUs draw it (1 kW fixed load, multiplier 1).
fn hw_power(f: &SimulatedFacility) -> Power {
    kw(1.0) + f.fleet().iter().map(|g| g.true_power()).sum::<Power>()
}

/// True when every GPU of job `j` is at its discovery limit and running.
fn job_given_back(f: &SimulatedFacility, j: usize) -> bool {
    f.jobs()[j].1.gpus().iter().all(|g| {
        g.requested_limit() == g.info().limit_at_discovery && g.activity() == SimActivity::Running
    })
}

/// True when some GPU of job `j` is capped below its discovery limit or paused.
fn job_curtailed(f: &SimulatedFacility, j: usize) -> bool {
    f.jobs()[j].1.gpus().iter().any(|g| {
        g.requested_limit() < g.info().limit_at_discovery || g.activity() == SimActivity::Paused
    })
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Lets the telemetry sweeps learn every job's settled draw (5 min), then sends an
/// 18 kW dispatch "d1" lasting `minutes` from now; it must actuate.
async fn dispatch_after_sweeps(handle: &OrchestratorHandle, clock: &TokioClock, minutes: i64) {
    dispatch_at_cap(handle, clock, minutes, 18.0).await;
}

/// [`dispatch_after_sweeps`] with a cap of `cap_kw`.
async fn dispatch_at_cap(
    handle: &OrchestratorHandle,
    clock: &TokioClock,
    minutes: i64,
    cap_kw: f64,
) {
    sleep_ms(5 * 60_000).await;
    let start = clock.now();
    let handled = handle
        .signal(dispatch(
            "d1",
            start,
            start + chrono::TimeDelta::minutes(minutes),
            cap_kw,
        ))
        .await
        .unwrap();
    assert!(matches!(handled, Handled::Actuated { .. }), "{handled:?}");
}

/// Moves the simulator to the present: reading the orchestrator's clock drives it.
fn settle(clock: &TokioClock) {
    let _ = clock.now();
}

#[tokio::test(start_paused = true)]
async fn jobs_arrive_mid_stage_and_leave_mid_event_and_the_promise_holds() {
    let f = facility();
    let clock = f.clock();
    let (o, memory) = build(&f, &clock, &[SERVE, TRAIN]);
    let (_tx, source) = channel(4);
    let (handle, task) = o.spawn(source);
    let monitor = FloorMonitor::default();
    let watch = monitor.watch(&f, &[SERVE], clock.clone(), Duration::from_millis(250));
    let scenario = async {
        // Telemetry sweeps learn every job's settled draw first.
        dispatch_after_sweeps(&handle, &clock, 20).await;
        // Mid-stage: the first stage is out, the later ones are scheduled.
        sleep_ms(20).await;
        let status = handle.status().await.unwrap();
        assert!(status.active.is_some());
        assert_eq!(status.jobs, 2);
        assert!(
            !job_curtailed(&f, BATCH),
            "batch is not in the inventory yet"
        );
        let (entry, job) = &f.jobs()[BATCH];
        let control: Arc<dyn WorkloadControl> = job.clone();
        handle.add_job(entry.clone(), Some(control)).await.unwrap();
        // Re-planned with it: once settled, the facility is under the cap again.
        sleep_ms(120_000).await;
        settle(&clock);
        assert!(
            hw_power(&f) <= kw(18.0) + kw(0.2),
            "facility at {} with the new job planned in",
            hw_power(&f)
        );
        // The training job ends mid-event: it is given back at once and leaves.
        let removal = handle
            .remove_job(JobId::new("train").unwrap())
            .await
            .unwrap();
        assert_eq!(removal, JobRemoval::Removed);
        settle(&clock);
        assert!(
            job_given_back(&f, TRAIN),
            "a removed job is never left curtailed"
        );
        let status = handle.status().await.unwrap();
        assert_eq!(status.jobs, 2);
        assert!(status.curtailed.iter().all(|j| j.job.as_str() != "train"));
        // Through the end of the event and its restore.
        sleep_ms(30 * 60_000).await;
        settle(&clock);
        fully_restored(&f).unwrap();
        assert!(
            job_given_back(&f, TRAIN),
            "nothing commands a job that has left"
        );
        let reports = handle.take_reports().await.unwrap();
        assert_eq!(reports.len(), 1);
        assert!(handle.shutdown().await.unwrap().is_empty());
    };
    tokio::select! {
        () = scenario => {}
        () = watch => unreachable!(),
    }
    let summary = task.await.unwrap().unwrap();
    assert_eq!(summary.events, 1);
    assert!(
        monitor.lowest(SERVE) >= FLOOR - 1e-9,
        "{}",
        monitor.lowest(SERVE)
    );
    let records = memory.records().unwrap();
    let replans: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.event {
            AuditEvent::Replanned { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert!(
        replans
            .iter()
            .any(|r| matches!(r, Replan::JobAdded { job } if job.as_str() == "batch"))
    );
    assert!(
        replans
            .iter()
            .any(|r| matches!(r, Replan::JobRemoved { job } if job.as_str() == "train"))
    );
    assert!(
        records
            .iter()
            .any(|r| matches!(&r.event, AuditEvent::JobRemoved { job } if job.as_str() == "train"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_removed_mid_restore_is_given_back_and_an_operator_ends_the_next_event() {
    let f = facility();
    let clock = f.clock();
    // A slow restore ramp (1 kW/s), so that the restore takes several seconds.
    let mut slow = rules();
    slow.restore_ramp_per_s = kw(1.0);
    let (o, memory) = build_with(&f, &clock, &[SERVE, TRAIN, BATCH], slow);
    let (_tx, source) = channel(4);
    let (handle, task) = o.spawn(source);
    // Telemetry sweeps learn every job's settled draw first.
    dispatch_after_sweeps(&handle, &clock, 10).await;
    // Into the restore (the window ends at 10 min; the ramp staggers the restore).
    sleep_ms(10 * 60_000 + 2_000).await;
    let status = handle.status().await.unwrap();
    let active = status.active.expect("the event is restoring");
    assert!(active.restoring);
    assert!(!status.curtailed.is_empty(), "the restore is staggered");
    let still = status.curtailed[status.curtailed.len() - 1].job.clone();
    let j = f.jobs().iter().position(|(e, _)| e.id == still).unwrap();
    assert_eq!(handle.remove_job(still).await.unwrap(), JobRemoval::Removed);
    settle(&clock);
    assert!(job_given_back(&f, j));
    sleep_ms(10 * 60_000).await;
    settle(&clock);
    fully_restored(&f).unwrap();

    // A second event, ended by an operator: everything back at once.
    let start = clock.now();
    handle
        .signal(dispatch(
            "d2",
            start,
            start + chrono::TimeDelta::hours(2),
            18.0,
        ))
        .await
        .unwrap();
    sleep_ms(60_000).await;
    settle(&clock);
    // Curtailed (as deep as the jobs left in the inventory allow).
    assert!(hw_power(&f) < kw(23.0), "{}", hw_power(&f));
    assert_eq!(handle.end_event().await.unwrap(), Some(2));
    settle(&clock);
    fully_restored(&f).unwrap();
    assert!(handle.status().await.unwrap().active.is_none());
    assert!(
        handle.end_event().await.unwrap().is_none(),
        "nothing is active"
    );
    assert!(handle.shutdown().await.unwrap().is_empty());
    task.await.unwrap().unwrap();
    let records = memory.records().unwrap();
    assert!(records.iter().any(|r| matches!(
        r.event,
        AuditEvent::Restore {
            event_id: 2,
            reason: RestoreReason::Operator
        }
    )));
}

/// A workload control whose pause takes `delay` before it acts (a slow scheduler).
struct Slow {
    job: Arc<SimJob>,
    delay: Duration,
}

#[async_trait]
impl WorkloadControl for Slow {
    fn job(&self) -> &JobId {
        self.job.job()
    }
    async fn pause(&self) -> Result<(), HalError> {
        tokio::time::sleep(self.delay).await;
        self.job.pause().await
    }
    async fn resume(&self) -> Result<(), HalError> {
        self.job.resume().await
    }
    async fn status(&self) -> Result<WorkloadState, HalError> {
        self.job.status().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_while_commands_are_in_flight_restores_everything() {
    let f = facility();
    let clock = f.clock();
    let (audit, memory) = AuditLog::memory();
    let mut b = Orchestrator::builder(clock.clone())
        .devices(f.fleet().iter().cloned().map(DeviceHandle::with_samples))
        .facility(FacilityModel::new(kw(1.0), 1.0).unwrap())
        .rules(rules())
        .audit(audit);
    for (entry, job) in f.jobs() {
        let control: Arc<dyn WorkloadControl> = Arc::new(Slow {
            job: job.clone(),
            delay: Duration::from_secs(3),
        });
        b = b.job(entry.clone(), Some(control));
    }
    let (handle, task) = b.build().unwrap().spawn(channel(4).1);
    // Telemetry sweeps learn every job's settled draw first.
    sleep_ms(5 * 60_000).await;
    let start = clock.now();
    // A deep cut pauses jobs; their pauses are still in flight when the shutdown comes.
    let signal = handle.signal(dispatch(
        "d1",
        start,
        start + chrono::TimeDelta::hours(1),
        8.0,
    ));
    let stop = async {
        sleep_ms(500).await;
        handle.shutdown().await
    };
    let (handled, left) = tokio::join!(signal, stop);
    assert!(matches!(handled.unwrap(), Handled::Actuated { .. }));
    let paused = memory.records().unwrap().iter().any(|r| {
        matches!(
            &r.event,
            AuditEvent::Action {
                action: gridflex::planner::Action::Pause { .. },
                ..
            }
        )
    });
    assert!(paused, "the cut needs pauses, which were in flight");
    assert!(left.unwrap().is_empty(), "every job confirmed restored");
    settle(&clock);
    fully_restored(&f).unwrap();
    task.await.unwrap().unwrap();
    // Nothing is left for a late command to undo.
    sleep_ms(60_000).await;
    settle(&clock);
    fully_restored(&f).unwrap();
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_stops_the_service_restored_and_a_source_that_ends_does_not() {
    let f = facility();
    let clock = f.clock();
    let (o, memory) = build(&f, &clock, &[SERVE, TRAIN, BATCH]);
    let (tx, source) = channel(4);
    let (handle, task): (OrchestratorHandle, _) = o.spawn(source);
    let other = handle.clone();
    // Telemetry sweeps learn every job's settled draw first.
    sleep_ms(5 * 60_000).await;
    let start = clock.now();
    tx.send(dispatch(
        "d1",
        start,
        start + chrono::TimeDelta::hours(1),
        18.0,
    ))
    .await
    .unwrap();
    drop(tx); // the source ends: the service goes on
    sleep_ms(60_000).await;
    let status = other.status().await.unwrap();
    assert!(status.active.is_some());
    settle(&clock);
    assert!(hw_power(&f) < kw(18.5), "{}", hw_power(&f));
    drop(handle);
    drop(other);
    let summary = task.await.unwrap().unwrap();
    assert_eq!(summary.signals, 1);
    settle(&clock);
    fully_restored(&f).unwrap();
    let records = memory.records().unwrap();
    assert!(
        records
            .iter()
            .any(|r| matches!(r.event, AuditEvent::SourceEnded))
    );
    assert!(records.iter().any(|r| matches!(
        r.event,
        AuditEvent::Stopped {
            reason: gridflex::audit::StopReason::HandlesDropped,
            ..
        }
    )));
}

#[tokio::test(start_paused = true)]
async fn orders_the_inventory_cannot_take_are_refused_with_typed_errors() {
    let f = facility();
    let clock = f.clock();
    let (o, _memory) = build(&f, &clock, &[SERVE, TRAIN]);
    let (handle, task) = o.spawn(channel(1).1);
    let (train, _) = &f.jobs()[TRAIN];
    let err = handle.add_job(train.clone(), None).await.unwrap_err();
    assert!(matches!(err, GridflexError::Invalid { .. }), "{err}");
    let err = handle
        .remove_job(JobId::new("nope").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, GridflexError::UnknownJob { .. }), "{err}");
    let gpu = f.jobs()[SERVE].0.devices[0].clone();
    let err = handle.remove_device(gpu).await.unwrap_err();
    assert!(matches!(err, GridflexError::Invalid { .. }), "{err}");
    // Moving a job to other devices is a remove and an add, not an update.
    let mut moved = train.clone();
    moved.devices.pop();
    let err = handle.update_job(moved).await.unwrap_err();
    assert!(matches!(err, GridflexError::Invalid { .. }), "{err}");
    // A device no job uses can leave.
    let spare = f.jobs()[BATCH].0.devices[0].clone();
    handle.remove_device(spare).await.unwrap();
    assert_eq!(handle.status().await.unwrap().devices, 39);
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
    assert!(matches!(
        handle.status().await.unwrap_err(),
        GridflexError::Stopped
    ));
}

/// An orchestrator over the whole facility with `options` that takes restores made
/// outside it.
fn build_outside(
    f: &SimulatedFacility,
    clock: &TokioClock,
    options: OrchestratorOptions,
) -> (
    Orchestrator<TokioClock>,
    MemoryLog,
    tokio::sync::mpsc::Sender<OutsideRestore>,
) {
    let (audit, memory) = AuditLog::memory();
    let (restores, outside) = tokio::sync::mpsc::channel(8);
    let mut b = Orchestrator::builder(clock.clone())
        .options(options)
        .devices(f.fleet().iter().cloned().map(DeviceHandle::with_samples))
        .facility(FacilityModel::new(kw(1.0), 1.0).unwrap())
        .rules(rules())
        .audit(audit)
        .outside_restores(outside);
    for (entry, job) in f.jobs() {
        let control: Arc<dyn WorkloadControl> = job.clone();
        b = b.job(entry.clone(), Some(control));
    }
    (b.build().unwrap(), memory, restores)
}

/// The orchestrator's view of job `id` agrees with its GPUs: held curtailed, in a known
/// state, each GPU at the cap and activity the orchestrator holds.
async fn held_as_the_hardware_holds(handle: &OrchestratorHandle, id: &JobId, job: &SimJob) {
    let status = handle.status().await.unwrap();
    let held = status
        .curtailed
        .iter()
        .find(|s| s.job == *id)
        .expect("the job is held curtailed");
    assert!(!held.unknown);
    for g in job.gpus() {
        let cap = held.cap_per_gpu.unwrap_or(g.info().limit_at_discovery);
        assert_eq!(g.requested_limit(), cap);
        assert_eq!(g.activity() == SimActivity::Paused, held.paused);
    }
}

#[tokio::test(start_paused = true)]
async fn a_presumed_restore_of_an_unreachable_job_is_carried_by_the_rest_of_the_fleet() {
    let f = facility();
    let clock = f.clock();
    let mut options = OrchestratorOptions::default();
    options.telemetry_step = chrono::TimeDelta::seconds(2);
    let (o, memory, restores) = build_outside(&f, &clock, options);
    let (_tx, source) = channel(4);
    let (handle, task) = o.spawn(source);
    // A 22 kW cap: with the batch job running free, the others can still carry it.
    dispatch_at_cap(&handle, &clock, 30, 22.0).await;
    sleep_ms(120_000).await;
    settle(&clock);
    assert!(hw_power(&f) <= kw(22.0) + kw(0.2), "{}", hw_power(&f));
    // The batch job's node is cut off and its agent, its lease run out, gives the job
    // back: the GPUs run free and nothing can reach them (every read and command
    // fails).
    let j = BATCH;
    assert!(job_curtailed(&f, j));
    let (entry, job) = &f.jobs()[j];
    for g in job.gpus() {
        g.restore_power_limit().await.unwrap();
    }
    job.resume().await.unwrap();
    for g in job.gpus() {
        g.inject_fault(Some(gridflex::hal::ErrorKind::Transient));
    }
    sleep_ms(2_000).await;
    settle(&clock);
    assert!(hw_power(&f) > kw(22.0) + kw(0.2), "the lapse broke the cap");
    // The agent's client presumes the restore (no answer before the lease could run
    // out): the orchestrator plans the job at its free-running draw and the rest of
    // the fleet carries the cap, while the job still cannot be reached.
    let devices: Vec<DeviceId> = job.gpus().iter().map(|g| g.id().clone()).collect();
    let presumed = OutsideRestore::presumed(
        devices,
        vec![entry.id.clone()],
        "node n01: no answer before its lease could run out",
    );
    restores.send(presumed).await.unwrap();
    sleep_ms(60_000).await;
    settle(&clock);
    assert!(job_given_back(&f, j), "nothing reached the cut-off job");
    assert!(
        hw_power(&f) <= kw(22.0) + kw(0.2),
        "the rest of the fleet carries the cap: {}",
        hw_power(&f)
    );
    let status = handle.status().await.unwrap();
    let held = status.curtailed.iter().find(|s| s.job == entry.id);
    assert!(
        held.is_some_and(|s| s.unknown),
        "the job is held unknown, not curtailed: {held:?}"
    );
    // Cut off for a while: the retries back off (to 30 s apart).
    sleep_ms(200_000).await;
    settle(&clock);
    assert!(job_given_back(&f, j));
    // The network heals: the next telemetry sweep reads the job's GPUs again, so it is
    // retried at once (not at the end of its back-off), its level confirmed, and the
    // event planned again over the whole fleet, the job curtailed again.
    for g in job.gpus() {
        g.inject_fault(None);
    }
    sleep_ms(5_000).await;
    settle(&clock);
    assert!(
        job_curtailed(&f, j),
        "the job is curtailed again within a sweep of the heal"
    );
    sleep_ms(120_000).await;
    settle(&clock);
    assert!(hw_power(&f) <= kw(22.0) + kw(0.2), "{}", hw_power(&f));
    held_as_the_hardware_holds(&handle, &entry.id, job).await;
    assert!(handle.shutdown().await.unwrap().is_empty());
    task.await.unwrap().unwrap();
    fully_restored(&f).unwrap();
    let records = memory.records().unwrap();
    assert!(records.iter().any(|r| matches!(&r.event,
        AuditEvent::RestoredOutside { confirming, presumed: true, .. }
            if confirming == std::slice::from_ref(&entry.id))));
    assert!(records.iter().any(|r| matches!(&r.event,
        AuditEvent::Replanned { reason: Replan::PresumedRestored { jobs }, .. }
            if jobs == std::slice::from_ref(&entry.id))));
    assert!(records.iter().any(|r| matches!(&r.event,
        AuditEvent::Replanned { reason: Replan::JobBack { job }, .. } if *job == entry.id)));
}

#[tokio::test(start_paused = true)]
async fn a_restore_outside_the_orchestrator_is_confirmed_and_the_job_curtailed_again() {
    let f = facility();
    let clock = f.clock();
    let (o, memory, restores) = build_outside(&f, &clock, OrchestratorOptions::default());
    let (_tx, source) = channel(4);
    let (handle, task) = o.spawn(source);
    dispatch_after_sweeps(&handle, &clock, 30).await;
    sleep_ms(120_000).await;
    settle(&clock);
    assert!(hw_power(&f) <= kw(18.0) + kw(0.2), "{}", hw_power(&f));
    // The most curtailed job's node "lapses": something other than the orchestrator
    // gives its GPUs back and resumes it, as an agent does when its lease runs out.
    let j = [TRAIN, BATCH]
        .into_iter()
        .find(|&j| job_curtailed(&f, j))
        .expect("a job is curtailed");
    let (entry, job) = &f.jobs()[j];
    for g in job.gpus() {
        g.restore_power_limit().await.unwrap();
    }
    job.resume().await.unwrap();
    sleep_ms(2_000).await;
    settle(&clock);
    assert!(job_given_back(&f, j));
    assert!(hw_power(&f) > kw(18.0) + kw(0.2), "the lapse broke the cap");
    // The orchestrator does not know yet: it still holds the job curtailed.
    let status = handle.status().await.unwrap();
    assert!(status.curtailed.iter().any(|s| s.job == entry.id));
    // A report naming what it does not know is refused whole.
    let bad = OutsideRestore::new(
        vec![DeviceId::new("no-such-gpu").unwrap()],
        vec![entry.id.clone()],
        "bad report",
    );
    assert!(handle.restored_outside(bad).await.is_err());
    // The report arrives: the restore is confirmed on the hardware and the event
    // re-planned over the fleet as it is; the job is curtailed again within the
    // dispatch's response time.
    let devices = job.gpus().iter().map(|g| g.id().clone()).collect();
    let report = OutsideRestore::new(devices, vec![entry.id.clone()], "node n01: lease expired");
    restores.send(report).await.unwrap();
    sleep_ms(120_000).await;
    settle(&clock);
    assert!(job_curtailed(&f, j), "the job is curtailed again");
    assert!(
        hw_power(&f) <= kw(18.0) + kw(0.2),
        "the cap holds again: {}",
        hw_power(&f)
    );
    // The orchestrator's view agrees with the hardware.
    held_as_the_hardware_holds(&handle, &entry.id, job).await;
    assert!(handle.shutdown().await.unwrap().is_empty());
    task.await.unwrap().unwrap();
    fully_restored(&f).unwrap();
    let records = memory.records().unwrap();
    assert!(records.iter().any(|r| matches!(&r.event,
        AuditEvent::RestoredOutside { confirming, .. } if confirming == std::slice::from_ref(&entry.id))));
    assert!(records.iter().any(|r| matches!(&r.event,
        AuditEvent::Replanned { reason: Replan::RestoredOutside { jobs }, .. } if jobs == std::slice::from_ref(&entry.id))));
    assert!(
        !records
            .iter()
            .any(|r| matches!(&r.event, AuditEvent::OutsideRestoreRefused { .. })),
        "a refusal through the handle is returned, not audited"
    );
}
