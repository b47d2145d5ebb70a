//! The history store's costs: recording one meter interval (the orchestrator's hand-off
//! to the writer thread, and the writer's commit to SQLite at each durability), and
//! settling one event's report from a year of 5-minute history (CAISO 10-in-10 and PJM
//! CBL; from memory, and read from SQLite first).

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use gridflex::core::{Interval, IntervalSeries, MarketZone, Power};
use gridflex::program::Settlement;
use gridflex::report::{SettlementInput, settle};
use gridflex::signals::Market;
use gridflex::store::{
    Channel, Durability, HistoryStore, MemoryStore, MeterReading, Record, Source, SqliteOptions,
    SqliteStore, StoreWriter, WriterOptions,
};

/// Local midnight, 2025-01-01, Eastern (also fine for Pacific grids: 5-minute aligned).
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 8, 0, 0)
        .single()
        .unwrap_or_default()
}

fn reading(k: i64) -> MeterReading {
    let at = start() + TimeDelta::minutes(5 * k);
    MeterReading {
        channel: Channel::Facility,
        interval: Interval::new(at, at + TimeDelta::minutes(5)).unwrap_or_else(|e| panic!("{e}")),
        power: Power::kilowatts(800.0 + (k % 288) as f64).unwrap_or(Power::ZERO),
        samples: 30,
        source: Source::Recorded,
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gridflex-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    dir.join("history.db")
}

fn record_interval(c: &mut Criterion) {
    let mut g = c.benchmark_group("history/record_interval");
    // What the orchestrator pays: building the record and one non-blocking send to the
    // writer thread (whose memory store replaces one interval, so the thread keeps up;
    // its own cost is the rows below).
    let writer = StoreWriter::spawn(Arc::new(MemoryStore::default()), WriterOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut n = 0u32;
    g.bench_function("submit", |b| {
        b.iter(|| {
            n += 1;
            if n.is_multiple_of(1024) {
                let _ = writer.flush();
            }
            let _ = writer.submit(Record::Meter(vec![reading(7)]));
        })
    });
    // What the writer thread pays: one transaction with one interval.
    for (name, durability) in [
        ("sqlite_normal", Durability::Normal),
        ("sqlite_full", Durability::Full),
    ] {
        let mut options = SqliteOptions::default();
        options.durability = durability;
        let store = SqliteStore::open(temp(name), options).unwrap_or_else(|e| panic!("{e}"));
        let mut k = 0i64;
        g.bench_function(name, |b| {
            b.iter(|| {
                k += 1;
                store
                    .write(&[Record::Meter(vec![reading(k)])])
                    .unwrap_or_else(|e| panic!("{e}"))
            })
        });
    }
    g.finish();
}

fn report_from_a_year(c: &mut Criterion) {
    let mut g = c.benchmark_group("history/report_from_a_year");
    let n = 366 * 288;
    let values: Vec<Power> = (0..n as i64).map(|k| reading(k).power).collect();
    let series = IntervalSeries::from_values(start(), TimeDelta::minutes(5), values)
        .unwrap_or_else(|e| panic!("{e}"));
    // The event: 14:00-16:00 local on Tuesday 2025-12-30, the year's last weekday.
    for (name, market, zone, event_start) in [
        (
            "caiso_10in10",
            Market::Caiso,
            MarketZone::Caiso,
            Utc.with_ymd_and_hms(2025, 12, 30, 22, 0, 0),
        ),
        (
            "pjm_cbl",
            Market::Pjm,
            MarketZone::Pjm,
            Utc.with_ymd_and_hms(2025, 12, 30, 19, 0, 0),
        ),
    ] {
        let event_start = event_start.single().unwrap_or_default();
        let event = Interval::new(event_start, event_start + TimeDelta::hours(2))
            .unwrap_or_else(|e| panic!("{e}"));
        let settlement = Settlement::for_market(market);
        let input = SettlementInput::new(series.clone(), zone, Some(settlement), event);
        let check = settle(&input).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            check.delivery.fallback.is_none(),
            "{:?}",
            check.delivery.fallback
        );
        g.bench_function(name, |b| b.iter(|| settle(&input)));
    }
    // The same from SQLite: read the year back, then settle.
    let store =
        SqliteStore::open(temp("year"), SqliteOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let readings: Vec<MeterReading> = (0..n as i64).map(reading).collect();
    store
        .write(&[Record::Meter(readings)])
        .unwrap_or_else(|e| panic!("{e}"));
    let year =
        Interval::new(start(), start() + TimeDelta::days(366)).unwrap_or_else(|e| panic!("{e}"));
    let event_start = Utc
        .with_ymd_and_hms(2025, 12, 30, 22, 0, 0)
        .single()
        .unwrap_or_default();
    let event = Interval::new(event_start, event_start + TimeDelta::hours(2))
        .unwrap_or_else(|e| panic!("{e}"));
    g.bench_function("caiso_10in10_read_from_sqlite", |b| {
        b.iter(|| {
            let meter = store
                .meter_series(&Channel::Facility, year, TimeDelta::minutes(5))
                .unwrap_or_else(|e| panic!("{e}"));
            let settlement = Settlement::for_market(Market::Caiso);
            settle(&SettlementInput::new(
                meter,
                MarketZone::Caiso,
                Some(settlement),
                event,
            ))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = record_interval, report_from_a_year
}
criterion_main!(benches);
