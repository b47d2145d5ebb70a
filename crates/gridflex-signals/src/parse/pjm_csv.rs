//! PJM Data Miner 2 CSV export: the same fields as the JSON items, one row each, with
//! a header row naming them (reference `markets.md` §f). Times may be ISO
//! (`2024-09-03T03:55:00`) or the export's US form (`9/3/2024 3:55:00 AM`).

use std::io::Read;

use super::pjm::{Collector, Field, Fields, Side};
use super::{Format, ParseOptions, ParseOutput, Skips, csv_error, find_column};
use crate::{Location, SignalError};

const FORMAT: &str = "PJM Data Miner CSV";

/// Parses a PJM Data Miner 2 LMP CSV export.
///
/// ```
/// use gridflex_signals::parse::{parse_pjm_csv, ParseOptions};
/// use gridflex_signals::MarketRun;
///
/// let csv = "\
/// datetime_beginning_utc,datetime_beginning_ept,pnode_id,pnode_name,total_lmp_da,congestion_price_da
/// 2025-03-09T06:00:00,2025-03-09T01:00:00,1,PJM-RTO,30.1,
/// 2025-03-09T07:00:00,2025-03-09T03:00:00,1,PJM-RTO,29.8,0.4
/// ";
/// let out = parse_pjm_csv(csv.as_bytes(), &ParseOptions::default())?;
/// assert_eq!(out.points.len(), 2);
/// assert_eq!(out.points[0].run, MarketRun::PjmDayAheadHourly);
/// assert_eq!(out.points[0].congestion, None); // empty cell: absent, not zero
/// # Ok::<(), gridflex_signals::SignalError>(())
/// ```
pub fn parse_pjm_csv<R: Read>(
    input: R,
    options: &ParseOptions,
) -> Result<ParseOutput, SignalError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(input);
    let headers = reader
        .byte_headers()
        .map_err(|e| csv_error(e, FORMAT))?
        .clone();
    let at = Location::line(1);
    let missing = |column: &str| SignalError::MissingColumn {
        at: Box::new(at.clone()),
        format: FORMAT,
        column: column.into(),
    };
    let start = find_column(&headers, &["datetime_beginning_utc"])
        .ok_or_else(|| missing("datetime_beginning_utc"))?;
    let end = find_column(&headers, &["datetime_ending_utc"]);
    let node = find_column(&headers, &["pnode_id"]).ok_or_else(|| missing("pnode_id"))?;
    let name = find_column(&headers, &["pnode_name"]);
    let (side, lmp, suffix) = match (
        find_column(&headers, &["total_lmp_da"]),
        find_column(&headers, &["total_lmp_rt"]),
    ) {
        (Some(i), None) => (Side::DayAhead, i, "da"),
        (None, Some(i)) => (Side::RealTime, i, "rt"),
        (Some(_), Some(_)) => {
            return Err(SignalError::Malformed {
                at: Box::new(at),
                format: FORMAT,
                reason: "both total_lmp_da and total_lmp_rt columns".into(),
            });
        }
        (None, None) => return Err(missing("total_lmp_da|total_lmp_rt")),
    };
    let col = |base: &str| find_column(&headers, &[&format!("{base}_{suffix}")]);
    let energy = col("system_energy_price");
    let congestion = col("congestion_price");
    let loss = col("marginal_loss_price");
    let current = find_column(&headers, &["row_is_current"]);

    let mut collector = Collector::new(false);
    let mut skips = Skips::new(options.mode);
    let mut record = csv::ByteRecord::new();
    let mut any = false;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(e, FORMAT)),
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record.get(0).is_some_and(|f| f.trim_ascii().is_empty()) {
            continue;
        }
        any = true;
        if record.len() != headers.len() {
            let at = Location::line(line);
            skips.bad_row(
                at.clone(),
                SignalError::field(
                    at,
                    "row",
                    format!(
                        "row has {} fields, the header has {}",
                        record.len(),
                        headers.len()
                    ),
                ),
            )?;
            continue;
        }
        let get = |i: Option<usize>| {
            i.and_then(|i| record.get(i))
                .filter(|t| !t.trim_ascii().is_empty())
                .map(Field::Text)
        };
        let fields = Fields {
            start: get(Some(start)),
            end: get(end),
            pnode_id: get(Some(node)),
            pnode_name: get(name),
            lmp: get(Some(lmp)),
            energy: get(energy),
            congestion: get(congestion),
            loss: get(loss),
            row_is_current: get(current),
        };
        if let Err(e) = collector.add(&fields, side, line, &mut skips) {
            skips.bad_row(Location::line(line), e)?;
        }
    }
    let points = collector.finish(any.then_some(side), options.run, &mut skips)?;
    Ok(ParseOutput {
        format: Format::PjmCsv,
        points,
        skipped_count: skips.count,
        skipped: skips.rows,
        next_page: None,
    })
}
