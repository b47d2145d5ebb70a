//! [`Meter`]: interval meter data indexed by local day, and the [`GapPolicy`].
//!
//! Day-matching baselines compare the same local clock times on different days. The
//! meter data is a UTC [`IntervalSeries`], so a [`Meter`] indexes it once by local day
//! (where each local midnight falls in the series, and where a daylight-saving change
//! moves the clock) and later look-ups are integer arithmetic, with no time-zone
//! conversion in the inner loops. 23- and 25-hour days are handled: a clock time
//! skipped by the spring change has no value on that day, and on the fall-back day a
//! repeated clock time maps to its first occurrence.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use gridflex_core::{Interval, IntervalSeries, MarketZone, OperatingDay, Power};
use serde::{Deserialize, Serialize};

use crate::MvError;

/// What to do when a candidate baseline day has a missing meter value.
///
/// Missing values on the event day itself are always an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GapPolicy {
    /// Any missing value the calculation needs is an error naming the interval.
    #[default]
    Error,
    /// A candidate day with a missing value in the intervals the baseline needs is
    /// dropped (reported as such) and replaced by the next older eligible day.
    SkipDay,
}

/// One local day of the meter data, positioned relative to the series start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalDay {
    pub(crate) date: NaiveDate,
    /// Seconds from the series start to this day's local midnight (may be negative
    /// for a first day the series starts inside).
    pub(crate) start_s: i64,
    /// Length of the day in seconds (82,800, 86,400 or 90,000 in the US zones).
    pub(crate) len_s: i64,
    /// A daylight-saving change inside the day: (elapsed seconds since midnight at
    /// which the offset changes, offset change in seconds, +3600 in spring).
    pub(crate) transition: Option<(i64, i64)>,
}

impl LocalDay {
    fn from_span(
        zone: MarketZone,
        date: NaiveDate,
        span: Interval,
        series_start: DateTime<Utc>,
    ) -> Self {
        let len_s = span.duration().num_seconds();
        let transition = if len_s == 86_400 {
            None
        } else {
            let before = utc_offset_s(zone, span.start());
            let after = utc_offset_s(zone, span.end());
            let delta = after - before;
            // US changes happen on the hour; find the first hour with the new offset.
            (1..=len_s / 3600)
                .map(|h| h * 3600)
                .find(|e| utc_offset_s(zone, span.start() + TimeDelta::seconds(*e)) != before)
                .map(|e| (e, delta))
        };
        Self {
            date,
            start_s: (span.start() - series_start).num_seconds(),
            len_s,
            transition,
        }
    }

    /// Elapsed seconds since local midnight of a clock time (seconds after 00:00 on the
    /// wall clock), or `None` if the clock time does not exist that day.
    pub(crate) fn elapsed_of_clock(&self, clock: i64) -> Option<i64> {
        let elapsed = match self.transition {
            None => clock,
            Some((e, _)) if clock < e => clock,
            Some((e, d)) if clock < e + d => return None,
            Some((_, d)) => clock - d,
        };
        (0..self.len_s).contains(&elapsed).then_some(elapsed)
    }

    /// The wall-clock time (seconds after 00:00) of an elapsed time since midnight.
    pub(crate) fn clock_of_elapsed(&self, elapsed: i64) -> i64 {
        match self.transition {
            Some((e, d)) if elapsed >= e => elapsed + d,
            _ => elapsed,
        }
    }
}

fn utc_offset_s(zone: MarketZone, t: DateTime<Utc>) -> i64 {
    (zone.to_local(t) - t.naive_utc()).num_seconds()
}

/// Interval meter data of one site in one market zone, indexed by local day.
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex_core::{IntervalSeries, MarketZone, Power};
/// use gridflex_mv::Meter;
///
/// // Two days of 15-minute data starting at local midnight in California (UTC-7).
/// let start = Utc.with_ymd_and_hms(2025, 7, 1, 7, 0, 0).unwrap();
/// let kw = Power::kilowatts(500.0)?;
/// let series = IntervalSeries::from_values(start, TimeDelta::minutes(15), vec![kw; 192])?;
/// let meter = Meter::new(series, MarketZone::Caiso)?;
/// assert_eq!(meter.dates().count(), 2);
/// # Ok::<(), gridflex_mv::MvError>(())
/// ```
///
/// The values are kept as one column of watts (8 bytes a value, a missing value as NaN),
/// which is what a fleet settlement streams through: [`Meter::to_series`] gives the
/// series back.
#[derive(Debug, Clone)]
pub struct Meter {
    start: DateTime<Utc>,
    step: TimeDelta,
    /// Watts per interval; NaN where the value is missing (a [`Power`] is never NaN).
    watts: Vec<f64>,
    zone: MarketZone,
    step_s: i64,
    first_date: NaiveDate,
    days: Vec<LocalDay>,
}

