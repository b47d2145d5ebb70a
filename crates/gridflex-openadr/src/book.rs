//! `EventBook`: what the VEN knows of the VTN's events, and which signals follow from
//! a new view of them. Pure: no I/O, no clock (the time is an argument).
//!
//! - A new or modified event (its `modificationDateTime` changed) is mapped again.
//! - A dispatch whose window has started is released at once; one that starts later
//!   is held and released at its start (`EventBook::release_due`), so a change or a
//!   deletion before the start is applied exactly, with nothing to take back.
//! - A released dispatch that a modification changed is sent again under the same id
//!   (the orchestrator updates that event); one that a modification removed or ended,
//!   or whose event was deleted, is sent again with its window ending
//!   [`CANCEL_GRACE`] from now: the orchestrator restores on that schedule.
//! - Released dispatches and held signals are dropped once their window has ended, so
//!   memory is bounded by what the VTN lists.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use gridflex_signals::{DispatchEvent, EventWindow, GridSignal};

use crate::mapping::{Mapping, map_event};
use crate::wire::Event;

/// How far ahead of now a cancelled dispatch's window is made to end (a window must
/// end after now to be accepted).
pub const CANCEL_GRACE: TimeDelta = TimeDelta::seconds(1);

/// One view of the VTN: each event visible to the VEN with its program's name.
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    pub(crate) events: Vec<(Event, String)>,
}

#[derive(Debug, Clone)]
struct Held {
    release_at: DateTime<Utc>,
    event_id: String,
    signal: GridSignal,
}

/// The VEN's book of events.
#[derive(Debug, Default)]
pub(crate) struct EventBook {
    /// Event id -> its modification time as last applied.
    known: HashMap<String, DateTime<Utc>>,
    /// Signals waiting for their start.
    held: Vec<Held>,
    /// Dispatch id -> (event id, the dispatch as last sent).
    released: BTreeMap<String, (String, DispatchEvent)>,
}

impl EventBook {
    /// Applies a complete view of the VTN at `now`: returns the signals to send now
    /// and notes on what was ignored or changed.
    pub(crate) fn apply(
        &mut self,
        view: View,
        mapping: &Mapping,
        now: DateTime<Utc>,
    ) -> (Vec<GridSignal>, Vec<String>) {
        let mut out = Vec::new();
        let mut notes = Vec::new();
        self.forget_ended(now);
        let mut present: HashMap<String, ()> = HashMap::new();
        for (event, program_name) in view.events {
            present.insert(event.id.clone(), ());
            if self.known.get(&event.id) == Some(&event.modification_date_time) {
                continue;
            }
            let modified = self.known.contains_key(&event.id);
            let mapped = map_event(&event, &program_name, mapping);
            notes.extend(mapped.ignored);
            self.held.retain(|h| h.event_id != event.id);
            let mut now_ids = Vec::new();
            for d in mapped.dispatches {
                if d.window.end().is_some_and(|e| e <= now) {
                    continue;
                }
                now_ids.push(d.id.clone());
                if d.window.start() <= now {
                    let same = self.released.get(&d.id).is_some_and(|(_, prev)| *prev == d);
                    if !same {
                        out.push(GridSignal::Dispatch(d.clone()));
                        self.released.insert(d.id.clone(), (event.id.clone(), d));
                    }
                } else {
                    self.held.push(Held {
                        release_at: d.window.start(),
                        event_id: event.id.clone(),
                        signal: GridSignal::Dispatch(d),
                    });
                }
            }
            for p in mapped.prices {
                if p.interval.end() <= now {
                    continue;
                }
                if p.interval.start() <= now {
                    out.push(GridSignal::Price(p));
                } else {
                    self.held.push(Held {
                        release_at: p.interval.start(),
                        event_id: event.id.clone(),
                        signal: GridSignal::Price(p),
                    });
                }
            }
            if modified {
                notes.push(format!("event {} modified: applied again", event.id));
                out.extend(self.cancel_released(&event.id, &now_ids, now));
            }
            self.known
                .insert(event.id.clone(), event.modification_date_time);
        }
        let gone: Vec<String> = self
            .known
            .keys()
            .filter(|id| !present.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            self.known.remove(&id);
            self.held.retain(|h| h.event_id != id);
            notes.push(format!("event {id} deleted or no longer targeted: ended"));
            out.extend(self.cancel_released(&id, &[], now));
        }
        (out, notes)
    }

