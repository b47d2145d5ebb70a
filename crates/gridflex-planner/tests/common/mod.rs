//! Shared test helpers: random fleets, an independent model of the planner's problem,
//! and the invariant checks every plan must pass.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex_core::{Interval, JobId, Power};
use gridflex_planner::*;
use proptest::prelude::*;

pub fn w(v: f64) -> Power {
    Power::watts(v).unwrap()
}

pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 8, 14, 18, 0, 0).unwrap()
}

/// Window length used by the generated requests.
pub const WINDOW_S: i64 = 3600;

#[derive(Debug, Clone)]
pub enum ClassGen {
    Critical(f64),
    Flexible(f64, bool),
    /// A flexible job with a short pause limit in milliseconds (0 included): the
    /// remaining budget of a job already paused earlier in an event.
    FlexibleMs(f64, u64),
    Deferrable(bool),
}

#[derive(Debug, Clone)]
pub struct JobGen {
    pub gpus: u32,
    pub draw: f64,
    pub cap_min: f64,
    pub paused: f64,
    pub curve: Option<(Vec<f64>, f64)>,
    pub kind: u8,
    pub weight: f64,
    pub class: ClassGen,
}

pub fn curve_of(g: &JobGen) -> ThroughputCurve {
    match &g.curve {
        Some((xs, gamma)) => {
            let mut pts: Vec<(f64, f64)> = xs.iter().map(|&x| (x, x.powf(*gamma))).collect();
            pts.push((1.0, 1.0));
            gridflex_planner::concave_curve(pts).unwrap()
        }
        None => (match g.kind {
            0 => WorkloadKind::Generic,
            1 => WorkloadKind::Pretraining,
            2 => WorkloadKind::FineTuning,
            _ => WorkloadKind::Inference,
        })
        .default_curve(),
    }
}

fn class_strategy() -> impl Strategy<Value = ClassGen> {
    prop_oneof![
        (0.0..0.97f64).prop_map(ClassGen::Critical),
        (0.0..0.9f64, any::<bool>()).prop_map(|(f, l)| ClassGen::Flexible(f, l)),
        (0.0..0.9f64, prop_oneof![Just(0u64), 0u64..1500])
            .prop_map(|(f, ms)| ClassGen::FlexibleMs(f, ms)),
        any::<bool>().prop_map(ClassGen::Deferrable),
    ]
}

fn curve_strategy() -> impl Strategy<Value = Option<(Vec<f64>, f64)>> {
    prop_oneof![
        2 => Just(None),
        1 => (prop::collection::btree_set(15u32..95, 1..5), 0.15..1.0f64).prop_map(|(xs, g)| {
            Some((xs.into_iter().map(|x| f64::from(x) / 100.0).collect(), g))
        }),
    ]
}

pub fn job_strategy(max_gpus: u32) -> impl Strategy<Value = JobGen> {
    (
        1..=max_gpus,
        250.0..700.0f64,
        50.0..260.0f64,
        60.0..200.0f64,
        curve_strategy(),
        0u8..4,
        0.2..3.0f64,
        class_strategy(),
    )
        .prop_map(
            |(gpus, draw, cap_min, paused, curve, kind, weight, class)| JobGen {
                gpus,
                draw,
                cap_min,
                paused,
                curve,
                kind,
                weight,
                class,
            },
        )
}

pub fn build_fleet(gens: &[JobGen], fixed: f64, mult: f64) -> Fleet {
    let jobs = gens
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let class = match g.class {
                ClassGen::Critical(f) => JobClass::Critical { floor: f },
                // Pause limits far from the window length, so eligibility is clear-cut.
                ClassGen::Flexible(f, long) => JobClass::Flexible {
                    floor: f,
                    max_pause: Duration::from_secs(if long { 3 * 3600 } else { 60 }),
                },
                ClassGen::FlexibleMs(f, ms) => JobClass::Flexible {
                    floor: f,
                    max_pause: Duration::from_millis(ms),
                },
                ClassGen::Deferrable(late) => JobClass::Deferrable {
                    deadline: start() + TimeDelta::seconds(if late { 4 * 3600 } else { 600 }),
                },
            };
            Job::new(JobSpec {
                id: JobId::new(format!("job-{i}")).unwrap(),
                gpus: g.gpus,
                draw_per_gpu: w(g.draw),
                cap_range: CapRange {
                    min: w(g.cap_min),
                    max: w(700.0),
                },
                paused_draw_per_gpu: w(g.paused),
                curve: curve_of(g),
                weight: g.weight,
                class,
            })
            .unwrap()
        })
        .collect();
    Fleet::new(jobs, FacilityModel::new(w(fixed), mult).unwrap()).unwrap()
}

