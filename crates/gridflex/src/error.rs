//! The facade's error type.

use gridflex_core::{CoreError, DeviceId, JobId};
use gridflex_hal::HalError;
use gridflex_mv::MvError;
use gridflex_planner::PlannerError;
use gridflex_signals::SignalError;

/// Everything the orchestrator and its helpers can fail with.
///
/// Errors from the component crates are wrapped as they are, so their location
/// information (file position, device id, field name) reaches the caller intact.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GridflexError {
    /// A setting or input of the facade itself is invalid.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which setting (for example `"program.price.strike"`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A job in the inventory names a device that is not registered.
    #[error("job {job} uses device {device}, which is not registered")]
    UnknownDevice {
        /// The job.
        job: JobId,
        /// The missing device.
        device: DeviceId,
    },
    /// A device failed; the orchestrator reports it and carries on with the rest.
    #[error("device {device}: {source}")]
    Device {
        /// The device.
        device: DeviceId,
        /// The backend's error, with its portable `kind()`.
        #[source]
        source: HalError,
    },
    /// A workload control failed.
    #[error("job {job}: {source}")]
    Workload {
        /// The job.
        job: JobId,
        /// The backend's error.
        #[source]
        source: HalError,
    },
    /// A job id the orchestrator does not know.
    #[error("job {job} is not in the inventory")]
    UnknownJob {
        /// The job.
        job: JobId,
    },
    /// The orchestrator service has stopped (its handle can no longer reach it).
    #[error("the orchestrator has stopped")]
    Stopped,
    /// Writing or reading the audit log failed.
    #[error("audit log: {0}")]
    Audit(String),
    /// From gridflex-core.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// From gridflex-signals.
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// From gridflex-planner.
    #[error(transparent)]
    Planner(#[from] PlannerError),
    /// From gridflex-mv.
    #[error(transparent)]
    Mv(#[from] MvError),
    /// From the history store.
    #[error(transparent)]
    Store(#[from] gridflex_store::StoreError),
}

impl GridflexError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
