//! The history of a gridflex site, kept across restarts: the facility meter (and,
//! optionally, per-job power) at the meter step, the events with their signals, plans
//! and outcomes, the high-rate capture of each response, and the reports.
//!
//! [`HistoryStore`] is the seam: a small synchronous trait an integrator can implement
//! over any database. [`SqliteStore`] (feature `sqlite`, on by default) is the embedded
//! default: one file, the SQLite library compiled in (no system library, no server),
//! versioned schema migrations, and a documented durability setting. [`MemoryStore`]
//! keeps everything in memory (tests, or a site that wants no file).
//!
//! Writes go through a [`StoreWriter`]: a background thread fed by a bounded queue, so a
//! caller on the actuation path pays one channel send and never waits for a disk. When
//! the queue is full the record is refused at once (counted in
//! [`StoreWriter::dropped`]), never buffered without bound and never waited for;
//! [`StoreWriter::flush`] waits until everything accepted so far is committed, and is
//! what "reported written" means.
//!
//! ```
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use gridflex_core::{Interval, Power};
//! use gridflex_store::{Channel, HistoryStore, MemoryStore, MeterReading, Record, Source};
//! use gridflex_store::{StoreWriter, WriterOptions};
//! use std::sync::Arc;
//!
//! let store = Arc::new(MemoryStore::default());
//! let writer = StoreWriter::spawn(store.clone(), WriterOptions::default())?;
//! let t0 = Utc.with_ymd_and_hms(2026, 7, 1, 7, 0, 0).unwrap();
//! let interval = Interval::new(t0, t0 + TimeDelta::minutes(5))?;
//! writer.submit(Record::Meter(vec![MeterReading {
//!     channel: Channel::Facility,
//!     interval,
//!     power: Power::kilowatts(820.0)?,
//!     samples: 30,
//!     source: Source::Recorded,
//! }]))?;
//! writer.flush()?; // committed
//! let back = store.meter(&Channel::Facility, interval)?;
//! assert_eq!(back[0].power, Power::kilowatts(820.0)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod memory;
mod record;
#[cfg(feature = "sqlite")]
mod sqlite;
mod writer;

use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::{Interval, IntervalSeries, Power};

pub use error::StoreError;
pub use memory::MemoryStore;
pub use record::{
    CaptureSample, Channel, DetailKind, EventDetail, EventSpan, MeterReading, Pruned, Record,
    Retention, Source, StoredReport, to_series,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, SCHEMA_VERSION, SqliteOptions, SqliteStore};
pub use writer::{StoreWriter, WriterOptions};

/// Where the history lives.
///
/// Every method is synchronous and may block on I/O: the orchestrator reads at start-up
/// and writes only through a [`StoreWriter`]'s thread. `write` applies a batch
/// atomically (all of it or none of it), so a crash never leaves half a batch.
pub trait HistoryStore: Send + Sync {
    /// Applies a batch of records in one transaction.
    fn write(&self, records: &[Record]) -> Result<(), StoreError>;

    /// The readings of `channel` whose interval starts inside `range`, oldest first.
    fn meter(&self, channel: &Channel, range: Interval) -> Result<Vec<MeterReading>, StoreError>;

    /// The latest instant covered by a reading of `channel`, if any.
    fn meter_end(&self, channel: &Channel) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// The events whose window overlaps `range`, oldest first.
    fn events(&self, range: Interval) -> Result<Vec<EventSpan>, StoreError>;

    /// The signals, plans and outcomes of one event, in the order written.
    fn details(&self, event_id: u64) -> Result<Vec<EventDetail>, StoreError>;

    /// The high-rate capture of one event's response (empty if none).
    fn capture(&self, event_id: u64) -> Result<Vec<CaptureSample>, StoreError>;

    /// The report of one event, if made.
    fn report(&self, event_id: u64) -> Result<Option<StoredReport>, StoreError>;

    /// The highest event id stored, so a restarted orchestrator numbers on from it.
    fn last_event_id(&self) -> Result<Option<u64>, StoreError>;

    /// Deletes what `retention` no longer keeps, as of `now`.
    fn prune(&self, now: DateTime<Utc>, retention: &Retention) -> Result<Pruned, StoreError>;

    /// The facility (or job) meter over `range` on a regular grid of `step`, with
    /// `None` where nothing was recorded (see [`to_series`]).
    fn meter_series(
        &self,
        channel: &Channel,
        range: Interval,
        step: TimeDelta,
    ) -> Result<IntervalSeries<Power>, StoreError> {
        to_series(&self.meter(channel, range)?, range, step)
    }
}

impl<S: HistoryStore + ?Sized> HistoryStore for std::sync::Arc<S> {
    fn write(&self, records: &[Record]) -> Result<(), StoreError> {
        (**self).write(records)
    }
    fn meter(&self, channel: &Channel, range: Interval) -> Result<Vec<MeterReading>, StoreError> {
        (**self).meter(channel, range)
    }
    fn meter_end(&self, channel: &Channel) -> Result<Option<DateTime<Utc>>, StoreError> {
        (**self).meter_end(channel)
    }
    fn events(&self, range: Interval) -> Result<Vec<EventSpan>, StoreError> {
        (**self).events(range)
    }
    fn details(&self, event_id: u64) -> Result<Vec<EventDetail>, StoreError> {
        (**self).details(event_id)
    }
    fn capture(&self, event_id: u64) -> Result<Vec<CaptureSample>, StoreError> {
        (**self).capture(event_id)
    }
    fn report(&self, event_id: u64) -> Result<Option<StoredReport>, StoreError> {
        (**self).report(event_id)
    }
    fn last_event_id(&self) -> Result<Option<u64>, StoreError> {
        (**self).last_event_id()
    }
    fn prune(&self, now: DateTime<Utc>, retention: &Retention) -> Result<Pruned, StoreError> {
        (**self).prune(now, retention)
    }
}

/// The cut-off of a retention of `days`, as of `now`.
pub(crate) fn cutoff(now: DateTime<Utc>, days: Option<u32>) -> Option<DateTime<Utc>> {
    days.and_then(|d| now.checked_sub_signed(TimeDelta::days(i64::from(d))))
}