pub fn request(target: f64, response_ms: u64, ramp_w_per_s: f64) -> CurtailmentRequest {
    request_with_window(target, response_ms, ramp_w_per_s, WINDOW_S * 1000)
}

pub fn request_with_window(
    target: f64,
    response_ms: u64,
    ramp_w_per_s: f64,
    window_ms: i64,
) -> CurtailmentRequest {
    CurtailmentRequest::new(
        Target::FacilityCap(w(target)),
        Interval::new(start(), start() + TimeDelta::milliseconds(window_ms)).unwrap(),
        Duration::from_millis(response_ms),
        RampRate::per_second(w(ramp_w_per_s)).unwrap(),
    )
    .unwrap()
}

/// The test's own model of one job: its running range and whether it may pause for
/// the whole window (generated limits are far from the window, and the tests that rely
/// on this use a ramp fast enough that the restore bound is negligible).
#[derive(Debug, Clone, Copy)]
pub struct Model {
    pub n: f64,
    pub hi: f64,
    pub lo: f64,
    pub paused: f64,
    pub w: f64,
    pub pausable: bool,
}

pub fn models(fleet: &Fleet) -> Vec<Model> {
    let window = Duration::from_secs(WINDOW_S as u64);
    fleet
        .jobs()
        .iter()
        .map(|j| {
            let hi = j.draw_per_gpu().as_watts();
            let c = j.curve();
            let floor = j.class().floor();
            let floor_p = if floor > 0.0 {
                c.fraction_for(floor) * hi
            } else {
                0.0
            };
            let lo = j
                .cap_range()
                .min
                .as_watts()
                .max(c.min_fraction() * hi)
                .max(floor_p)
                .min(hi);
            let pausable = match j.class() {
                JobClass::Critical { .. } => false,
                JobClass::Flexible { max_pause, .. } => *max_pause > window,
                JobClass::Deferrable { deadline } => {
                    *deadline > start() + TimeDelta::seconds(WINDOW_S)
                }
                _ => false,
            };
            Model {
                n: f64::from(j.gpus()),
                hi,
                lo,
                paused: j.paused_draw_per_gpu().as_watts(),
                w: j.weight(),
                pausable,
            }
        })
        .collect()
}

/// Lowest facility power reachable within the service levels.
pub fn min_facility_power(fleet: &Fleet, ms: &[Model]) -> f64 {
    let f = fleet.facility();
    let gpu: f64 = ms
        .iter()
        .map(|m| {
            let run = m.n * m.lo;
            if m.pausable {
                run.min(m.n * m.paused)
            } else {
                run
            }
        })
        .sum();
    f.fixed.as_watts() + f.multiplier * gpu
}

