//! Plain data a power device reports: static facts ([`DeviceInfo`], [`PowerLimits`]),
//! a telemetry reading ([`Telemetry`]), the outcome of a limit change ([`LimitChange`])
//! and high-rate power samples ([`PowerSample`]).
//!
//! Every field a backend may not know is an `Option`; nothing is invented.

use std::fmt;

use chrono::{DateTime, Utc};
use gridflex_core::{DeviceId, Energy, Power};
use serde::{Deserialize, Serialize};

use crate::HalError;

/// A clock frequency in whole megahertz (NVML reports MHz as `u32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Megahertz(pub u32);

impl Megahertz {
    /// The value in MHz.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Megahertz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} MHz", self.0)
    }
}

/// A utilization in percent, 0 to 100 (the share of the last sample period in which a
/// kernel ran, as NVML defines GPU utilization).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Percent(u8);

impl Percent {
    /// Builds a percentage; values above 100 are clamped to 100 (some drivers report
    /// slightly above 100 while the sample window shifts).
    pub const fn new_clamped(value: u32) -> Self {
        Self(if value > 100 { 100 } else { value as u8 })
    }
    /// The value, 0 to 100.
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        if v > 100 {
            return Err(serde::de::Error::custom(format!(
                "percent must be 0..=100, got {v}"
            )));
        }
        Ok(Self::new_clamped(v))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} %", self.0)
    }
}

/// The range of power limits a device accepts and the limit it boots with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerLimits {
    min: Power,
    max: Power,
    default: Power,
}

impl PowerLimits {
    /// Validates `0 < min <= default <= max`.
    ///
    /// ```
    /// use gridflex_core::Power;
    /// use gridflex_hal::PowerLimits;
    /// let h100 = PowerLimits::new(Power::watts(200.0)?, Power::watts(700.0)?, Power::watts(700.0)?)?;
    /// assert!(h100.contains(Power::watts(450.0)?));
    /// assert!(PowerLimits::new(Power::watts(700.0)?, Power::watts(200.0)?, Power::watts(700.0)?).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(min: Power, max: Power, default: Power) -> Result<Self, HalError> {
        let ok = min.as_watts() > 0.0 && min <= default && default <= max;
        if !ok {
            return Err(HalError::InvalidConfig {
                field: "power limits",
                reason: format!(
                    "need 0 < min <= default <= max, got min {min}, default {default}, max {max}"
                ),
            });
        }
        Ok(Self { min, max, default })
    }
    /// Builds from constants known to satisfy [`PowerLimits::new`]'s rule.
    pub(crate) const fn unchecked(min: Power, max: Power, default: Power) -> Self {
        Self { min, max, default }
    }
    /// Lowest accepted limit.
    pub const fn min(&self) -> Power {
        self.min
    }
    /// Highest accepted limit (for most GPUs the board's TDP).
    pub const fn max(&self) -> Power {
        self.max
    }
    /// The factory default limit.
    pub const fn default_limit(&self) -> Power {
        self.default
    }
    /// True when `limit` is within `min ..= max`.
    pub fn contains(&self, limit: Power) -> bool {
        self.min <= limit && limit <= self.max
    }
    /// `limit` clamped into the range.
    pub fn clamp(&self, limit: Power) -> Power {
        limit.clamp(self.min, self.max)
    }
}

/// Identity and static facts of a power device, fixed at discovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The gridflex id; the NVML and simulated backends use the device UUID.
    pub id: DeviceId,
    /// The vendor UUID (`GPU-...` for NVIDIA).
    pub uuid: String,
    /// The model name, e.g. "NVIDIA H100 80GB HBM3".
    pub model: String,
    /// Accepted range and factory default.
    pub limits: PowerLimits,
    /// The limit in force when the device was discovered: what
    /// [`PowerDevice::restore_power_limit`](crate::PowerDevice::restore_power_limit) restores
    /// (not the factory default, which an operator may have changed on purpose).
    pub limit_at_discovery: Power,
}

impl DeviceInfo {
    /// A device's facts, checking that the limit at discovery is within `limits`. The
    /// uuid is the id's text (set [`DeviceInfo::uuid`] when the vendor's differs).
    ///
    /// ```
    /// use gridflex_core::{DeviceId, Power};
    /// use gridflex_hal::{DeviceInfo, PowerLimits};
    /// let w = |v| Power::watts(v);
    /// let info = DeviceInfo::new(DeviceId::new("gpu-0")?, "Acme X1",
    ///     PowerLimits::new(w(100.0)?, w(400.0)?, w(400.0)?)?, w(350.0)?)?;
    /// assert!(info.check_limit(w(50.0)?).is_err()); // the trait's out-of-range rule
    /// assert_eq!(info.check_limit(w(300.0)?)?, w(300.0)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(
        id: DeviceId,
        model: impl Into<String>,
        limits: PowerLimits,
        limit_at_discovery: Power,
    ) -> Result<Self, HalError> {
        if !limits.contains(limit_at_discovery) {
            return Err(HalError::InvalidConfig {
                field: "limit at discovery",
                reason: format!(
                    "{limit_at_discovery} is outside the accepted {} ..= {}",
                    limits.min(),
                    limits.max()
                ),
            });
        }
        Ok(Self {
            uuid: id.as_str().to_owned(),
            id,
            model: model.into(),
            limits,
            limit_at_discovery,
        })
    }

    /// The check [`PowerDevice::set_power_limit`](crate::PowerDevice::set_power_limit)
    /// requires before touching hardware: `limit` itself when within
    /// [`DeviceInfo::limits`], else [`HalError::LimitOutOfRange`] naming this device.
    pub fn check_limit(&self, limit: Power) -> Result<Power, HalError> {
        if self.limits.contains(limit) {
            Ok(limit)
        } else {
            Err(HalError::LimitOutOfRange {
                device: self.id.clone(),
                requested: limit,
                min: self.limits.min(),
                max: self.limits.max(),
            })
        }
    }
}

