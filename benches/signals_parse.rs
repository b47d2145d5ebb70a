//! gridflex-signals benches: parse throughput (MB/s) of each operator format on
//! generated files laid out like the real ones (reference `markets.md` §f).
//!
//! Goal (DESIGN.md): at least 100 MB/s for CSV and JSON.

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{Cursor, Write as _};
use std::num::NonZeroUsize;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gridflex_signals::parse::{
    ParseOptions, parse_caiso_csv, parse_caiso_xml, parse_oasis_zip, parse_pjm_csv, parse_pjm_json,
    parse_pjm_json_bytes, parse_pjm_json_seekable, parse_prices_seekable,
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

/// Nodes in the realistic RTM file: with 300 intervals and 5 components, 444,000 rows
/// and about 72 MB, like the whole-system OASIS download the issue measured.
const RTM_NODES: usize = 296;

/// A CAISO OASIS `PRC_INTVL_LMP` (RTM, 5-minute) download for one operating day that is
/// the fall-back DST day (2024-11-03 Pacific: 25 hours, 300 intervals), every node and
/// all five components, one CSV per component as OASIS zips them.
fn oasis_rtm_dst_day() -> Vec<(String, String)> {
    const HEADER: &str = "INTERVALSTARTTIME_GMT,INTERVALENDTIME_GMT,OPR_DT,OPR_HR,NODE_ID_XML,NODE_ID,NODE,MARKET_RUN_ID,LMP_TYPE,XML_DATA_ITEM,PNODE_RESMRID,GRP_TYPE,POS,VALUE,OPR_INTERVAL,GROUP\n";
    let names: Vec<String> = (0..RTM_NODES)
        .map(|n| {
            format!(
                "{}_{n:04}_7_B{}",
                ["ALAMT", "BELDEN", "CHINO", "DIABLO"][n % 4],
                n % 9
            )
        })
        .collect();
    let components = [
        ("LMP", "LMP_PRC"),
        ("MCE", "LMP_ENE_PRC"),
        ("MCC", "LMP_CONG_PRC"),
        ("MCL", "LMP_LOSS_PRC"),
        ("MGHG", "LMP_GHG_PRC"),
    ];
    // Operating day 2024-11-03 Pacific starts 07:00 GMT and has 25 hours.
    let day_start = 7 * 60;
    components
        .iter()
        .enumerate()
        .map(|(c, (ty, item))| {
            let mut s = String::from(HEADER);
            let mut g = 0u64;
            for i in 0..300 {
                let m = day_start + i * 5;
                let (d0, m0) = (3 + m / 1440, m % 1440);
                let (d1, m1) = (3 + (m + 5) / 1440, (m + 5) % 1440);
                let st = format!("2024-11-{d0:02}T{:02}:{:02}:00-00:00", m0 / 60, m0 % 60);
                let en = format!("2024-11-{d1:02}T{:02}:{:02}:00-00:00", m1 / 60, m1 % 60);
                // Local operating hour 1..=25 (hour 2 repeats as 3 on this day).
                let hr = i / 12 + 1;
                for (n, nd) in names.iter().enumerate() {
                    g += 1;
                    let v = price(n, i, c);
                    let _ = writeln!(
                        s,
                        "{st},{en},2024-11-03,{hr},{nd},{nd},{nd},RTM,{ty},{item},{nd},ALL,{},{v:.5},{},{g}",
                        c + 1,
                        i % 12 + 1
                    );
                }
            }
            (format!("20241103_20241104_PRC_INTVL_LMP_RTM_{item}_v3.csv"), s)
        })
        .collect()
}

fn zipped_all(files: &[(String, String)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, body) in files {
        w.start_file(name.as_str(), opts)
            .and_then(|()| w.write_all(body.as_bytes()).map_err(Into::into))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    w.finish().unwrap_or_else(|e| panic!("{e}")).into_inner()
}

/// The realistic operator files: a whole-system RTM day (DST) as one CSV and as
/// the OASIS zip of five CSVs.
fn oasis_realistic(c: &mut Criterion) {
    let opts = ParseOptions::default();
    let files = oasis_rtm_dst_day();
    let one: String = files
        .iter()
        .enumerate()
        .map(|(i, (_, body))| {
            if i == 0 {
                body.as_str()
            } else {
                body.split_once('\n').map_or("", |(_, rest)| rest)
            }
        })
        .collect();
    let points =
        |r: Result<usize, gridflex_signals::SignalError>| r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        points(parse_caiso_csv(one.as_bytes(), &opts).map(|o| o.points.len())),
        RTM_NODES * 300
    );
    let zip = zipped_all(&files);
    assert_eq!(
        points(parse_oasis_zip(Cursor::new(zip.as_slice()), &opts).map(|o| o.points.len())),
        RTM_NODES * 300
    );
    // For comparisons with other tools (pandas): the generated files, written on request.
    if let Some(dir) = std::env::var_os("GRIDFLEX_BENCH_DUMP") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("oasis_rtm_dst_day.csv"), &one)
            .and_then(|()| std::fs::write(dir.join("oasis_rtm_dst_day.zip"), &zip))
            .unwrap_or_else(|e| panic!("GRIDFLEX_BENCH_DUMP: {e}"));
    }

    let mut g = c.benchmark_group("oasis rtm dst day");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(one.len() as u64));
    g.bench_function(
        format!(
            "csv, {} rows, {} MB",
            RTM_NODES * 300 * 5,
            one.len() / 1_000_000
        ),
        |b| b.iter(|| parse_caiso_csv(black_box(one.as_bytes()), &opts).map(|o| o.points.len())),
    );
    // The same bytes in a file (written here, in the page cache, removed after), read
    // the way `signals parse` reads one: what pandas' `read_csv(path)` is compared with
    // (benches/pandas/oasis_csv.py, both in a warm process).
    let path = std::env::temp_dir().join(format!("gridflex-bench-{}.csv", std::process::id()));
    std::fs::write(&path, &one).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    g.bench_function("the same csv from a file (parse_prices_seekable)", |b| {
        b.iter(|| {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{e}"));
            parse_prices_seekable(file, &opts).map(|o| o.points.len())
        })
    });
    let _ = std::fs::remove_file(&path);
    // Throughput counted in the uncompressed CSV bytes.
    for threads in [1, 2] {
        let opts = opts.with_threads(NonZeroUsize::new(threads).unwrap_or(NonZeroUsize::MIN));
        g.bench_function(format!("zip of 5 csvs, {threads} thread(s)"), |b| {
            b.iter(|| {
                parse_oasis_zip(Cursor::new(black_box(zip.as_slice())), &opts)
                    .map(|o| o.points.len())
            })
        });
    }
    g.finish();
}

