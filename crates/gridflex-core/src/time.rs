//! Time: UTC [`Interval`]s, market time zones, operating days and hour-ending labels.
//!
//! Inside gridflex every instant is a `DateTime<Utc>`. Market-local time appears only
//! where the markets define things locally: parsers of operator files, and the M&V day
//! rules. Operating days are local calendar days, so they last 23 hours on the
//! spring-forward day and 25 on the fall-back day; [`OperatingDay`] handles both.
//!
//! ```
//! use chrono::{NaiveDate, TimeDelta};
//! use gridflex_core::time::{MarketZone, OperatingDay};
//!
//! // 2024-11-03 is the fall-back day in California: 25 hours, 300 five-minute intervals.
//! let day = OperatingDay::new(MarketZone::Caiso, NaiveDate::from_ymd_opt(2024, 11, 3).unwrap())?;
//! assert_eq!(day.hours(), 25);
//! assert_eq!(day.intervals(TimeDelta::minutes(5))?.len(), 300);
//! let labels: Vec<String> = day.hour_endings().iter().map(|(he, _)| he.to_string()).collect();
//! assert_eq!(&labels[..4], ["HE1", "HE2", "HE25", "HE3"]);
//! # Ok::<(), gridflex_core::CoreError>(())
//! ```

use std::fmt;

use chrono::{
    DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::CoreError;

/// A half-open span of time `[start, end)` in UTC whose end is after its start.
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex_core::time::Interval;
///
/// let start = Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap();
/// let i = Interval::new(start, start + TimeDelta::hours(1))?;
/// assert!(i.contains(start));
/// assert!(!i.contains(i.end()));
/// assert!(Interval::new(start, start).is_err());
/// # Ok::<(), gridflex_core::CoreError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Interval {
    // Crate-visible so hot loops can build grid intervals already known to be valid.
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
}

impl Interval {
    /// Builds `[start, end)`; fails with [`CoreError::EmptyInterval`] unless `end > start`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, CoreError> {
        if end > start {
            Ok(Self { start, end })
        } else {
            Err(CoreError::EmptyInterval { start, end })
        }
    }

    /// Builds `[start, start + length)`.
    pub fn starting_at(start: DateTime<Utc>, length: TimeDelta) -> Result<Self, CoreError> {
        let end = start
            .checked_add_signed(length)
            .ok_or(CoreError::InvalidStep {
                step: length,
                reason: "overflows the time range",
            })?;
        Self::new(start, end)
    }

    /// Inclusive start.
    pub const fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// Exclusive end.
    pub const fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// `end - start`, always positive.
    pub fn duration(&self) -> TimeDelta {
        self.end - self.start
    }

    /// Whether `t` lies in `[start, end)`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    /// Whether `other` lies wholly inside this interval.
    pub fn covers(&self, other: &Interval) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Whether the two intervals share any instant.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The common part, if any.
    pub fn intersection(&self, other: &Interval) -> Option<Interval> {
        Interval::new(self.start.max(other.start), self.end.min(other.end)).ok()
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            start: DateTime<Utc>,
            end: DateTime<Utc>,
        }
        let raw = Raw::deserialize(d)?;
        Interval::new(raw.start, raw.end).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{} .. {})",
            self.start.to_rfc3339(),
            self.end.to_rfc3339()
        )
    }
}

/// How a market labels the repeated hour of the fall-back day.
///
/// Conventions differ between operators and even between one operator's systems, so
/// this is a setting; [`MarketZone::hour_label_style`] gives each market's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum HourLabelStyle {
    /// The repeated hour is hour 25 (`HE25`), placed in time order after the first
    /// `HE2`. CAISO's and NYISO's upload/download formats use the "25" name.
    Hour25,
    /// The repeated hour keeps its clock label with a star (`HE2*`), as PJM's and
    /// ERCOT's DST-flagged reports do.
    Starred,
}

