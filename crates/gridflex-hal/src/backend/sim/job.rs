//! [`SimJob`]: a job running on simulated GPUs, controlled through [`WorkloadControl`].

use std::sync::Arc;

use async_trait::async_trait;
use gridflex_core::JobId;

use super::{SimActivity, SimGpu, WorkloadProfile};
use crate::{HalError, WorkloadControl, WorkloadState};

/// A job spread over simulated GPUs. Pausing it pauses the workload on every GPU
/// (SIGSTOP semantics: power falls to the context-idle level after the calibrated response).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use gridflex_core::JobId;
/// use gridflex_core::ManualClock;
/// use gridflex_hal::sim::{SimFleet, SimGpuSpec, SimJob, WorkloadKind, WorkloadProfile};
/// use gridflex_hal::{WorkloadControl, WorkloadState};
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let clock = ManualClock::default();
/// let fleet = SimFleet::new(Arc::new(clock.clone()), 8, &SimGpuSpec::h100_sxm())?;
/// let job = SimJob::start(JobId::new("train-1")?, fleet.iter().cloned().collect(),
///     WorkloadProfile::of(WorkloadKind::Generic))?;
/// clock.advance(Duration::from_secs(2));
/// job.pause().await?;
/// clock.advance(Duration::from_millis(100));
/// assert_eq!(job.status().await?, WorkloadState::Paused);
/// assert!(fleet.true_power_total().as_watts() < 8.0 * 126.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SimJob {
    job: JobId,
    gpus: Vec<Arc<SimGpu>>,
}

impl SimJob {
    /// Starts `profile` on every GPU of `gpus` and returns the job handle. If a GPU
    /// refuses, the workload is stopped on those already started and the error returned.
    pub fn start(
        job: JobId,
        gpus: Vec<Arc<SimGpu>>,
        profile: WorkloadProfile,
    ) -> Result<Self, HalError> {
        for (i, g) in gpus.iter().enumerate() {
            if let Err(e) = g.start_workload(profile.clone()) {
                for done in &gpus[..i] {
                    // Best effort undo; the original error is what the caller needs.
                    let _ = done.stop_workload();
                }
                return Err(e);
            }
        }
        Ok(Self { job, gpus })
    }

    /// A handle for GPUs whose workloads the caller started.
    pub fn attach(job: JobId, gpus: Vec<Arc<SimGpu>>) -> Self {
        Self { job, gpus }
    }

    /// The GPUs of the job.
    pub fn gpus(&self) -> &[Arc<SimGpu>] {
        &self.gpus
    }

    /// Pauses every GPU's workload, all or nothing.
    pub fn pause_now(&self) -> Result<(), HalError> {
        self.all_or_nothing(SimActivity::Paused, SimGpu::resume_workload)
    }

    /// Resumes every GPU's workload, all or nothing.
    pub fn resume_now(&self) -> Result<(), HalError> {
        self.all_or_nothing(SimActivity::Running, SimGpu::pause_workload)
    }

