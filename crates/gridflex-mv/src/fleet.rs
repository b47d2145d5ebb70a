//! Settling a fleet: many meters, many events, many methods in one call, each meter
//! read and indexed once, spread over threads.
//!
//! An aggregator settles thousands of sites after each event. Calling a baseline once
//! per meter, event and method works, but re-reading each meter for every call is what
//! made it slow; here every meter is indexed once ([`Meter`]) and every (event, method)
//! pair is computed on it, meters spread over `threads` worker threads. The figures are
//! the same [`Baseline::compute`] gives (a test checks it).
//!
//! ```
//! use std::num::NonZeroUsize;
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use gridflex_core::{Interval, IntervalSeries, MarketZone, Power};
//! use gridflex_mv::fleet::{FleetEvent, FleetMeter, settle};
//! use gridflex_mv::{Calendar, Meter, Method};
//!
//! let start = Utc.with_ymd_and_hms(2025, 6, 1, 4, 0, 0).unwrap();
//! let meter = |kw: f64| -> Result<Meter, gridflex_mv::MvError> {
//!     let series = IntervalSeries::from_values(start, TimeDelta::hours(1), vec![Power::kilowatts(kw)?; 30 * 24])?;
//!     Meter::new(series, MarketZone::Pjm)
//! };
//! let meters = vec![FleetMeter::new("site-a", meter(500.0)?), FleetMeter::new("site-b", meter(800.0)?)];
//! let t0 = Utc.with_ymd_and_hms(2025, 6, 27, 18, 0, 0).unwrap();
//! let events = vec![FleetEvent::new("ev-1", Interval::new(t0, t0 + TimeDelta::hours(2))?)];
//! let rows = settle(&meters, &Calendar::new(MarketZone::Pjm), &events,
//!     &[Method::PjmCbl, Method::PjmSameDay], NonZeroUsize::MIN);
//! assert_eq!(rows.len(), 4); // 2 meters x 1 event x 2 methods, in that order
//! let cbl = rows[0].figures.as_ref().map_err(Clone::clone)?;
//! assert_eq!((rows[0].meter, rows[0].method), (0, Method::PjmCbl));
//! assert_eq!(cbl.baseline_energy.as_kilowatt_hours(), 1000.0); // 500 kW for 2 h
//! # Ok::<(), gridflex_mv::MvError>(())
//! ```

use std::num::NonZeroUsize;

use chrono::NaiveDate;
use gridflex_core::{Energy, Interval, Power};

use crate::baseline::{CalendarDays, EventWork};
use crate::{Baseline, Calendar, Meter, Method, MvError};

/// One meter of the fleet, indexed.
#[derive(Debug, Clone)]
pub struct FleetMeter {
    /// The meter's id (a site, a service point).
    pub id: String,
    /// Its data.
    pub meter: Meter,
}

impl FleetMeter {
    /// A meter with its id.
    pub fn new(id: impl Into<String>, meter: Meter) -> Self {
        Self {
            id: id.into(),
            meter,
        }
    }
}

/// One event to settle on every meter.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetEvent {
    /// The event's id.
    pub id: String,
    /// Its window.
    pub window: Interval,
}

impl FleetEvent {
    /// An event with its id.
    pub fn new(id: impl Into<String>, window: Interval) -> Self {
        Self {
            id: id.into(),
            window,
        }
    }
}

/// The settlement figures of one meter, event and method.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetFigures {
    /// Adjusted baseline energy over the event.
    pub baseline_energy: Energy,
    /// Metered energy over the event.
    pub metered_energy: Energy,
    /// Settled reduction energy (the method's settlement rule applied).
    pub reduction_energy: Energy,
    /// Mean settled reduction.
    pub mean_reduction: Power,
    /// The days the baseline averaged, most recent first.
    pub selected_days: Vec<NaiveDate>,
}

/// One row of a fleet settlement.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetRow {
    /// Index of the meter in the input.
    pub meter: usize,
    /// Index of the event in the input.
    pub event: usize,
    /// The method.
    pub method: Method,
    /// The figures, or why they could not be computed.
    pub figures: Result<FleetFigures, MvError>,
}

/// Settles every event with every method on every meter: one row per (meter, event,
/// method), in that order (meters, then events, then methods), computed on up to
/// `threads` threads. The calendar (holidays, excluded event days) is shared by all
/// meters; each meter's data must be in the calendar's zone.
///
/// The figures are those of [`Baseline::compute`] and its
/// [`reduction`](crate::BaselineResult::reduction), bit for bit, but computed without
/// the per-interval output, and each meter's work is shared across methods: the event
/// is located once per adjustment window, each candidate day's values are read once for
/// every method, and each event's calendar facts once for the whole fleet.
pub fn settle(
    meters: &[FleetMeter],
    calendar: &Calendar,
    events: &[FleetEvent],
    methods: &[Method],
    threads: NonZeroUsize,
) -> Vec<FleetRow> {
    let baselines: Vec<Baseline> = methods.iter().map(|m| m.baseline()).collect();
    settle_with(meters, calendar, events, &baselines, threads)
}

