//! Against a real VTN (openleadr-vtn 0.2.8 on PostgreSQL 16, started by
//! `.ci/peers/openadr.sh`): a business-logic client creates programs and events with
//! plain HTTP calls, the VEN turns them into signals, and reports are read back.
//! Skipped with a message when `GRIDFLEX_TEST_OPENADR` is unset.

mod common;

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use common::{Bl, event_body, peer, unique, ven_client};
use gridflex_core::clock::TokioClock;
use gridflex_core::{Power, Price, PricingNodeId};
use gridflex_openadr::{Mapping, PriceBinding, SimpleLevel, VenConfig, VenSource};
use gridflex_signals::source::SignalSource;
use gridflex_signals::{DispatchTarget, GridSignal, Market, MarketRun};
use serde_json::json;

fn kw(v: f64) -> Power {
    Power::kilowatts(v).unwrap()
}

fn mapping() -> Mapping {
    let mut m = Mapping::new(Market::Caiso);
    m.response_time = TimeDelta::seconds(5);
    m.simple_levels = vec![
        SimpleLevel::new(1, DispatchTarget::ReduceBy { power: kw(1.0) }),
        SimpleLevel::new(2, DispatchTarget::ReduceBy { power: kw(2.0) }),
        SimpleLevel::new(3, DispatchTarget::CapAt { power: kw(3.0) }),
    ];
    m.price = Some(PriceBinding::new(
        PricingNodeId::new("TH_NP15_GEN-APND").unwrap(),
        MarketRun::CaisoRtm,
    ));
    m
}

fn source(client: gridflex_openadr::VenClient, ven: &str, program: &str) -> VenSource<TokioClock> {
    let mut config = VenConfig::new(ven, mapping());
    config.programs = vec![program.to_owned()];
    config.poll_interval = Duration::from_millis(200);
    config.stale_after = Duration::from_secs(2);
    config.backoff_initial = Duration::from_millis(200);
    config.backoff_max = Duration::from_secs(1);
    VenSource::new(client, config, TokioClock::real()).unwrap()
}

async fn next(src: &mut VenSource<TokioClock>, within: Duration) -> Option<GridSignal> {
    match tokio::time::timeout(within, src.next_signal()).await {
        Ok(r) => r.expect("source error"),
        Err(_) => None,
    }
}

fn dispatch(s: Option<GridSignal>) -> gridflex_signals::DispatchEvent {
    match s {
        Some(GridSignal::Dispatch(d)) => d,
        other => panic!("expected a dispatch, got {other:?}"),
    }
}