impl Meter {
    /// Indexes `series` by the local days of `zone`.
    ///
    /// The interval length must divide an hour (for example 1, 5, 15 or 60 minutes) and
    /// the series must start on that grid, so that every local midnight is an interval
    /// boundary. An empty series is refused.
    pub fn new(series: IntervalSeries<Power>, zone: MarketZone) -> Result<Self, MvError> {
        let watts = series
            .values()
            .iter()
            .map(|v| v.map_or(f64::NAN, Power::as_watts))
            .collect();
        Self::indexed(series.start(), series.step(), watts, zone)
    }

    /// A meter from a column of watts, one value per `step` from `start`, NaN where a
    /// value is missing (the form [`Meter`] keeps, so no conversion): the columnar way
    /// in for data already in memory.
    ///
    /// Every value must be NaN or a valid [`Power`] (finite, within
    /// [`gridflex_core::units::MAX_MAGNITUDE`]); the step and start follow
    /// [`Meter::new`]'s rules; the column must fit an [`IntervalSeries`].
    ///
    /// ```
    /// use chrono::{TimeDelta, TimeZone, Utc};
    /// use gridflex_core::MarketZone;
    /// use gridflex_mv::Meter;
    ///
    /// let start = Utc.with_ymd_and_hms(2025, 7, 1, 7, 0, 0).unwrap();
    /// let mut watts = vec![500_000.0; 96];
    /// watts[10] = f64::NAN; // missing
    /// let meter = Meter::from_watts(start, TimeDelta::minutes(15), watts, MarketZone::Caiso)?;
    /// assert_eq!(meter.len(), 96);
    /// assert_eq!(meter.to_series()?.values()[10], None);
    /// # Ok::<(), gridflex_mv::MvError>(())
    /// ```
    pub fn from_watts(
        start: DateTime<Utc>,
        step: TimeDelta,
        watts: Vec<f64>,
        zone: MarketZone,
    ) -> Result<Self, MvError> {
        check_watts(&watts)?;
        // The bounds an `IntervalSeries` keeps: its length in `i32`, its end in range.
        let fits = i32::try_from(watts.len())
            .ok()
            .and_then(|n| step.checked_mul(n))
            .and_then(|span| start.checked_add_signed(span))
            .is_some();
        if !fits {
            return Err(MvError::TooLarge {
                what: "meter column",
                found: watts.len() as u64,
                limit: i32::MAX as u64,
            });
        }
        Self::indexed(start, step, watts, zone)
    }

    /// [`Meter::from_watts`] for a column a reader built and checked as it read it
    /// (every value NaN or from a [`Power`], the length within an
    /// [`IntervalSeries`]'s bounds): no second pass over the values.
    pub(crate) fn from_read_watts(
        start: DateTime<Utc>,
        step: TimeDelta,
        watts: Vec<f64>,
        zone: MarketZone,
    ) -> Result<Self, MvError> {
        debug_assert!(check_watts(&watts).is_ok());
        Self::indexed(start, step, watts, zone)
    }

    /// Indexes checked values by local day.
    fn indexed(
        start: DateTime<Utc>,
        step: TimeDelta,
        watts: Vec<f64>,
        zone: MarketZone,
    ) -> Result<Self, MvError> {
        let step_s = step.num_seconds();
        if step_s <= 0 || step.subsec_nanos() != 0 || 3600 % step_s != 0 {
            return Err(MvError::UnsupportedStep {
                step,
                reason: "must be a whole number of seconds dividing one hour",
            });
        }
        let end = start + step * watts.len() as i32;
        if watts.is_empty() {
            return Err(MvError::Core(gridflex_core::CoreError::EmptyInterval {
                start,
                end,
            }));
        }
        let first_date = zone.operating_date(start);
        let last_date = zone.operating_date(end - TimeDelta::nanoseconds(1));
        let mut days = Vec::with_capacity((last_date - first_date).num_days() as usize + 1);
        let mut day_start = OperatingDay::new(zone, first_date)?.interval().start();
        let mut date = first_date;
        loop {
            // The next midnight is 24 hours on, except across a DST change; check with
            // one UTC -> local conversion and fall back to the exact rule if needed.
            let guess = day_start
                .checked_add_signed(TimeDelta::days(1))
                .ok_or(gridflex_core::CoreError::DateOutOfRange { date })?;
            let next_date = date
                .succ_opt()
                .ok_or(gridflex_core::CoreError::DateOutOfRange { date })?;
            let local = zone.to_local(guess);
            let next_start = if local.date() == next_date && local.time() == chrono::NaiveTime::MIN
            {
                guess
            } else {
                OperatingDay::new(zone, next_date)?.interval().start()
            };
            let span = Interval::new(day_start, next_start)?;
            days.push(LocalDay::from_span(zone, date, span, start));
            if date >= last_date {
                break;
            }
            date = next_date;
            day_start = next_start;
        }
        if days[0].start_s.rem_euclid(step_s) != 0 {
            return Err(MvError::Misaligned {
                what: "series start",
                at: start,
                step,
            });
        }
        Ok(Self {
            start,
            step,
            watts,
            zone,
            step_s,
            first_date,
            days,
        })
    }

