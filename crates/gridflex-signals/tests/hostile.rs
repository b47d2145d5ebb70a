//! Inputs that used to give a silently wrong result or unbounded memory: each is now a
//! located error, or a bounded report. Big inputs are generated here, never committed.

use std::io::{Cursor, Write};

use gridflex_signals::SignalError;
use gridflex_signals::parse::{
    ParseOptions, SKIPPED_EXAMPLES, parse_caiso_csv, parse_caiso_xml, parse_oasis_zip,
    parse_pjm_csv, parse_pjm_json, parse_prices,
};

const XML_HEAD: &str = "<OASISReport xmlns=\"http://www.caiso.com/soa/OASISReport_v1.xsd\">\
<MessagePayload><RTO><name>CAISO</name><REPORT_ITEM><REPORT_HEADER><REPORT>PRC_LMP</REPORT>\
</REPORT_HEADER>";
const XML_TAIL: &str = "</REPORT_ITEM></RTO></MessagePayload></OASISReport>";

fn xml_row(node: &str, values: &[&str]) -> String {
    let mut s = format!(
        "<REPORT_DATA><DATA_ITEM>LMP_PRC</DATA_ITEM><RESOURCE_NAME>{node}</RESOURCE_NAME>\
         <INTERVAL_START_GMT>2022-02-01T15:00:00-00:00</INTERVAL_START_GMT>\
         <INTERVAL_END_GMT>2022-02-01T16:00:00-00:00</INTERVAL_END_GMT>"
    );
    for v in values {
        s.push_str(&format!("<VALUE>{v}</VALUE>"));
    }
    s.push_str("</REPORT_DATA>");
    s
}

#[test]
fn xml_value_given_twice_is_refused_not_concatenated() {
    // 74.63 and 99 used to become one LMP of 74.6399.
    let xml = format!("{XML_HEAD}{}{XML_TAIL}", xml_row("N1", &["74.63", "99"]));
    let err = parse_caiso_xml(xml.as_bytes(), &ParseOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("element REPORT_DATA #1"), "{msg}");
    assert!(msg.contains("VALUE is given twice"), "{msg}");
    let xml = format!(
        "{XML_HEAD}{}{}{XML_TAIL}",
        xml_row("N1", &["74.63", "99"]),
        xml_row("N2", &["5"])
    );
    let out = parse_caiso_xml(xml.as_bytes(), &ParseOptions::lenient()).unwrap();
    assert_eq!(out.points.len(), 1);
    assert_eq!(out.points[0].node.as_str(), "N2");
    assert_eq!(out.skipped_count, 1);
    // Text split by a CDATA section inside one element is still one value.
    let xml = format!(
        "{XML_HEAD}{}{XML_TAIL}",
        xml_row("N1", &["74.<![CDATA[63]]>"])
    );
    let out = parse_caiso_xml(xml.as_bytes(), &ParseOptions::default()).unwrap();
    assert_eq!(out.points[0].lmp.as_per_megawatt_hour(), 74.63);
}

#[test]
fn xml_cut_short_is_malformed_at_every_cut() {
    let rows: String = ["N1", "N2", "N3", "N4"]
        .iter()
        .map(|n| xml_row(n, &["1"]))
        .collect();
    let xml = format!("{XML_HEAD}{rows}{XML_TAIL}");
    let whole = parse_caiso_xml(xml.as_bytes(), &ParseOptions::default()).unwrap();
    assert_eq!(whole.points.len(), 4);
    // Every cut (after the root opens) is an error, in both modes, never a partial
    // success.
    let root_open = xml.find("<MessagePayload>").unwrap();
    for cut in root_open..xml.len() - 1 {
        for options in [ParseOptions::default(), ParseOptions::lenient()] {
            let r = parse_caiso_xml(&xml.as_bytes()[..cut], &options);
            assert!(
                matches!(r, Err(SignalError::Malformed { .. })),
                "cut at {cut}: {:?}",
                r.map(|o| o.points.len())
            );
        }
    }
}

#[test]
fn pjm_two_digit_years_are_refused() {
    let csv = "datetime_beginning_utc,pnode_id,total_lmp_da\n9/3/24 3:00:00 AM,1,5\n";
    let err = parse_pjm_csv(csv.as_bytes(), &ParseOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("line 2: field datetime_beginning_utc"),
        "{msg}"
    );
    assert!(msg.contains("four digits"), "{msg}");
}

