//! Fast parsing of the timestamps and numbers found in operator files.
//!
//! Hand-written because these run once or twice per row of files that are hundreds of
//! megabytes; they accept exactly the layouts the operators publish and reject the rest.

use chrono::{DateTime, Utc};
use gridflex_core::Price;

/// Parses a timestamp as the operators write it:
///
/// - ISO 8601 `YYYY-MM-DDTHH:MM:SS` (or a space instead of `T`), optional fraction,
///   then `Z`, `±HH:MM`, `±HHMM` or nothing (OASIS writes `-00:00` for GMT);
/// - US `M/D/YYYY h:mm:ss AM|PM` or `M/D/YYYY HH:MM[:SS]` (Data Miner CSV exports).
///
/// A time without an offset is read as UTC: callers pass only fields the format
/// defines as UTC (`*_GMT`, `*_utc`).
pub(crate) fn parse_utc(text: &[u8]) -> Result<DateTime<Utc>, &'static str> {
    let s = text.trim_ascii();
    if s.len() >= 10 && s[4] == b'-' {
        parse_iso(s)
    } else if s.contains(&b'/') {
        parse_us(s)
    } else {
        Err("expected a timestamp like 2024-09-03T03:55:00 or 9/3/2024 3:55:00 AM")
    }
}

/// The last timestamp [`parse_utc`] read in one column, as text and as a time: rows of
/// an operator file come in runs of one interval, so most rows compare a short byte
/// string instead of parsing a timestamp.
#[derive(Default)]
pub(crate) struct LastTime {
    text: Vec<u8>,
    time: Option<DateTime<Utc>>,
}

impl LastTime {
    /// [`parse_utc`], or the previous answer when the text is the same.
    #[inline(always)]
    pub(crate) fn parse(&mut self, text: &[u8]) -> Result<DateTime<Utc>, &'static str> {
        if let Some(t) = self.time
            && same_bytes(&self.text, text)
        {
            return Ok(t);
        }
        self.parse_new(text)
    }

    /// A text other than the last one: parsed, and kept. Out of line, so that the usual
    /// row's code stays small where [`LastTime::parse`] is inlined.
    #[inline(never)]
    fn parse_new(&mut self, text: &[u8]) -> Result<DateTime<Utc>, &'static str> {
        let t = parse_utc(text)?;
        self.text.clear();
        self.text.extend_from_slice(text);
        self.time = Some(t);
        Ok(t)
    }
}

/// `a == b`, without a call to `memcmp` for the short texts compared on every row
/// (node names, timestamps, JSON keys): a text of 4 to 32 bytes is compared as its
/// first and last 4, 8 or 16 bytes (overlapping), two loads and a compare each.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    fn ends<const N: usize>(s: &[u8]) -> Option<(&[u8; N], &[u8; N])> {
        Some((s.first_chunk::<N>()?, s.last_chunk::<N>()?))
    }
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        4..=7 => ends::<4>(a) == ends::<4>(b),
        8..=16 => ends::<8>(a) == ends::<8>(b),
        17..=32 => ends::<16>(a) == ends::<16>(b),
        _ => a == b,
    }
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    let mut v: i64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(b - b'0');
    }
    Some(v)
}

fn parse_iso(s: &[u8]) -> Result<DateTime<Utc>, &'static str> {
    const BAD: &str = "expected YYYY-MM-DDTHH:MM:SS with an optional offset";
    if s.len() < 19 || s[4] != b'-' || s[7] != b'-' || !matches!(s[10], b'T' | b' ') {
        return Err(BAD);
    }
    if s[13] != b':' || s[16] != b':' {
        return Err(BAD);
    }
    let y = digits(&s[0..4]).ok_or(BAD)?;
    let mo = digits(&s[5..7]).ok_or(BAD)?;
    let d = digits(&s[8..10]).ok_or(BAD)?;
    let h = digits(&s[11..13]).ok_or(BAD)?;
    let mi = digits(&s[14..16]).ok_or(BAD)?;
    let se = digits(&s[17..19]).ok_or(BAD)?;
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix(b".") {
        let n = r.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return Err(BAD);
        }
        // Fractions of a second do not occur in LMP files at non-zero values; any
        // non-zero fraction is refused rather than silently truncated.
        if r[..n].iter().any(|&b| b != b'0') {
            return Err("fractional seconds are not supported");
        }
        rest = &r[n..];
    }
    let offset = match rest {
        b"" | b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2]
        | [sign @ (b'+' | b'-'), oh1, oh2, om1, om2] => {
            let oh = digits(&[*oh1, *oh2]).ok_or(BAD)?;
            let om = digits(&[*om1, *om2]).ok_or(BAD)?;
            if oh > 23 || om > 59 {
                return Err("offset out of range");
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return Err(BAD),
    };
    civil(y, mo, d, h, mi, se, offset)
}

