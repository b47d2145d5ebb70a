//! The scheduling loop next to a live orchestrator: the orchestrator's active event is
//! an obligation, and a deferrable job that is part of the curtailment does not run
//! in it. Checked on the simulated GPUs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use common::*;
use gridflex::hal::sim::SimActivity;
use gridflex::planner::{DeferrableWork, SiteWork};
use gridflex::prelude::*;
use gridflex::scheduling::{DeferrableJob, Scheduler, SchedulerConfig};
use gridflex::signals::source::channel;

#[tokio::test(start_paused = true)]
async fn a_curtailment_holds_the_scheduled_job() {
    let f = facility();
    let clock = f.clock();
    let mut b = Orchestrator::builder(clock.clone())
        .devices(f.fleet().iter().cloned().map(DeviceHandle::with_samples))
        .facility(FacilityModel::new(kw(1.0), 1.0).unwrap())
        .rules(rules());
    for (entry, job) in f.jobs() {
        let control: Arc<dyn WorkloadControl> = job.clone();
        b = b.job(entry.clone(), Some(control));
    }
    let (_tx, source) = channel(4);
    let (orch, orch_task) = b.build().unwrap().spawn(source);

    let (batch_entry, batch) = &f.jobs()[BATCH];
    assert_eq!(batch_entry.id.as_str(), "batch");
    let prices = IntervalSeries::from_values(
        t0(),
        TimeDelta::minutes(5),
        (0..144).map(|_| Price::per_megawatt_hour(10.0).unwrap()),
    )
    .unwrap();
    let mut s = Scheduler::new(
        clock.clone(),
        SchedulerConfig::new(kw(100.0), kw(30.0)),
        prices,
    )
    .unwrap()
    .obligations(Arc::new(orch.clone()));
    let control: Arc<dyn WorkloadControl> = batch.clone();
    s.add_job(DeferrableJob::new(
        SiteWork::from(DeferrableWork {
            id: JobId::new("batch").unwrap(),
            power: kw(5.6),
            remaining: Duration::from_secs(3 * 3600),
            deadline: at(12 * 60),
        }),
        control,
    ))
    .unwrap();
    let (sched, sched_task) = s.spawn();
    let running = || {
        batch
            .gpus()
            .iter()
            .all(|g| g.activity() == SimActivity::Running)
    };
    let paused = || {
        batch
            .gpus()
            .iter()
            .all(|g| g.activity() == SimActivity::Paused)
    };

    tokio::time::sleep(Duration::from_secs(4 * 60)).await;
    let _ = clock.now();
    assert!(running(), "cheap hours: the batch runs");
    let handled = orch
        .signal(dispatch("d1", at(5), at(25), 18.0))
        .await
        .unwrap();
    assert!(
        matches!(
            handled,
            Handled::Actuated { .. } | Handled::Scheduled { .. }
        ),
        "{handled:?}"
    );
    tokio::time::sleep(Duration::from_secs(60 + 11)).await;
    // Every 20 s through the event: the batch never runs.
    while clock.now() < at(25) {
        let _ = clock.now();
        assert!(
            paused(),
            "{}: batch runs during the curtailment",
            clock.now()
        );
        assert!(sched.status().await.unwrap().in_obligation);
        tokio::time::sleep(Duration::from_secs(20)).await;
    }
    // After the event and its restore it runs again, and finishes by its deadline.
    tokio::time::sleep(Duration::from_secs(10 * 60)).await;
    let _ = clock.now();
    assert!(running(), "batch not running after the event");
    tokio::time::sleep(Duration::from_secs(4 * 3600)).await;
    let status = sched.status().await.unwrap();
    assert_eq!(
        status.finished,
        vec![(JobId::new("batch").unwrap(), true)],
        "{status:?}"
    );
    sched.shutdown().await.unwrap();
    sched_task.await.unwrap().unwrap();
    orch.shutdown().await.unwrap();
    orch_task.await.unwrap().unwrap();
}