/// [`settle`] with baselines of the caller's choosing (an edited cap, a gap policy,
/// a custom rule): one row per (meter, event, baseline), in that order; a row's
/// `method` is its baseline's.
///
/// ```
/// # use std::num::NonZeroUsize;
/// # use chrono::{TimeDelta, TimeZone, Utc};
/// # use gridflex_core::{Interval, IntervalSeries, MarketZone, Power};
/// use gridflex_mv::fleet::{FleetEvent, FleetMeter, settle_with};
/// use gridflex_mv::{Adjustment, Baseline, Calendar, GapPolicy, Meter};
/// # let start = Utc.with_ymd_and_hms(2025, 6, 1, 4, 0, 0).unwrap();
/// # let series = IntervalSeries::from_values(start, TimeDelta::hours(1), vec![Power::kilowatts(500.0)?; 30 * 24])?;
/// # let meters = vec![FleetMeter::new("site-a", Meter::new(series, MarketZone::Pjm)?)];
/// # let t0 = Utc.with_ymd_and_hms(2025, 6, 27, 18, 0, 0).unwrap();
/// # let events = vec![FleetEvent::new("ev-1", Interval::new(t0, t0 + TimeDelta::hours(2))?)];
/// // CAISO 10-in-10 with the 40 % load-point cap, days with gaps skipped.
/// let esder = Baseline::caiso_10in10()
///     .with_adjustment(Adjustment::multiplicative(3.0, 1.0, Some(0.40)))
///     .with_gap_policy(GapPolicy::SkipDay);
/// let rows = settle_with(&meters, &Calendar::new(MarketZone::Pjm), &events,
///     &[esder, Baseline::pjm_cbl()], NonZeroUsize::MIN);
/// assert_eq!(rows.len(), 2);
/// assert!(rows.iter().all(|r| r.figures.is_ok()));
/// # Ok::<(), gridflex_mv::MvError>(())
/// ```
pub fn settle_with(
    meters: &[FleetMeter],
    calendar: &Calendar,
    events: &[FleetEvent],
    baselines: &[Baseline],
    threads: NonZeroUsize,
) -> Vec<FleetRow> {
    // The calendar facts of each event's lookback, shared by every meter.
    let lookback = baselines
        .iter()
        .map(Baseline::lookback_days)
        .max()
        .unwrap_or(0);
    let shared: Vec<CalendarDays> = events
        .iter()
        .map(|e| {
            let day = calendar.zone().operating_date(e.window.start());
            CalendarDays::new(calendar, day, lookback)
        })
        .collect();
    let one = |(i, m): (usize, &FleetMeter)| -> Vec<FleetRow> {
        let mut rows = Vec::with_capacity(events.len() * baselines.len());
        let mut work = EventWork::default();
        for (e, (event, days)) in events.iter().zip(&shared).enumerate() {
            work.next_event();
            for baseline in baselines {
                let figures = baseline
                    .totals(&m.meter, calendar, event.window, Some(days), &mut work)
                    .map(|t| FleetFigures {
                        baseline_energy: t.baseline,
                        metered_energy: t.metered,
                        reduction_energy: t.settled,
                        mean_reduction: t.mean_settled,
                        selected_days: work.selected_days().to_vec(),
                    });
                rows.push(FleetRow {
                    meter: i,
                    event: e,
                    method: baseline.method,
                    figures,
                });
            }
        }
        rows
    };
    let threads = threads.get().min(meters.len().max(1));
    if threads <= 1 {
        return meters.iter().enumerate().flat_map(one).collect();
    }
    // Contiguous chunks, one per thread, joined in order: the output order does not
    // depend on the thread count.
    let chunk = meters.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = meters
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let one = &one;
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .flat_map(|(k, m)| one((c * chunk + k, m)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            // A worker that panicked re-raises here: its rows are never silently lost.
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};
    use gridflex_core::{IntervalSeries, MarketZone};

    use super::*;

    fn meter(seed: u64) -> Meter {
        let start = Utc.with_ymd_and_hms(2025, 5, 1, 4, 0, 0).unwrap();
        let mut x = seed;
        let values = (0..60 * 96)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (x >> 40) as f64 / (1u64 << 24) as f64;
                Power::kilowatts(400.0 + 200.0 * ((i % 96) as f64 / 96.0) + 50.0 * noise).ok()
            })
            .collect();
        let series = IntervalSeries::new(start, TimeDelta::minutes(15), values).unwrap();
        Meter::new(series, MarketZone::Pjm).unwrap()
    }

    #[test]
    fn the_same_figures_as_one_call_at_a_time_whatever_the_threads() {
        let meters: Vec<_> = (0..7)
            .map(|k| FleetMeter::new(format!("m{k}"), meter(k)))
            .collect();
        let cal = Calendar::new(MarketZone::Pjm);
        let events: Vec<_> = [20u32, 23, 27]
            .iter()
            .map(|&d| {
                let t = Utc.with_ymd_and_hms(2025, 6, d, 18, 0, 0).unwrap();
                FleetEvent::new(
                    format!("e{d}"),
                    Interval::new(t, t + TimeDelta::hours(3)).unwrap(),
                )
            })
            .collect();
        let methods = Method::ALL;
        let one = settle(&meters, &cal, &events, &methods, NonZeroUsize::MIN);
        assert_eq!(one.len(), 7 * 3 * methods.len());
        for threads in [2, 3, 16] {
            let many = settle(
                &meters,
                &cal,
                &events,
                &methods,
                NonZeroUsize::new(threads).unwrap(),
            );
            assert_eq!(many, one, "{threads} threads");
        }
        for row in &one {
            let direct = row.method.baseline().compute(
                &meters[row.meter].meter,
                &cal,
                events[row.event].window,
            );
            match (&row.figures, direct) {
                (Ok(f), Ok(r)) => {
                    assert_eq!(f.reduction_energy, r.reduction().settled_energy);
                    assert_eq!(f.selected_days, r.selected_days);
                }
                (Err(a), Err(b)) => assert_eq!(*a, b),
                (a, b) => panic!("{a:?} against {b:?}"),
            }
        }
    }
}