/// A PJM Data Miner `rt_fivemin_hrl_lmps` download like the issue's: 284,100 items
/// (all 11,364 pricing nodes... scaled to 947 nodes x 300 five-minute intervals), about
/// 100 MB, every field Data Miner writes.
fn dataminer_realistic() -> String {
    const NODES: usize = 947;
    let mut s = String::from(
        "{\"links\":[{\"rel\":\"self\",\"href\":\"https://api.pjm.com/api/v1/rt_fivemin_hrl_lmps?startRow=1&rowCount=300000\"}],\"items\":[",
    );
    let mut first = true;
    for i in 0..300 {
        let m = 4 * 60 + i * 5; // from 04:00 UTC (00:00 EDT)
        let utc = format!(
            "2024-07-{:02}T{:02}:{:02}:00",
            1 + m / 1440,
            m % 1440 / 60,
            m % 60
        );
        let l = m - 4 * 60;
        let ept = format!(
            "2024-07-{:02}T{:02}:{:02}:00",
            1 + l / 1440,
            l % 1440 / 60,
            l % 60
        );
        for n in 0..NODES {
            if !first {
                s.push(',');
            }
            first = false;
            let id = 1_000_000 + n * 37;
            let p = [
                price(n, i, 0),
                price(n, i, 1),
                price(n, i, 2),
                price(n, i, 3),
            ];
            let _ = write!(
                s,
                "{{\"datetime_beginning_utc\":\"{utc}\",\"datetime_beginning_ept\":\"{ept}\",\"pnode_id\":{id},\"pnode_name\":\"{}\",\"voltage\":\"{}\",\"equipment\":\"{}\",\"type\":\"{}\",\"zone\":\"{}\",\"system_energy_price_rt\":{:.6},\"total_lmp_rt\":{:.6},\"congestion_price_rt\":{:.6},\"marginal_loss_price_rt\":{:.6},\"row_is_current\":true,\"version_nbr\":1}}",
                [
                    "BRANDONSH13 KV  BR2",
                    "AECO",
                    "PEACHBTM",
                    "CONEMAUG500 KV  UNIT1"
                ][n % 4],
                ["13 KV", "500 KV", "230 KV", "138 KV"][n % 4],
                ["BR2", "", "UNIT1", "TX1"][n % 4],
                ["GEN", "ZONE", "LOAD", "BUS"][n % 4],
                ["PECO", "AECO", "BGE", "DOM"][n % 4],
                p[1],
                p[0],
                p[2],
                p[3]
            );
        }
    }
    s.push_str("],\"searchSpecification\":{\"rowCount\":300000,\"startRow\":1,\"isActiveMetadata\":true},\"totalRows\":284100}");
    s
}

fn dataminer(c: &mut Criterion) {
    let opts = ParseOptions::default();
    let json = dataminer_realistic();
    let n = parse_pjm_json(json.as_bytes(), &opts)
        .map(|o| o.points.len())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 284_100);
    if let Some(dir) = std::env::var_os("GRIDFLEX_BENCH_DUMP") {
        std::fs::write(std::path::Path::new(&dir).join("dataminer.json"), &json)
            .unwrap_or_else(|e| panic!("GRIDFLEX_BENCH_DUMP: {e}"));
    }
    let mut g = c.benchmark_group("data miner");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function(
        format!("json, 284,100 items, {} MB", json.len() / 1_000_000),
        |b| b.iter(|| parse_pjm_json(black_box(json.as_bytes()), &opts).map(|o| o.points.len())),
    );
    g.bench_function("the same, in memory (parse_pjm_json_bytes)", |b| {
        b.iter(|| parse_pjm_json_bytes(black_box(json.as_bytes()), &opts).map(|o| o.points.len()))
    });
    // The same bytes in a file (written here, in the page cache, removed after): what
    // `signals parse` reads.
    let path = std::env::temp_dir().join(format!("gridflex-bench-{}.json", std::process::id()));
    std::fs::write(&path, &json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    g.bench_function(
        "the same, streamed from a file (parse_pjm_json_seekable)",
        |b| {
            b.iter(|| {
                let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{e}"));
                parse_pjm_json_seekable(file, &opts).map(|o| o.points.len())
            })
        },
    );
    g.bench_function("the same, from a file read whole (parse_pjm_json)", |b| {
        b.iter(|| {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{e}"));
            parse_pjm_json(file, &opts).map(|o| o.points.len())
        })
    });
    let _ = std::fs::remove_file(&path);
    g.finish();
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

criterion_group!(
    benches,
    sanity,
    parse_throughput,
    oasis_realistic,
    dataminer
);
criterion_main!(benches);
