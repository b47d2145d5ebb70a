//! The NVIDIA backend (feature `nvml`): [`NvmlSystem`] discovers GPUs, [`NvmlGpu`]
//! implements [`PowerDevice`], [`SmClockLock`] and [`PowerSampleStream`], and
//! [`RestoreGuard`] puts the discovered limit back when dropped.
//!
//! nvml-wrapper loads `libnvidia-ml.so.1` at run time, so this builds everywhere; without
//! a driver [`NvmlSystem::init`] returns [`HalError::DriverNotFound`] ("NVIDIA driver
//! library not found"). Rules (`reference/gpu-power.md` section 1, `calibration/README.md`):
//!
//! - GPUs are keyed by UUID; discovery records the limit range, the default and the
//!   limit in force, which is what restore goes back to.
//! - The telemetry path reads `power_usage` (1 s average), the `POWER_INSTANT` field,
//!   the requested and enforced limits, SM clock, utilization and the `SW_POWER_CAP`
//!   throttle reason: about 1 to 6 us each on an H100. The energy counter (2.8 ms p50,
//!   15 ms p99) is **not** on it: call [`NvmlGpu::refresh_energy`] on a slow timer, and
//!   telemetry reports the last reading with its time.
//! - A limit is validated against the discovered range before NVML is called, written
//!   in mW, read back (requested and enforced) and both are reported.

mod api;
#[cfg(feature = "nvml")]
mod real;

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gridflex_core::{DeviceId, Energy, Power};

use self::api::{NvmlApi, NvmlDeviceApi, RawError, RawKind};
use crate::{
    ClockRange, DeviceInfo, EnergyReading, ErrorKind, HalError, LimitChange, Megahertz, Percent,
    PowerDevice, PowerLimits, PowerSample, PowerSampleStream, SmClockLock, Telemetry,
};

/// What the driver library is called in error messages.
const LIBRARY: &str = "NVIDIA driver library (libnvidia-ml.so.1)";
/// A read-back requested limit may differ from the written one by this much (drivers
/// that keep whole watts).
const READBACK_TOLERANCE_MW: u32 = 1_000;

fn milliwatts(mw: u32) -> Power {
    Power::from_milliwatts(mw)
}

/// Converts a limit to NVML's milliwatts, rounding to the nearest.
fn to_milliwatts(p: Power) -> u32 {
    let mw = (p.as_watts() * 1e3).round();
    if mw <= 0.0 {
        0
    } else if mw >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        mw as u32
    }
}

/// Maps an NVML failure to a [`HalError`]; `device` is `None` for library-level calls.
fn to_hal(device: Option<&DeviceId>, operation: &'static str, e: RawError) -> HalError {
    let kind = match e.kind {
        RawKind::DriverMissing => {
            return HalError::DriverNotFound {
                library: LIBRARY,
                detail: e.message,
            };
        }
        RawKind::NoPermission => ErrorKind::NoPermission,
        RawKind::InvalidArg => ErrorKind::OutOfRange,
        RawKind::Lost => ErrorKind::DeviceLost,
        RawKind::Transient => ErrorKind::Transient,
        RawKind::NotSupported | RawKind::Other => ErrorKind::Other,
    };
    let Some(device) = device else {
        return HalError::Library {
            library: "NVML",
            operation,
            kind,
            detail: e.message,
        };
    };
    let device = device.clone();
    match e.kind {
        RawKind::NoPermission => HalError::NoPermission { device, operation },
        RawKind::NotSupported => HalError::Unsupported { device, operation },
        RawKind::Lost => HalError::DeviceLost { device },
        _ => HalError::Device {
            device,
            operation,
            kind,
            detail: e.message,
        },
    }
}

/// `Ok(Some)` on success, `Ok(None)` where the device does not support the reading,
/// the mapped error otherwise.
fn optional<T>(
    device: &DeviceId,
    operation: &'static str,
    r: Result<T, RawError>,
) -> Result<Option<T>, HalError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind == RawKind::NotSupported => Ok(None),
        Err(e) => Err(to_hal(Some(device), operation, e)),
    }
}

/// An initialised NVML library.
pub struct NvmlSystem {
    api: Box<dyn NvmlApi>,
}

