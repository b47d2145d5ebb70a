//! [`IntervalSeries`]: a regular time series with explicit missing values.
//!
//! A series has a UTC start, a fixed positive step, and one value per step. A value
//! that was not measured is `None`, never a silent zero, and every operation that
//! combines values propagates the gap rather than inventing data.
//!
//! ```
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use gridflex_core::series::IntervalSeries;
//! use gridflex_core::units::Power;
//!
//! let start = Utc.with_ymd_and_hms(2025, 8, 1, 0, 0, 0).unwrap();
//! let kw = |v: f64| Power::kilowatts(v).ok();
//! // Twelve 5-minute readings: 1 kW for half an hour, then 3 kW.
//! let values: Vec<Option<Power>> = (0..12).map(|i| kw(if i < 6 { 1.0 } else { 3.0 })).collect();
//! let five_min = IntervalSeries::new(start, TimeDelta::minutes(5), values)?;
//!
//! let hourly = five_min.resample(TimeDelta::hours(1))?;
//! assert_eq!(hourly.len(), 1);
//! assert_eq!(hourly.values()[0], kw(2.0)); // power is averaged...
//! assert_eq!(hourly.energy()?, five_min.energy()?); // ...so energy is conserved
//! # Ok::<(), gridflex_core::CoreError>(())
//! ```

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::time::{Interval, nanos, steps_in};
use crate::units::{Energy, Money, Power, Price};

/// How values combine when several intervals merge into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Rates (power, price): the merged value is the mean; splitting repeats the value.
    Mean,
    /// Amounts (energy, money): the merged value is the sum; splitting divides evenly.
    Sum,
}

/// A value that can live in an [`IntervalSeries`].
pub trait Quantity: Copy + PartialEq + std::fmt::Debug {
    /// How the quantity merges on resampling.
    const AGGREGATION: Aggregation;
    /// The value in its base unit.
    fn to_base(self) -> f64;
    /// Builds from a base-unit value; rejects NaN and infinities.
    fn from_base(value: f64) -> Result<Self, CoreError>;
}

impl Quantity for Power {
    const AGGREGATION: Aggregation = Aggregation::Mean;
    fn to_base(self) -> f64 {
        self.as_watts()
    }
    fn from_base(value: f64) -> Result<Self, CoreError> {
        Power::watts(value)
    }
}

impl Quantity for Energy {
    const AGGREGATION: Aggregation = Aggregation::Sum;
    fn to_base(self) -> f64 {
        self.as_joules()
    }
    fn from_base(value: f64) -> Result<Self, CoreError> {
        Energy::joules(value)
    }
}

impl Quantity for Price {
    const AGGREGATION: Aggregation = Aggregation::Mean;
    fn to_base(self) -> f64 {
        self.as_per_megawatt_hour()
    }
    fn from_base(value: f64) -> Result<Self, CoreError> {
        Price::per_megawatt_hour(value)
    }
}

impl Quantity for Money {
    const AGGREGATION: Aggregation = Aggregation::Sum;
    fn to_base(self) -> f64 {
        self.as_usd()
    }
    fn from_base(value: f64) -> Result<Self, CoreError> {
        Money::usd(value)
    }
}

/// Dimensionless values (for example a regulation signal in [-1, 1]) average like rates.
impl Quantity for f64 {
    const AGGREGATION: Aggregation = Aggregation::Mean;
    fn to_base(self) -> f64 {
        self
    }
    fn from_base(value: f64) -> Result<Self, CoreError> {
        if value.is_finite() {
            Ok(value)
        } else {
            Err(CoreError::NonFinite {
                quantity: "value",
                value,
            })
        }
    }
}

/// A regular series: `values[i]` covers `[start + i*step, start + (i+1)*step)`.
///
/// Serde writes `{"start": ..., "step_s": ..., "values": [...]}` with `null` for a
/// missing value (seconds, the [`duration_s`](crate::duration_s) convention; the old
/// name `step_seconds` is still read), and validates when reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(bound(serialize = "Q: Serialize"))]
pub struct IntervalSeries<Q> {
    start: DateTime<Utc>,
    #[serde(rename = "step_s", with = "crate::duration_s::delta")]
    step: TimeDelta,
    values: Vec<Option<Q>>,
}

