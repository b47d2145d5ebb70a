//! Parsers for the plain CSV inputs of the `mv` tool: meter data, prices and timed
//! samples. They read text or bytes already in memory (no I/O), except
//! [`LongMeterReader`] and [`map_long_meter_file`], which stream a long-format file;
//! all report the line and field of any fault.
//!
//! - meter: header `interval_start,kw`, RFC 3339 times with offset, regular spacing. An
//!   empty `kw` is a missing value; a jump of a whole number of intervals leaves the
//!   skipped intervals missing; anything else off the grid is an error.
//! - many meters in one long-format file: header `meter_id,interval_start,kw`, each
//!   meter's rows by the meter rules ([`parse_long_meter_csv`] whole, any interleaving;
//!   [`LongMeterReader`] a meter at a time, each meter's rows together, and
//!   [`map_long_meter_file`] the same on several threads).
//! - prices: header `interval_start,lmp` ($/MWh), same rules.
//! - samples: header `time,<value>`, times RFC 3339 or Unix seconds with a fraction,
//!   strictly increasing.
//!
//! ```
//! use gridflex_mv::input::parse_meter_csv;
//!
//! let csv = "interval_start,kw\n2025-07-01T00:00:00-07:00,10\n2025-07-01T00:05:00-07:00,\n2025-07-01T00:10:00-07:00,12.5\n";
//! let series = parse_meter_csv(csv)?;
//! assert_eq!(series.len(), 3);
//! assert_eq!(series.values()[1], None);
//! let err = parse_meter_csv("interval_start,kw\n2025-07-01T00:00:00Z,abc\n").unwrap_err();
//! assert_eq!(err.to_string(), "line 2, field kw: not a number: \"abc\"");
//! # Ok::<(), gridflex_mv::MvError>(())
//! ```

use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::{IntervalSeries, MarketZone, Power, Price, Quantity};

use crate::response::Sample;
use crate::{Meter, MvError};

/// The most intervals a meter or price file may imply (rows plus the missing intervals
/// between them): 4 million, 38 years of 5-minute data or 46 days of 1-second data.
/// A file beyond it is refused with [`MvError::TooLarge`] before anything is allocated
/// for the gap.
pub const MAX_SERIES_INTERVALS: usize = 4_000_000;

fn err(line: usize, field: &str, reason: impl Into<String>) -> MvError {
    MvError::Parse {
        line,
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Non-empty lines after the header, with their one-based line numbers, split in two
/// fields.
fn rows<'a>(
    text: &'a str,
    header: (&'static str, &str),
) -> Result<Vec<(usize, &'a str, &'a str)>, MvError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    let (_, head) = lines.by_ref().find(|(_, l)| !l.is_empty()).ok_or_else(|| {
        err(
            1,
            "header",
            format!("empty input; expected `{},{}`", header.0, header.1),
        )
    })?;
    let mut names = head.split(',').map(str::trim);
    let (a, b) = (names.next().unwrap_or(""), names.next().unwrap_or(""));
    if !a.eq_ignore_ascii_case(header.0)
        || !b.eq_ignore_ascii_case(header.1)
        || names.next().is_some()
    {
        return Err(err(
            1,
            "header",
            format!("expected `{},{}`, got `{head}`", header.0, header.1),
        ));
    }
    let mut out = Vec::new();
    for (n, line) in lines {
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split(',');
        let (Some(x), Some(y), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err(
                n,
                "row",
                format!("expected 2 comma-separated fields: {line:?}"),
            ));
        };
        out.push((n, x.trim(), y.trim()));
    }
    Ok(out)
}

fn rfc3339(line: usize, field: &str, s: &str) -> Result<DateTime<Utc>, MvError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            err(
                line,
                field,
                format!("not an RFC 3339 time with offset ({e}): {s:?}"),
            )
        })
}

/// Parses an instant: RFC 3339 with offset, or Unix seconds with an optional fraction
/// (`1719792000.125`). `line` and `field` go into the error.
pub fn parse_instant(line: usize, field: &str, s: &str) -> Result<DateTime<Utc>, MvError> {
    time(line, field, s.trim())
}

fn time(line: usize, field: &str, s: &str) -> Result<DateTime<Utc>, MvError> {
    let bad = || {
        err(
            line,
            field,
            format!("not an RFC 3339 time or Unix seconds: {s:?}"),
        )
    };
    if s.contains('T') || s.contains('t') {
        return rfc3339(line, field, s);
    }
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 9
    {
        return Err(bad());
    }
    let secs: i64 = int.parse().map_err(|_| bad())?;
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().map_err(|_| bad())? * 10_i64.pow(9 - frac.len() as u32)
    };
    let total = TimeDelta::try_seconds(secs)
        .and_then(|d| d.checked_add(&TimeDelta::nanoseconds(nanos)))
        .ok_or_else(bad)?;
    let total = if neg { -total } else { total };
    DateTime::<Utc>::UNIX_EPOCH
        .checked_add_signed(total)
        .ok_or_else(bad)
}

fn number(line: usize, field: &str, s: &str) -> Result<f64, MvError> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(err(line, field, format!("not a number: {s:?}"))),
    }
}

