//! Embedding gridflex as a service beside a job scheduler, on the simulated fleet.
//!
//! The orchestrator is spawned once and talked to through its handle while it runs: a
//! CAISO dispatch arrives, a new training job starts mid-event (it is planned in under
//! the dispatch's cap), a batch job finishes mid-event (it is given back at once and
//! leaves the plan), an operator reads the status, and at the end the report is taken
//! and the service shut down. The run checks the promise from the simulated hardware
//! and exits 1 if any GPU or job was left curtailed.
//!
//! ```sh
//! cargo run --release --example embedding
//! ```
//!
//! Time is virtual (tokio's paused clock), so the hour runs in well under a second.

use std::sync::Arc;
use std::time::Duration;

use gridflex::chrono::{TimeDelta, TimeZone, Utc};
use gridflex::hal::sim::SimActivity;
use gridflex::prelude::*;
use gridflex::program::DispatchRule;
use gridflex::signals::source::channel;
use gridflex::signals::{DispatchEvent, DispatchTarget, EventWindow, Program};
use gridflex::simulated::{JobPlan, SimulatedFacility};

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run()),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        eprintln!("embedding: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let start = Utc
        .with_ymd_and_hms(2025, 8, 14, 17, 0, 0)
        .single()
        .ok_or("start")?;
    let kw = Power::kilowatts;
    // 64 simulated H100s: the scheduler's four jobs; "finetune" has not started yet.
    let sim = SimulatedFacility::build(
        start,
        &[
            JobPlan::new(
                "chat",
                16,
                JobClass::Critical { floor: 0.9 },
                WorkloadKind::Inference,
            ),
            JobPlan::new(
                "pretrain",
                24,
                JobClass::Flexible {
                    floor: 0.8,
                    max_pause: Duration::from_secs(15 * 60),
                },
                WorkloadKind::Pretraining,
            ),
            JobPlan::new(
                "batch",
                8,
                JobClass::Deferrable {
                    deadline: start + TimeDelta::hours(6),
                },
                WorkloadKind::FineTuning,
            ),
            JobPlan::new(
                "finetune",
                16,
                JobClass::Flexible {
                    floor: 0.7,
                    max_pause: Duration::from_secs(10 * 60),
                },
                WorkloadKind::FineTuning,
            ),
        ],
    )?;
    let clock = sim.clock();
    let mut rules = ProgramRules::new(Market::Caiso, kw(40.0)?);
    rules.dispatch = Some(DispatchRule::new(vec![Program::CaisoPdr]));
    let mut builder = Orchestrator::builder(clock.clone())
        .devices(sim.fleet().iter().cloned().map(DeviceHandle::with_samples))
        .facility(FacilityModel::new(kw(5.0)?, 1.3)?)
        .rules(rules);
    for (entry, job) in &sim.jobs()[..3] {
        let control: Arc<dyn WorkloadControl> = job.clone();
        builder = builder.job(entry.clone(), Some(control));
    }
    // The utility's dispatches arrive on a channel (an OpenADR client, a file, ...).
    let (dispatches, source) = channel(16);
    let (handle, service) = builder.build()?.spawn(source);
    let mut reports = handle.reports();

    // The fleet runs; telemetry sweeps learn what each job draws.
    tokio::time::sleep(Duration::from_secs(10 * 60)).await;
    let status = handle.status().await?;
    println!(
        "{}  facility {:.1}, {} jobs on {} GPUs",
        clock.now().format("%H:%M:%S"),
        status.facility_power.unwrap_or(Power::ZERO),
        status.jobs,
        status.devices
    );
    let now = clock.now();
    let dispatch = DispatchEvent::new(
        "PDR-0814",
        Program::CaisoPdr,
        now,
        EventWindow::new(now, Some(now + TimeDelta::minutes(30)))?,
        DispatchTarget::CapAt { power: kw(45.0)? },
        None,
    )?;
    dispatches.send(GridSignal::Dispatch(dispatch)).await?;
    tokio::time::sleep(Duration::from_secs(60)).await;
    print_status("dispatch PDR-0814 (cap 45 kW)", &handle, &clock).await?;

    // Mid-event the scheduler starts a job: it is planned in under the cap.
    let (entry, job) = &sim.jobs()[3];
    let control: Arc<dyn WorkloadControl> = job.clone();
    handle.add_job(entry.clone(), Some(control)).await?;
    tokio::time::sleep(Duration::from_secs(60)).await;
    print_status("job finetune started", &handle, &clock).await?;

    // Mid-event the batch job finishes: it is given back at once and leaves the plan.
    handle.remove_job(JobId::new("batch")?).await?;
    let batch_back = sim.jobs()[2].1.gpus().iter().all(|g| {
        g.requested_limit() == g.info().limit_at_discovery && g.activity() == SimActivity::Running
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    print_status(
        "job batch finished (re-planned once its GPUs settled)",
        &handle,
        &clock,
    )
    .await?;

    // The event ends and restores on its own; its report arrives on the stream.
    let report = reports.recv().await?;
    println!(
        "{}  report of event {}: {}",
        clock.now().format("%H:%M:%S"),
        report.event_id,
        report
            .delivery
            .as_ref()
            .map_or("no delivery computed".into(), |d| format!(
                "baseline {:.1}, metered {:.1}, delivered {:.1} ({})",
                d.baseline, d.actual, d.delivered, d.method
            ))
    );
    let left = handle.shutdown().await?;
    let summary = service.await??;
    let _ = clock.now();
    let hardware_clean = sim.fleet().iter().all(|g| {
        g.requested_limit() == g.info().limit_at_discovery && g.activity() == SimActivity::Running
    });
    println!(
        "stopped: {} signal(s), {} command(s), {} report(s); jobs left curtailed: {}; hardware fully restored: {hardware_clean}",
        summary.signals,
        summary.commands,
        summary.events,
        left.len()
    );
    if !(batch_back && hardware_clean && left.is_empty()) {
        return Err("a GPU or job was left curtailed".into());
    }
    Ok(())
}

async fn print_status(
    what: &str,
    handle: &OrchestratorHandle,
    clock: &TokioClock,
) -> Result<(), GridflexError> {
    let s = handle.status().await?;
    let curtailed: Vec<String> = s
        .curtailed
        .iter()
        .map(|j| match (j.paused, j.cap_per_gpu) {
            (true, _) => format!("{} paused", j.job),
            (false, Some(cap)) => format!("{} at {cap:.0}/GPU", j.job),
            (false, None) => j.job.to_string(),
        })
        .collect();
    println!(
        "{}  {what}: event {}, facility {:.1}, {} jobs; curtailed: {}",
        clock.now().format("%H:%M:%S"),
        s.active.map_or("-".into(), |a| a.event_id.to_string()),
        s.facility_power.unwrap_or(Power::ZERO),
        s.jobs,
        if curtailed.is_empty() {
            "none".into()
        } else {
            curtailed.join(", ")
        }
    );
    Ok(())
}
