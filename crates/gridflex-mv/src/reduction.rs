//! Delivered reduction per interval and per event, raw and as settled, and performance
//! against a committed reduction.
//!
//! ```
//! use gridflex_mv::reduction::SettlementRule;
//! # use chrono::{TimeDelta, TimeZone, Utc};
//! # use gridflex_core::{Interval, IntervalSeries, MarketZone, Power};
//! # use gridflex_mv::{Baseline, Calendar, Meter};
//! # let start = Utc.with_ymd_and_hms(2025, 7, 1, 7, 0, 0).unwrap();
//! # let mut v = vec![Power::kilowatts(400.0)?; 20 * 24];
//! # v[13 * 24 + 14] = Power::kilowatts(300.0)?; // 2025-07-14 14:00 local
//! # v[13 * 24 + 15] = Power::kilowatts(450.0)?;
//! # let meter = Meter::new(IntervalSeries::from_values(start, TimeDelta::hours(1), v)?, MarketZone::Caiso)?;
//! # let t0 = Utc.with_ymd_and_hms(2025, 7, 14, 21, 0, 0).unwrap();
//! # let event = Interval::new(t0, t0 + TimeDelta::hours(2))?;
//! let result = Baseline::caiso_10in10().compute(&meter, &Calendar::new(MarketZone::Caiso), event)?;
//! let report = result.reduction();
//! // Hour 1: 400 - 300 = 100 kW; hour 2: 400 - 450 = -50 kW, floored at 0 by CAISO.
//! assert_eq!(report.raw_energy.as_kilowatt_hours(), 50.0);
//! assert_eq!(report.settled_energy.as_kilowatt_hours(), 100.0);
//! assert_eq!(result.settlement, SettlementRule::FloorAtZero);
//! # Ok::<(), gridflex_mv::MvError>(())
//! ```

use chrono::TimeDelta;
use gridflex_core::{Energy, Interval, IntervalSeries, Power};
use serde::{Deserialize, Serialize};

use crate::baseline::BaselineResult;

/// How a program settles interval reductions below zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SettlementRule {
    /// Negative interval reductions settle at zero (CAISO DREM, markets.md §a `[V]`).
    FloorAtZero,
    /// Reductions settle as measured, negative ones included.
    Net,
}

impl SettlementRule {
    /// The settled value of one interval's raw reduction.
    pub fn settle(self, raw: Power) -> Power {
        match self {
            SettlementRule::FloorAtZero => raw.max(Power::ZERO),
            SettlementRule::Net => raw,
        }
    }
}

/// One interval's reduction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IntervalReduction {
    /// The interval.
    pub interval: Interval,
    /// Adjusted baseline minus metered load.
    pub raw: Power,
    /// The reduction as the program settles it.
    pub settled: Power,
}

/// The reduction of one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReductionReport {
    /// The rule applied.
    pub rule: SettlementRule,
    /// Per interval.
    pub intervals: Vec<IntervalReduction>,
    /// Sum of raw reduction times interval length.
    pub raw_energy: Energy,
    /// Sum of settled reduction times interval length.
    pub settled_energy: Energy,
    /// Settled energy divided by the event duration.
    pub mean_settled: Power,
}

impl ReductionReport {
    /// Performance against a committed reduction: the event's mean settled reduction
    /// over the commitment, the intervals that met it, and the shortfall energy.
    pub fn performance(&self, committed: Power) -> Performance {
        let mut shortfall = Energy::ZERO;
        let mut met = 0;
        for r in &self.intervals {
            if r.settled >= committed {
                met += 1;
            } else {
                shortfall += (committed - r.settled) * r.interval.duration();
            }
        }
        let ratio = if committed > Power::ZERO {
            self.mean_settled / committed
        } else {
            1.0
        };
        Performance {
            committed,
            delivered: self.mean_settled,
            ratio,
            intervals_met: met,
            intervals: self.intervals.len(),
            shortfall,
        }
    }
}

/// Delivered against committed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Performance {
    /// The committed reduction.
    pub committed: Power,
    /// The event's mean settled reduction.
    pub delivered: Power,
    /// `delivered / committed` (1.0 when nothing was committed).
    pub ratio: f64,
    /// Intervals whose settled reduction reached the commitment.
    pub intervals_met: usize,
    /// Event intervals.
    pub intervals: usize,
    /// Sum over short intervals of (committed - settled) times the interval length.
    pub shortfall: Energy,
}

impl BaselineResult {
    /// The adjusted baseline over the event as a series (for reports and plots).
    pub fn adjusted_baseline_series(&self) -> Result<IntervalSeries<Power>, crate::MvError> {
        self.series_of(|b| b.adjusted_baseline)
    }

    /// The metered load over the event as a series.
    pub fn actual_series(&self) -> Result<IntervalSeries<Power>, crate::MvError> {
        self.series_of(|b| b.actual)
    }

    fn series_of(
        &self,
        f: impl Fn(&crate::baseline::BaselineInterval) -> Power,
    ) -> Result<IntervalSeries<Power>, crate::MvError> {
        let step = self
            .intervals
            .first()
            .map_or(self.event.duration(), |b| b.interval.duration());
        Ok(IntervalSeries::from_values(
            self.event.start(),
            step,
            self.intervals.iter().map(f),
        )?)
    }

    /// The delivered reduction under the method's settlement rule.
    pub fn reduction(&self) -> ReductionReport {
        self.reduction_with(self.settlement)
    }

    /// The delivered reduction under a chosen settlement rule.
    pub fn reduction_with(&self, rule: SettlementRule) -> ReductionReport {
        // Every interval of a result has the meter's length: sum powers, scale once.
        let step = self
            .intervals
            .first()
            .map_or(TimeDelta::zero(), |b| b.interval.duration());
        let mut raw_sum = Power::ZERO;
        let mut settled_sum = Power::ZERO;
        let intervals: Vec<IntervalReduction> = self
            .intervals
            .iter()
            .map(|b| {
                let raw = b.adjusted_baseline - b.actual;
                let settled = rule.settle(raw);
                raw_sum += raw;
                settled_sum += settled;
                IntervalReduction {
                    interval: b.interval,
                    raw,
                    settled,
                }
            })
            .collect();
        let raw_energy = raw_sum * step;
        let settled_energy = settled_sum * step;
        ReductionReport {
            rule,
            intervals,
            raw_energy,
            settled_energy,
            mean_settled: settled_energy.mean_power_over(self.event),
        }
    }
}