    /// The meter data as a series (built from the column: one allocation).
    pub fn to_series(&self) -> Result<IntervalSeries<Power>, MvError> {
        let values = self.watts.iter().map(|&w| Power::watts(w).ok()).collect();
        Ok(IntervalSeries::new(self.start, self.step, values)?)
    }

    /// The start of the first interval.
    pub const fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// The end of the last interval.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + self.step * self.watts.len() as i32
    }

    /// How many intervals the data holds (missing values included).
    pub fn len(&self) -> usize {
        self.watts.len()
    }

    /// Whether the data holds no interval (never: [`Meter::new`] refuses an empty
    /// series).
    pub fn is_empty(&self) -> bool {
        self.watts.is_empty()
    }

    /// The values in watts, NaN where missing.
    #[inline]
    pub(crate) fn column(&self) -> &[f64] {
        &self.watts
    }

    /// The market zone whose local days index the data.
    pub const fn zone(&self) -> MarketZone {
        self.zone
    }

    /// The interval length.
    pub const fn step(&self) -> TimeDelta {
        self.step
    }

    /// The local dates the data touches, oldest first (the first and last may be partial).
    pub fn dates(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.days.iter().map(|d| d.date)
    }

    pub(crate) fn step_s(&self) -> i64 {
        self.step_s
    }

    /// The indexed day for `date`, if the data touches it.
    #[inline]
    pub(crate) fn day(&self, date: NaiveDate) -> Option<&LocalDay> {
        let k = (date - self.first_date).num_days();
        usize::try_from(k).ok().and_then(|k| self.days.get(k))
    }

    /// The series index of the interval starting `elapsed` seconds after `day`'s
    /// midnight, if it is inside the data.
    #[inline]
    pub(crate) fn index_in_day(&self, day: &LocalDay, elapsed: i64) -> Option<usize> {
        let abs = day.start_s + elapsed;
        if abs < 0 || abs % self.step_s != 0 {
            return None;
        }
        let i = usize::try_from(abs / self.step_s).ok()?;
        (i < self.watts.len()).then_some(i)
    }

    /// The series index of the interval starting at `t`, which must be on the grid and
    /// inside the data.
    pub(crate) fn index_at(&self, what: &'static str, t: DateTime<Utc>) -> Result<usize, MvError> {
        let off = (t - self.start).num_seconds();
        if off.rem_euclid(self.step_s) != 0 || (t - self.start).subsec_nanos() != 0 {
            return Err(MvError::Misaligned {
                what,
                at: t,
                step: self.step(),
            });
        }
        let i = off.div_euclid(self.step_s);
        match usize::try_from(i) {
            Ok(i) if i < self.watts.len() => Ok(i),
            _ => Err(MvError::OutsideData {
                what,
                interval: self.interval_at(t),
                start: self.start,
                end: self.end(),
            }),
        }
    }

    /// The interval of length `step` starting at `t`.
    pub(crate) fn interval_at(&self, t: DateTime<Utc>) -> Interval {
        grid_interval(t, self.step())
    }

    /// The interval of series index `i`.
    pub(crate) fn interval_of(&self, i: usize) -> Interval {
        let at = i32::try_from(i.min(self.watts.len()))
            .ok()
            .and_then(|k| self.start.checked_add_signed(self.step * k))
            .unwrap_or(self.start);
        grid_interval(at, self.step)
    }

    /// The value of `values` (a column on this meter's index) at index `i` in watts, or
    /// the missing-data error.
    #[inline]
    pub(crate) fn watts<C: Column>(
        &self,
        values: C,
        i: usize,
        what: &'static str,
    ) -> Result<f64, MvError> {
        values.get(i).ok_or_else(|| MvError::MissingData {
            interval: self.interval_of(i),
            what,
        })
    }

    /// The same index (start, step, zone, days) with other values: `watts` must be
    /// checked ([`check_watts`]) and as long as this meter's column.
    pub(crate) fn with_column(&self, watts: Vec<f64>) -> Self {
        debug_assert_eq!(watts.len(), self.watts.len());
        Self {
            watts,
            days: self.days.clone(),
            ..*self
        }
    }
}

