//! Golden tests: each hand-written fixture (tests/fixtures, written to the layouts in
//! reference `markets.md` §f) parses to the points in tests/golden.
//!
//! Set `GRIDFLEX_UPDATE_GOLDEN=1` to rewrite the golden files after a deliberate
//! change, then review the diff.

use std::io::{Cursor, Write};
use std::path::PathBuf;

use chrono::{TimeDelta, TimeZone, Utc};
use gridflex_signals::parse::{
    Format, ParseOptions, parse_oasis_zip, parse_prices, parse_prices_seekable,
};
use gridflex_signals::{MarketRun, PricePoint, SignalError};

fn dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(sub)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(dir("fixtures").join(name)).unwrap()
}

fn lines(points: &[PricePoint]) -> String {
    points
        .iter()
        .map(|p| serde_json::to_string(p).unwrap() + "\n")
        .collect()
}

fn check_golden(name: &str, points: &[PricePoint]) {
    let path = dir("golden").join(format!("{name}.jsonl"));
    let got = lines(points);
    if std::env::var_os("GRIDFLEX_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(got, want, "golden mismatch for {name}");
    // The golden lines read back to the same points.
    let back: Vec<PricePoint> = want
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back, points);
}

/// Parses a fixture as any reader and as a seekable one (a file's path): both give the
/// same format, points and skips.
fn parse(name: &str, format: Format) -> Vec<PricePoint> {
    let bytes = fixture(name);
    let out = parse_prices(bytes.as_slice(), &ParseOptions::default()).unwrap();
    assert_eq!(out.format, format, "{name}");
    let seek = parse_prices_seekable(Cursor::new(bytes), &ParseOptions::default()).unwrap();
    assert_eq!(seek.format, format, "{name}");
    assert_eq!(seek.points, out.points, "{name}");
    assert_eq!(seek.skipped_count, out.skipped_count, "{name}");
    out.points
}

#[test]
fn caiso_dam_csv_gathers_components_per_node_and_hour() {
    let points = parse("caiso_dam_prc_lmp.csv", Format::CaisoCsv);
    check_golden("caiso_dam_prc_lmp", &points);
    assert_eq!(points.len(), 4);
    let p = &points[0];
    assert_eq!(p.node.as_str(), "0096WD_7_N001");
    assert_eq!(p.run, MarketRun::CaisoDam);
    assert_eq!(p.lmp.as_per_megawatt_hour(), 74.63);
    assert_eq!(p.congestion.unwrap().as_per_megawatt_hour(), 0.0);
    assert_eq!(p.ghg, None);
    assert_eq!(points[1].ghg.unwrap().as_per_megawatt_hour(), 0.5);
}

#[test]
fn caiso_rtpd_spring_forward_is_contiguous_in_utc() {
    let points = parse("caiso_rtpd_spring_forward.csv", Format::CaisoCsv);
    check_golden("caiso_rtpd_spring_forward", &points);
    assert_eq!(points.len(), 4);
    // 01:45 PST is followed by 03:00 PDT: one 15-minute step in UTC.
    for w in points.windows(2) {
        assert_eq!(w[0].interval.end(), w[1].interval.start());
        assert_eq!(w[0].interval.duration(), TimeDelta::minutes(15));
    }
    assert_eq!(
        points[2].interval.start(),
        Utc.with_ymd_and_hms(2024, 3, 10, 10, 0, 0).unwrap()
    );
    assert!(points[2].lmp.is_negative());
}

#[test]
fn caiso_rtm_fall_back_keeps_both_one_am_hours() {
    let points = parse("caiso_rtm_fall_back.csv", Format::CaisoCsv);
    check_golden("caiso_rtm_fall_back", &points);
    assert_eq!(points.len(), 4);
    assert!(points.iter().all(|p| p.run == MarketRun::CaisoRtm));
    for w in points.windows(2) {
        assert_eq!(w[0].interval.end(), w[1].interval.start());
    }
    assert_eq!(points[2].lmp.as_per_megawatt_hour(), -15.75);
}

#[test]
fn caiso_xml_gathers_across_report_items() {
    let points = parse("caiso_prc_lmp_dam.xml", Format::CaisoXml);
    check_golden("caiso_prc_lmp_dam_xml", &points);
    assert_eq!(points.len(), 2);
    assert_eq!(points[1].congestion.unwrap().as_per_megawatt_hour(), -0.42);
    assert_eq!(points[1].energy, None);
    // The XML and CSV forms of the same report agree on what both hold.
    let csv = parse("caiso_dam_prc_lmp.csv", Format::CaisoCsv);
    assert_eq!(csv[0].lmp, points[0].lmp);
    assert_eq!(csv[0].interval, points[0].interval);
}

