//! gridflex-openadr benches: what one poll costs the VEN on its side of the wire, for a
//! page of 50 events of 96 fifteen-minute intervals (a day each): parsing the page and
//! mapping every event to signals.
use std::hint::black_box;

use chrono::{TimeDelta, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use gridflex_core::Power;
use gridflex_openadr::mapping::map_event;
use gridflex_openadr::wire::Event;
use gridflex_openadr::{Mapping, SimpleLevel};
use gridflex_signals::{DispatchTarget, Market};

fn page() -> String {
    let t0 = Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap();
    let events: Vec<serde_json::Value> = (0..50)
        .map(|e| {
            let kind = if e % 2 == 0 {
                "IMPORT_CAPACITY_LIMIT"
            } else {
                "SIMPLE"
            };
            let intervals: Vec<serde_json::Value> = (0..96)
                .map(|i| {
                    let v = if e % 2 == 0 {
                        serde_json::json!(400.0 + i as f64)
                    } else {
                        serde_json::json!(1 + i % 3)
                    };
                    serde_json::json!({"id": i, "payloads": [{"type": kind, "values": [v]}]})
                })
                .collect();
            serde_json::json!({
                "id": format!("ev-{e}"), "objectType": "EVENT",
                "createdDateTime": t0, "modificationDateTime": t0 + TimeDelta::minutes(e),
                "programID": "p", "eventName": format!("day {e}"), "priority": null, "targets": [],
                "payloadDescriptors": [{"payloadType": kind, "units": "KW"}],
                "intervalPeriod": {"start": t0 + TimeDelta::days(e), "duration": "P0Y0M0DT0H15M0S"},
                "intervals": intervals,
            })
        })
        .collect();
    serde_json::to_string(&events).unwrap()
}

fn bench(c: &mut Criterion) {
    let body = page();
    let mut mapping = Mapping::new(Market::Caiso);
    for level in 1..=3 {
        let power = Power::kilowatts(100.0 * f64::from(level)).unwrap();
        mapping
            .simple_levels
            .push(SimpleLevel::new(level, DispatchTarget::ReduceBy { power }));
    }
    let events: Vec<Event> = serde_json::from_str(&body).unwrap();
    c.bench_function("openadr/parse_page_50x96", |b| {
        b.iter(|| {
            serde_json::from_str::<Vec<Event>>(black_box(&body))
                .unwrap()
                .len()
        })
    });
    c.bench_function("openadr/map_page_50x96", |b| {
        b.iter(|| {
            events
                .iter()
                .map(|e| map_event(black_box(e), "peak", &mapping).dispatches.len())
                .sum::<usize>()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
