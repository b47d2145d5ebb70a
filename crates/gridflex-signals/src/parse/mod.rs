//! Parsers for the operators' published price formats.
//!
//! | format | reports / feeds | entry point |
//! | --- | --- | --- |
//! | CAISO OASIS CSV | `PRC_LMP`, `PRC_RTPD_LMP`, `PRC_INTVL_LMP`, `PRC_HASP_LMP` | [`parse_caiso_csv`] |
//! | CAISO OASIS XML (`OASISReport`) | same | [`parse_caiso_xml`] |
//! | OASIS zip (wraps CSV or XML files) | same | [`parse_oasis_zip`] |
//! | PJM Data Miner 2 JSON (`items` envelope or bare array) | `da_hrl_lmps`, `rt_hrl_lmps`, `rt_fivemin_hrl_lmps` | [`parse_pjm_json`] ([`parse_pjm_json_bytes`] in memory, [`parse_pjm_json_seekable`] from a file) |
//! | PJM Data Miner 2 CSV | same | [`parse_pjm_csv`] |
//! | any of the above, detected from the content | | [`parse_prices`] |
//!
//! Every parser reads from any [`Read`]. CSV and XML are read row by row (CSV in 1 MiB
//! chunks), so the text is never held whole; what is held is one entry per price point
//! being built (CAISO publishes each component on its own row, possibly in another file
//! of the zip, so components are gathered by node and interval until the input ends).
//! Two exceptions, for speed, both bounded: a Data Miner JSON response up to 256 MiB is
//! read whole and parsed from memory (a larger one is streamed), and a zip read on
//! several threads ([`ParseOptions::threads`]) is held compressed in memory so that each
//! thread can open its own entries. Output points are sorted by interval start, then
//! node, then run.
//!
//! Speed (details and profiles in `docs/throughput.md`): plain OASIS CSV, the layout every
//! OASIS file has, skips the `csv` crate for a hand-written line splitter and falls
//! back to the crate, from the line where the file stops being plain, for quoting;
//! Data Miner's flat JSON items are read by a hand-written reader that hands anything
//! else back to serde; both are checked against the general path by property tests.
//!
//! Errors name the position ([`crate::Location`]: zip entry, line, JSON item, XML
//! element) and the field. [`Mode::Strict`] (the default) stops at the first bad row;
//! [`Mode::Lenient`] skips bad rows, counts them in [`ParseOutput::skipped_count`] and
//! returns the first [`SKIPPED_EXAMPLES`] with their reasons in
//! [`ParseOutput::skipped`] (so a file of millions of bad rows costs no memory for them). Structural damage (broken CSV quoting, invalid JSON
//! syntax, a missing header column, an OASIS error document) is fatal in both modes.

use std::io::{BufRead, BufReader, Cursor, Read, Seek};
use std::num::NonZeroUsize;

use crate::{Location, MarketRun, PricePoint, SignalError};

mod caiso;
mod caiso_csv;
mod caiso_xml;
mod intern;
mod oasis_zip;
mod pjm;
mod pjm_csv;
mod pjm_json;
mod plain;
pub(crate) mod scalar;

pub use caiso_csv::parse_caiso_csv;
pub use caiso_xml::parse_caiso_xml;
pub use oasis_zip::parse_oasis_zip;
pub use pjm_csv::parse_pjm_csv;
pub use pjm_json::{parse_pjm_json, parse_pjm_json_bytes, parse_pjm_json_seekable};

/// How many skipped rows a [`ParseOutput`] keeps, with their reasons, as examples;
/// all are counted in [`ParseOutput::skipped_count`].
pub const SKIPPED_EXAMPLES: usize = 100;

/// What to do with a bad row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Stop at the first bad row with its error (the default).
    #[default]
    Strict,
    /// Skip bad rows, counting them and returning the first [`SKIPPED_EXAMPLES`] with
    /// their reasons in [`ParseOutput::skipped`].
    Lenient,
}

/// Parser settings; `ParseOptions::default()` is strict with everything taken from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ParseOptions {
    /// Strict (default) or lenient.
    pub mode: Mode,
    /// The market run, for inputs that do not say it (a PJM real-time file without a
    /// feed link or ending times, a CAISO file without `MARKET_RUN_ID`). When the input
    /// names its run, it must agree with this one.
    pub run: Option<MarketRun>,
    /// Threads for reading a zip's entries at once; `None` (the default) uses every
    /// core [`std::thread::available_parallelism`] reports, `Some(1)` reads on the
    /// calling thread only. The result is the same whatever the number.
    pub threads: Option<NonZeroUsize>,
}

