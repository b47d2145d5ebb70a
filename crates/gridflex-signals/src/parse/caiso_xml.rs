//! CAISO OASIS XML (`OASISReport`) for the LMP reports.
//!
//! Layout (reference `markets.md` §f):
//!
//! ```text
//! OASISReport
//!   MessageHeader { TimeDate, Source, Version }
//!   MessagePayload
//!     RTO { name,
//!       REPORT_ITEM* {
//!         REPORT_HEADER { SYSTEM, TZ, REPORT, MKT_TYPE, UOM, INTERVAL, SEC_PER_INTERVAL }
//!         REPORT_DATA* { DATA_ITEM, RESOURCE_NAME, OPR_DATE, INTERVAL_NUM,
//!                        INTERVAL_START_GMT, INTERVAL_END_GMT, VALUE } }
//!       | ERROR { ERR_CODE, ERR_DESC } }
//! ```
//!
//! The run comes from the header's `REPORT` (`PRC_LMP` -> DAM, ...), else its
//! `MKT_TYPE`, else [`ParseOptions::run`]. A missing `INTERVAL_END_GMT` is filled from
//! `SEC_PER_INTERVAL`, else from the run's interval length. An `ERROR` document is
//! [`SignalError::NoData`] for `ERR_CODE` 1000 and [`SignalError::Operator`] otherwise.

use std::io::BufRead;

use chrono::{DateTime, TimeDelta, Utc};
use quick_xml::events::Event;

use super::caiso::{Component, RowAt, RowKey, Sink, gather};
use super::scalar::{parse_price, parse_utc, shown};
use super::{Format, ParseOptions, ParseOutput};
use crate::{Location, Market, MarketRun, SignalError};

const FORMAT: &str = "CAISO OASIS XML";

/// Parses a CAISO OASIS XML price report.
///
/// ```
/// use gridflex_signals::parse::{parse_caiso_xml, ParseOptions};
/// use gridflex_signals::SignalError;
///
/// let xml = r#"<OASISReport xmlns="http://www.caiso.com/soa/OASISReport_v1.xsd">
///   <MessagePayload><RTO><name>CAISO</name>
///     <ERROR><ERR_CODE>1000</ERR_CODE><ERR_DESC>No data returned for the specified selection</ERR_DESC></ERROR>
///   </RTO></MessagePayload></OASISReport>"#;
/// let err = parse_caiso_xml(xml.as_bytes(), &ParseOptions::default()).unwrap_err();
/// assert!(matches!(err, SignalError::NoData { code: 1000, .. }));
/// ```
pub fn parse_caiso_xml<R: BufRead>(
    input: R,
    options: &ParseOptions,
) -> Result<ParseOutput, SignalError> {
    gather(Format::CaisoXml, options, |sink| {
        read_into(input, options, sink)
    })
}

#[derive(Default)]
struct Header {
    report: String,
    mkt_type: String,
    sec_per_interval: String,
}

#[derive(Default)]
struct Data {
    data_item: String,
    resource: String,
    start: String,
    end: String,
    value: String,
    /// Which of the fields above have had an element (bit per field), so that a
    /// second element of the same name is refused rather than its text appended.
    seen: u8,
    /// The first field given twice, if any.
    repeated: Option<&'static str>,
}

/// The bit and name of a `REPORT_DATA` field element.
fn data_field(name: &[u8]) -> Option<(u8, &'static str)> {
    Some(match name {
        b"DATA_ITEM" => (1, "DATA_ITEM"),
        b"RESOURCE_NAME" => (2, "RESOURCE_NAME"),
        b"INTERVAL_START_GMT" => (4, "INTERVAL_START_GMT"),
        b"INTERVAL_END_GMT" => (8, "INTERVAL_END_GMT"),
        b"VALUE" => (16, "VALUE"),
        _ => return None,
    })
}

#[derive(Default)]
struct ErrorDoc {
    code: String,
    desc: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    None,
    Header,
    Data,
    Error,
}