impl<'de, Q: Quantity + Deserialize<'de>> Deserialize<'de> for IntervalSeries<Q> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(bound(deserialize = "Q: Deserialize<'de>"))]
        struct Raw<Q> {
            start: DateTime<Utc>,
            #[serde(alias = "step_seconds", with = "crate::duration_s::delta")]
            step_s: TimeDelta,
            values: Vec<Option<Q>>,
        }
        let raw = Raw::<Q>::deserialize(d)?;
        // A zero step is refused by `new`.
        IntervalSeries::new(raw.start, raw.step_s, raw.values).map_err(serde::de::Error::custom)
    }
}

impl<Q: Quantity> IntervalSeries<Q> {
    /// Builds a series; fails if `step` is not positive or the series would run past
    /// the representable time range.
    pub fn new(
        start: DateTime<Utc>,
        step: TimeDelta,
        values: Vec<Option<Q>>,
    ) -> Result<Self, CoreError> {
        if step <= TimeDelta::zero() {
            return Err(CoreError::InvalidStep {
                step,
                reason: "must be positive",
            });
        }
        let n = i32::try_from(values.len()).map_err(|_| CoreError::InvalidStep {
            step,
            reason: "too many values",
        })?;
        step.checked_mul(n)
            .and_then(|len| start.checked_add_signed(len))
            .ok_or(CoreError::InvalidStep {
                step,
                reason: "series runs past the time range",
            })?;
        Ok(Self {
            start,
            step,
            values,
        })
    }

    /// Builds a series with every value present.
    pub fn from_values(
        start: DateTime<Utc>,
        step: TimeDelta,
        values: impl IntoIterator<Item = Q>,
    ) -> Result<Self, CoreError> {
        Self::new(start, step, values.into_iter().map(Some).collect())
    }

    /// A series of `len` missing values, to be filled with [`IntervalSeries::set`].
    pub fn missing(start: DateTime<Utc>, step: TimeDelta, len: usize) -> Result<Self, CoreError> {
        Self::new(start, step, vec![None; len])
    }

    /// Start of the first interval.
    pub const fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// The fixed spacing.
    pub const fn step(&self) -> TimeDelta {
        self.step
    }

    /// Number of intervals.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the series has no interval.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// End of the last interval (equals `start` when empty).
    pub fn end(&self) -> DateTime<Utc> {
        // `new` checked that start + len * step is representable and len fits in i32.
        self.start + self.step * self.values.len() as i32
    }

    /// The span covered, or `None` for an empty series.
    pub fn span(&self) -> Option<Interval> {
        Interval::new(self.start, self.end()).ok()
    }

    /// All values in order; `None` marks a missing value.
    pub fn values(&self) -> &[Option<Q>] {
        &self.values
    }

    /// Takes the values out.
    pub fn into_values(self) -> Vec<Option<Q>> {
        self.values
    }

    /// The interval of index `i`, if it exists.
    pub fn interval(&self, i: usize) -> Option<Interval> {
        let k = i32::try_from(i).ok().filter(|_| i < self.values.len())?;
        Interval::starting_at(self.start + self.step * k, self.step).ok()
    }

    /// The index of the interval containing `t`.
    pub fn index_of(&self, t: DateTime<Utc>) -> Result<usize, CoreError> {
        if t < self.start || t >= self.end() {
            return Err(self.out_of_span(t));
        }
        let k = nanos(t - self.start) / nanos(self.step);
        usize::try_from(k).map_err(|_| self.out_of_span(t))
    }

    /// The value of the interval containing `t`: `Ok(None)` when it is missing, an error
    /// when `t` is outside the series.
    pub fn at(&self, t: DateTime<Utc>) -> Result<Option<Q>, CoreError> {
        self.index_of(t).map(|i| self.values[i])
    }

    /// Sets the value of interval `i`; an error if `i` is past the end.
    pub fn set(&mut self, i: usize, value: Option<Q>) -> Result<(), CoreError> {
        let at = self.start;
        let end = self.end();
        let slot = self
            .values
            .get_mut(i)
            .ok_or(CoreError::OutOfSpan { at, start: at, end })?;
        *slot = value;
        Ok(())
    }

    /// Appends one interval at the end.
    pub fn push(&mut self, value: Option<Q>) -> Result<(), CoreError> {
        let n = i32::try_from(self.values.len() + 1).map_err(|_| CoreError::InvalidStep {
            step: self.step,
            reason: "too many values",
        })?;
        self.step
            .checked_mul(n)
            .and_then(|len| self.start.checked_add_signed(len))
            .ok_or(CoreError::InvalidStep {
                step: self.step,
                reason: "series runs past the time range",
            })?;
        self.values.push(value);
        Ok(())
    }

