//! Small unit helpers the planner needs and `gridflex-core` does not have: a ramp rate
//! (power per second).

use std::time::Duration;

use gridflex_core::Power;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::PlannerError;

/// A rate of change of power: how fast facility power may rise, in watts per second.
///
/// Serde writes it as a bare number of watts per second.
///
/// ```
/// use gridflex_core::Power;
/// use gridflex_planner::RampRate;
/// let r = RampRate::per_second(Power::kilowatts(50.0)?)?;
/// assert_eq!(r.watts_per_second(), 50_000.0);
/// assert!(RampRate::per_second(Power::ZERO).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct RampRate(Power);

impl RampRate {
    /// A ramp of `power` per second; it must be above zero.
    pub fn per_second(power: Power) -> Result<Self, PlannerError> {
        if power.as_watts() > 0.0 {
            Ok(Self(power))
        } else {
            Err(PlannerError::invalid(
                "",
                format!("ramp rate must be above zero, got {power}/s"),
            ))
        }
    }

    /// The power gained per second.
    pub fn per_second_power(self) -> Power {
        self.0
    }

    /// Watts per second.
    pub fn watts_per_second(self) -> f64 {
        self.0.as_watts()
    }
}

impl Serialize for RampRate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RampRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = Power::deserialize(d)?;
        RampRate::per_second(p).map_err(serde::de::Error::custom)
    }
}

/// A wattage the planner computed, as a [`Power`]. Planner arithmetic works on
/// validated finite inputs, so this fails only on a bug; the error then says so
/// rather than turning the value into zero.
pub(crate) fn watts(v: f64) -> Result<Power, PlannerError> {
    Power::watts(v).map_err(|source| PlannerError::Core {
        field: "computed power".into(),
        source,
    })
}

/// Seconds as a `Duration`, saturating at zero and at `Duration::MAX`.
pub(crate) fn secs(v: f64) -> Duration {
    if v.is_nan() || v <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(v).unwrap_or(Duration::MAX)
    }
}
