//! The scheduling loop driving a real Slurm job (started by `.ci/peers/slurm.sh`): held
//! (suspended) through dear intervals, running in the cheap one, held again once its
//! work is done, given back on shutdown. Checked from Slurm's own job state.
//!
//! Skips when `GRIDFLEX_TEST_SLURM` is unset; fails when it is set and Slurm misbehaves.
#![cfg(feature = "slurm")]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use gridflex::clock::{Clock, TokioClock};
use gridflex::core::{IntervalSeries, JobId, Power, Price};
use gridflex::planner::{DeferrableWork, SiteWork};
use gridflex::scheduling::{DeferrableJob, Scheduler, SchedulerConfig};
use gridflex::slurm::{DeviceMap, JobState, Policy, SlurmCli, SlurmCluster};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Cancels the job however the test ends.
struct Cancel(u32);
impl Drop for Cancel {
    fn drop(&mut self) {
        let _ = Command::new("scancel")
            .arg(self.0.to_string())
            .env_remove("SLURM_JWT")
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slurm_job_runs_in_the_cheap_interval_only() -> TestResult {
    if std::env::var_os("GRIDFLEX_TEST_SLURM").is_none() {
        eprintln!(
            "skipping: needs a Slurm cluster; set GRIDFLEX_TEST_SLURM (started by .ci/run through .ci/peers/slurm.sh)"
        );
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("gridflex-sched-slurm-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("job.sh");
    std::fs::write(&script, "#!/bin/bash\nwhile true; do sleep 0.5; done\n")?;
    let out = Command::new("sbatch")
        .args(["--parsable", "-o", "/dev/null", "--chdir"])
        .arg(&dir)
        .arg(&script)
        .env_remove("SLURM_JWT")
        .output()?;
    if !out.status.success() {
        return Err(format!("sbatch: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let id: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .parse()?;
    let _cancel = Cancel(id);
    let cli = SlurmCli::new();
    // Running first (bounded wait).
    for _ in 0..300 {
        if cli.job_state(id).await? == Some(JobState::Running) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cli.job_state(id).await?, Some(JobState::Running));

    let policy: Policy = serde_json::from_str(r#"{"rules":[]}"#)?;
    let cluster = SlurmCluster::open(
        SlurmCli::new(),
        policy,
        DeviceMap::default(),
        dir.join("ledger.json"),
    )?;
    let control = Arc::new(cluster.control(id)?);

    // 5-second intervals from the next whole 5 s: dear, dear, cheap, dear, dear.
    let step = TimeDelta::seconds(5);
    let start = Utc::now().duration_trunc(step)? + step;
    let prices = IntervalSeries::from_values(
        start,
        step,
        [90.0, 80.0, 5.0, 70.0, 60.0].map(|p| Price::per_megawatt_hour(p).unwrap_or(Price::ZERO)),
    )?;
    let clock = TokioClock::starting_at(Utc::now());
    clock.sleep_until(start).await;
    let mut config = SchedulerConfig::new(Power::kilowatts(10.0)?, Power::ZERO);
    config.absorb_below = None;
    let mut scheduler = Scheduler::new(clock.clone(), config, prices)?;
    scheduler.add_job(DeferrableJob::new(
        SiteWork::from(DeferrableWork {
            id: JobId::new(format!("slurm-{id}"))?,
            power: Power::kilowatts(5.6)?,
            remaining: Duration::from_secs(5),
            deadline: start + step * 5,
        }),
        control,
    ))?;
    let (handle, task) = scheduler.spawn();
    // Samples of Slurm's state late in each interval (3.5 s in, leaving room for a
    // slow `scontrol`): suspended, suspended, running, suspended.
    let mut seen = Vec::new();
    let mut when = Vec::new();
    for k in 0..4 {
        clock
            .sleep_until(start + step * k + TimeDelta::milliseconds(3500))
            .await;
        seen.push(cli.job_state(id).await?);
        when.push(Utc::now());
    }
    let status = handle.status().await?;
    handle.shutdown().await?;
    task.await??;
    assert_eq!(
        seen,
        vec![
            Some(JobState::Suspended),
            Some(JobState::Suspended),
            Some(JobState::Running),
            Some(JobState::Suspended)
        ],
        "sampled at {when:?} (intervals from {start}); {status:?}"
    );
    assert_eq!(status.finished.len(), 1, "{status:?}");
    // Given back on shutdown.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cli.job_state(id).await?, Some(JobState::Running));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
