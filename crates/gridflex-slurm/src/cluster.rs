//! [`SlurmCluster`]: inventory, suspend/resume with ownership, and recovery;
//! [`SlurmJobControl`]: one job as a hal [`WorkloadControl`]; [`JobSync`]: refreshes
//! that report what changed, with back-off while slurmctld is away.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use gridflex_core::JobId;
use gridflex_hal::{ErrorKind, HalError, WorkloadControl, WorkloadState};

use crate::SlurmError;
use crate::cli::SlurmCli;
use crate::devices::DeviceMap;
use crate::inventory::{Inventory, InventoryDiff};
use crate::job::{JobState, gridflex_id};
use crate::ledger::{Action, Ledger};
use crate::policy::Policy;

/// What a pause did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Paused {
    /// gridflex suspended the running job (and recorded it in the ledger).
    Suspended,
    /// gridflex held the pending job, so it does not start (and recorded it).
    Held,
    /// The job was already suspended or held by someone else: left alone, not
    /// recorded, so gridflex will not resume or release it.
    AlreadyByOthers,
}

/// What a resume did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resumed {
    /// gridflex resumed a job it had suspended.
    Resumed,
    /// gridflex released a job it had held.
    Released,
    /// gridflex had not suspended the job: nothing was done.
    NotOurs,
    /// The job was already running or pending (resumed by someone else, requeued), or
    /// its hold was already gone.
    AlreadyRunning,
    /// The job has ended: nothing to resume.
    Ended,
}

/// The outcome of [`SlurmCluster::recover`]: each job the ledger named.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Recovery {
    /// Resumed (or released) now.
    pub resumed: Vec<u32>,
    /// Already running, or ended: only forgotten.
    pub settled: Vec<u32>,
    /// Still suspended by gridflex, with the last error (still in the ledger).
    pub failed: Vec<(u32, SlurmError)>,
}

/// Exponential back-off: `initial`, doubled after each failure, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `initial` and doubles up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// The wait before the next try; doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Back to `initial` (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Default for Backoff {
    /// 1 s doubling to 30 s.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(30))
    }
}

