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
    // Read in place: `buf` is zeroed once and keeps its length, and the bytes held are
    // `buf[..len]`. A chunk is asked for whole in each `read` (a `read_to_end` asks
    // for small reads first, which a `BufReader` copies twice).
    let mut buf: Vec<u8> = vec![0; CHUNK];
    let mut len = 0;
    let mut bounds = Bounds::default();
    let mut line_no: u64 = 1;
    loop {
        let had = len;
        if buf.len() < had + CHUNK {
            buf.resize(had + CHUNK, 0); // a line longer than the chunk, rarely
        }
        let read =
            fill(&mut input, &mut buf[had..had + CHUNK]).map_err(|source| SignalError::Io {
                at: Box::new(Location::line(line_no)),
                source,
            })?;
        len = had + read;
        let eof = read < CHUNK;
        let data = &buf[..len];
        // Whole lines in the buffer (all of it at the end of the input).
        let upto = if eof {
            len
        } else {
            match memchr::memrchr(b'\n', &data[had..]) {
                Some(i) => had + i + 1,
                None if len <= MAX_PLAIN_LINE => continue,
                None => 0,
            }
        };
        if upto == 0 && len > 0 || !is_plain(data, eof) {
            buf.truncate(len);
            return Ok(Plain::Rest {
                rest: Cursor::new(buf).chain(input),
                line: line_no,
            });
        }
        line_no = each_line(&data[..upto], line_no, &mut bounds, &mut each)?;
        if eof {
            return Ok(Plain::Done);
        }
        buf.copy_within(upto..len, 0);
        len -= upto;
    }
}

/// Reads into `buf` until it is full or the input ends; how many bytes were read.
fn fill(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// No quote anywhere and every `\r` right before a `\n` (a `\r` at the very end of an
/// unfinished buffer cannot be told yet, so it counts as not plain).
fn is_plain(buf: &[u8], eof: bool) -> bool {
    // One pass for both bytes (a file without either is read once more, not twice).
    memchr::memchr2_iter(b'"', b'\r', buf).all(|i| {
        buf[i] == b'\r'
            && match buf.get(i + 1) {
                Some(b'\n') => true,
                Some(_) => false,
                None => eof,
            }
    })
}

/// Calls `each(number, &line)` for every line of `data` (whole lines; the last one may
/// lack its `\n`), numbered from `line_no`, and returns the number after the last.
///
/// The commas and line ends of each 64 bytes are found at once, as two 64-bit masks
/// ([`masks`]), and taken from the masks lowest first: no search is started per line
/// or per field, and no branch depends on where the next comma is. A line's fields are
/// short, so searching for each comma (`memchr_iter`) spent more on starting searches
/// than on searching.
fn each_line(
    data: &[u8],
    line_no: u64,
    bounds: &mut Bounds,
    each: &mut impl FnMut(u64, &Line<'_>) -> Result<(), SignalError>,
) -> Result<u64, SignalError> {
    // `data` is at most a chunk and a longest plain line, so offsets fit in `u32`.
    let mut at = Cuts {
        data,
        field: 0,
        line_no,
    };
    bounds.clear();
    let (blocks, tail) = data.as_chunks::<64>();
    let mut base = 0u32;
    for block in blocks {
        let (commas, newlines) = masks(block);
        at.take(commas, newlines, base, bounds, each)?;
        base += 64;
    }
    if !tail.is_empty() {
        let mut last = [0u8; 64];
        last[..tail.len()].copy_from_slice(tail);
        let (commas, newlines) = masks(&last);
        at.take(commas, newlines, base, bounds, each)?;
    }
    if data.last().is_some_and(|&b| b != b'\n') {
        at.end_line(data.len() as u32, bounds, each)?;
    }
    Ok(at.line_no)
}

/// Fields a line's bounds hold in place; a line with more keeps them in a vector.
const IN_PLACE: usize = 32;

/// A line's field bounds (`(start, end)` in the data): the first [`IN_PLACE`] in an
/// array, so that adding one is a store and a count, the rest in a vector.
pub(crate) struct Bounds {
    first: [(u32, u32); IN_PLACE],
    len: usize,
    more: Vec<(u32, u32)>,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            first: [(0, 0); IN_PLACE],
            len: 0,
            more: Vec::new(),
        }
    }
}

