//! Property tests: generated valid files parse back to what generated them, and
//! random, truncated or mutated input never panics.

use std::collections::BTreeMap;
use std::io::Cursor;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex_core::{Interval, Price, PricingNodeId};
use gridflex_signals::parse::{
    ParseOptions, parse_caiso_csv, parse_caiso_xml, parse_oasis_zip, parse_pjm_csv, parse_pjm_json,
    parse_pjm_json_seekable, parse_prices, parse_prices_seekable,
};
use gridflex_signals::{MarketRun, PricePoint};
use proptest::prelude::*;

const FIXTURES: [&str; 8] = [
    "caiso_dam_prc_lmp.csv",
    "caiso_rtpd_spring_forward.csv",
    "caiso_rtm_fall_back.csv",
    "caiso_prc_lmp_dam.xml",
    "oasis_no_data.xml",
    "pjm_da_hrl_lmps.json",
    "pjm_rt_fivemin_spring_forward.json",
    "pjm_rt_hrl_fall_back.csv",
];

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Runs every parser on the bytes; the property is that none panics, and that the
/// seekable entry points answer as the reader ones do (errors included).
fn parse_all(bytes: &[u8]) {
    for opts in [ParseOptions::strict(), ParseOptions::lenient()] {
        let any = format!("{:?}", parse_prices(bytes, &opts));
        let seek = format!("{:?}", parse_prices_seekable(Cursor::new(bytes), &opts));
        assert_eq!(seek, any);
        let _ = parse_caiso_csv(bytes, &opts);
        let _ = parse_caiso_xml(bytes, &opts);
        let json = format!("{:?}", parse_pjm_json(bytes, &opts));
        let seek = format!("{:?}", parse_pjm_json_seekable(Cursor::new(bytes), &opts));
        assert_eq!(seek, json);
        let _ = parse_pjm_csv(bytes, &opts);
        let _ = parse_oasis_zip(Cursor::new(bytes), &opts);
    }
}

fn price() -> impl Strategy<Value = Price> {
    (-2000.0f64..20000.0).prop_map(|v| Price::per_megawatt_hour(v).unwrap())
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 11, 2, 20, 0, 0).unwrap()
}

/// Points for one run: distinct (interval, node) pairs, components present at random.
fn points(
    runs: Vec<MarketRun>,
    node_text: BoxedStrategy<String>,
) -> impl Strategy<Value = Vec<PricePoint>> {
    (
        prop::sample::select(runs),
        prop::collection::btree_map(
            (0u32..40, node_text),
            (
                price(),
                prop::option::of(price()),
                prop::option::of(price()),
                prop::option::of(price()),
            ),
            0..30,
        ),
    )
        .prop_map(|(run, map)| {
            map.into_iter()
                .map(|((k, node), (lmp, e, c, l))| {
                    let start = base() + run.nominal_length() * k as i32;
                    PricePoint::new(
                        run,
                        PricingNodeId::new(node).unwrap(),
                        Interval::starting_at(start, run.nominal_length()).unwrap(),
                        lmp,
                    )
                    .with_energy(e)
                    .with_congestion(c)
                    .with_loss(l)
                })
                .collect()
        })
}

fn sorted(mut v: Vec<PricePoint>) -> Vec<PricePoint> {
    v.sort_by(|a, b| (a.interval.start(), &a.node).cmp(&(b.interval.start(), &b.node)));
    v
}

fn caiso_points() -> impl Strategy<Value = Vec<PricePoint>> {
    points(
        vec![
            MarketRun::CaisoDam,
            MarketRun::CaisoRtpd,
            MarketRun::CaisoRtm,
            MarketRun::CaisoHasp,
        ],
        "[A-Z0-9_]{1,10}(-APND)?".boxed(),
    )
}

fn pjm_points() -> impl Strategy<Value = Vec<PricePoint>> {
    points(
        vec![
            MarketRun::PjmDayAheadHourly,
            MarketRun::PjmRealTimeHourly,
            MarketRun::PjmRealTimeFiveMinute,
        ],
        (1u32..5_000_000).prop_map(|n| n.to_string()).boxed(),
    )
}

fn gmt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S-00:00").to_string()
}

