//! Physical and market units as newtypes: [`Power`], [`Energy`], [`Price`], [`Money`].
//!
//! Each unit wraps one finite `f64` in a fixed base unit (watts, joules, US dollars per
//! MWh, US dollars). Constructors reject NaN and infinities with
//! [`CoreError::NonFinite`]; the arithmetic provided is the physically meaningful kind:
//!
//! | expression | result |
//! | --- | --- |
//! | `Power * TimeDelta` | [`Energy`] |
//! | `Energy / TimeDelta` | `Option<Power>` (`None` for a zero or negative duration) |
//! | `Energy * Price` | [`Money`] |
//! | `Energy / Energy`, `Power / Power` | `f64` ratio |
//! | `Q + Q`, `Q - Q`, `-Q`, `Sum` | `Q` |
//! | `Q.checked_mul(f64)`, `Q.checked_div(f64)` | `Option<Q>` |
//!
//! Nothing is ever silently zero. Every quantity is finite and at most
//! [`MAX_MAGNITUDE`] (1e18) in its base unit, so sums and products with durations or
//! prices of valid quantities are finite; they saturate at that bound, far beyond any
//! real fleet or market. Operations whose result can be invalid for valid inputs (a NaN
//! factor, a zero divisor, a zero duration) return `Option` instead.
//!
//! Literals are written with the macros [`power!`](crate::power),
//! [`energy!`](crate::energy), [`price!`](crate::price) and [`money!`](crate::money),
//! which are checked at compile time and so cannot fail at run time:
//! `power!(10 kW)` rather than `Power::kilowatts(10.0)?`. The `f64` constructors stay
//! for values known only at run time (parsed input), and return [`CoreError`].
//!
//! Serde writes each unit as a bare number in its base unit (watts, joules, $/MWh,
//! USD) and refuses non-finite numbers when reading.
//!
//! ```
//! use chrono::TimeDelta;
//! use gridflex_core::{energy, power, price};
//!
//! let gpu = power!(0.7 kW);
//! let energy = gpu * TimeDelta::hours(2);
//! assert_eq!(energy, energy!(1.4 kWh));
//! assert_eq!(energy / TimeDelta::hours(2), Some(gpu));
//! let cost = energy * price!(50 per MWh);
//! assert!((cost.as_usd() - 0.07).abs() < 1e-12);
//! assert_eq!(format!("{gpu}"), "700 W");
//! ```

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub, SubAssign};

use chrono::TimeDelta;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::CoreError;

const JOULES_PER_WH: f64 = 3_600.0;

/// The largest magnitude any quantity may hold, in its base unit (1e18 W, J, $/MWh or
/// USD).
///
/// A bound far beyond any real fleet or market (a terawatt is 1e12 W) makes sums of
/// valid quantities finite by construction, so `+`, `-` and `Sum` need no error path:
/// they saturate at this bound, which no real computation reaches.
pub const MAX_MAGNITUDE: f64 = 1e18;

#[inline]
fn checked(quantity: &'static str, value: f64) -> Result<f64, CoreError> {
    if !value.is_finite() {
        Err(CoreError::NonFinite { quantity, value })
    } else if value.abs() > MAX_MAGNITUDE {
        Err(CoreError::OutOfRange {
            quantity,
            value,
            limit: MAX_MAGNITUDE,
        })
    } else {
        // Normalise -0.0 so equal quantities print and compare alike.
        Ok(if value == 0.0 { 0.0 } else { value })
    }
}

/// `value` limited to `[-MAX_MAGNITUDE, MAX_MAGNITUDE]`; for results of arithmetic on
/// valid quantities, which are always finite.
#[inline]
fn saturate(value: f64) -> f64 {
    let v = value.clamp(-MAX_MAGNITUDE, MAX_MAGNITUDE);
    if v == 0.0 { 0.0 } else { v }
}

/// Checks a literal at compile time (called from the unit macros inside `const { }`):
/// a non-finite or out-of-range literal stops the build.
#[doc(hidden)]
pub const fn literal(value: f64) -> f64 {
    assert!(
        value.is_finite() && value.abs() <= MAX_MAGNITUDE,
        "unit literal must be finite and within MAX_MAGNITUDE"
    );
    if value == 0.0 { 0.0 } else { value }
}

/// Seconds in a `TimeDelta`, with sub-nanosecond precision kept as far as f64 allows.
#[inline]
pub fn seconds_f64(d: TimeDelta) -> f64 {
    d.num_seconds() as f64 + f64::from(d.subsec_nanos()) * 1e-9
}

