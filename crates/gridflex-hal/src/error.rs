//! The one error type of `gridflex-hal`, [`HalError`], and its portable [`ErrorKind`].
//!
//! Following embedded-hal 1.0 (`digital.rs`, `spi.rs`): every backend keeps a rich,
//! descriptive error, and [`HalError::kind`] classifies it into a small portable set so
//! generic code (the orchestrator) can decide to retry, skip the device or stop without
//! knowing which backend produced it.

use std::fmt;

use gridflex_core::{DeviceId, JobId, Power};

/// The portable classification of a hardware error.
///
/// Generic code reacts to the kind: `Transient` may be retried, `DeviceLost` takes the
/// device out of the fleet, `NoPermission` and `OutOfRange` are configuration or planning
/// mistakes that retrying will not fix.
///
/// Serde writes the kinds in snake_case (`no_permission`, `out_of_range`,
/// `device_lost`, `transient`, `other`), as the audit log records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller lacks the privilege (root, `CAP_SYS_ADMIN`, signal permission).
    NoPermission,
    /// A requested setting is outside what the device accepts.
    OutOfRange,
    /// The device, process or driver is not there (never was, or has gone away).
    DeviceLost,
    /// A temporary failure (timeout, busy); the same call may succeed later.
    Transient,
    /// Anything else.
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoPermission => "no permission",
            Self::OutOfRange => "out of range",
            Self::DeviceLost => "device lost or not found",
            Self::Transient => "transient failure",
            Self::Other => "other failure",
        })
    }
}

/// Everything that can go wrong in `gridflex-hal`.
///
/// Each variant names the device, job or process involved. [`HalError::kind`] gives the
/// portable classification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HalError {
    /// A power limit outside the device's accepted range; nothing was changed.
    #[error("power limit {requested} for device {device} is outside its range {min} ..= {max}")]
    LimitOutOfRange {
        /// The device.
        device: DeviceId,
        /// What was asked for.
        requested: Power,
        /// Lowest accepted limit.
        min: Power,
        /// Highest accepted limit.
        max: Power,
    },
    /// A clock range that is empty or outside the device's supported clocks; nothing was changed.
    #[error("SM clock range {min_mhz} ..= {max_mhz} MHz for device {device} is invalid: {reason}")]
    ClockOutOfRange {
        /// The device.
        device: DeviceId,
        /// Requested lower bound, MHz.
        min_mhz: u32,
        /// Requested upper bound, MHz.
        max_mhz: u32,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The vendor driver library could not be loaded (no driver installed).
    #[error("{library} not found: {detail}")]
    DriverNotFound {
        /// What was looked for, e.g. "NVIDIA driver library (libnvidia-ml.so.1)".
        library: &'static str,
        /// The loader's message.
        detail: String,
    },
    /// The caller lacks the privilege for an operation on a device.
    #[error("no permission to {operation} on device {device}")]
    NoPermission {
        /// The device.
        device: DeviceId,
        /// What was attempted, e.g. "set the power limit".
        operation: &'static str,
    },
    /// No device with this id (or its handle has gone away).
    #[error("device {device} not found or lost")]
    DeviceLost {
        /// The device.
        device: DeviceId,
    },
    /// The device does not support an operation it was asked for.
    #[error("device {device} does not support {operation}")]
    Unsupported {
        /// The device.
        device: DeviceId,
        /// The operation.
        operation: &'static str,
    },
    /// A backend error tied to a device, with its portable kind and the backend's own message.
    #[error("device {device}: {operation} failed ({kind}): {detail}")]
    Device {
        /// The device (or `"nvml"`-style pseudo id for library-level calls).
        device: DeviceId,
        /// What was attempted.
        operation: &'static str,
        /// The portable kind.
        kind: ErrorKind,
        /// The backend's message.
        detail: String,
    },
    /// A library-level call (no device involved yet, e.g. counting or opening devices) failed.
    #[error("{library}: {operation} failed ({kind}): {detail}")]
    Library {
        /// The library, e.g. "NVML".
        library: &'static str,
        /// What was attempted.
        operation: &'static str,
        /// The portable kind.
        kind: ErrorKind,
        /// The library's message.
        detail: String,
    },
    /// After writing a limit the device reported something else in force.
    #[error("device {device}: requested power limit {requested} but the device reports {reported}")]
    LimitNotApplied {
        /// The device.
        device: DeviceId,
        /// What was written.
        requested: Power,
        /// What the device reports as its requested (software) limit afterwards.
        reported: Power,
    },
    /// A process of a job has exited (or never existed).
    #[error("process {pid} of job {job} has exited or does not exist")]
    ProcessGone {
        /// The job.
        job: JobId,
        /// The process id.
        pid: i32,
    },
    /// The caller may not signal a process of a job.
    #[error("no permission to signal process {pid} of job {job}")]
    ProcessNoPermission {
        /// The job.
        job: JobId,
        /// The process id.
        pid: i32,
    },
    /// Any other workload-control failure.
    #[error("job {job}: {operation} failed: {detail}")]
    Workload {
        /// The job.
        job: JobId,
        /// What was attempted.
        operation: &'static str,
        /// Why.
        detail: String,
    },
    /// A simulator or backend configuration that cannot work (e.g. min limit above max).
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// An id or unit from gridflex-core could not be built (e.g. a non-finite reading).
    #[error(transparent)]
    Core(#[from] gridflex_core::CoreError),
}

impl HalError {
    /// The portable kind of this error.
    ///
    /// ```
    /// use gridflex_core::{DeviceId, Power};
    /// use gridflex_hal::{ErrorKind, HalError};
    /// let e = HalError::LimitOutOfRange {
    ///     device: DeviceId::new("GPU-0")?,
    ///     requested: Power::watts(900.0)?,
    ///     min: Power::watts(200.0)?,
    ///     max: Power::watts(700.0)?,
    /// };
    /// assert_eq!(e.kind(), ErrorKind::OutOfRange);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::LimitOutOfRange { .. } | Self::ClockOutOfRange { .. } => ErrorKind::OutOfRange,
            Self::DriverNotFound { .. } | Self::DeviceLost { .. } | Self::ProcessGone { .. } => {
                ErrorKind::DeviceLost
            }
            Self::NoPermission { .. } | Self::ProcessNoPermission { .. } => ErrorKind::NoPermission,
            Self::Device { kind, .. } | Self::Library { kind, .. } => *kind,
            Self::Unsupported { .. }
            | Self::LimitNotApplied { .. }
            | Self::Workload { .. }
            | Self::InvalidConfig { .. }
            | Self::Core(_) => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages_name_the_device() -> Result<(), gridflex_core::CoreError> {
        let device = DeviceId::new("GPU-7")?;
        let e = HalError::NoPermission {
            device: device.clone(),
            operation: "set the power limit",
        };
        assert_eq!(e.kind(), ErrorKind::NoPermission);
        assert_eq!(
            e.to_string(),
            "no permission to set the power limit on device GPU-7"
        );
        let e = HalError::Device {
            device,
            operation: "read power",
            kind: ErrorKind::Transient,
            detail: "timeout".into(),
        };
        assert_eq!(e.kind(), ErrorKind::Transient);
        assert!(e.to_string().contains("GPU-7"));
        let e = HalError::ProcessGone {
            job: JobId::new("train")?,
            pid: 42,
        };
        assert_eq!(e.kind(), ErrorKind::DeviceLost);
        assert_eq!(ErrorKind::OutOfRange.to_string(), "out of range");
        Ok(())
    }
}
