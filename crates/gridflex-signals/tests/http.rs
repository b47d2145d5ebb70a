//! HTTP pollers against a scripted server on 127.0.0.1 serving fixture files; no test
//! touches the internet, and back-off waits run on a virtual clock.
#![cfg(feature = "http")]

use std::io::{BufRead, BufReader, Cursor, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex_core::clock::{Clock, ManualClock, TokioClock};
use gridflex_core::{Interval, PricingNodeId};
use gridflex_signals::http::{
    Backoff, DataMinerPoller, FetchPrices, OasisPoller, PollingSource, UreqClient,
};
use gridflex_signals::source::SignalSource;
use gridflex_signals::{GridSignal, MarketRun, SignalError};

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn reply(status: u16, body: impl Into<Vec<u8>>) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.into(),
    }
}

/// A received request: the request target and the header lines (lower-cased names).
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
}

struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `script(base_url)` in order, one reply per connection, then stops.
    fn start(script: impl FnOnce(&str) -> Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let replies = script(&base);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            for r in replies {
                let (mut stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                log.lock().unwrap().push(Seen { target, headers });
                let mut head = format!(
                    "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    r.status,
                    r.body.len()
                );
                for (k, v) in &r.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(&r.body).unwrap();
                stream.flush().unwrap();
            }
        });
        Server {
            base,
            seen,
            thread: Some(thread),
        }
    }

    /// Waits for the script to finish and returns what was received.
    fn finish(mut self) -> Vec<Seen> {
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.seen.lock().unwrap().clone()
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn zip_of(name: &str, body: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(body).unwrap();
    w.finish().unwrap().into_inner()
}

fn client() -> UreqClient {
    UreqClient::without_proxy(Duration::from_secs(10))
}

fn caiso_nodes() -> Vec<PricingNodeId> {
    vec![
        PricingNodeId::new("0096WD_7_N001").unwrap(),
        PricingNodeId::new("TH_SP15_GEN-APND").unwrap(),
    ]
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2022, 2, 1, 15, 0, 0).unwrap()
}

#[tokio::test(start_paused = true)]
async fn oasis_backs_off_on_429_then_parses_the_zip() {
    let server = Server::start(|_| {
        let mut limited = reply(429, "Too Many Requests");
        limited.headers.push(("Retry-After".into(), "7".into()));
        vec![
            limited,
            reply(
                200,
                zip_of("PRC_LMP.csv", &fixture("caiso_dam_prc_lmp.csv")),
            ),
        ]
    });
    let clock = TokioClock::starting_at(t0());
    let poller = OasisPoller::new(client(), clock.clone(), MarketRun::CaisoDam, caiso_nodes())
        .unwrap()
        .with_base_url(format!("{}/oasisapi/SingleZip", server.base));
    let window = Interval::starting_at(t0(), TimeDelta::hours(2)).unwrap();
    let out = poller.fetch(window).await.unwrap();
    assert_eq!(out.points.len(), 4);
    // The back-off waited exactly Retry-After on the virtual clock.
    assert_eq!(clock.now(), t0() + TimeDelta::seconds(7));
    let seen = server.finish();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].target,
        "/oasisapi/SingleZip?queryname=PRC_LMP&startdatetime=20220201T15:00-0000\
         &enddatetime=20220201T17:00-0000&version=12&market_run_id=DAM\
         &node=0096WD_7_N001,TH_SP15_GEN-APND&resultformat=6"
    );
    assert_eq!(seen[0].target, seen[1].target);
}

#[tokio::test(start_paused = true)]
async fn oasis_no_data_is_typed_and_gives_up_after_retries() {
    let server = Server::start(|_| {
        vec![
            reply(200, zip_of("error.xml", &fixture("oasis_no_data.xml"))),
            reply(200, zip_of("error.xml", &fixture("oasis_no_data.xml"))),
            reply(429, ""),
            reply(429, ""),
            reply(429, ""),
        ]
    });
    let clock = TokioClock::starting_at(t0());
    let poller = OasisPoller::new(client(), clock.clone(), MarketRun::CaisoRtm, caiso_nodes())
        .unwrap()
        .with_base_url(&server.base)
        .with_backoff(Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(10),
            2,
        ));
    let window = Interval::starting_at(t0(), TimeDelta::hours(1)).unwrap();
    assert!(matches!(
        poller.fetch(window).await,
        Err(SignalError::NoData { code: 1000, .. })
    ));
    // As a price fetcher, "no data" is an empty answer.
    assert!(poller.fetch_prices(window).await.unwrap().points.is_empty());
    let err = poller.fetch(window).await.unwrap_err();
    assert!(
        matches!(
            err,
            SignalError::Http {
                status: Some(429),
                ..
            }
        ),
        "{err}"
    );
    // Waited 1 s then 2 s before giving up.
    assert_eq!(clock.now(), t0() + TimeDelta::seconds(3));
    let seen = server.finish();
    assert!(seen[2].target.contains("queryname=PRC_INTVL_LMP"));
    assert!(seen[2].target.contains("version=3&market_run_id=RTM"));
}

