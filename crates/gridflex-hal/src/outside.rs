//! [`OutsideRestore`]: devices and jobs given back by something other than the
//! orchestrator that curtailed them.

use gridflex_core::{DeviceId, JobId};
use serde::{Deserialize, Serialize};

/// Devices given back their pre-curtailment power limit and jobs resumed by something
/// outside the orchestrator's control: typically a node agent whose lease lapsed (a
/// network partition, a stalled orchestrator) or that restarted and restored what its
/// predecessor left. A backend that can restore on its own reports it with this, so
/// that the orchestrator's belief of what each job holds is corrected and an event
/// still running is planned again over the restored hardware.
///
/// ```
/// use gridflex_core::{DeviceId, JobId};
/// use gridflex_hal::OutsideRestore;
///
/// let r = OutsideRestore::new(
///     vec![DeviceId::new("n01-gpu0")?, DeviceId::new("n01-gpu1")?],
///     vec![JobId::new("train")?],
///     "lease expired on node n01",
/// );
/// assert_eq!(r.devices.len(), 2);
/// # Ok::<(), gridflex_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutsideRestore {
    /// Devices back at the limit they had before they were curtailed.
    pub devices: Vec<DeviceId>,
    /// Jobs resumed.
    pub jobs: Vec<JobId>,
    /// Why, in words (for the audit log).
    pub reason: String,
    /// True when the restore is presumed, not reported: whoever could restore on its
    /// own may have done so (a node whose lease may have run out while it could not
    /// be reached), and whether it did cannot be known until it answers again. See
    /// [`OutsideRestore::presumed`].
    #[serde(default)]
    pub presumed: bool,
}

impl OutsideRestore {
    /// A restore of `devices` and `jobs`, for `reason`.
    pub fn new(devices: Vec<DeviceId>, jobs: Vec<JobId>, reason: impl Into<String>) -> Self {
        Self {
            devices,
            jobs,
            reason: reason.into(),
            presumed: false,
        }
    }

    /// A restore that may have happened and cannot be confirmed yet: `devices` and
    /// `jobs` are held by something that gives them back on its own at a moment that
    /// has passed (a node agent whose lease may have run out during a partition). The
    /// orchestrator counts them at their pre-event draw at once, so the rest of the
    /// fleet carries the target, and drives them back to that level itself once they
    /// can be reached.
    ///
    /// ```
    /// use gridflex_core::{DeviceId, JobId};
    /// use gridflex_hal::OutsideRestore;
    ///
    /// let r = OutsideRestore::presumed(
    ///     vec![DeviceId::new("n01-gpu0")?],
    ///     vec![JobId::new("train")?],
    ///     "node n01: no answer before its lease could run out",
    /// );
    /// assert!(r.presumed);
    /// # Ok::<(), gridflex_core::CoreError>(())
    /// ```
    pub fn presumed(devices: Vec<DeviceId>, jobs: Vec<JobId>, reason: impl Into<String>) -> Self {
        Self {
            presumed: true,
            ..Self::new(devices, jobs, reason)
        }
    }
}
