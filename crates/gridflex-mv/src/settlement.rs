//! Energy settlement: credit = settled reduction x LMP per interval (markets.md §e).
//!
//! PJM pays economic demand response the full LMP only in intervals where the LMP is at
//! or above the month's Net Benefits Test price (FERC Order 745, `[V]`); that price is a
//! parameter, [`PaymentRule::NetBenefitsTest`].

use gridflex_core::{Interval, IntervalSeries, Money, Price};
use serde::{Deserialize, Serialize};

use crate::MvError;
use crate::reduction::ReductionReport;

/// Which intervals earn an energy credit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PaymentRule {
    /// Every interval is paid at its LMP.
    AllIntervals,
    /// Only intervals whose LMP is at or above this Net Benefits Test price are paid.
    NetBenefitsTest(Price),
}

/// One interval's credit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IntervalCredit {
    /// The interval.
    pub interval: Interval,
    /// The LMP over the interval (time-weighted mean when prices are finer).
    pub lmp: Price,
    /// Whether the payment rule pays this interval.
    pub paid: bool,
    /// Settled reduction energy times LMP (zero when not paid).
    pub credit: Money,
}

/// The energy credits of one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditReport {
    /// Per interval.
    pub intervals: Vec<IntervalCredit>,
    /// The sum of the interval credits.
    pub total: Money,
}

/// Energy credits for a reduction given LMPs.
///
/// The price series may be coarser than the meter (an hourly LMP covers twelve 5-minute
/// intervals) or finer (5-minute LMPs over hourly meter data are averaged); every
/// meter interval must be covered by prices, and a missing price is an error naming it.
///
/// ```
/// # use chrono::{TimeDelta, TimeZone, Utc};
/// # use gridflex_core::{Interval, IntervalSeries, MarketZone, Power, Price};
/// # use gridflex_mv::{Baseline, Calendar, Meter};
/// use gridflex_mv::settlement::{energy_credits, PaymentRule};
/// # let start = Utc.with_ymd_and_hms(2025, 7, 1, 7, 0, 0).unwrap();
/// # let mut v = vec![Power::kilowatts(400.0)?; 20 * 24];
/// # v[13 * 24 + 14] = Power::kilowatts(300.0)?;
/// # let meter = Meter::new(IntervalSeries::from_values(start, TimeDelta::hours(1), v)?, MarketZone::Pjm)?;
/// # let t0 = Utc.with_ymd_and_hms(2025, 7, 14, 21, 0, 0).unwrap();
/// # let event = Interval::new(t0, t0 + TimeDelta::hours(1))?;
/// # let result = Baseline::meter_before_meter_after().compute(&meter, &Calendar::new(MarketZone::Pjm), event)?;
/// let lmp = IntervalSeries::from_values(t0, TimeDelta::hours(1), [Price::per_megawatt_hour(150.0)?])?;
/// // 100 kWh at $150/MWh = $15; the NBT price of $120 is met.
/// let credits = energy_credits(&result.reduction(), &lmp, PaymentRule::NetBenefitsTest(Price::per_megawatt_hour(120.0)?))?;
/// assert_eq!(credits.total.to_string(), "$15.00");
/// # Ok::<(), gridflex_mv::MvError>(())
/// ```
pub fn energy_credits(
    reduction: &ReductionReport,
    lmp: &IntervalSeries<Price>,
    rule: PaymentRule,
) -> Result<CreditReport, MvError> {
    let mut total = Money::ZERO;
    let mut intervals = Vec::with_capacity(reduction.intervals.len());
    for r in &reduction.intervals {
        let price = price_over(lmp, r.interval)?;
        let paid = match rule {
            PaymentRule::AllIntervals => true,
            PaymentRule::NetBenefitsTest(nbt) => price >= nbt,
        };
        let credit = if paid {
            (r.settled * r.interval.duration()) * price
        } else {
            Money::ZERO
        };
        total += credit;
        intervals.push(IntervalCredit {
            interval: r.interval,
            lmp: price,
            paid,
            credit,
        });
    }
    Ok(CreditReport { intervals, total })
}

/// The time-weighted mean price over `interval`, which prices must cover completely.
fn price_over(lmp: &IntervalSeries<Price>, interval: Interval) -> Result<Price, MvError> {
    let missing = MvError::MissingPrice { interval };
    let first = lmp
        .index_of(interval.start())
        .map_err(|_| missing.clone())?;
    let mut covered = chrono::TimeDelta::zero();
    let mut weighted = 0.0;
    let mut i = first;
    while covered < interval.duration() {
        let (span, value) = match (lmp.interval(i), lmp.values().get(i)) {
            (Some(span), Some(Some(v))) => (span, *v),
            _ => return Err(missing),
        };
        let Some(part) = span.intersection(&interval) else {
            return Err(missing);
        };
        let secs = gridflex_core::units::seconds_f64(part.duration());
        weighted += value.as_per_megawatt_hour() * secs;
        covered += part.duration();
        i += 1;
    }
    Ok(Price::per_megawatt_hour(
        weighted / gridflex_core::units::seconds_f64(interval.duration()),
    )?)
}