fn pjm_page(items: &[(&str, u32, f64)], next: Option<String>) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|(utc, node, lmp)| {
            format!(
                r#"{{"datetime_beginning_utc":"{utc}","pnode_id":{node},"total_lmp_da":{lmp},"row_is_current":true}}"#
            )
        })
        .collect();
    let links = next
        .map(|n| format!(r#"{{"rel":"next","href":"{n}"}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"links":[{links}],"items":[{}],"totalRows":3}}"#,
        items.join(",")
    )
}

#[tokio::test]
async fn data_miner_sends_the_key_and_follows_next_links() {
    let server = Server::start(|base| {
        vec![
            reply(
                200,
                pjm_page(
                    &[
                        ("2024-07-01T04:00:00", 1, 27.95),
                        ("2024-07-01T04:00:00", 51291, 26.4),
                    ],
                    Some(format!("{base}/api/v1/da_hrl_lmps?rowCount=2&startRow=3")),
                ),
            ),
            reply(
                200,
                pjm_page(
                    &[
                        ("2024-07-01T05:00:00", 1, 25.85),
                        ("2024-07-01T06:00:00", 1, 30.0),
                    ],
                    None,
                ),
            ),
        ]
    });
    let start = Utc.with_ymd_and_hms(2024, 7, 1, 4, 0, 0).unwrap();
    let clock = ManualClock::new(start);
    let nodes = vec![
        PricingNodeId::new("1").unwrap(),
        PricingNodeId::new("51291").unwrap(),
    ];
    let poller = DataMinerPoller::new(
        client(),
        clock,
        MarketRun::PjmDayAheadHourly,
        nodes,
        "secret-key",
    )
    .unwrap()
    .with_base_url(format!("{}/api/v1", server.base))
    .with_row_count(2);
    let window = Interval::starting_at(start, TimeDelta::hours(2)).unwrap();
    let out = poller.fetch(window).await.unwrap();
    // The 06:00 row lies outside the window and is not returned.
    let got: Vec<(String, f64)> = out
        .points
        .iter()
        .map(|p| (p.node.to_string(), p.lmp.as_per_megawatt_hour()))
        .collect();
    assert_eq!(
        got,
        [
            ("1".into(), 27.95),
            ("51291".into(), 26.4),
            ("1".into(), 25.85)
        ]
    );
    let seen = server.finish();
    assert_eq!(
        seen[0].target,
        "/api/v1/da_hrl_lmps?rowCount=2&startRow=1&row_is_current=TRUE\
         &datetime_beginning_ept=07%2F01%2F2024%2000%3A00to07%2F01%2F2024%2001%3A59\
         &pnode_id=1%3B51291"
    );
    assert_eq!(seen[1].target, "/api/v1/da_hrl_lmps?rowCount=2&startRow=3");
    for s in &seen {
        assert!(
            s.headers
                .contains(&("ocp-apim-subscription-key".into(), "secret-key".into())),
            "{s:?}"
        );
        assert!(!s.target.contains("secret"));
    }
}

#[tokio::test]
async fn server_errors_are_http_errors() {
    let server = Server::start(|_| vec![reply(500, "upstream down")]);
    let clock = ManualClock::new(t0());
    let nodes = vec![PricingNodeId::new("1").unwrap()];
    let poller = DataMinerPoller::new(
        client(),
        clock,
        MarketRun::PjmRealTimeFiveMinute,
        nodes,
        "k",
    )
    .unwrap()
    .with_base_url(&server.base);
    let err = poller
        .fetch(Interval::starting_at(t0(), TimeDelta::hours(1)).unwrap())
        .await
        .unwrap_err();
    match &err {
        SignalError::Http {
            status,
            reason,
            url,
        } => {
            assert_eq!(*status, Some(500));
            assert!(reason.contains("upstream down"));
            assert!(url.contains("/rt_fivemin_hrl_lmps?"));
        }
        other => panic!("{other}"),
    }
    server.finish();
}

