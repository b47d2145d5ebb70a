//! The metrics as a real Prometheus sees them: the built-in endpoint serves the
//! orchestrator's registry while a simulated facility answers a dispatch, in real time,
//! and the Prometheus HTTP API must show the event in the facility power and
//! curtailed-GPU series. Needs the Prometheus started by `.ci/peers/prometheus.sh`
//! (`GRIDFLEX_TEST_PROMETHEUS`, `GRIDFLEX_TEST_PROMETHEUS_EXPORTER`); skips without it.

#![cfg(feature = "metrics-server")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use gridflex::metrics::Metrics;
use gridflex::metrics::server::MetricsServer;
use gridflex::prelude::*;
use gridflex::prometheus_client::registry::Registry;
use gridflex::signals::source::channel;
use gridflex::simulated::SimulatedFacility;

/// How long each series may take to show what is expected (the first sample comes
/// 5-6 s after Prometheus starts scraping a target).
const WAIT: Duration = Duration::from_secs(20);

/// `GET {base}{path}` over plain HTTP/1.0 on loopback: the body.
fn http_get(base: &str, path: &str) -> Result<String, String> {
    let host = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base}: not an http:// address"))?;
    let addr: SocketAddr = host.parse().map_err(|e| format!("{host}: {e}"))?;
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP head in {answer:?}"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("{path}: {head}\n{body}"));
    }
    Ok(body.to_owned())
}

fn encode_query(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an instant query that returns one sample (`None`: no sample yet).
fn query(base: &str, q: &str) -> Option<f64> {
    let body = http_get(base, &format!("/api/v1/query?query={}", encode_query(q)))
        .unwrap_or_else(|e| panic!("Prometheus API: {e}"));
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["status"], "success", "{body}");
    let result = v["data"]["result"].as_array()?;
    let value = result.first()?["value"][1].as_str()?;
    value.parse().ok()
}

/// Waits (at most [`WAIT`], in real time) until `q` has a sample for which `ok` holds;
/// returns it, or fails naming what was last seen.
async fn wait_for(base: &str, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < WAIT {
        let (b, qq) = (base.to_owned(), q.to_owned());
        last = tokio::task::spawn_blocking(move || query(&b, &qq))
            .await
            .unwrap();
        if let Some(v) = last
            && ok(v)
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("Prometheus: `{q}` did not show what was expected within {WAIT:?}; last {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_simulated_event() {
    let (Ok(api), Ok(exporter)) = (
        std::env::var("GRIDFLEX_TEST_PROMETHEUS"),
        std::env::var("GRIDFLEX_TEST_PROMETHEUS_EXPORTER"),
    ) else {
        eprintln!(
            "skipping: set GRIDFLEX_TEST_PROMETHEUS and GRIDFLEX_TEST_PROMETHEUS_EXPORTER \
             (started by .ci/run through .ci/peers/prometheus.sh)"
        );
        return;
    };
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let server = MetricsServer::start(
        exporter.parse().expect("exporter address"),
        Arc::new(registry),
    )
    .expect("metrics endpoint");

    // The safety tests' facility (40 simulated H100s, about 27 kW), in real time, with a
    // telemetry sweep every second so that the power gauge follows the event.
    let f: SimulatedFacility = facility();
    let clock = f.clock();
    let mut options = OrchestratorOptions::default();
    options.telemetry_step = chrono::TimeDelta::seconds(1);
    let orchestrator = f
        .orchestrator(clock.clone())
        .facility(FacilityModel::new(kw(1.0), 1.0).unwrap())
        .rules(rules())
        .options(options)
        .metrics(metrics)
        .build()
        .unwrap();
    let (_tx, source) = channel(4);
    let (handle, task) = orchestrator.spawn(source);

    // Before the event: Prometheus has the facility at full power, nothing curtailed.
    let before = wait_for(&api, "gridflex_facility_power_watts", |w| w > 20_000.0).await;
    assert_eq!(query(&api, "sum(gridflex_curtailed_gpus)"), Some(0.0));

    let now = clock.now();
    let handled = handle
        .signal(dispatch(
            "d1",
            now,
            now + chrono::TimeDelta::minutes(2),
            18.0,
        ))
        .await
        .unwrap();
    assert!(matches!(handled, Handled::Actuated { .. }), "{handled:?}");

    // The event, as Prometheus shows it: GPUs curtailed, facility power down.
    let gpus = wait_for(&api, "sum(gridflex_curtailed_gpus)", |n| n > 0.0).await;
    let during = wait_for(&api, "gridflex_facility_power_watts", |w| {
        w < before - 3_000.0
    })
    .await;
    let actuated = wait_for(
        &api,
        "gridflex_signals_total{kind=\"dispatch\",decision=\"actuated\"}",
        |n| n >= 1.0,
    )
    .await;
    let target = wait_for(&api, "gridflex_target_watts", |w| w > 0.0).await;
    eprintln!(
        "Prometheus saw {before:.0} W before, {during:.0} W during (target {target:.0} W), \
         {gpus} GPUs curtailed, {actuated} dispatch actuated"
    );
    assert!((target - 18_000.0).abs() < 1.0, "target {target}");

    // Every query of the Grafana dashboard in docs/ is valid PromQL and finds data.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$job", ".*")
                .replace("$__rate_interval", "1m");
            let body = http_get(
                &api,
                &format!("/api/v1/query?query={}", encode_query(&expr)),
            )
            .unwrap_or_else(|e| panic!("dashboard query {expr}: {e}"));
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["status"], "success", "{expr}: {body}");
            let found = v["data"]["result"].as_array().map_or(0, Vec::len);
            assert!(found > 0, "dashboard query {expr} found no series: {body}");
        }
    }

    let left = handle.shutdown().await.unwrap();
    assert!(left.is_empty(), "left curtailed: {left:?}");
    task.await.unwrap().unwrap();
    fully_restored(&f).unwrap();
    server.stop();
}
