//! Long-format meter files read as a stream, one meter at a time.

use std::collections::HashSet;
use std::io::Read;

use gridflex_core::MarketZone;

use super::fast::{Cache, Grid, Value, quick_row};
use super::{MAX_LONG_METERS, MvError, err, in_meter, long_header, long_row, regular};
use crate::Meter;

/// The most bytes one meter's rows may take in a streamed long-format file (256 MiB:
/// 4 million rows of 64 bytes). A meter's rows are held until they end, so that a
/// meter the fast reader does not take can be read again by the general one.
pub const MAX_LONG_METER_BYTES: usize = 256 << 20;

/// How much is read from the input at a time.
const CHUNK: usize = 1 << 20;

/// Bytes a usual row needs in the buffer past its meter id for [`quick_row`] to see it
/// whole (a time of 25 bytes, a comma, a value of at most 17 bytes, `\r\n`), with room
/// to spare.
const QUICK_ROW: usize = 64;

/// Reads a long-format meter file (`meter_id,interval_start,kw`) whose rows are kept
/// together by meter, as a meter data export or a database dump ordered by meter writes
/// them, and yields each meter as soon as its rows end: memory holds one meter and one
/// read buffer, whatever the file's size.
///
/// Each meter is what [`parse_long_meter_csv`](super::parse_long_meter_csv) gives for
/// its rows, then [`Meter::new`] in `zone`: the same values, and the same errors with
/// the same line numbers (a test checks both). Meters come out in the file's order and
/// the first meter with an error ends the reading (the whole-file parser reports a
/// faulty row of any meter before a fault in an earlier meter's grid, so a file with
/// faults in several meters can be named by another one). Rows are read on the fast
/// reader's path where they have its layout, and a meter with anything else is read
/// again from its rows by the general parser.
///
/// A meter whose id appears again after other meters' rows is an error
/// ([`MvError::MeterNotTogether`] naming the line). A file whose meters are
/// interleaved row by row usually fails before that, at its first meter, whose rows
/// end after a row or two (too few to know the interval): read such a file with
/// `parse_long_meter_csv` (the `mv` tool does when streaming fails and the file is
/// under 1 GiB). Text that is not UTF-8 is an error naming the line and byte, a read
/// that fails an [`MvError::Read`]. After an error the iterator ends.
///
/// ```
/// use gridflex_core::MarketZone;
/// use gridflex_mv::input::LongMeterReader;
///
/// let csv = "meter_id,interval_start,kw
/// a,2025-07-01T00:00:00Z,10
/// a,2025-07-01T00:05:00Z,11
/// b,2025-07-01T00:00:00Z,7
/// b,2025-07-01T00:05:00Z,
/// ";
/// let meters = LongMeterReader::new(csv.as_bytes(), MarketZone::Pjm)
///     .collect::<Result<Vec<_>, _>>()?;
/// assert_eq!(meters.len(), 2);
/// assert_eq!((meters[1].0.as_str(), meters[1].1.len()), ("b", 2));
///
/// let again = format!("{csv}a,2025-07-01T00:10:00Z,12\n");
/// let err = LongMeterReader::new(again.as_bytes(), MarketZone::Pjm)
///     .find_map(Result::err)
///     .unwrap();
/// assert_eq!(err, gridflex_mv::MvError::MeterNotTogether { line: 6, meter: "a".into() });
/// # Ok::<(), gridflex_mv::MvError>(())
/// ```
pub struct LongMeterReader<R> {
    input: R,
    zone: MarketZone,
    /// Bytes read and not yet given out as a meter, from `buf[at]`.
    buf: Vec<u8>,
    at: usize,
    /// The line number of `buf[at]`.
    line: usize,
    eof: bool,
    header: bool,
    /// The meters given out so far.
    seen: HashSet<String>,
    /// An error was given out: nothing more is read.
    stopped: bool,
    /// The meter being read, or the last one given out, and the line of its first row.
    current: Option<(String, usize)>,
    /// How much is read at a time.
    chunk: usize,
    /// The most bytes one meter's rows may take.
    limit: usize,
}