/// An energy counter reading and when it was taken.
///
/// Backends whose counter is slow (NVML: 2.8 ms p50, 15 ms p99 on an H100,
/// `calibration/README.md`) refresh it on a slow timer, so the reading may be older than
/// the rest of a [`Telemetry`]; `at` says how old.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EnergyReading {
    /// Energy since the counter's origin (driver load for NVML, creation for the simulator).
    pub total: Energy,
    /// When the counter had this value.
    pub at: DateTime<Utc>,
}

/// One telemetry reading of a device. Each field is `None` where the backend cannot know it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// When the reading was taken (backend time: wall clock for NVML, virtual for the simulator).
    pub at: DateTime<Utc>,
    /// Instantaneous power (NVML field `POWER_INSTANT`; updated about every 100 ms on H100).
    pub power_instant: Option<Power>,
    /// Averaged power (NVML `power_usage`: a 1 s average on Hopper, updated every 100 ms).
    pub power_average: Option<Power>,
    /// The energy counter, possibly older than `at` (see [`EnergyReading`]).
    pub energy: Option<EnergyReading>,
    /// The software limit last requested (NVML `power_management_limit`).
    pub requested_limit: Option<Power>,
    /// The limit enforced after all limiters, including out-of-band ones (NVML `enforced_power_limit`).
    pub enforced_limit: Option<Power>,
    /// The current SM clock.
    pub sm_clock: Option<Megahertz>,
    /// GPU utilization over the driver's last sample period.
    pub utilization: Option<Percent>,
    /// True when the power cap is what holds the clock down (NVML throttle reason `SW_POWER_CAP`).
    pub cap_binding: Option<bool>,
}

impl Telemetry {
    /// A reading taken at `at` that knows nothing yet: set what the backend knows with
    /// the `with_*` methods.
    ///
    /// ```
    /// use chrono::Utc;
    /// use gridflex_core::Power;
    /// use gridflex_hal::Telemetry;
    /// let t = Telemetry::at(Utc::now()).with_power(Power::watts(512.0)?);
    /// assert_eq!(t.power_average, Some(Power::watts(512.0)?));
    /// assert!(t.energy.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn at(at: DateTime<Utc>) -> Self {
        Self {
            at,
            power_instant: None,
            power_average: None,
            energy: None,
            requested_limit: None,
            enforced_limit: None,
            sm_clock: None,
            utilization: None,
            cap_binding: None,
        }
    }

    /// With one power reading used as both the instantaneous and the averaged power
    /// (for backends that have only one).
    pub fn with_power(mut self, power: Power) -> Self {
        self.power_instant = Some(power);
        self.power_average = Some(power);
        self
    }

    /// With the instantaneous power.
    pub fn with_power_instant(mut self, power: Power) -> Self {
        self.power_instant = Some(power);
        self
    }

    /// With the averaged power.
    pub fn with_power_average(mut self, power: Power) -> Self {
        self.power_average = Some(power);
        self
    }

    /// With the energy counter.
    pub fn with_energy(mut self, total: Energy, at: DateTime<Utc>) -> Self {
        self.energy = Some(EnergyReading { total, at });
        self
    }

    /// With the requested and the enforced limit.
    pub fn with_limits(mut self, requested: Power, enforced: Power) -> Self {
        self.requested_limit = Some(requested);
        self.enforced_limit = Some(enforced);
        self
    }
}

/// What a limit change left in force.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LimitChange {
    /// The limit that was written (after validation).
    pub requested: Power,
    /// The limit the device reports as enforced after the write; it may be lower than
    /// `requested` when another limiter (out-of-band, thermal) is stricter.
    pub enforced: Power,
}

/// One high-rate power sample (NVML's `NVML_TOTAL_POWER_SAMPLES` ring, about every 20 ms).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerSample {
    /// Sample time.
    pub at: DateTime<Utc>,
    /// Power at that time.
    pub power: Power,
}

/// An inclusive range of SM clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockRange {
    /// Lowest clock.
    pub min: Megahertz,
    /// Highest clock.
    pub max: Megahertz,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_clamps_and_serde_validates() {
        assert_eq!(Percent::new_clamped(140).get(), 100);
        assert!(serde_json::from_str::<Percent>("101").is_err());
        assert_eq!(
            serde_json::from_str::<Percent>("42").map(Percent::get).ok(),
            Some(42)
        );
    }

    #[test]
    fn limits_validate_and_clamp() -> Result<(), Box<dyn std::error::Error>> {
        let l = PowerLimits::new(
            Power::watts(200.0)?,
            Power::watts(700.0)?,
            Power::watts(700.0)?,
        )?;
        assert_eq!(l.clamp(Power::watts(50.0)?), Power::watts(200.0)?);
        assert_eq!(l.clamp(Power::watts(900.0)?), Power::watts(700.0)?);
        assert!(!l.contains(Power::watts(700.5)?));
        assert!(PowerLimits::new(Power::ZERO, Power::watts(1.0)?, Power::watts(1.0)?).is_err());
        assert!(
            PowerLimits::new(Power::watts(1.0)?, Power::watts(2.0)?, Power::watts(3.0)?).is_err()
        );
        Ok(())
    }
}
