//! The headline scenario, shared by `examples/headline.rs` and `benches/headline.rs`:
//! the site, its program rules and the CAISO real-time price event it answers.

#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex::prelude::*;
use gridflex::simulated::JobPlan;

/// Pricing node of the site (SP15 trading hub).
pub(crate) const NODE: &str = "TH_SP15_GEN-APND";
/// The program's strike: curtail while the real-time LMP is at or above it ($/MWh).
pub(crate) const STRIKE: f64 = 300.0;
/// The price of the spike ($/MWh): far above the strike.
pub(crate) const SPIKE: f64 = 1_850.0;
/// The price of the interval after the spike ($/MWh): below the strike, so the event ends.
pub(crate) const AFTER: f64 = 62.0;
/// The facility power the program asks the site to hold during the spike (kW). Lower
/// than the site can reach without breaking a service level: the program asks for the
/// deepest cut, and the plan reports how far it falls short.
pub(crate) const CAP_KW: f64 = 50.0;
/// The program's response rule.
pub(crate) const RESPONSE_MS: i64 = 20;
/// Floor of the critical inference services (fraction of their uncapped throughput):
/// interactive serving whose latency objective leaves no headroom, so it is never slowed.
/// With a lower floor the planner also caps these services, and that part of the cut
/// follows the power cap's slower response (`docs/headline.md`).
pub(crate) const CRITICAL_FLOOR: f64 = 1.0;
/// Floor of the training runs while they run.
pub(crate) const TRAINING_FLOOR: f64 = 0.6;
/// Longest total pause of a training run per event.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(30 * 60);
/// Duration of one CAISO real-time interval.
pub(crate) const INTERVAL_MIN: i64 = 5;

/// Critical inference services of 8 GPUs.
pub(crate) const CRITICAL_JOBS: usize = 8;
/// Flexible pretraining runs of 128 GPUs.
pub(crate) const TRAINING_JOBS: usize = 5;
/// Deferrable batch jobs of 16 GPUs.
pub(crate) const BATCH_JOBS: usize = 20;

/// The start of the simulation (UTC): 2025-08-14 19:58, 12:58 PDT.
pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 8, 14, 19, 58, 0)
        .single()
        .unwrap_or_default()
}

/// The start of the priced interval: the instant the signal applies.
pub(crate) fn event_start() -> DateTime<Utc> {
    t0() + TimeDelta::minutes(2)
}

/// The end of the priced interval (the next one is priced below the strike).
pub(crate) fn event_end() -> DateTime<Utc> {
    event_start() + TimeDelta::minutes(INTERVAL_MIN)
}

/// When the run ends: long after the restore.
pub(crate) fn run_end() -> DateTime<Utc> {
    event_end() + TimeDelta::minutes(2)
}

/// Deadline of the batch jobs.
pub(crate) fn batch_deadline() -> DateTime<Utc> {
    t0() + TimeDelta::hours(6)
}

/// 1,024 H100s in 128 nodes of 8: 8 critical inference services of one node, 5
/// pretraining runs of 16 nodes (flexible: may pause up to 30 minutes per event), 20
/// batch fine-tuning jobs of 2 nodes (deferrable until 6 hours from now).
pub(crate) fn jobs() -> Vec<JobPlan> {
    jobs_with(CRITICAL_FLOOR)
}

/// The same site with another floor for the critical services.
pub(crate) fn jobs_with(critical_floor: f64) -> Vec<JobPlan> {
    let mut plans = Vec::new();
    for i in 0..CRITICAL_JOBS {
        plans.push(JobPlan::new(
            format!("infer-{i}"),
            8,
            JobClass::Critical {
                floor: critical_floor,
            },
            WorkloadKind::Inference,
        ));
    }
    for i in 0..TRAINING_JOBS {
        plans.push(JobPlan::new(
            format!("train-{i}"),
            128,
            JobClass::Flexible {
                floor: TRAINING_FLOOR,
                max_pause: MAX_PAUSE,
            },
            WorkloadKind::Pretraining,
        ));
    }
    for i in 0..BATCH_JOBS {
        plans.push(JobPlan::new(
            format!("batch-{i:02}"),
            16,
            JobClass::Deferrable {
                deadline: batch_deadline(),
            },
            WorkloadKind::FineTuning,
        ));
    }
    plans
}

/// A power in kW (only ever called with finite literals).
pub(crate) fn kw(v: f64) -> Result<Power, GridflexError> {
    Ok(Power::kilowatts(v)?)
}

/// The facility model: the simulated site meters its GPUs only (no cooling or other
/// load is simulated), so facility power is the GPU load.
pub(crate) fn facility_model() -> Result<FacilityModel, GridflexError> {
    Ok(FacilityModel::new(Power::ZERO, 1.0)?)
}

/// The program: CAISO real-time prices at the SP15 hub, strike $300/MWh, hold the
/// facility under [`CAP_KW`] within 20 ms for at least one interval.
pub(crate) fn rules() -> Result<ProgramRules, GridflexError> {
    let node = PricingNodeId::new(NODE)?;
    let mut rules = ProgramRules::new(Market::Caiso, kw(1_000.0)?);
    let mut price = PriceRule::new(
        node,
        MarketRun::CaisoRtm,
        Price::per_megawatt_hour(STRIKE)?,
        kw(CAP_KW)?,
    );
    price.response_time = TimeDelta::milliseconds(RESPONSE_MS);
    price.min_hold = TimeDelta::minutes(INTERVAL_MIN);
    rules.price = Some(price);
    Ok(rules)
}

/// One CAISO real-time interval price at the site's node.
pub(crate) fn price(start: DateTime<Utc>, lmp: f64) -> Result<GridSignal, GridflexError> {
    let node = PricingNodeId::new(NODE)?;
    let interval = Interval::new(start, start + TimeDelta::minutes(INTERVAL_MIN))?;
    Ok(GridSignal::Price(PricePoint::new(
        MarketRun::CaisoRtm,
        node,
        interval,
        Price::per_megawatt_hour(lmp)?,
    )))
}

/// The signals: the spike, then an ordinary interval.
pub(crate) fn signals() -> Result<Vec<GridSignal>, GridflexError> {
    Ok(vec![
        price(event_start(), SPIKE)?,
        price(event_end(), AFTER)?,
    ])
}