/// One of the market time zones gridflex knows.
///
/// ```
/// use gridflex_core::time::MarketZone;
/// assert_eq!(MarketZone::Pjm.tz().name(), "America/New_York");
/// assert_eq!("caiso".parse::<MarketZone>()?, MarketZone::Caiso);
/// # Ok::<(), gridflex_core::CoreError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum MarketZone {
    /// California ISO and CAISO-style programs: prevailing Pacific time.
    Caiso,
    /// PJM Interconnection: prevailing Eastern time.
    Pjm,
    /// New York ISO: prevailing Eastern time.
    Nyiso,
    /// ERCOT: prevailing Central time.
    Ercot,
}

impl MarketZone {
    /// Every zone, for iteration.
    pub const ALL: [MarketZone; 4] = [
        MarketZone::Caiso,
        MarketZone::Pjm,
        MarketZone::Nyiso,
        MarketZone::Ercot,
    ];

    /// The IANA time zone of the market's prevailing local time.
    pub const fn tz(self) -> Tz {
        match self {
            MarketZone::Caiso => chrono_tz::America::Los_Angeles,
            MarketZone::Pjm | MarketZone::Nyiso => chrono_tz::America::New_York,
            MarketZone::Ercot => chrono_tz::America::Chicago,
        }
    }

    /// The market's default label for the fall-back day's repeated hour.
    pub const fn hour_label_style(self) -> HourLabelStyle {
        match self {
            MarketZone::Caiso | MarketZone::Nyiso => HourLabelStyle::Hour25,
            MarketZone::Pjm | MarketZone::Ercot => HourLabelStyle::Starred,
        }
    }

    /// The operator's short name.
    pub const fn name(self) -> &'static str {
        match self {
            MarketZone::Caiso => "CAISO",
            MarketZone::Pjm => "PJM",
            MarketZone::Nyiso => "NYISO",
            MarketZone::Ercot => "ERCOT",
        }
    }

    /// Maps a local wall-clock time to UTC: one instant, two (on the fall-back
    /// overlap, for the caller to choose from), or an error when the time is skipped.
    ///
    /// ```
    /// use chrono::NaiveDate;
    /// use gridflex_core::time::{LocalMapping, MarketZone};
    ///
    /// let d = NaiveDate::from_ymd_opt(2024, 11, 3).unwrap();
    /// let m = MarketZone::Caiso.to_utc(d.and_hms_opt(1, 30, 0).unwrap())?;
    /// let LocalMapping::Ambiguous { earlier, later } = m else { panic!() };
    /// assert_eq!(later - earlier, chrono::TimeDelta::hours(1));
    ///
    /// let spring = NaiveDate::from_ymd_opt(2024, 3, 10).unwrap().and_hms_opt(2, 30, 0).unwrap();
    /// assert!(MarketZone::Caiso.to_utc(spring).is_err());
    /// # Ok::<(), gridflex_core::CoreError>(())
    /// ```
    pub fn to_utc(self, local: NaiveDateTime) -> Result<LocalMapping, CoreError> {
        let tz = self.tz();
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => Ok(LocalMapping::Unique(t.with_timezone(&Utc))),
            LocalResult::Ambiguous(a, b) => {
                let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
                Ok(LocalMapping::Ambiguous {
                    earlier: a.min(b),
                    later: a.max(b),
                })
            }
            LocalResult::None => Err(CoreError::NonexistentLocalTime {
                local,
                zone: tz.name(),
            }),
        }
    }

    /// The local wall-clock time of a UTC instant.
    pub fn to_local(self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.tz()).naive_local()
    }

    /// The operating day (local date) an instant falls in.
    pub fn operating_date(self, t: DateTime<Utc>) -> NaiveDate {
        self.to_local(t).date()
    }
}

impl fmt::Display for MarketZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MarketZone {
    type Err = CoreError;
    /// Parses an operator name (case-insensitive) or an IANA zone name.
    fn from_str(s: &str) -> Result<Self, CoreError> {
        let t = s.trim();
        MarketZone::ALL
            .into_iter()
            .find(|z| z.name().eq_ignore_ascii_case(t))
            .or(match t {
                "America/Los_Angeles" | "US/Pacific" => Some(MarketZone::Caiso),
                "America/New_York" | "US/Eastern" => Some(MarketZone::Pjm),
                "America/Chicago" | "US/Central" => Some(MarketZone::Ercot),
                _ => None,
            })
            .ok_or_else(|| CoreError::InvalidId {
                kind: "market zone",
                id: s.to_owned(),
                reason: "expected CAISO, PJM, NYISO, ERCOT or one of their IANA zone names",
            })
    }
}