macro_rules! quantity {
    (
        $(#[$meta:meta])*
        $name:ident, $label:literal, base = $base:ident
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
        pub struct $name(f64);

        impl $name {
            /// The zero quantity.
            pub const ZERO: Self = Self(0.0);

            /// Builds the quantity from a value in its base unit; rejects NaN, infinities
            /// and magnitudes above [`MAX_MAGNITUDE`].
            #[inline]
            pub fn $base(value: f64) -> Result<Self, CoreError> {
                checked($label, value).map(Self)
            }

            /// Const constructor behind the literal macros: the value must be finite and
            /// within [`MAX_MAGNITUDE`], or const evaluation fails (a compile error in a
            /// `const` context). Prefer the macros, which always evaluate it at compile
            /// time.
            #[doc(hidden)]
            pub const fn from_literal(value: f64) -> Self {
                Self(literal(value))
            }

            /// The value in the base unit, the unit serde writes.
            #[inline]
            pub const fn base_value(self) -> f64 {
                self.0
            }

            /// The quantity scaled by a dimensionless factor, or `None` when the result
            /// is not finite or beyond [`MAX_MAGNITUDE`] (a NaN or infinite factor).
            pub fn checked_mul(self, factor: f64) -> Option<Self> {
                checked($label, self.0 * factor).ok().map(Self)
            }

            /// The quantity divided by a dimensionless divisor, or `None` when the
            /// result is not finite or beyond [`MAX_MAGNITUDE`] (a zero or NaN divisor).
            pub fn checked_div(self, divisor: f64) -> Option<Self> {
                checked($label, self.0 / divisor).ok().map(Self)
            }

            /// The quantity `count` times over (a per-GPU draw times the GPUs); saturates
            /// at [`MAX_MAGNITUDE`] like a sum.
            pub fn times(self, count: usize) -> Self {
                Self(saturate(self.0 * count as f64))
            }

            /// The arithmetic mean, or `None` for no values. The mean of valid
            /// quantities is always valid.
            pub fn mean<I: IntoIterator<Item = Self>>(values: I) -> Option<Self> {
                let (sum, n) = values
                    .into_iter()
                    .fold((0.0, 0usize), |(s, n), q| (s + q.0, n + 1));
                (n > 0).then(|| Self(saturate(sum / n as f64)))
            }

            /// The larger of two quantities.
            #[inline]
            pub fn max(self, other: Self) -> Self {
                if other.0 > self.0 { other } else { self }
            }

            /// The smaller of two quantities.
            #[inline]
            pub fn min(self, other: Self) -> Self {
                if other.0 < self.0 { other } else { self }
            }

            /// The quantity limited to `[lo, hi]`.
            #[inline]
            pub fn clamp(self, lo: Self, hi: Self) -> Self {
                self.max(lo).min(hi)
            }

            /// Magnitude.
            #[inline]
            pub fn abs(self) -> Self {
                Self(self.0.abs())
            }

            /// A total order; every value is finite, so this agrees with `PartialOrd`.
            pub fn total_cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.0.total_cmp(&other.0)
            }

            /// True when strictly below zero.
            #[inline]
            pub fn is_negative(self) -> bool {
                self.0 < 0.0
            }
        }

        /// Saturates at [`MAX_MAGNITUDE`] (never reached by real quantities).
        impl Add for $name {
            type Output = Self;
            #[inline]
            fn add(self, rhs: Self) -> Self {
                Self(saturate(self.0 + rhs.0))
            }
        }
        /// Saturates at [`MAX_MAGNITUDE`] (never reached by real quantities).
        impl Sub for $name {
            type Output = Self;
            #[inline]
            fn sub(self, rhs: Self) -> Self {
                Self(saturate(self.0 - rhs.0))
            }
        }
        impl AddAssign for $name {
            #[inline]
            fn add_assign(&mut self, rhs: Self) {
                *self = *self + rhs;
            }
        }
        impl SubAssign for $name {
            #[inline]
            fn sub_assign(&mut self, rhs: Self) {
                *self = *self - rhs;
            }
        }
        impl Neg for $name {
            type Output = Self;
            #[inline]
            fn neg(self) -> Self {
                Self(saturate(-self.0))
            }
        }
        /// The dimensionless ratio of two quantities (NaN or infinite when `rhs` is zero).
        impl Div for $name {
            type Output = f64;
            #[inline]
            fn div(self, rhs: Self) -> f64 {
                self.0 / rhs.0
            }
        }
        impl Sum for $name {
            fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
                iter.fold(Self::ZERO, Add::add)
            }
        }
        impl<'a> Sum<&'a $name> for $name {
            fn sum<I: Iterator<Item = &'a Self>>(iter: I) -> Self {
                iter.copied().sum()
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_f64(self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = f64::deserialize(d)?;
                Self::$base(v).map_err(serde::de::Error::custom)
            }
        }
        impl TryFrom<f64> for $name {
            type Error = CoreError;
            /// Same as the base-unit constructor.
            fn try_from(value: f64) -> Result<Self, CoreError> {
                Self::$base(value)
            }
        }
    };
}

