//! [`WorkloadControl`]: pause, resume and observe one job (a set of processes, a set of
//! simulated GPUs, or an external handle such as a scheduler job).

use async_trait::async_trait;
use gridflex_core::JobId;
use serde::{Deserialize, Serialize};

use crate::HalError;

/// What a job is doing, as far as the backend can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WorkloadState {
    /// Every part of the job runs.
    Running,
    /// Every part of the job is paused (state kept, no progress).
    Paused,
    /// Some parts run and some are paused (for example a process started after the pause).
    Mixed,
    /// Every part of the job has exited.
    Exited,
}

/// Pause and resume one job.
///
/// A pause or resume either applies to every part of the job or to none: a backend that
/// fails halfway undoes what it did and returns the error.
#[async_trait]
pub trait WorkloadControl: Send + Sync {
    /// The job this handle controls.
    fn job(&self) -> &JobId;

    /// Pauses the job, keeping its state (SIGSTOP for processes). Pausing a paused job is a no-op.
    async fn pause(&self) -> Result<(), HalError>;

    /// Resumes the job (SIGCONT). Resuming a running job is a no-op.
    async fn resume(&self) -> Result<(), HalError>;

    /// The job's current state.
    async fn status(&self) -> Result<WorkloadState, HalError>;

    /// [`WorkloadControl::pause`] without a future, for a backend that answers without
    /// waiting (an in-process simulator): `Some` with exactly what `pause` would have
    /// returned, after the same effect; `None` (the default) when it cannot answer at
    /// once, having done nothing. The orchestrator tries it first.
    fn pause_at_once(&self) -> Option<Result<(), HalError>> {
        None
    }

    /// [`WorkloadControl::resume`] without a future, under the contract of
    /// [`WorkloadControl::pause_at_once`]. Default: `None`.
    fn resume_at_once(&self) -> Option<Result<(), HalError>> {
        None
    }
}