/// The UTC instant(s) of a local wall-clock time that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalMapping {
    /// The usual case: exactly one instant.
    Unique(DateTime<Utc>),
    /// The fall-back overlap: the time happens twice, an hour apart.
    Ambiguous {
        /// The first occurrence (daylight time).
        earlier: DateTime<Utc>,
        /// The second occurrence (standard time).
        later: DateTime<Utc>,
    },
}

impl LocalMapping {
    /// The only instant, or [`CoreError::AmbiguousLocalTime`] naming the local time.
    pub fn unique(
        self,
        local: NaiveDateTime,
        zone: MarketZone,
    ) -> Result<DateTime<Utc>, CoreError> {
        match self {
            LocalMapping::Unique(t) => Ok(t),
            LocalMapping::Ambiguous { .. } => Err(CoreError::AmbiguousLocalTime {
                local,
                zone: zone.tz().name(),
            }),
        }
    }

    /// The earlier instant (the only one when unique).
    pub fn earlier(self) -> DateTime<Utc> {
        match self {
            LocalMapping::Unique(t) | LocalMapping::Ambiguous { earlier: t, .. } => t,
        }
    }

    /// The later instant (the only one when unique).
    pub fn later(self) -> DateTime<Utc> {
        match self {
            LocalMapping::Unique(t) | LocalMapping::Ambiguous { later: t, .. } => t,
        }
    }
}

/// An hour of an operating day, labelled hour-ending as the markets do: `HE1` is
/// local 00:00-01:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HourEnding {
    /// The clock hour-ending number, 1..=24 (the repeated hour keeps its clock number).
    pub clock: u8,
    /// True for the second occurrence of the repeated hour on the fall-back day.
    pub repeated: bool,
    /// The label style used by `Display`.
    pub style: HourLabelStyle,
}

impl HourEnding {
    /// The label, for example `HE7`, `HE25` or `HE2*`.
    pub fn label(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for HourEnding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.repeated, self.style) {
            (false, _) => write!(f, "HE{}", self.clock),
            (true, HourLabelStyle::Hour25) => f.write_str("HE25"),
            (true, HourLabelStyle::Starred) => write!(f, "HE{}*", self.clock),
        }
    }
}

/// A market's local calendar day, from local midnight to the next local midnight, in UTC.
///
/// ```
/// use chrono::{NaiveDate, TimeDelta};
/// use gridflex_core::time::{MarketZone, OperatingDay};
///
/// let spring = OperatingDay::new(MarketZone::Pjm, NaiveDate::from_ymd_opt(2025, 3, 9).unwrap())?;
/// assert_eq!(spring.hours(), 23);
/// assert_eq!(spring.intervals(TimeDelta::minutes(15))?.len(), 92);
/// # Ok::<(), gridflex_core::CoreError>(())
/// ```
///
/// Serde writes `{"zone": ..., "date": ...}` and recomputes the UTC span when reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OperatingDay {
    zone: MarketZone,
    date: NaiveDate,
    span: Interval,
}

#[derive(Serialize, Deserialize)]
struct DayKey {
    zone: MarketZone,
    date: NaiveDate,
}

impl Serialize for OperatingDay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DayKey {
            zone: self.zone,
            date: self.date,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for OperatingDay {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = DayKey::deserialize(d)?;
        OperatingDay::new(key.zone, key.date).map_err(serde::de::Error::custom)
    }
}

impl OperatingDay {
    /// The operating day `date` in `zone`.
    pub fn new(zone: MarketZone, date: NaiveDate) -> Result<Self, CoreError> {
        let start = local_day_start(zone, date)?;
        let next = date.succ_opt().ok_or(CoreError::DateOutOfRange { date })?;
        let end = local_day_start(zone, next)?;
        Ok(Self {
            zone,
            date,
            span: Interval::new(start, end)?,
        })
    }

