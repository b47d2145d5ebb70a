//! The one error type of `gridflex-slurm`, [`SlurmError`], and its mapping to the hal's
//! portable [`ErrorKind`](gridflex_hal::ErrorKind).

use std::path::PathBuf;
use std::time::Duration;

use gridflex_hal::{ErrorKind, HalError};

/// Everything that can go wrong in `gridflex-slurm`.
///
/// Each variant names the command, job, file or field involved; [`SlurmError::kind`]
/// classifies it for generic code (retry, skip, stop).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlurmError {
    /// A Slurm command could not be started (not installed, not executable).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program, as configured.
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A Slurm command did not finish in time and was killed.
    #[error("`{command}` did not finish within {timeout:?}")]
    Timeout {
        /// The command line.
        command: String,
        /// The limit it ran under.
        timeout: Duration,
    },
    /// slurmctld could not be reached (down, restarting, or the network is cut).
    #[error("slurmctld unreachable (`{command}`): {detail}")]
    ControllerUnreachable {
        /// The command line.
        command: String,
        /// What Slurm said.
        detail: String,
    },
    /// Slurm refused the operation for lack of rights (suspend needs root or SlurmUser).
    #[error("no permission for `{command}`: {detail}")]
    NoPermission {
        /// The command line.
        command: String,
        /// What Slurm said.
        detail: String,
    },
    /// The job is not (or no longer) in slurmctld's queue as a live job.
    #[error("Slurm job {job} not found or finished")]
    JobGone {
        /// The Slurm job id.
        job: u32,
    },
    /// The job is in a state the operation does not apply to (e.g. suspending a pending job).
    #[error("Slurm job {job}: cannot {operation} in state {state}")]
    WrongState {
        /// The Slurm job id.
        job: u32,
        /// What was attempted.
        operation: &'static str,
        /// The job's state as Slurm names it.
        state: String,
    },
    /// A Slurm command failed for another reason.
    #[error("`{command}` failed ({status}): {detail}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its standard error (trimmed, at most 4 KiB).
        detail: String,
    },
    /// `squeue --json` output that is not JSON or not the expected model.
    #[error("squeue --json output, line {line} column {column}: {detail}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What was wrong.
        detail: String,
    },
    /// The JSON comes from a data model this crate does not read.
    #[error("squeue --json speaks {found}; gridflex-slurm reads {expected}")]
    UnsupportedModel {
        /// The `meta.plugin.type` found.
        found: String,
        /// The model this crate reads.
        expected: &'static str,
    },
    /// Slurm reported errors inside an otherwise valid JSON answer.
    #[error("squeue --json reported: {detail}")]
    Reported {
        /// The error descriptions, joined.
        detail: String,
    },
    /// A field of one job that cannot be read (a GPU list, a host list, an id).
    #[error("Slurm job {job}: field {field}: {detail}")]
    Field {
        /// The Slurm job id (0 when the id itself is the problem).
        job: u32,
        /// The field, as Slurm names it.
        field: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// Text output of `scontrol` that cannot be read.
    #[error("`{command}` output: {detail}")]
    Text {
        /// The command line.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// A policy rule or option that cannot work.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The ownership ledger could not be read or written.
    #[error("ownership ledger {path}: {detail}")]
    Ledger {
        /// The ledger file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// An id from gridflex-core could not be built.
    #[error(transparent)]
    Core(#[from] gridflex_core::CoreError),
}

impl SlurmError {
    /// The portable kind: `Transient` for an unreachable or slow controller (retry with
    /// back-off), `DeviceLost` for a job that has gone, `NoPermission`, else `Other`.
    ///
    /// ```
    /// use gridflex_hal::ErrorKind;
    /// use gridflex_slurm::SlurmError;
    /// assert_eq!(SlurmError::JobGone { job: 7 }.kind(), ErrorKind::DeviceLost);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Timeout { .. } | Self::ControllerUnreachable { .. } => ErrorKind::Transient,
            Self::NoPermission { .. } => ErrorKind::NoPermission,
            Self::JobGone { .. } => ErrorKind::DeviceLost,
            Self::WrongState { .. } => ErrorKind::OutOfRange,
            _ => ErrorKind::Other,
        }
    }

    /// The error as the hal's [`HalError`], keeping its kind and message.
    pub fn into_hal(self, operation: &'static str) -> HalError {
        HalError::Library {
            library: "Slurm",
            operation,
            kind: self.kind(),
            detail: self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_survive_the_hal_mapping() {
        let e = SlurmError::ControllerUnreachable {
            command: "scontrol suspend 4".into(),
            detail: "connect failure".into(),
        };
        assert_eq!(e.kind(), ErrorKind::Transient);
        let h = e.into_hal("pause");
        assert_eq!(h.kind(), ErrorKind::Transient);
        assert!(h.to_string().contains("scontrol suspend 4"));
        let h = SlurmError::NoPermission {
            command: "scontrol suspend 4".into(),
            detail: "Access/permission denied for job 4".into(),
        }
        .into_hal("pause");
        assert_eq!(h.kind(), ErrorKind::NoPermission);
        assert_eq!(
            SlurmError::WrongState {
                job: 3,
                operation: "suspend",
                state: "PENDING".into()
            }
            .kind(),
            ErrorKind::OutOfRange
        );
    }
}