/// Reads one XML document's rows into `gatherer`.
pub(crate) fn read_into<R: BufRead>(
    input: R,
    options: &ParseOptions,
    sink: &mut impl Sink,
) -> Result<(), SignalError> {
    let mut reader = quick_xml::Reader::from_reader(input);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut section = Section::None;
    let mut field: Option<Vec<u8>> = None;
    let mut header = Header::default();
    let mut data = Data::default();
    let mut error = ErrorDoc::default();
    let mut data_count: u64 = 0;
    let mut data_byte: u64 = 0;
    let mut root_seen = false;
    // Elements open at this point: a document that ends with any open is cut short.
    let mut depth: u64 = 0;
    loop {
        let pos = reader.buffer_position();
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| SignalError::Malformed {
                at: Box::new(Location::default().at_byte(pos)),
                format: FORMAT,
                reason: e.to_string(),
            })?;
        let (name, opens, closes) = match event {
            Event::Start(e) => {
                depth += 1;
                (e.local_name().as_ref().to_vec(), true, false)
            }
            // A self-closing element opens and closes at once.
            Event::Empty(e) => (e.local_name().as_ref().to_vec(), true, true),
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                (e.local_name().as_ref().to_vec(), false, true)
            }
            Event::Text(t) => {
                if let Some(name) = &field {
                    let text = t.unescape().map_err(|e| SignalError::Malformed {
                        at: Box::new(Location::default().at_byte(pos)),
                        format: FORMAT,
                        reason: e.to_string(),
                    })?;
                    store(section, name, &text, &mut header, &mut data, &mut error);
                }
                buf.clear();
                continue;
            }
            Event::CData(t) => {
                if let Some(name) = &field {
                    let text = String::from_utf8_lossy(&t);
                    store(section, name, &text, &mut header, &mut data, &mut error);
                }
                buf.clear();
                continue;
            }
            Event::Eof => {
                if depth > 0 {
                    return Err(SignalError::Malformed {
                        at: Box::new(Location::default().at_byte(pos)),
                        format: FORMAT,
                        reason: format!(
                            "the document ends with {depth} element(s) still open: it was cut short"
                        ),
                    });
                }
                break;
            }
            _ => {
                buf.clear();
                continue;
            }
        };
        buf.clear();
        if opens {
            if !root_seen {
                root_seen = true;
                if name != b"OASISReport" {
                    return Err(SignalError::Malformed {
                        at: Box::new(
                            Location::element(String::from_utf8_lossy(&name), 1).at_byte(pos),
                        ),
                        format: FORMAT,
                        reason: "the root element is not OASISReport".into(),
                    });
                }
            }
            match name.as_slice() {
                b"REPORT_ITEM" => header = Header::default(),
                b"REPORT_HEADER" => section = Section::Header,
                b"REPORT_DATA" => {
                    section = Section::Data;
                    data = Data::default();
                    data_count += 1;
                    data_byte = pos;
                }
                b"ERROR" => section = Section::Error,
                _ => {
                    if section == Section::Data
                        && let Some((bit, field_name)) = data_field(&name)
                    {
                        if data.seen & bit != 0 && data.repeated.is_none() {
                            data.repeated = Some(field_name);
                        }
                        data.seen |= bit;
                    }
                    if section != Section::None && !closes {
                        field = Some(name.clone());
                    }
                }
            }
        }
        if closes {
            match name.as_slice() {
                b"REPORT_HEADER" => section = Section::None,
                b"REPORT_DATA" => {
                    section = Section::None;
                    let at = Location::element("REPORT_DATA", data_count).at_byte(data_byte);
                    if let Err(err) = row(&data, &header, data_count, &at, options, sink) {
                        sink.bad_row(at, err)?;
                    }
                }
                b"ERROR" => {
                    let at = Location::element("ERROR", 1).at_byte(pos);
                    let code: i64 = error.code.trim().parse().map_err(|_| {
                        SignalError::field(
                            at.clone(),
                            "ERR_CODE",
                            format!("{:?} is not a number", error.code),
                        )
                    })?;
                    let description = error.desc.trim().to_owned();
                    return Err(if code == 1000 {
                        SignalError::NoData {
                            at: Box::new(at),
                            code,
                            description,
                        }
                    } else {
                        SignalError::Operator {
                            at: Box::new(at),
                            code,
                            description,
                        }
                    });
                }
                _ => field = None,
            }
        }
    }
    if !root_seen {
        return Err(SignalError::Malformed {
            at: Box::new(Location::default()),
            format: FORMAT,
            reason: "no root element".into(),
        });
    }
    Ok(())
}

