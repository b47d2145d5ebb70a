//! CAISO OASIS CSV (`resultformat=6`) for the LMP reports.
//!
//! Layout (reference `markets.md` §f): a header row, then one row per node, interval
//! and component. Columns are found by name, never by position:
//!
//! | meaning | column |
//! | --- | --- |
//! | interval (UTC) | `INTERVALSTARTTIME_GMT`, `INTERVALENDTIME_GMT` |
//! | node | `NODE` (else `NODE_ID`) |
//! | market run | `MARKET_RUN_ID` (optional when [`ParseOptions::run`] is set) |
//! | component | `LMP_TYPE` (LMP/MCE/MCC/MCL/MGHG), else `XML_DATA_ITEM` |
//! | price | `MW` (PRC_LMP), `PRC` (PRC_RTPD_LMP) or `VALUE` (PRC_INTVL_LMP) |
//!
//! The local `OPR_DT`/`OPR_HR`/`OPR_INTERVAL` columns are not used: the GMT columns
//! are unambiguous on daylight-saving days.

use std::io::Read;

use super::caiso::{Component, RowAt, RowKey, Sink, gather};
use super::plain::{Line, Plain, Row, read_plain};
use super::scalar::{LastTime, parse_price, shown};
use super::{Format, ParseOptions, ParseOutput, csv_error, find_column};
use crate::{Location, MarketRun, SignalError};

const FORMAT: &str = "CAISO OASIS CSV";

/// Parses a CAISO OASIS CSV price file.
///
/// ```
/// use gridflex_signals::parse::{parse_caiso_csv, ParseOptions};
/// use gridflex_signals::MarketRun;
///
/// // PRC_INTVL_LMP: the price column is VALUE and comes before OPR_INTERVAL.
/// let csv = "\
/// INTERVALSTARTTIME_GMT,INTERVALENDTIME_GMT,OPR_DT,OPR_HR,NODE_ID_XML,NODE_ID,NODE,MARKET_RUN_ID,LMP_TYPE,XML_DATA_ITEM,PNODE_RESMRID,GRP_TYPE,POS,VALUE,OPR_INTERVAL,GROUP
/// 2024-07-01T19:05:00-00:00,2024-07-01T19:10:00-00:00,2024-07-01,13,TH_NP15_GEN-APND,TH_NP15_GEN-APND,TH_NP15_GEN-APND,RTM,LMP,LMP_PRC,TH_NP15_GEN-APND,ALL,1,41.2,2,1
/// ";
/// let out = parse_caiso_csv(csv.as_bytes(), &ParseOptions::default())?;
/// assert_eq!(out.points[0].run, MarketRun::CaisoRtm);
/// assert_eq!(out.points[0].interval.duration().num_minutes(), 5);
/// # Ok::<(), gridflex_signals::SignalError>(())
/// ```
pub fn parse_caiso_csv<R: Read>(
    input: R,
    options: &ParseOptions,
) -> Result<ParseOutput, SignalError> {
    gather(Format::CaisoCsv, options, |sink| {
        read_into(input, options, sink)
    })
}

struct Columns {
    start: usize,
    end: usize,
    node: usize,
    run: Option<usize>,
    lmp_type: Option<usize>,
    data_item: Option<usize>,
    price: usize,
    price_name: &'static str,
}

fn columns(headers: &csv::ByteRecord) -> Result<Columns, SignalError> {
    let at = Location::line(1);
    let need = |names: &[&str]| {
        find_column(headers, names).ok_or_else(|| SignalError::MissingColumn {
            at: Box::new(at.clone()),
            format: FORMAT,
            column: names.join("|"),
        })
    };
    let start = need(&["INTERVALSTARTTIME_GMT"])?;
    let end = need(&["INTERVALENDTIME_GMT"])?;
    let node = need(&["NODE", "NODE_ID"])?;
    let price_names = ["MW", "PRC", "VALUE"];
    let price = need(&price_names)?;
    let price_name = price_names
        .into_iter()
        .find(|n| find_column(headers, &[n]) == Some(price))
        .unwrap_or("MW");
    let lmp_type = find_column(headers, &["LMP_TYPE"]);
    let data_item = find_column(headers, &["XML_DATA_ITEM"]);
    if lmp_type.is_none() && data_item.is_none() {
        need(&["LMP_TYPE", "XML_DATA_ITEM"])?;
    }
    Ok(Columns {
        start,
        end,
        node,
        run: find_column(headers, &["MARKET_RUN_ID"]),
        lmp_type,
        data_item,
        price,
        price_name,
    })
}

/// Reads one CSV file's rows into `sink`: the plain fast path while the file is plain
/// ([`super::plain`]), the `csv` crate from wherever it stops being plain.
pub(crate) fn read_into<R: Read>(
    input: R,
    options: &ParseOptions,
    sink: &mut impl Sink,
) -> Result<(), SignalError> {
    let mut reading = Reading::new(options);
    match read_plain(input, |n, line| reading.line(n, line, sink))? {
        Plain::Done => reading.done(),
        Plain::Rest { rest, line } => reading.rest(rest, line, sink),
    }
}

