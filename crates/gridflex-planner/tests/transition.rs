//! The transition from the fast stage to the steady mix, and the restore after it:
//! regression tests from issue 11's minimal inputs, and short pause budgets.

mod common;

use std::time::Duration;

use common::*;
use gridflex_planner::*;
use serde_json::Value;

fn load(text: &str) -> (Fleet, CurtailmentRequest) {
    // These fixtures keep gridflex 0.1's millisecond fields: read as files in the wild.
    let mut v: Value = serde_json::from_str(text).unwrap();
    gridflex_planner::json::upgrade(&mut v);
    (
        serde_json::from_value(v["fleet"].clone()).unwrap(),
        serde_json::from_value(v["request"].clone()).unwrap(),
    )
}

/// Offset (ms) of the first stage resuming `job`.
fn resumed_at(plan: &Plan, job: &str) -> Option<f64> {
    plan.stages.iter().find_map(|s| {
        s.actions
            .iter()
            .any(|a| matches!(a, Action::Resume { job: j } if j.as_str() == job))
            .then_some(s.offset.as_secs_f64() * 1e3)
    })
}

/// Issue 11, part 1: `train` (320 ms pause limit) was queued behind two jobs whose
/// resumes lower power and came back at 350 ms. It must be back by 320 ms, with no
/// shortfall of any kind and settled power never above the target.
#[test]
fn pause_limit_holds_while_others_wait() {
    let (fleet, req) = load(include_str!(
        "fixtures/issue11_pause_limit_in_transition.json"
    ));
    let p = plan(&fleet, &req, &PlannerOptions::default()).unwrap();
    check_invariants(&fleet, &req, &p);
    assert!(
        p.shortfall.is_none() && p.response_shortfall.is_none(),
        "{p:?}"
    );
    let train = resumed_at(&p, "train").expect("train is paused in stage 0 and resumed");
    assert!(train <= 320.0, "train resumed at {train} ms");
    for s in &p.stages {
        assert!(s.predicted_power <= p.target, "{s:?}");
    }
    // Every resume fits under the target here (train is soft-started), so no peak
    // passes it either.
    for s in &p.stages[1..] {
        assert!(
            s.peak_power.as_watts() <= p.target.as_watts() + 1e-6,
            "{s:?}"
        );
    }
}

/// Issue 11, part 2: `train` runs uncapped in the steady mix, is paused as an extra in
/// stage 0 and soft-started; it must not be left capped, and `jobs[]` must say so.
#[test]
fn soft_started_job_is_not_left_capped() {
    let (fleet, req) = load(include_str!("fixtures/issue11_soft_start_restore.json"));
    let p = plan(&fleet, &req, &PlannerOptions::default()).unwrap();
    // check_timeline replays every action: jobs[] matches what the actions leave, and
    // after the restore every touched job runs at cap_range.max.
    check_invariants(&fleet, &req, &p);
    let soft = p.stages.iter().flat_map(|s| &s.actions).any(|a| {
        matches!(a, Action::SetCap { job, cap_per_gpu } if job.as_str() == "train"
            && cap_per_gpu.as_watts() < 500.0)
    });
    assert!(soft, "the input exercises a soft start: {p:?}");
    let last_cap = p
        .all_stages()
        .flat_map(|s| &s.actions)
        .filter_map(|a| match a {
            Action::SetCap { job, cap_per_gpu } if job.as_str() == "train" => Some(*cap_per_gpu),
            _ => None,
        })
        .last();
    assert_eq!(last_cap.map(|c| c.as_watts()), Some(700.0));
    assert_eq!(p.jobs[1].cap_per_gpu, None);
}

/// Issue 11, part 3: settled power is above the target after stage 0 (a response
/// shortfall); resuming both jobs lowers settled and peak power, so both go together
/// at 300 ms: 1400 W settled, 1820 W peak.
#[test]
fn resumes_that_lower_power_are_not_spread() {
    let (fleet, req) = load(include_str!("fixtures/issue11_lowering_resumes.json"));
    let p = plan(&fleet, &req, &PlannerOptions::default()).unwrap();
    check_invariants(&fleet, &req, &p);
    assert!(p.response_shortfall.is_some());
    assert!(p.shortfall.is_none());
    assert_eq!(p.stages.len(), 2, "{:#?}", p.stages);
    let t = &p.stages[1];
    assert_eq!(t.offset, Duration::from_millis(300));
    assert_eq!(t.actions.len(), 2);
    assert!(
        (t.predicted_power.as_watts() - 1400.0).abs() < 1e-6,
        "{t:?}"
    );
    assert!((t.peak_power.as_watts() - 1820.0).abs() < 1e-6, "{t:?}");
    // Stage 0's predicted power is the power at the response time.
    assert_eq!(p.stages[0].predicted_power, p.power_at_response);
}

/// A flexible job fed its remaining pause budget mid-event: a budget of 0, or one
/// shorter than any stage's time, is valid input and the job is never paused.
#[test]
fn spent_pause_budget_is_never_paused() {
    for budget_ms in [0u64, 1, 100, 299] {
        let job = |class| JobGen {
            gpus: 8,
            draw: 700.0,
            cap_min: 200.0,
            paused: 100.0,
            curve: None,
            kind: 0,
            weight: 1.0,
            class,
        };
        let gens = vec![
            job(ClassGen::FlexibleMs(0.0, budget_ms)),
            job(ClassGen::FlexibleMs(0.0, budget_ms)),
            job(ClassGen::Critical(0.0)),
        ];
        let fleet = build_fleet(&gens, 0.0, 1.0);
        let baseline = fleet.current_facility_power().unwrap().as_watts();
        // Deep enough that pausing would be the cheap way, fast enough for stage 0.
        for frac in [0.9, 0.6, 0.3] {
            let req = request(baseline * frac, 50, 1e5);
            let p = plan(&fleet, &req, &PlannerOptions::default()).unwrap();
            check_invariants(&fleet, &req, &p);
            let paused = p
                .all_stages()
                .flat_map(|s| &s.actions)
                .any(|a| matches!(a, Action::Pause { .. }));
            assert!(!paused, "budget {budget_ms} ms, frac {frac}: {p:?}");
            assert!(p.jobs.iter().all(|o| o.state == JobState::Running));
        }
    }
}
