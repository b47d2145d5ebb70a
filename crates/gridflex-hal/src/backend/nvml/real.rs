//! The real adapter over nvml-wrapper 0.13: forwards calls, maps errors, nothing more.

use std::sync::OnceLock;

use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::device::Device;
use nvml_wrapper::enum_wrappers::device::{Clock, Sampling};
use nvml_wrapper::enums::device::{GpuLockedClocksSetting, SampleValue};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_POWER_INSTANT;

use super::api::{NvmlApi, NvmlDeviceApi, RawError, RawKind};

/// NVML is initialised once per process (init loads every symbol, which is expensive)
/// and lives for the rest of it, which gives `Device<'static>` handles without leaking.
static NVML: OnceLock<Nvml> = OnceLock::new();

pub(crate) fn map_error(e: NvmlError) -> RawError {
    let kind = match &e {
        NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound | NvmlError::DriverNotLoaded => {
            RawKind::DriverMissing
        }
        NvmlError::NoPermission => RawKind::NoPermission,
        NvmlError::InvalidArg => RawKind::InvalidArg,
        NvmlError::NotSupported
        | NvmlError::FailedToLoadSymbol(_)
        | NvmlError::FunctionNotFound => RawKind::NotSupported,
        NvmlError::NotFound | NvmlError::GpuLost => RawKind::Lost,
        NvmlError::Timeout | NvmlError::InUse | NvmlError::NoData => RawKind::Transient,
        _ => RawKind::Other,
    };
    RawError {
        kind,
        message: e.to_string(),
    }
}

/// The process-wide NVML handle, initialised on first use.
pub(crate) struct RealNvml {
    nvml: &'static Nvml,
}

impl RealNvml {
    pub(crate) fn init() -> Result<Self, RawError> {
        if let Some(nvml) = NVML.get() {
            return Ok(Self { nvml });
        }
        let fresh = Nvml::init().map_err(map_error)?;
        // If another thread won the race its handle is kept and ours is dropped.
        Ok(Self {
            nvml: NVML.get_or_init(|| fresh),
        })
    }
}

impl NvmlApi for RealNvml {
    fn device_count(&self) -> Result<u32, RawError> {
        self.nvml.device_count().map_err(map_error)
    }

    fn device(&self, index: u32) -> Result<Box<dyn NvmlDeviceApi>, RawError> {
        let device = self.nvml.device_by_index(index).map_err(map_error)?;
        Ok(Box::new(RealDevice { device }))
    }
}

struct RealDevice {
    device: Device<'static>,
}

fn sample_mw(v: &SampleValue) -> Option<u32> {
    match *v {
        SampleValue::U32(x) => Some(x),
        SampleValue::U64(x) => u32::try_from(x).ok(),
        SampleValue::I64(x) => u32::try_from(x).ok(),
        SampleValue::F64(x) if x.is_finite() && x >= 0.0 && x <= f64::from(u32::MAX) => {
            Some(x as u32)
        }
        SampleValue::F64(_) => None,
    }
}

fn bad_value(what: &str) -> RawError {
    RawError {
        kind: RawKind::Other,
        message: format!("NVML returned an unusable {what} value"),
    }
}

