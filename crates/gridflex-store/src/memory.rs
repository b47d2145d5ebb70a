//! [`MemoryStore`]: the history in memory (tests, or a site that wants no file).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use gridflex_core::Interval;

use crate::record::{CaptureSample, Channel, EventDetail, EventSpan, MeterReading, StoredReport};
use crate::{HistoryStore, Pruned, Record, Retention, StoreError, cutoff};

#[derive(Debug, Default)]
struct Inner {
    meter: BTreeMap<(Channel, DateTime<Utc>, i64), MeterReading>,
    events: BTreeMap<u64, EventSpan>,
    details: Vec<EventDetail>,
    captures: BTreeMap<u64, Vec<CaptureSample>>,
    reports: BTreeMap<u64, StoredReport>,
}

/// The history in memory: same behaviour as the SQLite store, gone when dropped.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn len_ns(r: &MeterReading) -> i64 {
    r.interval.duration().num_nanoseconds().unwrap_or(i64::MAX)
}

impl HistoryStore for MemoryStore {
    fn write(&self, records: &[Record]) -> Result<(), StoreError> {
        for r in records {
            if let Record::Meter(m) = r {
                for x in m {
                    crate::record::to_ns(x.interval.end())?;
                }
            }
        }
        let mut g = self.lock();
        for r in records {
            match r {
                Record::Meter(m) => {
                    for x in m {
                        g.meter.insert(
                            (x.channel.clone(), x.interval.start(), len_ns(x)),
                            x.clone(),
                        );
                    }
                }
                Record::Event(e) => {
                    g.events.insert(e.event_id, e.clone());
                }
                Record::Detail(d) => g.details.push(d.clone()),
                Record::Capture { event_id, samples } => {
                    g.captures.insert(*event_id, samples.clone());
                }
                Record::Report(rep) => {
                    g.reports.insert(rep.event_id, rep.clone());
                }
            }
        }
        Ok(())
    }

    fn meter(&self, channel: &Channel, range: Interval) -> Result<Vec<MeterReading>, StoreError> {
        let g = self.lock();
        let mut out: Vec<MeterReading> = g
            .meter
            .range(
                (channel.clone(), range.start(), i64::MIN)
                    ..(channel.clone(), range.end(), i64::MIN),
            )
            .map(|(_, r)| r.clone())
            .collect();
        out.sort_by_key(|r| (r.interval.start(), len_ns(r)));
        Ok(out)
    }

    fn meter_end(&self, channel: &Channel) -> Result<Option<DateTime<Utc>>, StoreError> {
        let g = self.lock();
        Ok(g.meter
            .iter()
            .filter(|((c, _, _), _)| c == channel)
            .map(|(_, r)| r.interval.end())
            .max())
    }

    fn events(&self, range: Interval) -> Result<Vec<EventSpan>, StoreError> {
        Ok(self
            .lock()
            .events
            .values()
            .filter(|e| e.window.start() < range.end() && e.window.end() > range.start())
            .cloned()
            .collect())
    }

    fn details(&self, event_id: u64) -> Result<Vec<EventDetail>, StoreError> {
        Ok(self
            .lock()
            .details
            .iter()
            .filter(|d| d.event_id == event_id)
            .cloned()
            .collect())
    }

    fn capture(&self, event_id: u64) -> Result<Vec<CaptureSample>, StoreError> {
        Ok(self
            .lock()
            .captures
            .get(&event_id)
            .cloned()
            .unwrap_or_default())
    }

    fn report(&self, event_id: u64) -> Result<Option<StoredReport>, StoreError> {
        Ok(self.lock().reports.get(&event_id).cloned())
    }

    fn last_event_id(&self) -> Result<Option<u64>, StoreError> {
        let g = self.lock();
        Ok(g.events
            .keys()
            .chain(g.reports.keys())
            .chain(g.details.iter().map(|d| &d.event_id))
            .max()
            .copied())
    }

    fn prune(&self, now: DateTime<Utc>, retention: &Retention) -> Result<Pruned, StoreError> {
        let mut g = self.lock();
        let mut pruned = Pruned::default();
        if let Some(cut) = cutoff(now, retention.meter_days) {
            let before = g.meter.len();
            g.meter.retain(|_, r| r.interval.end() > cut);
            pruned.meter = (before - g.meter.len()) as u64;
        }
        let old_events = |g: &Inner, cut: DateTime<Utc>| -> Vec<u64> {
            g.events
                .values()
                .filter(|e| e.window.end() <= cut)
                .map(|e| e.event_id)
                .collect()
        };
        if let Some(cut) = cutoff(now, retention.capture_days) {
            for id in old_events(&g, cut) {
                if let Some(c) = g.captures.remove(&id) {
                    pruned.capture += c.len() as u64;
                }
            }
        }
        if let Some(cut) = cutoff(now, retention.event_days) {
            for id in old_events(&g, cut) {
                g.events.remove(&id);
                g.reports.remove(&id);
                g.details.retain(|d| d.event_id != id);
                if let Some(c) = g.captures.remove(&id) {
                    pruned.capture += c.len() as u64;
                }
                pruned.events += 1;
            }
        }
        Ok(pruned)
    }
}