/// A CSV file being read: its header once read, and the last timestamps.
struct Reading<'o> {
    options: &'o ParseOptions,
    header: Option<(csv::ByteRecord, Columns)>,
    times: Times,
}

impl<'o> Reading<'o> {
    fn new(options: &'o ParseOptions) -> Self {
        Self {
            options,
            header: None,
            times: Times::default(),
        }
    }

    /// One plain line: the header until there is one, then a row.
    fn line(
        &mut self,
        line_no: u64,
        line: &Line<'_>,
        sink: &mut impl Sink,
    ) -> Result<(), SignalError> {
        match &self.header {
            None => {
                // The csv crate skips empty lines before the header too.
                if line.field(0).is_some_and(<[u8]>::is_empty) && line.width() == 1 {
                    return Ok(());
                }
                let record = line.record();
                let cols = header_columns(&record, self.options)?;
                self.header = Some((record, cols));
            }
            Some((record, cols)) => {
                if line.is_blank() {
                    return Ok(());
                }
                let at = (line_no, record.len());
                if let Err(e) = row(line, at, cols, self.options, sink, &mut self.times) {
                    sink.bad_row(Location::line(line_no), e)?;
                }
            }
        }
        Ok(())
    }

    /// The end of a file that was plain to its end.
    fn done(self) -> Result<(), SignalError> {
        match self.header {
            Some(_) => Ok(()),
            None => Err(SignalError::Malformed {
                at: Box::new(Location::line(1)),
                format: FORMAT,
                reason: "no header row".into(),
            }),
        }
    }

    /// The rest of a file that stopped being plain at line `first_line`, read by the
    /// `csv` crate (the header too, if the plain path had not read it).
    fn rest(
        mut self,
        rest: impl Read,
        first_line: u64,
        sink: &mut impl Sink,
    ) -> Result<(), SignalError> {
        let options = self.options;
        let mut builder = csv::ReaderBuilder::new();
        builder.flexible(true).buffer_capacity(1 << 16);
        let (mut reader, headers, cols) = match self.header {
            Some((headers, cols)) => (builder.has_headers(false).from_reader(rest), headers, cols),
            None => {
                let mut reader = builder.has_headers(true).from_reader(rest);
                let headers = reader
                    .byte_headers()
                    .map_err(|e| csv_error(e, FORMAT))?
                    .clone();
                let cols = header_columns(&headers, options)?;
                (reader, headers, cols)
            }
        };
        // Lines the csv crate numbers from 1 here are `first_line - 1` further on.
        let offset = first_line - 1;
        let mut record = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let mut e = csv_error(e, FORMAT);
                    if let SignalError::Io { at, .. } | SignalError::Malformed { at, .. } = &mut e
                        && let Some(l) = at.line.as_mut()
                    {
                        *l += offset;
                    }
                    return Err(e);
                }
            }
            let line = record.position().map_or(0, |p| p.line()) + offset;
            if record.len() == 1 && record.get(0).is_some_and(|f| f.trim_ascii().is_empty()) {
                continue; // a blank line
            }
            let at = (line, headers.len());
            if let Err(e) = row(&record, at, &cols, options, sink, &mut self.times) {
                sink.bad_row(Location::line(line), e)?;
            }
        }
        Ok(())
    }
}

/// The columns of a header row, and the run check that needs them.
fn header_columns(
    headers: &csv::ByteRecord,
    options: &ParseOptions,
) -> Result<Columns, SignalError> {
    if headers.is_empty() {
        return Err(SignalError::Malformed {
            at: Box::new(Location::line(1)),
            format: FORMAT,
            reason: "no header row".into(),
        });
    }
    let cols = columns(headers)?;
    if cols.run.is_none() && options.run.is_none() {
        return Err(SignalError::MissingColumn {
            at: Box::new(Location::line(1)),
            format: FORMAT,
            column: "MARKET_RUN_ID (or set ParseOptions::run)".into(),
        });
    }
    Ok(cols)
}

/// The last start and end timestamps read, as text and as times: rows of a file come
/// in runs of the same interval, so most rows compare two short byte strings instead of
/// parsing two timestamps.
#[derive(Default)]
struct Times {
    start: LastTime,
    end: LastTime,
}