#[test]
fn oasis_no_data_document_is_a_typed_error() {
    let err = parse_prices(
        fixture("oasis_no_data.xml").as_slice(),
        &ParseOptions::lenient(),
    )
    .unwrap_err();
    let SignalError::NoData {
        code, description, ..
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!(code, 1000);
    assert_eq!(description, "No data returned for the specified selection");
}

#[test]
fn pjm_da_json_envelope_drops_superseded_rows_visibly() {
    let out = parse_prices(
        fixture("pjm_da_hrl_lmps.json").as_slice(),
        &ParseOptions::default(),
    )
    .unwrap();
    assert_eq!(out.format, Format::PjmJson);
    check_golden("pjm_da_hrl_lmps", &out.points);
    assert_eq!(out.points.len(), 4);
    assert!(
        out.points
            .iter()
            .all(|p| p.run == MarketRun::PjmDayAheadHourly)
    );
    assert_eq!(out.skipped.len(), 1);
    assert_eq!(out.skipped[0].at.item, Some(2));
    assert!(out.skipped[0].reason.to_string().contains("row_is_current"));
    // The current version (item 3) is the one kept.
    let rto_5 = out
        .points
        .iter()
        .find(|p| p.node.as_str() == "1" && p.interval.start().timestamp() % 86400 == 5 * 3600)
        .unwrap();
    assert_eq!(rto_5.lmp.as_per_megawatt_hour(), 25.85);
}

#[test]
fn pjm_rt_fivemin_json_across_spring_forward() {
    let points = parse("pjm_rt_fivemin_spring_forward.json", Format::PjmJson);
    check_golden("pjm_rt_fivemin_spring_forward", &points);
    assert_eq!(points.len(), 4);
    assert!(
        points
            .iter()
            .all(|p| p.run == MarketRun::PjmRealTimeFiveMinute)
    );
    for w in points.windows(2) {
        assert_eq!(w[0].interval.end(), w[1].interval.start());
    }
    assert_eq!(points[3].congestion, None);
}

#[test]
fn pjm_rt_hourly_csv_across_fall_back() {
    let points = parse("pjm_rt_hrl_fall_back.csv", Format::PjmCsv);
    check_golden("pjm_rt_hrl_fall_back", &points);
    assert_eq!(points.len(), 4);
    assert!(points.iter().all(|p| p.run == MarketRun::PjmRealTimeHourly));
    // Both 1 am EPT hours are present, an hour apart in UTC.
    assert_eq!(
        points[1].interval.start(),
        Utc.with_ymd_and_hms(2024, 11, 3, 5, 0, 0).unwrap()
    );
    assert_eq!(
        points[2].interval.start(),
        Utc.with_ymd_and_hms(2024, 11, 3, 6, 0, 0).unwrap()
    );
    assert_eq!(points[2].congestion, None);
}

fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Splits the DAM fixture into one CSV per component, as OASIS zips hold them.
fn split_by_component() -> Vec<(&'static str, Vec<u8>)> {
    let text = String::from_utf8(fixture("caiso_dam_prc_lmp.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    ["LMP", "MCE", "MCC", "MCL", "MGHG"]
        .into_iter()
        .zip([
            "20220201_20220202_PRC_LMP_DAM_LMP_v12.csv",
            "20220201_20220202_PRC_LMP_DAM_MCE_v12.csv",
            "20220201_20220202_PRC_LMP_DAM_MCC_v12.csv",
            "20220201_20220202_PRC_LMP_DAM_MCL_v12.csv",
            "20220201_20220202_PRC_LMP_DAM_MGHG_v12.csv",
        ])
        .map(|(component, name)| {
            let mut body = String::from(header);
            body.push('\n');
            for r in rows
                .iter()
                .filter(|r| r.contains(&format!(",DAM,{component},")))
            {
                body.push_str(r);
                body.push('\n');
            }
            (name, body.into_bytes())
        })
        .collect()
}

#[test]
fn oasis_zip_joins_components_across_entries() {
    let bytes = zip_of(&split_by_component());
    let out = parse_prices(bytes.as_slice(), &ParseOptions::default()).unwrap();
    assert_eq!(out.format, Format::OasisZip);
    let single = parse("caiso_dam_prc_lmp.csv", Format::CaisoCsv);
    assert_eq!(out.points, single);
    let seek = parse_oasis_zip(Cursor::new(bytes.clone()), &ParseOptions::default()).unwrap();
    assert_eq!(seek.points, single);
    let any = parse_prices_seekable(Cursor::new(bytes), &ParseOptions::default()).unwrap();
    assert_eq!((any.format, any.points), (Format::OasisZip, single));
}

#[test]
fn oasis_zip_with_xml_and_with_no_data() {
    let bytes = zip_of(&[("PRC_LMP_DAM.xml", fixture("caiso_prc_lmp_dam.xml"))]);
    let out = parse_prices(bytes.as_slice(), &ParseOptions::default()).unwrap();
    assert_eq!(out.points, parse("caiso_prc_lmp_dam.xml", Format::CaisoXml));

    let bytes = zip_of(&[("PRC_LMP_DAM.xml", fixture("oasis_no_data.xml"))]);
    let err = parse_prices(bytes.as_slice(), &ParseOptions::default()).unwrap_err();
    match &err {
        SignalError::NoData { at, code: 1000, .. } => {
            assert_eq!(at.entry.as_deref(), Some("PRC_LMP_DAM.xml"));
        }
        other => panic!("expected NoData, got {other}"),
    }
    assert!(err.to_string().contains("PRC_LMP_DAM.xml"), "{err}");
}

#[test]
fn oasis_zip_errors_name_the_entry_and_line() {
    let mut entries = split_by_component();
    let (_, body) = &mut entries[2];
    let text = String::from_utf8(body.clone())
        .unwrap()
        .replacen("-0.42", "-0.4x2", 1);
    *body = text.into_bytes();
    let bytes = zip_of(&entries);
    let err = parse_prices(bytes.as_slice(), &ParseOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("PRC_LMP_DAM_MCC_v12.csv"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    assert!(msg.contains("field MW"), "{msg}");
    // Lenient: the point whose MCC row was bad is dropped and both are reported.
    let out = parse_prices(bytes.as_slice(), &ParseOptions::lenient()).unwrap();
    assert_eq!(out.points.len(), 3);
    assert_eq!(out.skipped.len(), 2);
}

#[test]
fn a_bad_zip_is_a_zip_error() {
    let mut bytes = zip_of(&split_by_component());
    let n = bytes.len();
    bytes.truncate(n / 2);
    assert!(matches!(
        parse_prices(bytes.as_slice(), &ParseOptions::default()),
        Err(SignalError::Zip { .. })
    ));
}
