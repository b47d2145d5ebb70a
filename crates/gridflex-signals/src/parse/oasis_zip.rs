//! The OASIS zip: every OASIS answer is a zip holding one or more CSV or XML files
//! (one per component for some reports), or the XML "no data" error document
//! (reference `markets.md` §f).

use std::io::{BufRead, BufReader, Read, Seek};

use super::caiso::Gatherer;
use super::{Format, ParseOptions, ParseOutput, Skips, caiso_csv, caiso_xml, detect_format};
use crate::{Location, SignalError};

/// Parses an OASIS zip; its CSV and XML members are read in archive order and their
/// component rows joined into one set of price points.
///
/// An error document inside the zip is [`SignalError::NoData`] (code 1000) or
/// [`SignalError::Operator`], never an empty success. Errors inside a member name it
/// in [`Location::entry`].
pub fn parse_oasis_zip<R: Read + Seek>(
    input: R,
    options: &ParseOptions,
) -> Result<ParseOutput, SignalError> {
    let mut archive = zip::ZipArchive::new(input).map_err(|e| SignalError::Zip {
        reason: e.to_string(),
    })?;
    if archive.is_empty() {
        return Err(SignalError::Zip {
            reason: "the archive has no entries".into(),
        });
    }
    let mut gatherer = Gatherer::new();
    let mut skips = Skips::new(options.mode);
    let mut files = 0usize;
    for i in 0..archive.len() {
        let file = archive.by_index(i).map_err(|e| SignalError::Zip {
            reason: format!("entry {i}: {e}"),
        })?;
        if file.is_dir() {
            continue;
        }
        files += 1;
        let name = file.name().to_owned();
        gatherer.set_entry(&name);
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let head = reader.fill_buf().map_err(|source| SignalError::Io {
            at: Box::new(Location::default().in_entry(&name)),
            source,
        })?;
        let format = detect_format(head).map_err(|e| e.in_entry(&name))?;
        let result = match format {
            Format::CaisoCsv => caiso_csv::read_into(reader, options, &mut gatherer, &mut skips),
            Format::CaisoXml => caiso_xml::read_into(reader, options, &mut gatherer, &mut skips),
            other => Err(SignalError::UnknownFormat {
                reason: format!(
                    "zip entry {name:?} holds {}, not an OASIS CSV or XML file",
                    other.name()
                ),
            }),
        };
        result.map_err(|e| e.in_entry(&name))?;
        for s in skips.rows.iter_mut() {
            if s.at.entry.is_none() {
                s.at.entry = Some(name.clone());
            }
            if let Some(at) = reason_location_mut(&mut s.reason)
                && at.entry.is_none()
            {
                at.entry = Some(name.clone());
            }
        }
    }
    if files == 0 {
        return Err(SignalError::Zip {
            reason: format!(
                "the archive holds {} director{} and no file",
                archive.len(),
                if archive.len() == 1 { "y" } else { "ies" }
            ),
        });
    }
    let points = gatherer.finish(&mut skips)?;
    Ok(ParseOutput {
        format: Format::OasisZip,
        points,
        skipped_count: skips.count,
        skipped: skips.rows,
        next_page: None,
    })
}

fn reason_location_mut(e: &mut SignalError) -> Option<&mut Location> {
    match e {
        SignalError::Field { at, .. } | SignalError::Malformed { at, .. } => Some(at),
        _ => None,
    }
}
