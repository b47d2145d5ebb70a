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
    (Some(value_of(mantissa, scale, neg)), n)
}

/// Powers of ten exact in `f64`, up to the most a plain decimal's scale can be.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The digits' integer divided by ten to the `scale`, with its sign: the integer is
/// below 10^15 < 2^53, so converting it is exact and the division rounds once.
#[inline(always)]
fn value_of(mantissa: u64, scale: usize, neg: bool) -> f64 {
    // Through `i64`: one instruction on every x86-64, where `u64` takes several.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_wrap)] // below 2^53: exact
    let v = mantissa as i64 as f64 / POW10[scale];
    if neg { -v } else { v }
}

/// Reads plain decimals one after another, each as [`plain_decimal_prefix`] reads it,
/// and faster when it is laid out as the last one read: the same number of digits
/// before and after the `.` (either sign), as the numbers of a file's column usually
/// are.
///
/// The layout of the last number read (up to seven bytes after its sign) is kept as
/// masks over an 8-byte word. A number is then checked against it with a few bit
/// operations on one word (every digit a digit, the `.` a `.`, the byte after the
/// last digit neither) and its digits summed in pairs, fours and eights, instead of
/// a byte at a time. Any other number is read by [`plain_decimal_prefix`], and its
/// layout kept for the next.
///
/// ```
/// use gridflex_core::number::{DecimalReader, plain_decimal_prefix};
///
/// let mut reader = DecimalReader::default();
/// let column: [&[u8]; 5] = [b"600.000\n", b"613.024\n2025", b"-1.5,", b"7.25", b"1.2.3\n"];
/// for text in column {
///     assert_eq!(reader.prefix(text), plain_decimal_prefix(text));
/// }
/// assert_eq!(reader.prefix(b"613.024\n2025"), (Some(613.024), 7));
/// ```
#[derive(Clone, Debug)]
pub struct DecimalReader {
    /// The high bit of each byte the layout checks: its digits, its `.` and the byte
    /// after it (of the word after the sign).
    check: u64,
    /// Which of those are not digits: the `.` and the byte after. At first a bit no
    /// check has, so that nothing matches before a first number is read.
    want: u64,
    /// The `.`'s byte (0 without one) and the byte after the number.
    dot: u64,
    end: u64,
    /// The digits' bytes before the `.` (all of them without one), and after it.
    before_dot: u64,
    after_dot: u64,
    /// How far the digits move up to be right-aligned in the word.
    shift: u32,
    /// The number's length after the sign, and ten to the power of its decimals.
    len: usize,
    scale: usize,
}

impl Default for DecimalReader {
    fn default() -> Self {
        DecimalReader {
            check: 0,
            want: 1,
            dot: 0,
            end: 0,
            before_dot: 0,
            after_dot: 0,
            shift: 0,
            len: 0,
            scale: 0,
        }
    }
}

impl DecimalReader {
    /// [`plain_decimal_prefix`] of `s`: the value and length of the plain decimal it
    /// starts with, read faster when it has the last number's layout.
    #[inline(always)]
    pub fn prefix(&mut self, s: &[u8]) -> (Option<f64>, usize) {
        const ONES: u64 = u64::from_le_bytes([0x01; 8]);
        let neg = s.first() == Some(&b'-');
        let sign = usize::from(neg);
        if let Some(word) = s.get(sign..sign + 8)
            && let Ok(word) = <[u8; 8]>::try_from(word)
        {
            let word = u64::from_le_bytes(word);
            // Digits become 0 to 9, and a byte's high bit is set when it is not one
            // (exact per byte: the sums never carry into the next byte).
            let x = word ^ (ONES * 0x30);
            let not_digit = (((x & (ONES * 0x7f)) + ONES * 0x76) | x) & self.check;
            // A `.` becomes 0.
            let y = word ^ (ONES * 0x2e);
            if not_digit == self.want && y & self.dot == 0 && y & self.end != 0 {
                // The `.` taken out, the digits right-aligned (zeros before them),
                // then summed: pairs in each 16-bit lane, fours in each 32-bit lane,
                // then the two fours.
                let mut d = (x & self.before_dot) | ((x >> 8) & self.after_dot);
                d <<= self.shift;
                d = (d * 10 + (d >> 8)) & 0x00ff_00ff_00ff_00ff;
                d = (d * 100 + (d >> 16)) & 0x0000_ffff_0000_ffff;
                let mantissa = (d & 0xffff_ffff) * 10_000 + (d >> 32);
                return (Some(value_of(mantissa, self.scale, neg)), sign + self.len);
            }
        }
        self.learn(s, neg)
    }

    /// Reads `s` a byte at a time and keeps its layout when it is a plain decimal of
    /// up to seven bytes after the sign, with a word's bytes to read.
    #[inline(never)]
    fn learn(&mut self, s: &[u8], neg: bool) -> (Option<f64>, usize) {
        let found = plain_decimal_prefix(s);
        let sign = usize::from(neg);
        let len = found.1 - sign;
        if found.0.is_some() && len < 8 && s.len() >= sign + 8 {
            let high = |i: usize| 0x80u64 << (8 * i);
            let byte = |i: usize| 0xffu64 << (8 * i);
            let below = |i: usize| (1u64 << (8 * i)) - 1;
            let dot = s[sign..found.1].iter().position(|&c| c == b'.');
            let digits = len - usize::from(dot.is_some());
            self.check = (0..=len).fold(0, |m, i| m | high(i));
            self.want = high(len) | dot.map_or(0, high);
            self.dot = dot.map_or(0, byte);
            self.end = byte(len);
            let at = dot.unwrap_or(len);
            self.before_dot = below(at);
            self.after_dot = below(digits) & !below(at);
            #[allow(clippy::cast_possible_truncation)] // at most 56
            let shift = (8 * (8 - digits)) as u32;
            self.shift = shift;
            self.len = len;
            self.scale = dot.map_or(0, |p| len - 1 - p);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{DecimalReader, parse_plain_decimal, plain_decimal_prefix};

    proptest! {
        /// A column of numbers read by one reader gives each what
        /// `plain_decimal_prefix` gives it: numbers laid out as the one before (the
        /// fast way) or not, any digits, signs, points, ends and other bytes.
        #[test]
        fn a_column_reads_as_each_number_alone(
            column in proptest::collection::vec(
                (
                    prop_oneof![3 => Just(true), 1 => Just(false)],
                    "-?[0-9]{0,4}\\.?[0-9]{0,4}|[0-9.,\\n x-]{0,9}",
                    proptest::collection::vec(prop_oneof![9 => b'0'..=b'9', 1 => Just(b'.'), 1 => Just(b'x')], 9),
                    "[,\\n x\\u{80}0-9.-]{0,9}",
                ),
                1..40,
            ),
        ) {
            let mut reader = DecimalReader::default();
            let mut last = Vec::new();
            for (again, number, bytes, rest) in column {
                // Mostly the last number's layout with other digits, now and then
                // with a byte that breaks it.
                let number = if again && !last.is_empty() {
                    last.iter().zip(&bytes).map(|(&c, &b)| if c == b'-' { c } else { b }).collect()
                } else {
                    number.into_bytes()
                };
                let text = [number.as_slice(), rest.as_bytes()].concat();
                let (value, n) = reader.prefix(&text);
                let alone = plain_decimal_prefix(&text);
                let shown = String::from_utf8_lossy(&text);
                prop_assert_eq!(n, alone.1, "{:?}", shown);
                prop_assert_eq!(value.map(f64::to_bits), alone.0.map(f64::to_bits), "{:?}", shown);
                last = number;
            }
        }

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