impl ParseOptions {
    /// Strict options (the default).
    pub fn strict() -> Self {
        Self::default()
    }

    /// Lenient options: bad rows are skipped and reported.
    pub fn lenient() -> Self {
        Self {
            mode: Mode::Lenient,
            ..Self::default()
        }
    }

    /// The same options with a number of threads for zip entries (see
    /// [`ParseOptions::threads`]).
    pub fn with_threads(mut self, threads: NonZeroUsize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// The number of threads [`ParseOptions::threads`] asks for.
    pub(crate) fn thread_count(&self) -> usize {
        self.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            NonZeroUsize::get,
        )
    }

    /// The same options with a market run given.
    pub fn with_run(mut self, run: MarketRun) -> Self {
        self.run = Some(run);
        self
    }
}

/// A row (or record) that did not become a price point, and why.
#[derive(Debug)]
#[non_exhaustive]
pub struct SkippedRow {
    /// Where it was.
    pub at: Location,
    /// Why it was skipped.
    pub reason: SignalError,
}

/// The result of parsing a file.
#[derive(Debug)]
#[non_exhaustive]
pub struct ParseOutput {
    /// The format that was read.
    pub format: Format,
    /// The price points, sorted by interval start, node, run.
    pub points: Vec<PricePoint>,
    /// The first [`SKIPPED_EXAMPLES`] rows not turned into points, each with its reason
    /// (always empty in strict mode except for rows the format itself marks as
    /// superseded, such as PJM rows with `row_is_current` false).
    pub skipped: Vec<SkippedRow>,
    /// How many rows were not turned into points, in all (`skipped` holds the first
    /// few).
    pub skipped_count: u64,
    /// The next page's URL, for paged responses (the PJM Data Miner `links` entry
    /// with `rel` `next`); `None` on the last page and for other formats.
    pub next_page: Option<String>,
}

impl ParseOutput {
    /// An output with no points.
    pub fn empty(format: Format) -> Self {
        Self {
            format,
            points: Vec::new(),
            skipped: Vec::new(),
            skipped_count: 0,
            next_page: None,
        }
    }

    /// Adds another output's skipped rows to this one's: the count in full, the
    /// examples up to [`SKIPPED_EXAMPLES`].
    pub fn add_skipped(&mut self, rows: Vec<SkippedRow>, count: u64) {
        let room = SKIPPED_EXAMPLES.saturating_sub(self.skipped.len());
        self.skipped.extend(rows.into_iter().take(room));
        self.skipped_count = self.skipped_count.saturating_add(count);
    }
}

/// The input formats this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// CAISO OASIS CSV (`resultformat=6`).
    CaisoCsv,
    /// CAISO OASIS XML (`OASISReport`).
    CaisoXml,
    /// An OASIS zip holding CSV or XML files.
    OasisZip,
    /// PJM Data Miner 2 JSON.
    PjmJson,
    /// PJM Data Miner 2 CSV.
    PjmCsv,
}

impl Format {
    /// A human name, as used in error messages.
    pub const fn name(self) -> &'static str {
        match self {
            Format::CaisoCsv => "CAISO OASIS CSV",
            Format::CaisoXml => "CAISO OASIS XML",
            Format::OasisZip => "OASIS zip",
            Format::PjmJson => "PJM Data Miner JSON",
            Format::PjmCsv => "PJM Data Miner CSV",
        }
    }
}

