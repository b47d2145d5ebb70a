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
    if let Some(v) = by_last_word(s) {
        return Some(v);
    }
    // Shorter than a word, not plain, or a layout the word does not take: the byte
    // loop says which.
    match plain_decimal_prefix(s) {
        (value, n) if n == s.len() => value,
        _ => None,
    }
}

/// A one in every byte of a word.
const ONES: u64 = u64::from_le_bytes([0x01; 8]);

/// [`parse_plain_decimal`] of a number of 8 to 16 bytes after its sign whose `.`, if
/// any, is among its last eight (a price's usual layout, whatever its digits before
/// the point): those eight bytes checked at once as one word, the `.` taken out and
/// their digits summed in pairs, fours and the two fours; the few bytes before them a
/// byte at a time. `None` for anything else, plain or not (the byte loop decides).
#[inline(always)]
fn by_last_word(s: &[u8]) -> Option<f64> {
    let neg = s.first() == Some(&b'-');
    let body = s.get(usize::from(neg)..)?;
    let m = body.len();
    if !(8..=16).contains(&m) {
        return None;
    }
    let (head, last) = body.split_at(m - 8);
    // A byte's high bit set where it is not a digit, or not a `.` (exact per byte: the
    // sums never carry).
    let (x, y) = word_of(last)?;
    let not_digit = (((x & (ONES * 0x7f)) + ONES * 0x76) | x) & (ONES * 0x80);
    let dot = !((((y & (ONES * 0x7f)) + ONES * 0x7f) | y) | !(ONES * 0x80));
    // Every byte a digit but at most one `.`, which needs digits after it.
    if not_digit != dot || dot & dot.wrapping_sub(1) != 0 || dot >> 56 != 0 {
        return None;
    }
    let (low, low_digits, scale) = if dot == 0 {
        (eight_digits(x), 8, 0)
    } else {
        // The digits after the `.` moved down over it, then all of them up a byte, so
        // the seven digits fill the top of the word.
        let at = dot.trailing_zeros() as usize / 8;
        let below = (1u64 << (8 * at)) - 1;
        let d = (x & below) | ((x >> 8) & !below);
        (eight_digits(d << 8), 7, 7 - at)
    };
    let mut high = 0u64;
    for &b in head {
        let d = b.wrapping_sub(b'0');
        if d >= 10 {
            return None; // a `.` or another byte before the last eight
        }
        high = high * 10 + u64::from(d);
    }
    if head.len() + low_digits > 15 {
        return None;
    }
    Some(value_of(high * POW10_INT[low_digits] + low, scale, neg))
}