/// A VEN of its own, enrolled (targeted) in a fresh program; the source has synced once.
async fn enrolled(test: &str) -> Option<(common::Peer, Bl, String, String, VenSource<TokioClock>)> {
    let peer = peer(test)?;
    let bl = Bl::new(&peer);
    let program = unique("prog");
    let program_id = bl.program(&program);
    let (client, ven) = ven_client(&peer);
    let mut src = source(client, &ven, &program);
    src.sync().await.expect("first sync registers the VEN");
    bl.target_ven(&ven, &[&ven, "site-group"]);
    Some((peer, bl, program, program_id, src))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_limit_event_becomes_a_cap_dispatch() {
    let Some((_peer, bl, program, pid, mut src)) =
        enrolled("capacity_limit_event_becomes_a_cap_dispatch").await
    else {
        return;
    };
    let start = Utc::now();
    let mut body = event_body(
        &pid,
        "limit",
        start,
        600,
        "IMPORT_CAPACITY_LIMIT",
        &[json!(5.5)],
    );
    body["payloadDescriptors"] = json!([{"objectType": "EVENT_PAYLOAD_DESCRIPTOR",
        "payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}]);
    body["targets"] = json!(["site-group"]);
    let e = bl.event(&body);
    let d = dispatch(next(&mut src, Duration::from_secs(10)).await);
    assert_eq!(d.id, format!("{}/0", e["id"].as_str().unwrap()));
    assert_eq!(d.target, DispatchTarget::CapAt { power: kw(5.5) });
    assert_eq!(
        d.program,
        gridflex_signals::Program::Custom {
            name: program,
            market: Market::Caiso
        }
    );
    let start_s = start.timestamp();
    assert_eq!(d.window.start().timestamp(), start_s);
    assert_eq!(d.window.end().map(|t| t.timestamp()), Some(start_s + 600));
    // Nothing more: the same event is not sent twice.
    assert!(next(&mut src, Duration::from_millis(800)).await.is_none());
}

/// Event created (POST returned) -> dispatch yielded by the source, over 20 events,
/// with a 200 ms poll. Printed, not asserted: timing is a measurement, not a test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_to_signal_latency_over_20_events() {
    let Some((_peer, bl, _program, pid, mut src)) =
        enrolled("event_to_signal_latency_over_20_events").await
    else {
        return;
    };
    let mut ms = Vec::new();
    for k in 0..20 {
        // Spread creation over the poll period (the last signal came just after a poll).
        tokio::time::sleep(Duration::from_millis(10 * k)).await;
        let body = event_body(
            &pid,
            &format!("lat-{k}"),
            Utc::now(),
            300,
            "IMPORT_CAPACITY_LIMIT",
            &[json!(10.0 + k as f64)],
        );
        let created = Instant::now();
        bl.event(&body);
        let d = dispatch(next(&mut src, Duration::from_secs(10)).await);
        ms.push(created.elapsed().as_secs_f64() * 1e3);
        assert_eq!(
            d.target,
            DispatchTarget::CapAt {
                power: kw(10.0 + k as f64)
            }
        );
    }
    ms.sort_by(f64::total_cmp);
    eprintln!(
        "openadr event created -> GridSignal: median {:.0} ms, min {:.0}, max {:.0} (20 events, poll 200 ms)",
        ms[10], ms[0], ms[19]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_levels_map_to_the_configured_reductions() {
    let Some((_peer, bl, _program, pid, mut src)) =
        enrolled("simple_levels_map_to_the_configured_reductions").await
    else {
        return;
    };
    let now = Utc::now();
    // Levels 0..3 back to back, 1 h each from now-1s: only the running one (level 0:
    // nothing) would be released at once, so make four events instead, all running.
    let mut got = Vec::new();
    for level in [1, 2, 3, 0] {
        bl.event(&event_body(
            &pid,
            &format!("simple-{level}"),
            now,
            3600,
            "SIMPLE",
            &[json!(level)],
        ));
        if level == 0 {
            assert!(
                next(&mut src, Duration::from_millis(1000)).await.is_none(),
                "level 0 is normal operation"
            );
        } else {
            got.push(dispatch(next(&mut src, Duration::from_secs(10)).await).target);
        }
    }
    assert_eq!(
        got,
        vec![
            DispatchTarget::ReduceBy { power: kw(1.0) },
            DispatchTarget::ReduceBy { power: kw(2.0) },
            DispatchTarget::CapAt { power: kw(3.0) },
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn price_events_above_and_below_the_strike() {
    use gridflex::program::{Decision, PriceRule, ProgramEngine, ProgramRules};
    let Some((_peer, bl, _program, pid, mut src)) =
        enrolled("price_events_above_and_below_the_strike").await
    else {
        return;
    };
    // 5-minute intervals (CAISO RTM), the current one first; $/kWh as OpenADR sends them.
    let now = Utc::now();
    let start = now - TimeDelta::seconds(now.timestamp() % 300);
    let mut body = event_body(&pid, "price", start, 300, "PRICE", &[json!(0.95)]);
    body["payloadDescriptors"] = json!([{"objectType": "EVENT_PAYLOAD_DESCRIPTOR",
        "payloadType": "PRICE", "units": "KWH", "currency": "USD"}]);
    bl.event(&body);
    let high = match next(&mut src, Duration::from_secs(10)).await {
        Some(GridSignal::Price(p)) => p,
        other => panic!("{other:?}"),
    };
    assert!((high.lmp.as_per_megawatt_hour() - 950.0).abs() < 1e-6);
    body["eventName"] = json!("price-low");
    body["intervals"][0]["payloads"][0]["values"] = json!([0.03]);
    bl.event(&body);
    let low = match next(&mut src, Duration::from_secs(10)).await {
        Some(GridSignal::Price(p)) => p,
        other => panic!("{other:?}"),
    };
    // The site's price rule: curtail to 4 kW at or above $300/MWh.
    let mut rules = ProgramRules::new(Market::Caiso, kw(10.0));
    rules.price = Some(PriceRule::new(
        PricingNodeId::new("TH_NP15_GEN-APND").unwrap(),
        MarketRun::CaisoRtm,
        Price::per_megawatt_hour(300.0).unwrap(),
        kw(4.0),
    ));
    let mut below = ProgramEngine::new(rules.clone()).unwrap();
    assert!(matches!(
        below.evaluate(&GridSignal::Price(low), Utc::now(), kw(8.0)),
        Decision::Ignore { .. }
    ));
    let mut above = ProgramEngine::new(rules).unwrap();
    assert!(matches!(
        above.evaluate(&GridSignal::Price(high), Utc::now(), kw(8.0)),
        Decision::Curtail(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modification_updates_and_deletion_ends_early() {
    let Some((_peer, bl, _program, pid, mut src)) =
        enrolled("modification_updates_and_deletion_ends_early").await
    else {
        return;
    };
    let start = Utc::now();
    let body = event_body(
        &pid,
        "mod",
        start,
        600,
        "IMPORT_CAPACITY_LIMIT",
        &[json!(6.0)],
    );
    let e = bl.event(&body);
    let id = e["id"].as_str().unwrap().to_owned();
    let first = dispatch(next(&mut src, Duration::from_secs(10)).await);
    // New limit and a later end.
    let mut changed = event_body(
        &pid,
        "mod",
        start,
        1200,
        "IMPORT_CAPACITY_LIMIT",
        &[json!(4.0)],
    );
    changed["eventName"] = json!("mod");
    bl.update_event(&id, &changed);
    let update = dispatch(next(&mut src, Duration::from_secs(10)).await);
    assert_eq!(update.id, first.id);
    assert_eq!(update.target, DispatchTarget::CapAt { power: kw(4.0) });
    assert_eq!(
        update.window.end(),
        first.window.end().map(|e| e + TimeDelta::seconds(600))
    );
    // Deleted mid-event: the same dispatch again, ending within a second of now.
    bl.delete_event(&id);
    let cancel = dispatch(next(&mut src, Duration::from_secs(10)).await);
    let seen = Utc::now();
    assert_eq!(cancel.id, first.id);
    let end = cancel.window.end().unwrap();
    assert!(
        end <= seen + TimeDelta::seconds(1) && end > seen - TimeDelta::seconds(5),
        "{end} vs {seen}"
    );
    assert_eq!(src.active_dispatches(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untargeted_unknown_and_malformed_events_are_ignored_and_noted() {
    let Some((_peer, bl, _program, pid, mut src)) =
        enrolled("untargeted_unknown_and_malformed_events_are_ignored_and_noted").await
    else {
        return;
    };
    let log = src.log();
    let now = Utc::now();
    let mut other = event_body(
        &pid,
        "other-site",
        now,
        600,
        "IMPORT_CAPACITY_LIMIT",
        &[json!(1.0)],
    );
    other["targets"] = json!(["some-other-group"]);
    bl.event(&other);
    bl.event(&event_body(&pid, "ghg", now, 600, "GHG", &[json!(120.0)]));
    bl.event(&event_body(
        &pid,
        "bad-value",
        now,
        600,
        "IMPORT_CAPACITY_LIMIT",
        &[json!("lots")],
    ));
    bl.event(&event_body(
        &pid,
        "negative",
        now,
        600,
        "IMPORT_CAPACITY_LIMIT",
        &[json!(-3.0)],
    ));
    bl.event(&event_body(
        &pid,
        "level-9",
        now,
        600,
        "SIMPLE",
        &[json!(9)],
    ));
    assert!(
        next(&mut src, Duration::from_secs(2)).await.is_none(),
        "nothing may be dispatched"
    );
    let notes: Vec<String> = log.drain().into_iter().map(|n| n.message).collect();
    let has = |s: &str| notes.iter().any(|n| n.contains(s));
    assert!(has("GHG is not one gridflex acts on"), "{notes:#?}");
    assert!(has("is not a number"), "{notes:#?}");
    assert!(has("negative"), "{notes:#?}");
    assert!(has("level 9 is not 0, 1, 2 or 3"), "{notes:#?}");
    // The VTN itself filters events targeted elsewhere: the VEN never sees that one.
    assert!(!has("other-site"), "{notes:#?}");
    // Each is noted once, not on every poll.
    assert!(next(&mut src, Duration::from_secs(1)).await.is_none());
    assert!(log.drain().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_a_typed_error() {
    let Some(peer) = peer("wrong_credentials_are_a_typed_error") else {
        return;
    };
    let client = gridflex_openadr::VenClient::new(gridflex_openadr::VtnEndpoint::new(
        peer.url.clone(),
        gridflex_openadr::Credentials::new(
            peer.bl.0.clone(),
            gridflex_openadr::Secret::new("not-the-secret"),
        ),
    ))
    .unwrap();
    let e = client.programs().await.unwrap_err();
    assert!(
        matches!(e, gridflex_openadr::OpenAdrError::Unauthorized { .. }),
        "{e}"
    );
    assert!(!e.is_transient());
    assert!(!e.to_string().contains("not-the-secret"), "{e}");
}

/// A future event known before the VTN went away is not started from stale data: its
/// start passes while the VTN is away and nothing is sent; when the VTN answers again,
/// it is sent (it is still running) after a fresh view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_event_does_not_start_from_stale_data() {
    let Some(peer) = peer("held_event_does_not_start_from_stale_data") else {
        return;
    };
    let bl = Bl::new(&peer);
    let program = unique("prog");
    let pid = bl.program(&program);
    let (id, secret) = common::create_user(&peer, &common::VEN_SCOPES);
    let vtn = common::OwnVtn::start(&peer, None);
    let client = gridflex_openadr::VenClient::new(gridflex_openadr::VtnEndpoint::new(
        format!("http://127.0.0.1:{}", vtn.port),
        gridflex_openadr::Credentials::new(id.clone(), gridflex_openadr::Secret::new(secret)),
    ))
    .unwrap();
    let mut src = source(client, &id, &program);
    let log = src.log();
    src.sync().await.unwrap();
    let start = Utc::now() + TimeDelta::seconds(3);
    let e = bl.event(&event_body(
        &pid,
        "later",
        start,
        60,
        "IMPORT_CAPACITY_LIMIT",
        &[json!(4.0)],
    ));
    src.sync().await.unwrap();
    let port = vtn.stop();
    // The VTN is away: the first failed poll is an error, then back-off, silently.
    match tokio::time::timeout(Duration::from_secs(2), src.next_signal()).await {
        Ok(Err(e)) => assert!(e.to_string().contains("unreachable"), "{e}"),
        other => panic!("expected the outage as an error, got {other:?}"),
    }
    // The start passes (+ stale_after 2 s): nothing is released.
    assert!(next(&mut src, Duration::from_secs(4)).await.is_none());
    let _back = common::OwnVtn::start(&peer, Some(port));
    let d = dispatch(next(&mut src, Duration::from_secs(5)).await);
    assert_eq!(d.id, format!("{}/0", e["id"].as_str().unwrap()));
    let notes: Vec<String> = log.drain().into_iter().map(|n| n.message).collect();
    assert!(
        notes.iter().any(|n| n.contains("answers again")),
        "{notes:#?}"
    );
}