/// Builds a regular series from (line, time, value) rows.
fn regular<Q: Quantity>(
    rows: Vec<(usize, DateTime<Utc>, Option<Q>)>,
    time_field: &str,
) -> Result<IntervalSeries<Q>, MvError> {
    let (Some(&(_, first_t, _)), Some(&(second_line, second_t, _))) = (rows.first(), rows.get(1))
    else {
        return Err(err(
            rows.first().map_or(2, |r| r.0),
            time_field,
            "at least two rows are needed to know the interval length",
        ));
    };
    let step = second_t - first_t;
    if step <= TimeDelta::zero() {
        return Err(err(second_line, time_field, "times must increase"));
    }
    let step_ns = step
        .num_nanoseconds()
        .ok_or_else(|| err(second_line, time_field, "interval too long"))?;
    let mut values: Vec<Option<Q>> = Vec::with_capacity(rows.len());
    for (line, t, v) in rows {
        let off = (t - first_t)
            .num_nanoseconds()
            .ok_or_else(|| err(line, time_field, "too far from the first row"))?;
        if off % step_ns != 0 {
            return Err(err(
                line,
                time_field,
                format!("{t} is not on the {step} grid of the first two rows"),
            ));
        }
        let k = usize::try_from(off / step_ns)
            .map_err(|_| err(line, time_field, "time before the first row"))?;
        if k < values.len() {
            return Err(err(
                line,
                time_field,
                format!("{t} repeats or goes back in time"),
            ));
        }
        if k >= MAX_SERIES_INTERVALS {
            return Err(err(
                line,
                time_field,
                MvError::TooLarge {
                    what: "intervals implied by the file up to this row",
                    found: k as u64 + 1,
                    limit: MAX_SERIES_INTERVALS as u64,
                }
                .to_string(),
            ));
        }
        values.resize(k, None);
        values.push(v);
    }
    IntervalSeries::new(first_t, step, values).map_err(MvError::from)
}

/// Parses meter data (`interval_start,kw`).
pub fn parse_meter_csv(text: &str) -> Result<IntervalSeries<Power>, MvError> {
    match fast::meter(text.as_bytes()) {
        Some((start, step, watts)) => {
            let values = watts.into_iter().map(|w| Power::watts(w).ok()).collect();
            Ok(IntervalSeries::new(start, step, values)?)
        }
        None => parse_meter_general(text),
    }
}

/// Parses meter data (`interval_start,kw`) straight into a [`Meter`] of `zone`: the
/// same data and errors as [`parse_meter_csv`] then [`Meter::new`], without building
/// the series in between (the values go into the meter's column as they are read).
///
/// ```
/// use gridflex_core::MarketZone;
/// use gridflex_mv::input::parse_meter;
///
/// let csv = "interval_start,kw\n2025-07-01T00:00:00-07:00,10\n2025-07-01T00:05:00-07:00,\n";
/// let meter = parse_meter(csv, MarketZone::Caiso)?;
/// assert_eq!(meter.len(), 2);
/// assert_eq!(meter.to_series()?.values()[1], None);
/// # Ok::<(), gridflex_mv::MvError>(())
/// ```
pub fn parse_meter(text: &str, zone: MarketZone) -> Result<Meter, MvError> {
    parse_meter_bytes(text.as_bytes(), zone)
}

/// [`parse_meter`] on a file's bytes as read, with no UTF-8 check of its own in the
/// usual case: a file the fast reader accepts is ASCII throughout (it looks at every
/// byte). Anything else is checked and read by the general parser; text that is not
/// UTF-8 is an [`MvError::Parse`] naming the line and the byte.
///
/// ```
/// use gridflex_core::MarketZone;
/// use gridflex_mv::input::parse_meter_bytes;
///
/// let csv = b"interval_start,kw\n2025-07-01T00:00:00-07:00,10\n2025-07-01T00:05:00-07:00,12.5\n";
/// assert_eq!(parse_meter_bytes(csv, MarketZone::Caiso)?.len(), 2);
/// let bad = b"interval_start,kw\n2025-07-01T00:00:00-07:00,1\xff\n";
/// let err = parse_meter_bytes(bad, MarketZone::Caiso).unwrap_err();
/// assert_eq!(err.to_string(), "line 2, field row: not UTF-8 text (byte 45)");
/// # Ok::<(), gridflex_mv::MvError>(())
/// ```
pub fn parse_meter_bytes(bytes: &[u8], zone: MarketZone) -> Result<Meter, MvError> {
    if let Some((start, step, watts)) = fast::meter(bytes) {
        return Meter::from_read_watts(start, step, watts, zone);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = 1 + bytes[..at].iter().filter(|&&c| c == b'\n').count();
        err(line, "row", format!("not UTF-8 text (byte {at})"))
    })?;
    Meter::new(parse_meter_general(text)?, zone)
}

/// The general meter parser: any RFC 3339 layout, every error with its line and field.
fn parse_meter_general(text: &str) -> Result<IntervalSeries<Power>, MvError> {
    let mut parsed = Vec::new();
    for (line, t, v) in rows(text, ("interval_start", "kw"))? {
        let t = rfc3339(line, "interval_start", t)?;
        let v = if v.is_empty() {
            None
        } else {
            Some(Power::kilowatts(number(line, "kw", v)?)?)
        };
        parsed.push((line, t, v));
    }
    regular(parsed, "interval_start")
}