/// Read access to one meter's values by series index, NaN where a value is missing: a
/// [`Meter`]'s own column, or one lane of a [`FleetGrid`](crate::fleet::FleetGrid)'s
/// block. The baseline engine reads values only through this, and places them with the
/// meter's index, so one engine serves both layouts.
pub(crate) trait Column: Copy {
    /// How many values.
    fn len(self) -> usize;
    /// The value at `i < len()` (NaN where missing).
    fn at(self, i: usize) -> f64;
    /// The values at the indices `r` (within `len()`), in order.
    fn window(self, r: std::ops::Range<usize>) -> impl Iterator<Item = f64> {
        r.map(move |i| self.at(i))
    }
    /// The value at `i`, `None` when missing or out of range.
    #[inline]
    fn get(self, i: usize) -> Option<f64> {
        (i < self.len()).then(|| self.at(i)).filter(|w| !w.is_nan())
    }
}

impl Column for &[f64] {
    #[inline(always)]
    fn len(self) -> usize {
        <[f64]>::len(self)
    }
    #[inline(always)]
    fn at(self, i: usize) -> f64 {
        self[i]
    }
    #[inline(always)]
    fn window(self, r: std::ops::Range<usize>) -> impl Iterator<Item = f64> {
        self[r].iter().copied()
    }
}

/// Meters a [`Lanes`] block holds side by side.
pub(crate) const LANES: usize = 8;

/// One meter of a block of [`LANES`] meters stored interval by interval: value `i` of
/// lane `l` is `rows[i * LANES + l]`, so one cache line holds an interval of every lane.
#[derive(Clone, Copy)]
pub(crate) struct Lanes<'a> {
    pub(crate) rows: &'a [f64],
    pub(crate) lane: usize,
}

impl Column for Lanes<'_> {
    #[inline(always)]
    fn len(self) -> usize {
        self.rows.len() / LANES
    }
    #[inline(always)]
    fn at(self, i: usize) -> f64 {
        self.rows[i * LANES + self.lane]
    }
}

/// Every value NaN (missing) or a valid [`Power`] in watts, else the error naming the
/// first bad value and its index.
pub(crate) fn check_watts(watts: &[f64]) -> Result<(), MvError> {
    match watts
        .iter()
        .enumerate()
        .find(|(_, w)| !w.is_nan() && Power::watts(**w).is_err())
    {
        Some((i, w)) => Err(MvError::InvalidParameter {
            name: "meter value",
            value: format!("{w} at index {i}"),
            reason: "must be NaN (missing) or a finite power within range",
        }),
        None => Ok(()),
    }
}

/// Equal data in the same zone: the same start, step and values (missing where the
/// other is missing).
impl PartialEq for Meter {
    fn eq(&self, other: &Self) -> bool {
        self.start == other.start
            && self.step == other.step
            && self.zone == other.zone
            && self.watts.len() == other.watts.len()
            && self
                .watts
                .iter()
                .zip(&other.watts)
                .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()))
    }
}

/// The interval `[t, t + step)`; a positive step only fails at the end of chrono's time
/// range, where the first second of the Unix epoch stands in so error messages still build.
pub(crate) fn grid_interval(t: DateTime<Utc>, step: TimeDelta) -> Interval {
    Interval::starting_at(t, step).unwrap_or_else(|_| epoch_second())
}