/// Every invariant of the issue that can be read off one plan.
pub fn check_invariants(fleet: &Fleet, req: &CurtailmentRequest, plan: &Plan) {
    let tol = 1e-6 * plan.baseline.as_watts().max(1.0);
    let target = plan.target.as_watts();
    let jobs: HashMap<&JobId, &Job> = fleet.jobs().iter().map(|j| (j.id(), j)).collect();
    assert_eq!(plan.jobs.len(), fleet.jobs().len());

    // Caps inside each device's range; critical jobs never paused, floors kept.
    for stage in plan.all_stages() {
        for a in &stage.actions {
            let job = jobs[&**a.job()];
            match a {
                Action::SetCap { cap_per_gpu, .. } => {
                    let r = job.cap_range();
                    assert!(
                        *cap_per_gpu >= r.min && *cap_per_gpu <= r.max,
                        "{a:?} {r:?}"
                    );
                }
                Action::Pause { .. } => assert!(
                    !matches!(job.class(), JobClass::Critical { .. }),
                    "critical job paused: {a:?}"
                ),
                Action::Resume { .. } => {}
                _ => {}
            }
        }
    }
    let mut steady_gpu = 0.0;
    for (o, job) in plan.jobs.iter().zip(fleet.jobs()) {
        assert_eq!(&*o.job, job.id());
        let hi = job.draw_per_gpu().as_watts();
        match o.state {
            JobState::Paused => {
                assert!(!matches!(job.class(), JobClass::Critical { .. }));
                assert_eq!(o.throughput, 0.0);
                assert_eq!(o.power_per_gpu, job.paused_draw_per_gpu());
            }
            JobState::Running => {
                let p = o.power_per_gpu.as_watts();
                assert!(p <= hi + 1e-9, "{o:?}");
                if o.cap_per_gpu.is_some() {
                    assert!(p >= job.cap_range().min.as_watts() - 1e-9, "{o:?}");
                }
                let f = job.curve().throughput_at(p / hi);
                assert!((f - o.throughput).abs() < 1e-9, "{f} vs {}", o.throughput);
                assert!(
                    o.throughput >= job.class().floor() - 1e-9,
                    "floor broken: {o:?}"
                );
                if let Some(c) = o.cap_per_gpu {
                    assert_eq!(c, o.power_per_gpu);
                }
            }
            _ => {}
        }
        steady_gpu += f64::from(job.gpus()) * o.power_per_gpu.as_watts();
    }
    let fac = fleet.facility();
    let steady = fac.fixed.as_watts() + fac.multiplier * steady_gpu;
    assert!((steady - plan.predicted_power.as_watts()).abs() < tol);
    let lost: f64 = plan.jobs.iter().map(|o| o.weighted_throughput_lost).sum();
    assert!(
        (lost - plan.objective.weighted_throughput_lost).abs()
            < 1e-6 * plan.objective.weighted_throughput_total.max(1.0),
        "{lost} vs {:?}",
        plan.objective
    );
    assert!(plan.objective.lower_bound <= plan.objective.weighted_throughput_lost + 1e-6);

    // Power under target whenever no shortfall is reported, in every stage.
    match plan.shortfall {
        None => assert!(steady <= target + tol, "{steady} > {target}"),
        Some(s) => {
            assert!(s.as_watts() > 0.0);
            assert!((steady - target - s.as_watts()).abs() < tol);
        }
    }
    if plan.shortfall.is_none() && plan.response_shortfall.is_none() {
        for s in &plan.stages {
            assert!(s.predicted_power.as_watts() <= target + tol, "{s:?}");
        }
    }
    if plan.response_shortfall.is_none() {
        assert!(plan.power_at_response.as_watts() <= target + tol);
    }

    // Pause limits: flexible jobs resumed within max_pause, deferrable by the deadline,
    // and every paused job resumed by the end of the restore.
    let mut paused_at: HashMap<&JobId, Duration> = HashMap::new();
    let mut offsets = Vec::new();
    for stage in plan.all_stages() {
        offsets.push(stage.offset);
        for a in &stage.actions {
            match a {
                Action::Pause { job } => {
                    assert!(
                        paused_at.insert(job, stage.offset).is_none(),
                        "paused twice"
                    );
                }
                Action::Resume { job } => {
                    let since = paused_at.remove(&**job).expect("resume without pause");
                    let held = stage.offset - since;
                    match jobs[&**job].class() {
                        JobClass::Flexible { max_pause, .. } => {
                            assert!(held <= *max_pause, "{job} paused {held:?} > {max_pause:?}")
                        }
                        JobClass::Deferrable { deadline } => {
                            let at =
                                req.window().start() + TimeDelta::from_std(stage.offset).unwrap();
                            assert!(at <= *deadline, "{job} resumed after its deadline");
                        }
                        _ => panic!("critical job resumed"),
                    }
                }
                _ => {}
            }
        }
    }
    assert!(paused_at.is_empty(), "never resumed: {paused_at:?}");
    assert!(
        offsets.windows(2).all(|w| w[0] <= w[1]),
        "stages out of order"
    );

    // Restore: every step under the ramp line from the curtailed level.
    let ramp = req.restore_ramp().watts_per_second();
    assert_eq!(
        plan.restore_start,
        req.window().duration().to_std().unwrap()
    );
    if let Some(first) = plan.restore.first() {
        let end = req.window().duration().to_std().unwrap();
        assert!(first.offset >= end);
        for s in &plan.restore {
            let dt = (s.offset - end).as_secs_f64();
            let line = plan.predicted_power.as_watts() + ramp * dt;
            assert!(
                s.peak_power.as_watts() <= line + tol + 1e-9 * ramp,
                "{s:?} line {line}"
            );
        }
        let last = plan.restore.last().unwrap();
        assert!((last.predicted_power.as_watts() - plan.baseline.as_watts()).abs() < tol);
    }
    check_timeline(fleet, req, plan);
}