mod long;
pub use long::{LongMeterReader, MAX_LONG_METER_BYTES, map_long_meter_file};

/// The most meters one long-format file may hold.
pub const MAX_LONG_METERS: usize = 1_000_000;

/// Parses long-format meter data, many meters in one file (`meter_id,interval_start,kw`,
/// the layout a meter data management export or a database dump has): one series per
/// meter id, in the order the ids first appear. Each meter's rows follow the rules of
/// [`parse_meter_csv`] (its own grid, from its own first two rows); the rows of
/// different meters may be interleaved. Errors name the line and field, and the meter.
///
/// ```
/// use gridflex_mv::input::parse_long_meter_csv;
///
/// let csv = "meter_id,interval_start,kw
/// a,2025-07-01T00:00:00Z,10
/// b,2025-07-01T00:00:00Z,7
/// a,2025-07-01T00:05:00Z,11
/// b,2025-07-01T00:05:00Z,
/// ";
/// let meters = parse_long_meter_csv(csv)?;
/// assert_eq!(meters.len(), 2);
/// assert_eq!((meters[0].0.as_str(), meters[0].1.len()), ("a", 2));
/// assert_eq!(meters[1].1.values()[1], None);
/// # Ok::<(), gridflex_mv::MvError>(())
/// ```
pub fn parse_long_meter_csv(text: &str) -> Result<Vec<(String, IntervalSeries<Power>)>, MvError> {
    type Rows = Vec<(usize, DateTime<Utc>, Option<Power>)>;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let head = lines.by_ref().find(|(_, l)| !l.trim().is_empty());
    long_header(head.map(|(_, l)| l))?;
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut meters: Vec<(&str, Rows)> = Vec::new();
    let mut day = fast::Cache::default();
    let mut rows_seen = 0usize;
    for (n, line) in lines {
        let Some((id, t, v)) = long_row(n, line, &mut day)? else {
            continue;
        };
        rows_seen += 1;
        if rows_seen > MAX_SERIES_INTERVALS.saturating_mul(4) {
            return Err(err(
                n,
                "row",
                MvError::TooLarge {
                    what: "rows in a long-format file",
                    found: rows_seen as u64,
                    limit: MAX_SERIES_INTERVALS as u64 * 4,
                }
                .to_string(),
            ));
        }
        let k = match index.get(id) {
            Some(&k) => k,
            None => {
                if meters.len() >= MAX_LONG_METERS {
                    return Err(err(
                        n,
                        "meter_id",
                        MvError::TooLarge {
                            what: "meters in a long-format file",
                            found: meters.len() as u64 + 1,
                            limit: MAX_LONG_METERS as u64,
                        }
                        .to_string(),
                    ));
                }
                index.insert(id, meters.len());
                meters.push((id, Vec::new()));
                meters.len() - 1
            }
        };
        meters[k].1.push((n, t, v));
    }
    meters
        .into_iter()
        .map(|(id, rows)| {
            regular(rows, "interval_start")
                .map(|series| (id.to_owned(), series))
                .map_err(in_meter(id))
        })
        .collect()
}

/// Checks a long-format header line (`None`: the input has no line that is not blank).
fn long_header(head: Option<&str>) -> Result<(), MvError> {
    let Some(head) = head.map(str::trim) else {
        return Err(err(
            1,
            "header",
            "empty input; expected `meter_id,interval_start,kw`",
        ));
    };
    let names: Vec<&str> = head.split(',').map(str::trim).collect();
    let expected = ["meter_id", "interval_start", "kw"];
    if names.len() != 3
        || !names
            .iter()
            .zip(expected)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
    {
        return Err(err(
            1,
            "header",
            format!("expected `meter_id,interval_start,kw`, got `{head}`"),
        ));
    }
    Ok(())
}

/// A long-format row: its meter id, time and value.
type LongRow<'a> = (&'a str, DateTime<Utc>, Option<Power>);

/// One long-format row (line `n`), or `None` for a blank line.
fn long_row<'a>(
    n: usize,
    line: &'a str,
    day: &mut fast::Cache,
) -> Result<Option<LongRow<'a>>, MvError> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let mut parts = line.split(',');
    let (Some(id), Some(t), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(err(
            n,
            "row",
            format!("expected 3 comma-separated fields: {line:?}"),
        ));
    };
    let (id, t, v) = (id.trim(), t.trim(), v.trim());
    if id.is_empty() {
        return Err(err(n, "meter_id", "empty meter id"));
    }
    let t = match fast::instant_cached(t.as_bytes(), day)
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
    {
        Some(t) => t,
        None => rfc3339(n, "interval_start", t)?,
    };
    let v = if v.is_empty() {
        None
    } else {
        let x = match fast::decimal(v.as_bytes()) {
            Some(x) => x,
            None => number(n, "kw", v)?,
        };
        Some(Power::kilowatts(x).map_err(|e| err(n, "kw", e.to_string()))?)
    };
    Ok(Some((id, t, v)))
}

