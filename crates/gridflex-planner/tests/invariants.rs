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
        let baseline = fleet.current_facility_power().as_watts();
        let req = request(baseline * frac, resp, ramp);
        let plan = plan(&fleet, &req, &PlannerOptions::default()).unwrap();
        check_invariants(&fleet, &req, &plan);
    }

    #[test]
    fn shortfall_is_the_true_gap((gens, fixed, mult, frac) in
        (prop::collection::vec(job_strategy(64), 1..30), 0.0..50_000.0f64, 1.0..1.6f64, 0.0..1.0f64))
    {
        let fleet = build_fleet(&gens, fixed, mult);
        let baseline = fleet.current_facility_power().as_watts();
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
        let baseline = fleet.current_facility_power().as_watts();
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