/// What the plan's actions leave a job at, as an executor would track it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Replayed {
    /// The last cap set, if any.
    cap: Option<f64>,
    /// When the job was paused, if it is paused now.
    paused_since: Option<Duration>,
}

/// Replays every action in time order, stages then restore, as an executor would, and
/// checks at every instant: each cap keeps the job's floor and device range, no pause
/// outlasts its limit (flexible `max_pause`, deferrable deadline), critical jobs are
/// never paused; at the end of the stages `jobs[]` describes exactly the state the
/// actions leave (paused or running, and the cap: `cap_per_gpu`, or none or
/// `cap_range.max` when it is null); after the restore every job the plan touched runs
/// at `cap_range.max`.
pub fn check_timeline(fleet: &Fleet, req: &CurtailmentRequest, plan: &Plan) {
    let index: HashMap<&JobId, usize> = fleet
        .jobs()
        .iter()
        .enumerate()
        .map(|(i, j)| (j.id(), i))
        .collect();
    let fresh = Replayed {
        cap: None,
        paused_since: None,
    };
    let mut state = vec![fresh; fleet.jobs().len()];
    let mut touched = vec![false; fleet.jobs().len()];
    let limit_ok = |job: &Job, since: Duration, now: Duration| match job.class() {
        JobClass::Flexible { max_pause, .. } => now - since <= *max_pause,
        JobClass::Deferrable { deadline } => {
            req.window().start() + TimeDelta::from_std(now).unwrap() <= *deadline
        }
        _ => false,
    };
    let replay = |stages: &[Stage], state: &mut [Replayed], touched: &mut [bool]| {
        for stage in stages {
            // Every job still paused must be within its limit at this instant too.
            for (i, s) in state.iter().enumerate() {
                if let Some(since) = s.paused_since {
                    let job = &fleet.jobs()[i];
                    assert!(
                        limit_ok(job, since, stage.offset),
                        "{} still paused at {:?} past its limit ({:?})",
                        job.id(),
                        stage.offset,
                        job.class()
                    );
                }
            }
            for a in &stage.actions {
                let i = index[&**a.job()];
                let job = &fleet.jobs()[i];
                touched[i] = true;
                let s = &mut state[i];
                match a {
                    Action::SetCap { cap_per_gpu, .. } => {
                        let cap = cap_per_gpu.as_watts();
                        let hi = job.draw_per_gpu().as_watts();
                        let f = job.curve().throughput_at(cap.min(hi) / hi);
                        assert!(
                            f >= job.class().floor() - 1e-9,
                            "{} capped at {cap} W keeps {f}, floor {}",
                            job.id(),
                            job.class().floor()
                        );
                        s.cap = Some(cap);
                    }
                    Action::Pause { .. } => {
                        assert!(s.paused_since.is_none(), "{} paused twice", job.id());
                        s.paused_since = Some(stage.offset);
                    }
                    Action::Resume { .. } => {
                        let since = s
                            .paused_since
                            .take()
                            .unwrap_or_else(|| panic!("{} resumed while running", job.id()));
                        assert!(
                            limit_ok(job, since, stage.offset),
                            "{} paused from {since:?} to {:?} ({:?})",
                            job.id(),
                            stage.offset,
                            job.class()
                        );
                    }
                    _ => {}
                }
            }
        }
    };
    replay(&plan.stages, &mut state, &mut touched);
    let at_max = |job: &Job, cap: Option<f64>| {
        cap.is_none_or(|c| (c - job.cap_range().max.as_watts()).abs() < 1e-9)
    };
    for ((o, job), s) in plan.jobs.iter().zip(fleet.jobs()).zip(&state) {
        assert_eq!(
            s.paused_since.is_some(),
            o.state == JobState::Paused,
            "{}: jobs[] says {:?}, the actions leave {s:?}",
            job.id(),
            o.state
        );
        match o.cap_per_gpu {
            Some(c) => assert_eq!(s.cap, Some(c.as_watts()), "{}: {o:?} vs {s:?}", job.id()),
            None => assert!(at_max(job, s.cap), "{}: a cap is left: {s:?}", job.id()),
        }
    }
    replay(&plan.restore, &mut state, &mut touched);
    for ((job, s), t) in fleet.jobs().iter().zip(&state).zip(&touched) {
        if *t {
            assert!(
                s.paused_since.is_none(),
                "{} still paused after the restore",
                job.id()
            );
            assert!(
                at_max(job, s.cap),
                "{} left capped after the restore: {s:?}",
                job.id()
            );
        }
    }
}
