//! Criterion benches of the hal on the simulator: one telemetry read and one
//! `set_power_limit` through the `PowerDevice` trait, the same without the async trait,
//! and a fleet-wide telemetry sweep of 1,000 simulated GPUs.

use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gridflex_core::ManualClock;
use gridflex_core::{JobId, Power, power};
use gridflex_hal::PowerDevice;
use gridflex_hal::sim::{SimFleet, SimGpu, SimGpuSpec, SimJob, WorkloadKind, WorkloadProfile};

/// Polls a future that is ready at once (every simulator call is), without a runtime,
/// so the bench measures the call and the boxed future, not an executor.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn watts(w: f64) -> Power {
    Power::watts(w).unwrap_or_else(|e| panic!("{e}"))
}

fn loaded_fleet(n: usize) -> (ManualClock, SimFleet) {
    let clock = ManualClock::default();
    let fleet = SimFleet::new(Arc::new(clock.clone()), n, &SimGpuSpec::h100_sxm())
        .unwrap_or_else(|e| panic!("{e}"));
    let job = JobId::new("bench").unwrap_or_else(|e| panic!("{e}"));
    SimJob::start(
        job,
        fleet.iter().cloned().collect(),
        WorkloadProfile::of(WorkloadKind::Generic),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    clock.advance(Duration::from_secs(5));
    (clock, fleet)
}

fn single(c: &mut Criterion) {
    let (_clock, fleet) = loaded_fleet(1);
    let gpu: Arc<SimGpu> = Arc::clone(fleet.gpu(0).unwrap_or_else(|| panic!("empty fleet")));
    let dev: Arc<dyn PowerDevice> = gpu.clone();
    c.bench_function("sim/telemetry via trait", |b| {
        b.iter(|| black_box(ready(dev.telemetry())))
    });
    c.bench_function("sim/telemetry_now", |b| {
        b.iter(|| black_box(gpu.telemetry_now()))
    });
    let (lo, hi) = (power!(400 W), power!(600 W));
    let mut flip = false;
    c.bench_function("sim/set_power_limit via trait", |b| {
        b.iter(|| {
            flip = !flip;
            black_box(ready(dev.set_power_limit(if flip { lo } else { hi })))
        })
    });
    c.bench_function("sim/set_power_limit_now", |b| {
        b.iter(|| {
            flip = !flip;
            black_box(gpu.set_power_limit_now(if flip { lo } else { hi }))
        })
    });
}

fn fleet_sweep(c: &mut Criterion) {
    let (clock, fleet) = loaded_fleet(1_000);
    let devices = fleet.devices();
    let mut out = Vec::with_capacity(1_000);
    c.bench_function("sim/fleet telemetry sweep 1000 (telemetry_into)", |b| {
        b.iter(|| {
            fleet
                .telemetry_into(&mut out)
                .unwrap_or_else(|e| panic!("{e}"));
            black_box(out.len())
        })
    });
    c.bench_function("sim/fleet telemetry sweep 1000 via trait", |b| {
        b.iter(|| {
            let mut n = 0;
            for d in &devices {
                n += usize::from(ready(d.telemetry()).is_ok());
            }
            black_box(n)
        })
    });
    let mut w = 300.0;
    c.bench_function("sim/fleet set_power_limit 1000 via trait", |b| {
        b.iter(|| {
            w = if w > 600.0 { 300.0 } else { w + 1.0 };
            let limit = watts(w);
            for d in &devices {
                black_box(ready(d.set_power_limit(limit)).is_ok());
            }
        })
    });
    // The facade's pattern: the fleet was read (telemetry sweep), time has moved on by
    // 100 us, every GPU is still settling from the last command, and a new limit goes to
    // all of them. Only the commands are timed; the request is recorded lazily.
    c.bench_function(
        "sim/fleet set_power_limit 1000 after 100 us, settling",
        |b| {
            b.iter_batched(
                || {
                    fleet
                        .telemetry_into(&mut out)
                        .unwrap_or_else(|e| panic!("{e}"));
                    clock.advance(Duration::from_micros(100));
                    w = if w > 600.0 { 300.0 } else { w + 7.0 };
                    watts(w)
                },
                |limit| {
                    for d in &devices {
                        black_box(ready(d.set_power_limit(limit)).is_ok());
                    }
                },
                BatchSize::PerIteration,
            )
        },
    );
    // Settling work: each iteration advances the clock 10 ms with every GPU in a cap transient.
    c.bench_function("sim/fleet 10 ms of cap transient, 1000 GPUs", |b| {
        b.iter(|| {
            w = if w > 600.0 { 300.0 } else { w + 50.0 };
            for g in fleet.iter() {
                black_box(g.set_power_limit_now(watts(w)).is_ok());
            }
            clock.advance(Duration::from_millis(10));
            fleet
                .telemetry_into(&mut out)
                .unwrap_or_else(|e| panic!("{e}"));
            black_box(out.len())
        })
    });
}

criterion_group!(benches, single, fleet_sweep);
criterion_main!(benches);
