//! The one error type of `gridflex-mv`.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use gridflex_core::{CoreError, Interval};

/// Everything that can go wrong in an M&V calculation.
///
/// Each variant names what was wrong and where (the interval, the day, the sample index
/// or the parameter), so a report several layers up can tell an analyst what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MvError {
    /// An error from a `gridflex-core` type (unit, time or series construction).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A meter value needed by the calculation is missing (and the gap policy does not
    /// allow skipping it).
    #[error("meter value missing for the interval {interval} ({what})")]
    MissingData {
        /// The interval without a value.
        interval: Interval,
        /// What the value was needed for (for example `"event window"`).
        what: &'static str,
    },
    /// A needed interval lies outside the meter data.
    #[error("{what} {interval} is outside the meter data {start} .. {end}")]
    OutsideData {
        /// What was being looked up.
        what: &'static str,
        /// The interval asked for.
        interval: Interval,
        /// Start of the meter data.
        start: DateTime<Utc>,
        /// End of the meter data (exclusive).
        end: DateTime<Utc>,
    },
    /// The meter's interval length is not one the day rules support.
    #[error("meter interval {step} is not supported: {reason}")]
    UnsupportedStep {
        /// The series step.
        step: TimeDelta,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An instant that should fall on the meter's interval grid does not.
    #[error("{what} {at} is not on the meter's {step} interval grid")]
    Misaligned {
        /// What was misaligned (for example `"event start"`).
        what: &'static str,
        /// The instant.
        at: DateTime<Utc>,
        /// The meter interval length.
        step: TimeDelta,
    },
    /// An event window the rules cannot use.
    #[error("event {event}: {reason}")]
    InvalidEvent {
        /// The event window.
        event: Interval,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// Too few eligible days in the lookback for a day-matching baseline.
    #[error(
        "only {found} eligible {pool} days in the {lookback_days}-day lookback before {event_day}; at least {required} needed"
    )]
    InsufficientDays {
        /// The local date of the event.
        event_day: NaiveDate,
        /// Which days were eligible (for example `"weekday"`).
        pool: &'static str,
        /// How many were found.
        found: usize,
        /// The minimum the rule accepts.
        required: usize,
        /// The lookback limit in calendar days.
        lookback_days: u32,
    },
    /// The day-of adjustment cannot be computed over its window.
    #[error("adjustment window {window}: {reason}")]
    AdjustmentUndefined {
        /// The adjustment window.
        window: Interval,
        /// Why (for example a zero baseline under a multiplicative adjustment).
        reason: &'static str,
    },
    /// A rule parameter outside its valid range.
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// The rejected value, as text.
        value: String,
        /// The valid range or rule.
        reason: &'static str,
    },
    /// Samples that are not in strictly increasing time order.
    #[error("{what} sample {index} at {at} is not after the previous sample")]
    UnsortedSamples {
        /// Which sample set (for example `"signal"`).
        what: &'static str,
        /// Zero-based index of the offending sample.
        index: usize,
        /// Its time.
        at: DateTime<Utc>,
    },
    /// Too few samples where some are required.
    #[error("{what}: {found} samples, at least {needed} needed")]
    NotEnoughSamples {
        /// Which samples (for example `"pre-instruction level"`).
        what: &'static str,
        /// How many were found.
        found: usize,
        /// How many are needed.
        needed: usize,
    },
    /// The power did not move enough between the pre- and post-instruction levels.
    #[error(
        "no step to time: pre level {from_w} W and post level {to_w} W differ by less than {min_w} W"
    )]
    NoStep {
        /// Pre-instruction level in watts.
        from_w: f64,
        /// Post-instruction level in watts.
        to_w: f64,
        /// The smallest step accepted, in watts.
        min_w: f64,
    },
    /// The response never reached a fraction of its step.
    #[error("the response never reached {percent} % of the step after {at}")]
    MarkNotReached {
        /// The fraction asked for, in percent.
        percent: f64,
        /// The instruction time.
        at: DateTime<Utc>,
    },
    /// A price needed for settlement is missing.
    #[error("price missing for the interval {interval}")]
    MissingPrice {
        /// The interval without a price.
        interval: Interval,
    },
    /// A text input (CSV) that does not parse.
    #[error("line {line}, field {field}: {reason}")]
    Parse {
        /// One-based line number in the input (the header is line 1).
        line: usize,
        /// The field (column name) at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A meter's rows that are not together in a long-format file read as a stream
    /// ([`LongMeterReader`](crate::input::LongMeterReader)): the meter appears again
    /// after other meters' rows. Such a file can be read whole with
    /// [`parse_long_meter_csv`](crate::input::parse_long_meter_csv).
    #[error(
        "line {line}: meter {meter:?} appears again after other meters' rows (a streamed long-format file keeps each meter's rows together; sort it by meter or read it whole)"
    )]
    MeterNotTogether {
        /// One-based line number of the row.
        line: usize,
        /// The meter's id.
        meter: String,
    },
    /// An input that could not be read (an I/O error while streaming a file).
    #[error("reading line {line}: {reason}")]
    Read {
        /// One-based line number the reading had reached.
        line: usize,
        /// What the reader reported.
        reason: String,
    },
    /// An input that would need more memory or time than the limit allows (a file whose
    /// times imply millions of intervals, a record spanning decades).
    #[error("{what}: {found} is more than the limit of {limit}")]
    TooLarge {
        /// What was counted (for example `"meter intervals implied by the file"`).
        what: &'static str,
        /// How many the input implies.
        found: u64,
        /// The most accepted.
        limit: u64,
    },
    /// A meter cache file that is not one, or is damaged ([`crate::cache`]).
    #[error("meter cache, byte {at}: {reason}")]
    InvalidCache {
        /// The byte offset where the problem was found.
        at: u64,
        /// What is wrong.
        reason: String,
    },
    /// A sample value outside the range its kind allows.
    #[error("{what} sample {index} at {at}: {value} is outside {range}")]
    SampleOutOfRange {
        /// Which sample set (for example `"signal"`).
        what: &'static str,
        /// Zero-based index of the offending sample.
        index: usize,
        /// Its time.
        at: DateTime<Utc>,
        /// The value.
        value: f64,
        /// The allowed range, as text (for example `"[-1, 1]"`).
        range: &'static str,
    },
}
