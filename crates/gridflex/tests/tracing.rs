//! The orchestrator's `tracing` spans, seen by a subscriber: one event can be followed
//! from its signal through its plan and actuations to its report by the event id.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use gridflex::prelude::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A span's name and its `event_id`, if it has one.
type Seen = (&'static str, Option<u64>);

/// Keeps each span's name and `event_id`.
#[derive(Default, Clone)]
struct Spans {
    next: Arc<AtomicU64>,
    spans: Arc<Mutex<Vec<Seen>>>,
}

struct EventId(Option<u64>);

impl Visit for EventId {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "event_id" {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl Subscriber for Spans {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut id = EventId(None);
        span.record(&mut id);
        let mut spans = self.spans.lock().unwrap();
        spans.push((span.metadata().name(), id.0));
        self.next.fetch_add(1, Ordering::Relaxed);
        Id::from_u64(spans.len() as u64)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut id = EventId(None);
        values.record(&mut id);
        if let Some(e) = id.0 {
            let mut spans = self.spans.lock().unwrap();
            spans[span.into_u64() as usize - 1].1 = Some(e);
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[tokio::test(start_paused = true)]
async fn one_event_is_followed_from_signal_to_report() {
    let spans = Spans::default();
    let _guard = tracing::subscriber::set_default(spans.clone());
    let f = facility();
    let mut o = f
        .orchestrator(f.clock())
        .facility(FacilityModel::new(kw(1.0), 1.0).unwrap())
        .rules(rules())
        .build()
        .unwrap();
    let source = ReplaySource::from_signals(
        vec![dispatch("d1", at(10), at(25), 18.0)],
        o.clock().clone(),
    )
    .unwrap();
    o.run(source, std::future::pending()).await.unwrap();
    let spans = spans.spans.lock().unwrap().clone();
    let of = |name: &str| -> Vec<Option<u64>> {
        spans
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, e)| *e)
            .collect()
    };
    assert_eq!(of("signal"), vec![Some(1)], "{spans:?}");
    assert_eq!(of("decision").len(), 1);
    assert_eq!(of("plan"), vec![Some(1)]);
    let actuations = of("actuation");
    assert!(actuations.len() >= 2, "first stage and restore: {spans:?}");
    assert!(actuations.iter().all(|e| *e == Some(1)));
    assert_eq!(of("report"), vec![Some(1)]);
}
