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
    let (mut mantissa, mut count, mut scale, mut dot) = (0u64, 0usize, 0usize, false);
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                count += 1;
                scale += usize::from(dot);
            }
            b'.' if !dot => dot = true,
            _ => return None,
        }
        if count > 15 {
            return None;
        }
    }
    if count == 0 || (dot && scale == 0) {
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
