//! What the orchestrator benches share: time one signal from arrival to the last
//! command issued, reset with a shutdown between iterations (untimed), and print the
//! per-iteration p50 and p99 beside criterion's estimate, and the heap allocations one
//! signal makes (counted by `stats_alloc`'s instrumented system allocator). With
//! `GRIDFLEX_BENCH_DIST=1` set it also prints the percentiles from p10 to p99.9.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use gridflex::prelude::*;

/// The system allocator, counting allocations: each bench installs it with
/// `#[global_allocator] static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;`.
fn allocations() -> usize {
    let s = stats_alloc::INSTRUMENTED_SYSTEM.stats();
    s.allocations + s.reallocations
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// Benches `orchestrator.handle_signal(signal)` under `name`.
pub(crate) fn signal_to_commands<C: Clock>(
    c: &mut Criterion,
    name: &str,
    runtime: &tokio::runtime::Runtime,
    orchestrator: &mut Orchestrator<C>,
    signal: &GridSignal,
) {
    let mut samples: Vec<Duration> = Vec::new();
    let mut commands = 0;
    let mut allocated: Vec<usize> = Vec::new();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let s = signal.clone();
                let before = allocations();
                let start = Instant::now();
                let handled = runtime.block_on(orchestrator.handle_signal(s));
                let took = start.elapsed();
                allocated.push(allocations() - before);
                total += took;
                samples.push(took);
                match black_box(handled) {
                    gridflex::Handled::Actuated { commands: n, .. } if n > 0 => commands = n,
                    // A bench that times a signal doing nothing measures nothing: stop.
                    other => panic!("{name}: the signal did not actuate: {other:?}"),
                }
                runtime.block_on(orchestrator.shutdown(gridflex::audit::StopReason::Requested));
            }
            total
        })
    });
    if samples.is_empty() {
        return; // filtered out
    }
    samples.sort();
    allocated.sort_unstable();
    if std::env::var_os("GRIDFLEX_BENCH_DIST").is_some() {
        let q: Vec<String> = [0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999]
            .iter()
            .map(|&p| format!("p{}={:?}", p * 100.0, percentile(&samples, p)))
            .collect();
        println!("{name}: {}", q.join(" "));
    }
    println!(
        "{name}: {commands} commands per signal; per-iteration p50 {:?}, p99 {:?} over {} iterations; \
         heap allocations per signal: median {}, max {}",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.len(),
        allocated[allocated.len() / 2],
        allocated[allocated.len() - 1],
    );
}