    /// The operating day containing a UTC instant.
    pub fn containing(zone: MarketZone, t: DateTime<Utc>) -> Result<Self, CoreError> {
        Self::new(zone, zone.operating_date(t))
    }

    /// The market zone.
    pub const fn zone(&self) -> MarketZone {
        self.zone
    }

    /// The local date.
    pub const fn date(&self) -> NaiveDate {
        self.date
    }

    /// The day as a UTC interval (23, 24 or 25 hours long).
    pub const fn interval(&self) -> Interval {
        self.span
    }

    /// Length of the day in whole hours: 23, 24 or 25.
    pub fn hours(&self) -> i64 {
        self.interval().duration().num_hours()
    }

    /// The day cut into consecutive intervals of `step` (for example 5, 15 or 60
    /// minutes). The step must divide the day exactly.
    pub fn intervals(&self, step: TimeDelta) -> Result<Vec<Interval>, CoreError> {
        let span = self.interval();
        let n = steps_in(span.duration(), step)?;
        (0..n)
            .map(|k| Interval::starting_at(span.start + step * k as i32, step))
            .collect()
    }

    /// The day's hours with their hour-ending labels in the market's default style.
    pub fn hour_endings(&self) -> Vec<(HourEnding, Interval)> {
        self.hour_endings_styled(self.zone.hour_label_style())
    }

    /// The day's hours with their hour-ending labels in a chosen style.
    pub fn hour_endings_styled(&self, style: HourLabelStyle) -> Vec<(HourEnding, Interval)> {
        let span = self.interval();
        let mut out: Vec<(HourEnding, Interval)> = Vec::with_capacity(25);
        let mut t = span.start;
        while t < span.end {
            let local = self.zone.to_local(t);
            // hour() is 0..=23, so the hour-ending number always fits in a u8.
            let clock = local.hour() as u8 + 1;
            let repeated = out.iter().any(|(he, _)| he.clock == clock);
            let end = (t + Duration::hours(1)).min(span.end);
            if let Ok(hour) = Interval::new(t, end) {
                out.push((
                    HourEnding {
                        clock,
                        repeated,
                        style,
                    },
                    hour,
                ));
            }
            t = end;
        }
        out
    }

    /// The hour-ending label of an instant within this day, or `None` if it lies outside.
    pub fn hour_ending_of(&self, t: DateTime<Utc>) -> Option<HourEnding> {
        self.hour_endings()
            .into_iter()
            .find(|(_, i)| i.contains(t))
            .map(|(he, _)| he)
    }
}

/// The first instant of a local date: local midnight, or the first local time after it
/// that exists when a zone skips midnight.
fn local_day_start(zone: MarketZone, date: NaiveDate) -> Result<DateTime<Utc>, CoreError> {
    let tz = zone.tz();
    // Probe forward in 15-minute steps: every real DST gap ends on a quarter hour.
    for minutes in (0..=180).step_by(15) {
        let Some(time) = NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0) else {
            continue;
        };
        match tz.from_local_datetime(&date.and_time(time)) {
            LocalResult::Single(t) => return Ok(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => return Ok(a.min(b).with_timezone(&Utc)),
            LocalResult::None => {}
        }
    }
    Err(CoreError::DateOutOfRange { date })
}

/// How many whole `step`s fit in `span`, or an error if `step` is not positive or does
/// not divide `span`.
pub(crate) fn steps_in(span: TimeDelta, step: TimeDelta) -> Result<usize, CoreError> {
    if step <= TimeDelta::zero() {
        return Err(CoreError::InvalidStep {
            step,
            reason: "must be positive",
        });
    }
    let (span_ns, step_ns) = (nanos(span), nanos(step));
    if span_ns % step_ns != 0 {
        return Err(CoreError::InvalidStep {
            step,
            reason: "does not divide the span evenly",
        });
    }
    usize::try_from(span_ns / step_ns).map_err(|_| CoreError::InvalidStep {
        step,
        reason: "too many steps",
    })
}

