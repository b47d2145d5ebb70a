//! Parsers for the plain CSV inputs of the `mv` tool: meter data, prices and timed
//! samples. They read text (no I/O) and report the line and field of any fault.
//!
//! - meter: header `interval_start,kw`, RFC 3339 times with offset, regular spacing. An
//!   empty `kw` is a missing value; a jump of a whole number of intervals leaves the
//!   skipped intervals missing; anything else off the grid is an error.
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
use gridflex_core::{IntervalSeries, Power, Price, Quantity};

use crate::MvError;
use crate::response::Sample;

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