    /// Each interval with its value.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (Interval, Option<Q>)> + '_ {
        let (start, step) = (self.start, self.step);
        self.values.iter().enumerate().map(move |(i, v)| {
            let s = start + step * i as i32;
            (
                Interval {
                    start: s,
                    end: s + step,
                },
                *v,
            )
        })
    }

    /// The first interval without a value, if any.
    pub fn first_missing(&self) -> Option<Interval> {
        self.values
            .iter()
            .position(Option::is_none)
            .and_then(|i| self.interval(i))
    }

    /// All values, or [`CoreError::MissingValue`] naming the first gap.
    pub fn complete_values(&self) -> Result<Vec<Q>, CoreError> {
        self.values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| CoreError::MissingValue {
                    at: self.start + self.step * i as i32,
                })
            })
            .collect()
    }

    /// The part of the series inside `window`, whose bounds must fall on the grid and
    /// inside the series.
    pub fn slice(&self, window: Interval) -> Result<Self, CoreError> {
        let first = self.grid_index("slice start", window.start())?;
        let last = self.grid_index("slice end", window.end())?;
        if last > self.values.len() {
            return Err(self.out_of_span(window.end()));
        }
        Self::new(window.start(), self.step, self.values[first..last].to_vec())
    }

    /// Fails unless `other` has the same start, step and length.
    pub fn check_aligned<R>(&self, other: &IntervalSeries<R>) -> Result<(), CoreError> {
        let reason = if self.start != other.start {
            format!(
                "start {} vs {}",
                self.start.to_rfc3339(),
                other.start.to_rfc3339()
            )
        } else if self.step != other.step {
            format!("step {} vs {}", self.step, other.step)
        } else if self.values.len() != other.values.len() {
            format!("length {} vs {}", self.values.len(), other.values.len())
        } else {
            return Ok(());
        };
        Err(CoreError::SeriesMismatch { reason })
    }

    /// Combines two aligned series value by value; a missing value on either side
    /// gives a missing result.
    pub fn zip_with<R: Quantity, T: Quantity>(
        &self,
        other: &IntervalSeries<R>,
        f: impl Fn(Q, R) -> T,
    ) -> Result<IntervalSeries<T>, CoreError> {
        self.check_aligned(other)?;
        let values = self
            .values
            .iter()
            .zip(&other.values)
            .map(|(a, b)| Some(f((*a)?, (*b)?)))
            .collect();
        IntervalSeries::new(self.start, self.step, values)
    }

    /// Maps each present value, keeping gaps.
    pub fn map<T: Quantity>(&self, f: impl Fn(Q) -> T) -> IntervalSeries<T> {
        IntervalSeries {
            start: self.start,
            step: self.step,
            values: self.values.iter().map(|v| v.map(&f)).collect(),
        }
    }

    /// Changes the step, merging or splitting intervals by the quantity's
    /// [`Aggregation`] so that totals are conserved.
    ///
    /// - Coarser (`new_step` a multiple of `step`): buckets are aligned to multiples of
    ///   `new_step` counted from the Unix epoch (for whole-hour UTC offsets, that is
    ///   also local alignment for steps up to an hour); the series start and end must
    ///   fall on that grid. A bucket with any missing value is missing.
    /// - Finer (`step` a multiple of `new_step`): rates repeat, amounts divide evenly.
    pub fn resample(&self, new_step: TimeDelta) -> Result<Self, CoreError> {
        if new_step <= TimeDelta::zero() {
            return Err(CoreError::InvalidStep {
                step: new_step,
                reason: "must be positive",
            });
        }
        if new_step == self.step {
            return Ok(self.clone());
        }
        if new_step > self.step {
            let k = steps_in(new_step, self.step).map_err(|_| CoreError::InvalidStep {
                step: new_step,
                reason: "is not a multiple of the series step",
            })?;
            let epoch = DateTime::<Utc>::UNIX_EPOCH;
            for (what, t) in [("series start", self.start), ("series end", self.end())] {
                if nanos(t - epoch).rem_euclid(nanos(new_step)) != 0 {
                    return Err(CoreError::Misaligned {
                        what,
                        at: t,
                        origin: epoch,
                        step: new_step,
                    });
                }
            }
            let values = self
                .values
                .chunks(k)
                .map(|bucket| merge::<Q>(bucket))
                .collect::<Result<_, _>>()?;
            Self::new(self.start, new_step, values)
        } else {
            let k = steps_in(self.step, new_step).map_err(|_| CoreError::InvalidStep {
                step: new_step,
                reason: "does not divide the series step",
            })?;
            let mut values = Vec::with_capacity(self.values.len() * k);
            for v in &self.values {
                let part = match v {
                    None => None,
                    Some(q) => Some(match Q::AGGREGATION {
                        Aggregation::Mean => *q,
                        Aggregation::Sum => Q::from_base(q.to_base() / k as f64)?,
                    }),
                };
                values.extend(std::iter::repeat_n(part, k));
            }
            Self::new(self.start, new_step, values)
        }
    }

    /// Sum of all values in the base unit, or the first gap as an error.
    fn sum_base(&self) -> Result<f64, CoreError> {
        let mut sum = 0.0;
        for (i, v) in self.values.iter().enumerate() {
            match v {
                Some(q) => sum += q.to_base(),
                None => {
                    return Err(CoreError::MissingValue {
                        at: self.start + self.step * i as i32,
                    });
                }
            }
        }
        Ok(sum)
    }

    fn grid_index(&self, what: &'static str, t: DateTime<Utc>) -> Result<usize, CoreError> {
        if t < self.start {
            return Err(self.out_of_span(t));
        }
        let offset = nanos(t - self.start);
        let step = nanos(self.step);
        if offset % step != 0 {
            return Err(CoreError::Misaligned {
                what,
                at: t,
                origin: self.start,
                step: self.step,
            });
        }
        usize::try_from(offset / step).map_err(|_| self.out_of_span(t))
    }

    fn out_of_span(&self, at: DateTime<Utc>) -> CoreError {
        CoreError::OutOfSpan {
            at,
            start: self.start,
            end: self.end(),
        }
    }
}

