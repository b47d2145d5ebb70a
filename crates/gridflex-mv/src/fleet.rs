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
pub fn settle(
    meters: &[FleetMeter],
    calendar: &Calendar,
    events: &[FleetEvent],
    methods: &[Method],
    threads: NonZeroUsize,
) -> Vec<FleetRow> {
    let baselines: Vec<(Method, Baseline)> = methods.iter().map(|&m| (m, m.baseline())).collect();
    let one = |(i, m): (usize, &FleetMeter)| -> Vec<FleetRow> {
        let mut rows = Vec::with_capacity(events.len() * baselines.len());
        for (e, event) in events.iter().enumerate() {
            for (method, baseline) in &baselines {
                rows.push(FleetRow {
                    meter: i,
                    event: e,
                    method: *method,
                    figures: baseline
                        .compute(&m.meter, calendar, event.window)
                        .map(|r| figures(&r)),
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

fn figures(r: &crate::BaselineResult) -> FleetFigures {
    let reduction = r.reduction();
    let hours = |p: Power, i: &Interval| p * i.duration();
    let (mut baseline, mut metered) = (Energy::ZERO, Energy::ZERO);
    for i in &r.intervals {
        baseline += hours(i.adjusted_baseline, &i.interval);
        metered += hours(i.actual, &i.interval);
    }
    FleetFigures {
        baseline_energy: baseline,
        metered_energy: metered,
        reduction_energy: reduction.settled_energy,
        mean_reduction: reduction.mean_settled,
        selected_days: r.selected_days.clone(),
    }
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
