//! A fast path for the plain CSV the operators publish: no quoting, lines ended by `\n`
//! or `\r\n`.
//!
//! The `csv` crate handles every CSV there is, and costs about a third of the time of
//! a whole parse on an OASIS download. Nearly every real file is plain, so it is read
//! here in 1 MiB chunks, split on newlines and commas, and each line handed to the
//! caller as a [`Row`]. On the first chunk that is not plain (a `"` anywhere, a lone
//! `\r`, a line longer than [`MAX_PLAIN_LINE`]), [`read_plain`] stops before that
//! chunk's first unread line and hands the rest back ([`Plain::Rest`]), so the caller
//! goes on with the `csv` crate from exactly there with the right line numbers. Both
//! paths give each row to the same code, so results and error messages are the same.

use std::io::{Chain, Cursor, Read};

use crate::{Location, SignalError};

/// Bytes read per chunk.
const CHUNK: usize = 1 << 20;

/// A line longer than this is left to the `csv` crate (the fast path would have to
/// hold it whole).
pub(crate) const MAX_PLAIN_LINE: usize = 16 << 20;

/// One CSV row's fields, from either path.
pub(crate) trait Row {
    /// Field `i`, if the row has that many.
    fn field(&self, i: usize) -> Option<&[u8]>;
    /// The number of fields.
    fn width(&self) -> usize;
}

impl Row for csv::ByteRecord {
    fn field(&self, i: usize) -> Option<&[u8]> {
        self.get(i)
    }

    fn width(&self) -> usize {
        self.len()
    }
}

/// A plain line split on commas.
pub(crate) struct Line<'a> {
    text: &'a [u8],
    /// `(start, end)` of each field in `text`.
    bounds: &'a [(u32, u32)],
}

impl Row for Line<'_> {
    fn field(&self, i: usize) -> Option<&[u8]> {
        let &(a, b) = self.bounds.get(i)?;
        self.text.get(a as usize..b as usize)
    }

    fn width(&self) -> usize {
        self.bounds.len()
    }
}

impl Line<'_> {
    /// The line as a `csv` record (for the header).
    pub(crate) fn record(&self) -> csv::ByteRecord {
        (0..self.width())
            .filter_map(|i| self.field(i))
            .collect::<Vec<_>>()
            .into()
    }

    /// True for a line the `csv` crate reads as one empty or blank field.
    pub(crate) fn is_blank(&self) -> bool {
        self.width() == 1 && self.field(0).is_some_and(|f| f.trim_ascii().is_empty())
    }
}

/// How [`read_plain`] ended.
pub(crate) enum Plain<R> {
    /// The whole input was plain and every line was read.
    Done,
    /// The input stopped being plain: `rest` is everything not yet read, from the start
    /// of line `line` (1-based).
    Rest {
        rest: Chain<Cursor<Vec<u8>>, R>,
        line: u64,
    },
}

/// Reads `input` line by line while it is plain, calling `each(line_number, &line)`
/// for every line (line 1 first; empty lines included, as the caller decides what a
/// blank line means). Stops at the first error `each` returns.
pub(crate) fn read_plain<R: Read>(
    mut input: R,
    mut each: impl FnMut(u64, &Line<'_>) -> Result<(), SignalError>,
) -> Result<Plain<R>, SignalError> {
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 4096);
    let mut bounds: Vec<(u32, u32)> = Vec::with_capacity(32);
    let mut line_no: u64 = 1;
    loop {
        let had = buf.len();
        let read = (&mut input)
            .take(CHUNK as u64)
            .read_to_end(&mut buf)
            .map_err(|source| SignalError::Io {
                at: Box::new(Location::line(line_no)),
                source,
            })?;
        let eof = read < CHUNK;
        // Whole lines in the buffer (all of it at the end of the input).
        let upto = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf[had..]) {
                Some(i) => had + i + 1,
                None if buf.len() <= MAX_PLAIN_LINE => continue,
                None => 0,
            }
        };
        if upto == 0 && !buf.is_empty() || !is_plain(&buf, eof) {
            return Ok(Plain::Rest {
                rest: Cursor::new(buf).chain(input),
                line: line_no,
            });
        }
        let mut from = 0;
        while from < upto {
            let end = memchr::memchr(b'\n', &buf[from..upto]).map_or(upto, |i| from + i);
            let mut text = &buf[from..end];
            if let [head @ .., b'\r'] = text {
                text = head;
            }
            split(text, &mut bounds);
            each(
                line_no,
                &Line {
                    text,
                    bounds: &bounds,
                },
            )?;
            line_no += 1;
            from = end + 1;
        }
        if eof {
            return Ok(Plain::Done);
        }
        buf.drain(..upto);
    }
}

/// No quote anywhere and every `\r` right before a `\n` (a `\r` at the very end of an
/// unfinished buffer cannot be told yet, so it counts as not plain).
fn is_plain(buf: &[u8], eof: bool) -> bool {
    if memchr::memchr(b'"', buf).is_some() {
        return false;
    }
    memchr::memchr_iter(b'\r', buf).all(|i| match buf.get(i + 1) {
        Some(b'\n') => true,
        Some(_) => false,
        None => eof,
    })
}

