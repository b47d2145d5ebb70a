//! Price-responsive time shifting of deferrable work (issue 5, item 9).
//!
//! Given a price series (hourly or 5-minute) and deferrable jobs, each with the running
//! time it still needs, the facility power it draws while running and a deadline,
//! [`shift`] chooses when each job runs so that energy cost is least and every job
//! finishes by its deadline.
//!
//! Method: with no constraint coupling the jobs (no shared power cap), each job's
//! choice is independent, and because its cost in an interval is its energy times
//! that interval's price, the cheapest schedule runs it in the cheapest eligible
//! intervals: whole intervals in ascending price (earlier first on ties), and the
//! remainder as a fraction of the next cheapest one. That is a fractional knapsack
//! with equal weights, so it is exact; the tests check it against exhaustive search.
//! An interval is eligible when it has a price, starts at or after the series start
//! and ends at or before the job's deadline. A job may be stopped and resumed between
//! intervals (it is deferrable); within a fractional interval it runs from the
//! interval's start.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gridflex_core::{Energy, Interval, IntervalSeries, JobId, Money, Power, Price};
use serde::{Deserialize, Serialize};

use crate::PlannerError;

/// A deferrable job to place in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeferrableWork {
    /// The job.
    pub id: JobId,
    /// Facility power while it runs (watts in JSON).
    pub power: Power,
    /// Running time it still needs (JSON `remaining_s`, seconds).
    #[serde(rename = "remaining_s", with = "gridflex_core::duration_s::std")]
    pub remaining: Duration,
    /// When it must be finished.
    pub deadline: DateTime<Utc>,
}

/// One stretch of running: `fraction` of `interval`, from the interval's start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// The price interval.
    pub interval: Interval,
    /// Share of the interval the job runs, in `(0, 1]`.
    pub fraction: f64,
}

/// When one job runs, and what it costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSchedule {
    /// The job.
    pub job: Arc<JobId>,
    /// Its runs in time order.
    pub runs: Vec<Run>,
    /// Energy used.
    pub energy: Energy,
    /// Cost at the interval prices.
    pub cost: Money,
}

/// The time-shifting answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftPlan {
    /// One schedule per job, in input order.
    pub jobs: Vec<JobSchedule>,
    /// Total energy.
    pub energy: Energy,
    /// Total cost.
    pub cost: Money,
}

/// Least-cost schedule of deferrable work against `prices`; every job finishes by its
/// deadline, or the call fails naming the job that cannot.
///
/// ```
/// use std::time::Duration;
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex_core::{IntervalSeries, JobId, Power, Price};
/// use gridflex_planner::{DeferrableWork, shift};
///
/// let start = Utc.with_ymd_and_hms(2025, 8, 14, 0, 0, 0).unwrap();
/// let prices = IntervalSeries::from_values(
///     start,
///     TimeDelta::hours(1),
///     [90.0, 30.0, 60.0, 20.0].map(|p| Price::per_megawatt_hour(p).unwrap()),
/// )?;
/// let work = DeferrableWork {
///     id: JobId::new("batch")?,
///     power: Power::kilowatts(100.0)?,
///     remaining: Duration::from_secs(90 * 60),
///     deadline: start + TimeDelta::hours(3),
/// };
/// let plan = shift(&prices, &[work])?;
/// // One hour at $30, half an hour at $60 (the $20 hour ends after the deadline).
/// assert!((plan.cost.as_usd() - (3.0 + 3.0)).abs() < 1e-9);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn shift(
    prices: &IntervalSeries<Price>,
    jobs: &[DeferrableWork],
) -> Result<ShiftPlan, PlannerError> {
    let step = prices.step();
    let step_s = gridflex_core::units::seconds_f64(step);
    let intervals: Vec<(usize, Interval, Price)> = prices
        .iter()
        .enumerate()
        .filter_map(|(i, (iv, p))| p.map(|p| (i, iv, p)))
        .collect();
    // Cheapest first, earlier on ties: one order serves every job.
    let mut by_price = intervals.clone();
    by_price.sort_by(|a, b| {
        a.2.as_per_megawatt_hour()
            .total_cmp(&b.2.as_per_megawatt_hour())
            .then(a.0.cmp(&b.0))
    });
    let mut out = Vec::with_capacity(jobs.len());
    let (mut energy, mut cost) = (Energy::ZERO, Money::ZERO);
    for (k, job) in jobs.iter().enumerate() {
        let field = |f: &str| format!("jobs[{k}].{f}");
        if job.power.is_negative() {
            return Err(PlannerError::invalid(
                field("power"),
                format!("must not be negative, got {}", job.power),
            ));
        }
        let need = job.remaining.as_secs_f64() / step_s;
        let eligible = by_price
            .iter()
            .filter(|(_, iv, _)| iv.end() <= job.deadline);
        let available = eligible.clone().count() as f64;
        if need > available + 1e-9 {
            return Err(PlannerError::invalid(
                field("deadline"),
                format!(
                    "needs {:.3} h of running but only {:.3} h of priced intervals end by {}",
                    job.remaining.as_secs_f64() / 3600.0,
                    available * step_s / 3600.0,
                    job.deadline.to_rfc3339()
                ),
            ));
        }
        let mut left = need;
        let mut runs = Vec::new();
        let (mut e_job, mut c_job) = (Energy::ZERO, Money::ZERO);
        for &(i, iv, price) in eligible {
            if left <= 1e-12 {
                break;
            }
            let fraction = left.min(1.0);
            left -= fraction;
            // `fraction` is in (0, 1], so the scaled energy is always valid.
            let e = (job.power * step.to_std().unwrap_or_default())
                .checked_mul(fraction)
                .ok_or_else(|| PlannerError::invalid(field("power"), "energy out of range"))?;
            e_job += e;
            c_job += e * price;
            runs.push((
                i,
                Run {
                    interval: iv,
                    fraction,
                },
            ));
        }
        runs.sort_by_key(|(i, _)| *i);
        energy += e_job;
        cost += c_job;
        out.push(JobSchedule {
            job: Arc::new(job.id.clone()),
            runs: runs.into_iter().map(|(_, r)| r).collect(),
            energy: e_job,
            cost: c_job,
        });
    }
    Ok(ShiftPlan {
        jobs: out,
        energy,
        cost,
    })
}
