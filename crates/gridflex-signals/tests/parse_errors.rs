//! Bad input: every error names its position and field; lenient mode reports what it skips.

use gridflex_signals::parse::{
    Format, ParseOptions, detect_format, parse_caiso_csv, parse_caiso_xml, parse_pjm_csv,
    parse_pjm_json, parse_prices,
};
use gridflex_signals::{MarketRun, SignalError};

const CAISO_HEADER: &str =
    "INTERVALSTARTTIME_GMT,INTERVALENDTIME_GMT,NODE,MARKET_RUN_ID,LMP_TYPE,MW";

fn caiso(rows: &[&str]) -> String {
    let mut s = String::from(CAISO_HEADER);
    for r in rows {
        s.push('\n');
        s.push_str(r);
    }
    s.push('\n');
    s
}

const ROW_A: &str = "2024-07-01T19:00:00-00:00,2024-07-01T20:00:00-00:00,A,DAM,LMP,10";
const ROW_B: &str = "2024-07-01T19:00:00-00:00,2024-07-01T20:00:00-00:00,B,DAM,LMP,11";

#[test]
fn missing_column_is_named() {
    let csv = "INTERVALSTARTTIME_GMT,INTERVALENDTIME_GMT,NODE,MARKET_RUN_ID,LMP_TYPE\n";
    let err = parse_caiso_csv(csv.as_bytes(), &ParseOptions::default()).unwrap_err();
    match &err {
        SignalError::MissingColumn { column, at, .. } => {
            assert_eq!(column, "MW|PRC|VALUE");
            assert_eq!(at.line, Some(1));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn bad_time_names_line_and_field() {
    let csv = caiso(&[
        ROW_A,
        "2024-07-01T25:00:00-00:00,2024-07-01T20:00:00-00:00,B,DAM,LMP,11",
    ]);
    let err = parse_caiso_csv(csv.as_bytes(), &ParseOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("line 3: field INTERVALSTARTTIME_GMT"),
        "{msg}"
    );
    assert_eq!(err.location().unwrap().line, Some(3));
}

#[test]
fn lenient_skips_and_reports_every_bad_row() {
    let csv = caiso(&[
        ROW_A,
        "2024-07-01T19:00:00-00:00,2024-07-01T20:00:00-00:00,C,DAM,LMP,abc",
        "2024-07-01T19:00:00-00:00,2024-07-01T20:00:00-00:00,D,XYZ,LMP,1",
        "2024-07-01T19:00:00-00:00,2024-07-01T18:00:00-00:00,E,DAM,LMP,1",
        ROW_B,
    ]);
    let strict = parse_caiso_csv(csv.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(strict.to_string().contains("line 3: field MW"), "{strict}");

    let out = parse_caiso_csv(csv.as_bytes(), &ParseOptions::lenient()).unwrap();
    let nodes: Vec<&str> = out.points.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(nodes, ["A", "B"]);
    let lines: Vec<Option<u64>> = out.skipped.iter().map(|s| s.at.line).collect();
    // The bad price (line 3) is reported as a row, and its point C as dropped.
    assert_eq!(lines, [Some(3), Some(4), Some(5), Some(3)]);
    assert!(out.skipped[1].reason.to_string().contains("MARKET_RUN_ID"));
    assert!(
        out.skipped[2]
            .reason
            .to_string()
            .contains("not after start")
    );
    assert!(out.skipped[3].reason.to_string().contains("node C"));
}

#[test]
fn duplicate_component_and_missing_lmp_are_errors() {
    let dup = caiso(&[ROW_A, ROW_A]);
    let err = parse_caiso_csv(dup.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(err.to_string().contains("first row at line 2"), "{err}");

    let no_lmp = caiso(&["2024-07-01T19:00:00-00:00,2024-07-01T20:00:00-00:00,A,DAM,MCC,1.5"]);
    let err = parse_caiso_csv(no_lmp.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(err.to_string().contains("no LMP row for node A"), "{err}");
    assert!(err.to_string().contains("only MCC"), "{err}");
    let out = parse_caiso_csv(no_lmp.as_bytes(), &ParseOptions::lenient()).unwrap();
    assert!(out.points.is_empty());
    assert_eq!(out.skipped.len(), 1);
}

#[test]
fn end_times_must_agree_within_a_point() {
    let csv = caiso(&[
        ROW_A,
        "2024-07-01T19:00:00-00:00,2024-07-01T19:15:00-00:00,A,DAM,MCC,1",
    ]);
    let err = parse_caiso_csv(csv.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(err.to_string().contains("disagrees"), "{err}");
}

#[test]
fn run_from_options_when_the_file_lacks_it() {
    let csv = "INTERVALSTARTTIME_GMT,INTERVALENDTIME_GMT,NODE,LMP_TYPE,PRC\n\
               2024-07-01T19:00:00-00:00,2024-07-01T19:15:00-00:00,A,LMP,10\n";
    let err = parse_caiso_csv(csv.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(matches!(err, SignalError::MissingColumn { .. }));
    let out = parse_caiso_csv(
        csv.as_bytes(),
        &ParseOptions::default().with_run(MarketRun::CaisoRtpd),
    )
    .unwrap();
    assert_eq!(out.points[0].run, MarketRun::CaisoRtpd);
    // A file that names another run than the one asked for is refused.
    let csv = caiso(&[ROW_A]);
    let err = parse_caiso_csv(
        csv.as_bytes(),
        &ParseOptions::default().with_run(MarketRun::CaisoRtm),
    )
    .unwrap_err();
    assert!(err.to_string().contains("requested run"), "{err}");
}

#[test]
fn broken_csv_quoting_is_malformed_not_a_panic() {
    let csv = format!("{CAISO_HEADER}\n\"2024-07-01T19:00:00-00:00,x,A,DAM,LMP,1\n");
    // An unterminated quote swallows the rest of the file as one field: the row is
    // short, so it is a reported bad row, never a silent success.
    let err = parse_caiso_csv(csv.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(err.to_string().starts_with("line 2: field"), "{err}");
    let out = parse_caiso_csv(csv.as_bytes(), &ParseOptions::lenient()).unwrap();
    assert_eq!(out.skipped.len(), 1);
}

const XML_HEAD: &str = r#"<OASISReport xmlns="http://www.caiso.com/soa/OASISReport_v1.xsd"><MessagePayload><RTO><name>CAISO</name><REPORT_ITEM><REPORT_HEADER><REPORT>PRC_INTVL_LMP</REPORT><MKT_TYPE>RTM</MKT_TYPE></REPORT_HEADER>"#;
const XML_TAIL: &str = "</REPORT_ITEM></RTO></MessagePayload></OASISReport>";

fn xml_data(item: &str, value: &str) -> String {
    format!(
        "<REPORT_DATA><DATA_ITEM>{item}</DATA_ITEM><RESOURCE_NAME>N1</RESOURCE_NAME>\
         <INTERVAL_START_GMT>2024-07-01T19:00:00-00:00</INTERVAL_START_GMT>\
         <VALUE>{value}</VALUE></REPORT_DATA>"
    )
}

#[test]
fn xml_errors_name_the_element() {
    let xml = format!(
        "{XML_HEAD}{}{}{XML_TAIL}",
        xml_data("LMP_PRC", "10"),
        xml_data("LMP_CONG_PRC", "ten")
    );
    let err = parse_caiso_xml(xml.as_bytes(), &ParseOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("element REPORT_DATA #2"), "{msg}");
    assert!(msg.contains("field VALUE"), "{msg}");

    // Without INTERVAL_END_GMT or SEC_PER_INTERVAL the run's length applies (RTM: 5 min).
    let xml = format!("{XML_HEAD}{}{XML_TAIL}", xml_data("LMP_PRC", "10"));
    let out = parse_caiso_xml(xml.as_bytes(), &ParseOptions::default()).unwrap();
    assert_eq!(out.points[0].interval.duration().num_minutes(), 5);
    assert_eq!(out.points[0].run, MarketRun::CaisoRtm);
}

#[test]
fn malformed_xml_and_foreign_root() {
    let err = parse_caiso_xml(
        format!("{XML_HEAD}<REPORT_DATA></REPORT_ITEM>").as_bytes(),
        &ParseOptions::lenient(),
    )
    .unwrap_err();
    assert!(matches!(err, SignalError::Malformed { .. }), "{err}");
    let err = parse_caiso_xml(&b"<html><body/></html>"[..], &ParseOptions::default()).unwrap_err();
    assert!(err.to_string().contains("OASISReport"), "{err}");
}

#[test]
fn other_oasis_errors_are_operator_errors() {
    let xml = r#"<OASISReport><MessagePayload><RTO><ERROR><ERR_CODE>1015</ERR_CODE><ERR_DESC>Too many requests</ERR_DESC></ERROR></RTO></MessagePayload></OASISReport>"#;
    let err = parse_caiso_xml(xml.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(
        matches!(err, SignalError::Operator { code: 1015, .. }),
        "{err}"
    );
}

#[test]
fn pjm_json_errors() {
    // Syntax: fatal, with the line.
    let err = parse_pjm_json(
        &b"{\"items\": [\n{\"pnode_id\": 1,,}]}"[..],
        &ParseOptions::lenient(),
    )
    .unwrap_err();
    assert!(matches!(err, SignalError::Malformed { .. }), "{err}");
    assert!(err.to_string().starts_with("line 2"), "{err}");

    // A bad value: names the item and field; lenient skips it.
    let json = r#"{"items":[
      {"datetime_beginning_utc":"2024-07-01T16:00:00","pnode_id":1,"total_lmp_da":"n/a"},
      {"datetime_beginning_utc":"2024-07-01T16:00:00","pnode_id":2,"total_lmp_da":20.5}]}"#;
    let err = parse_pjm_json(json.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "item 0: field total_lmp_da: \"n/a\" is not a number"
    );
    let out = parse_pjm_json(json.as_bytes(), &ParseOptions::lenient()).unwrap();
    assert_eq!(out.points.len(), 1);
    assert_eq!(out.skipped[0].at.item, Some(0));

    // Each kind of bad time or price names its field and says what was wrong.
    for (item, says) in [
        (
            r#"{"datetime_beginning_utc":16,"pnode_id":1,"total_lmp_da":20.5}"#,
            "item 0: field datetime_beginning_utc: expected a timestamp string",
        ),
        (
            r#"{"datetime_beginning_utc":"","pnode_id":1,"total_lmp_da":20.5}"#,
            "item 0: field datetime_beginning_utc: \"\": expected a timestamp",
        ),
        (
            r#"{"datetime_beginning_utc":"2024-07-01T16:00:00","pnode_id":1,"total_lmp_da":true}"#,
            "item 0: field total_lmp_da: expected a number",
        ),
        (
            r#"{"datetime_beginning_utc":"2024-07-01T16:00:00","pnode_id":1,"total_lmp_da":1e300}"#,
            "item 0: field total_lmp_da: ",
        ),
        (
            r#"{"datetime_beginning_utc":"2024-07-01T16:00:00","pnode_id":1,"total_lmp_da":20.5,"congestion_price_da":"x"}"#,
            "item 0: field congestion_price_da: \"x\" is not a number",
        ),
    ] {
        let json = format!("[{item}]");
        let err = parse_pjm_json(json.as_bytes(), &ParseOptions::default()).unwrap_err();
        assert!(err.to_string().starts_with(says), "{err}");
    }

    // No items: an API error body is not an empty success.
    let err = parse_pjm_json(
        &br#"{"statusCode":401,"message":"Access denied"}"#[..],
        &ParseOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("statusCode, message"), "{err}");
}

#[test]
fn pjm_real_time_length_needs_a_source() {
    let one =
        r#"[{"datetime_beginning_utc":"2024-07-01T16:00:00","pnode_id":1,"total_lmp_rt":20}]"#;
    let err = parse_pjm_json(one.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(err.to_string().contains("set ParseOptions::run"), "{err}");
    let out = parse_pjm_json(
        one.as_bytes(),
        &ParseOptions::default().with_run(MarketRun::PjmRealTimeHourly),
    )
    .unwrap();
    assert_eq!(out.points[0].interval.duration().num_hours(), 1);
    let err = parse_pjm_json(
        one.as_bytes(),
        &ParseOptions::default().with_run(MarketRun::PjmDayAheadHourly),
    )
    .unwrap_err();
    assert!(err.to_string().contains("RealTime"), "{err}");
    // An ending time settles it.
    let ended = r#"[{"datetime_beginning_utc":"2024-07-01T16:00:00","datetime_ending_utc":"2024-07-01T16:05:00","pnode_id":1,"total_lmp_rt":20}]"#;
    let out = parse_pjm_json(ended.as_bytes(), &ParseOptions::default()).unwrap();
    assert_eq!(out.points[0].run, MarketRun::PjmRealTimeFiveMinute);
}

#[test]
fn pjm_duplicates_and_mixed_sides() {
    let dup = r#"[{"datetime_beginning_utc":"2024-07-01T16:00:00","pnode_id":1,"total_lmp_da":20},
                  {"datetime_beginning_utc":"2024-07-01T16:00:00","pnode_id":1,"total_lmp_da":21}]"#;
    let err = parse_pjm_json(dup.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("item 1: field pnode_id: second row"),
        "{err}"
    );
    let mixed = r#"[{"datetime_beginning_utc":"2024-07-01T16:00:00","pnode_id":1,"total_lmp_da":20},
                    {"datetime_beginning_utc":"2024-07-01T16:00:00","pnode_id":2,"total_lmp_rt":21}]"#;
    let err = parse_pjm_json(mixed.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(err.to_string().contains("mixed"), "{err}");
}

#[test]
fn pjm_csv_errors() {
    let csv = "datetime_beginning_utc,pnode_id,total_lmp_da\n2024-07-01T16:00:00,1\n";
    let err = parse_pjm_csv(csv.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(err.to_string().starts_with("line 2"), "{err}");
    let csv = "datetime_beginning_utc,pnode_id\n";
    let err = parse_pjm_csv(csv.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("total_lmp_da|total_lmp_rt"),
        "{err}"
    );
    let csv = "datetime_beginning_utc,pnode_id,total_lmp_da,row_is_current\n2024-07-01T16:00:00,1,5,maybe\n";
    let err = parse_pjm_csv(csv.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(err.to_string().contains("row_is_current"), "{err}");
}

#[test]
fn detection() {
    assert_eq!(
        detect_format(b"\xEF\xBB\xBF  <?xml").unwrap(),
        Format::CaisoXml
    );
    assert_eq!(detect_format(b"[]").unwrap(), Format::PjmJson);
    assert_eq!(
        detect_format(b"\"datetime_beginning_utc\",pnode_id\n").unwrap(),
        Format::PjmCsv
    );
    assert_eq!(detect_format(b"PK\x03\x04rest").unwrap(), Format::OasisZip);
    assert!(matches!(
        detect_format(b""),
        Err(SignalError::UnknownFormat { .. })
    ));
    assert!(matches!(
        parse_prices(&b"a,b,c\n1,2,3\n"[..], &ParseOptions::default()),
        Err(SignalError::UnknownFormat { .. })
    ));
}

#[test]
fn empty_inputs_are_empty_successes_only_when_well_formed() {
    let out = parse_prices(CAISO_HEADER.as_bytes(), &ParseOptions::default()).unwrap();
    assert!(out.points.is_empty());
    let out = parse_prices(&b"{\"items\":[]}"[..], &ParseOptions::default()).unwrap();
    assert!(out.points.is_empty());
    assert!(parse_prices(&b"   "[..], &ParseOptions::default()).is_err());
}

#[test]
fn times_at_the_end_of_the_range_are_errors_not_panics() {
    // chrono's last year is 262142; a year of more than four digits is refused before
    // adding the interval length could overflow.
    let csv = "datetime_beginning_utc,pnode_id,total_lmp_da\n12/31/262142 11:30:00 PM,1,5\n";
    let err = parse_pjm_csv(csv.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(err.to_string().contains("four digits"), "{err}");
    let out = parse_pjm_csv(csv.as_bytes(), &ParseOptions::lenient()).unwrap();
    assert_eq!(out.skipped.len(), 1);
}

#[test]
fn self_closing_xml_elements_are_read_as_empty() {
    // An empty VALUE is a bad value, not a missing row.
    let xml = format!(
        "{XML_HEAD}<REPORT_DATA><DATA_ITEM>LMP_PRC</DATA_ITEM><RESOURCE_NAME>N1</RESOURCE_NAME>\
         <INTERVAL_START_GMT>2024-07-01T19:00:00-00:00</INTERVAL_START_GMT><VALUE/></REPORT_DATA>{XML_TAIL}"
    );
    let err = parse_caiso_xml(xml.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("field VALUE: empty value"),
        "{err}"
    );
    // A self-closing REPORT_DATA is a row with nothing in it.
    let xml = format!(
        "{XML_HEAD}<REPORT_DATA/>{}{XML_TAIL}",
        xml_data("LMP_PRC", "3")
    );
    let out = parse_caiso_xml(xml.as_bytes(), &ParseOptions::lenient()).unwrap();
    assert_eq!(out.points.len(), 1);
    assert_eq!(out.skipped.len(), 1);
    assert!(
        out.skipped[0]
            .reason
            .to_string()
            .contains("element REPORT_DATA #1")
    );
    // A self-closing ERROR is still an error document, with an unreadable code.
    let xml = "<OASISReport><MessagePayload><RTO><ERROR/></RTO></MessagePayload></OASISReport>";
    let err = parse_caiso_xml(xml.as_bytes(), &ParseOptions::lenient()).unwrap_err();
    assert!(err.to_string().contains("ERR_CODE"), "{err}");
}
