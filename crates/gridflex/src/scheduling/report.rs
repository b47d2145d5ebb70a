//! Per-day figures of the scheduling loop.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use gridflex_core::{Energy, IntervalSeries, Money, Price};
use serde::{Deserialize, Serialize};

/// One UTC day of scheduling, at the prices seen (real-time where it came, else
/// day-ahead).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayReport {
    /// The day (UTC).
    pub day: NaiveDate,
    /// Deferrable energy run with scheduling.
    pub energy: Energy,
    /// Its cost.
    pub cost: Money,
    /// The same jobs run as they came (each from its arrival, continuously, ignoring
    /// the site limit): energy in this day.
    pub energy_as_they_come: Energy,
    /// Its cost.
    pub cost_as_they_come: Money,
    /// `cost_as_they_come − cost`. Work moved across midnight shows on the day it ran,
    /// so one day can be negative; a week's sum is the saving.
    pub saved: Money,
    /// Energy run in intervals with a negative price.
    pub absorbed: Energy,
    /// What absorbing it earned (the negative prices' value, a positive amount).
    pub absorbed_value: Money,
    /// Energy the as-they-come run would have used at negative prices.
    pub absorbed_as_they_come: Energy,
    /// Energy run inside windows where a program asked for consumption.
    pub absorbed_on_request: Energy,
    /// Jobs finished this day by their deadline.
    pub deadlines_met: usize,
    /// Jobs finished late this day, or whose deadline passed this day with work left.
    pub deadlines_missed: usize,
    /// Energy in intervals with no known price (left out of both costs).
    pub unpriced: Energy,
}

impl fmt::Display for DayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: deferrable {:.1} kWh for {} (as they come: {:.1} kWh for {}, saved {}); \
             absorbed at negative prices {:.1} kWh worth {} (as they come: {:.1} kWh); \
             deadlines met {}, missed {}",
            self.day,
            self.energy.as_kilowatt_hours(),
            self.cost,
            self.energy_as_they_come.as_kilowatt_hours(),
            self.cost_as_they_come,
            self.saved,
            self.absorbed.as_kilowatt_hours(),
            self.absorbed_value,
            self.absorbed_as_they_come.as_kilowatt_hours(),
            self.deadlines_met,
            self.deadlines_missed
        )?;
        if self.absorbed_on_request > Energy::ZERO {
            write!(
                f,
                "; {:.1} kWh run on a consumption request",
                self.absorbed_on_request.as_kilowatt_hours()
            )?;
        }
        if self.unpriced > Energy::ZERO {
            write!(f, "; {:.1} kWh unpriced", self.unpriced.as_kilowatt_hours())?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Acc {
    wh: f64,
    usd: f64,
    base_wh: f64,
    base_usd: f64,
    base_neg_wh: f64,
    neg_wh: f64,
    neg_usd: f64,
    unpriced_wh: f64,
    requested_wh: f64,
    met: usize,
    missed: usize,
}

/// Builds the days from the watt-hours run per interval start (`ran`), of it inside consumption requests (`requested`), the as-they-come
/// watt-hours (`baseline`) and the job outcomes (when, met).
pub(crate) fn days(
    prices: &IntervalSeries<Price>,
    ran: &BTreeMap<DateTime<Utc>, f64>,
    requested: &BTreeMap<DateTime<Utc>, f64>,
    baseline: &BTreeMap<DateTime<Utc>, f64>,
    outcomes: &[(DateTime<Utc>, bool)],
) -> Vec<DayReport> {
    let mut by_day: BTreeMap<NaiveDate, Acc> = BTreeMap::new();
    let price = |t: DateTime<Utc>| prices.at(t).ok().flatten().map(Price::as_per_megawatt_hour);
    for (&t, &wh) in ran {
        let a = by_day.entry(t.date_naive()).or_default();
        a.wh += wh;
        match price(t) {
            Some(p) => {
                a.usd += p * wh / 1e6;
                if p < 0.0 {
                    a.neg_wh += wh;
                    a.neg_usd -= p * wh / 1e6;
                }
            }
            None => a.unpriced_wh += wh,
        }
    }
    for (&t, &wh) in requested {
        by_day.entry(t.date_naive()).or_default().requested_wh += wh;
    }
    for (&t, &wh) in baseline {
        let a = by_day.entry(t.date_naive()).or_default();
        a.base_wh += wh;
        if let Some(p) = price(t) {
            a.base_usd += p * wh / 1e6;
            if p < 0.0 {
                a.base_neg_wh += wh;
            }
        }
    }
    for &(t, met) in outcomes {
        let a = by_day.entry(t.date_naive()).or_default();
        if met {
            a.met += 1;
        } else {
            a.missed += 1;
        }
    }
    let e = |wh: f64| Energy::watt_hours(wh).unwrap_or(Energy::ZERO);
    let m = |usd: f64| Money::usd(usd).unwrap_or(Money::ZERO);
    by_day
        .into_iter()
        .map(|(day, a)| DayReport {
            day,
            energy: e(a.wh),
            cost: m(a.usd),
            energy_as_they_come: e(a.base_wh),
            cost_as_they_come: m(a.base_usd),
            saved: m(a.base_usd - a.usd),
            absorbed: e(a.neg_wh),
            absorbed_value: m(a.neg_usd),
            absorbed_as_they_come: e(a.base_neg_wh),
            absorbed_on_request: e(a.requested_wh),
            deadlines_met: a.met,
            deadlines_missed: a.missed,
            unpriced: e(a.unpriced_wh),
        })
        .collect()
}
