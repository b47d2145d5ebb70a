//! The one duration convention of every JSON format gridflex reads or writes: seconds
//! as a JSON number (fractional allowed), in a field whose name ends in `_s`.
//!
//! Use these modules with `#[serde(with = "...")]`:
//!
//! | field type | module |
//! | --- | --- |
//! | `std::time::Duration` | [`duration_s::std`](self::std) |
//! | `Option<std::time::Duration>` | [`duration_s::option_std`](self::option_std) |
//! | `chrono::TimeDelta` | [`duration_s::delta`](self::delta) |
//! | `Option<chrono::TimeDelta>` | [`duration_s::option_delta`](self::option_delta) |
//!
//! Reading accepts any finite, non-negative number below [`MAX_SECONDS`], so a
//! file that wrote whole seconds (`1200`) reads as before; writing gives the exact
//! fractional seconds (`1200.0`, `0.05`), rounded to the nanosecond on reading back.
//! Optional fields write `null` for `None`; pair them with `#[serde(default)]` to accept
//! an absent field. A format that used another unit before (milliseconds) accepts its
//! old field names on input where it says so in its own docs.
//!
//! ```
//! use std::time::Duration;
//! use chrono::TimeDelta;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, PartialEq, Debug)]
//! struct Rule {
//!     #[serde(with = "gridflex_core::duration_s::std")]
//!     response_time_s: Duration,
//!     #[serde(default, with = "gridflex_core::duration_s::option_delta")]
//!     hold_s: Option<TimeDelta>,
//! }
//!
//! let r: Rule = serde_json::from_str(r#"{"response_time_s": 0.05}"#)?;
//! assert_eq!(r.response_time_s, Duration::from_millis(50));
//! assert_eq!(serde_json::to_string(&r)?, r#"{"response_time_s":0.05,"hold_s":null}"#);
//! assert!(serde_json::from_str::<Rule>(r#"{"response_time_s": -1}"#).is_err());
//! # Ok::<(), serde_json::Error>(())
//! ```

use ::std::time::Duration;

use chrono::TimeDelta;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// The largest number of seconds accepted on input (below `TimeDelta::MAX`, about 292
/// million years; signals far in the future carry such durations).
pub const MAX_SECONDS: f64 = 9e15;

fn read_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_finite() && (0.0..MAX_SECONDS).contains(&v) {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "expected a duration as a non-negative number of seconds below {MAX_SECONDS:e}, got {v}"
        )))
    }
}

fn nanos_of_delta(d: &TimeDelta) -> i128 {
    i128::from(d.num_seconds()) * 1_000_000_000 + i128::from(d.subsec_nanos())
}

/// Whole seconds and nanoseconds of a validated (finite, in range) number of seconds.
fn split(seconds: f64) -> (u64, u32) {
    let whole = seconds.trunc();
    let nanos = ((seconds - whole) * 1e9).round() as u32;
    if nanos >= 1_000_000_000 {
        (whole as u64 + 1, 0)
    } else {
        (whole as u64, nanos)
    }
}

fn delta_of(seconds: f64) -> TimeDelta {
    let (s, n) = split(seconds);
    // In range: MAX_SECONDS is below TimeDelta::MAX.
    TimeDelta::new(s as i64, n).unwrap_or(TimeDelta::MAX)
}

/// Seconds from whole nanoseconds with one rounding, so 1.50025 s writes as `1.50025`.
fn secs_of_nanos(nanos: i128) -> f64 {
    nanos as f64 / 1e9
}

fn std_of(seconds: f64) -> Duration {
    let (s, n) = split(seconds);
    Duration::new(s, n)
}

/// `std::time::Duration` as seconds.
pub mod std {
    use super::*;
    use serde::Serializer;

    /// Writes the duration as (fractional) seconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(secs_of_nanos(d.as_nanos() as i128))
    }

    /// Reads a non-negative number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        read_seconds(d).map(std_of)
    }
}

/// `Option<std::time::Duration>` as seconds or `null`.
pub mod option_std {
    use super::*;
    use serde::Serializer;

    /// Writes `null` or the seconds.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(secs_of_nanos(d.as_nanos() as i128)),
            None => s.serialize_none(),
        }
    }

    /// Reads `null` or a non-negative number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let v = Option::<f64>::deserialize(d)?;
        v.map(|v| read_seconds(serde::de::value::F64Deserializer::<D::Error>::new(v)).map(std_of))
            .transpose()
    }
}

/// `chrono::TimeDelta` as seconds (non-negative).
pub mod delta {
    use super::*;
    use serde::Serializer;

    /// Writes the duration as (fractional) seconds.
    pub fn serialize<S: Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(secs_of_nanos(nanos_of_delta(d)))
    }

    /// Reads a non-negative number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeDelta, D::Error> {
        read_seconds(d).map(delta_of)
    }
}

/// `Option<chrono::TimeDelta>` as seconds or `null`.
pub mod option_delta {
    use super::*;
    use serde::Serializer;

    /// Writes `null` or the seconds.
    pub fn serialize<S: Serializer>(d: &Option<TimeDelta>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(secs_of_nanos(nanos_of_delta(d))),
            None => s.serialize_none(),
        }
    }

    /// Reads `null` or a non-negative number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TimeDelta>, D::Error> {
        let v = Option::<f64>::deserialize(d)?;
        v.map(|v| read_seconds(serde::de::value::F64Deserializer::<D::Error>::new(v)).map(delta_of))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct All {
        #[serde(with = "super::std")]
        a_s: Duration,
        #[serde(default, with = "super::option_std")]
        b_s: Option<Duration>,
        #[serde(with = "super::delta")]
        c_s: TimeDelta,
        #[serde(default, with = "super::option_delta")]
        d_s: Option<TimeDelta>,
    }

    #[test]
    fn round_trips_and_reads_whole_seconds() {
        let v = All {
            a_s: Duration::from_micros(1_500_250),
            b_s: Some(Duration::from_secs(3)),
            c_s: TimeDelta::milliseconds(20),
            d_s: None,
        };
        let s = serde_json::to_string(&v).unwrap();
        assert_eq!(s, r#"{"a_s":1.50025,"b_s":3.0,"c_s":0.02,"d_s":null}"#);
        assert_eq!(serde_json::from_str::<All>(&s).unwrap(), v);
        let old: All = serde_json::from_str(r#"{"a_s":1200,"c_s":60}"#).unwrap();
        assert_eq!(old.a_s, Duration::from_secs(1200));
        assert_eq!(old.c_s, TimeDelta::minutes(1));
        assert_eq!(old.b_s, None);
        let far: All =
            serde_json::from_str(r#"{"a_s":8208511689539,"c_s":8208511689539.25}"#).unwrap();
        assert_eq!(far.a_s, Duration::from_secs(8_208_511_689_539));
        assert_eq!(
            far.c_s,
            TimeDelta::new(8_208_511_689_539, 250_000_000).unwrap()
        );
    }

    #[test]
    fn refuses_negative_non_finite_and_huge() {
        for bad in ["-1", "1e16", "\"5\"", "null"] {
            let json = format!(r#"{{"a_s":{bad},"c_s":1}}"#);
            assert!(serde_json::from_str::<All>(&json).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<All>(r#"{"a_s":1,"c_s":1,"d_s":-2}"#).is_err());
    }
}