#[test]
fn point_lengths_must_fit_their_run() {
    let header = "INTERVALSTARTTIME_GMT,INTERVALENDTIME_GMT,NODE,MARKET_RUN_ID,LMP_TYPE,MW\n";
    for end in ["2022-02-01T15:05:00-00:00", "2022-02-04T15:00:00-00:00"] {
        let csv = format!("{header}2022-02-01T15:00:00-00:00,{end},A,DAM,LMP,10\n");
        let err = parse_caiso_csv(csv.as_bytes(), &ParseOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("line 2: field INTERVALENDTIME_GMT"),
            "{msg}"
        );
        assert!(msg.contains("DAM interval lasts 60 min"), "{msg}");
    }
    // Every point is checked, not only the first of a run of points, and a length
    // right for one run is checked again for another.
    let later = [
        (
            "A,DAM",
            "2022-02-01T16:00:00-00:00,2022-02-01T16:05:00-00:00,A,DAM",
            "line 3",
            "DAM interval lasts 60 min",
        ),
        (
            "A,DAM",
            "2022-02-01T15:00:00-00:00,2022-02-01T16:00:00-00:00,A,RTM",
            "line 3",
            "RTM interval lasts 5 min",
        ),
    ];
    for (first, second, line, says) in later {
        let csv = format!(
            "{header}2022-02-01T15:00:00-00:00,2022-02-01T16:00:00-00:00,{first},LMP,10\n{second},LMP,11\n"
        );
        let err = parse_caiso_csv(csv.as_bytes(), &ParseOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(line), "{msg}");
        assert!(msg.contains(says), "{msg}");
    }
    let json = r#"{"items":[{"datetime_beginning_utc":"2024-07-01T16:00:00","datetime_ending_utc":"2024-07-04T16:00:00","pnode_id":1,"total_lmp_da":42.0}]}"#;
    let err = parse_pjm_json(json.as_bytes(), &ParseOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("item 0: field datetime_ending_utc"),
        "{msg}"
    );
}

fn zip_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, body) in entries {
        match body {
            Some(b) => {
                w.start_file(*name, stored).unwrap();
                w.write_all(b).unwrap();
            }
            None => w.add_directory(*name, stored).unwrap(),
        }
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn zip_of_directories_only_is_an_error() {
    let z = zip_of(&[("reports/", None)]);
    let err = parse_oasis_zip(Cursor::new(&z), &ParseOptions::default()).unwrap_err();
    assert!(matches!(err, SignalError::Zip { .. }), "{err}");
    assert!(err.to_string().contains("no file"), "{err}");
    assert!(parse_prices(z.as_slice(), &ParseOptions::lenient()).is_err());
}

#[test]
fn lenient_skips_are_counted_with_a_few_examples_kept() {
    // 200,000 copies of one row (the issue's case had 6 million, in a 2 MB zip): the
    // first is a point, every copy a bad row, and the point itself is then dropped.
    let n = 200_000;
    let row = "2022-02-01T15:00:00-00:00,2022-02-01T16:00:00-00:00,A,DAM,LMP,10\n";
    let mut csv = String::with_capacity(80 + n * row.len());
    csv.push_str("INTERVALSTARTTIME_GMT,INTERVALENDTIME_GMT,NODE,MARKET_RUN_ID,LMP_TYPE,MW\n");
    for _ in 0..n {
        csv.push_str(row);
    }
    let z = zip_of(&[("PRC_LMP.csv", Some(csv.as_bytes()))]);
    let out = parse_oasis_zip(Cursor::new(&z), &ParseOptions::lenient()).unwrap();
    assert!(out.points.is_empty());
    assert_eq!(out.skipped_count, n as u64);
    assert_eq!(out.skipped.len(), SKIPPED_EXAMPLES);
    assert_eq!(
        out.skipped[0].at.entry.as_deref(),
        Some("PRC_LMP.csv"),
        "examples keep their location"
    );
    assert_eq!(out.skipped[0].at.line, Some(3));
}

#[test]
fn pjm_node_names_are_kept_beside_the_id_which_stays_the_key() {
    let json = r#"{"items":[
      {"datetime_beginning_utc":"2024-07-01T16:00:00","pnode_id":51291,"pnode_name":"AECO","total_lmp_da":42.0},
      {"datetime_beginning_utc":"2024-07-01T16:00:00","pnode_id":1,"total_lmp_da":40.0},
      {"datetime_beginning_utc":"2024-07-01T16:00:00","pnode_id":51291,"pnode_name":"AECO-RENAMED","total_lmp_da":43.0}]}"#;
    // The same id under another name is the same node: a second row for it.
    let err = parse_pjm_json(json.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("second row for node 51291"),
        "{err}"
    );
    let out = parse_pjm_json(json.as_bytes(), &ParseOptions::lenient()).unwrap();
    let got: Vec<(&str, Option<&str>)> = out
        .points
        .iter()
        .map(|p| (p.node.as_str(), p.pnode_name.as_deref()))
        .collect();
    assert_eq!(got, [("1", None), ("51291", Some("AECO"))]);
    let csv = "datetime_beginning_utc,pnode_id,pnode_name,total_lmp_da\n\
               2024-07-01T16:00:00,51291,AECO,42\n2024-07-01T17:00:00,51291,,41\n";
    let out = parse_pjm_csv(csv.as_bytes(), &ParseOptions::default()).unwrap();
    assert_eq!(out.points[0].pnode_name.as_deref(), Some("AECO"));
    assert_eq!(out.points[1].pnode_name, None);
    let bad = "datetime_beginning_utc,pnode_id,pnode_name,total_lmp_da\n\
               2024-07-01T16:00:00,51291,\"A\u{7}B\",42\n";
    let err = parse_pjm_csv(bad.as_bytes(), &ParseOptions::default()).unwrap_err();
    assert!(
        err.to_string().starts_with("line 2: field pnode_name"),
        "{err}"
    );
}