/// One row per component, in a shuffled column order and shuffled row order.
fn caiso_csv(points: &[PricePoint], column_order: &[usize], row_order: &[usize]) -> String {
    let price_col = match points.first().map(|p| p.run) {
        Some(MarketRun::CaisoRtpd) => "PRC",
        Some(MarketRun::CaisoRtm) => "VALUE",
        _ => "MW",
    };
    let names = [
        "INTERVALSTARTTIME_GMT",
        "INTERVALENDTIME_GMT",
        "OPR_DT",
        "NODE",
        "MARKET_RUN_ID",
        "LMP_TYPE",
        price_col,
        "GROUP",
    ];
    let mut rows: Vec<[String; 8]> = Vec::new();
    for p in points {
        for (ty, v) in [
            ("LMP", Some(p.lmp)),
            ("MCE", p.energy),
            ("MCC", p.congestion),
            ("MCL", p.loss),
        ] {
            if let Some(v) = v {
                rows.push([
                    gmt(p.interval.start()),
                    gmt(p.interval.end()),
                    p.interval.start().format("%Y-%m-%d").to_string(),
                    p.node.to_string(),
                    p.run.name().to_owned(),
                    ty.to_owned(),
                    v.as_per_megawatt_hour().to_string(),
                    "1".to_owned(),
                ]);
            }
        }
    }
    let mut out = column_order
        .iter()
        .map(|&c| names[c])
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    let n = rows.len();
    let mut order: Vec<usize> = (0..n).collect();
    for (i, &r) in row_order.iter().enumerate().take(n) {
        order.swap(i, r % n.max(1));
    }
    for i in order {
        let line: Vec<&str> = column_order.iter().map(|&c| rows[i][c].as_str()).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn caiso_xml(points: &[PricePoint]) -> String {
    let report = match points.first().map(|p| p.run) {
        Some(MarketRun::CaisoRtpd) => "PRC_RTPD_LMP",
        Some(MarketRun::CaisoRtm) => "PRC_INTVL_LMP",
        Some(MarketRun::CaisoHasp) => "PRC_HASP_LMP",
        _ => "PRC_LMP",
    };
    let mut by_item: BTreeMap<&str, String> = BTreeMap::new();
    for p in points {
        for (item, v) in [
            ("LMP_PRC", Some(p.lmp)),
            ("LMP_ENE_PRC", p.energy),
            ("LMP_CONG_PRC", p.congestion),
            ("LMP_LOSS_PRC", p.loss),
        ] {
            if let Some(v) = v {
                by_item.entry(item).or_default().push_str(&format!(
                    "<REPORT_DATA><DATA_ITEM>{item}</DATA_ITEM><RESOURCE_NAME>{}</RESOURCE_NAME>\
                     <INTERVAL_START_GMT>{}</INTERVAL_START_GMT><INTERVAL_END_GMT>{}</INTERVAL_END_GMT>\
                     <VALUE>{}</VALUE></REPORT_DATA>\n",
                    p.node,
                    gmt(p.interval.start()),
                    gmt(p.interval.end()),
                    v.as_per_megawatt_hour()
                ));
            }
        }
    }
    let mut out = String::from(
        "<?xml version=\"1.0\"?>\n<OASISReport xmlns=\"http://www.caiso.com/soa/OASISReport_v1.xsd\"><MessagePayload><RTO><name>CAISO</name>\n",
    );
    for body in by_item.values() {
        out.push_str(&format!(
            "<REPORT_ITEM><REPORT_HEADER><REPORT>{report}</REPORT></REPORT_HEADER>\n{body}</REPORT_ITEM>\n"
        ));
    }
    out.push_str("</RTO></MessagePayload></OASISReport>\n");
    out
}

fn suffix(p: &PricePoint) -> &'static str {
    if p.run == MarketRun::PjmDayAheadHourly {
        "da"
    } else {
        "rt"
    }
}

fn pjm_json(points: &[PricePoint]) -> String {
    let items: Vec<serde_json::Value> = points
        .iter()
        .map(|p| {
            let s = suffix(p);
            let num = |v: Option<Price>| v.map(|v| v.as_per_megawatt_hour());
            serde_json::json!({
                "datetime_beginning_utc": p.interval.start().format("%Y-%m-%dT%H:%M:%S").to_string(),
                "pnode_id": p.node.as_str().parse::<u64>().unwrap(),
                format!("total_lmp_{s}"): p.lmp.as_per_megawatt_hour(),
                format!("system_energy_price_{s}"): num(p.energy),
                format!("congestion_price_{s}"): num(p.congestion),
                format!("marginal_loss_price_{s}"): num(p.loss),
                "row_is_current": true,
            })
        })
        .collect();
    serde_json::json!({"items": items, "totalRows": points.len()}).to_string()
}

fn pjm_csv(points: &[PricePoint]) -> String {
    let s = points.first().map_or("da", suffix);
    let mut out = format!(
        "datetime_beginning_utc,pnode_id,total_lmp_{s},system_energy_price_{s},congestion_price_{s},marginal_loss_price_{s}\n"
    );
    let txt = |v: Option<Price>| {
        v.map(|v| v.as_per_megawatt_hour().to_string())
            .unwrap_or_default()
    };
    for p in points {
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            p.interval.start().format("%-m/%-d/%Y %-I:%M:%S %p"),
            p.node,
            p.lmp.as_per_megawatt_hour(),
            txt(p.energy),
            txt(p.congestion),
            txt(p.loss)
        ));
    }
    out
}