/// Tells the format from the first bytes of an input (a few hundred bytes suffice;
/// the CSV header line must be complete).
///
/// Zip by its `PK\x03\x04` magic; XML by a leading `<`; JSON by a leading `{` or `[`;
/// CSV by its header: `INTERVALSTARTTIME_GMT` or `LMP_TYPE` for CAISO,
/// `datetime_beginning_utc` for PJM. A UTF-8 byte-order mark and leading whitespace
/// are ignored.
///
/// ```
/// use gridflex_signals::parse::{detect_format, Format};
/// assert_eq!(detect_format(b"{\"items\":[]}")?, Format::PjmJson);
/// assert_eq!(detect_format(b"INTERVALSTARTTIME_GMT,NODE,MW\n")?, Format::CaisoCsv);
/// assert!(detect_format(b"hello").is_err());
/// # Ok::<(), gridflex_signals::SignalError>(())
/// ```
pub fn detect_format(head: &[u8]) -> Result<Format, SignalError> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Format::OasisZip);
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    match text.first() {
        None => {
            return Err(SignalError::UnknownFormat {
                reason: "the input is empty".into(),
            });
        }
        Some(b'<') => return Ok(Format::CaisoXml),
        Some(b'{' | b'[') => return Ok(Format::PjmJson),
        _ => {}
    }
    let line_end = text.iter().position(|&b| b == b'\n').unwrap_or(text.len());
    let header = String::from_utf8_lossy(&text[..line_end]).to_ascii_lowercase();
    let has = |name: &str| {
        header
            .split(',')
            .any(|c| c.trim().trim_matches('"') == name)
    };
    if has("intervalstarttime_gmt") || has("lmp_type") {
        Ok(Format::CaisoCsv)
    } else if has("datetime_beginning_utc") {
        Ok(Format::PjmCsv)
    } else {
        let shown: String = header.chars().take(80).collect();
        Err(SignalError::UnknownFormat {
            reason: format!("first line {shown:?} is not a known CSV header, XML, JSON or zip"),
        })
    }
}

/// Parses a price file of any supported format, detected from its content.
///
/// A zip input is read into memory first (the zip directory is at its end); use
/// [`parse_oasis_zip`] with a seekable reader to avoid that.
///
/// ```
/// use gridflex_signals::parse::{parse_prices, Format, ParseOptions};
///
/// let csv = "\
/// INTERVALSTARTTIME_GMT,INTERVALENDTIME_GMT,NODE,MARKET_RUN_ID,LMP_TYPE,MW
/// 2022-02-01T15:00:00-00:00,2022-02-01T16:00:00-00:00,0096WD_7_N001,DAM,LMP,74.63
/// 2022-02-01T15:00:00-00:00,2022-02-01T16:00:00-00:00,0096WD_7_N001,DAM,MCC,-1.2
/// ";
/// let out = parse_prices(csv.as_bytes(), &ParseOptions::default())?;
/// assert_eq!(out.format, Format::CaisoCsv);
/// assert_eq!(out.points.len(), 1);
/// let p = &out.points[0];
/// assert_eq!(p.lmp.as_per_megawatt_hour(), 74.63);
/// assert_eq!(p.congestion.map(|c| c.as_per_megawatt_hour()), Some(-1.2));
/// assert_eq!(p.energy, None); // not in the file: None, never 0
/// # Ok::<(), gridflex_signals::SignalError>(())
/// ```
pub fn parse_prices<R: Read>(input: R, options: &ParseOptions) -> Result<ParseOutput, SignalError> {
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let head = reader.fill_buf().map_err(|source| SignalError::Io {
        at: Box::new(Location::default()),
        source,
    })?;
    let mut format = detect_format(head);
    if format.is_err() && !head.is_empty() && !head.contains(&b'\n') {
        // The header line did not fit in the first read: look at more of it.
        let mut first = Vec::new();
        reader
            .by_ref()
            .take(1 << 20)
            .read_until(b'\n', &mut first)
            .map_err(|source| SignalError::Io {
                at: Box::new(Location::default()),
                source,
            })?;
        format = detect_format(&first);
        let chained = Cursor::new(first).chain(reader);
        return dispatch(format?, BufReader::new(chained), options);
    }
    dispatch(format?, reader, options)
}