/// Field bounds of one line. A line is at most [`MAX_PLAIN_LINE`] bytes here, so the
/// offsets fit in `u32`.
///
/// The commas of each 64 bytes are found first, as one 64-bit mask built eight bytes
/// at a time (SWAR) without a branch, and then taken from the mask lowest first. A
/// line's fields are short: one vector search per comma (`memchr_iter`) spent more on
/// starting each search than on searching, and a branch per eight bytes on whether
/// they hold a comma was mispredicted often enough to cost more than the search.
fn split(text: &[u8], bounds: &mut Vec<(u32, u32)>) {
    bounds.clear();
    let mut start = 0u32;
    let mut take = |mut mask: u64, base: u32, bounds: &mut Vec<(u32, u32)>| {
        while mask != 0 {
            let i = base + mask.trailing_zeros();
            bounds.push((start, i));
            start = i + 1;
            mask &= mask - 1;
        }
    };
    let (blocks, tail) = text.as_chunks::<64>();
    let mut base = 0u32;
    for block in blocks {
        let (words, _) = block.as_chunks::<8>();
        let mut mask = 0u64;
        for (k, w) in words.iter().enumerate() {
            mask |= commas(u64::from_le_bytes(*w)) << (8 * k);
        }
        take(mask, base, bounds);
        base += 64;
    }
    let (words, rest) = tail.as_chunks::<8>();
    let mut mask = words.iter().enumerate().fold(0u64, |m, (k, w)| {
        m | commas(u64::from_le_bytes(*w)) << (8 * k)
    });
    if !rest.is_empty() {
        // The last bytes: the line's last eight, shifted past those already read
        // (copied into a word of zeros when the whole line is shorter than eight).
        let last = match text.last_chunk::<8>() {
            Some(w) => commas(u64::from_le_bytes(*w)) >> (8 - rest.len()),
            None => {
                let mut w = [0u8; 8];
                w[..rest.len()].copy_from_slice(rest);
                commas(u64::from_le_bytes(w))
            }
        };
        mask |= last << (8 * words.len());
    }
    take(mask, base, bounds);
    bounds.push((start, text.len() as u32));
}

/// One bit per byte of `w` (bit `k` for byte `k`, little-endian), set where the byte is
/// a comma.
#[inline(always)]
fn commas(w: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const COMMAS: u64 = u64::from_le_bytes([b','; 8]);
    let t = w ^ COMMAS;
    // The high bit of each byte of `hits` is set exactly where `t` is zero (no carry
    // crosses a byte: (t & 0x7f) + 0x7f <= 0xfe).
    let hits = !(((t & LOW7) + LOW7) | t | LOW7);
    // Each byte's high bit moved to its low bit, then all eight gathered into the top
    // byte by one multiplication (no two partial products meet in the same bit).
    ((hits >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Line numbers with their fields.
    type Lines = Vec<(u64, Vec<Vec<u8>>)>;

    fn lines(input: &[u8]) -> (Lines, Option<(Vec<u8>, u64)>) {
        let mut seen = Vec::new();
        let end = read_plain(input, |n, line| {
            seen.push((
                n,
                (0..line.width())
                    .map(|i| line.field(i).unwrap_or_default().to_vec())
                    .collect(),
            ));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let rest = match end {
            Plain::Done => None,
            Plain::Rest { mut rest, line } => {
                let mut v = Vec::new();
                rest.read_to_end(&mut v).unwrap_or_else(|e| panic!("{e}"));
                Some((v, line))
            }
        };
        (seen, rest)
    }

    #[test]
    fn plain_lines_with_crlf_and_a_last_line_without_newline() {
        let (seen, rest) = lines(b"a,b\r\n1,,2\n\nx");
        assert!(rest.is_none());
        let f = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(
            seen,
            vec![
                (1, f(&["a", "b"])),
                (2, f(&["1", "", "2"])),
                (3, f(&[""])),
                (4, f(&["x"]))
            ]
        );
    }

    #[test]
    fn a_quote_hands_everything_unread_back_with_its_line() {
        let (seen, rest) = lines(b"a,b\n\"1\",2\n");
        assert!(seen.is_empty(), "the only chunk is not plain");
        assert_eq!(rest, Some((b"a,b\n\"1\",2\n".to_vec(), 1)));
        let (_, rest) = lines(b"a\rb\n");
        assert!(rest.is_some(), "a lone CR is a line end to the csv crate");
    }

    #[test]
    fn a_later_chunk_that_is_not_plain_resumes_at_its_first_line() {
        let mut input = Vec::new();
        let mut n = 0u64;
        while input.len() < CHUNK + 10 {
            n += 1;
            input.extend_from_slice(format!("{n},row\n").as_bytes());
        }
        input.extend_from_slice(b"\"q\",1\n");
        let (seen, rest) = lines(&input);
        let (rest, line) = rest.unwrap_or_else(|| panic!("a quote is not plain"));
        let last = seen.last().map_or(0, |(l, _)| *l);
        assert_eq!(line, last + 1, "resumes right after the last line read");
        let expected: Vec<u8> = input
            .split_inclusive(|&b| b == b'\n')
            .skip(last as usize)
            .flatten()
            .copied()
            .collect();
        assert_eq!(rest, expected);
    }

    proptest::proptest! {
        /// The word-at-a-time split finds exactly the commas a byte loop finds, at any
        /// length and alignment, whatever the other bytes (high bytes included).
        #[test]
        fn split_agrees_with_a_byte_loop(
            text in proptest::collection::vec(
                proptest::prop_oneof![proptest::prelude::Just(b','), proptest::prelude::any::<u8>()],
                0..80,
            ),
        ) {
            let mut bounds = Vec::new();
            split(&text, &mut bounds);
            let mut expected = Vec::new();
            let mut start = 0u32;
            for (i, &b) in text.iter().enumerate() {
                if b == b',' {
                    expected.push((start, i as u32));
                    start = i as u32 + 1;
                }
            }
            expected.push((start, text.len() as u32));
            proptest::prop_assert_eq!(bounds, expected);
        }
    }
}