proptest! {
    #[test]
    fn caiso_csv_round_trips(
        points in caiso_points(),
        columns in Just((0..8).collect::<Vec<usize>>()).prop_shuffle(),
        shuffle in prop::collection::vec(0usize..1000, 0..200),
    ) {
        let text = caiso_csv(&points, &columns, &shuffle);
        let out = parse_caiso_csv(text.as_bytes(), &ParseOptions::default()).unwrap();
        prop_assert!(out.skipped.is_empty());
        prop_assert_eq!(out.points, sorted(points));
    }

    #[test]
    fn caiso_xml_round_trips(points in caiso_points()) {
        let text = caiso_xml(&points);
        let out = parse_caiso_xml(text.as_bytes(), &ParseOptions::default()).unwrap();
        prop_assert_eq!(out.points, sorted(points));
    }

    #[test]
    fn pjm_json_and_csv_round_trip(points in pjm_points()) {
        let run = points.first().map_or(MarketRun::PjmDayAheadHourly, |p| p.run);
        let opts = ParseOptions::default().with_run(run);
        let out = parse_pjm_json(pjm_json(&points).as_bytes(), &opts).unwrap();
        prop_assert_eq!(&out.points, &sorted(points.clone()));
        let out = parse_pjm_csv(pjm_csv(&points).as_bytes(), &opts).unwrap();
        prop_assert_eq!(&out.points, &sorted(points));
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_all(&bytes);
    }

    #[test]
    fn random_text_with_format_prefixes_never_panics(
        prefix in prop::sample::select(vec!["{\"items\":[", "[{", "<OASISReport>", "INTERVALSTARTTIME_GMT,", "datetime_beginning_utc,pnode_id,total_lmp_rt\n", "PK\u{3}\u{4}"]),
        rest in "[ -~\n]{0,300}",
    ) {
        parse_all(format!("{prefix}{rest}").as_bytes());
    }

    #[test]
    fn truncated_and_mutated_fixtures_never_panic(
        which in 0..FIXTURES.len(),
        cut in 0.0f64..1.0,
        edits in prop::collection::vec((0.0f64..1.0, any::<u8>()), 0..4),
    ) {
        let mut bytes = fixture(FIXTURES[which]);
        let n = (bytes.len() as f64 * cut) as usize;
        parse_all(&bytes[..n]);
        for (at, b) in edits {
            let i = ((bytes.len() as f64) * at) as usize;
            if i < bytes.len() {
                bytes[i] = b;
            }
        }
        parse_all(&bytes);
    }
}

