//! What the history holds: meter readings, events and their records, response captures
//! and reports.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::{Interval, IntervalSeries, Power};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Which meter a reading belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The facility meter (what the utility settles on).
    Facility,
    /// The power of one job (the sum of its devices).
    Job(String),
}

impl Channel {
    /// The stored name: `facility` or `job:ID`.
    pub fn key(&self) -> String {
        match self {
            Channel::Facility => "facility".to_owned(),
            Channel::Job(id) => format!("job:{id}"),
        }
    }

    /// Parses a stored name.
    pub fn from_key(key: &str) -> Option<Self> {
        match key {
            "facility" => Some(Channel::Facility),
            _ => key
                .strip_prefix("job:")
                .filter(|id| !id.is_empty())
                .map(|id| Channel::Job(id.to_owned())),
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// Where a meter reading came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Source {
    /// Recorded by the orchestrator from telemetry.
    Recorded,
    /// Imported from the site's utility interval data.
    Backfill,
}

// The stored names are used by the SQLite store only.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
impl Source {
    pub(crate) const fn key(self) -> &'static str {
        match self {
            Source::Recorded => "recorded",
            Source::Backfill => "backfill",
        }
    }

    pub(crate) fn from_key(key: &str) -> Option<Self> {
        match key {
            "recorded" => Some(Source::Recorded),
            "backfill" => Some(Source::Backfill),
            _ => None,
        }
    }
}

/// The mean power of one meter interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeterReading {
    /// The meter.
    pub channel: Channel,
    /// The interval.
    pub interval: Interval,
    /// Its mean power.
    pub power: Power,
    /// How many telemetry samples the mean is made of (0 for imported data).
    pub samples: u32,
    /// Where it came from.
    pub source: Source,
}

/// One event's identity and window (what makes its day an event day for baselines).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSpan {
    /// The orchestrator's event id (unique across restarts of one store).
    pub event_id: u64,
    /// The curtailment window as it ran (updated when the event ends early).
    pub window: Interval,
    /// Why it happened, as text (for example `dispatch E1 (PJM load management)`).
    pub cause: String,
}

/// What an [`EventDetail`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DetailKind {
    /// The grid signal that started or changed the event.
    Signal,
    /// A plan made for it.
    Plan,
    /// How it ended (restored, taken over, stopped).
    Outcome,
}

#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
impl DetailKind {
    pub(crate) const fn key(self) -> &'static str {
        match self {
            DetailKind::Signal => "signal",
            DetailKind::Plan => "plan",
            DetailKind::Outcome => "outcome",
        }
    }

    pub(crate) fn from_key(key: &str) -> Option<Self> {
        match key {
            "signal" => Some(DetailKind::Signal),
            "plan" => Some(DetailKind::Plan),
            "outcome" => Some(DetailKind::Outcome),
            _ => None,
        }
    }
}

/// A signal, plan or outcome of an event, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDetail {
    /// The event.
    pub event_id: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What it is.
    pub kind: DetailKind,
    /// The record as JSON (the same encoding as the audit log's).
    pub json: String,
}

/// One sample of an event's high-rate response capture.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CaptureSample {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// Facility power then.
    pub power: Power,
}

/// An event's report, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReport {
    /// The event.
    pub event_id: u64,
    /// When the report was made.
    pub at: DateTime<Utc>,
    /// The report as JSON.
    pub json: String,
}

/// One write to the history.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Record {
    /// Meter intervals (a reading for an interval already stored replaces it).
    Meter(Vec<MeterReading>),
    /// An event started or its window changed (replaces the previous span).
    Event(EventSpan),
    /// A signal, plan or outcome of an event.
    Detail(EventDetail),
    /// The high-rate capture of an event's response (replaces an earlier one).
    Capture {
        /// The event.
        event_id: u64,
        /// The samples, in time order.
        samples: Vec<CaptureSample>,
    },
    /// An event's report (replaces an earlier one).
    Report(StoredReport),
}

/// How long each kind of history is kept; `None` keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    /// Meter intervals (default 400 days: a year plus the longest baseline lookback).
    #[serde(rename = "meter_days")]
    pub meter_days: Option<u32>,
    /// High-rate captures (default 90 days; they are the bulkiest per event).
    #[serde(rename = "capture_days")]
    pub capture_days: Option<u32>,
    /// Events, their details and reports (default forever: they are the settlement
    /// record).
    #[serde(rename = "event_days")]
    pub event_days: Option<u32>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            meter_days: Some(400),
            capture_days: Some(90),
            event_days: None,
        }
    }
}

impl Retention {
    /// Keeps everything forever.
    pub const fn forever() -> Self {
        Self {
            meter_days: None,
            capture_days: None,
            event_days: None,
        }
    }
}

/// How many rows a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    /// Meter intervals.
    pub meter: u64,
    /// Capture samples.
    pub capture: u64,
    /// Events (with their details and reports).
    pub events: u64,
}

/// Lays readings of one channel on a regular grid of `step` over `range`: `None` where
/// nothing was recorded.
///
/// A reading longer than `step` (15-minute utility data on a 5-minute grid) fills each
/// grid interval it covers with its mean; readings shorter than `step` are averaged
/// into it, and only when they cover the whole grid interval (a partly measured
/// interval is a gap, never a guess). Readings off the grid are ignored.
pub fn to_series(
    readings: &[MeterReading],
    range: Interval,
    step: TimeDelta,
) -> Result<IntervalSeries<Power>, StoreError> {
    let step_ns = step
        .num_nanoseconds()
        .filter(|n| *n > 0)
        .ok_or_else(|| StoreError::invalid("step", format!("{step} is not positive")))?;
    let span_ns = (range.end() - range.start()).num_nanoseconds().unwrap_or(0);
    let n = usize::try_from(span_ns / step_ns).unwrap_or(0);
    // Cells filled by readings at least one step long, and sums of shorter ones; a
    // cell fully covered by shorter (finer) readings takes their mean.
    let mut coarse: Vec<Option<f64>> = vec![None; n];
    let mut fine = vec![(0.0_f64, 0_i64); n];
    for r in readings {
        let Some(len_ns) = r.interval.duration().num_nanoseconds() else {
            continue;
        };
        let Some(off) = (r.interval.start() - range.start()).num_nanoseconds() else {
            continue;
        };
        let w = r.power.as_watts();
        if len_ns >= step_ns {
            if len_ns % step_ns != 0 || off.rem_euclid(step_ns) != 0 {
                continue;
            }
            for k in 0..len_ns / step_ns {
                if let Ok(i) = usize::try_from(off / step_ns + k)
                    && let Some(c) = coarse.get_mut(i)
                {
                    *c = Some(w);
                }
            }
        } else if step_ns % len_ns == 0
            && off.rem_euclid(len_ns) == 0
            && let Ok(i) = usize::try_from(off.div_euclid(step_ns))
            && let Some(s) = fine.get_mut(i)
            && s.1 + len_ns <= step_ns
        {
            s.0 += w * len_ns as f64;
            s.1 += len_ns;
        }
    }
    let values = coarse
        .into_iter()
        .zip(fine)
        .map(|(c, (sum, covered))| {
            if covered == step_ns {
                Power::watts(sum / step_ns as f64).map(Some)
            } else {
                c.map(Power::watts).transpose()
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(IntervalSeries::new(range.start(), step, values)?)
}

/// An instant as nanoseconds since the Unix epoch (the stored form).
pub(crate) fn to_ns(at: DateTime<Utc>) -> Result<i64, StoreError> {
    at.timestamp_nanos_opt()
        .ok_or(StoreError::OutOfRange { at })
}

#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn from_ns(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}