/// A `TimeDelta` in nanoseconds as i128 (never overflows for chrono's range).
pub(crate) fn nanos(d: TimeDelta) -> i128 {
    i128::from(d.num_seconds()) * 1_000_000_000 + i128::from(d.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn day_lengths_across_dst() {
        for zone in MarketZone::ALL {
            assert_eq!(
                OperatingDay::new(zone, date(2024, 3, 10)).unwrap().hours(),
                23
            );
            assert_eq!(
                OperatingDay::new(zone, date(2024, 11, 3)).unwrap().hours(),
                25
            );
            assert_eq!(
                OperatingDay::new(zone, date(2024, 7, 4)).unwrap().hours(),
                24
            );
        }
    }

    #[test]
    fn spring_day_has_no_he3() {
        let day = OperatingDay::new(MarketZone::Caiso, date(2024, 3, 10)).unwrap();
        let labels: Vec<String> = day.hour_endings().iter().map(|(h, _)| h.label()).collect();
        assert_eq!(labels.len(), 23);
        assert_eq!(&labels[..3], ["HE1", "HE2", "HE4"]);
        assert_eq!(labels.last().unwrap(), "HE24");
    }

    #[test]
    fn fall_day_labels_per_style() {
        let day = OperatingDay::new(MarketZone::Pjm, date(2024, 11, 3)).unwrap();
        let labels: Vec<String> = day.hour_endings().iter().map(|(h, _)| h.label()).collect();
        assert_eq!(labels.len(), 25);
        assert_eq!(&labels[..4], ["HE1", "HE2", "HE2*", "HE3"]);
        let styled = day.hour_endings_styled(HourLabelStyle::Hour25);
        assert_eq!(styled[2].0.label(), "HE25");
    }

    #[test]
    fn hour_ending_of_instant() {
        let day = OperatingDay::new(MarketZone::Caiso, date(2025, 7, 1)).unwrap();
        // 19:30 UTC is 12:30 PDT, hour ending 13.
        let t = Utc.with_ymd_and_hms(2025, 7, 1, 19, 30, 0).unwrap();
        assert_eq!(day.hour_ending_of(t).unwrap().label(), "HE13");
        assert!(day.hour_ending_of(t + TimeDelta::days(1)).is_none());
    }

    #[test]
    fn intervals_reject_bad_steps() {
        let day = OperatingDay::new(MarketZone::Ercot, date(2025, 1, 15)).unwrap();
        assert!(day.intervals(TimeDelta::zero()).is_err());
        assert!(day.intervals(TimeDelta::minutes(7)).is_err());
        assert_eq!(day.intervals(TimeDelta::hours(1)).unwrap().len(), 24);
    }

    #[test]
    fn ambiguous_time_needs_a_choice() {
        let local = date(2024, 11, 3).and_hms_opt(1, 15, 0).unwrap();
        let m = MarketZone::Pjm.to_utc(local).unwrap();
        let err = m.unique(local, MarketZone::Pjm).unwrap_err();
        assert!(err.to_string().contains("occurs twice in America/New_York"));
        assert_eq!(
            m.earlier(),
            Utc.with_ymd_and_hms(2024, 11, 3, 5, 15, 0).unwrap()
        );
        assert_eq!(
            m.later(),
            Utc.with_ymd_and_hms(2024, 11, 3, 6, 15, 0).unwrap()
        );
    }

    #[test]
    fn interval_serde_validates() {
        let bad = r#"{"start":"2025-01-01T01:00:00Z","end":"2025-01-01T00:00:00Z"}"#;
        assert!(serde_json::from_str::<Interval>(bad).is_err());
        let good = r#"{"start":"2025-01-01T00:00:00Z","end":"2025-01-01T01:00:00Z"}"#;
        let i: Interval = serde_json::from_str(good).unwrap();
        assert_eq!(i.duration(), TimeDelta::hours(1));
    }

    #[test]
    fn zone_parsing() {
        assert_eq!(
            "America/Chicago".parse::<MarketZone>().unwrap(),
            MarketZone::Ercot
        );
        assert!("MISO".parse::<MarketZone>().is_err());
    }
}
