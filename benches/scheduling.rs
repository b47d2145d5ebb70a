//! Scheduling benches (issue 21): `shift_within_limit` placing 1,000 deferrable jobs
//! over a day of 5-minute CAISO-shaped prices (288 intervals) under a binding site
//! limit, without and with minimum run lengths (one job in ten runs at least 30
//! minutes at a time). Each bench prints the schedule's certified gap once before
//! timing.
use std::hint::black_box;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use gridflex::core::{IntervalSeries, JobId, Power, Price};
use gridflex::planner::{DeferrableWork, SiteLimit, SiteWork, shift_within_limit};
use gridflex::simulated::caiso_shaped_prices;

/// A small deterministic generator (64-bit LCG), so every run plans the same jobs.
struct Lcg(u64);
impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// 1,000 jobs of 1 to 12 kW needing 0.5 to 6 h by a deadline 8 to 24 h out; the site
/// has room for 35 % of their combined power at once.
fn instance(min_run_share: f64) -> (IntervalSeries<Price>, Vec<SiteWork>, SiteLimit) {
    let start = Utc
        .with_ymd_and_hms(2025, 4, 14, 7, 0, 0)
        .single()
        .unwrap_or_default();
    let prices =
        caiso_shaped_prices(start, 1, TimeDelta::minutes(5), 21).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Lcg(0x5eed_2106);
    let mut total = 0.0;
    let jobs: Vec<SiteWork> = (0..1000)
        .map(|i| {
            let kw = 1.0 + 11.0 * rng.unit();
            total += kw;
            let due_h = 8.0 + 16.0 * rng.unit();
            let work_h = (0.5 + 5.5 * rng.unit()).min(due_h * 0.5);
            let min_run = if rng.unit() < min_run_share {
                Duration::from_secs(30 * 60)
            } else {
                Duration::ZERO
            };
            SiteWork {
                work: DeferrableWork {
                    id: JobId::new(format!("job-{i:04}")).unwrap_or_else(|e| panic!("{e}")),
                    power: Power::kilowatts(kw).unwrap_or_else(|e| panic!("{e}")),
                    remaining: Duration::from_secs_f64(work_h * 3600.0),
                    deadline: start + TimeDelta::minutes((due_h * 60.0) as i64),
                },
                min_run,
            }
        })
        .collect();
    let site = SiteLimit {
        limit: Power::kilowatts(0.35 * total).unwrap_or_else(|e| panic!("{e}")),
        other_load: None,
    };
    (prices, jobs, site)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("scheduling");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for (name, share) in [
        ("1000_jobs_288_intervals", 0.0),
        ("1000_jobs_288_intervals_min_run", 0.1),
    ] {
        let (prices, jobs, site) = instance(share);
        let plan = shift_within_limit(&prices, &jobs, &site).unwrap_or_else(|e| panic!("{e}"));
        let peak = plan
            .load
            .iter()
            .map(|p| p.as_kilowatts())
            .fold(0.0, f64::max);
        println!(
            "{name}: cost {}, lower bound {}, certified gap {} ({:.3} % of the cost), peak {:.0} kW of {:.0} kW",
            plan.plan.cost,
            plan.lower_bound,
            plan.gap(),
            100.0 * plan.gap().as_usd() / plan.plan.cost.as_usd().abs().max(1e-9),
            peak,
            site.limit.as_kilowatts()
        );
        g.bench_function(name, |b| {
            b.iter(|| shift_within_limit(black_box(&prices), black_box(&jobs), black_box(&site)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
