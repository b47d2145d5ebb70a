//! The SQLite and memory stores behave alike: every record kind round-trips, replaces
//! replace, retention prunes, and the writer commits in order and refuses when full.
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex_core::{Interval, Power};
use gridflex_store::{
    CaptureSample, Channel, DetailKind, EventDetail, EventSpan, HistoryStore, MemoryStore,
    MeterReading, Record, Retention, Source, SqliteOptions, SqliteStore, StoreWriter, StoredReport,
    WriterOptions, to_series,
};
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap()
}

fn kw(v: f64) -> Power {
    Power::kilowatts(v).unwrap()
}

fn reading(start: DateTime<Utc>, minutes: i64, v: f64, source: Source) -> MeterReading {
    MeterReading {
        channel: Channel::Facility,
        interval: Interval::new(start, start + TimeDelta::minutes(minutes)).unwrap(),
        power: kw(v),
        samples: 3,
        source,
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gridflex-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("history.db")
}

fn exercise(store: &dyn HistoryStore) {
    let day = Interval::new(t0(), t0() + TimeDelta::days(1)).unwrap();
    assert_eq!(store.last_event_id().unwrap(), None);
    assert_eq!(store.meter_end(&Channel::Facility).unwrap(), None);
    let meter: Vec<_> = (0..12)
        .map(|k| {
            reading(
                t0() + TimeDelta::minutes(5 * k),
                5,
                100.0 + k as f64,
                Source::Recorded,
            )
        })
        .collect();
    let window =
        Interval::new(t0() + TimeDelta::minutes(20), t0() + TimeDelta::minutes(40)).unwrap();
    store
        .write(&[
            Record::Meter(meter.clone()),
            Record::Event(EventSpan {
                event_id: 3,
                window,
                cause: "dispatch E1".into(),
            }),
            Record::Detail(EventDetail {
                event_id: 3,
                at: t0(),
                kind: DetailKind::Signal,
                json: "{\"a\":1}".into(),
            }),
            Record::Detail(EventDetail {
                event_id: 3,
                at: t0(),
                kind: DetailKind::Plan,
                json: "{\"b\":2}".into(),
            }),
            Record::Capture {
                event_id: 3,
                samples: vec![
                    CaptureSample {
                        at: t0(),
                        power: kw(5.0),
                    },
                    CaptureSample {
                        at: t0() + TimeDelta::milliseconds(20),
                        power: kw(4.0),
                    },
                ],
            },
            Record::Report(StoredReport {
                event_id: 3,
                at: t0(),
                json: "{}".into(),
            }),
        ])
        .unwrap();
    assert_eq!(store.meter(&Channel::Facility, day).unwrap(), meter);
    assert!(
        store
            .meter(&Channel::Job("j".into()), day)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.meter_end(&Channel::Facility).unwrap(),
        Some(t0() + TimeDelta::hours(1))
    );
    // A reading for a stored interval replaces it; an event's span is updated.
    let short = Interval::new(window.start(), window.start() + TimeDelta::minutes(5)).unwrap();
    store
        .write(&[
            Record::Meter(vec![reading(t0(), 5, 42.0, Source::Backfill)]),
            Record::Event(EventSpan {
                event_id: 3,
                window: short,
                cause: "dispatch E1".into(),
            }),
        ])
        .unwrap();
    let back = store.meter(&Channel::Facility, day).unwrap();
    assert_eq!(back.len(), 12);
    assert_eq!(
        (back[0].power, back[0].source),
        (kw(42.0), Source::Backfill)
    );
    assert_eq!(store.events(day).unwrap()[0].window, short);
    let kinds: Vec<_> = store.details(3).unwrap().iter().map(|d| d.kind).collect();
    assert_eq!(kinds, [DetailKind::Signal, DetailKind::Plan]);
    assert_eq!(store.capture(3).unwrap().len(), 2);
    assert_eq!(store.report(3).unwrap().unwrap().json, "{}");
    assert_eq!(store.last_event_id().unwrap(), Some(3));
    // Retention: a year later, with the defaults, meter and captures go, events stay.
    let later = t0() + TimeDelta::days(401);
    let pruned = store.prune(later, &Retention::default()).unwrap();
    assert_eq!((pruned.meter, pruned.capture, pruned.events), (12, 2, 0));
    assert!(store.meter(&Channel::Facility, day).unwrap().is_empty());
    assert!(store.capture(3).unwrap().is_empty());
    assert!(store.report(3).unwrap().is_some());
    let all = Retention {
        event_days: Some(30),
        ..Retention::default()
    };
    assert_eq!(store.prune(later, &all).unwrap().events, 1);
    assert!(store.report(3).unwrap().is_none());
    assert!(store.details(3).unwrap().is_empty());
    assert!(store.events(day).unwrap().is_empty());
}

#[test]
fn the_sqlite_store_round_trips_replaces_and_prunes() {
    exercise(&SqliteStore::in_memory().unwrap());
}

#[test]
fn the_memory_store_behaves_as_the_sqlite_one() {
    exercise(&MemoryStore::default());
}

#[test]
fn a_reopened_file_has_everything_committed() {
    let path = temp("reopen");
    {
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        store
            .write(&[Record::Meter(vec![reading(t0(), 5, 7.0, Source::Recorded)])])
            .unwrap();
    }
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let day = Interval::new(t0(), t0() + TimeDelta::days(1)).unwrap();
    assert_eq!(
        store.meter(&Channel::Facility, day).unwrap()[0].power,
        kw(7.0)
    );
    drop(store);
    if let Some(dir) = path.parent() {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn the_writer_commits_in_order_and_a_full_queue_refuses_without_waiting() {
    let store = Arc::new(MemoryStore::default());
    let writer = StoreWriter::spawn(store.clone(), WriterOptions::default()).unwrap();
    for k in 0..100 {
        writer
            .submit(Record::Meter(vec![reading(
                t0(),
                5,
                k as f64,
                Source::Recorded,
            )]))
            .unwrap();
    }
    writer.flush().unwrap();
    let day = Interval::new(t0(), t0() + TimeDelta::days(1)).unwrap();
    // The last write of the same interval wins: they were applied in order.
    assert_eq!(
        store.meter(&Channel::Facility, day).unwrap()[0].power,
        kw(99.0)
    );
    assert_eq!(writer.dropped(), 0);

    // A store that blocks: the queue of one fills and further submits are refused.
    struct Slow(std::sync::Mutex<()>);
    impl HistoryStore for Slow {
        fn write(&self, _: &[Record]) -> Result<(), gridflex_store::StoreError> {
            drop(self.0.lock().unwrap());
            Ok(())
        }
        fn meter(
            &self,
            _: &Channel,
            _: Interval,
        ) -> Result<Vec<MeterReading>, gridflex_store::StoreError> {
            Ok(vec![])
        }
        fn meter_end(
            &self,
            _: &Channel,
        ) -> Result<Option<DateTime<Utc>>, gridflex_store::StoreError> {
            Ok(None)
        }
        fn events(&self, _: Interval) -> Result<Vec<EventSpan>, gridflex_store::StoreError> {
            Ok(vec![])
        }
        fn details(&self, _: u64) -> Result<Vec<EventDetail>, gridflex_store::StoreError> {
            Ok(vec![])
        }
        fn capture(&self, _: u64) -> Result<Vec<CaptureSample>, gridflex_store::StoreError> {
            Ok(vec![])
        }
        fn report(&self, _: u64) -> Result<Option<StoredReport>, gridflex_store::StoreError> {
            Ok(None)
        }
        fn last_event_id(&self) -> Result<Option<u64>, gridflex_store::StoreError> {
            Ok(None)
        }
        fn prune(
            &self,
            _: DateTime<Utc>,
            _: &Retention,
        ) -> Result<gridflex_store::Pruned, gridflex_store::StoreError> {
            Ok(Default::default())
        }
    }
    let slow = Arc::new(Slow(std::sync::Mutex::new(())));
    let gate = slow.0.lock().unwrap();
    // Batches of one: the thread takes one record and blocks writing it (with larger
    // batches it could take more from the queue while the loop below submits).
    let options = WriterOptions {
        queue: 1,
        batch: 1,
        ..WriterOptions::default()
    };
    let writer = StoreWriter::spawn(slow.clone(), options).unwrap();
    let record = || Record::Meter(vec![reading(t0(), 5, 1.0, Source::Recorded)]);
    let refused = (0..10).filter(|_| writer.submit(record()).is_err()).count();
    // The thread holds at most one record and the queue one more.
    assert!(refused >= 8, "{refused}");
    assert_eq!(writer.dropped(), refused as u64);
    drop(gate);
    writer.flush().unwrap();
}

#[test]
fn coarse_utility_data_fills_a_finer_grid_and_finer_readings_average_only_when_complete() {
    let range = Interval::new(t0(), t0() + TimeDelta::hours(1)).unwrap();
    let mut readings = vec![reading(t0(), 15, 300.0, Source::Backfill)];
    // One-minute readings over 00:15-00:20 (complete) and two over 00:20-00:25 (partial).
    for k in 15..20 {
        readings.push(reading(
            t0() + TimeDelta::minutes(k),
            1,
            k as f64,
            Source::Recorded,
        ));
    }
    for k in 20..22 {
        readings.push(reading(
            t0() + TimeDelta::minutes(k),
            1,
            1.0,
            Source::Recorded,
        ));
    }
    let s = to_series(&readings, range, TimeDelta::minutes(5)).unwrap();
    let v: Vec<_> = s
        .values()
        .iter()
        .map(|p| p.map(|p| p.as_kilowatts()))
        .collect();
    assert_eq!(
        &v[..5],
        &[Some(300.0), Some(300.0), Some(300.0), Some(17.0), None]
    );
    assert!(v[5..].iter().all(Option::is_none));
}

proptest! {
    #[test]
    fn a_constant_meter_reads_back_constant_on_any_grid(
        kw_value in 0.0f64..1e5, n in 1usize..48, step_pick in 0usize..3,
    ) {
        let steps = [1i64, 5, 15];
        let len = steps[step_pick];
        let readings: Vec<_> = (0..n as i64)
            .map(|k| reading(t0() + TimeDelta::minutes(len * k), len, kw_value, Source::Recorded))
            .collect();
        let range = Interval::new(t0(), t0() + TimeDelta::minutes(len * n as i64)).unwrap();
        for grid in [1i64, 5, 15] {
            let s = to_series(&readings, range, TimeDelta::minutes(grid)).unwrap();
            for p in s.values().iter().flatten() {
                prop_assert!((p.as_kilowatts() - kw_value).abs() <= 1e-9 * kw_value.max(1.0));
            }
        }
    }
}
