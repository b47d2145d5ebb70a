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
#[path = "support/mod.rs"]
mod support;

#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

use criterion::{Criterion, criterion_group, criterion_main};
use gridflex::prelude::*;
use gridflex::simulated::SimulatedFacility;

fn headline(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    // Built inside the runtime, as the orchestrator bench does (see there).
    let facility = runtime
        .block_on(async { SimulatedFacility::build(scenario::t0(), &scenario::jobs()) })
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
    let name = "headline: signal -> commands, 1,024 GPUs, deepest cut (20 ms response)";
    support::signal_to_commands(c, name, &runtime, &mut orchestrator, &signal);
}

criterion_group!(benches, headline);
criterion_main!(benches);