quantity!(
    /// Electrical power, stored in watts.
    ///
    /// `Display` picks W, kW or MW by magnitude and honours a precision (`{:.2}`).
    ///
    /// ```
    /// use gridflex_core::units::Power;
    /// let p = Power::megawatts(1.5)?;
    /// assert_eq!(p.as_kilowatts(), 1_500.0);
    /// assert_eq!(format!("{p:.1}"), "1.5 MW");
    /// assert!(Power::watts(f64::NAN).is_err());
    /// # Ok::<(), gridflex_core::CoreError>(())
    /// ```
    Power, "power", base = watts
);

quantity!(
    /// Energy, stored in joules.
    ///
    /// ```
    /// use gridflex_core::units::Energy;
    /// let e = Energy::kilowatt_hours(2.0)?;
    /// assert_eq!(e.as_joules(), 7_200_000.0);
    /// assert_eq!(e.as_megawatt_hours(), 0.002);
    /// assert_eq!(format!("{e}"), "2 kWh");
    /// # Ok::<(), gridflex_core::CoreError>(())
    /// ```
    Energy, "energy", base = joules
);

quantity!(
    /// An energy price in US dollars per megawatt-hour, the unit LMPs are quoted in.
    /// Negative prices are valid (they occur in real markets).
    ///
    /// ```
    /// use gridflex_core::units::Price;
    /// let lmp = Price::per_megawatt_hour(-12.5)?;
    /// assert_eq!(format!("{lmp}"), "-12.5 $/MWh");
    /// # Ok::<(), gridflex_core::CoreError>(())
    /// ```
    Price, "price", base = per_megawatt_hour
);

quantity!(
    /// An amount of money in US dollars.
    ///
    /// ```
    /// use gridflex_core::units::Money;
    /// let credit = Money::usd(1234.5)?;
    /// assert_eq!(format!("{credit}"), "$1234.50");
    /// # Ok::<(), gridflex_core::CoreError>(())
    /// ```
    Money, "money", base = usd
);

impl Power {
    /// Power in kilowatts; rejects NaN and infinities.
    pub fn kilowatts(kw: f64) -> Result<Self, CoreError> {
        Self::watts(kw * 1e3)
    }
    /// Power in megawatts; rejects NaN and infinities.
    pub fn megawatts(mw: f64) -> Result<Self, CoreError> {
        Self::watts(mw * 1e6)
    }
    /// Power from a whole number of milliwatts, as NVML reports it; every `u32` is a
    /// valid power, so this cannot fail.
    pub const fn from_milliwatts(mw: u32) -> Self {
        Self(mw as f64 / 1e3)
    }
    /// Power in milliwatts; rejects NaN and infinities.
    pub fn milliwatts(mw: f64) -> Result<Self, CoreError> {
        Self::watts(mw * 1e-3)
    }
    /// Watts.
    #[inline]
    pub const fn as_watts(self) -> f64 {
        self.0
    }
    /// Kilowatts.
    #[inline]
    pub fn as_kilowatts(self) -> f64 {
        self.0 / 1e3
    }
    /// Megawatts.
    #[inline]
    pub fn as_megawatts(self) -> f64 {
        self.0 / 1e6
    }
}

