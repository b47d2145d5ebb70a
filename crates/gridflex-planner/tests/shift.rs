//! Time shifting: exact against exhaustive search on small cases, deadlines kept.

use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use gridflex_core::{IntervalSeries, JobId, Power, Price};
use gridflex_planner::{DeferrableWork, PlannerError, shift};
use proptest::prelude::*;

/// Least cost over every way to run `quarters` quarter-intervals in the eligible
/// intervals (each 0, 1/4, ... 1 of an interval).
fn brute(prices: &[f64], quarters: usize) -> Option<f64> {
    fn go(prices: &[f64], left: usize) -> Option<f64> {
        match prices.split_first() {
            None => (left == 0).then_some(0.0),
            Some((&p, rest)) => (0..=4.min(left))
                .filter_map(|q| go(rest, left - q).map(|c| c + p * q as f64 / 4.0))
                .reduce(f64::min),
        }
    }
    go(prices, quarters)
}

proptest! {
    #[test]
    fn exact_against_exhaustive_search(
        prices in prop::collection::vec(prop::option::weighted(0.9, -50.0..300.0f64), 1..7),
        jobs in prop::collection::vec((0usize..20, 1u32..8, 0.1..500.0f64), 1..4),
        hourly in any::<bool>(),
    ) {
        let start = Utc.with_ymd_and_hms(2025, 8, 14, 0, 0, 0).unwrap();
        let step = if hourly { TimeDelta::hours(1) } else { TimeDelta::minutes(5) };
        let series = IntervalSeries::new(
            start,
            step,
            prices.iter().map(|p| p.map(|v| Price::per_megawatt_hour(v).unwrap())).collect(),
        ).unwrap();
        let step_s = step.num_seconds() as u64;
        let work: Vec<DeferrableWork> = jobs.iter().enumerate().map(|(i, &(q, end, kw))| DeferrableWork {
            id: JobId::new(format!("job-{i}")).unwrap(),
            power: Power::kilowatts(kw).unwrap(),
            remaining: Duration::from_secs(step_s * q as u64 / 4),
            deadline: start + step * end as i32,
        }).collect();
        let feasible: Vec<Option<f64>> = work.iter().zip(&jobs).map(|(w, &(q, _, kw))| {
            let eligible: Vec<f64> = series.iter()
                .filter(|(iv, p)| p.is_some() && iv.end() <= w.deadline)
                .map(|(_, p)| p.unwrap().as_per_megawatt_hour() * kw / 1e3 * step_s as f64 / 3600.0)
                .collect();
            brute(&eligible, q)
        }).collect();
        match shift(&series, &work) {
            Ok(plan) => {
                for ((sched, w), best) in plan.jobs.iter().zip(&work).zip(&feasible) {
                    let best = best.expect("planned a job the search finds infeasible");
                    prop_assert!((sched.cost.as_usd() - best).abs() < 1e-9 * (1.0 + best.abs()), "{} vs {best}", sched.cost);
                    let ran: f64 = sched.runs.iter().map(|r| r.fraction).sum::<f64>() * step_s as f64;
                    prop_assert!((ran - w.remaining.as_secs_f64()).abs() < 1e-6);
                    prop_assert!(sched.runs.iter().all(|r| r.interval.end() <= w.deadline && r.fraction > 0.0 && r.fraction <= 1.0));
                    prop_assert!(sched.runs.windows(2).all(|p| p[0].interval.start() < p[1].interval.start()));
                }
            }
            Err(e) => {
                let k = feasible.iter().position(Option::is_none);
                prop_assert!(k.is_some(), "refused a feasible case: {e}");
                prop_assert_eq!(e.field().map(str::to_owned), Some(format!("jobs[{}].deadline", k.unwrap())));
            }
        }
    }
}

#[test]
fn negative_power_is_refused() {
    let start = Utc.with_ymd_and_hms(2025, 8, 14, 0, 0, 0).unwrap();
    let series = IntervalSeries::from_values(
        start,
        TimeDelta::hours(1),
        [Price::per_megawatt_hour(1.0).unwrap()],
    )
    .unwrap();
    let w = DeferrableWork {
        id: JobId::new("x").unwrap(),
        power: Power::watts(-1.0).unwrap(),
        remaining: Duration::from_secs(60),
        deadline: start + TimeDelta::hours(1),
    };
    let e = shift(&series, &[w]).unwrap_err();
    assert!(matches!(e, PlannerError::Invalid { .. }));
    assert_eq!(e.field(), Some("jobs[0].power"));
}