impl<R: Read> LongMeterReader<R> {
    /// A reader of `input` (it reads in chunks of 1 MiB: no `BufReader` is needed),
    /// for meters of `zone`.
    pub fn new(input: R, zone: MarketZone) -> Self {
        Self {
            input,
            zone,
            buf: Vec::new(),
            at: 0,
            line: 1,
            eof: false,
            header: false,
            seen: HashSet::new(),
            stopped: false,
            current: None,
            chunk: CHUNK,
            limit: MAX_LONG_METER_BYTES,
        }
    }

    /// A reader of a part of a long-format file that starts at a meter's first row
    /// (no header), as [`map_long_meter_file`] splits one: its line numbers count from
    /// the part's first line.
    fn part(input: R, zone: MarketZone) -> Self {
        Self {
            header: true,
            ..Self::new(input, zone)
        }
    }

    /// Reads more of the input onto the buffer; `false` at its end.
    fn fill(&mut self) -> Result<bool, MvError> {
        if self.eof {
            return Ok(false);
        }
        let read = (&mut self.input)
            .take(self.chunk as u64)
            .read_to_end(&mut self.buf)
            .map_err(|e| MvError::Read {
                line: self.line,
                reason: e.to_string(),
            })?;
        self.eof = read == 0;
        Ok(read > 0)
    }