fn merge<Q: Quantity>(bucket: &[Option<Q>]) -> Result<Option<Q>, CoreError> {
    let mut sum = 0.0;
    for v in bucket {
        match v {
            Some(q) => sum += q.to_base(),
            None => return Ok(None),
        }
    }
    let merged = match Q::AGGREGATION {
        Aggregation::Mean => sum / bucket.len() as f64,
        Aggregation::Sum => sum,
    };
    Q::from_base(merged).map(Some)
}

impl IntervalSeries<Power> {
    /// Energy over the whole series (each interval's power times the step), or
    /// [`CoreError::MissingValue`] naming the first gap.
    pub fn energy(&self) -> Result<Energy, CoreError> {
        // One pass, no allocation: sum the watts, then multiply by the step once.
        let watts = self.sum_base()?;
        Ok(Power::watts(watts)? * self.step)
    }

    /// Energy per interval.
    pub fn to_energy(&self) -> IntervalSeries<Energy> {
        let step = self.step;
        self.map(|p| p * step)
    }
}

impl IntervalSeries<Energy> {
    /// Sum over the whole series, or [`CoreError::MissingValue`] naming the first gap.
    pub fn total(&self) -> Result<Energy, CoreError> {
        self.sum_base().and_then(Energy::joules)
    }