#[test]
fn generated_day_across_fall_back_parses() {
    // 25 hours of DAM prices for one node on the CAISO fall-back day.
    let day = gridflex_core::OperatingDay::new(
        gridflex_core::MarketZone::Caiso,
        chrono::NaiveDate::from_ymd_opt(2024, 11, 3).unwrap(),
    )
    .unwrap();
    let points: Vec<PricePoint> = day
        .intervals(TimeDelta::hours(1))
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, iv)| {
            PricePoint::new(
                MarketRun::CaisoDam,
                PricingNodeId::new("N").unwrap(),
                iv,
                Price::per_megawatt_hour(i as f64).unwrap(),
            )
        })
        .collect();
    let text = caiso_csv(&points, &[0, 1, 2, 3, 4, 5, 6, 7], &[]);
    let out = parse_caiso_csv(text.as_bytes(), &ParseOptions::default()).unwrap();
    assert_eq!(out.points.len(), 25);
    assert_eq!(out.points, points);
}

/// Everything a parse says, as text: points, skips with where and why, or the error.
fn outcome(
    r: Result<gridflex_signals::parse::ParseOutput, gridflex_signals::SignalError>,
) -> String {
    match r {
        Ok(o) => {
            let skipped: Vec<String> = o
                .skipped
                .iter()
                .map(|s| format!("{} | {}", s.at, s.reason))
                .collect();
            format!("{:?}\n{}\n{skipped:#?}", o.points, o.skipped_count)
        }
        Err(e) => format!("error: {e}"),
    }
}

/// One fault applied to a line of a generated CAISO CSV.
fn fault(line: &str, kind: u8, pick: usize) -> String {
    let mut fields: Vec<String> = line.split(',').map(str::to_owned).collect();
    let n = fields.len();
    match kind {
        0 => fields[pick % n] = "x#1".to_owned(),
        1 => {
            fields.remove(pick % n);
        }
        2 => fields.push("extra".to_owned()),
        3 => fields[pick % n].clear(),
        _ => fields[pick % n] = format!(" {} ", fields[pick % n]),
    }
    fields.join(",")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The plain fast path and the csv crate give the same points, skips and errors,
    /// with the same lines, on files with every kind of fault: the second file is the
    /// first with its header's first name quoted, which sends all of it to the csv crate.
    /// (Faults that add lines are left out and CRLF files compared with their LF twin:
    /// the csv crate's line numbers drift after blank lines and CRLF ends, while the
    /// fast path counts lines as an editor does; `an_empty_line_counts_as_a_line`
    /// checks that.)
    #[test]
    fn the_plain_fast_path_agrees_with_the_csv_crate(
        points in caiso_points(),
        faults in prop::collection::vec((0usize..200, 0u8..5, 0usize..8), 0..6),
        crlf in any::<bool>(),
    ) {
        let text = caiso_csv(&points, &(0..8).collect::<Vec<_>>(), &[]);
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        for (at, kind, pick) in faults {
            if lines.len() > 1 {
                let i = 1 + at % (lines.len() - 1);
                lines[i] = fault(&lines[i], kind, pick);
            }
        }
        let plain = lines.join("\n") + "\n";
        let quoted = format!("\"{}", plain.replacen(',', "\",", 1));
        for opts in [ParseOptions::strict(), ParseOptions::lenient()] {
            let fast = outcome(parse_caiso_csv(plain.as_bytes(), &opts));
            prop_assert_eq!(&fast, &outcome(parse_caiso_csv(quoted.as_bytes(), &opts)));
            if crlf {
                // The csv crate miscounts lines ended by CRLF; the fast path reads them
                // exactly as LF lines.
                let crlf = lines.join("\r\n") + "\r\n";
                prop_assert_eq!(&fast, &outcome(parse_caiso_csv(crlf.as_bytes(), &opts)));
            }
        }
    }
}