    /// The end of the line starting at `pos` (before its `\n`, or the input's end),
    /// read in whole; `None` when the input ends at `pos`.
    fn line_end(&mut self, pos: usize) -> Result<Option<usize>, MvError> {
        let mut from = pos;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[from..]) {
                return Ok(Some(from + i));
            }
            from = self.buf.len();
            if from - self.at > self.limit {
                return Err(self.too_large(from));
            }
            if !self.fill()? {
                return Ok((pos < self.buf.len()).then_some(self.buf.len()));
            }
        }
    }

    /// The text of `buf[from..to]`, whose first line is line `line`.
    fn text(&self, from: usize, to: usize, line: usize) -> Result<&str, MvError> {
        let bytes = &self.buf[from..to];
        std::str::from_utf8(bytes).map_err(|e| {
            let at = e.valid_up_to();
            let before = &bytes[..at];
            let line = line + before.iter().filter(|&&c| c == b'\n').count();
            let column = at
                - before
                    .iter()
                    .rposition(|&c| c == b'\n')
                    .map_or(0, |i| i + 1);
            err(
                line,
                "row",
                format!("not UTF-8 text (byte {column} of the line)"),
            )
        })
    }

    fn too_large(&self, pos: usize) -> MvError {
        MvError::TooLarge {
            what: "bytes of one meter's rows in a streamed long-format file",
            found: (pos - self.at) as u64,
            limit: self.limit as u64,
        }
    }

    /// The next line that is not blank, from `pos` on line `line`: where it starts and
    /// ends, where the line after it starts, and its number. `None` at the input's end.
    fn next_row(&mut self, mut pos: usize, mut line: usize) -> Result<Option<Row>, MvError> {
        loop {
            let Some(end) = self.line_end(pos)? else {
                return Ok(None);
            };
            let next = (end + 1).min(self.buf.len());
            if !self.text(pos, end, line)?.trim().is_empty() {
                return Ok(Some(Row {
                    start: pos,
                    end,
                    next,
                    line,
                }));
            }
            pos = next;
            line += 1;
        }
    }

    /// The first field of a row, as the general parser reads it.
    fn id_of(&self, row: &Row) -> Result<&str, MvError> {
        let text = self.text(row.start, row.end, row.line)?;
        Ok(text.trim().split(',').next().map_or("", str::trim))
    }

    fn meter(&mut self) -> Result<Option<(String, Meter)>, MvError> {
        // Each meter starts at the front of the buffer: what was given out is dropped.
        self.buf.drain(..self.at);
        self.at = 0;
        if !self.header {
            let head = self.next_row(0, 1)?;
            let text = match &head {
                Some(row) => Some(self.text(row.start, row.end, row.line)?),
                None => None,
            };
            long_header(text)?;
            self.header = true;
            if let Some(row) = head {
                self.at = row.next;
                self.line = row.line + 1;
            }
        }
        // The first row names the meter.
        let Some(first) = self.next_row(self.at, self.line)? else {
            return Ok(None);
        };
        let id = self.id_of(&first)?.to_owned();
        self.current = Some((id.clone(), first.line));
        if self.seen.contains(&id) {
            return Err(MvError::MeterNotTogether {
                line: first.line,
                meter: id,
            });
        }
        if self.seen.len() >= MAX_LONG_METERS {
            return Err(err(
                first.line,
                "meter_id",
                MvError::TooLarge {
                    what: "meters in a long-format file",
                    found: self.seen.len() as u64 + 1,
                    limit: MAX_LONG_METERS as u64,
                }
                .to_string(),
            ));
        }
        let (mut grid, mut cache) = (Grid::default(), Cache::default());
        let mut fast = push_general(&mut grid, &mut cache, &self.buf[first.start..first.end]);
        let (mut pos, mut line) = (first.next, first.line + 1);
        // The meter's rows, up to the first row of another meter or the end: where it
        // ends and its line.
        let (end, end_line) = loop {
            if pos - self.at > self.limit {
                return Err(self.too_large(pos));
            }
            // The usual row: the id, a comma, then what `quick_row` reads.
            let skip = id.len() + 1;
            if self.buf.len() - pos < skip + QUICK_ROW && !self.eof {
                self.fill()?;
                continue;
            }
            if self.buf[pos..].starts_with(id.as_bytes())
                && self.buf.get(pos + id.len()) == Some(&b',')
                && let Some((t, v, next)) = quick_row(&self.buf, pos + skip, &mut cache.values)
            {
                fast = fast && grid.push(t, v, &mut cache, || 0).is_some();
                pos = next;
                line += 1;
                continue;
            }
            let Some(row) = self.next_row(pos, line)? else {
                break (pos, line);
            };
            if self.id_of(&row)? != id {
                // Another meter's row (or a fault the next meter's reading names).
                break (row.start, row.line);
            }
            fast = fast && push_general(&mut grid, &mut cache, &self.buf[row.start..row.end]);
            pos = row.next;
            line = row.line + 1;
        };
        let meter = match grid.finish().filter(|_| fast) {
            Some((start, step, watts)) => Meter::from_read_watts(start, step, watts, self.zone)?,
            None => {
                // The general parser, on this meter's rows, for its values or errors.
                let text = self.text(first.start, end, first.line)?;
                let mut day = Cache::default();
                let mut rows = Vec::new();
                for (n, l) in (first.line..).zip(text.lines()) {
                    if let Some((_, t, v)) = long_row(n, l, &mut day)? {
                        rows.push((n, t, v));
                    }
                }
                let series = regular(rows, "interval_start").map_err(in_meter(&id))?;
                Meter::new(series, self.zone)?
            }
        };
        self.at = end;
        self.line = end_line;
        self.seen.insert(id.clone());
        Ok(Some((id, meter)))
    }
}

/// A line of the buffer that is not blank.
struct Row {
    start: usize,
    end: usize,
    /// Where the next line starts.
    next: usize,
    line: usize,
}

/// Adds a row that is not in the usual layout to the fast reader's grid, split as the
/// general parser splits it (trimmed, three fields); `false` when the fast reader does
/// not take it.
fn push_general(grid: &mut Grid, cache: &mut Cache, row: &[u8]) -> bool {
    let Ok(row) = std::str::from_utf8(row) else {
        return false;
    };
    let mut parts = row.trim().split(',');
    let (Some(_), Some(t), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    grid.push(
        t.trim().as_bytes(),
        Value::of(v.trim().as_bytes()),
        cache,
        || 0,
    )
    .is_some()
}

impl<R: Read> Iterator for LongMeterReader<R> {
    type Item = Result<(String, Meter), MvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped {
            return None;
        }
        let next = self.meter().transpose();
        self.stopped = matches!(next, Some(Err(_)) | None);
        next
    }
}