impl Energy {
    /// Energy in watt-hours; rejects NaN and infinities.
    pub fn watt_hours(wh: f64) -> Result<Self, CoreError> {
        Self::joules(wh * JOULES_PER_WH)
    }
    /// Energy in kilowatt-hours; rejects NaN and infinities.
    pub fn kilowatt_hours(kwh: f64) -> Result<Self, CoreError> {
        Self::joules(kwh * JOULES_PER_WH * 1e3)
    }
    /// Energy in megawatt-hours; rejects NaN and infinities.
    pub fn megawatt_hours(mwh: f64) -> Result<Self, CoreError> {
        Self::joules(mwh * JOULES_PER_WH * 1e6)
    }
    /// Joules.
    #[inline]
    pub const fn as_joules(self) -> f64 {
        self.0
    }
    /// Watt-hours.
    #[inline]
    pub fn as_watt_hours(self) -> f64 {
        self.0 / JOULES_PER_WH
    }
    /// Kilowatt-hours.
    #[inline]
    pub fn as_kilowatt_hours(self) -> f64 {
        self.0 / (JOULES_PER_WH * 1e3)
    }
    /// Megawatt-hours.
    #[inline]
    pub fn as_megawatt_hours(self) -> f64 {
        self.0 / (JOULES_PER_WH * 1e6)
    }
}

impl Price {
    /// The price in $/MWh.
    #[inline]
    pub const fn as_per_megawatt_hour(self) -> f64 {
        self.0
    }
    /// The price in $/kWh.
    #[inline]
    pub fn as_per_kilowatt_hour(self) -> f64 {
        self.0 / 1e3
    }
}

impl Money {
    /// US dollars.
    #[inline]
    pub const fn as_usd(self) -> f64 {
        self.0
    }
}

/// Power sustained for a duration is energy (saturating at [`MAX_MAGNITUDE`]).
impl Mul<TimeDelta> for Power {
    type Output = Energy;
    #[inline]
    fn mul(self, rhs: TimeDelta) -> Energy {
        Energy(saturate(self.0 * seconds_f64(rhs)))
    }
}
impl Mul<Power> for TimeDelta {
    type Output = Energy;
    #[inline]
    fn mul(self, rhs: Power) -> Energy {
        rhs * self
    }
}
/// Power sustained for a (std) duration is energy (saturating at [`MAX_MAGNITUDE`]).
impl Mul<std::time::Duration> for Power {
    type Output = Energy;
    #[inline]
    fn mul(self, rhs: std::time::Duration) -> Energy {
        Energy(saturate(self.0 * rhs.as_secs_f64()))
    }
}
/// Mean power over a duration; `None` for a zero or negative duration.
impl Div<TimeDelta> for Energy {
    type Output = Option<Power>;
    #[inline]
    fn div(self, rhs: TimeDelta) -> Option<Power> {
        (rhs > TimeDelta::zero())
            .then(|| Power::watts(self.0 / seconds_f64(rhs)).ok())
            .flatten()
    }
}
/// Mean power over a (std) duration; `None` for a zero duration.
impl Div<std::time::Duration> for Energy {
    type Output = Option<Power>;
    #[inline]
    fn div(self, rhs: std::time::Duration) -> Option<Power> {
        (!rhs.is_zero())
            .then(|| Power::watts(self.0 / rhs.as_secs_f64()).ok())
            .flatten()
    }
}
impl Energy {
    /// Mean power over an interval. An [`Interval`](crate::Interval) is never empty, so
    /// this cannot fail; it saturates at [`MAX_MAGNITUDE`] like a sum.
    #[inline]
    pub fn mean_power_over(self, interval: crate::Interval) -> Power {
        Power(saturate(self.0 / seconds_f64(interval.duration())))
    }
}

/// Energy bought or sold at a price is money (saturating at [`MAX_MAGNITUDE`]).
impl Mul<Price> for Energy {
    type Output = Money;
    #[inline]
    fn mul(self, rhs: Price) -> Money {
        Money(saturate(self.as_megawatt_hours() * rhs.0))
    }
}
impl Mul<Energy> for Price {
    type Output = Money;
    #[inline]
    fn mul(self, rhs: Energy) -> Money {
        rhs * self
    }
}

/// A [`Power`] literal checked at compile time: `power!(700 W)`, `power!(10 kW)`,
/// `power!(1.5 MW)`, `power!(-2 kW)`.
///
/// Expands to a `const { }` block, so a literal that is not finite or beyond
/// [`MAX_MAGNITUDE`] fails the build instead of returning an error at run time: the
/// literal cannot fail, so it needs no `?`.
///
/// ```
/// use gridflex_core::{power, Power};
/// assert_eq!(power!(1.5 kW), Power::watts(1500.0)?);
/// assert_eq!(power!(2 MW).as_kilowatts(), 2_000.0);
/// # Ok::<(), gridflex_core::CoreError>(())
/// ```
///
/// ```compile_fail
/// let _ = gridflex_core::power!(1e30 MW);
/// ```
#[macro_export]
macro_rules! power {
    ($v:literal W) => {
        const { $crate::units::Power::from_literal($v as f64) }
    };
    ($v:literal kW) => {
        const { $crate::units::Power::from_literal($v as f64 * 1e3) }
    };
    ($v:literal MW) => {
        const { $crate::units::Power::from_literal($v as f64 * 1e6) }
    };
}

