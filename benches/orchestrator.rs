//! Signal arrival -> every actuation command issued, on 1,000 and 10,000 simulated GPUs.
//!
//! Time is paused (tokio virtual time), so the simulator's physics never advances
//! during a measurement: what is timed is the rules, the planner, the fan-out of
//! commands through the `PowerDevice`/`WorkloadControl` traits and the bookkeeping.
//! The audit log is `AuditLog::discard()`: records are still built and numbered, but
//! their encoding (which a real log does on its writer thread, after the commands are
//! out) is not measured. Between iterations (untimed) the fleet is restored. Besides
//! criterion's estimate, each bench prints the p50 and p99 of its individual iterations
//! and the heap allocations of one signal.
//!
//! Each case runs with metrics off and on (`gridflex::metrics`, registered in a
//! Prometheus registry), and with no `tracing` subscriber: the spans on the path cost
//! nothing then, which the allocation count shows (it is the same as before the spans
//! were added, see docs/metrics.md).

use std::time::Duration;

#[path = "support/mod.rs"]
mod support;

#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use gridflex::prelude::*;
use gridflex::simulated::{JobPlan, SimulatedFacility};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 8, 14, 16, 0, 0)
        .single()
        .unwrap_or_default()
}

/// 1,000 GPUs per `scale`: 25 critical inference jobs of 8, 50 flexible training jobs
/// of 12, 25 deferrable batch jobs of 8.
fn jobs(scale: usize) -> Vec<JobPlan> {
    let mut plans = Vec::new();
    for i in 0..25 * scale {
        plans.push(JobPlan::new(
            format!("infer-{i}"),
            8,
            JobClass::Critical { floor: 0.85 },
            WorkloadKind::Inference,
        ));
    }
    for i in 0..50 * scale {
        let class = JobClass::Flexible {
            floor: 0.5,
            max_pause: Duration::from_secs(600),
        };
        plans.push(JobPlan::new(
            format!("train-{i}"),
            12,
            class,
            WorkloadKind::Pretraining,
        ));
    }
    for i in 0..25 * scale {
        let class = JobClass::Deferrable {
            deadline: t0() + TimeDelta::hours(8),
        };
        plans.push(JobPlan::new(
            format!("batch-{i}"),
            8,
            class,
            WorkloadKind::FineTuning,
        ));
    }
    plans
}

fn bench_case(c: &mut Criterion, name: &str, scale: usize, response: TimeDelta, metrics: bool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    // Built inside the runtime: built outside, this bench's workloads read idle at the
    // sweep (112 kW for 1,000 GPUs) and the signal needed no command, so it timed a
    // no-op for a while unnoticed; `support` now stops on a signal that does nothing.
    let facility = runtime
        .block_on(async { SimulatedFacility::build(t0(), &jobs(scale)) })
        .unwrap_or_else(|e| panic!("{e}"));
    let node = PricingNodeId::new("TH_SP15_GEN-APND").unwrap_or_else(|e| panic!("{e}"));
    let mut rules = ProgramRules::new(Market::Caiso, power!(500 kW).times(scale));
    let mut price = PriceRule::new(
        node.clone(),
        MarketRun::CaisoRtm,
        price!(300 per MWh),
        power!(500 kW).times(scale),
    );
    price.response_time = response;
    rules.price = Some(price);
    let mut registry = gridflex::prometheus_client::registry::Registry::default();
    let mut orchestrator = runtime.block_on(async {
        let clock = facility.clock();
        let mut builder = facility
            .orchestrator(clock)
            .facility(
                FacilityModel::new(power!(20 kW).times(scale), 1.1)
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .rules(rules)
            .audit(AuditLog::discard());
        if metrics {
            builder = builder.metrics(gridflex::metrics::Metrics::register(&mut registry));
        }
        let mut o = builder.build().unwrap_or_else(|e| panic!("{e}"));
        // Let the workloads ramp up (virtual time), then take the telemetry sweep the
        // hot path plans from.
        tokio::time::sleep(Duration::from_secs(5)).await;
        o.sweep().await;
        o
    });
    let interval =
        Interval::new(t0(), t0() + TimeDelta::minutes(5)).unwrap_or_else(|e| panic!("{e}"));
    let signal = GridSignal::Price(PricePoint::new(
        MarketRun::CaisoRtm,
        node,
        interval,
        Price::per_megawatt_hour(900.0).unwrap_or_default(),
    ));
    support::signal_to_commands(c, name, &runtime, &mut orchestrator, &signal);
}

fn orchestrator(c: &mut Criterion) {
    for (name, scale, response) in [
        (
            "signal -> commands, 1,000 GPUs, caps (5 s response)",
            1,
            TimeDelta::seconds(5),
        ),
        (
            "signal -> commands, 1,000 GPUs, fast stage (20 ms response)",
            1,
            TimeDelta::milliseconds(20),
        ),
        (
            "signal -> commands, 10,000 GPUs, fast stage (20 ms response)",
            10,
            TimeDelta::milliseconds(20),
        ),
    ] {
        bench_case(c, name, scale, response, false);
        bench_case(c, &format!("{name}, metrics on"), scale, response, true);
    }
}

criterion_group!(benches, orchestrator);
criterion_main!(benches);