/// Eight digits (values 0 to 9, the first in the lowest byte) as an integer: summed in
/// pairs in each 16-bit lane, fours in each 32-bit lane, then the two fours.
#[inline(always)]
fn eight_digits(mut d: u64) -> u64 {
    d = (d * 10 + (d >> 8)) & 0x00ff_00ff_00ff_00ff;
    d = (d * 100 + (d >> 16)) & 0x0000_ffff_0000_ffff;
    (d & 0xffff_ffff) * 10_000 + (d >> 32)
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
/// The layout of the last number read is kept as masks over 8-byte words: one word for
/// a number of up to seven bytes after its sign, two for a longer one with a `.` (up
/// to seven digits before it, read from the number's start, and up to seven after it,
/// read from the `.`). A number is then checked against it with a few bit operations
/// on each word (every digit a digit, the `.` a `.`, the byte after the last digit
/// neither) and its digits summed in pairs, then fours, then the two fours, instead
/// of a byte at a time. A number that does not match is read by
/// [`plain_decimal_prefix`] and its layout kept for the next (a number of another
/// form keeps none: the numbers after it are read a byte at a time until one has a
/// layout).
///
/// ```
/// use gridflex_core::number::{DecimalReader, plain_decimal_prefix};
///
/// let mut reader = DecimalReader::default();
/// let column: [&[u8]; 7] = [
///     b"600.000\n",
///     b"613.024\n2025",
///     b"1234.56789,RTM",
///     b"4321.98765,RTM",
///     b"-1.5,",
///     b"7.25",
///     b"1.2.3\n",
/// ];
/// for text in column {
///     assert_eq!(reader.prefix(text), plain_decimal_prefix(text));
/// }
/// assert_eq!(reader.prefix(b"613.024\n2025"), (Some(613.024), 7));
/// ```
#[derive(Clone, Debug, Default)]
pub struct DecimalReader {
    /// How the last number was laid out (its length after the sign, 0 for none).
    len: usize,
    /// Its digits after the `.` (0 without one).
    scale: usize,
    /// Whether it took two words (its digits before and after the `.` read apart).
    split: bool,
    /// The first word: the whole number (one word), or its digits before the `.` (two).
    first: Part,
    /// The second word, from the `.` on (two words only).
    second: Part,
}

/// What a [`DecimalReader`] checks and reads in one 8-byte word.
#[derive(Clone, Copy, Debug, Default)]
struct Part {
    /// The high bit of each byte checked: the digits, and the `.` or the byte after.
    check: u64,
    /// Which of those are not digits.
    want: u64,
    /// The byte that is a `.` (0 for none) and the byte after the number, neither a
    /// digit nor a `.` (0 for none: the first of two words ends at the `.`).
    dot: u64,
    end: u64,
    /// The digits' bytes before the `.` (all of them when the word has no `.`) and
    /// after it.
    before_dot: u64,
    after_dot: u64,
    /// How far the digits move up to be right-aligned in the word (0 without digits).
    shift: u32,
}

/// A word's bytes, digits turned into 0 to 9 (`x`) and `.` into 0 (`y`).
#[inline(always)]
fn word_of(s: &[u8]) -> Option<(u64, u64)> {
    let word = u64::from_le_bytes(s.get(..8)?.try_into().ok()?);
    Some((word ^ (ONES * 0x30), word ^ (ONES * 0x2e)))
}

impl Part {
    /// The digits of the word (as [`word_of`] gives it) as an integer, if the word
    /// has this part's layout.
    #[inline(always)]
    fn read(&self, (x, y): (u64, u64)) -> Option<u64> {
        // A byte's high bit is set when it is not a digit (exact per byte: the sums
        // never carry into the next byte).
        let not_digit = (((x & (ONES * 0x7f)) + ONES * 0x76) | x) & self.check;
        if not_digit != self.want || y & self.dot != 0 || (self.end != 0 && y & self.end == 0) {
            return None;
        }
        // The `.` taken out, the digits right-aligned (zeros before them), then
        // summed.
        let d = (x & self.before_dot) | ((x >> 8) & self.after_dot);
        Some(eight_digits(d << self.shift))
    }

    /// The part for a word whose first `len` bytes are digits except a `.` at `dot`,
    /// followed by a byte that ends the number (`ends`) or by the `.` (`dot == len`).
    fn new(len: usize, dot: Option<usize>, ends: bool) -> Part {
        let high = |i: usize| 0x80u64 << (8 * i);
        let byte = |i: usize| 0xffu64 << (8 * i);
        let below = |i: usize| (1u64 << (8 * i)) - 1;
        let digits = len - usize::from(dot.is_some_and(|p| p < len));
        let at = dot.unwrap_or(len);
        #[allow(clippy::cast_possible_truncation)] // at most 56
        let shift = if digits == 0 {
            0
        } else {
            (8 * (8 - digits)) as u32
        };
        Part {
            check: (0..=len).fold(0, |m, i| m | high(i)),
            want: high(len) | dot.map_or(0, high),
            dot: dot.map_or(0, byte),
            end: if ends { byte(len) } else { 0 },
            before_dot: below(at.min(len)),
            after_dot: below(digits) & !below(at.min(len)),
            shift,
        }
    }
}

impl DecimalReader {
    /// [`plain_decimal_prefix`] of `s`: the value and length of the plain decimal it
    /// starts with, read faster when it has the last number's layout.
    #[inline(always)]
    pub fn prefix(&mut self, s: &[u8]) -> (Option<f64>, usize) {
        let neg = s.first() == Some(&b'-');
        let sign = usize::from(neg);
        let rest = s.get(sign..).unwrap_or_default();
        let mantissa = if self.len == 0 {
            None
        } else if !self.split {
            word_of(rest).and_then(|w| self.first.read(w))
        } else {
            let before = self.len - 1 - self.scale;
            match (word_of(rest), rest.get(before..).and_then(word_of)) {
                (Some(a), Some(b)) => match (self.first.read(a), self.second.read(b)) {
                    (Some(int), Some(frac)) => Some(int * POW10_INT[self.scale] + frac),
                    _ => None,
                },
                _ => None,
            }
        };
        match mantissa {
            Some(m) => (Some(value_of(m, self.scale, neg)), sign + self.len),
            None => self.read_and_learn(s, sign),
        }
    }

    /// Reads `s` with [`plain_decimal_prefix`] and keeps its layout (none when it is
    /// not plain, has no word's bytes to read, or does not fit the words). Out of
    /// line, so that the usual number's code stays small where it is inlined.
    #[inline(never)]
    fn read_and_learn(&mut self, s: &[u8], sign: usize) -> (Option<f64>, usize) {
        let found = plain_decimal_prefix(s);
        let number = &s[sign..found.1];
        let len = number.len();
        let dot = number.iter().position(|&c| c == b'.');
        self.len = 0;
        if found.0.is_none() {
            return found;
        }
        if len < 8 && s.len() >= sign + 8 {
            self.first = Part::new(len, dot, true);
            self.split = false;
        } else if let Some(at) = dot
            && at < 8
            && len - at < 8
            && s.len() >= sign + at + 9
        {
            // Two words: the digits before the `.` and the `.` itself, then from the
            // `.` on (the `.` checked again, the digits after it, the byte after them).
            self.first = Part::new(at, Some(at), false);
            self.second = Part::new(len - at, Some(0), true);
            self.split = true;
        } else {
            return found;
        }
        self.len = len;
        self.scale = dot.map_or(0, |p| len - 1 - p);
        found
    }
}

/// Powers of ten as integers, for joining a number's digits before and after its `.`.
const POW10_INT: [u64; 16] = {
    let mut p = [1u64; 16];
    let mut i = 1;
    while i < 16 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{DecimalReader, parse_plain_decimal, plain_decimal_prefix};

    /// A number laid out as the last one but followed by a `.` (or a digit) is longer
    /// than its layout: read a byte at a time, it is not plain (or not the same number).
    #[test]
    fn a_point_or_digit_after_the_layout_is_not_the_layout() {
        let mut reader = DecimalReader::default();
        for text in [
            &b"600.000\n2025"[..],
            b"613.024.\n2025",
            b"613.0245\n2025",
            b"1234.56789,RTM,1",
            b"4321.98765.RTM,1",
            b"4321.987654,RTM,1",
            b"4321.98765,RTM,1",
        ] {
            assert_eq!(reader.prefix(text), plain_decimal_prefix(text), "{text:?}");
        }
    }

    /// Every plain layout up to past the longest (any length, a `.` anywhere or none,
    /// a sign or none), plain and with any one byte made a byte next to a digit or a
    /// `.` (`/`, `:`, `-`, a space, `e`, a high byte, another `.`): read a word at a
    /// time where the layout allows, each gives what the byte loop gives.
    #[test]
    fn every_layout_reads_as_the_byte_loop() {
        let mut checked = 0;
        for len in 0..=18 {
            for dot in (0..len).map(Some).chain([None]) {
                for sign in [&b""[..], b"-"] {
                    let mut plain: Vec<u8> = sign.to_vec();
                    plain.extend((0..len).map(|i| {
                        if Some(i) == dot {
                            b'.'
                        } else {
                            b"9876543210"[i % 10]
                        }
                    }));
                    let mut texts = vec![plain.clone()];
                    for at in 0..plain.len() {
                        for byte in [b'/', b':', b'-', b' ', b'e', 0xb9, b'.'] {
                            let mut text = plain.clone();
                            text[at] = byte;
                            texts.push(text);
                        }
                    }
                    for text in texts {
                        assert_eq!(
                            parse_plain_decimal(&text).map(f64::to_bits),
                            by_byte(&text).map(f64::to_bits),
                            "{:?}",
                            String::from_utf8_lossy(&text)
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000);
    }

    /// The byte loop alone: what [`parse_plain_decimal`] gives where it does not read
    /// a word.
    fn by_byte(text: &[u8]) -> Option<f64> {
        match plain_decimal_prefix(text) {
            (value, n) if n == text.len() => value,
            _ => None,
        }
    }

    proptest! {
        /// A column of numbers read by one reader gives each what
        /// `plain_decimal_prefix` gives it: numbers laid out as the one before (the
        /// fast way) or not, any digits, signs, points, ends and other bytes.
        #[test]
        fn a_column_reads_as_each_number_alone(
            column in proptest::collection::vec(
                (
                    prop_oneof![3 => Just(true), 1 => Just(false)],
                    "-?[0-9]{0,9}\\.?[0-9]{0,9}|[0-9.,\\n x-]{0,17}",
                    proptest::collection::vec(prop_oneof![40 => b'0'..=b'9', 1 => Just(b'.'), 1 => Just(b'x')], 20),
                    "[,\\n x\\u{80}0-9.-]{0,17}",
                ),
                1..40,
            ),
        ) {
            let mut reader = DecimalReader::default();
            let mut last: Vec<u8> = Vec::new();
            for (again, number, bytes, rest) in column {
                // Mostly the last number's layout with other digits, now and then
                // with a `.` or a letter where a digit was.
                let number = if again && !last.is_empty() {
                    last.iter().zip(&bytes).map(|(&c, &b)| if c.is_ascii_digit() { b } else { c }).collect()
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

        /// Any text gives what the byte loop gives: digits, points, signs, the bytes
        /// next to them (`/`, `:`, `-`), high bytes, at every length up to past the
        /// longest plain decimal.
        #[test]
        fn words_read_as_the_byte_loop(
            text in proptest::collection::vec(
                prop_oneof![
                    30 => b'0'..=b'9',
                    4 => Just(b'.'),
                    2 => Just(b'-'),
                    1 => prop_oneof![Just(b'/'), Just(b':'), Just(b'e'), Just(b' '), Just(0x80u8), Just(0xaeu8), Just(0xb0u8), Just(0u8)],
                ],
                0..=20,
            ),
        ) {
            prop_assert_eq!(
                parse_plain_decimal(&text).map(f64::to_bits),
                by_byte(&text).map(f64::to_bits),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
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