/// A file that stops being plain after the first chunk: the rows before and after the
/// switch are all read, with their own line numbers.
#[test]
fn a_file_that_turns_quoted_after_a_megabyte_reads_the_same() {
    let header = "INTERVALSTARTTIME_GMT,INTERVALENDTIME_GMT,NODE,MARKET_RUN_ID,LMP_TYPE,MW\n";
    let mut plain = String::from(header);
    let mut n = 0;
    while plain.len() < 3 << 20 {
        let t = base() + TimeDelta::hours(n / 500);
        let node = format!("N{}", n % 500);
        plain.push_str(&format!(
            "{},{},{node},DAM,LMP,{}.5\n",
            gmt(t),
            gmt(t + TimeDelta::hours(1)),
            n % 97
        ));
        n += 1;
    }
    // A bad row before the switch and one after, to check line numbers on both paths.
    plain.push_str("2024-11-02T20:00:00-00:00,2024-11-02T21:00:00-00:00,N0,DAM,LMP,oops\n");
    let switched = format!(
        "{plain}\"{}\",2024-11-02T21:00:00-00:00,Q,DAM,LMP,1\nbad,row\n",
        gmt(base())
    );
    let all_general = format!("\"{}", switched.replacen(',', "\",", 1));
    for opts in [ParseOptions::strict(), ParseOptions::lenient()] {
        let fast = outcome(parse_caiso_csv(switched.as_bytes(), &opts));
        assert_eq!(
            fast,
            outcome(parse_caiso_csv(all_general.as_bytes(), &opts))
        );
        assert!(fast.contains("line"), "{fast}");
    }
}

/// The fast path numbers lines as a text editor does, empty lines included.
#[test]
fn an_empty_line_counts_as_a_line() {
    let text = "INTERVALSTARTTIME_GMT,INTERVALENDTIME_GMT,NODE,MARKET_RUN_ID,LMP_TYPE,MW\n\n\
                2024-11-02T20:00:00-00:00,2024-11-02T21:00:00-00:00,N0,DAM,LMP,oops\n";
    let e = parse_caiso_csv(text.as_bytes(), &ParseOptions::strict()).unwrap_err();
    assert!(e.to_string().starts_with("line 3:"), "{e}");
}