impl std::fmt::Debug for NvmlSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlSystem").finish_non_exhaustive()
    }
}

/// The outcome of discovery: the GPUs that could be opened, and those that could not.
#[derive(Debug)]
pub struct Discovery {
    /// Usable GPUs, in NVML index order.
    pub gpus: Vec<NvmlGpu>,
    /// `(index, why)` for devices NVML counts but that could not be opened (for example
    /// devices this container may not access).
    pub skipped: Vec<(u32, HalError)>,
}

impl NvmlSystem {
    /// Loads the driver library and initialises NVML (once per process).
    ///
    /// Without a driver this is [`HalError::DriverNotFound`], kind
    /// [`ErrorKind::DeviceLost`]; it never panics.
    #[cfg(feature = "nvml")]
    pub fn init() -> Result<Self, HalError> {
        let api = real::RealNvml::init().map_err(|e| to_hal(None, "initialise NVML", e))?;
        Ok(Self { api: Box::new(api) })
    }

    #[cfg(test)]
    fn with_api(api: Box<dyn NvmlApi>) -> Self {
        Self { api }
    }

    /// Number of devices NVML reports (may include devices this process cannot open).
    pub fn device_count(&self) -> Result<u32, HalError> {
        self.api
            .device_count()
            .map_err(|e| to_hal(None, "count devices", e))
    }

    /// Opens every device and records its static facts.
    pub fn discover(&self) -> Result<Discovery, HalError> {
        let count = self.device_count()?;
        let mut out = Discovery {
            gpus: Vec::new(),
            skipped: Vec::new(),
        };
        for index in 0..count {
            match self.open(index) {
                Ok(gpu) => out.gpus.push(gpu),
                Err(e) => out.skipped.push((index, e)),
            }
        }
        Ok(out)
    }

    /// The device with this UUID.
    pub fn gpu_by_uuid(&self, uuid: &str) -> Result<NvmlGpu, HalError> {
        let mut found = self
            .discover()?
            .gpus
            .into_iter()
            .filter(|g| g.info.uuid == uuid);
        match found.next() {
            Some(gpu) => Ok(gpu),
            None => Err(HalError::DeviceLost {
                device: DeviceId::new(uuid)?,
            }),
        }
    }

    fn open(&self, index: u32) -> Result<NvmlGpu, HalError> {
        let dev = self
            .api
            .device(index)
            .map_err(|e| to_hal(None, "open a device", e))?;
        NvmlGpu::discover(dev)
    }
}

/// One NVIDIA GPU.
pub struct NvmlGpu {
    info: DeviceInfo,
    clocks: Option<ClockRange>,
    /// NVML's setters take `&mut Device`; the mutex serialises actuation per GPU and is
    /// never held across an `.await`.
    device: Mutex<Box<dyn NvmlDeviceApi>>,
    energy: Mutex<Option<EnergyReading>>,
}

impl std::fmt::Debug for NvmlGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlGpu")
            .field("info", &self.info)
            .field("clocks", &self.clocks)
            .finish_non_exhaustive()
    }
}

impl NvmlGpu {
    fn discover(dev: Box<dyn NvmlDeviceApi>) -> Result<Self, HalError> {
        let uuid = dev.uuid().map_err(|e| to_hal(None, "read the UUID", e))?;
        let id = DeviceId::new(uuid.clone())?;
        let model = dev
            .name()
            .map_err(|e| to_hal(Some(&id), "read the name", e))?;
        let (min, max) = dev
            .limit_constraints_mw()
            .map_err(|e| to_hal(Some(&id), "read the power limit range", e))?;
        let default = dev
            .default_limit_mw()
            .map_err(|e| to_hal(Some(&id), "read the default power limit", e))?;
        let current = dev
            .limit_mw()
            .map_err(|e| to_hal(Some(&id), "read the power limit", e))?;
        let limits = PowerLimits::new(milliwatts(min), milliwatts(max), milliwatts(default))?;
        let clocks =
            optional(&id, "read the SM clock range", dev.sm_clock_bounds_mhz())?.map(|(lo, hi)| {
                ClockRange {
                    min: Megahertz(lo),
                    max: Megahertz(hi),
                }
            });
        Ok(Self {
            info: DeviceInfo {
                id,
                uuid,
                model,
                limits,
                limit_at_discovery: milliwatts(current),
            },
            clocks,
            device: Mutex::new(dev),
            energy: Mutex::new(None),
        })
    }