    /// Ends early every released dispatch of `event_id` whose id is not in `keep`.
    fn cancel_released(
        &mut self,
        event_id: &str,
        keep: &[String],
        now: DateTime<Utc>,
    ) -> Vec<GridSignal> {
        let ids: Vec<String> = self
            .released
            .iter()
            .filter(|(id, (e, _))| e == event_id && !keep.contains(id))
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::new();
        for id in ids {
            let Some((_, d)) = self.released.remove(&id) else {
                continue;
            };
            if d.window.end().is_some_and(|e| e <= now) {
                continue;
            }
            if let Some(c) = cancellation(&d, now) {
                out.push(GridSignal::Dispatch(c));
            }
        }
        out
    }

    /// Held signals whose start has come, in start order.
    pub(crate) fn release_due(&mut self, now: DateTime<Utc>) -> Vec<GridSignal> {
        let mut due: Vec<Held> = Vec::new();
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].release_at <= now {
                due.push(self.held.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|h| h.release_at);
        let mut out = Vec::new();
        for h in due {
            match &h.signal {
                GridSignal::Dispatch(d) if d.window.end().is_some_and(|e| e <= now) => {}
                GridSignal::Price(p) if p.interval.end() <= now => {}
                GridSignal::Dispatch(d) => {
                    self.released
                        .insert(d.id.clone(), (h.event_id.clone(), d.clone()));
                    out.push(h.signal);
                }
                _ => out.push(h.signal),
            }
        }
        out
    }

    /// When the next held signal is due.
    pub(crate) fn next_due(&self) -> Option<DateTime<Utc>> {
        self.held.iter().map(|h| h.release_at).min()
    }

    /// Dispatches sent and not yet ended (for tests and the example's status line).
    pub(crate) fn active(&self) -> usize {
        self.released.len()
    }

    fn forget_ended(&mut self, now: DateTime<Utc>) {
        self.released
            .retain(|_, (_, d)| d.window.end().is_none_or(|e| e > now));
    }
}