#[tokio::test(start_paused = true)]
async fn polling_source_yields_each_price_once() {
    let start = Utc.with_ymd_and_hms(2024, 7, 1, 4, 0, 0).unwrap();
    let server = Server::start(|_| {
        vec![
            reply(200, pjm_page(&[("2024-07-01T04:00:00", 1, 27.95)], None)),
            reply(
                200,
                pjm_page(
                    &[
                        ("2024-07-01T04:00:00", 1, 27.95),
                        ("2024-07-01T05:00:00", 1, 25.85),
                    ],
                    None,
                ),
            ),
        ]
    });
    let clock = TokioClock::starting_at(start);
    let nodes = vec![PricingNodeId::new("1").unwrap()];
    let poller = DataMinerPoller::new(
        client(),
        clock.clone(),
        MarketRun::PjmDayAheadHourly,
        nodes,
        "k",
    )
    .unwrap()
    .with_base_url(&server.base);
    let mut source = PollingSource::new(poller, clock.clone(), TimeDelta::minutes(5))
        .unwrap()
        .with_window(TimeDelta::hours(1), TimeDelta::hours(3))
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        match source.next_signal().await.unwrap() {
            Some(GridSignal::Price(p)) => got.push(p.interval.start()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, [start, start + TimeDelta::hours(1)]);
    // The second poll happened one period after the first, on the virtual clock.
    assert_eq!(clock.now(), start + TimeDelta::minutes(5));
    assert_eq!(server.finish().len(), 2);
}

/// A listener that must never be contacted: a host the key must not reach.
fn other_host() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

fn assert_untouched(listener: &TcpListener) {
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the other host was contacted: {other:?}"),
    }
}

fn pjm_poller(base: &str) -> DataMinerPoller<UreqClient, ManualClock> {
    let start = Utc.with_ymd_and_hms(2024, 7, 1, 4, 0, 0).unwrap();
    DataMinerPoller::new(
        client(),
        ManualClock::new(start),
        MarketRun::PjmDayAheadHourly,
        vec![PricingNodeId::new("1").unwrap()],
        "secret-key",
    )
    .unwrap()
    .with_base_url(format!("{base}/api/v1"))
}

fn pjm_window() -> Interval {
    let start = Utc.with_ymd_and_hms(2024, 7, 1, 4, 0, 0).unwrap();
    Interval::starting_at(start, TimeDelta::hours(1)).unwrap()
}

#[tokio::test]
async fn the_key_never_follows_a_redirect_to_another_host() {
    let (elsewhere, other) = other_host();
    let server = Server::start(|_| {
        let mut r = reply(302, "");
        r.headers
            .push(("Location".into(), format!("{other}/steal?x=1")));
        vec![r]
    });
    let err = pjm_poller(&server.base)
        .fetch(pjm_window())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            SignalError::Http {
                status: Some(302),
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("another host"), "{msg}");
    assert!(!msg.contains("secret-key"), "{msg}");
    assert_eq!(server.finish().len(), 1);
    assert_untouched(&elsewhere);
}

#[tokio::test]
async fn a_redirect_on_the_same_host_is_followed_with_the_key() {
    let server = Server::start(|_| {
        let mut r = reply(307, "");
        r.headers
            .push(("Location".into(), "/api/v2/da_hrl_lmps?moved=1".into()));
        vec![
            r,
            reply(200, pjm_page(&[("2024-07-01T04:00:00", 1, 27.95)], None)),
        ]
    });
    let out = pjm_poller(&server.base).fetch(pjm_window()).await.unwrap();
    assert_eq!(out.points.len(), 1);
    let seen = server.finish();
    assert_eq!(seen[1].target, "/api/v2/da_hrl_lmps?moved=1");
    assert!(
        seen[1]
            .headers
            .contains(&("ocp-apim-subscription-key".into(), "secret-key".into()))
    );
}

#[tokio::test]
async fn a_next_link_to_another_host_is_refused() {
    let (elsewhere, other) = other_host();
    let server = Server::start(|_| {
        vec![reply(
            200,
            pjm_page(
                &[("2024-07-01T04:00:00", 1, 27.95)],
                Some(format!("{other}/api/v1/da_hrl_lmps?startRow=2")),
            ),
        )]
    });
    let err = pjm_poller(&server.base)
        .fetch(pjm_window())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("leaves the configured host"),
        "{err}"
    );
    assert_eq!(server.finish().len(), 1);
    assert_untouched(&elsewhere);
}

#[test]
fn the_default_body_limit_fits_a_price_file_not_a_gigabyte() {
    assert_eq!(UreqClient::DEFAULT_MAX_BODY, 64 << 20);
}

#[tokio::test]
async fn bodies_over_the_limit_are_errors() {
    let server = Server::start(|_| vec![reply(200, vec![b' '; 4096])]);
    let start = Utc.with_ymd_and_hms(2024, 7, 1, 4, 0, 0).unwrap();
    let poller = DataMinerPoller::new(
        client().with_max_body(1024),
        ManualClock::new(start),
        MarketRun::PjmDayAheadHourly,
        vec![PricingNodeId::new("1").unwrap()],
        "k",
    )
    .unwrap()
    .with_base_url(format!("{}/api/v1", server.base));
    let err = poller.fetch(pjm_window()).await.unwrap_err();
    assert!(
        matches!(err, SignalError::Http { status: None, .. }),
        "{err}"
    );
    server.finish();
}