    /// Mean power per interval, or [`CoreError::OutOfRange`] when a mean exceeds
    /// [`crate::units::MAX_MAGNITUDE`] (possible only for sub-second steps).
    pub fn to_power(&self) -> Result<IntervalSeries<Power>, CoreError> {
        let seconds = crate::units::seconds_f64(self.step);
        let values = self
            .values
            .iter()
            .map(|v| v.map(|e| Power::watts(e.as_joules() / seconds)).transpose())
            .collect::<Result<_, _>>()?;
        IntervalSeries::new(self.start, self.step, values)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 8, 1, 0, 0, 0).unwrap()
    }

    fn kw(v: f64) -> Option<Power> {
        Power::kilowatts(v).ok()
    }

    #[test]
    fn lookup_by_instant() {
        let s = IntervalSeries::new(t0(), TimeDelta::minutes(15), vec![kw(1.0), None, kw(3.0)])
            .unwrap();
        assert_eq!(s.at(t0() + TimeDelta::minutes(14)).unwrap(), kw(1.0));
        assert_eq!(s.at(t0() + TimeDelta::minutes(15)).unwrap(), None);
        assert_eq!(s.at(t0() + TimeDelta::minutes(44)).unwrap(), kw(3.0));
        assert!(matches!(
            s.at(t0() + TimeDelta::minutes(45)),
            Err(CoreError::OutOfSpan { .. })
        ));
        assert!(s.at(t0() - TimeDelta::seconds(1)).is_err());
    }

    #[test]
    fn missing_values_propagate() {
        let s = IntervalSeries::new(
            t0(),
            TimeDelta::minutes(30),
            vec![kw(1.0), None, kw(3.0), kw(5.0)],
        )
        .unwrap();
        let h = s.resample(TimeDelta::hours(1)).unwrap();
        assert_eq!(h.values(), &[None, kw(4.0)]);
        assert_eq!(
            s.energy(),
            Err(CoreError::MissingValue {
                at: t0() + TimeDelta::minutes(30)
            })
        );
        assert_eq!(
            s.first_missing().unwrap().start(),
            t0() + TimeDelta::minutes(30)
        );
    }

    #[test]
    fn upsampling_energy_divides() {
        let e = IntervalSeries::from_values(
            t0(),
            TimeDelta::hours(1),
            [Energy::kilowatt_hours(12.0).unwrap()],
        )
        .unwrap();
        let fine = e.resample(TimeDelta::minutes(5)).unwrap();
        assert_eq!(fine.len(), 12);
        assert!((fine.values()[0].unwrap().as_kilowatt_hours() - 1.0).abs() < 1e-12);
        assert!((fine.total().unwrap().as_kilowatt_hours() - 12.0).abs() < 1e-9);
    }

    #[test]
    fn resample_rejects_misalignment() {
        let s = IntervalSeries::from_values(
            t0() + TimeDelta::minutes(5),
            TimeDelta::minutes(5),
            [Power::ZERO; 12],
        )
        .unwrap();
        assert!(matches!(
            s.resample(TimeDelta::hours(1)),
            Err(CoreError::Misaligned {
                what: "series start",
                ..
            })
        ));
        assert!(s.resample(TimeDelta::minutes(7)).is_err());
        assert!(s.resample(TimeDelta::seconds(-5)).is_err());
    }

    #[test]
    fn slicing() {
        let s = IntervalSeries::from_values(
            t0(),
            TimeDelta::minutes(5),
            (0..12).map(|i| Power::watts(f64::from(i)).unwrap()),
        )
        .unwrap();
        let w =
            Interval::new(t0() + TimeDelta::minutes(10), t0() + TimeDelta::minutes(20)).unwrap();
        let part = s.slice(w).unwrap();
        assert_eq!(part.start(), w.start());
        assert_eq!(
            part.complete_values().unwrap(),
            vec![Power::watts(2.0).unwrap(), Power::watts(3.0).unwrap()]
        );
        let off =
            Interval::new(t0() + TimeDelta::minutes(11), t0() + TimeDelta::minutes(20)).unwrap();
        assert!(matches!(s.slice(off), Err(CoreError::Misaligned { .. })));
        let past = Interval::new(t0(), t0() + TimeDelta::hours(2)).unwrap();
        assert!(matches!(s.slice(past), Err(CoreError::OutOfSpan { .. })));
    }

    #[test]
    fn alignment_checks() {
        let a = IntervalSeries::from_values(t0(), TimeDelta::minutes(5), [1.0, 2.0]).unwrap();
        let b = IntervalSeries::from_values(t0(), TimeDelta::minutes(15), [1.0, 2.0]).unwrap();
        let err = a.check_aligned(&b).unwrap_err();
        assert!(err.to_string().contains("step"));
        let c = IntervalSeries::from_values(t0(), TimeDelta::minutes(5), [10.0, 20.0]).unwrap();
        let sum = a.zip_with(&c, |x, y| x + y).unwrap();
        assert_eq!(sum.complete_values().unwrap(), vec![11.0, 22.0]);
    }

    #[test]
    fn serde_round_trip_keeps_gaps() {
        let s = IntervalSeries::new(t0(), TimeDelta::minutes(5), vec![kw(1.0), None]).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            json.contains("null") && json.contains(r#""step_s":300.0"#),
            "{json}"
        );
        let back: IntervalSeries<Power> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let old = json.replace("step_s", "step_seconds");
        assert_eq!(
            serde_json::from_str::<IntervalSeries<Power>>(&old).unwrap(),
            s
        );
        let bad = r#"{"start":"2025-08-01T00:00:00Z","step_s":0,"values":[]}"#;
        assert!(serde_json::from_str::<IntervalSeries<Power>>(bad).is_err());
    }
}