/// The smallest part of a long-format file [`map_long_meter_file`] gives a thread.
const MIN_PART: u64 = 8 << 20;

/// Reads a long-format meter file whose meters' rows are together on up to `threads`
/// threads, each meter handed to `each` on the thread that read it (to settle it, say,
/// and drop it), and returns the meters' ids and what `each` made of them in the
/// file's order.
///
/// The file is cut into parts at meters' first rows (a part is at least 8 MiB), each
/// part read by its own [`LongMeterReader`] from its own handle (`open` gives one for
/// each thread). The ids, the meters and the error are those of one `LongMeterReader`
/// over the whole file, lines numbered from the file's start (a test checks it): a
/// meter found in two parts is [`MvError::MeterNotTogether`], and the first error in
/// the file's order is the one returned, after the threads have stopped.
///
/// ```
/// use std::io::Cursor;
/// use std::num::NonZeroUsize;
/// use gridflex_core::MarketZone;
/// use gridflex_mv::input::map_long_meter_file;
///
/// let csv = "meter_id,interval_start,kw
/// a,2025-07-01T00:00:00Z,10
/// a,2025-07-01T00:05:00Z,11
/// b,2025-07-01T00:00:00Z,7
/// b,2025-07-01T00:05:00Z,8
/// ";
/// let two = NonZeroUsize::new(2).unwrap();
/// let lengths = map_long_meter_file(|| Ok(Cursor::new(csv)), MarketZone::Pjm, two, |_, m| m.len())?;
/// assert_eq!(lengths, [("a".to_owned(), 2), ("b".to_owned(), 2)]);
/// # Ok::<(), gridflex_mv::MvError>(())
/// ```
pub fn map_long_meter_file<S, T, F>(
    open: impl Fn() -> std::io::Result<S> + Sync,
    zone: MarketZone,
    threads: std::num::NonZeroUsize,
    each: F,
) -> Result<Vec<(String, T)>, MvError>
where
    S: Read + std::io::Seek,
    T: Send,
    F: Fn(&str, Meter) -> T + Sync,
{
    map_parts(open, zone, threads, MIN_PART, each)
}

/// What one part's reader gave: each meter's id, first line and `each`'s value, then
/// the error that stopped it, with the meter it was reading.
type Part<T> = (
    Vec<(String, usize, T)>,
    Option<(MvError, Option<(String, usize)>)>,
);