fn zip_of(entries: &[(String, String)]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, body) in entries {
        w.start_file(name.as_str(), opts).unwrap();
        w.write_all(body.as_bytes()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// CSV entries `part0.csv`, `part1.csv`, ... each with `header`, the `lines` dealt
/// among `parts` of them in turn.
fn entries_of(header: &str, lines: &[impl AsRef<str>], parts: usize) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = (0..parts)
        .map(|k| (format!("part{k}.csv"), format!("{header}\n")))
        .collect();
    for (i, line) in lines.iter().enumerate() {
        let body = &mut entries[i % parts].1;
        body.push_str(line.as_ref());
        body.push('\n');
    }
    entries
}

/// The [`outcome`] of parsing `zip` with `opts` on one thread, then on two and three.
fn outcomes_on_threads(zip: &[u8], opts: ParseOptions) -> [String; 3] {
    [1usize, 2, 3].map(|threads| {
        let n = std::num::NonZeroUsize::new(threads).unwrap();
        outcome(parse_oasis_zip(Cursor::new(zip), &opts.with_threads(n)))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A zip read on several threads gives exactly what it gives on one: the same
    /// points, the same skipped rows (and examples) in the same order, the same first
    /// error, with rows of one point spread over entries and faults anywhere.
    #[test]
    fn zip_entries_read_on_threads_agree_with_one_thread(
        points in caiso_points(),
        parts in 1usize..5,
        faults in prop::collection::vec((0usize..400, 0u8..5, 0usize..8), 0..8),
        repeats in prop::collection::vec(0usize..400, 0..4),
        repeat_bad in 0usize..450,
    ) {
        let text = caiso_csv(&points, &(0..8).collect::<Vec<_>>(), &[]);
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let header = lines.remove(0);
        for (at, kind, pick) in faults {
            if !lines.is_empty() {
                let i = at % lines.len();
                lines[i] = fault(&lines[i], kind, pick);
            }
        }
        // Rows given again (a second row of a component, found by the gathering, so
        // on threads when a recording is replayed), and enough bad rows, sometimes, to
        // pass the kept examples.
        if !lines.is_empty() {
            let again: Vec<String> = repeats.iter().map(|&i| lines[i % lines.len()].clone()).collect();
            lines.extend(again);
        }
        lines.extend((0..repeat_bad).map(|i| format!("bad{i},row")));
        let zip = zip_of(&entries_of(&header, &lines, parts));
        for opts in [ParseOptions::strict(), ParseOptions::lenient()] {
            let [one, two, three] = outcomes_on_threads(&zip, opts);
            prop_assert_eq!(&one, &two);
            prop_assert_eq!(&one, &three);
        }
    }
}

/// Entries longer than the chunks they are parsed in (two of about 1.5 MB), damaged at
/// places spread over the archive (the compressed data of each entry, their headers,
/// the directory): on threads, the same points or the same first error, its place
/// included, as on one.
#[test]
fn a_long_damaged_zip_reads_alike_on_threads() {
    let run = MarketRun::CaisoDam;
    let entry = |k: u32| {
        let points: Vec<PricePoint> = (0..3_600u32)
            .map(|i| {
                let start = base() + run.nominal_length() * (i % 24) as i32;
                let lmp = Price::per_megawatt_hour(f64::from(i * 7 % 9_000) / 8.0 + 12.5).unwrap();
                PricePoint::new(
                    run,
                    PricingNodeId::new(format!("NODE_{k}_{}", i / 24)).unwrap(),
                    Interval::starting_at(start, run.nominal_length()).unwrap(),
                    lmp,
                )
                .with_energy(Some(lmp))
                .with_congestion(Some(Price::per_megawatt_hour(-1.25).unwrap()))
                .with_loss(Some(Price::per_megawatt_hour(0.5).unwrap()))
            })
            .collect();
        (
            format!("part{k}.csv"),
            caiso_csv(&points, &(0..8).collect::<Vec<_>>(), &[]),
        )
    };
    let entries = [entry(0), entry(1)];
    assert!(entries.iter().all(|(_, text)| text.len() > 1 << 20));
    let whole = zip_of(&entries);
    for place in 0..16 {
        let mut zip = whole.clone();
        let i = (zip.len() * (2 * place + 1) / 32).min(zip.len() - 1);
        zip[i] ^= 0x5a;
        for opts in [ParseOptions::strict(), ParseOptions::lenient()] {
            let [one, two, three] = outcomes_on_threads(&zip, opts);
            assert!(one == two && one == three, "byte {i} damaged");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A damaged archive (a byte changed anywhere: a header, the compressed data, a
    /// checksum) gives on threads what it gives on one: the same points, or the same
    /// first error, its place included.
    #[test]
    fn a_damaged_zip_reads_alike_on_threads(
        points in caiso_points(),
        parts in 1usize..4,
        at in 0.0f64..1.0,
        xor in 1u8..=255,
    ) {
        let text = caiso_csv(&points, &(0..8).collect::<Vec<_>>(), &[]);
        let mut lines: Vec<&str> = text.lines().collect();
        let header = lines.remove(0);
        let mut zip = zip_of(&entries_of(header, &lines, parts));
        let i = ((zip.len() as f64 * at) as usize).min(zip.len() - 1);
        zip[i] ^= xor;
        for opts in [ParseOptions::strict(), ParseOptions::lenient()] {
            let [one, two, three] = outcomes_on_threads(&zip, opts);
            prop_assert_eq!(&one, &two);
            prop_assert_eq!(&one, &three);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// XML entries too: the same file twice in one zip (every component a duplicate in
    /// the second entry) and a damaged copy read on threads give one thread's result,
    /// locations (element and byte) included.
    #[test]
    fn xml_zip_entries_read_on_threads_agree_with_one_thread(
        points in caiso_points(),
        cut in 0.5f64..1.0,
    ) {
        let xml = caiso_xml(&points);
        let damaged = xml[..(xml.len() as f64 * cut) as usize].to_owned();
        let twice = [("a.xml".to_owned(), xml.clone()), ("b.xml".to_owned(), xml)];
        // Without the damaged copy too: its error ends every parse, lenient ones
        // included, so the duplicates' skipped rows (and where they are) are only
        // compared without it.
        let mut all = twice.to_vec();
        all.push(("c.xml".to_owned(), damaged));
        for zip in [zip_of(&twice), zip_of(&all)] {
            for opts in [ParseOptions::strict(), ParseOptions::lenient()] {
                let one = outcome(parse_oasis_zip(
                    Cursor::new(zip.as_slice()),
                    &opts.with_threads(std::num::NonZeroUsize::MIN),
                ));
                let two = outcome(parse_oasis_zip(
                    Cursor::new(zip.as_slice()),
                    &opts.with_threads(std::num::NonZeroUsize::new(2).unwrap()),
                ));
                prop_assert_eq!(one, two);
            }
        }
    }
}
