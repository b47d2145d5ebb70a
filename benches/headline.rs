//! Signal arrival -> every actuation command issued, for the headline scenario
//! (`examples/headline.rs`): 1,024 simulated H100s, a CAISO real-time price far above the
//! strike with a 20 ms response rule and the deepest cut (every training run and batch
//! job paused).
//!
//! As in `benches/orchestrator.rs`: time is paused (tokio virtual time), so the
//! simulator's physics never advances during a measurement and what is timed is the
//! rules, the planner, the fan-out of commands through the `PowerDevice` and
//! `WorkloadControl` traits and the bookkeeping; the audit log is
//! `AuditLog::discard()`; the fleet is restored between iterations (untimed). Besides
//! criterion's estimate, the bench prints the p50 and p99 of its individual iterations.

#[path = "../examples/headline/scenario.rs"]
mod scenario;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use gridflex::prelude::*;
use gridflex::simulated::SimulatedFacility;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn headline(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let facility = SimulatedFacility::build(scenario::t0(), &scenario::jobs())
        .unwrap_or_else(|e| panic!("{e}"));
    let signal =
        scenario::price(scenario::event_start(), scenario::SPIKE).unwrap_or_else(|e| panic!("{e}"));
    let mut orchestrator = runtime.block_on(async {
        let clock = facility.clock();
        let mut o = facility
            .orchestrator(clock.clone())
            .facility(scenario::facility_model().unwrap_or_else(|e| panic!("{e}")))
            .rules(scenario::rules().unwrap_or_else(|e| panic!("{e}")))
            .audit(AuditLog::discard())
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        // Run to the signal's instant (virtual time), then take the telemetry sweep the
        // hot path plans from.
        clock.sleep_until(scenario::event_start()).await;
        o.sweep().await;
        o
    });
    let mut samples: Vec<Duration> = Vec::new();
    let mut commands = 0;
    let name = "headline: signal -> commands, 1,024 GPUs, deepest cut (20 ms response)";
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let s = signal.clone();
                let start = Instant::now();
                let handled = runtime.block_on(orchestrator.handle_signal(s));
                let took = start.elapsed();
                total += took;
                samples.push(took);
                if let gridflex::Handled::Actuated { commands: n, .. } = black_box(handled) {
                    commands = n;
                }
                runtime.block_on(orchestrator.shutdown("bench reset"));
            }
            total
        })
    });
    samples.sort();
    println!(
        "{name}: {commands} commands per signal; per-iteration p50 {:?}, p99 {:?} over {} iterations",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.len()
    );
}

criterion_group!(benches, headline);
criterion_main!(benches);
