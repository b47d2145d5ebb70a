//! The one error type of `gridflex-core`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};

/// Everything that can go wrong in `gridflex-core`.
///
/// Each variant names what was wrong and the value or place involved, so a caller
/// several layers up can still tell a user what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A quantity was built from NaN or an infinity.
    #[error("{quantity} must be a finite number, got {value}")]
    NonFinite {
        /// Which quantity (for example `"power"`).
        quantity: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// A quantity whose magnitude exceeds [`crate::units::MAX_MAGNITUDE`].
    #[error("{quantity} magnitude must be at most {limit:e} base units, got {value:e}")]
    OutOfRange {
        /// Which quantity (for example `"power"`).
        quantity: &'static str,
        /// The rejected value.
        value: f64,
        /// The largest accepted magnitude.
        limit: f64,
    },
    /// A throughput curve whose points break its rules.
    #[error("throughput curve{}: {reason}", point.map(|i| format!(" points[{i}]")).unwrap_or_default())]
    InvalidCurve {
        /// The offending point, when one point is at fault.
        point: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// A manual clock was asked to move back in time.
    #[error("clock cannot go back to {to}: it reads {now}")]
    ClockBackwards {
        /// The instant asked for.
        to: DateTime<Utc>,
        /// The clock's time.
        now: DateTime<Utc>,
    },
    /// An interval whose end is not after its start.
    #[error("interval end {end} is not after its start {start}")]
    EmptyInterval {
        /// Requested start.
        start: DateTime<Utc>,
        /// Requested end.
        end: DateTime<Utc>,
    },
    /// A step (series spacing or day division) that is zero, negative or does not fit.
    #[error("invalid step {step}: {reason}")]
    InvalidStep {
        /// The rejected step.
        step: TimeDelta,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A local wall-clock time that the zone skips (spring-forward gap).
    #[error("local time {local} does not exist in {zone} (skipped by the daylight-saving change)")]
    NonexistentLocalTime {
        /// The local time asked for.
        local: NaiveDateTime,
        /// IANA zone name.
        zone: &'static str,
    },
    /// A local wall-clock time that occurs twice (fall-back overlap) where one answer was required.
    #[error("local time {local} occurs twice in {zone}; choose the earlier or the later instant")]
    AmbiguousLocalTime {
        /// The local time asked for.
        local: NaiveDateTime,
        /// IANA zone name.
        zone: &'static str,
    },
    /// A date outside the range chrono can represent, or a malformed date.
    #[error("date {date} is out of the supported range")]
    DateOutOfRange {
        /// The date.
        date: NaiveDate,
    },
    /// An instant that is not on the grid of a series or day.
    #[error("{what} {at} is not aligned to the {step} grid starting at {origin}")]
    Misaligned {
        /// What was misaligned (for example `"slice start"`).
        what: &'static str,
        /// The offending instant.
        at: DateTime<Utc>,
        /// Grid origin.
        origin: DateTime<Utc>,
        /// Grid step.
        step: TimeDelta,
    },
    /// An instant or interval outside the span a series covers.
    #[error("{at} is outside the series span {start} .. {end}")]
    OutOfSpan {
        /// The offending instant.
        at: DateTime<Utc>,
        /// Series start.
        start: DateTime<Utc>,
        /// Series end (exclusive).
        end: DateTime<Utc>,
    },
    /// Two series that were expected to share a grid do not.
    #[error("series are not aligned: {reason}")]
    SeriesMismatch {
        /// What differs (start, step or length), with both values.
        reason: String,
    },
    /// A value that was required is missing from a series.
    #[error("value missing for the interval starting {at}")]
    MissingValue {
        /// Start of the interval without a value.
        at: DateTime<Utc>,
    },
    /// An identifier that is empty, too long, or holds control characters.
    #[error("invalid {kind} id {id:?}: {reason}")]
    InvalidId {
        /// Which identifier (`"device"`, `"job"`, `"node"`).
        kind: &'static str,
        /// The rejected text.
        id: String,
        /// Why.
        reason: &'static str,
    },
}