/// A Slurm cluster as gridflex drives it.
///
/// ```no_run
/// use gridflex_slurm::{DeviceMap, Policy, SlurmCli, SlurmCluster};
/// use gridflex_hal::WorkloadControl;
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let policy: Policy = serde_json::from_str(r#"{"rules":[{"match":{"partition":"train"},
///     "class":"flexible","floor":0.5,"max_pause_s":900}]}"#)?;
/// let cluster = SlurmCluster::open(SlurmCli::new(), policy, DeviceMap::default(),
///     "/var/lib/gridflex/slurm-ledger.json")?;
/// cluster.recover().await;                 // finish restores a previous run left
/// let inventory = cluster.inventory(None).await?;
/// for job in inventory.jobs().filter(|j| j.class.may_pause()) {
///     cluster.control(job.job.id)?.pause().await?;  // scontrol suspend (or hold), recorded
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SlurmCluster {
    cli: SlurmCli,
    policy: Policy,
    devices: DeviceMap,
    ledger: Mutex<Ledger>,
}

impl SlurmCluster {
    /// A cluster reached through `cli`, classified by `policy` (validated), GPUs named
    /// by `devices`, ownership kept in the ledger file at `ledger`.
    pub fn open(
        cli: SlurmCli,
        policy: Policy,
        devices: DeviceMap,
        ledger: impl AsRef<Path>,
    ) -> Result<Arc<Self>, SlurmError> {
        policy.validate()?;
        Ok(Arc::new(Self {
            cli,
            policy,
            devices,
            ledger: Mutex::new(Ledger::open(ledger)?),
        }))
    }

    /// The command runner.
    pub fn cli(&self) -> &SlurmCli {
        &self.cli
    }

    /// The site policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A panic while holding the lock cannot leave the ledger half-written (every
        // change is written whole, then swapped in), so a poisoned lock is still good.
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The jobs gridflex has suspended or held and not yet resumed or released.
    pub fn owned(&self) -> Vec<u32> {
        self.ledger().entries().map(|e| e.job).collect()
    }

    /// The live jobs now (one `squeue --json`), classes kept from `previous` where the
    /// fields policy reads did not change.
    pub async fn inventory(&self, previous: Option<&Inventory>) -> Result<Inventory, SlurmError> {
        let json = self.cli.squeue_json().await?;
        let inv =
            Inventory::from_squeue_json(&json, &self.policy, &self.devices, Utc::now(), previous);
        match inv {
            // squeue exits 0 with an error list while slurmctld is down.
            Err(SlurmError::Reported { detail }) if detail.contains("slurm_load_jobs") => {
                Err(SlurmError::ControllerUnreachable {
                    command: "squeue --json".into(),
                    detail,
                })
            }
            other => other,
        }
    }

    /// A [`WorkloadControl`] for Slurm job `job`.
    pub fn control(self: &Arc<Self>, job: u32) -> Result<SlurmJobControl, SlurmError> {
        Ok(SlurmJobControl {
            cluster: self.clone(),
            job,
            id: gridflex_id(job)?,
        })
    }

    /// Pauses `job`: suspends it if it runs, holds it if it is pending (so it does not
    /// start mid-event), and does nothing if someone else has already suspended or held
    /// it. Records what it does first.
    ///
    /// The ledger entry is written before `scontrol` runs and removed if the command
    /// surely failed; after a timeout or an unreachable controller it stays (the command
    /// may have acted), and a resume or [`recover`](Self::recover) settles it.
    pub async fn pause(&self, job: u32) -> Result<Paused, SlurmError> {
        let owned = self.ledger().action(job);
        let action = match owned {
            Some(action) => action,
            None => {
                let action = match self.cli.job_info(job).await? {
                    None | Some((JobState::Finished(_) | JobState::Completing, _)) => {
                        return Err(SlurmError::JobGone { job });
                    }
                    Some((JobState::Suspended, _)) => return Ok(Paused::AlreadyByOthers),
                    Some((JobState::Pending, reason)) if reason.starts_with("JobHeld") => {
                        return Ok(Paused::AlreadyByOthers);
                    }
                    Some((JobState::Pending, _)) => Action::Hold,
                    Some((JobState::Running | JobState::Other(_), _)) => Action::Suspend,
                };
                self.ledger().record(job, action, Utc::now())?;
                action
            }
        };
        let done = match action {
            Action::Suspend => self.cli.suspend(job).await,
            Action::Hold => self.cli.hold(job).await,
        };
        match done {
            Ok(()) => Ok(match action {
                Action::Suspend => Paused::Suspended,
                Action::Hold => Paused::Held,
            }),
            Err(e) if e.kind() == ErrorKind::Transient => Err(e),
            Err(e) => {
                self.ledger().forget(job)?;
                Err(e)
            }
        }
    }

    /// Undoes what gridflex did to `job` (resume a suspend, release a hold); a job
    /// gridflex did not pause is left as it is. The ledger entry goes once the job runs
    /// (or is pending, not held) or has ended.
    pub async fn resume(&self, job: u32) -> Result<Resumed, SlurmError> {
        let Some(action) = self.ledger().action(job) else {
            return Ok(Resumed::NotOurs);
        };
        let done = match action {
            Action::Suspend => self.cli.resume(job).await.map(|()| Resumed::Resumed),
            Action::Hold => self.cli.release(job).await.map(|()| Resumed::Released),
        };
        let outcome = match done {
            Ok(r) => r,
            Err(SlurmError::WrongState { .. }) => Resumed::AlreadyRunning,
            Err(SlurmError::JobGone { .. }) => Resumed::Ended,
            Err(e) => return Err(e),
        };
        self.ledger().forget(job)?;
        Ok(outcome)
    }

    /// Resumes every job the ledger names (once each); what failed stays in the ledger.
    pub async fn recover(&self) -> Recovery {
        let mut out = Recovery::default();
        for job in self.owned() {
            match self.resume(job).await {
                Ok(Resumed::Resumed | Resumed::Released) => out.resumed.push(job),
                Ok(_) => out.settled.push(job),
                Err(e) => out.failed.push((job, e)),
            }
        }
        out
    }

    /// [`recover`](Self::recover), retried with `backoff` until the ledger is empty or
    /// `within` has passed (tokio's clock); the last attempt's failures are returned.
    pub async fn restore_all(&self, mut backoff: Backoff, within: Duration) -> Recovery {
        let until = tokio::time::Instant::now() + within;
        let mut total = Recovery::default();
        loop {
            let r = self.recover().await;
            total.resumed.extend(r.resumed);
            total.settled.extend(r.settled);
            if r.failed.is_empty() {
                return total;
            }
            let wait = backoff.next_delay();
            if tokio::time::Instant::now() + wait > until {
                total.failed = r.failed;
                return total;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// One Slurm job as a hal [`WorkloadControl`]: pause is `scontrol suspend` (or `hold`
/// for a pending job), resume undoes it, both through the cluster's ownership ledger
/// ([`SlurmCluster::pause`], [`SlurmCluster::resume`]).
///
/// Pausing a job someone else suspended or held is a no-op that records nothing;
/// resuming a job gridflex did not pause is a no-op; resuming a job that has ended
/// succeeds (nothing is left suspended). Errors keep their kind: an unreachable controller is
/// `Transient`, a job that has gone is `DeviceLost`.
#[derive(Debug, Clone)]
pub struct SlurmJobControl {
    cluster: Arc<SlurmCluster>,
    job: u32,
    id: JobId,
}

impl SlurmJobControl {
    /// Slurm's job id.
    pub fn slurm_id(&self) -> u32 {
        self.job
    }
}

#[async_trait]
impl WorkloadControl for SlurmJobControl {
    fn job(&self) -> &JobId {
        &self.id
    }

    async fn pause(&self) -> Result<(), HalError> {
        self.cluster
            .pause(self.job)
            .await
            .map(|_| ())
            .map_err(|e| e.into_hal("pause"))
    }

    async fn resume(&self) -> Result<(), HalError> {
        self.cluster
            .resume(self.job)
            .await
            .map(|_| ())
            .map_err(|e| e.into_hal("resume"))
    }

    /// Running (also completing), paused (suspended, or pending: no progress), exited
    /// (finished or unknown to Slurm).
    async fn status(&self) -> Result<WorkloadState, HalError> {
        let state = self
            .cluster
            .cli
            .job_state(self.job)
            .await
            .map_err(|e| e.into_hal("status"))?;
        Ok(match state {
            None | Some(JobState::Finished(_)) => WorkloadState::Exited,
            Some(JobState::Suspended | JobState::Pending) => WorkloadState::Paused,
            Some(JobState::Running | JobState::Completing | JobState::Other(_)) => {
                WorkloadState::Running
            }
        })
    }
}

/// Keeps an inventory current: each [`refresh`](JobSync::refresh) reads the queue and
/// says what changed, for the orchestrator's live handle to apply.
///
/// While slurmctld cannot be reached, refreshes fail with a `Transient` error, the
/// planning view ([`JobSync::planning_view`]) pins every job, and
/// [`JobSync::next_refresh_in`] backs off.
#[derive(Debug)]
pub struct JobSync {
    cluster: Arc<SlurmCluster>,
    current: Inventory,
    stale: bool,
    interval: Duration,
    backoff: Backoff,
    wait: Duration,
}

impl JobSync {
    /// Starts from an empty inventory; refreshes every `interval` while healthy.
    pub fn new(cluster: Arc<SlurmCluster>, interval: Duration, backoff: Backoff) -> Self {
        Self {
            cluster,
            current: Inventory::default(),
            stale: true,
            interval,
            backoff,
            wait: Duration::ZERO,
        }
    }

    /// Reads the queue; returns what changed since the last successful refresh.
    pub async fn refresh(&mut self) -> Result<InventoryDiff, SlurmError> {
        match self.cluster.inventory(Some(&self.current)).await {
            Ok(next) => {
                let mut diff = self.current.diff(&next);
                diff.recovered = self.stale && self.current.taken_at().is_some();
                self.current = next;
                self.stale = false;
                self.backoff.reset();
                self.wait = self.interval;
                Ok(diff)
            }
            Err(e) => {
                self.stale = true;
                self.wait = self.backoff.next_delay();
                Err(e)
            }
        }
    }

    /// The last inventory read (possibly stale).
    pub fn inventory(&self) -> &Inventory {
        &self.current
    }

    /// Whether the last refresh failed (or none has run).
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// What to plan with: the inventory, every job pinned while it is stale.
    pub fn planning_view(&self) -> Inventory {
        if self.stale {
            self.current.pinned()
        } else {
            self.current.clone()
        }
    }

    /// How long to wait before the next refresh: the interval, or the back-off after
    /// failures.
    pub fn next_refresh_in(&self) -> Duration {
        self.wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