fn epoch_second() -> Interval {
    let t = DateTime::<Utc>::UNIX_EPOCH;
    // One second after the epoch is after the epoch, so this cannot fail.
    #[allow(clippy::expect_used)]
    Interval::new(t, t + TimeDelta::seconds(1)).expect("epoch + 1 s is after the epoch")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn meter_from(start: DateTime<Utc>, step_min: i64, n: usize) -> Meter {
        let kw = Power::kilowatts(1.0).unwrap();
        let s =
            IntervalSeries::from_values(start, TimeDelta::minutes(step_min), vec![kw; n]).unwrap();
        Meter::new(s, MarketZone::Caiso).unwrap()
    }

    #[test]
    fn indexes_dst_days() {
        // 2024-03-09 00:00 PST = 08:00 UTC; three days of hourly data cross spring forward.
        let m = meter_from(Utc.with_ymd_and_hms(2024, 3, 9, 8, 0, 0).unwrap(), 60, 71);
        let spring = *m
            .day(NaiveDate::from_ymd_opt(2024, 3, 10).unwrap())
            .unwrap();
        assert_eq!(spring.len_s, 23 * 3600);
        assert_eq!(spring.transition, Some((2 * 3600, 3600)));
        assert_eq!(spring.elapsed_of_clock(2 * 3600 + 1800), None);
        assert_eq!(spring.elapsed_of_clock(15 * 3600), Some(14 * 3600));
        assert_eq!(spring.clock_of_elapsed(14 * 3600), 15 * 3600);
        // 15:00 PDT on 10 March is 22:00 UTC: index 24 + 14.
        assert_eq!(m.index_in_day(&spring, 14 * 3600), Some(38));
        let next = m
            .day(NaiveDate::from_ymd_opt(2024, 3, 11).unwrap())
            .unwrap();
        assert_eq!(next.start_s, 47 * 3600);
    }

    #[test]
    fn indexes_fall_back_day() {
        let m = meter_from(Utc.with_ymd_and_hms(2024, 11, 3, 7, 0, 0).unwrap(), 5, 300);
        let fall = *m
            .day(NaiveDate::from_ymd_opt(2024, 11, 3).unwrap())
            .unwrap();
        assert_eq!(fall.len_s, 25 * 3600);
        assert_eq!(fall.transition, Some((2 * 3600, -3600)));
        // Clock 01:30 happens twice; the first occurrence is elapsed 01:30.
        assert_eq!(fall.elapsed_of_clock(5400), Some(5400));
        // Clock 15:00 is elapsed 16:00.
        assert_eq!(fall.elapsed_of_clock(15 * 3600), Some(16 * 3600));
        assert_eq!(fall.clock_of_elapsed(2 * 3600 + 300), 3600 + 300);
    }

    #[test]
    fn refuses_bad_steps_and_misaligned_starts() {
        let kw = Power::kilowatts(1.0).unwrap();
        let t = Utc.with_ymd_and_hms(2024, 6, 1, 7, 0, 0).unwrap();
        let s = IntervalSeries::from_values(t, TimeDelta::minutes(7), vec![kw; 3]).unwrap();
        assert!(matches!(
            Meter::new(s, MarketZone::Caiso),
            Err(MvError::UnsupportedStep { .. })
        ));
        let s = IntervalSeries::from_values(
            t + TimeDelta::minutes(2),
            TimeDelta::minutes(5),
            vec![kw; 3],
        )
        .unwrap();
        assert!(matches!(
            Meter::new(s, MarketZone::Caiso),
            Err(MvError::Misaligned { .. })
        ));
    }

    #[test]
    fn a_column_with_a_bad_value_or_no_value_is_refused() {
        let t = Utc.with_ymd_and_hms(2024, 6, 1, 7, 0, 0).unwrap();
        let step = TimeDelta::minutes(15);
        let zone = MarketZone::Caiso;
        for bad in [f64::INFINITY, -f64::INFINITY, 2e18] {
            let e = Meter::from_watts(t, step, vec![1.0, bad], zone).unwrap_err();
            assert!(
                matches!(
                    e,
                    MvError::InvalidParameter {
                        name: "meter value",
                        ..
                    }
                ),
                "{e}"
            );
            assert!(e.to_string().contains("index 1"), "{e}");
        }
        assert!(matches!(
            Meter::from_watts(t, step, Vec::new(), zone),
            Err(MvError::Core(_))
        ));
        assert!(matches!(
            Meter::from_watts(t + TimeDelta::minutes(2), step, vec![1.0], zone),
            Err(MvError::Misaligned { .. })
        ));
        let m = Meter::from_watts(t, step, vec![1.0, f64::NAN, 3.0], zone).unwrap();
        assert_eq!(Column::get(m.column(), 1), None);
        assert_eq!(
            m.to_series().unwrap().values()[2],
            Some(Power::watts(3.0).unwrap())
        );
        assert_eq!(m.end(), t + TimeDelta::minutes(45));
    }
}