    fn dev(&self) -> MutexGuard<'_, Box<dyn NvmlDeviceApi>> {
        self.device
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the energy counter (slow: 2.8 ms p50, 15 ms p99 on H100) and keeps it for
    /// [`PowerDevice::telemetry`]. Call it on a slow timer, never per tick.
    pub fn refresh_energy(&self) -> Result<EnergyReading, HalError> {
        let mj = self
            .dev()
            .energy_mj()
            .map_err(|e| to_hal(Some(&self.info.id), "read the energy counter", e))?;
        let reading = EnergyReading {
            total: Energy::joules(mj as f64 / 1e3)?,
            at: Utc::now(),
        };
        *self
            .energy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reading);
        Ok(reading)
    }

    /// Synchronous [`PowerDevice::telemetry`].
    pub fn telemetry_now(&self) -> Result<Telemetry, HalError> {
        let id = &self.info.id;
        let dev = self.dev();
        let t = Telemetry {
            at: Utc::now(),
            power_average: optional(id, "read power", dev.power_average_mw())?.map(milliwatts),
            power_instant: optional(id, "read instant power", dev.power_instant_mw())?
                .map(milliwatts),
            energy: None,
            requested_limit: optional(id, "read the power limit", dev.limit_mw())?.map(milliwatts),
            enforced_limit: optional(id, "read the enforced power limit", dev.enforced_limit_mw())?
                .map(milliwatts),
            sm_clock: optional(id, "read the SM clock", dev.sm_clock_mhz())?.map(Megahertz),
            utilization: optional(id, "read utilization", dev.utilization_pct())?
                .map(Percent::new_clamped),
            cap_binding: optional(id, "read throttle reasons", dev.power_cap_binding())?,
        };
        drop(dev);
        let energy = *self
            .energy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(Telemetry { energy, ..t })
    }

    /// Synchronous [`PowerDevice::set_power_limit`]: validate, write, read back.
    pub fn set_power_limit_now(&self, limit: Power) -> Result<LimitChange, HalError> {
        let id = &self.info.id;
        let limits = self.info.limits;
        if !limits.contains(limit) {
            return Err(HalError::LimitOutOfRange {
                device: id.clone(),
                requested: limit,
                min: limits.min(),
                max: limits.max(),
            });
        }
        // Rounding to mW cannot leave the range NVML gave in mW.
        let mw =
            to_milliwatts(limit).clamp(to_milliwatts(limits.min()), to_milliwatts(limits.max()));
        let mut dev = self.dev();
        dev.set_limit_mw(mw)
            .map_err(|e| to_hal(Some(id), "set the power limit", e))?;
        let requested = dev
            .limit_mw()
            .map_err(|e| to_hal(Some(id), "read back the power limit", e))?;
        let enforced = dev
            .enforced_limit_mw()
            .map_err(|e| to_hal(Some(id), "read back the enforced power limit", e))?;
        if requested.abs_diff(mw) > READBACK_TOLERANCE_MW {
            return Err(HalError::LimitNotApplied {
                device: id.clone(),
                requested: milliwatts(mw),
                reported: milliwatts(requested),
            });
        }
        Ok(LimitChange {
            requested: milliwatts(requested),
            enforced: milliwatts(enforced),
        })
    }

    /// Synchronous [`PowerDevice::restore_power_limit`].
    pub fn restore_power_limit_now(&self) -> Result<LimitChange, HalError> {
        self.set_power_limit_now(self.info.limit_at_discovery)
    }

    /// A guard that restores the discovered limit when dropped (also on panic unwinding),
    /// so an early return can never leave the GPU capped.
    ///
    /// ```no_run
    /// # #[cfg(feature = "nvml")]
    /// # fn demo() -> Result<(), gridflex_hal::HalError> {
    /// use std::sync::Arc;
    /// use gridflex_core::Power;
    /// use gridflex_hal::nvml::NvmlSystem;
    /// let gpus = NvmlSystem::init()?.discover()?.gpus;
    /// let gpu = Arc::new(gpus.into_iter().next().ok_or(gridflex_hal::HalError::InvalidConfig {
    ///     field: "gpus", reason: "none".into() })?);
    /// let guard = gpu.restore_on_drop();
    /// gpu.set_power_limit_now(Power::watts(400.0)?)?;
    /// // ... the event ...
    /// guard.restore()?; // or just drop it
    /// # Ok(()) }
    /// ```
    pub fn restore_on_drop(self: &Arc<Self>) -> RestoreGuard {
        RestoreGuard {
            gpu: Some(Arc::clone(self)),
        }
    }
}

