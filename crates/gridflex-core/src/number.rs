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
    match plain_decimal_prefix(s) {
        (value, n) if n == s.len() => value,
        _ => None,
    }
}

/// The plain decimal a text starts with and how many bytes it takes: the longest start
/// made of a leading `-`, digits and `.` (at most 17 bytes, one more than a plain
/// decimal can have), and its value as [`parse_plain_decimal`] reads it, `None` when
/// that start is not a plain decimal. For readers that find where a number ends and
/// what it is in one pass.
///
/// ```
/// use gridflex_core::number::plain_decimal_prefix;
///
/// assert_eq!(plain_decimal_prefix(b"416.888\n2025"), (Some(416.888), 7));
/// assert_eq!(plain_decimal_prefix(b"-0.5,x"), (Some(-0.5), 4));
/// assert_eq!(plain_decimal_prefix(b"1.2.3\n"), (None, 5));
/// assert_eq!(plain_decimal_prefix(b"\n"), (None, 0));
/// ```
#[inline]
pub fn plain_decimal_prefix(s: &[u8]) -> (Option<f64>, usize) {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let neg = s.first() == Some(&b'-');
    let sign = usize::from(neg);
    let (mut mantissa, mut digits, mut dots, mut dot) = (0u64, 0usize, 0usize, 0usize);
    let mut n = sign;
    while n < s.len().min(17) {
        let b = s[n];
        let d = b.wrapping_sub(b'0');
        if d < 10 {
            // Wraps only past 19 digits, and more than 15 is not plain anyway.
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
            digits += 1;
        } else if b == b'.' {
            dots += 1;
            dot = n;
        } else {
            break;
        }
        n += 1;
    }
    // A plain decimal: some digits, at most 15, at most one `.` with digits after it.
    let scale = if dots == 1 { n - 1 - dot } else { 0 };
    if digits == 0 || digits > 15 || dots > 1 || (dots == 1 && scale == 0) {
        return (None, n);
    }
    #[allow(clippy::cast_precision_loss)] // below 10^15 < 2^53: exact
    let v = mantissa as f64 / POW10[scale];
    (Some(if neg { -v } else { v }), n)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{parse_plain_decimal, plain_decimal_prefix};

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

        #[test]
        fn a_prefix_reads_as_the_whole_number(
            text in "-?[0-9.]{0,16}",
            rest in prop_oneof![Just(""), Just("\n"), Just("\r\n"), Just(",1"), Just(" 2"), Just("x")],
        ) {
            let joined = format!("{text}{rest}");
            let (value, n) = plain_decimal_prefix(joined.as_bytes());
            prop_assert_eq!(n, text.len());
            prop_assert_eq!(value.map(f64::to_bits), parse_plain_decimal(text.as_bytes()).map(f64::to_bits));
        }
    }
}