    /// Brings every GPU to `goal` at one instant (one clock reading for the GPUs that
    /// share a clock, as a signal reaches a job's processes at once); when one refuses,
    /// undoes it on the GPUs it changed (only those: a GPU that was already in the
    /// `goal` activity is left as it was, so a failed resume of a running job pauses
    /// nothing).
    fn all_or_nothing(
        &self,
        goal: SimActivity,
        undo: fn(&SimGpu) -> Result<(), HalError>,
    ) -> Result<(), HalError> {
        // The GPUs this call changed: a bit each for the first 128 (no allocation), a
        // list beyond.
        let mut changed_mask = 0u128;
        let mut changed_more = Vec::new();
        let mut reading: Option<(&SimGpu, i64)> = None;
        for (i, g) in self.gpus.iter().enumerate() {
            let now = match reading {
                Some((r, now)) if r.shares_clock(g) => now,
                _ => {
                    let now = g.clock_reading();
                    reading = Some((g, now));
                    now
                }
            };
            match g.set_activity_at(now, goal) {
                Ok(true) if i < 128 => changed_mask |= 1 << i,
                Ok(true) => changed_more.push(i),
                Ok(false) => {}
                Err(e) => {
                    let first =
                        (0..self.gpus.len().min(128)).filter(|&k| changed_mask & (1 << k) != 0);
                    for done in first.chain(changed_more.iter().copied()) {
                        let gpu: &Arc<SimGpu> = &self.gpus[done];
                        let _ = undo(gpu);
                    }
                    return Err(HalError::Workload {
                        job: self.job.clone(),
                        operation: if goal == SimActivity::Paused {
                            "pause"
                        } else {
                            "resume"
                        },
                        detail: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The job's state from its GPUs' commanded activities.
    pub fn status_now(&self) -> WorkloadState {
        let (mut running, mut paused, mut gone) = (0usize, 0usize, 0usize);
        for g in &self.gpus {
            match g.activity() {
                SimActivity::Running => running += 1,
                SimActivity::Paused => paused += 1,
                _ => gone += 1,
            }
        }
        match (running, paused, gone) {
            (_, 0, 0) if running > 0 => WorkloadState::Running,
            (0, _, 0) if paused > 0 => WorkloadState::Paused,
            (0, 0, _) => WorkloadState::Exited,
            _ => WorkloadState::Mixed,
        }
    }
}

#[async_trait]
impl WorkloadControl for SimJob {
    fn job(&self) -> &JobId {
        &self.job
    }

    async fn pause(&self) -> Result<(), HalError> {
        self.pause_now()
    }

    async fn resume(&self) -> Result<(), HalError> {
        self.resume_now()
    }

    async fn status(&self) -> Result<WorkloadState, HalError> {
        Ok(self.status_now())
    }

    fn pause_at_once(&self) -> Option<Result<(), HalError>> {
        Some(self.pause_now())
    }

    fn resume_at_once(&self) -> Option<Result<(), HalError>> {
        Some(self.resume_now())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ErrorKind;
    use crate::backend::sim::{SimFleet, SimGpuSpec, WorkloadKind};
    use gridflex_core::ManualClock;

    fn job() -> (ManualClock, SimFleet, SimJob) {
        let clock = ManualClock::default();
        let fleet = SimFleet::new(Arc::new(clock.clone()), 4, &SimGpuSpec::h100_sxm()).unwrap();
        let job = SimJob::start(
            JobId::new("j").unwrap(),
            fleet.iter().cloned().collect(),
            WorkloadProfile::of(WorkloadKind::Generic),
        )
        .unwrap();
        (clock, fleet, job)
    }

    #[test]
    fn a_failed_resume_of_a_running_job_pauses_nothing() {
        let (clock, fleet, job) = job();
        clock.advance(Duration::from_secs(1));
        fleet
            .iter()
            .nth(3)
            .unwrap()
            .inject_fault(Some(ErrorKind::Transient));
        assert!(job.resume_now().is_err());
        for g in fleet.iter().take(3) {
            assert_eq!(g.activity(), SimActivity::Running);
        }
        assert_eq!(job.status_now(), WorkloadState::Running);
    }

    #[test]
    fn a_failed_pause_undoes_only_what_it_paused() {
        let (_clock, fleet, job) = job();
        fleet.iter().next().unwrap().pause_workload().unwrap();
        fleet
            .iter()
            .nth(2)
            .unwrap()
            .inject_fault(Some(ErrorKind::Transient));
        assert!(job.pause_now().is_err());
        // GPU 0 was paused before the call and stays so; GPU 1 was paused by it and undone.
        let acts: Vec<_> = fleet.iter().map(|g| g.activity()).collect();
        assert_eq!(
            acts,
            [
                SimActivity::Paused,
                SimActivity::Running,
                SimActivity::Running,
                SimActivity::Running
            ]
        );
    }
}