fn row(
    record: &impl Row,
    (line, width): (u64, usize),
    cols: &Columns,
    options: &ParseOptions,
    gatherer: &mut impl Sink,
    times: &mut Times,
) -> Result<(), SignalError> {
    let at = || Location::line(line);
    // Inlined at every use (a closure was not): a call returned the large `Result`
    // through memory, and reading it back cost more than finding the field.
    #[inline(always)]
    fn field<'r>(
        record: &'r impl Row,
        i: usize,
        at: (u64, usize),
        name: &'static str,
    ) -> Result<&'r [u8], SignalError> {
        match record.field(i) {
            Some(text) => Ok(text),
            None => Err(missing(record.width(), name, at)),
        }
    }
    let start_text = field(record, cols.start, (line, width), "INTERVALSTARTTIME_GMT")?;
    let start = times
        .start
        .parse(start_text)
        .map_err(|e| bad_time(start_text, e, "INTERVALSTARTTIME_GMT", line))?;
    let end_text = field(record, cols.end, (line, width), "INTERVALENDTIME_GMT")?;
    let end = times
        .end
        .parse(end_text)
        .map_err(|e| bad_time(end_text, e, "INTERVALENDTIME_GMT", line))?;
    if end <= start {
        return Err(SignalError::field(
            at(),
            "INTERVALENDTIME_GMT",
            format!(
                "end {} is not after start {}",
                end.to_rfc3339(),
                start.to_rfc3339()
            ),
        ));
    }
    let node_text = field(record, cols.node, (line, width), "NODE")?;
    let node = gatherer
        .node(node_text)
        .map_err(|e| SignalError::field(at(), "NODE", e))?;
    let run = match cols.run {
        Some(i) => {
            let text = field(record, i, (line, width), "MARKET_RUN_ID")?;
            let run = run_id(text).ok_or_else(|| {
                SignalError::field(
                    at(),
                    "MARKET_RUN_ID",
                    format!("{} is not DAM, RTPD, RTM or HASP", shown(text)),
                )
            })?;
            if let Some(want) = options.run
                && want != run
            {
                return Err(SignalError::field(
                    at(),
                    "MARKET_RUN_ID",
                    format!("{run} differs from the requested run {want}"),
                ));
            }
            run
        }
        None => options.run.ok_or_else(|| {
            SignalError::field(at(), "MARKET_RUN_ID", "no column and no run in the options")
        })?,
    };
    if run.market() != crate::Market::Caiso {
        return Err(SignalError::field(
            at(),
            "MARKET_RUN_ID",
            format!("{run} is not a CAISO market run"),
        ));
    }
    let component = match (cols.lmp_type, cols.data_item) {
        (Some(i), _) => {
            let text = field(record, i, (line, width), "LMP_TYPE")?;
            Component::from_lmp_type(text).ok_or_else(|| {
                SignalError::field(
                    at(),
                    "LMP_TYPE",
                    format!("{} is not LMP, MCE, MCC, MCL or MGHG", shown(text)),
                )
            })?
        }
        (None, Some(i)) => {
            let text = field(record, i, (line, width), "XML_DATA_ITEM")?;
            Component::from_data_item(text).ok_or_else(|| {
                SignalError::field(
                    at(),
                    "XML_DATA_ITEM",
                    format!("{} is not an LMP data item", shown(text)),
                )
            })?
        }
        (None, None) => unreachable_columns()?,
    };
    let key = RowKey {
        start,
        end,
        node,
        run,
    };
    let price = field(record, cols.price, (line, width), cols.price_name).and_then(|text| {
        parse_price(text).map_err(|e| SignalError::field(at(), cols.price_name, e))
    });
    match price {
        Ok(price) => gatherer.add(&key, component, price, RowAt::line(line)),
        Err(e) => {
            gatherer.poison(&key, line, false);
            Err(e)
        }
    }
}

/// A row without field `name` (it has `fields`). Out of line, like [`bad_time`], so that
/// a row's usual path stays short.
#[cold]
#[inline(never)]
fn missing(fields: usize, name: &'static str, (line, width): (u64, usize)) -> SignalError {
    SignalError::field(
        Location::line(line),
        name,
        format!("row has {fields} fields, the header has {width}"),
    )
}

/// A timestamp that does not read.
#[cold]
#[inline(never)]
fn bad_time(text: &[u8], e: &str, name: &'static str, line: u64) -> SignalError {
    SignalError::field(Location::line(line), name, format!("{}: {e}", shown(text)))
}

/// A `MARKET_RUN_ID`: the exact bytes every row has, else [`MarketRun::from_caiso_id`]
/// (which trims any whitespace). Inline: every row has one.
#[inline]
fn run_id(text: &[u8]) -> Option<MarketRun> {
    match text {
        b"RTM" => Some(MarketRun::CaisoRtm),
        b"DAM" => Some(MarketRun::CaisoDam),
        b"RTPD" => Some(MarketRun::CaisoRtpd),
        b"HASP" => Some(MarketRun::CaisoHasp),
        _ => std::str::from_utf8(text)
            .ok()
            .and_then(MarketRun::from_caiso_id),
    }
}

/// `columns` guarantees one of the component columns; this keeps the match total
/// without a panic path.
fn unreachable_columns() -> Result<Component, SignalError> {
    Err(SignalError::MissingColumn {
        at: Box::new(Location::line(1)),
        format: FORMAT,
        column: "LMP_TYPE|XML_DATA_ITEM".into(),
    })
}
