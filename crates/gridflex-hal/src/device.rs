//! The power-device traits: [`PowerDevice`] (every backend) and the optional
//! capabilities [`SmClockLock`] and [`PowerSampleStream`].
//!
//! Optional features are separate traits, never a run-time "unsupported" answer
//! (embedded-hal 1.0 migration guide): a backend that cannot lock clocks simply does not
//! implement [`SmClockLock`], and generic code asks for `D: PowerDevice + SmClockLock`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gridflex_core::{DeviceId, Power};

use crate::{ClockRange, DeviceInfo, HalError, LimitChange, PowerSample, Telemetry};

/// A device whose power can be read and capped (usually one GPU).
///
/// Methods take `&self` so one device can be shared (`Arc<dyn PowerDevice>`) between the
/// telemetry poller and the actuator; a backend serialises writes internally and never
/// holds a lock across an `.await`.
///
/// ```
/// use std::sync::Arc;
/// use gridflex_core::Power;
/// use gridflex_core::ManualClock;
/// use gridflex_hal::sim::{SimGpu, SimGpuSpec};
/// use gridflex_hal::PowerDevice;
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let clock = ManualClock::default();
/// let gpu: Arc<dyn PowerDevice> = Arc::new(SimGpu::new(0, Arc::new(clock.clone()), SimGpuSpec::h100_sxm())?);
/// let change = gpu.set_power_limit(Power::watts(400.0)?).await?;
/// assert_eq!(change.enforced, Power::watts(400.0)?);
/// assert!(gpu.set_power_limit(Power::watts(900.0)?).await.is_err()); // outside 200..=700 W
/// let back = gpu.restore_power_limit().await?;
/// assert_eq!(back.enforced, gpu.info().limit_at_discovery);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[async_trait]
pub trait PowerDevice: Send + Sync {
    /// Identity and static facts, fixed at discovery.
    fn info(&self) -> &DeviceInfo;

    /// The device id (same as `info().id`).
    fn id(&self) -> &DeviceId {
        &self.info().id
    }

    /// Reads the fast telemetry. Must be cheap (microseconds on real hardware): backends
    /// keep slow reads such as NVML's energy counter off this path.
    async fn telemetry(&self) -> Result<Telemetry, HalError>;

    /// Sets the power limit.
    ///
    /// The limit is validated against [`DeviceInfo::limits`] before the hardware is
    /// touched (out of range gives [`HalError::LimitOutOfRange`] and changes nothing);
    /// then it is written, the enforced limit is read back, and both are returned.
    async fn set_power_limit(&self, limit: Power) -> Result<LimitChange, HalError>;

    /// Restores the limit that was in force at discovery
    /// ([`DeviceInfo::limit_at_discovery`], not the factory default).
    async fn restore_power_limit(&self) -> Result<LimitChange, HalError> {
        self.set_power_limit(self.info().limit_at_discovery).await
    }

    /// [`PowerDevice::set_power_limit`] without a future, for a backend that answers
    /// without waiting (an in-process simulator): `Some` with exactly what
    /// `set_power_limit` would have returned, after the same effect; `None` (the
    /// default) when the backend cannot answer at once, having done nothing. The
    /// orchestrator tries it first for every command of a stage, so such a backend
    /// costs no allocation and no poll per command. A backend whose command blocks
    /// (NVML, a remote agent) keeps the default.
    fn set_power_limit_at_once(&self, limit: Power) -> Option<Result<LimitChange, HalError>> {
        let _ = limit;
        None
    }

    /// [`PowerDevice::restore_power_limit`] without a future, under the contract of
    /// [`PowerDevice::set_power_limit_at_once`]. Default: `None`.
    fn restore_power_limit_at_once(&self) -> Option<Result<LimitChange, HalError>> {
        None
    }
}

/// Capability: lock the SM clock into a range (NVML `set_gpu_locked_clocks`, Volta+, root).
#[async_trait]
pub trait SmClockLock: PowerDevice {
    /// The SM clocks the device supports.
    fn sm_clock_range(&self) -> ClockRange;

    /// Locks the SM clock into `range`; refuses an empty range or one outside
    /// [`SmClockLock::sm_clock_range`] with [`HalError::ClockOutOfRange`].
    async fn lock_sm_clocks(&self, range: ClockRange) -> Result<(), HalError>;

    /// Releases a clock lock (the driver chooses clocks again).
    async fn unlock_sm_clocks(&self) -> Result<(), HalError>;
}

/// Capability: high-rate power samples (NVML's `NVML_TOTAL_POWER_SAMPLES` ring, one
/// sample about every 20 ms on H100, `calibration/README.md`).
#[async_trait]
pub trait PowerSampleStream: PowerDevice {
    /// The samples taken strictly after `since` (all buffered samples when `None`), oldest
    /// first. Poll with the last timestamp seen and accumulate: the ring is short.
    async fn power_samples_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<PowerSample>, HalError>;
}
