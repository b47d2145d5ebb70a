//! Baseline accuracy on non-event days, to choose a method (markets.md §b: PJM screens
//! CBLs with the relative RMSE, threshold believed 20 % `[K]`).
//!
//! With `B` the adjusted baseline, `A` the metered load, `e = B - A` over all `n`
//! intervals of all test days and `Ā` the mean load:
//!
//! - RMSE = `sqrt(Σ e² / n)`; relative RMSE = RMSE / Ā (PJM's RRMSE);
//! - CV(RMSE) = `sqrt(Σ e² / (n - 1)) / Ā` (ASHRAE Guideline 14 form with one degree of
//!   freedom);
//! - NMBE = `Σ e / (n Ā)`: positive when the baseline over-states the load (it would
//!   over-credit a reduction).
//!
//! ```
//! use gridflex_core::Power;
//! use gridflex_mv::accuracy::AccuracyMetrics;
//!
//! let kw = |v| Power::kilowatts(v).unwrap();
//! // Baseline vs actual: errors +10, -10 on a 100 kW mean.
//! let m = AccuracyMetrics::from_pairs([(kw(110.0), kw(100.0)), (kw(90.0), kw(100.0))])?;
//! assert!((m.relative_rmse - 0.10).abs() < 1e-12);
//! assert!((m.cv_rmse - (200.0_f64).sqrt() / 100.0).abs() < 1e-12);
//! assert_eq!(m.nmbe, 0.0);
//! # Ok::<(), gridflex_mv::MvError>(())
//! ```

use chrono::{NaiveDate, NaiveTime};
use gridflex_core::{Interval, Power};
use serde::{Deserialize, Serialize};

use crate::MvError;
use crate::baseline::Baseline;
use crate::calendar::Calendar;
use crate::meter::Meter;

/// Error statistics of a baseline against metered load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AccuracyMetrics {
    /// Intervals compared.
    pub n: usize,
    /// Mean metered load.
    pub mean_actual: Power,
    /// Root-mean-square error.
    pub rmse: Power,
    /// RMSE / mean load.
    pub relative_rmse: f64,
    /// `sqrt(Σe² / (n - 1))` / mean load.
    pub cv_rmse: f64,
    /// `Σ(B - A) / (n · mean load)`.
    pub nmbe: f64,
}

impl AccuracyMetrics {
    /// Metrics from (baseline, actual) pairs. Needs at least two pairs and a positive
    /// mean load.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Power, Power)>) -> Result<Self, MvError> {
        let (mut n, mut sa, mut se, mut se2) = (0usize, 0.0, 0.0, 0.0);
        for (b, a) in pairs {
            let e = b.as_watts() - a.as_watts();
            n += 1;
            sa += a.as_watts();
            se += e;
            se2 += e * e;
        }
        if n < 2 {
            return Err(MvError::NotEnoughSamples {
                what: "baseline accuracy intervals",
                found: n,
                needed: 2,
            });
        }
        let nf = n as f64;
        let mean = sa / nf;
        if mean <= 0.0 {
            return Err(MvError::InvalidParameter {
                name: "mean actual load",
                value: format!("{mean} W"),
                reason: "relative accuracy metrics need a positive mean load",
            });
        }
        let rmse = (se2 / nf).sqrt();
        Ok(Self {
            n,
            mean_actual: Power::watts(mean)?,
            rmse: Power::watts(rmse)?,
            relative_rmse: rmse / mean,
            cv_rmse: (se2 / (nf - 1.0)).sqrt() / mean,
            nmbe: se / (nf * mean),
        })
    }
}

/// The outcome of [`baseline_accuracy`].
#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyReport {
    /// The statistics over every interval of every test day used.
    pub metrics: AccuracyMetrics,
    /// The test days used.
    pub days: Vec<NaiveDate>,
    /// Test days that could not be used, with the reason.
    pub skipped: Vec<(NaiveDate, MvError)>,
}

/// Runs `baseline` as if each test day had an event from `start` to `end` local time,
/// and compares the adjusted baseline with the metered load. Test days should be
/// non-event days; a day that is an excluded event day in `calendar`, or whose
/// baseline fails (too few days, missing data), is listed in `skipped`.
pub fn baseline_accuracy(
    baseline: &Baseline,
    meter: &Meter,
    calendar: &Calendar,
    test_days: &[NaiveDate],
    start: NaiveTime,
    end: NaiveTime,
) -> Result<AccuracyReport, MvError> {
    if end <= start {
        return Err(MvError::InvalidParameter {
            name: "window end",
            value: end.to_string(),
            reason: "must be after the window start on the same day",
        });
    }
    let zone = meter.zone();
    let mut days = Vec::with_capacity(test_days.len());
    let mut skipped = Vec::new();
    let mut pairs = Vec::new();
    for &date in test_days {
        if calendar.is_event_day(date) {
            skipped.push((
                date,
                MvError::InvalidParameter {
                    name: "test day",
                    value: date.to_string(),
                    reason: "is an event day of the calendar",
                },
            ));
            continue;
        }
        let event = zone
            .to_utc(date.and_time(start))
            .and_then(|s| {
                let e = zone.to_utc(date.and_time(end))?;
                Interval::new(s.earlier(), e.earlier())
            })
            .map_err(MvError::from)
            .and_then(|event| baseline.compute(meter, calendar, event));
        match event {
            Ok(result) => {
                days.push(date);
                pairs.extend(
                    result
                        .intervals
                        .iter()
                        .map(|i| (i.adjusted_baseline, i.actual)),
                );
            }
            Err(e) => skipped.push((date, e)),
        }
    }
    Ok(AccuracyReport {
        metrics: AccuracyMetrics::from_pairs(pairs)?,
        days,
        skipped,
    })
}