impl Bounds {
    #[inline(always)]
    fn push(&mut self, bound: (u32, u32)) {
        if let Some(slot) = self.first.get_mut(self.len) {
            *slot = bound;
        } else {
            if self.len == IN_PLACE {
                self.more.clear();
                self.more.extend_from_slice(&self.first);
            }
            self.more.push(bound);
        }
        self.len += 1;
    }

    fn as_slice(&self) -> &[(u32, u32)] {
        self.first.get(..self.len).unwrap_or(&self.more)
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// Where [`each_line`] is: the start of the field being read and the line's number.
struct Cuts<'a> {
    data: &'a [u8],
    field: u32,
    line_no: u64,
}

impl Cuts<'_> {
    /// The fields and lines that end at the set bits of `commas` and `newlines`
    /// (bit `k` for byte `base + k`).
    #[inline(always)]
    fn take(
        &mut self,
        commas: u64,
        newlines: u64,
        base: u32,
        bounds: &mut Bounds,
        each: &mut impl FnMut(u64, &Line<'_>) -> Result<(), SignalError>,
    ) -> Result<(), SignalError> {
        // The field's start and the count of bounds are kept in locals here (stored
        // back before a line is handed out), so a comma costs a store, not a reload.
        // Line by line: the commas before the next line end, then that end, so a
        // comma is not also tested for being a line end.
        let (mut commas, mut newlines) = (commas, newlines);
        let mut field = self.field;
        let mut len = bounds.len;
        loop {
            // The bits below the lowest line end (all of them without one).
            let before = newlines.wrapping_sub(1) & !newlines;
            let mut cuts = commas & before;
            commas &= !before;
            while cuts != 0 {
                let i = base + cuts.trailing_zeros();
                if let Some(slot) = bounds.first.get_mut(len) {
                    *slot = (field, i);
                    len += 1;
                } else {
                    bounds.len = len;
                    bounds.push((field, i));
                    len = bounds.len;
                }
                field = i + 1;
                cuts &= cuts - 1;
            }
            if newlines == 0 {
                break;
            }
            bounds.len = len;
            self.field = field;
            self.end_line(base + newlines.trailing_zeros(), bounds, each)?;
            field = self.field;
            len = bounds.len;
            newlines &= newlines - 1;
        }
        bounds.len = len;
        self.field = field;
        Ok(())
    }

    /// Ends the line at byte `end` (its `\n`, or the end of the data): its last field
    /// stops before a `\r` right before `end`.
    fn end_line(
        &mut self,
        end: u32,
        bounds: &mut Bounds,
        each: &mut impl FnMut(u64, &Line<'_>) -> Result<(), SignalError>,
    ) -> Result<(), SignalError> {
        let cr = end > self.field && self.data.get(end as usize - 1) == Some(&b'\r');
        bounds.push((self.field, end - u32::from(cr)));
        each(
            self.line_no,
            &Line {
                text: self.data,
                bounds: bounds.as_slice(),
            },
        )?;
        bounds.clear();
        self.line_no += 1;
        self.field = end + 1;
        Ok(())
    }
}

/// The commas and the newlines of 64 bytes, one bit per byte (bit `k` for byte `k`):
/// 16 bytes at a time with SSE2, which every x86-64 has.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn masks(block: &[u8; 64]) -> (u64, u64) {
    use safe_arch::{
        cmp_eq_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };
    let (comma, newline) = (
        set_splat_i8_m128i(b',' as i8),
        set_splat_i8_m128i(b'\n' as i8),
    );
    let (parts, _) = block.as_chunks::<16>();
    let (mut commas, mut newlines) = (0u64, 0u64);
    for (k, part) in parts.iter().enumerate() {
        let v = load_unaligned_m128i(part);
        let bits = |mask| u64::from(move_mask_i8_m128i(mask) as u16) << (16 * k);
        commas |= bits(cmp_eq_mask_i8_m128i(v, comma));
        newlines |= bits(cmp_eq_mask_i8_m128i(v, newline));
    }
    (commas, newlines)
}

/// [`masks`] eight bytes at a time in plain integer arithmetic (SWAR), for every other
/// target (and, in tests, to check the SSE2 one against).
#[cfg(any(not(target_arch = "x86_64"), test))]
#[inline(always)]
fn masks_swar(block: &[u8; 64]) -> (u64, u64) {
    let (words, _) = block.as_chunks::<8>();
    let (mut commas, mut newlines) = (0u64, 0u64);
    for (k, w) in words.iter().enumerate() {
        let w = u64::from_le_bytes(*w);
        commas |= equal_bytes(w, b',') << (8 * k);
        newlines |= equal_bytes(w, b'\n') << (8 * k);
    }
    (commas, newlines)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn masks(block: &[u8; 64]) -> (u64, u64) {
    masks_swar(block)
}

/// One bit per byte of `w` (bit `k` for byte `k`, little-endian), set where the byte is
/// `byte`.
#[cfg(any(not(target_arch = "x86_64"), test))]
#[inline(always)]
fn equal_bytes(w: u64, byte: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let t = w ^ u64::from_le_bytes([byte; 8]);
    // The high bit of each byte of `hits` is set exactly where `t` is zero (no carry
    // crosses a byte: (t & 0x7f) + 0x7f <= 0xfe).
    let hits = !(((t & LOW7) + LOW7) | t | LOW7);
    // Each byte's high bit moved to its low bit, then all eight gathered into the top
    // byte by one multiplication (no two partial products meet in the same bit).
    ((hits >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

#[cfg(test)]
mod tests {
    use proptest::prelude::Strategy as _;

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

    /// Lines and fields as a byte loop finds them.
    fn reference(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        if data.last().is_none_or(|&b| b == b'\n') {
            lines.pop(); // nothing after the last newline
        }
        lines
            .into_iter()
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .map(|l| l.split(|&b| b == b',').map(<[u8]>::to_vec).collect())
            .collect()
    }

    proptest::proptest! {
        /// The mask-at-a-time reader finds exactly the lines and fields a byte loop
        /// finds, at any length and alignment, whatever the other bytes (high bytes
        /// included), with `\r\n` line ends and a last line with or without its end.
        #[test]
        fn lines_and_fields_agree_with_a_byte_loop(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b",".to_vec()),
                    proptest::prelude::Just(b"\n".to_vec()),
                    proptest::prelude::Just(b"\r\n".to_vec()),
                    proptest::prelude::any::<u8>()
                        .prop_filter("plain", |b| !matches!(b, b',' | b'\n' | b'\r'))
                        .prop_map(|b| vec![b]),
                ],
                0..400,
            ),
            first in 1u64..1000,
        ) {
            let data: Vec<u8> = parts.concat();
            let mut seen = Vec::new();
            let mut bounds = Bounds::default();
            let next = each_line(&data, first, &mut bounds, &mut |n, line: &Line<'_>| {
                let fields: Vec<Vec<u8>> = (0..line.width())
                    .map(|i| line.field(i).unwrap_or_default().to_vec())
                    .collect();
                seen.push((n, fields));
                Ok(())
            });
            let expected = reference(&data);
            proptest::prop_assert_eq!(next.ok(), Some(first + expected.len() as u64));
            let numbers: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
            let want: Vec<u64> = (first..first + expected.len() as u64).collect();
            proptest::prop_assert_eq!(numbers, want);
            let fields: Vec<Vec<Vec<u8>>> = seen.into_iter().map(|(_, f)| f).collect();
            proptest::prop_assert_eq!(fields, expected);
        }

        /// The SSE2 masks and the SWAR masks agree on any 64 bytes.
        #[test]
        fn simd_and_swar_masks_agree(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b','),
                    proptest::prelude::Just(b'\n'),
                    proptest::prelude::any::<u8>(),
                ],
                64,
            ),
        ) {
            let block: [u8; 64] = bytes.try_into().unwrap_or([0; 64]);
            let mut commas = 0u64;
            let mut newlines = 0u64;
            for (k, &b) in block.iter().enumerate() {
                commas |= u64::from(b == b',') << k;
                newlines |= u64::from(b == b'\n') << k;
            }
            proptest::prop_assert_eq!(masks(&block), (commas, newlines));
            proptest::prop_assert_eq!(masks_swar(&block), (commas, newlines));
        }
    }
}
