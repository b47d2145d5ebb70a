//! gridflex-signals benches: parse throughput (MB/s) of each operator format on
//! generated files laid out like the real ones (reference `markets.md` §f).
//!
//! Goal (DESIGN.md): at least 100 MB/s for CSV and JSON.

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{Cursor, Write as _};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gridflex_signals::parse::{
    ParseOptions, parse_caiso_csv, parse_caiso_xml, parse_oasis_zip, parse_pjm_csv, parse_pjm_json,
};

const NODES: usize = 200;
const INTERVALS: usize = 96; // one day of 15-minute RTPD intervals
const COMPONENTS: [(&str, &str); 4] = [
    ("LMP", "LMP_PRC"),
    ("MCE", "LMP_ENE_PRC"),
    ("MCC", "LMP_CONG_PRC"),
    ("MCL", "LMP_LOSS_PRC"),
];

fn node(n: usize) -> String {
    format!("NODE_{n:05}_7_N001")
}

fn stamp(i: usize) -> (String, String) {
    let m = i * 15;
    let s = format!("2024-07-01T{:02}:{:02}:00-00:00", m / 60, m % 60);
    let e = (m + 15) % 1440;
    let day = if m + 15 >= 1440 { 2 } else { 1 };
    let e = format!("2024-07-0{day}T{:02}:{:02}:00-00:00", e / 60, e % 60);
    (s, e)
}

fn price(n: usize, i: usize, c: usize) -> f64 {
    ((n * 7919 + i * 104_729 + c * 31) % 20_000) as f64 / 100.0 - 20.0
}

/// PRC_RTPD_LMP layout: one row per component, grouped by component.
fn caiso_csv() -> String {
    let mut s = String::from(
        "INTERVALSTARTTIME_GMT,INTERVALENDTIME_GMT,OPR_DT,OPR_HR,NODE_ID_XML,NODE_ID,NODE,MARKET_RUN_ID,LMP_TYPE,XML_DATA_ITEM,PNODE_RESMRID,GRP_TYPE,POS,PRC,OPR_INTERVAL,GROUP\n",
    );
    let mut g = 0;
    for (c, (ty, item)) in COMPONENTS.iter().enumerate() {
        for i in 0..INTERVALS {
            let (st, en) = stamp(i);
            for n in 0..NODES {
                let nd = node(n);
                g += 1;
                let _ = writeln!(
                    s,
                    "{st},{en},2024-07-01,{},{nd},{nd},{nd},RTPD,{ty},{item},{nd},ALL,1,{},{},{g}",
                    i / 4 + 1,
                    price(n, i, c),
                    i % 4 + 1
                );
            }
        }
    }
    s
}

fn caiso_xml() -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\"?>\n<OASISReport xmlns=\"http://www.caiso.com/soa/OASISReport_v1.xsd\"><MessagePayload><RTO><name>CAISO</name>\n",
    );
    for (c, (_, item)) in COMPONENTS.iter().enumerate() {
        s.push_str("<REPORT_ITEM><REPORT_HEADER><SYSTEM>OASIS</SYSTEM><TZ>PPT</TZ><REPORT>PRC_RTPD_LMP</REPORT><MKT_TYPE>RTPD</MKT_TYPE><UOM>US$/MWh</UOM><INTERVAL>ENDING</INTERVAL><SEC_PER_INTERVAL>900</SEC_PER_INTERVAL></REPORT_HEADER>\n");
        for i in 0..INTERVALS / 4 {
            let (st, en) = stamp(i);
            for n in 0..NODES {
                let _ = writeln!(
                    s,
                    "<REPORT_DATA><DATA_ITEM>{item}</DATA_ITEM><RESOURCE_NAME>{}</RESOURCE_NAME><OPR_DATE>2024-07-01</OPR_DATE><INTERVAL_NUM>{}</INTERVAL_NUM><INTERVAL_START_GMT>{st}</INTERVAL_START_GMT><INTERVAL_END_GMT>{en}</INTERVAL_END_GMT><VALUE>{}</VALUE></REPORT_DATA>",
                    node(n),
                    i + 1,
                    price(n, i, c)
                );
            }
        }
        s.push_str("</REPORT_ITEM>\n");
    }
    s.push_str("</RTO></MessagePayload></OASISReport>\n");
    s
}

fn pjm_rows() -> impl Iterator<Item = (String, String, usize, [f64; 4])> {
    (0..INTERVALS / 2).flat_map(|i| {
        let m = i * 5;
        let utc = format!("2024-07-01T{:02}:{:02}:00", m / 60, m % 60);
        let ept = format!("2024-06-30T{:02}:{:02}:00", 20 + m / 60, m % 60);
        (0..NODES * 2).map(move |n| {
            (
                utc.clone(),
                ept.clone(),
                1_000_000 + n * 37,
                [
                    price(n, i, 0),
                    price(n, i, 1),
                    price(n, i, 2),
                    price(n, i, 3),
                ],
            )
        })
    })
}