fn map_parts<S, T, F>(
    open: impl Fn() -> std::io::Result<S> + Sync,
    zone: MarketZone,
    threads: std::num::NonZeroUsize,
    min_part: u64,
    each: F,
) -> Result<Vec<(String, T)>, MvError>
where
    S: Read + std::io::Seek,
    T: Send,
    F: Fn(&str, Meter) -> T + Sync,
{
    use std::io::SeekFrom;

    let mut file = open().map_err(read_failed)?;
    let len = file.seek(SeekFrom::End(0)).map_err(read_failed)?;
    let parts = threads
        .get()
        .min(usize::try_from(len / min_part.max(1)).unwrap_or(1))
        .max(1);
    let mut starts = vec![0u64];
    if parts > 1 {
        let header_end = header_end(&mut file)?.unwrap_or(len);
        for k in 1..parts as u64 {
            if let Some(b) = meter_start_after(&mut file, len / parts as u64 * k)?
                && b > header_end
                && b > *starts.last().unwrap_or(&0)
            {
                starts.push(b);
            }
        }
    }
    let ends: Vec<u64> = starts.iter().skip(1).copied().chain([len]).collect();
    let read = |k: usize, from: u64, to: u64| -> Part<T> {
        let mut items = Vec::new();
        let input = match open().and_then(|mut f| f.seek(SeekFrom::Start(from)).map(|_| f)) {
            Ok(f) => f.take(to - from),
            Err(e) => return (items, Some((read_failed(e), None))),
        };
        let mut reader = if k == 0 {
            LongMeterReader::new(input, zone)
        } else {
            LongMeterReader::part(input, zone)
        };
        while let Some(meter) = reader.next() {
            match meter {
                Ok((id, meter)) => {
                    let line = reader.current.take().map_or(0, |c| c.1);
                    let value = each(&id, meter);
                    items.push((id, line, value));
                }
                Err(e) => return (items, Some((e, reader.current.take()))),
            }
        }
        (items, None)
    };
    let done: Vec<Part<T>> = if starts.len() == 1 {
        vec![read(0, 0, len)]
    } else {
        let read = &read;
        let tasks = starts
            .iter()
            .zip(&ends)
            .enumerate()
            .map(|(k, (&from, &to))| move || read(k, from, to))
            .collect();
        crate::threads::each_on_a_thread(tasks)
    };
    // In the file's order, as one reader would have met them.
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (k, (items, error)) in done.into_iter().enumerate() {
        // Lines before the part: counted only when a line must be named.
        let mut before = None;
        let mut shift = |line: usize| -> Result<usize, MvError> {
            if k == 0 {
                return Ok(line);
            }
            let n = match before {
                Some(n) => n,
                None => {
                    let n = count_lines(&open, starts[k])?;
                    before = Some(n);
                    n
                }
            };
            Ok(line + n)
        };
        for (id, line, value) in items {
            if seen.contains(&id) {
                return Err(MvError::MeterNotTogether {
                    line: shift(line)?,
                    meter: id,
                });
            }
            if seen.len() >= MAX_LONG_METERS {
                return Err(err(
                    shift(line)?,
                    "meter_id",
                    MvError::TooLarge {
                        what: "meters in a long-format file",
                        found: seen.len() as u64 + 1,
                        limit: MAX_LONG_METERS as u64,
                    }
                    .to_string(),
                ));
            }
            seen.insert(id.clone());
            out.push((id, value));
        }
        if let Some((e, current)) = error {
            if let Some((id, line)) = current
                && seen.contains(&id)
            {
                return Err(MvError::MeterNotTogether {
                    line: shift(line)?,
                    meter: id,
                });
            }
            return Err(match e {
                MvError::Parse {
                    line,
                    field,
                    reason,
                } => MvError::Parse {
                    line: shift(line)?,
                    field,
                    reason,
                },
                MvError::MeterNotTogether { line, meter } => MvError::MeterNotTogether {
                    line: shift(line)?,
                    meter,
                },
                MvError::Read { line, reason } => MvError::Read {
                    line: shift(line)?,
                    reason,
                },
                other => other,
            });
        }
    }
    Ok(out)
}

/// The offset just after the first line that is not blank (the header).
fn header_end<S: Read + std::io::Seek>(file: &mut S) -> Result<Option<u64>, MvError> {
    let mut end = None;
    visit_lines(file, 0, |_, _, next| {
        end = Some(next);
        false
    })?;
    Ok(end)
}

/// Calls `visit` with each line that is not blank from `from` (a line start): its
/// first field as the general parser reads it, where it starts and where the next line
/// starts, until `visit` returns `false`, the input ends, a line is not UTF-8 or 64 MiB
/// have been read.
fn visit_lines<S: Read + std::io::Seek>(
    file: &mut S,
    from: u64,
    mut visit: impl FnMut(&str, u64, u64) -> bool,
) -> Result<(), MvError> {
    file.seek(std::io::SeekFrom::Start(from))
        .map_err(read_failed)?;
    let mut reader = std::io::BufReader::new(file.take(64 << 20));
    let (mut at, mut line) = (from, Vec::new());
    loop {
        line.clear();
        let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut line).map_err(read_failed)?;
        let Ok(text) = std::str::from_utf8(&line) else {
            return Ok(());
        };
        if n == 0 {
            return Ok(());
        }
        let start = at;
        at += n as u64;
        let text = text.trim();
        if !text.is_empty() && !visit(text.split(',').next().map_or("", str::trim), start, at) {
            return Ok(());
        }
    }
}