/// [`parse_prices`] on a seekable input (a [`File`](std::fs::File)): the same
/// results, and for the formats that gain from it, less memory and time. A Data Miner
/// JSON document streams through the fast reader in bounded memory
/// ([`parse_pjm_json_seekable`]); an OASIS zip is read through its directory
/// ([`parse_oasis_zip`]) instead of being copied into memory first. Other formats are
/// read as [`parse_prices`] reads them.
///
/// ```
/// use std::io::Cursor;
/// use gridflex_signals::parse::{parse_prices_seekable, Format, ParseOptions};
///
/// let json = br#"[{"datetime_beginning_utc":"2024-09-03T03:55:00","pnode_id":51291,"total_lmp_rt":25.31}]"#;
/// let options = ParseOptions::default().with_run(gridflex_signals::MarketRun::PjmRealTimeFiveMinute);
/// let out = parse_prices_seekable(Cursor::new(&json[..]), &options)?;
/// assert_eq!(out.format, Format::PjmJson);
/// assert_eq!(out.points.len(), 1);
/// # Ok::<(), gridflex_signals::SignalError>(())
/// ```
pub fn parse_prices_seekable<R: Read + Seek>(
    input: R,
    options: &ParseOptions,
) -> Result<ParseOutput, SignalError> {
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let head = reader.fill_buf().map_err(|source| SignalError::Io {
        at: Box::new(Location::default()),
        source,
    })?;
    match detect_format(head) {
        Ok(Format::PjmJson) => parse_pjm_json_seekable(reader, options),
        Ok(Format::OasisZip) => parse_oasis_zip(reader, options),
        _ => parse_prices(reader, options),
    }
}

fn dispatch<R: BufRead>(
    format: Format,
    mut reader: R,
    options: &ParseOptions,
) -> Result<ParseOutput, SignalError> {
    match format {
        Format::CaisoCsv => parse_caiso_csv(reader, options),
        Format::CaisoXml => parse_caiso_xml(reader, options),
        Format::PjmJson => parse_pjm_json(reader, options),
        Format::PjmCsv => parse_pjm_csv(reader, options),
        Format::OasisZip => {
            let mut bytes = Vec::new();
            reader
                .read_to_end(&mut bytes)
                .map_err(|source| SignalError::Io {
                    at: Box::new(Location::default()),
                    source,
                })?;
            parse_oasis_zip(Cursor::new(bytes), options)
        }
    }
}

/// Applies the mode to a bad row: strict returns the error, lenient counts it and
/// keeps the first [`SKIPPED_EXAMPLES`].
pub(crate) struct Skips {
    mode: Mode,
    pub(crate) rows: Vec<SkippedRow>,
    pub(crate) count: u64,
}

impl Skips {
    pub(crate) fn new(mode: Mode) -> Self {
        Self {
            mode,
            rows: Vec::new(),
            count: 0,
        }
    }

    fn record(&mut self, at: Location, reason: SignalError) {
        self.count += 1;
        if self.rows.len() < SKIPPED_EXAMPLES {
            self.rows.push(SkippedRow { at, reason });
        }
    }

    /// Strict: `Err(error)`. Lenient: records the row and returns `Ok`.
    pub(crate) fn bad_row(&mut self, at: Location, error: SignalError) -> Result<(), SignalError> {
        match self.mode {
            Mode::Strict => Err(error),
            Mode::Lenient => {
                self.record(at, error);
                Ok(())
            }
        }
    }

    /// Counts a lenient-mode bad row that comes after [`SKIPPED_EXAMPLES`] others (its
    /// reason was not kept, as it could not be an example).
    pub(crate) fn count_beyond_examples(&mut self) {
        debug_assert!(self.rows.len() >= SKIPPED_EXAMPLES);
        self.count += 1;
    }

    /// Records a row the format marks as not applicable, in either mode.
    pub(crate) fn superseded(&mut self, at: Location, reason: SignalError) {
        self.record(at, reason);
    }
}

/// Finds a header column by name (ASCII case-insensitive, surrounding spaces and a
/// byte-order mark ignored); the first of `names` present wins.
pub(crate) fn find_column(headers: &csv::ByteRecord, names: &[&str]) -> Option<usize> {
    names.iter().find_map(|name| {
        headers.iter().position(|h| {
            let h = h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h);
            h.trim_ascii().eq_ignore_ascii_case(name.as_bytes())
        })
    })
}

/// Maps a `csv` error to a located [`SignalError`].
pub(crate) fn csv_error(e: csv::Error, format: &'static str) -> SignalError {
    let line = e.position().map(|p| p.line());
    let at = Location {
        line,
        ..Location::default()
    };
    match e.into_kind() {
        csv::ErrorKind::Io(source) => SignalError::Io {
            at: Box::new(at),
            source,
        },
        other => SignalError::Malformed {
            at: Box::new(at),
            format,
            reason: format!("{other:?}"),
        },
    }
}