fn parse_us(s: &[u8]) -> Result<DateTime<Utc>, &'static str> {
    const BAD: &str = "expected M/D/YYYY h:mm[:ss] [AM|PM]";
    let mut parts = s.splitn(2, |&b| b == b' ');
    let date = parts.next().ok_or(BAD)?;
    let time = parts.next().ok_or(BAD)?.trim_ascii();
    let mut dp = date.split(|&b| b == b'/');
    let mo = dp.next().and_then(digits).ok_or(BAD)?;
    let d = dp.next().and_then(digits).ok_or(BAD)?;
    let year = dp.next().ok_or(BAD)?;
    // A two-digit year (`9/3/24`) would be the year 24: only four digits are read.
    if year.len() != 4 {
        return Err("the year must have four digits (M/D/YYYY)");
    }
    let y = digits(year).ok_or(BAD)?;
    if dp.next().is_some() {
        return Err(BAD);
    }
    let (clock, meridiem) = match time.iter().position(|&b| b == b' ') {
        Some(i) => (&time[..i], Some(time[i + 1..].trim_ascii())),
        None => (time, None),
    };
    let mut tp = clock.split(|&b| b == b':');
    let mut h = tp.next().and_then(digits).ok_or(BAD)?;
    let mi = tp.next().and_then(digits).ok_or(BAD)?;
    let se = match tp.next() {
        Some(x) => digits(x).ok_or(BAD)?,
        None => 0,
    };
    if tp.next().is_some() {
        return Err(BAD);
    }
    match meridiem {
        None => {}
        Some(m) if m.eq_ignore_ascii_case(b"AM") || m.eq_ignore_ascii_case(b"PM") => {
            if !(1..=12).contains(&h) {
                return Err("hour must be 1-12 with AM/PM");
            }
            let pm = m.eq_ignore_ascii_case(b"PM");
            h = match (h, pm) {
                (12, false) => 0,
                (12, true) => 12,
                (h, true) => h + 12,
                (h, false) => h,
            };
        }
        Some(_) => return Err(BAD),
    }
    civil(y, mo, d, h, mi, se, 0)
}

fn civil(
    y: i64,
    mo: i64,
    d: i64,
    h: i64,
    mi: i64,
    se: i64,
    offset: i64,
) -> Result<DateTime<Utc>, &'static str> {
    if !(1..=12).contains(&mo) {
        return Err("month out of range");
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let dim = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=dim).contains(&d) {
        return Err("day out of range for the month");
    }
    if h > 23 || mi > 59 || se > 59 {
        return Err("time of day out of range");
    }
    // Days from 1970-01-01 (H. Hinnant's days_from_civil).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    DateTime::from_timestamp(secs, 0).ok_or("timestamp out of range")
}

/// Parses a price in $/MWh; empty, non-numeric and non-finite text is refused.
pub(crate) fn parse_price(text: &[u8]) -> Result<Price, String> {
    // Trimmed only where an end is white (two byte tests, where trimming loops).
    let text = match text {
        [a, .., b] if !a.is_ascii_whitespace() && !b.is_ascii_whitespace() => text,
        _ => text.trim_ascii(),
    };
    // Most prices are plain decimals: read exactly (bit for bit `str::parse`) from the
    // bytes; anything else (an exponent, a plus sign, text) the general way.
    if let Some(v) = gridflex_core::number::parse_plain_decimal(text) {
        return Price::per_megawatt_hour(v).map_err(|e| e.to_string());
    }
    let s = std::str::from_utf8(text).map_err(|_| "not UTF-8 text".to_owned())?;
    if s.is_empty() {
        return Err("empty value".to_owned());
    }
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    Price::per_megawatt_hour(v).map_err(|e| e.to_string())
}