/// An [`Energy`] literal checked at compile time: `energy!(36 J)`, `energy!(500 Wh)`,
/// `energy!(2 kWh)`, `energy!(1.5 MWh)` (see [`power!`] for why).
///
/// ```
/// use gridflex_core::{energy, Energy};
/// assert_eq!(energy!(2 kWh), Energy::kilowatt_hours(2.0)?);
/// # Ok::<(), gridflex_core::CoreError>(())
/// ```
#[macro_export]
macro_rules! energy {
    ($v:literal J) => {
        const { $crate::units::Energy::from_literal($v as f64) }
    };
    ($v:literal Wh) => {
        const { $crate::units::Energy::from_literal($v as f64 * 3_600.0) }
    };
    ($v:literal kWh) => {
        const { $crate::units::Energy::from_literal($v as f64 * 3_600.0 * 1e3) }
    };
    ($v:literal MWh) => {
        const { $crate::units::Energy::from_literal($v as f64 * 3_600.0 * 1e6) }
    };
}

/// A [`Price`] literal checked at compile time: `price!(50 per MWh)` (see [`power!`]).
///
/// ```
/// use gridflex_core::{price, Price};
/// assert_eq!(price!(-12.5 per MWh), Price::per_megawatt_hour(-12.5)?);
/// # Ok::<(), gridflex_core::CoreError>(())
/// ```
#[macro_export]
macro_rules! price {
    ($v:literal per MWh) => {
        const { $crate::units::Price::from_literal($v as f64) }
    };
}

/// A [`Money`] literal in US dollars checked at compile time: `money!(12.5 USD)` (see
/// [`power!`]).
///
/// ```
/// use gridflex_core::{money, Money};
/// assert_eq!(money!(80 USD), Money::usd(80.0)?);
/// # Ok::<(), gridflex_core::CoreError>(())
/// ```
#[macro_export]
macro_rules! money {
    ($v:literal USD) => {
        const { $crate::units::Money::from_literal($v as f64) }
    };
}

/// Writes `value` scaled to the first unit whose threshold it reaches, trimming a
/// needless `.0` when no precision was asked for.
fn write_scaled(f: &mut fmt::Formatter<'_>, value: f64, units: &[(f64, &str)]) -> fmt::Result {
    let (scale, unit) = units
        .iter()
        .copied()
        .find(|(scale, _)| value.abs() >= *scale)
        .or_else(|| units.last().copied())
        .unwrap_or((1.0, ""));
    let v = value / scale;
    match f.precision() {
        Some(p) => write!(f, "{v:.p$} {unit}"),
        None => write!(f, "{} {unit}", round_for_display(v)),
    }
}

/// Rounds to at most 6 significant decimals so `0.1 + 0.2` prints as `0.3`.
fn round_for_display(v: f64) -> f64 {
    let r = (v * 1e6).round() / 1e6;
    if r == 0.0 { 0.0 } else { r }
}