/// The same dispatch with its window ending [`CANCEL_GRACE`] from `now`.
pub(crate) fn cancellation(d: &DispatchEvent, now: DateTime<Utc>) -> Option<DispatchEvent> {
    let end = now + CANCEL_GRACE;
    let window = EventWindow::new(d.window.start().min(now), Some(end)).ok()?;
    DispatchEvent::new(
        d.id.clone(),
        d.program.clone(),
        now,
        window,
        d.target,
        Some(d.response_time),
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use gridflex_signals::{DispatchTarget, Market};

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 1, 18, 0, 0).unwrap() + TimeDelta::minutes(min)
    }

    fn ev(id: &str, modified: i64, start: i64, minutes: i64, kw: f64) -> (Event, String) {
        let e = serde_json::json!({
            "id": id, "createdDateTime": t(-60), "modificationDateTime": t(modified),
            "programID": "p1",
            "intervalPeriod": {"start": t(start), "duration": format!("PT{minutes}M")},
            "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [kw]}]}]
        });
        (serde_json::from_value(e).unwrap(), "peak".into())
    }

    fn cap(s: &GridSignal) -> (f64, Option<DateTime<Utc>>) {
        match s {
            GridSignal::Dispatch(d) => match d.target {
                DispatchTarget::CapAt { power } => (power.as_kilowatts(), d.window.end()),
                _ => panic!("{d:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    fn apply(
        book: &mut EventBook,
        events: Vec<(Event, String)>,
        now: DateTime<Utc>,
    ) -> Vec<GridSignal> {
        book.apply(View { events }, &Mapping::new(Market::Caiso), now)
            .0
    }

    #[test]
    fn running_event_is_sent_once_and_modification_updates_it() {
        let mut book = EventBook::default();
        let out = apply(&mut book, vec![ev("a", 0, 0, 30, 5.0)], t(1));
        assert_eq!(
            out.iter().map(cap).collect::<Vec<_>>(),
            vec![(5.0, Some(t(30)))]
        );
        assert!(apply(&mut book, vec![ev("a", 0, 0, 30, 5.0)], t(2)).is_empty());
        // New limit and a later end.
        let out = apply(&mut book, vec![ev("a", 3, 0, 45, 4.0)], t(4));
        assert_eq!(
            out.iter().map(cap).collect::<Vec<_>>(),
            vec![(4.0, Some(t(45)))]
        );
        assert_eq!(book.active(), 1);
    }

    #[test]
    fn deleted_running_event_ends_within_the_grace() {
        let mut book = EventBook::default();
        apply(&mut book, vec![ev("a", 0, 0, 30, 5.0)], t(1));
        let out = apply(&mut book, vec![], t(10));
        assert_eq!(out.len(), 1);
        assert_eq!(cap(&out[0]).1, Some(t(10) + CANCEL_GRACE));
        assert_eq!(book.active(), 0);
        // A modification that moves the end into the past also ends it now.
        apply(&mut book, vec![ev("b", 0, 0, 30, 5.0)], t(11));
        let out = apply(&mut book, vec![ev("b", 12, 0, 5, 5.0)], t(12));
        assert_eq!(cap(&out[0]).1, Some(t(12) + CANCEL_GRACE));
    }

    #[test]
    fn future_event_is_held_until_start_and_dropped_if_deleted() {
        let mut book = EventBook::default();
        assert!(apply(&mut book, vec![ev("a", 0, 10, 30, 5.0)], t(0)).is_empty());
        assert_eq!(book.next_due(), Some(t(10)));
        assert!(book.release_due(t(9)).is_empty());
        // Modified before its start: only the new version is released.
        apply(&mut book, vec![ev("a", 5, 10, 20, 3.0)], t(5));
        let out = book.release_due(t(10));
        assert_eq!(
            out.iter().map(cap).collect::<Vec<_>>(),
            vec![(3.0, Some(t(30)))]
        );
        // Deleted before its start: nothing is ever sent.
        apply(&mut book, vec![ev("b", 0, 40, 30, 5.0)], t(31));
        assert!(
            apply(&mut book, vec![], t(32))
                .iter()
                .all(|s| cap(s).0 != 5.0)
        );
        assert!(book.release_due(t(41)).is_empty());
        assert_eq!(book.next_due(), None);
    }

    #[test]
    fn ended_events_are_not_sent_and_are_forgotten() {
        let mut book = EventBook::default();
        assert!(apply(&mut book, vec![ev("a", 0, 0, 30, 5.0)], t(31)).is_empty());
        apply(&mut book, vec![ev("b", 0, 0, 30, 5.0)], t(1));
        assert_eq!(book.active(), 1);
        assert!(apply(&mut book, vec![ev("b", 0, 0, 30, 5.0)], t(31)).is_empty());
        assert_eq!(book.active(), 0);
    }

    use proptest::prelude::*;

    proptest! {
        /// Over any sequence of views (events appearing, changing, vanishing) at
        /// increasing times: nothing already ended is sent, a cancellation ends within
        /// the grace, and an event that vanished leaves nothing behind.
        #[test]
        fn views_in_any_order_keep_the_book_sound(
            steps in proptest::collection::vec(
                (1i64..5, proptest::collection::vec((0usize..4, 0i64..3, -10i64..20, 1i64..30, 1u32..9), 0..4)),
                1..12,
            ),
        ) {
            let mut book = EventBook::default();
            let mut now = t(0);
            for (advance, events) in steps {
                now += TimeDelta::minutes(advance);
                let mut seen = std::collections::HashSet::new();
                let view: Vec<(Event, String)> = events
                    .into_iter()
                    .filter(|(id, ..)| seen.insert(*id))
                    .map(|(id, m, start, len, kw)| ev(&format!("e{id}"), m, start, len, f64::from(kw)))
                    .collect();
                let ids: Vec<String> = view.iter().map(|(e, _)| e.id.clone()).collect();
                let (mut out, _) = book.apply(View { events: view }, &Mapping::new(Market::Caiso), now);
                out.extend(book.release_due(now));
                for s in &out {
                    let GridSignal::Dispatch(d) = s else { continue };
                    let end = d.window.end().unwrap();
                    prop_assert!(end > now, "sent a dispatch that already ended");
                    prop_assert!(d.window.start() <= now, "sent a dispatch before its start");
                }
                for (event, _) in book.released.values() {
                    prop_assert!(ids.contains(event), "event {} vanished but is still active", event);
                }
                for h in &book.held {
                    prop_assert!(ids.contains(&h.event_id));
                    prop_assert!(h.release_at > now);
                }
            }
        }
    }
}
