//! The orchestrator's metrics, read back from the OpenMetrics text a scrape would get,
//! in virtual time: the gauges during an event and after its restore, and the counters,
//! histograms and report figures of a whole run.

mod common;

use std::collections::HashMap;

use common::*;
use gridflex::audit::StopReason;
use gridflex::metrics::{Metrics, encode};
use gridflex::prelude::*;
use gridflex::prometheus_client::registry::Registry;
use gridflex::signals::{DispatchEvent, DispatchTarget, EventWindow, Program};
use gridflex::simulated::SimulatedFacility;

/// Every sample of the scrape, by series (name and labels as written).
fn scrape(registry: &Registry) -> HashMap<String, f64> {
    let text = encode(registry).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(s: &HashMap<String, f64>, series: &str) -> f64 {
    *s.get(series)
        .unwrap_or_else(|| panic!("no series {series} in {s:#?}"))
}

fn orchestrator(f: &SimulatedFacility, registry: &mut Registry) -> Orchestrator<TokioClock> {
    f.orchestrator(f.clock())
        .facility(FacilityModel::new(kw(1.0), 1.0).unwrap())
        .rules(rules())
        .metrics(Metrics::register(registry))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn gauges_follow_an_event_and_its_restore() {
    let f = facility();
    let mut registry = Registry::default();
    let mut o = orchestrator(&f, &mut registry);
    tokio::time::sleep(std::time::Duration::from_secs(300)).await;
    o.sweep().await;
    let s = scrape(&registry);
    let before = value(&s, "gridflex_facility_power_watts");
    assert!(before > 20_000.0, "{before}");
    assert!(value(&s, "gridflex_target_watts").is_nan());
    assert_eq!(value(&s, "gridflex_curtailed_gpus{state=\"capped\"}"), 0.0);

    let now = o.clock().now();
    let handled = o
        .handle_signal(dispatch(
            "d1",
            now,
            now + chrono::TimeDelta::minutes(10),
            18.0,
        ))
        .await;
    let Handled::Actuated { commands, .. } = handled else {
        panic!("{handled:?}");
    };
    let s = scrape(&registry);
    assert_eq!(value(&s, "gridflex_active_event_id"), 1.0);
    assert_eq!(value(&s, "gridflex_target_watts"), 18_000.0);
    assert!((value(&s, "gridflex_facility_baseline_watts") - before).abs() < 2_000.0);
    let curtailed: f64 = ["capped", "paused", "unknown"]
        .iter()
        .map(|st| value(&s, &format!("gridflex_curtailed_gpus{{state=\"{st}\"}}")))
        .sum();
    assert!(curtailed > 0.0, "{s:#?}");
    assert_eq!(value(&s, "gridflex_commands_total"), commands as f64);
    assert_eq!(value(&s, "gridflex_signal_to_commands_seconds_count"), 1.0);
    assert_eq!(
        value(
            &s,
            "gridflex_signals_total{kind=\"dispatch\",decision=\"actuated\"}"
        ),
        1.0
    );
    assert_eq!(value(&s, "gridflex_events_total{cause=\"dispatch\"}"), 1.0);
    let issued = value(
        &s,
        "gridflex_command_duration_seconds_count{lever=\"power_limit\"}",
    ) + value(
        &s,
        "gridflex_command_duration_seconds_count{lever=\"workload\"}",
    );
    assert_eq!(issued, commands as f64);
    assert!(value(&s, "gridflex_planner_duration_seconds_count") >= 1.0);
    assert!(value(&s, "gridflex_planner_gap_ratio") >= 0.0);

    let left = o.shutdown(StopReason::Requested).await;
    assert!(left.is_empty());
    let s = scrape(&registry);
    assert_eq!(value(&s, "gridflex_active_event_id"), 0.0);
    assert!(value(&s, "gridflex_target_watts").is_nan());
    for st in ["capped", "paused", "unknown"] {
        assert_eq!(
            value(&s, &format!("gridflex_curtailed_gpus{{state=\"{st}\"}}")),
            0.0
        );
        assert_eq!(
            value(&s, &format!("gridflex_curtailed_jobs{{state=\"{st}\"}}")),
            0.0
        );
    }
    // The restore's commands are counted too.
    assert!(value(&s, "gridflex_commands_total") > commands as f64);
}

#[tokio::test(start_paused = true)]
async fn a_run_counts_signals_refusals_and_the_delivered_reduction() {
    let f = facility();
    let mut registry = Registry::default();
    let mut o = orchestrator(&f, &mut registry);
    let not_enrolled = GridSignal::Dispatch(
        DispatchEvent::new(
            "rdrr",
            Program::CaisoRdrr,
            at(10),
            EventWindow::new(at(10), Some(at(20))).unwrap(),
            DispatchTarget::CapAt { power: kw(15.0) },
            None,
        )
        .unwrap(),
    );
    let source = ReplaySource::from_signals(
        vec![
            not_enrolled,
            dispatch("d1", at(10), at(25), 18.0),
            price(at(12), 20.0), // under the price rule's threshold: ignored
        ],
        o.clock().clone(),
    )
    .unwrap();
    let summary = o.run(source, std::future::pending()).await.unwrap();
    assert_eq!(summary.events, 1);
    let s = scrape(&registry);
    let signals: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with("gridflex_signals_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(signals, summary.signals as f64);
    assert_eq!(
        value(&s, "gridflex_refusals_total{reason=\"not_enrolled\"}"),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "gridflex_signals_total{kind=\"dispatch\",decision=\"refused\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "gridflex_signals_total{kind=\"price\",decision=\"ignored\"}"
        ),
        1.0
    );
    assert!(value(&s, "gridflex_commands_total") >= summary.commands as f64);
    let report = &o.reports()[0];
    let delivery = report.delivery.as_ref().expect("a delivery");
    assert_eq!(
        value(&s, "gridflex_event_delivered_watts"),
        delivery.delivered.as_watts()
    );
    let joules = value(&s, "gridflex_delivered_energy_joules_total");
    assert!((joules - delivery.energy.as_joules()).abs() < 1e-6 * joules.abs().max(1.0));
    assert!(joules > 0.0, "{joules}");
    for kind in [
        "no_permission",
        "out_of_range",
        "device_lost",
        "transient",
        "other",
    ] {
        assert_eq!(
            value(
                &s,
                &format!("gridflex_device_errors_total{{kind=\"{kind}\"}}")
            ),
            0.0
        );
    }
}

/// The dashboard in docs/ queries only series this build exports.
#[test]
fn the_grafana_dashboard_uses_exported_series() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut registry = Registry::default();
    let _metrics = Metrics::register(&mut registry);
    let text = encode(&registry).unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("gridflex_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                assert!(
                    text.lines().any(|l| l.starts_with(&format!("{name} "))
                        || l.starts_with(&format!("{name}{{"))),
                    "panel {:?} queries {name}, which is not exported",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "{checked}");
}