fn store(
    section: Section,
    name: &[u8],
    text: &str,
    header: &mut Header,
    data: &mut Data,
    error: &mut ErrorDoc,
) {
    let slot = match (section, name) {
        (Section::Header, b"REPORT") => &mut header.report,
        (Section::Header, b"MKT_TYPE") => &mut header.mkt_type,
        (Section::Header, b"SEC_PER_INTERVAL") => &mut header.sec_per_interval,
        (Section::Data, b"DATA_ITEM") => &mut data.data_item,
        (Section::Data, b"RESOURCE_NAME") => &mut data.resource,
        (Section::Data, b"INTERVAL_START_GMT") => &mut data.start,
        (Section::Data, b"INTERVAL_END_GMT") => &mut data.end,
        (Section::Data, b"VALUE") => &mut data.value,
        (Section::Error, b"ERR_CODE") => &mut error.code,
        (Section::Error, b"ERR_DESC") => &mut error.desc,
        _ => return,
    };
    slot.push_str(text);
}

fn run_of(
    header: &Header,
    options: &ParseOptions,
    at: &Location,
) -> Result<MarketRun, SignalError> {
    let from_file = MarketRun::from_caiso_report(&header.report)
        .or_else(|| MarketRun::from_caiso_id(&header.mkt_type));
    match (from_file, options.run) {
        (Some(f), Some(o)) if f != o => Err(SignalError::field(
            at.clone(),
            "REPORT",
            format!("report is {f}, but the requested run is {o}"),
        )),
        (Some(r), _) | (None, Some(r)) if r.market() == Market::Caiso => Ok(r),
        (Some(r), _) | (None, Some(r)) => Err(SignalError::field(
            at.clone(),
            "REPORT",
            format!("{r} is not a CAISO market run"),
        )),
        (None, None) => Err(SignalError::field(
            at.clone(),
            "REPORT",
            format!(
                "cannot tell the market run from REPORT {:?} / MKT_TYPE {:?}; set ParseOptions::run",
                header.report, header.mkt_type
            ),
        )),
    }
}

fn row(
    data: &Data,
    header: &Header,
    ordinal: u64,
    at: &Location,
    options: &ParseOptions,
    gatherer: &mut impl Sink,
) -> Result<(), SignalError> {
    if let Some(name) = data.repeated {
        return Err(SignalError::field(
            at.clone(),
            name,
            format!("{name} is given twice in one REPORT_DATA"),
        ));
    }
    let run = run_of(header, options, at)?;
    let time = |text: &str, name: &'static str| -> Result<DateTime<Utc>, SignalError> {
        parse_utc(text.as_bytes()).map_err(|e| {
            SignalError::field(at.clone(), name, format!("{}: {e}", shown(text.as_bytes())))
        })
    };
    let start = time(&data.start, "INTERVAL_START_GMT")?;
    let end = if data.end.trim().is_empty() {
        let length = match header.sec_per_interval.trim().parse::<i64>() {
            Ok(s) if s > 0 => TimeDelta::try_seconds(s).unwrap_or_else(|| run.nominal_length()),
            _ => run.nominal_length(),
        };
        start.checked_add_signed(length).ok_or_else(|| {
            SignalError::field(
                at.clone(),
                "INTERVAL_START_GMT",
                "too late to add the interval length",
            )
        })?
    } else {
        time(&data.end, "INTERVAL_END_GMT")?
    };
    if end <= start {
        return Err(SignalError::field(
            at.clone(),
            "INTERVAL_END_GMT",
            format!(
                "end {} is not after start {}",
                end.to_rfc3339(),
                start.to_rfc3339()
            ),
        ));
    }
    let component = Component::from_data_item(data.data_item.as_bytes()).ok_or_else(|| {
        SignalError::field(
            at.clone(),
            "DATA_ITEM",
            format!(
                "{} is not an LMP data item",
                shown(data.data_item.as_bytes())
            ),
        )
    })?;
    let node = gatherer
        .node(data.resource.as_bytes())
        .map_err(|e| SignalError::field(at.clone(), "RESOURCE_NAME", e))?;
    let key = RowKey {
        start,
        end,
        node,
        run,
    };
    match parse_price(data.value.as_bytes()) {
        Ok(price) => gatherer.add(&key, component, price, RowAt::report_data(ordinal, at.byte)),
        Err(e) => {
            gatherer.poison(&key, ordinal, true);
            Err(SignalError::field(at.clone(), "VALUE", e))
        }
    }
}
