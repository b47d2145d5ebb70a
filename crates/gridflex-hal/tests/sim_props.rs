//! Properties of the simulator: physical bounds, energy bookkeeping, and results that do
//! not depend on when the caller happens to read (lazy integration is invisible).

use std::sync::Arc;
use std::time::Duration;

use gridflex_core::ManualClock;
use gridflex_core::Power;
use gridflex_hal::sim::{SimFleet, SimGpu, SimGpuSpec, WorkloadKind, WorkloadProfile};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Limit(f64),
    Pause,
    Resume,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..400_000).prop_map(Op::Advance), // microseconds
        3 => (200.0f64..=700.0).prop_map(Op::Limit),
        1 => Just(Op::Pause),
        1 => Just(Op::Resume),
    ]
}

fn watts(w: f64) -> Power {
    Power::watts(w).unwrap()
}

/// Runs `ops` on a loaded GPU; with `read_each`, reads telemetry after every op.
fn run(ops: &[Op], read_each: bool) -> (f64, f64, f64, Vec<f64>) {
    let clock = ManualClock::default();
    let gpu = SimGpu::new(0, Arc::new(clock.clone()), SimGpuSpec::h100_sxm()).unwrap();
    gpu.start_workload(WorkloadProfile::of(WorkloadKind::Matmul))
        .unwrap();
    let mut powers = Vec::new();
    for op in ops {
        match op {
            Op::Advance(us) => clock.advance(Duration::from_micros(*us)),
            Op::Limit(w) => {
                let c = gpu.set_power_limit_now(watts(*w)).unwrap();
                assert_eq!(c.enforced, watts(*w));
            }
            Op::Pause => gpu.pause_workload().unwrap(),
            Op::Resume => gpu.resume_workload().unwrap(),
        }
        if read_each {
            let t = gpu.telemetry_now().unwrap();
            powers.push(t.power_instant.unwrap().as_watts());
        }
    }
    clock.advance(Duration::from_millis(1));
    (
        gpu.true_power().as_watts(),
        gpu.true_energy().as_joules(),
        gpu.work_done(),
        powers,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn reading_pattern_does_not_change_the_physics(ops in proptest::collection::vec(op(), 1..40)) {
        let (p_lazy, e_lazy, w_lazy, _) = run(&ops, false);
        let (p_eager, e_eager, w_eager, powers) = run(&ops, true);
        prop_assert!((p_lazy - p_eager).abs() < 1.0, "power {} vs {}", p_lazy, p_eager);
        prop_assert!((e_lazy - e_eager).abs() <= 1e-3 * e_eager.max(1.0), "energy {} vs {}", e_lazy, e_eager);
        prop_assert!((w_lazy - w_eager).abs() <= 1e-3 * w_eager.max(1.0), "work {} vs {}", w_lazy, w_eager);
        for p in powers {
            // Between idle without a context (latched before the start) and the
            // resume overshoot over the highest cap.
            prop_assert!(p.is_finite() && (84.0..=1.3 * 700.0 + 1e-6).contains(&p), "power {}", p);
        }
    }
}

#[test]
fn many_limit_requests_between_reads_apply_in_order() {
    let clock = ManualClock::default();
    let gpu = SimGpu::new(0, Arc::new(clock.clone()), SimGpuSpec::h100_sxm()).unwrap();
    gpu.start_workload(WorkloadProfile::of(WorkloadKind::Matmul))
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let _ = gpu.true_power();
    for i in 0..50 {
        clock.advance(Duration::from_millis(1));
        gpu.set_power_limit_now(watts(200.0 + f64::from(i) * 10.0))
            .unwrap();
    }
    assert_eq!(gpu.requested_limit(), watts(690.0));
    clock.advance(Duration::from_secs(3));
    assert!((gpu.true_power().as_watts() - 690.0).abs() < 0.05);
}

#[test]
fn energy_counter_matches_the_integral_of_power() {
    let clock = ManualClock::default();
    let fleet = SimFleet::new(Arc::new(clock.clone()), 3, &SimGpuSpec::h100_sxm()).unwrap();
    for (g, kind) in fleet.iter().zip([
        WorkloadKind::Generic,
        WorkloadKind::Inference,
        WorkloadKind::Matmul,
    ]) {
        g.start_workload(WorkloadProfile::of(kind)).unwrap();
    }
    // A 3-hour event: cap at 60 %, then release, in virtual time.
    clock.advance(Duration::from_secs(600));
    for g in fleet.iter() {
        g.set_power_limit_now(watts(420.0)).unwrap();
    }
    clock.advance(Duration::from_secs(3 * 3600));
    for g in fleet.iter() {
        g.set_power_limit_now(watts(700.0)).unwrap();
    }
    clock.advance(Duration::from_secs(600));
    let mut out = Vec::new();
    fleet.telemetry_into(&mut out).unwrap();
    for (g, t) in fleet.iter().zip(&out) {
        let counter = t.energy.unwrap();
        let exact = g.true_energy().as_joules();
        // The counter is latched at the last 100 ms update; the clock sits on an update.
        assert!(
            (counter.total.as_joules() - exact).abs() < 1e-6 * exact,
            "{} vs {exact}",
            counter.total.as_joules()
        );
        // 20 minutes at up to 700 W and 3 hours held at the 420 W cap.
        let (hi, lo) = (
            700.0 * 1200.0 + 420.0 * 10_800.0,
            600.0 * 1200.0 + 420.0 * 10_800.0,
        );
        assert!(exact < hi * 1.001 && exact > lo * 0.999, "{exact}");
    }
    // Inference (600 W uncapped) keeps more throughput under the cap than training.
    let training = fleet.gpu(0).unwrap().work_done();
    let inference = fleet.gpu(1).unwrap().work_done();
    assert!(inference > training);
}