/// Names the meter in a parse error.
fn in_meter(id: &str) -> impl Fn(MvError) -> MvError + '_ {
    move |e| match e {
        MvError::Parse {
            line,
            field,
            reason,
        } => err(line, &field, format!("meter {id:?}: {reason}")),
        other => other,
    }
}

/// Parses prices (`interval_start,lmp`, $/MWh).
pub fn parse_price_csv(text: &str) -> Result<IntervalSeries<Price>, MvError> {
    let mut parsed = Vec::new();
    for (line, t, v) in rows(text, ("interval_start", "lmp"))? {
        let t = rfc3339(line, "interval_start", t)?;
        let v = if v.is_empty() {
            None
        } else {
            Some(Price::per_megawatt_hour(number(line, "lmp", v)?)?)
        };
        parsed.push((line, t, v));
    }
    regular(parsed, "interval_start")
}

/// Parses timed samples with header `time,<value_field>`, strictly increasing in time.
///
/// Each sample is one row, so the memory used is bounded by the input's size; what the
/// samples' time span implies is bounded by the consumer (for example
/// [`crate::regulation::regulation_score`]).
pub fn parse_samples_csv(text: &str, value_field: &str) -> Result<Vec<Sample<f64>>, MvError> {
    let mut out: Vec<Sample<f64>> = Vec::new();
    for (line, t, v) in rows(text, ("time", value_field))? {
        let at = time(line, "time", t)?;
        if out.last().is_some_and(|p| p.at >= at) {
            return Err(err(
                line,
                "time",
                format!("{t} is not after the previous row"),
            ));
        }
        out.push(Sample {
            at,
            value: number(line, value_field, v)?,
        });
    }
    if out.is_empty() {
        return Err(err(2, "time", "no samples"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_with_fraction() {
        let t = time(2, "time", "1719792000.125").unwrap();
        assert_eq!(t.timestamp(), 1_719_792_000);
        assert_eq!(t.timestamp_subsec_millis(), 125);
        assert!(time(2, "time", "12a").is_err());
        assert!(time(2, "time", ".5").is_err());
    }

    #[test]
    fn meter_rows_fill_whole_gaps_and_refuse_off_grid() {
        let s = parse_meter_csv(
            "interval_start,kw\n2025-07-01T00:00:00Z,1\n2025-07-01T00:05:00Z,2\n2025-07-01T00:20:00Z,3\n",
        )
        .unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s.values()[2], None);
        let e = parse_meter_csv(
            "interval_start,kw\n2025-07-01T00:00:00Z,1\n2025-07-01T00:05:00Z,2\n2025-07-01T00:07:00Z,3\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("line 4, field interval_start"),
            "{e}"
        );
        let e = parse_meter_csv("time,kw\n").unwrap_err();
        assert!(e.to_string().starts_with("line 1, field header"), "{e}");
    }
}

/// The meter parser's fast path for the layout nearly every file has (`YYYY-MM-DDTHH:MM:SS`
/// with `Z` or a `±HH:MM` offset, one comma, a plain number): one pass over the bytes,
/// no intermediate rows, times computed from the digits without a calendar library.
/// It returns `None` on anything it does not recognise or anything wrong, and the
/// general parser then reads the file (so results and error messages are the general
/// parser's; a property test checks both agree).
mod fast {
    use chrono::{DateTime, TimeDelta, Utc};
    use gridflex_core::Power;
    use gridflex_core::number::DecimalReader;

    use super::MAX_SERIES_INTERVALS;

    fn two(b: &[u8], i: usize) -> Option<i64> {
        let (x, y) = (
            b.get(i)?.wrapping_sub(b'0'),
            b.get(i + 1)?.wrapping_sub(b'0'),
        );
        (x < 10 && y < 10).then(|| i64::from(x) * 10 + i64::from(y))
    }

    /// Days from 1970-01-01 to the civil date (H. Hinnant's `days_from_civil`).
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn days_in_month(y: i64, m: i64) -> i64 {
        match m {
            2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    /// The hour, minute and second of `HH:MM:SS` at byte 11 (the colons are checked by
    /// the caller), read eight bytes at once: `None` when one of the six is not a digit.
    fn clock(s: &[u8]) -> Option<(i64, i64, i64)> {
        let word = u64::from_le_bytes(s.get(11..19)?.try_into().ok()?);
        let x = word ^ 0x3030_3030_3030_3030;
        // A byte that is not a digit gets its high bit set (exact per byte), checked at
        // the six digits' places.
        let other = ((x & 0x7f7f_7f7f_7f7f_7f7f) + 0x7676_7676_7676_7676) | x;
        if other & 0x8080_0080_8000_8080 != 0 {
            return None;
        }
        // Each pair's tens times ten plus its units lands in the pair's first byte.
        let t = x.wrapping_mul(10).wrapping_add(x >> 8);
        let at = |byte: u32| i64::from((t >> (8 * byte)) as u8);
        Some((at(0), at(3), at(6)))
    }

    /// Unix seconds of `YYYY-MM-DDTHH:MM:SS(Z|±HH:MM)`.
    #[cfg(test)]
    pub(super) fn instant(s: &[u8]) -> Option<i64> {
        instant_cached(s, &mut Cache::default())
    }

    /// What the fast readers reuse from the rows read before: for their times
    /// ([`instant_cached`]) and their values ([`quick_row`]).
    pub(super) struct Cache {
        /// The last date read in full: its ten bytes (zero bytes at first, which no
        /// date matches) and its day number.
        date: [u8; 10],
        days: i64,
        /// The last offset read in full: its six bytes (zero at first) and seconds.
        offset: [u8; 6],
        offset_s: i64,
        /// The last time with an offset read in full, around its minutes: its first
        /// fourteen bytes (`YYYY-MM-DDTHH:`) and the seconds they make, and its last
        /// nine (`:SS±HH:MM`) and the seconds they add (the seconds less the offset).
        /// At first, those of `1970-01-01T00:00:00+00:00`: a real time, so that
        /// matching them is always right.
        hour: [u8; 14],
        hour_s: i64,
        rest: [u8; 9],
        rest_s: i64,
        /// The layout of the last value [`quick_row`] read.
        pub(super) values: DecimalReader,
    }

    impl Default for Cache {
        fn default() -> Self {
            Cache {
                date: [0; 10],
                days: 0,
                offset: [0; 6],
                offset_s: 0,
                hour: *b"1970-01-01T00:",
                hour_s: 0,
                rest: *b":00+00:00",
                rest_s: 0,
                values: DecimalReader::default(),
            }
        }
    }

    /// [`instant`], reusing what the rows before had: a time with an offset that
    /// differs from the last one read in full only in its minutes (eleven rows in
    /// twelve, for 5-minute data) has only its minutes read. Anything else is read
    /// in full, reusing the day number of the last date and the seconds of the last
    /// offset when they are the same bytes.
    #[inline(always)]
    pub(super) fn instant_cached(s: &[u8], cache: &mut Cache) -> Option<i64> {
        if s.len() == 25 && s[..14] == cache.hour && s[16..] == cache.rest {
            let minute = two(s, 14)?;
            return (minute <= 59).then_some(cache.hour_s + minute * 60 + cache.rest_s);
        }
        instant_in_full(s, cache)
    }

    /// [`instant`] read in full, reusing the day number of the last date and the
    /// seconds of the last offset when they are the same bytes, and remembering what
    /// [`instant_cached`] reuses.
    // Never inlined: once an hour for 5-minute data, and inlined in the row loop it
    // takes the registers the usual row needs (the reader lost a third).
    #[inline(never)]
    fn instant_in_full(s: &[u8], cache: &mut Cache) -> Option<i64> {
        if s.len() < 20
            || s[4] != b'-'
            || s[7] != b'-'
            || !matches!(s[10], b'T' | b't')
            || s[13] != b':'
            || s[16] != b':'
        {
            return None;
        }
        let days = if s[..10] == cache.date {
            cache.days
        } else {
            let year = two(s, 0)? * 100 + two(s, 2)?;
            let (month, d) = (two(s, 5)?, two(s, 8)?);
            if !(1..=12).contains(&month) || d < 1 || d > days_in_month(year, month) {
                return None;
            }
            let days = days_from_civil(year, month, d);
            cache.date.copy_from_slice(&s[..10]);
            cache.days = days;
            days
        };
        let (hour, minute, second) = clock(s)?;
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let offset = match &s[19..] {
            [b'Z' | b'z'] => 0,
            o if *o == cache.offset => cache.offset_s,
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let (h, m) = (two(s, 20)?, two(s, 23)?);
                if h > 23 || m > 59 {
                    return None;
                }
                let off = h * 3600 + m * 60;
                let off = if *sign == b'+' { off } else { -off };
                cache.offset.copy_from_slice(&s[19..]);
                cache.offset_s = off;
                off
            }
            _ => return None,
        };
        if s.len() == 25 {
            cache.hour.copy_from_slice(&s[..14]);
            cache.hour_s = days * 86_400 + hour * 3600;
            cache.rest.copy_from_slice(&s[16..]);
            cache.rest_s = second - offset;
        }
        Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
    }

    pub(super) use gridflex_core::number::parse_plain_decimal as decimal;

    /// The usual meter row at `pos`, read without looking for its end first: a time of
    /// 25 or 20 bytes (with an offset or a `Z`), a comma, a value of digits, `.` and `-`
    /// (or none; read by `values`), then `\n`, `\r\n` or the end of the text. Returns
    /// the time's and the value's bytes and where the next line starts; `None` for any
    /// other line (read the general way). The time is not checked here: it has no
    /// comma and no line end only if it parses, and a time that does not parse fails
    /// the fast path whichever way its line was found.
    // Forced inline: with two callers (this reader and the long-format one) it became a
    // call per row, and the meter reader lost 15 % (docs/throughput.md, fifth round).
    #[inline(always)]
    pub(super) fn quick_row<'b>(
        b: &'b [u8],
        pos: usize,
        values: &mut DecimalReader,
    ) -> Option<(&'b [u8], Value<'b>, usize)> {
        let comma = match (b.get(pos + 25), b.get(pos + 20)) {
            (Some(b','), _) => pos + 25,
            (_, Some(b',')) => pos + 20,
            _ => return None,
        };
        let start = comma + 1;
        let (value, len) = values.prefix(&b[start..]);
        let end = start + len;
        let next = match (b.get(end), b.get(end + 1)) {
            (None, _) => end,
            (Some(b'\n'), _) => end + 1,
            (Some(b'\r'), Some(b'\n')) => end + 2,
            _ => return None,
        };
        let value = match value {
            Some(v) => Value::Plain(v),
            None if len == 0 => Value::Missing,
            // Not plain (or not a number): `str::parse` decides.
            None => Value::Other(&b[start..end]),
        };
        Some((&b[pos..comma], value, next))
    }

    /// A row's value as [`quick_row`] found it.
    pub(super) enum Value<'a> {
        /// None: the interval is missing.
        Missing,
        /// A plain decimal, read.
        Plain(f64),
        /// Anything else, for `str::parse`.
        Other(&'a [u8]),
    }

    impl<'a> Value<'a> {
        /// The value of a field's bytes, trimmed.
        pub(super) fn of(v: &'a [u8]) -> Self {
            match decimal(v) {
                _ if v.is_empty() => Value::Missing,
                Some(x) => Value::Plain(x),
                None => Value::Other(v),
            }
        }
    }

    /// The start, the step and the values in watts (NaN where missing).
    pub(super) fn meter(b: &[u8]) -> Option<(DateTime<Utc>, TimeDelta, Vec<f64>)> {
        // Lines as byte ranges, `\r\n` or `\n` ended, ASCII-trimmed (anything else
        // the general parser trims is not plain and fails below).
        let mut pos = 0usize;
        let next_line = |pos: &mut usize| -> Option<&[u8]> {
            if *pos >= b.len() {
                return None;
            }
            let end = memchr::memchr(b'\n', &b[*pos..]).map_or(b.len(), |i| *pos + i);
            let line = &b[*pos..end];
            *pos = end + 1;
            Some(line.trim_ascii())
        };
        let head = loop {
            let line = next_line(&mut pos)?;
            if !line.is_empty() {
                break line;
            }
        };
        if !head.eq_ignore_ascii_case(b"interval_start,kw") {
            return None;
        }
        let (mut grid, mut cache) = (Grid::default(), Cache::default());
        loop {
            // The usual row is read in one pass, its end found where its value ends;
            // any other line is split and trimmed first.
            let (t, v, line_len) = match quick_row(b, pos, &mut cache.values) {
                Some((t, v, next)) => {
                    let len = next - pos;
                    pos = next;
                    (t, v, len)
                }
                None => {
                    let Some(line) = next_line(&mut pos) else {
                        break;
                    };
                    if line.is_empty() {
                        continue;
                    }
                    let comma = memchr::memchr(b',', line)?;
                    let v = Value::of(line[comma + 1..].trim_ascii_start());
                    (line[..comma].trim_ascii_end(), v, line.len() + 1)
                }
            };
            grid.push(t, v, &mut cache, || b.len() / line_len + 1)?;
        }
        grid.finish()
    }

    /// A meter's rows on their grid, as they are read: the fast reader's rules (the
    /// general parser's, for the layout it takes), each failure `None`.
    #[derive(Default)]
    pub(super) struct Grid {
        first: Option<i64>,
        step: Option<i64>,
        /// The time the next row has when it is the next interval.
        next: i64,
        values: Vec<f64>,
    }

    impl Grid {
        /// Adds a row: its time's bytes (read with `cache`, the caller's: kept apart from
        /// the grid, the grid's fields stay in registers) and its value. `rows`
        /// estimates how many rows there are, for the one reservation made at the first
        /// row.
        // Forced inline, as `quick_row` is: it runs once per row in both readers.
        #[inline(always)]
        pub(super) fn push(
            &mut self,
            t: &[u8],
            v: Value<'_>,
            cache: &mut Cache,
            rows: impl FnOnce() -> usize,
        ) -> Option<()> {
            let t = instant_cached(t, cache)?;
            let v = match v {
                Value::Missing => f64::NAN,
                Value::Plain(x) => Power::kilowatts(x).ok()?.as_watts(),
                // A second comma makes `str::parse` fail: no extra scan.
                Value::Other(v) => {
                    let x = std::str::from_utf8(v).ok()?.parse().ok()?;
                    Power::kilowatts(x).ok()?.as_watts()
                }
            };
            let values = &mut self.values;
            let Some(t0) = self.first else {
                self.first = Some(t);
                values.reserve(rows().min(MAX_SERIES_INTERVALS));
                values.push(v);
                return Some(());
            };
            let step = match self.step {
                Some(s) => s,
                None => {
                    let s = t - t0;
                    if s <= 0 {
                        return None;
                    }
                    self.step = Some(s);
                    self.next = t0 + s;
                    s
                }
            };
            // The usual row is the next interval: no division for it.
            if t == self.next {
                self.next += step;
                if values.len() >= MAX_SERIES_INTERVALS {
                    return None;
                }
                values.push(v);
                return Some(());
            }
            let off = t - t0;
            if off < 0 || off % step != 0 {
                return None;
            }
            let k = usize::try_from(off / step).ok()?;
            if k < values.len() || k >= MAX_SERIES_INTERVALS {
                return None;
            }
            values.resize(k, f64::NAN);
            values.push(v);
            self.next = t + step;
            Some(())
        }

        /// The start, the step and the values in watts (NaN where missing).
        pub(super) fn finish(self) -> Option<(DateTime<Utc>, TimeDelta, Vec<f64>)> {
            let start = DateTime::<Utc>::from_timestamp(self.first?, 0)?;
            let step = TimeDelta::try_seconds(self.step?)?;
            // The bounds of an `IntervalSeries` (length in `i32`, end in range), checked
            // here so that callers building one cannot fail where the general parser
            // passes.
            let n = i32::try_from(self.values.len()).ok()?;
            start.checked_add_signed(step.checked_mul(n)?)?;
            Some((start, step, self.values))
        }
    }
}

#[cfg(test)]
mod fast_path {
    use proptest::prelude::*;

    use super::*;

    /// A meter file from generated rows: mostly well-formed, on a 5-minute grid, with
    /// every kind of fault the general parser reports mixed in (off-grid and repeated
    /// times, other layouts, bad numbers, extra fields, blank lines).
    pub(super) fn file() -> impl Strategy<Value = (Vec<String>, usize)> {
        let value = prop_oneof![
            3 => (0.0f64..2_000.0).prop_map(|v| format!("{v}")),
            // Three decimals, as meters write them: runs of one layout (`612.345`, one
            // word for the value reader; `1234.567`, two).
            3 => (0.0f64..2_000.0).prop_map(|v| format!("{v:.3}")),
            1 => Just(String::new()),
            1 => Just("abc".to_owned()),
            1 => Just("1e300".to_owned()),
        ];
        // (time kind, value): 0-5 on the grid (step skips), 6 off the grid, 7 a repeat,
        // 8 another layout, 9 an extra field, 10 a blank line.
        let row = (prop_oneof![12 => 0u32..6, 1 => 6u32..11], value);
        (proptest::collection::vec(row, 0..40), 0usize..3).prop_map(|(rows, offset)| {
            let off = ["Z", "-07:00", "+05:30"][offset];
            let base = chrono::DateTime::parse_from_rfc3339("2025-03-08T00:00:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default();
            let fmt = |k: i64, extra: i64| {
                let t = base + TimeDelta::minutes(5 * k) + TimeDelta::seconds(extra);
                if off == "Z" {
                    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
                } else {
                    let o: chrono::FixedOffset = off
                        .parse()
                        .unwrap_or(chrono::FixedOffset::east_opt(0).unwrap());
                    t.with_timezone(&o)
                        .format("%Y-%m-%dT%H:%M:%S%:z")
                        .to_string()
                }
            };
            let mut k = 0i64;
            let lines = rows
                .into_iter()
                .map(|(kind, v)| match kind {
                    0..=5 => {
                        k += 1 + i64::from(kind / 5);
                        format!("{},{v}", fmt(k, 0))
                    }
                    6 => format!("{},{v}", fmt(k + 1, 7)),
                    7 => format!("{},{v}", fmt(k, 0)),
                    8 => format!("{},{v}", fmt(k + 1, 0).replace('T', " ")),
                    9 => format!("{},{v},1", fmt(k + 1, 0)),
                    _ => String::new(),
                })
                .collect();
            (lines, 0)
        })
    }

    proptest! {
        #[test]
        fn the_fast_path_agrees_with_the_general_parser(
            (lines, _) in file(),
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let text = format!("interval_start,kw{eol}{}", lines.join(eol));
            let general = parse_meter_general(&text);
            match fast::meter(text.as_bytes()) {
                Some(_) => prop_assert_eq!(parse_meter_csv(&text), general.clone()),
                // The fast path gives up on another layout (here: a space for the
                // `T`) and on faults; a file in its layout that the general parser
                // takes, it takes too.
                None => prop_assert!(general.is_err() || text.contains(' '), "{}", text),
            }
            // Straight into a meter: the same as the series, then `Meter::new`.
            let zone = MarketZone::Pjm;
            let direct = parse_meter(&text, zone);
            let via_series = general.and_then(|s| Meter::new(s, zone));
            prop_assert_eq!(direct, via_series);
        }

        #[test]
        fn bytes_read_as_their_text_and_bad_bytes_are_named(
            (lines, _) in file(),
            cut in any::<prop::sample::Index>(),
            bad in prop_oneof![Just(None), (0x80u8..=0xff).prop_map(Some)],
        ) {
            let mut bytes = format!("interval_start,kw\n{}", lines.join("\n")).into_bytes();
            if let Some(b) = bad {
                bytes.insert(cut.index(bytes.len() + 1), b);
            }
            let zone = MarketZone::Pjm;
            let read = parse_meter_bytes(&bytes, zone);
            match std::str::from_utf8(&bytes) {
                Ok(text) => prop_assert_eq!(read, parse_meter(text, zone)),
                Err(e) => {
                    let line = 1 + bytes[..e.valid_up_to()].iter().filter(|&&c| c == b'\n').count();
                    prop_assert!(
                        matches!(&read, Err(MvError::Parse { line: l, reason, .. }) if *l == line && reason.starts_with("not UTF-8")),
                        "{read:?}"
                    );
                }
            }
        }

        /// A long-format file of interleaved meters reads as each meter's own file:
        /// the same series, or an error where that file has one (naming the meter).
        #[test]
        fn long_format_reads_as_each_meters_own_file(
            files in proptest::collection::vec(file(), 1..4),
            order in proptest::collection::vec(0usize..4, 0..160),
        ) {
            let mut cursors = vec![0usize; files.len()];
            let mut long = vec!["meter_id,interval_start,kw".to_owned()];
            let mut pick = order.into_iter();
            loop {
                let live: Vec<usize> = (0..files.len()).filter(|&m| cursors[m] < files[m].0.len()).collect();
                if live.is_empty() {
                    break;
                }
                let m = live[pick.next().unwrap_or(0) % live.len()];
                let line = &files[m].0[cursors[m]];
                cursors[m] += 1;
                if !line.is_empty() {
                    long.push(format!("m{m},{line}"));
                }
            }
            let text = long.join("\n");
            let own: Vec<_> = files
                .iter()
                .map(|(lines, _)| {
                    let body: Vec<&str> = lines.iter().map(String::as_str).filter(|l| !l.is_empty()).collect();
                    parse_meter_csv(&format!("interval_start,kw\n{}", body.join("\n")))
                })
                .collect();
            match parse_long_meter_csv(&text) {
                Ok(meters) => {
                    let ok: Vec<_> = own.iter().enumerate().filter(|(_, r)| r.is_ok()).collect();
                    // Meters without rows do not appear.
                    for (id, series) in &meters {
                        let m: usize = id[1..].parse().unwrap_or(usize::MAX);
                        prop_assert_eq!(Some(series), own.get(m).and_then(|r| r.as_ref().ok()));
                    }
                    prop_assert!(ok.len() >= meters.len());
                }
                Err(e) => {
                    prop_assert!(own.iter().any(Result::is_err), "{e}: {text}");
                    let line = match &e { MvError::Parse { line, .. } => *line, _ => 0 };
                    prop_assert!(line >= 1 && line <= long.len(), "{e}");
                }
            }
        }

        #[test]
        fn fast_times_match_chrono(secs in -2_000_000_000i64..4_000_000_000, off_min in -720i64..=840) {
            let off = chrono::FixedOffset::east_opt(i32::try_from(off_min * 60).unwrap()).unwrap();
            let t = DateTime::<Utc>::from_timestamp(secs, 0).unwrap().with_timezone(&off);
            let s = t.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
            prop_assert_eq!(fast::instant(s.as_bytes()), Some(secs), "{}", s);
        }

        #[test]
        fn a_time_of_day_with_any_bytes_reads_as_chrono_reads_it(
            clock in proptest::collection::vec(prop_oneof![
                8 => b'0'..=b'9',
                1 => any::<u8>().prop_filter("ASCII", u8::is_ascii),
            ], 6),
        ) {
            let hms = format!(
                "{}{}:{}{}:{}{}",
                char::from(clock[0]), char::from(clock[1]), char::from(clock[2]),
                char::from(clock[3]), char::from(clock[4]), char::from(clock[5]),
            );
            // chrono takes a leap second (`:60`), which the fast reader leaves to it.
            prop_assume!(!hms.ends_with(":60"));
            let s = format!("2025-07-01T{hms}-07:00");
            let want = chrono::DateTime::parse_from_rfc3339(&s)
                .ok()
                .filter(|t| t.format("%H:%M:%S").to_string() == hms)
                .map(|t| t.timestamp());
            prop_assert_eq!(fast::instant(s.as_bytes()), want, "{}", s);
        }

        /// Read one after another with one cache (as a file's rows are), times give
        /// what each gives read alone: a row that differs from the last one read in
        /// full only in its minutes, whatever those bytes are, or in any other byte.
        #[test]
        fn times_read_in_a_row_read_as_each_alone(
            rows in proptest::collection::vec((
                0i64..4,
                prop_oneof![4 => 0u8..60, 1 => 60u8..100],
                proptest::option::weighted(0.15, (0usize..25, any::<u8>())),
                0usize..4,
            ), 1..60),
        ) {
            let mut cache = fast::Cache::default();
            for (hour, minute, edit, form) in rows {
                let mut s = match form {
                    0 => format!("2025-11-02T{hour:02}:{minute:02}:00-07:00"),
                    1 => format!("2025-11-02T{hour:02}:{minute:02}:00-08:00"),
                    2 => format!("1970-01-01T{hour:02}:{minute:02}:00+00:00"),
                    _ => format!("2025-11-02T{hour:02}:{minute:02}:00Z"),
                }
                .into_bytes();
                if let Some((at, byte)) = edit {
                    let at = at % s.len();
                    s[at] = byte;
                }
                let alone = fast::instant(&s);
                prop_assert_eq!(
                    fast::instant_cached(&s, &mut cache),
                    alone,
                    "{}",
                    String::from_utf8_lossy(&s)
                );
            }
        }
    }
}
