//! Property tests of the invariants: device ranges, class limits, power under
//! target unless a shortfall is reported, exact shortfall, determinism.

mod common;

use common::*;
use gridflex_planner::*;
use proptest::prelude::*;

fn scenario() -> impl Strategy<Value = (Vec<JobGen>, f64, f64, f64, u64, f64)> {
    (
        prop::collection::vec(job_strategy(64), 0..40),
        0.0..50_000.0f64,
        1.0..1.6f64,
        0.0..1.1f64,
        prop_oneof![Just(5u64), Just(30), Just(100), Just(1000)],
        prop_oneof![Just(1e3), Just(2e4), Just(1e6), Just(1e12)],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plans_keep_every_invariant((gens, fixed, mult, frac, resp, ramp) in scenario()) {
        let fleet = build_fleet(&gens, fixed, mult);
        let baseline = fleet.current_facility_power().unwrap().as_watts();
        let req = request(baseline * frac, resp, ramp);
        let plan = plan(&fleet, &req, &PlannerOptions::default()).unwrap();
        check_invariants(&fleet, &req, &plan);
    }

    /// Windows from 0.2 s to 20 s: transitions and restores close to the window's end.
    #[test]
    fn short_windows_keep_every_invariant(
        (gens, fixed, mult, frac, resp, ramp) in scenario(),
        window_ms in 200i64..20_000,
    ) {
        let fleet = build_fleet(&gens, fixed, mult);
        let baseline = fleet.current_facility_power().unwrap().as_watts();
        let req = request_with_window(baseline * frac, resp, ramp, window_ms);
        let plan = plan(&fleet, &req, &PlannerOptions::default()).unwrap();
        check_invariants(&fleet, &req, &plan);
    }

    #[test]
    fn shortfall_is_the_true_gap((gens, fixed, mult, frac) in
        (prop::collection::vec(job_strategy(64), 1..30), 0.0..50_000.0f64, 1.0..1.6f64, 0.0..1.0f64))
    {
        let fleet = build_fleet(&gens, fixed, mult);
        let baseline = fleet.current_facility_power().unwrap().as_watts();
        let req = request(baseline * frac, 1000, 1e12);
        let plan = plan(&fleet, &req, &PlannerOptions::default()).unwrap();
        let floor = min_facility_power(&fleet, &models(&fleet));
        let target = baseline * frac;
        let tol = 1e-6 * baseline;
        match plan.shortfall {
            Some(s) => {
                prop_assert!(floor > target);
                prop_assert!((s.as_watts() - (floor - target)).abs() < tol, "{s} vs {}", floor - target);
            }
            None => prop_assert!(floor <= target + tol, "floor {floor} target {target}"),
        }
    }

    #[test]
    fn same_input_same_plan((gens, fixed, mult, frac, resp, ramp) in scenario()) {
        let fleet = build_fleet(&gens, fixed, mult);
        let baseline = fleet.current_facility_power().unwrap().as_watts();
        let req = request(baseline * frac, resp, ramp);
        let a = plan(&fleet, &req, &PlannerOptions::default()).unwrap();
        let b = plan(&fleet.clone(), &req.clone(), &PlannerOptions::default()).unwrap();
        prop_assert_eq!(&a, &b);
        let json = serde_json::to_string(&a).unwrap();
        prop_assert_eq!(serde_json::to_string(&b).unwrap(), json.clone());
        let back: Plan = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back.stages.len(), a.stages.len());
    }
}

/// A target above the baseline needs no action at all.
#[test]
fn no_action_when_target_is_met() {
    let gens: Vec<JobGen> = (0..5)
        .map(|i| JobGen {
            gpus: 8,
            draw: 600.0,
            cap_min: 200.0,
            paused: 130.0,
            curve: None,
            kind: i % 4,
            weight: 1.0,
            class: ClassGen::Flexible(0.5, true),
        })
        .collect();
    let fleet = build_fleet(&gens, 1_000.0, 1.2);
    let baseline = fleet.current_facility_power().unwrap().as_watts();
    let req = request(baseline + 1.0, 10, 1e4);
    let p = plan(&fleet, &req, &PlannerOptions::default()).unwrap();
    assert!(p.stages.is_empty() && p.restore.is_empty());
    assert_eq!(p.objective.weighted_throughput_lost, 0.0);
    assert!(p.shortfall.is_none() && p.response_shortfall.is_none());
}