impl NvmlDeviceApi for RealDevice {
    fn uuid(&self) -> Result<String, RawError> {
        self.device.uuid().map_err(map_error)
    }
    fn name(&self) -> Result<String, RawError> {
        self.device.name().map_err(map_error)
    }
    fn limit_constraints_mw(&self) -> Result<(u32, u32), RawError> {
        let c = self
            .device
            .power_management_limit_constraints()
            .map_err(map_error)?;
        Ok((c.min_limit, c.max_limit))
    }
    fn default_limit_mw(&self) -> Result<u32, RawError> {
        self.device
            .power_management_limit_default()
            .map_err(map_error)
    }
    fn limit_mw(&self) -> Result<u32, RawError> {
        self.device.power_management_limit().map_err(map_error)
    }
    fn enforced_limit_mw(&self) -> Result<u32, RawError> {
        self.device.enforced_power_limit().map_err(map_error)
    }
    fn power_average_mw(&self) -> Result<u32, RawError> {
        self.device.power_usage().map_err(map_error)
    }
    fn power_instant_mw(&self) -> Result<u32, RawError> {
        let values = self
            .device
            .field_values_for(&[FieldId(NVML_FI_DEV_POWER_INSTANT)])
            .map_err(map_error)?;
        let sample = values
            .into_iter()
            .next()
            .ok_or_else(|| bad_value("POWER_INSTANT"))?
            .map_err(map_error)?;
        let value = sample.value.map_err(map_error)?;
        sample_mw(&value).ok_or_else(|| bad_value("POWER_INSTANT"))
    }
    fn energy_mj(&self) -> Result<u64, RawError> {
        self.device.total_energy_consumption().map_err(map_error)
    }
    fn sm_clock_mhz(&self) -> Result<u32, RawError> {
        self.device.clock_info(Clock::SM).map_err(map_error)
    }
    fn sm_clock_bounds_mhz(&self) -> Result<(u32, u32), RawError> {
        let max = self.device.max_clock_info(Clock::SM).map_err(map_error)?;
        let mem = self.device.supported_memory_clocks().map_err(map_error)?;
        let top_mem = mem
            .iter()
            .copied()
            .max()
            .ok_or_else(|| bad_value("memory clock list"))?;
        let graphics = self
            .device
            .supported_graphics_clocks(top_mem)
            .map_err(map_error)?;
        let min = graphics
            .iter()
            .copied()
            .min()
            .ok_or_else(|| bad_value("graphics clock list"))?;
        Ok((min, max))
    }
    fn utilization_pct(&self) -> Result<u32, RawError> {
        self.device
            .utilization_rates()
            .map(|u| u.gpu)
            .map_err(map_error)
    }
    fn power_cap_binding(&self) -> Result<bool, RawError> {
        self.device
            .current_throttle_reasons()
            .map(|r| r.contains(ThrottleReasons::SW_POWER_CAP))
            .map_err(map_error)
    }
    fn set_limit_mw(&mut self, limit_mw: u32) -> Result<(), RawError> {
        self.device
            .set_power_management_limit(limit_mw)
            .map_err(map_error)
    }
    fn lock_sm_clocks_mhz(&mut self, min: u32, max: u32) -> Result<(), RawError> {
        self.device
            .set_gpu_locked_clocks(GpuLockedClocksSetting::Numeric {
                min_clock_mhz: min,
                max_clock_mhz: max,
            })
            .map_err(map_error)
    }
    fn reset_sm_clocks(&mut self) -> Result<(), RawError> {
        self.device.reset_gpu_locked_clocks().map_err(map_error)
    }
    fn power_samples(&self, since_us: u64) -> Result<Vec<(u64, u32)>, RawError> {
        let samples = match self.device.samples(Sampling::Power, since_us) {
            Ok(s) => s,
            // NVML answers NOT_FOUND when no sample is newer than `since_us`.
            Err(NvmlError::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(map_error(e)),
        };
        Ok(samples
            .iter()
            .filter_map(|s| sample_mw(&s.value).map(|mw| (s.timestamp, mw)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvml_errors_map_to_classes() {
        assert_eq!(
            map_error(NvmlError::DriverNotLoaded).kind,
            RawKind::DriverMissing
        );
        assert_eq!(
            map_error(NvmlError::LibraryNotFound).kind,
            RawKind::DriverMissing
        );
        assert_eq!(
            map_error(NvmlError::NoPermission).kind,
            RawKind::NoPermission
        );
        assert_eq!(map_error(NvmlError::InvalidArg).kind, RawKind::InvalidArg);
        assert_eq!(map_error(NvmlError::GpuLost).kind, RawKind::Lost);
        assert_eq!(map_error(NvmlError::Timeout).kind, RawKind::Transient);
        assert_eq!(
            map_error(NvmlError::FailedToLoadSymbol("nvmlX".into())).kind,
            RawKind::NotSupported
        );
        assert_eq!(map_error(NvmlError::Unknown).kind, RawKind::Other);
    }

    #[test]
    fn sample_values_convert() {
        assert_eq!(sample_mw(&SampleValue::U32(700_000)), Some(700_000));
        assert_eq!(sample_mw(&SampleValue::U64(u64::MAX)), None);
        assert_eq!(sample_mw(&SampleValue::I64(-1)), None);
        assert_eq!(sample_mw(&SampleValue::F64(f64::NAN)), None);
        assert_eq!(sample_mw(&SampleValue::F64(1.5)), Some(1));
    }
}