/// Where the first meter to start after `offset` starts: the first row, after the line
/// `offset` falls in, whose meter differs from the row before it. `None` when there is
/// none within reach (the end of the input, or 64 MiB of one meter's rows).
fn meter_start_after<S: Read + std::io::Seek>(
    file: &mut S,
    offset: u64,
) -> Result<Option<u64>, MvError> {
    // From one byte back: a line that starts at `offset` is the first whole one.
    let mut first = None;
    visit_lines(file, offset.saturating_sub(1), |_, _, next| {
        first = Some(next);
        false
    })?;
    let Some(from) = first else {
        return Ok(None);
    };
    let (mut previous, mut found) = (None::<String>, None);
    visit_lines(file, from, |id, start, _| match &previous {
        Some(p) if p != id => {
            found = Some(start);
            false
        }
        Some(_) => true,
        None => {
            previous = Some(id.to_owned());
            true
        }
    })?;
    Ok(found)
}

/// A read that failed outside a reader's rows (opening, seeking, cutting the file,
/// counting the lines before a part), named at line 1.
fn read_failed(e: std::io::Error) -> MvError {
    MvError::Read {
        line: 1,
        reason: e.to_string(),
    }
}

/// The lines before `offset` (its line's number, less one).
fn count_lines<S: Read>(
    open: impl Fn() -> std::io::Result<S>,
    offset: u64,
) -> Result<usize, MvError> {
    let mut input = open().map_err(read_failed)?.take(offset);
    let mut buf = vec![0u8; CHUNK];
    let mut count = 0;
    loop {
        let n = input.read(&mut buf).map_err(read_failed)?;
        if n == 0 {
            return Ok(count);
        }
        count += buf[..n].iter().filter(|&&c| c == b'\n').count();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use proptest::prelude::*;

    use super::*;
    use crate::input::fast_path::file;
    use crate::input::parse_long_meter_csv;

    /// Gives out at most `cut` bytes a read.
    struct Trickle<'a> {
        bytes: &'a [u8],
        cut: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.cut.min(out.len()).min(self.bytes.len());
            out[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    proptest! {
        #[test]
        fn each_meter_reads_as_the_whole_file_parser_reads_it(
            meters in proptest::collection::vec(file(), 0..4),
            ids in proptest::collection::vec(prop_oneof![Just("m"), Just("site-0001"), Just(" x ")], 4),
            cut in 1usize..200,
            chunk in 1usize..300,
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let zone = MarketZone::Pjm;
            // Distinct ids, each meter's rows together.
            let ids: Vec<String> = ids.iter().enumerate().map(|(k, id)| format!("{id}{k}")).collect();
            let mut text = format!("meter_id,interval_start,kw{eol}");
            let mut expected = Vec::new();
            for (k, (rows, _)) in meters.iter().enumerate() {
                // The meter alone, on the same lines (blank lines keep the numbers).
                let before = text.matches('\n').count();
                let mut alone = format!("meter_id,interval_start,kw{eol}{}", eol.repeat(before - 1));
                for row in rows {
                    let line = if row.is_empty() { String::new() } else { format!("{},{row}", ids[k]) };
                    text.push_str(&line);
                    text.push_str(eol);
                    alone.push_str(&line);
                    alone.push_str(eol);
                }
                let one = parse_long_meter_csv(&alone).and_then(|mut m| match m.pop() {
                    Some((id, series)) => Meter::new(series, zone).map(|m| Some((id, m))),
                    None => Ok(None),
                });
                expected.push(one);
            }
            let mut reader = LongMeterReader::new(Trickle { bytes: text.as_bytes(), cut }, zone);
            reader.chunk = chunk;
            let got: Vec<_> = reader.collect();
            // Meters with no row are not there; the first error ends the reading.
            let mut want = Vec::new();
            for e in expected {
                match e {
                    Ok(Some(m)) => want.push(Ok(m)),
                    Ok(None) => {}
                    Err(e) => {
                        want.push(Err(e));
                        break;
                    }
                }
            }
            prop_assert_eq!(got, want);
        }
    }

    proptest! {
        #[test]
        fn a_file_cut_into_parts_reads_as_one_reader_reads_it(
            meters in proptest::collection::vec(
                (0usize..4, 2i64..30, prop::option::weighted(0.3, (0usize..3, 0usize..30))),
                1..7,
            ),
            threads in 2usize..5,
            min_part in 1u64..400,
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let zone = MarketZone::Pjm;
            let base = chrono::DateTime::parse_from_rfc3339("2025-03-08T00:00:00-08:00")
                .unwrap_or_default();
            // Meters of a few ids (one may appear again further on), each on its grid,
            // some with one fault: a bad value, a time off the grid, an extra field.
            let mut text = format!("meter_id,interval_start,kw{eol}");
            for (id, rows, fault) in &meters {
                for k in 0..*rows {
                    let t = (base + chrono::TimeDelta::minutes(5 * k)).format("%Y-%m-%dT%H:%M:%S%:z");
                    let row = match fault {
                        Some((0, at)) if *at == k as usize => format!("site-{id},{t},abc"),
                        Some((1, at)) if *at == k as usize => format!("site-{id},{t}x,1"),
                        Some((2, at)) if *at == k as usize => format!("site-{id},{t},1,2"),
                        _ => format!("site-{id},{t},{}.5", 100 + k),
                    };
                    text.push_str(&row);
                    text.push_str(eol);
                }
            }
            let mut one = Vec::new();
            let mut failed = None;
            for meter in LongMeterReader::new(text.as_bytes(), zone) {
                match meter {
                    Ok(m) => one.push(m),
                    Err(e) => failed = Some(e),
                }
            }
            let parts = map_parts(
                || Ok(std::io::Cursor::new(text.as_bytes())),
                zone,
                std::num::NonZeroUsize::new(threads).unwrap_or(std::num::NonZeroUsize::MIN),
                min_part,
                |_, m| m,
            );
            match failed {
                None => prop_assert_eq!(parts, Ok(one)),
                Some(e) => prop_assert_eq!(parts, Err(e)),
            }
        }
    }

    #[test]
    fn bad_bytes_a_failed_read_and_a_meter_over_the_limit_are_named() {
        let bad =
            b"meter_id,interval_start,kw\na,2025-07-01T00:00:00Z,1\na,2025-07-01T00:05:00Z,\xff2\n";
        let err = LongMeterReader::new(&bad[..], MarketZone::Pjm)
            .find_map(Result::err)
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("line 3, field row: not UTF-8 text (byte 23 of the line)")
        );
        // A read that fails names the line reached.
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk gone"))
            }
        }
        let err = LongMeterReader::new(Broken, MarketZone::Pjm).next();
        assert!(
            matches!(&err, Some(Err(MvError::Read { line: 1, reason })) if reason == "disk gone"),
            "{err:?}"
        );
        // One meter over the limit stops the reading before it is all held; the one
        // before it is given out.
        let mut text = String::from("meter_id,interval_start,kw\n");
        for k in 0..3 {
            text.push_str(&format!("small,2025-07-01T00:0{k}:00Z,1\n"));
        }
        for k in 0..100 {
            text.push_str(&format!(
                "big,2025-07-01T{:02}:{:02}:00Z,1\n",
                k / 60,
                k % 60
            ));
        }
        let mut reader = LongMeterReader::new(text.as_bytes(), MarketZone::Pjm);
        reader.limit = 1_000;
        reader.chunk = 64;
        let got: Vec<_> = reader.collect();
        assert!(
            matches!(&got[0], Ok((id, m)) if id == "small" && m.len() == 3),
            "{got:?}"
        );
        assert!(
            matches!(&got[1], Err(MvError::TooLarge { limit: 1_000, .. })),
            "{:?}",
            got[1]
        );
        assert_eq!(got.len(), 2);
    }
}