fn pjm_json() -> String {
    let mut s = String::from(
        "{\"links\":[{\"rel\":\"self\",\"href\":\"https://api.pjm.com/api/v1/rt_fivemin_hrl_lmps?startRow=1&rowCount=50000\"}],\"items\":[",
    );
    for (k, (utc, ept, id, p)) in pjm_rows().enumerate() {
        if k > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"datetime_beginning_utc\":\"{utc}\",\"datetime_beginning_ept\":\"{ept}\",\"pnode_id\":{id},\"pnode_name\":\"NODE{id}\",\"voltage\":\"138 KV\",\"equipment\":\"TX1\",\"type\":\"BUS\",\"zone\":\"PECO\",\"system_energy_price_rt\":{},\"total_lmp_rt\":{},\"congestion_price_rt\":{},\"marginal_loss_price_rt\":{},\"row_is_current\":true,\"version_nbr\":1}}",
            p[1], p[0], p[2], p[3]
        );
    }
    s.push_str("],\"totalRows\":1}");
    s
}

fn pjm_csv() -> String {
    let mut s = String::from(
        "datetime_beginning_utc,datetime_beginning_ept,pnode_id,pnode_name,voltage,equipment,type,zone,system_energy_price_rt,total_lmp_rt,congestion_price_rt,marginal_loss_price_rt,row_is_current,version_nbr\n",
    );
    for (utc, ept, id, p) in pjm_rows() {
        let _ = writeln!(
            s,
            "{utc},{ept},{id},NODE{id},138 KV,TX1,BUS,PECO,{},{},{},{},TRUE,1",
            p[1], p[0], p[2], p[3]
        );
    }
    s
}

fn zipped(name: &str, body: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file(name, opts)
        .and_then(|()| w.write_all(body).map_err(Into::into))
        .unwrap_or_else(|e| panic!("{e}"));
    w.finish().unwrap_or_else(|e| panic!("{e}")).into_inner()
}

fn parse_throughput(c: &mut Criterion) {
    let opts = ParseOptions::default();
    let mut g = c.benchmark_group("parse");
    g.sample_size(10);

    let csv = caiso_csv();
    g.throughput(Throughput::Bytes(csv.len() as u64));
    g.bench_function("caiso_csv", |b| {
        b.iter(|| parse_caiso_csv(black_box(csv.as_bytes()), &opts).map(|o| o.points.len()))
    });

    let zip = zipped("PRC_RTPD_LMP.csv", csv.as_bytes());
    // Throughput counted in uncompressed CSV bytes.
    g.bench_function("oasis_zip_csv", |b| {
        b.iter(|| {
            parse_oasis_zip(Cursor::new(black_box(zip.as_slice())), &opts).map(|o| o.points.len())
        })
    });

    let xml = caiso_xml();
    g.throughput(Throughput::Bytes(xml.len() as u64));
    g.bench_function("caiso_xml", |b| {
        b.iter(|| parse_caiso_xml(black_box(xml.as_bytes()), &opts).map(|o| o.points.len()))
    });

    let json = pjm_json();
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("pjm_json", |b| {
        b.iter(|| parse_pjm_json(black_box(json.as_bytes()), &opts).map(|o| o.points.len()))
    });

    let pcsv = pjm_csv();
    g.throughput(Throughput::Bytes(pcsv.len() as u64));
    g.bench_function("pjm_csv", |b| {
        b.iter(|| parse_pjm_csv(black_box(pcsv.as_bytes()), &opts).map(|o| o.points.len()))
    });
    g.finish();
}

/// Checks once, outside timing, that the generated inputs parse completely.
fn sanity(c: &mut Criterion) {
    let opts = ParseOptions::default();
    let n = |r: Result<usize, gridflex_signals::SignalError>| r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        n(parse_caiso_csv(caiso_csv().as_bytes(), &opts).map(|o| o.points.len())),
        NODES * INTERVALS
    );
    assert_eq!(
        n(parse_caiso_xml(caiso_xml().as_bytes(), &opts).map(|o| o.points.len())),
        NODES * INTERVALS / 4
    );
    assert_eq!(
        n(parse_pjm_json(pjm_json().as_bytes(), &opts).map(|o| o.points.len())),
        NODES * INTERVALS
    );
    assert_eq!(
        n(parse_pjm_csv(pjm_csv().as_bytes(), &opts).map(|o| o.points.len())),
        NODES * INTERVALS
    );
    let _ = c;
}

criterion_group!(benches, sanity, parse_throughput);
criterion_main!(benches);
