//! Fast, exact reading of the plain decimals operator and meter files are made of.

/// A plain decimal (`[-]digits[.digits]`, at most 15 digits in all) as the correctly
/// rounded `f64`, the value `str::parse` gives, without its general machinery: the
/// digits make an integer below 2^53 and the power of ten is exact, so one division
/// rounds once (Clinger's fast path). Anything else (an exponent, more digits, a sign
/// other than a leading `-`, a lone `.`, no digits after a `.`) is `None`: fall back to
/// `str::parse` then.
///
/// ```
/// use gridflex_core::number::parse_plain_decimal;
///
/// assert_eq!(parse_plain_decimal(b"416.888"), Some(416.888));
/// assert_eq!(parse_plain_decimal(b"-0.5"), Some(-0.5));
/// assert_eq!(parse_plain_decimal(b"1e3"), None);
/// assert_eq!(parse_plain_decimal(b"5."), None);
/// ```
pub fn parse_plain_decimal(s: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (neg, digits) = match s.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, s),
    };
    // More than 16 bytes is more than 15 digits, a second `.` or something else: none
    // of it is plain. Checked once, so the loop below only reads digits.
    if digits.len() > 16 {
        return None;
    }
    let (mut mantissa, mut dot) = (0u64, usize::MAX);
    for (i, &b) in digits.iter().enumerate() {
        let d = b.wrapping_sub(b'0');
        if d < 10 {
            mantissa = mantissa * 10 + u64::from(d);
        } else if b == b'.' && dot == usize::MAX {
            dot = i;
        } else {
            return None;
        }
    }
    let (count, scale) = if dot == usize::MAX {
        (digits.len(), 0)
    } else {
        (digits.len() - 1, digits.len() - 1 - dot)
    };
    if count == 0 || count > 15 || (dot != usize::MAX && scale == 0) {
        return None;
    }
    #[allow(clippy::cast_precision_loss)] // below 10^15 < 2^53: exact
    let v = mantissa as f64 / POW10[scale];
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::parse_plain_decimal;

    proptest! {
        #[test]
        fn the_same_bits_as_str_parse(
            int in 0u64..1_000_000_000,
            frac in 0u64..1_000_000,
            places in 0usize..7,
            neg in any::<bool>(),
        ) {
            let sign = if neg { "-" } else { "" };
            let text = if places == 0 {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{:0places$}", frac % 10u64.pow(places as u32))
            };
            let want: f64 = text.parse().unwrap_or(f64::NAN);
            prop_assert_eq!(parse_plain_decimal(text.as_bytes()).map(f64::to_bits), Some(want.to_bits()));
        }

        #[test]
        fn never_a_different_number(text in "-?[0-9.]{0,20}") {
            if let Some(v) = parse_plain_decimal(text.as_bytes()) {
                prop_assert_eq!(Some(v.to_bits()), text.parse::<f64>().ok().map(f64::to_bits), "{}", text);
            }
        }
    }
}
