//! ISO 8601 durations as OpenADR 3 writes them (`PT1H`, `P0Y0M0DT1H0M0S`, `P9999Y`).

use chrono::TimeDelta;

/// An OpenADR duration: finite, or the specification's `P9999Y`, which means "no end".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OadrDuration {
    /// A finite, non-negative duration.
    Finite(TimeDelta),
    /// `P9999Y`: open-ended (OpenADR 3 definitions: "P9999Y indicates infinity").
    Infinite,
}

/// Parses an ISO 8601 duration of the form `PnYnMnWnDTnHnMnS`. Years and months are
/// accepted only when zero (their length depends on the calendar) or as the
/// open-ended `P9999Y`; only seconds may carry a fraction; negative durations are
/// refused. The error says which part is wrong.
///
/// ```
/// use chrono::TimeDelta;
/// use gridflex_openadr::duration::{parse_duration, OadrDuration};
/// assert_eq!(parse_duration("P0Y0M0DT1H0M0S"), Ok(OadrDuration::Finite(TimeDelta::hours(1))));
/// assert_eq!(parse_duration("PT0.5S"), Ok(OadrDuration::Finite(TimeDelta::milliseconds(500))));
/// assert_eq!(parse_duration("P9999Y"), Ok(OadrDuration::Infinite));
/// assert!(parse_duration("P1M").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<OadrDuration, String> {
    let bad = |why: &str| format!("duration {text:?}: {why}");
    let rest = text
        .strip_prefix('P')
        .ok_or_else(|| bad("does not start with P"))?;
    if rest.is_empty() {
        return Err(bad("no components"));
    }
    let mut in_time = false;
    let mut seen_any = false;
    let mut years = 0u64;
    let mut months = 0u64;
    let mut total_ns: i128 = 0;
    let mut number = String::new();
    // Order of designators: date part Y M W D, then T, then H M S.
    let mut last_rank = 0u8;
    for c in rest.chars() {
        if c == 'T' {
            if in_time || !number.is_empty() {
                return Err(bad("misplaced T"));
            }
            in_time = true;
            continue;
        }
        if c.is_ascii_digit() || c == '.' || c == ',' {
            number.push(if c == ',' { '.' } else { c });
            continue;
        }
        if number.is_empty() {
            return Err(bad(&format!("designator {c} without a number")));
        }
        let rank = match (in_time, c) {
            (false, 'Y') => 1,
            (false, 'M') => 2,
            (false, 'W') => 3,
            (false, 'D') => 4,
            (true, 'H') => 5,
            (true, 'M') => 6,
            (true, 'S') => 7,
            _ => return Err(bad(&format!("unexpected {c}"))),
        };
        if rank <= last_rank {
            return Err(bad("designators out of order or repeated"));
        }
        last_rank = rank;
        let value = std::mem::take(&mut number);
        if rank != 7 && value.contains('.') {
            return Err(bad("only seconds may have a fraction"));
        }
        let ns_per: i128 = match rank {
            1 | 2 => {
                let v: u64 = value.parse().map_err(|_| bad("number out of range"))?;
                if rank == 1 {
                    years = v;
                } else {
                    months = v;
                }
                seen_any = true;
                continue;
            }
            3 => 7 * 86_400_000_000_000,
            4 => 86_400_000_000_000,
            5 => 3_600_000_000_000,
            6 => 60_000_000_000,
            _ => 1_000_000_000,
        };
        let ns = if rank == 7 {
            // Exact decimal: whole seconds and up to nine fraction digits (nanoseconds;
            // further digits are dropped).
            let (whole, frac) = value.split_once('.').unwrap_or((&value, ""));
            if whole.is_empty() || frac.contains('.') {
                return Err(bad("bad number"));
            }
            let whole: u64 = whole.parse().map_err(|_| bad("number out of range"))?;
            let digits: String = frac.chars().take(9).collect();
            let nanos: i128 = if digits.is_empty() {
                0
            } else {
                let n: i128 = digits.parse().map_err(|_| bad("bad number"))?;
                n * 10i128.pow(9 - digits.len() as u32)
            };
            i128::from(whole) * ns_per + nanos
        } else {
            let v: u64 = value.parse().map_err(|_| bad("number out of range"))?;
            i128::from(v) * ns_per
        };
        total_ns = total_ns
            .checked_add(ns)
            .ok_or_else(|| bad("number out of range"))?;
        seen_any = true;
    }
    if !number.is_empty() {
        return Err(bad("number without a designator"));
    }
    if !seen_any {
        return Err(bad("no components"));
    }
    if in_time && last_rank < 5 {
        return Err(bad("T without a time component"));
    }
    if years == 9999 && months == 0 && total_ns == 0 {
        return Ok(OadrDuration::Infinite);
    }
    if years != 0 || months != 0 {
        return Err(bad(
            "years and months have no fixed length (only P9999Y, meaning no end, is accepted)",
        ));
    }
    let ns = i64::try_from(total_ns).map_err(|_| bad("number out of range"))?;
    Ok(OadrDuration::Finite(TimeDelta::nanoseconds(ns)))
}

/// Writes a duration as `PT<seconds>S` (fraction only when needed), which every
/// OpenADR 3 parser reads.
///
/// ```
/// use chrono::TimeDelta;
/// use gridflex_openadr::duration::format_duration;
/// assert_eq!(format_duration(TimeDelta::minutes(5)), "PT300S");
/// assert_eq!(format_duration(TimeDelta::milliseconds(1500)), "PT1.5S");
/// ```
pub fn format_duration(d: TimeDelta) -> String {
    let d = d.max(TimeDelta::zero());
    let secs = d.num_seconds();
    let sub = d.subsec_nanos();
    if sub == 0 {
        format!("PT{secs}S")
    } else {
        let frac = format!("{:09}", sub);
        format!("PT{secs}.{}S", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forms_the_vtn_writes() {
        let f = |s| match parse_duration(s) {
            Ok(OadrDuration::Finite(d)) => d,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(f("P0Y0M0DT0H5M0S"), TimeDelta::minutes(5));
        assert_eq!(f("PT1H30M"), TimeDelta::minutes(90));
        assert_eq!(f("P1DT1S"), TimeDelta::seconds(86_401));
        assert_eq!(f("P1W"), TimeDelta::days(7));
        assert_eq!(f("PT0S"), TimeDelta::zero());
        for bad in [
            "", "P", "PT", "1H", "PT1H1H", "PT1M1H", "P1H", "PT1D", "P1.5D", "-PT1H", "PTS", "PT5",
            "P1Y", "P9999Y1D", "PT1e3S",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(ms in 0i64..10_000_000_000) {
            let d = TimeDelta::milliseconds(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(OadrDuration::Finite(d)));
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn components_add_up(d in 0u64..400, h in 0u64..48, m in 0u64..120, s in 0u64..200) {
            let text = format!("P{d}DT{h}H{m}M{s}S");
            let want = TimeDelta::seconds((d * 86_400 + h * 3_600 + m * 60 + s) as i64);
            prop_assert_eq!(parse_duration(&text), Ok(OadrDuration::Finite(want)));
        }
    }
}
