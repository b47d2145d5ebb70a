//! The thin internal seam between the NVML backend's logic and nvml-wrapper.
//!
//! [`NvmlDeviceApi`] has one method per NVML call, in NVML's own units (mW, mJ, MHz,
//! percent, microseconds). The real adapter (`real.rs`) only forwards calls and maps
//! `NvmlError` to [`RawError`]; everything else (unit conversion, validation, error
//! kinds, restore) lives in `mod.rs` and is unit-tested with a fake.

/// NVML failure classes the backend distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawKind {
    /// The driver library could not be loaded, or the driver is not loaded.
    DriverMissing,
    /// `NVML_ERROR_NO_PERMISSION`.
    NoPermission,
    /// `NVML_ERROR_INVALID_ARGUMENT` (for example a limit the driver refuses).
    InvalidArg,
    /// The device or driver lacks the function (`NOT_SUPPORTED`, a symbol missing from an old driver).
    NotSupported,
    /// `NOT_FOUND`, `GPU_IS_LOST`: the device is gone.
    Lost,
    /// `TIMEOUT`, `IN_USE`, `NO_DATA`: may succeed later.
    Transient,
    /// Anything else.
    Other,
}

/// An NVML failure: its class and NVML's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawError {
    pub(crate) kind: RawKind,
    pub(crate) message: String,
}

impl RawError {
    #[cfg(test)]
    pub(crate) fn new(kind: RawKind, message: &str) -> Self {
        Self {
            kind,
            message: message.to_owned(),
        }
    }
}

/// One GPU, in NVML's units.
pub(crate) trait NvmlDeviceApi: Send {
    fn uuid(&self) -> Result<String, RawError>;
    fn name(&self) -> Result<String, RawError>;
    /// `power_management_limit_constraints`: (min, max) mW.
    fn limit_constraints_mw(&self) -> Result<(u32, u32), RawError>;
    /// `power_management_limit_default`, mW.
    fn default_limit_mw(&self) -> Result<u32, RawError>;
    /// `power_management_limit` (the software limit requested), mW.
    fn limit_mw(&self) -> Result<u32, RawError>;
    /// `enforced_power_limit` (after all limiters), mW.
    fn enforced_limit_mw(&self) -> Result<u32, RawError>;
    /// `power_usage` (1 s average on Hopper), mW.
    fn power_average_mw(&self) -> Result<u32, RawError>;
    /// Field `NVML_FI_DEV_POWER_INSTANT`, mW.
    fn power_instant_mw(&self) -> Result<u32, RawError>;
    /// `total_energy_consumption`, mJ. Slow (2.8 ms p50 on H100): never per tick.
    fn energy_mj(&self) -> Result<u64, RawError>;
    /// `clock_info(Clock::SM)`, MHz.
    fn sm_clock_mhz(&self) -> Result<u32, RawError>;
    /// (lowest supported graphics clock, `max_clock_info(Clock::SM)`), MHz.
    fn sm_clock_bounds_mhz(&self) -> Result<(u32, u32), RawError>;
    /// `utilization_rates().gpu`, percent.
    fn utilization_pct(&self) -> Result<u32, RawError>;
    /// `current_throttle_reasons()` contains `SW_POWER_CAP`.
    fn power_cap_binding(&self) -> Result<bool, RawError>;
    /// `set_power_management_limit`, mW.
    fn set_limit_mw(&mut self, limit_mw: u32) -> Result<(), RawError>;
    /// `set_gpu_locked_clocks(Numeric { min, max })`, MHz.
    fn lock_sm_clocks_mhz(&mut self, min: u32, max: u32) -> Result<(), RawError>;
    /// `reset_gpu_locked_clocks`.
    fn reset_sm_clocks(&mut self) -> Result<(), RawError>;
    /// `samples(Sampling::Power, since)`: (timestamp in Unix microseconds, mW), oldest first.
    fn power_samples(&self, since_us: u64) -> Result<Vec<(u64, u32)>, RawError>;
}

/// The library: enumerate devices.
pub(crate) trait NvmlApi: Send + Sync {
    fn device_count(&self) -> Result<u32, RawError>;
    fn device(&self, index: u32) -> Result<Box<dyn NvmlDeviceApi>, RawError>;
}