/// Restores a GPU's discovered power limit when dropped. See [`NvmlGpu::restore_on_drop`].
#[derive(Debug)]
#[must_use = "dropping the guard at once restores the limit at once"]
pub struct RestoreGuard {
    gpu: Option<Arc<NvmlGpu>>,
}

impl RestoreGuard {
    /// Restores now and reports the outcome (dropping cannot report errors).
    pub fn restore(mut self) -> Result<LimitChange, HalError> {
        match self.gpu.take() {
            Some(gpu) => gpu.restore_power_limit_now(),
            None => Err(HalError::InvalidConfig {
                field: "restore guard",
                reason: "already disarmed".into(),
            }),
        }
    }

    /// Gives up the guard without restoring (the new limit is meant to stay).
    pub fn disarm(mut self) {
        self.gpu = None;
    }
}

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        if let Some(gpu) = self.gpu.take() {
            // Nothing can be reported from drop; `restore()` is the checked path.
            let _ = gpu.restore_power_limit_now();
        }
    }
}

#[async_trait]
impl PowerDevice for NvmlGpu {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    async fn telemetry(&self) -> Result<Telemetry, HalError> {
        self.telemetry_now()
    }

    async fn set_power_limit(&self, limit: Power) -> Result<LimitChange, HalError> {
        self.set_power_limit_now(limit)
    }
}

#[async_trait]
impl SmClockLock for NvmlGpu {
    /// The supported SM clocks found at discovery; `0 ..= u32::MAX` MHz when the driver
    /// did not report them (then the driver alone validates a lock).
    fn sm_clock_range(&self) -> ClockRange {
        self.clocks.unwrap_or(ClockRange {
            min: Megahertz(0),
            max: Megahertz(u32::MAX),
        })
    }

    async fn lock_sm_clocks(&self, range: ClockRange) -> Result<(), HalError> {
        let supported = self.sm_clock_range();
        let reason = if range.min > range.max {
            Some("min is above max")
        } else if range.min < supported.min || range.max > supported.max {
            Some("outside the supported clocks")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(HalError::ClockOutOfRange {
                device: self.info.id.clone(),
                min_mhz: range.min.get(),
                max_mhz: range.max.get(),
                reason,
            });
        }
        self.dev()
            .lock_sm_clocks_mhz(range.min.get(), range.max.get())
            .map_err(|e| to_hal(Some(&self.info.id), "lock SM clocks", e))
    }

    async fn unlock_sm_clocks(&self) -> Result<(), HalError> {
        self.dev()
            .reset_sm_clocks()
            .map_err(|e| to_hal(Some(&self.info.id), "unlock SM clocks", e))
    }
}

#[async_trait]
impl PowerSampleStream for NvmlGpu {
    async fn power_samples_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<PowerSample>, HalError> {
        let since_us = since.map_or(0, |t| u64::try_from(t.timestamp_micros()).unwrap_or(0));
        let raw = self
            .dev()
            .power_samples(since_us)
            .map_err(|e| to_hal(Some(&self.info.id), "read power samples", e))?;
        Ok(raw
            .into_iter()
            .filter(|&(us, _)| us > since_us || since.is_none())
            .filter_map(|(us, mw)| {
                let at = DateTime::<Utc>::from_timestamp_micros(i64::try_from(us).ok()?)?;
                Some(PowerSample {
                    at,
                    power: milliwatts(mw),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