impl fmt::Display for Power {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_scaled(f, self.0, &[(1e6, "MW"), (1e3, "kW"), (1.0, "W")])
    }
}
impl fmt::Display for Energy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wh = self.as_watt_hours();
        write_scaled(f, wh, &[(1e6, "MWh"), (1e3, "kWh"), (1.0, "Wh")])
    }
}
impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_scaled(f, self.0, &[(1.0, "$/MWh")])
    }
}
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = f.precision().unwrap_or(2);
        if self.0 < 0.0 {
            write!(f, "-${:.p$}", -self.0)
        } else {
            write!(f, "${:.p$}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_finite_in_every_constructor() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(Power::watts(bad).is_err());
            assert!(Power::kilowatts(bad).is_err());
            assert!(Power::megawatts(bad).is_err());
            assert!(Energy::joules(bad).is_err());
            assert!(Energy::watt_hours(bad).is_err());
            assert!(Energy::kilowatt_hours(bad).is_err());
            assert!(Energy::megawatt_hours(bad).is_err());
            assert!(Price::per_megawatt_hour(bad).is_err());
            assert!(Money::usd(bad).is_err());
        }
        // Finite input whose conversion overflows is refused too.
        assert!(Power::megawatts(f64::MAX).is_err());
    }

    #[test]
    fn error_names_the_quantity() {
        let err = Energy::kilowatt_hours(f64::NAN).unwrap_err();
        assert_eq!(err.to_string(), "energy must be a finite number, got NaN");
    }

    #[test]
    fn physical_arithmetic() -> Result<(), CoreError> {
        let p = Power::watts(500.0)?;
        let e = p * TimeDelta::minutes(6);
        assert_eq!(e, Energy::watt_hours(50.0)?);
        assert_eq!(e / TimeDelta::minutes(6), Some(p));
        assert_eq!(
            p * std::time::Duration::from_secs(3600),
            Energy::watt_hours(500.0)?
        );
        let m = Energy::megawatt_hours(2.0)? * Price::per_megawatt_hour(40.0)?;
        assert_eq!(m, Money::usd(80.0)?);
        assert_eq!(Energy::ZERO / TimeDelta::zero(), None);
        assert_eq!(e / TimeDelta::minutes(-6), None);
        assert_eq!(e / std::time::Duration::ZERO, None);
        assert_eq!(Power::watts(10.0)?.checked_div(0.0), None);
        assert_eq!(Power::watts(10.0)?.checked_mul(f64::NAN), None);
        assert_eq!(power!(10 W).checked_mul(1.5), Some(power!(15 W)));
        assert_eq!(power!(10 W).times(3), power!(30 W));
        assert_eq!(
            Power::mean([power!(1 kW), power!(3 kW)]),
            Some(power!(2 kW))
        );
        assert_eq!(Power::mean([]), None);
        Ok(())
    }

    #[test]
    fn sums_saturate_at_the_bound_never_zero() -> Result<(), CoreError> {
        let big = Power::watts(MAX_MAGNITUDE)?;
        assert_eq!(big + big, big);
        assert_eq!(-big - big, -big);
        assert!(matches!(
            Power::watts(2.0 * MAX_MAGNITUDE),
            Err(CoreError::OutOfRange { .. })
        ));
        assert_eq!(
            big * TimeDelta::days(365_000),
            Energy::joules(MAX_MAGNITUDE)?
        );
        Ok(())
    }

    #[test]
    fn literals_equal_the_fallible_constructors() -> Result<(), CoreError> {
        assert_eq!(power!(700 W), Power::watts(700.0)?);
        assert_eq!(power!(0.7 kW), Power::kilowatts(0.7)?);
        assert_eq!(power!(-1.5 MW), Power::megawatts(-1.5)?);
        assert_eq!(energy!(36 J), Energy::joules(36.0)?);
        assert_eq!(energy!(50 Wh), Energy::watt_hours(50.0)?);
        assert_eq!(energy!(1.4 kWh), Energy::kilowatt_hours(1.4)?);
        assert_eq!(energy!(2 MWh), Energy::megawatt_hours(2.0)?);
        assert_eq!(price!(40 per MWh), Price::per_megawatt_hour(40.0)?);
        assert_eq!(money!(-3.5 USD), Money::usd(-3.5)?);
        assert!(power!(-0 W).as_watts().is_sign_positive());
        Ok(())
    }

    #[test]
    fn display_scales_units() -> Result<(), CoreError> {
        assert_eq!(Power::watts(84.0)?.to_string(), "84 W");
        assert_eq!(Power::watts(-1500.0)?.to_string(), "-1.5 kW");
        assert_eq!(format!("{:.3}", Power::megawatts(2.0)?), "2.000 MW");
        assert_eq!(Energy::joules(36.0)?.to_string(), "0.01 Wh");
        assert_eq!(Money::usd(-3.456)?.to_string(), "-$3.46");
        Ok(())
    }

    #[test]
    fn serde_is_base_unit_and_validates() -> Result<(), Box<dyn std::error::Error>> {
        let p = Power::kilowatts(1.5)?;
        assert_eq!(serde_json::to_string(&p)?, "1500.0");
        let back: Power = serde_json::from_str("1500.0")?;
        assert_eq!(back, p);
        assert!(serde_json::from_str::<Power>("null").is_err());
        Ok(())
    }

    #[test]
    fn negative_zero_is_normalised() -> Result<(), CoreError> {
        let z = Power::watts(-0.0)?;
        assert!(z.as_watts().is_sign_positive());
        assert_eq!((-Power::ZERO).to_string(), "0 W");
        Ok(())
    }
}
