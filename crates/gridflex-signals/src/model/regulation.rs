//! [`RegulationSample`]: one PJM regulation set-point.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::SignalError;

/// Which PJM regulation signal (reference `markets.md` §d).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RegulationKind {
    /// The slower, conventional signal.
    RegA,
    /// The fast, dynamic, roughly energy-neutral signal.
    RegD,
}

/// A normalised regulation signal in [-1, 1] of the assigned regulation capability.
///
/// ```
/// use gridflex_signals::RegulationSignal;
/// assert_eq!(RegulationSignal::new(-0.25)?.value(), -0.25);
/// assert!(RegulationSignal::new(1.01).is_err());
/// assert!(RegulationSignal::new(f64::NAN).is_err());
/// # Ok::<(), gridflex_signals::SignalError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct RegulationSignal(f64);

impl RegulationSignal {
    /// Validates that `value` is a number in [-1, 1].
    pub fn new(value: f64) -> Result<Self, SignalError> {
        if (-1.0..=1.0).contains(&value) {
            // Normalise -0.0 so equal signals print alike.
            Ok(Self(if value == 0.0 { 0.0 } else { value }))
        } else {
            Err(SignalError::invalid(
                "regulation signal",
                format!("{value} is outside [-1, 1]"),
            ))
        }
    }

    /// The value in [-1, 1].
    pub const fn value(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for RegulationSignal {
    type Error = SignalError;
    fn try_from(v: f64) -> Result<Self, SignalError> {
        Self::new(v)
    }
}

impl From<RegulationSignal> for f64 {
    fn from(s: RegulationSignal) -> f64 {
        s.0
    }
}

impl fmt::Display for RegulationSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One regulation set-point, as PJM sends about every 2 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegulationSample {
    /// When the set-point was sent.
    pub at: DateTime<Utc>,
    /// RegA or RegD.
    pub kind: RegulationKind,
    /// The normalised set-point.
    pub signal: RegulationSignal,
}

impl RegulationSample {
    /// A sample.
    pub fn new(at: DateTime<Utc>, kind: RegulationKind, signal: RegulationSignal) -> Self {
        Self { at, kind, signal }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rejects_out_of_range() {
        assert!(serde_json::from_str::<RegulationSignal>("1.5").is_err());
        assert!(serde_json::from_str::<RegulationSignal>("-1").is_ok());
        let s = r#"{"at":"2025-01-01T00:00:02Z","kind":"RegD","signal":0.5}"#;
        let r: RegulationSample = serde_json::from_str(s).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), s);
    }
}
