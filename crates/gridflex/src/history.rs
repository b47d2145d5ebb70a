//! The orchestrator's history: what it loads from a [`HistoryStore`] when it starts,
//! what it writes there while it runs, and the backfill of a site's own meter data.
//!
//! With a store ([`crate::OrchestratorBuilder::history`]), the orchestrator:
//! - at start, loads the facility meter of the last
//!   [`HistoryOptions::meter_days`] days and the windows of past events, so the first
//!   event after a restart settles with the program's baseline on the days before it;
//!   event ids continue from the highest stored;
//! - while running, hands every completed meter interval, every event's span, its
//!   signal decision, plans and outcome (as the audit records' JSON), its high-rate
//!   capture and its report to a [`StoreWriter`] thread: one non-blocking send each,
//!   after the commands of the moment are issued. A full queue drops the record and
//!   logs [`crate::audit::AuditEvent::HistoryFailed`]; the orchestrator never waits for
//!   the disk. Shutdown waits until everything queued is committed.
//!
//! [`backfill_csv`] imports the utility's interval data (the `mv` tool's meter CSV) so
//! baselines work from the first day.

use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::{Interval, IntervalSeries, Power};
use gridflex_store::{
    Channel, EventSpan, HistoryStore, MeterReading, Record, Source, StoreWriter, WriterOptions,
};
use serde::{Deserialize, Serialize};

use crate::GridflexError;

/// How the orchestrator uses its history store.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistoryOptions {
    /// Days of facility meter held in memory for baselines, loaded from the store at
    /// start (default 90: the 45-day lookbacks of CAISO and PJM with room for excluded
    /// days). Older intervals stay in the store only.
    pub meter_days: u32,
    /// The writer thread's queue, batch and retention.
    pub writer: WriterOptions,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        Self {
            meter_days: 90,
            writer: WriterOptions::default(),
        }
    }
}

/// What the orchestrator starts from.
pub(crate) struct Loaded {
    pub(crate) meter: Option<IntervalSeries<Power>>,
    pub(crate) event_windows: Vec<Interval>,
    pub(crate) last_event_id: Option<u64>,
}

fn floor_to(t: DateTime<Utc>, step: TimeDelta) -> DateTime<Utc> {
    let step_ns = step.num_nanoseconds().unwrap_or(i64::MAX).max(1);
    let ns = t.timestamp_nanos_opt().unwrap_or(0);
    DateTime::from_timestamp_nanos(ns - ns.rem_euclid(step_ns))
}

/// Loads the meter of the last `days` days before `now` (on the recorder's grid) and
/// the events of that span.
pub(crate) fn load(
    store: &dyn HistoryStore,
    now: DateTime<Utc>,
    step: TimeDelta,
    days: u32,
) -> Result<Loaded, GridflexError> {
    let end = floor_to(now, step);
    let start = floor_to(end - TimeDelta::days(i64::from(days.max(1))), step);
    let range = Interval::new(start, end)?;
    let meter = store.meter_series(&Channel::Facility, range, step)?;
    let meter = meter.values().iter().any(Option::is_some).then_some(meter);
    let event_windows = store
        .events(range)?
        .into_iter()
        .filter(|e| e.cause != REGULATION)
        .map(|e| e.window)
        .collect();
    Ok(Loaded {
        meter,
        event_windows,
        last_event_id: store.last_event_id()?,
    })
}

/// The cause text of regulation periods: not event days for baselines (regulation can
/// run every day).
pub(crate) const REGULATION: &str = "regulation";

pub(crate) fn span(event_id: u64, window: Interval, cause: &crate::program::Cause) -> Record {
    Record::Event(EventSpan {
        event_id,
        window,
        cause: cause.to_string(),
    })
}

pub(crate) fn meter_record(done: Vec<(Interval, Power, u32)>) -> Record {
    Record::Meter(
        done.into_iter()
            .map(|(interval, power, samples)| MeterReading {
                channel: Channel::Facility,
                interval,
                power,
                samples,
                source: Source::Recorded,
            })
            .collect(),
    )
}

/// Starts the writer for a store.
pub(crate) fn writer(
    store: std::sync::Arc<dyn HistoryStore>,
    options: &HistoryOptions,
) -> Result<StoreWriter, GridflexError> {
    Ok(StoreWriter::spawn(store, options.writer)?)
}

/// Imports a site's utility interval data into the store as the facility meter
/// (source `backfill`), so day-matching baselines work from the first day. `text` is
/// the meter CSV the `mv` tool reads (`interval_start,kw`, RFC 3339 times; see
/// docs/mv.md). Intervals already stored are replaced. Returns the number imported
/// (gaps are skipped). Nothing is written when any line is bad.
///
/// ```
/// use gridflex::history::backfill_csv;
/// use gridflex::store::{Channel, HistoryStore, MemoryStore};
///
/// let store = MemoryStore::default();
/// let csv = "interval_start,kw\n2026-06-01T07:00:00Z,812.5\n2026-06-01T07:15:00Z,809\n";
/// assert_eq!(backfill_csv(&store, csv)?, 2);
/// assert!(store.meter_end(&Channel::Facility)?.is_some());
/// # Ok::<(), gridflex::GridflexError>(())
/// ```
pub fn backfill_csv(store: &dyn HistoryStore, text: &str) -> Result<usize, GridflexError> {
    let series = gridflex_mv::input::parse_meter_csv(text)?;
    backfill(store, &series)
}

/// Imports a meter series (as [`backfill_csv`], from values already parsed).
pub fn backfill(
    store: &dyn HistoryStore,
    series: &IntervalSeries<Power>,
) -> Result<usize, GridflexError> {
    let readings: Vec<MeterReading> = series
        .iter()
        .filter_map(|(interval, v)| {
            v.map(|power| MeterReading {
                channel: Channel::Facility,
                interval,
                power,
                samples: 0,
                source: Source::Backfill,
            })
        })
        .collect();
    let n = readings.len();
    store.write(&[Record::Meter(readings)])?;
    Ok(n)
}