/// Shows at most 60 characters of a field's text in an error message.
pub(crate) fn shown(text: &[u8]) -> String {
    let s = String::from_utf8_lossy(text);
    let mut out: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    format!("{out:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_compares_every_byte_at_every_length() {
        for n in 0..40 {
            let a: Vec<u8> = (0..n as u8).collect();
            assert!(same_bytes(&a, &a.clone()));
            for k in 0..n {
                let mut b = a.clone();
                b[k] ^= 0x40;
                assert!(!same_bytes(&a, &b), "length {n}, byte {k} differs");
            }
            assert!(!same_bytes(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }

    use chrono::TimeZone;

    #[test]
    fn iso_forms() {
        let t = Utc.with_ymd_and_hms(2022, 2, 1, 15, 0, 0).unwrap();
        assert_eq!(parse_utc(b"2022-02-01T15:00:00-00:00"), Ok(t));
        assert_eq!(parse_utc(b"2022-02-01T15:00:00Z"), Ok(t));
        assert_eq!(parse_utc(b"2022-02-01 15:00:00"), Ok(t));
        assert_eq!(parse_utc(b"2022-02-01T07:00:00-08:00"), Ok(t));
        assert_eq!(parse_utc(b"2022-02-01T16:30:00+0130"), Ok(t));
        assert_eq!(parse_utc(b"2022-02-01T15:00:00.000"), Ok(t));
        assert!(parse_utc(b"2022-02-29T15:00:00").is_err());
        assert!(parse_utc(b"2024-02-29T15:00:00").is_ok());
        assert!(parse_utc(b"2022-02-01T24:00:00").is_err());
        assert!(parse_utc(b"2022-02-01T15:00:00.5").is_err());
        assert!(parse_utc(b"2022-02-01T15:00:00+25:00").is_err());
        assert!(parse_utc(b"").is_err());
    }

    #[test]
    fn us_forms() {
        let t = Utc.with_ymd_and_hms(2024, 9, 3, 3, 55, 0).unwrap();
        assert_eq!(parse_utc(b"9/3/2024 3:55:00 AM"), Ok(t));
        assert_eq!(parse_utc(b"09/03/2024 03:55"), Ok(t));
        assert_eq!(
            parse_utc(b"9/3/2024 12:00:00 AM"),
            Ok(Utc.with_ymd_and_hms(2024, 9, 3, 0, 0, 0).unwrap())
        );
        assert_eq!(
            parse_utc(b"9/3/2024 12:30:00 PM"),
            Ok(Utc.with_ymd_and_hms(2024, 9, 3, 12, 30, 0).unwrap())
        );
        assert!(parse_utc(b"9/3/2024 13:00:00 PM").is_err());
        assert!(parse_utc(b"13/3/2024 1:00").is_err());
        // M/D/YY would land in the year 0024.
        assert_eq!(
            parse_utc(b"9/3/24 3:55:00 AM"),
            Err("the year must have four digits (M/D/YYYY)")
        );
        assert!(parse_utc(b"9/3/02024 3:55").is_err());
    }

    #[test]
    fn matches_chrono_over_a_range() {
        let mut t = Utc.with_ymd_and_hms(1999, 12, 31, 0, 0, 0).unwrap();
        for _ in 0..3000 {
            let text = t.format("%Y-%m-%dT%H:%M:%S-00:00").to_string();
            assert_eq!(parse_utc(text.as_bytes()), Ok(t), "{text}");
            t += chrono::TimeDelta::minutes(1_237);
        }
    }

    #[test]
    fn prices() {
        assert_eq!(
            parse_price(b" -12.5 ").unwrap().as_per_megawatt_hour(),
            -12.5
        );
        // White space at either end only, or both, at any width.
        for text in [&b"41.25\t"[..], b"\t41.25", b"  41.25\r", b"41.25"] {
            assert_eq!(
                parse_price(text).map(Price::as_per_megawatt_hour),
                Ok(41.25),
                "{text:?}"
            );
        }
        assert_eq!(parse_price(b"7").map(Price::as_per_megawatt_hour), Ok(7.0));
        assert!(parse_price(b" ").is_err());
        assert!(parse_price(b"").is_err());
        assert!(parse_price(b"abc").is_err());
        assert!(parse_price(b"inf").is_err());
        assert!(parse_price(b"NaN").is_err());
    }
}