/// A scenario worked by hand: one critical and two flexible jobs on the generic curve.
#[test]
fn hand_worked_allocation() {
    let job = |class| JobGen {
        gpus: 10,
        draw: 700.0,
        cap_min: 200.0,
        paused: 130.0,
        curve: None,
        kind: 0,
        weight: 1.0,
        class,
    };
    let gens = vec![
        job(ClassGen::Critical(0.9)),
        job(ClassGen::Flexible(0.5, false)),
        job(ClassGen::Flexible(0.5, false)),
    ];
    let fleet = build_fleet(&gens, 0.0, 1.0);
    // Generic curve: its two top segments (0.75..1.0 of 700 W, 175 W per GPU) both
    // cost 0.4 throughput per unit of power fraction, the cheapest; the critical job's
    // 0.9 floor sits exactly at 0.75 (525 W). Ask for 2,250 W: the three jobs' top
    // segments hold 5,250 W at one cost, so job order breaks the tie: job 0 gives
    // 1,750 W (down to 525 W per GPU), job 1 gives 500 W (650 W), job 2 nothing.
    let baseline = fleet.current_facility_power().unwrap().as_watts();
    let req = request(baseline - 2_250.0, 1000, 1e6);
    let p = plan(&fleet, &req, &PlannerOptions::default()).unwrap();
    check_invariants(&fleet, &req, &p);
    let caps: Vec<f64> = p.jobs.iter().map(|o| o.power_per_gpu.as_watts()).collect();
    assert!((caps[0] - 525.0).abs() < 1e-6, "{caps:?}");
    assert!((caps[1] - 650.0).abs() < 1e-6, "{caps:?}");
    assert!((caps[2] - 700.0).abs() < 1e-6, "{caps:?}");
    assert_eq!(p.jobs[2].cap_per_gpu, None);
    // Loss: 10 GPUs * 0.4 * (175 / 700) + 10 GPUs * 0.4 * (50 / 700).
    let want = 10.0 * 0.4 * 0.25 + 10.0 * 0.4 * 50.0 / 700.0;
    assert!((p.objective.weighted_throughput_lost - want).abs() < 1e-9);
    assert!((p.predicted_power.as_watts() - p.target.as_watts()).abs() < 1e-6);
}

/// The restore worked by hand: two paused jobs of 10 GPUs (500 W running, 100 W paused),
/// ramp 1 kW/s, overshoot 1.3x for 50 ms, facility = GPU power.
#[test]
fn hand_worked_restore() {
    let job = JobGen {
        gpus: 10,
        draw: 500.0,
        cap_min: 400.0,
        paused: 100.0,
        curve: None,
        kind: 0,
        weight: 1.0,
        class: ClassGen::Deferrable(true),
    };
    let fleet = build_fleet(&[job.clone(), job], 0.0, 1.0);
    // Only pausing both reaches 2 kW.
    let req = request(2_000.0, 1000, 1_000.0);
    let p = plan(&fleet, &req, &PlannerOptions::default()).unwrap();
    check_invariants(&fleet, &req, &p);
    assert!(p.jobs.iter().all(|o| o.state == JobState::Paused));
    let end = WINDOW_S as f64;
    let offsets: Vec<f64> = p
        .restore
        .iter()
        .map(|s| s.offset.as_secs_f64() - end)
        .collect();
    // Job 0: peak 2 kW + 10 * (1.3 * 500 - 100) W = 7.5 kW, on the line at 5.5 s.
    // Job 1: 6 kW settled + 4 kW rise + 1.5 kW overshoot = 11.5 kW (job 0's overshoot
    // has ended by then), on the line at 9.5 s.
    assert_eq!(offsets.len(), 2, "{offsets:?}");
    assert!(
        (offsets[0] - 5.5).abs() < 1e-6 && (offsets[1] - 9.5).abs() < 1e-6,
        "{offsets:?}"
    );
    assert!((p.restore[1].peak_power.as_watts() - 11_500.0).abs() < 1e-6);
    assert!((p.restore[1].predicted_power.as_watts() - 10_000.0).abs() < 1e-6);
    // An earlier restore on request keeps the spacing; a later one is refused.
    let early = p
        .restore_starting_at(std::time::Duration::from_secs(60))
        .unwrap();
    assert!((early[0].offset.as_secs_f64() - 65.5).abs() < 1e-6);
    assert!(
        p.restore_starting_at(std::time::Duration::from_secs(4000))
            .is_err()
    );
}
