//! Code generic over the traits, the way the orchestrator uses them: trait objects,
//! portable error kinds, optional capabilities as separate traits.

use std::sync::Arc;
use std::time::Duration;

use gridflex_core::ManualClock;
use gridflex_core::{JobId, Power};
use gridflex_hal::sim::{SimFleet, SimGpu, SimGpuSpec, SimJob, WorkloadKind, WorkloadProfile};
use gridflex_hal::{
    ClockRange, ErrorKind, HalError, Megahertz, PowerDevice, PowerSampleStream, SmClockLock,
    WorkloadControl, WorkloadState,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn watts(w: f64) -> Power {
    Power::watts(w).unwrap()
}

/// Caps every device, skipping lost ones and retrying transient failures once;
/// returns how many were capped. Any other error stops the loop.
async fn cap_all(devices: &[Arc<dyn PowerDevice>], limit: Power) -> Result<usize, HalError> {
    let mut capped = 0;
    for d in devices {
        let mut attempt = d.set_power_limit(limit).await;
        if matches!(&attempt, Err(e) if e.kind() == ErrorKind::Transient) {
            attempt = d.set_power_limit(limit).await;
        }
        match attempt {
            Ok(change) => {
                assert!(change.enforced <= limit);
                capped += 1;
            }
            Err(e) if e.kind() == ErrorKind::DeviceLost => {}
            Err(e) => return Err(e),
        }
    }
    Ok(capped)
}

/// Generic over the clock capability: only devices that have it can be passed.
async fn lock_low<D: PowerDevice + SmClockLock + ?Sized>(d: &D) -> Result<(), HalError> {
    let range = d.sm_clock_range();
    d.lock_sm_clocks(ClockRange {
        min: range.min,
        max: Megahertz(1200),
    })
    .await
}

#[tokio::test]
async fn orchestrator_style_event() -> TestResult {
    let clock = ManualClock::default();
    let fleet = SimFleet::new(Arc::new(clock.clone()), 6, &SimGpuSpec::h100_sxm())?;
    let gpus: Vec<Arc<SimGpu>> = fleet.iter().cloned().collect();
    let training = SimJob::start(
        JobId::new("train")?,
        gpus[..4].to_vec(),
        WorkloadProfile::of(WorkloadKind::Generic),
    )?;
    let serving = SimJob::start(
        JobId::new("serve")?,
        gpus[4..].to_vec(),
        WorkloadProfile::of(WorkloadKind::Inference),
    )?;
    clock.advance(Duration::from_secs(5));
    let before = fleet.true_power_total();

    // One GPU has fallen off the bus: it is skipped. Then one stays "busy" (the sim's
    // fault holds until cleared), so the retry fails too and the error surfaces.
    gpus[1].inject_fault(Some(ErrorKind::DeviceLost));
    let devices = fleet.devices();
    assert_eq!(cap_all(&devices, watts(450.0)).await?, 5);
    gpus[2].inject_fault(Some(ErrorKind::Transient));
    let err = cap_all(&devices, watts(450.0))
        .await
        .err()
        .ok_or("expected an error")?;
    assert_eq!(err.kind(), ErrorKind::Transient);
    gpus[2].inject_fault(None);
    assert!(
        cap_all(&devices, watts(900.0))
            .await
            .is_err_and(|e| e.kind() == ErrorKind::OutOfRange)
    );

    // A job with a lost GPU cannot be paused, and nothing is left half-paused.
    let err = training.pause().await.err().ok_or("pause should fail")?;
    assert!(err.to_string().contains("not found or lost"), "{err}");
    assert_eq!(training.status().await?, WorkloadState::Running);
    gpus[1].inject_fault(None);

    // Pause the flexible job: the deepest, fastest lever.
    let jobs: Vec<Arc<dyn WorkloadControl>> =
        vec![Arc::new(training.clone()), Arc::new(serving.clone())];
    jobs[0].pause().await?;
    clock.advance(Duration::from_millis(200));
    assert_eq!(jobs[0].status().await?, WorkloadState::Paused);
    assert_eq!(jobs[1].status().await?, WorkloadState::Running);
    let during = fleet.true_power_total();
    assert!(during / before < 0.55, "{during} vs {before}");

    // High-rate samples and clock locks are capabilities of the concrete type.
    let samples = gpus[0].power_samples_since(None).await?;
    assert!(samples.len() >= 10);
    lock_low(gpus[4].as_ref()).await?;
    clock.advance(Duration::from_secs(1));
    assert!(gpus[4].true_power() < watts(450.0));
    gpus[4].unlock_sm_clocks().await?;

    // Restore: every device back to its discovered limit, jobs resumed.
    for d in &devices {
        let back = d.restore_power_limit().await?;
        assert_eq!(back.enforced, d.info().limit_at_discovery);
    }
    jobs[0].resume().await?;
    clock.advance(Duration::from_secs(3));
    let after = fleet.true_power_total();
    assert!((after - before).abs() < watts(1.0), "{after} vs {before}");
    for d in &devices {
        let t = d.telemetry().await?;
        assert_eq!(t.requested_limit, Some(d.info().limit_at_discovery));
    }
    Ok(())
}

#[tokio::test]
async fn half_applied_job_actions_are_undone() -> TestResult {
    let clock = ManualClock::default();
    let fleet = SimFleet::new(Arc::new(clock.clone()), 3, &SimGpuSpec::h100_sxm())?;
    let gpus: Vec<Arc<SimGpu>> = fleet.iter().cloned().collect();
    let job = SimJob::start(
        JobId::new("j")?,
        gpus.clone(),
        WorkloadProfile::of(WorkloadKind::Matmul),
    )?;
    gpus[2].inject_fault(Some(ErrorKind::NoPermission));
    let err = job.pause().await.err().ok_or("pause should fail")?;
    assert!(err.to_string().contains("job j"), "{err}");
    gpus[2].inject_fault(None);
    assert_eq!(job.status().await?, WorkloadState::Running);
    // Start on a GPU that refuses: nothing keeps running.
    gpus[1].inject_fault(Some(ErrorKind::DeviceLost));
    let other = fleet.iter().cloned().collect();
    assert!(
        SimJob::start(
            JobId::new("k")?,
            other,
            WorkloadProfile::of(WorkloadKind::Generic)
        )
        .is_err()
    );
    gpus[1].inject_fault(None);
    assert_eq!(
        SimJob::attach(JobId::new("k")?, vec![gpus[0].clone()])
            .status()
            .await?,
        WorkloadState::Exited
    );
    Ok(())
}
