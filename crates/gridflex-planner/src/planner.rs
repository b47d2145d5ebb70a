//! The planning entry point: fleet snapshot + request -> staged [`Plan`].

use gridflex_core::units::seconds_f64;

use crate::allocate::{JobModel, Level, Method, Problem};
use crate::order::radix_order;
use crate::units::{secs, watts};
use crate::{
    Action, AllocationMethod, CurtailmentRequest, Fleet, JobClass, JobOutcome, JobState, Objective,
    Plan, PlannerError, PlannerOptions, Stage, Target,
};

/// Actions issued together during the transition, with their predicted effect.
#[derive(Default)]
struct Group {
    actions: Vec<Action>,
    resumes: usize,
    /// Transient facility watts above the current level right after the group.
    peak_add: f64,
    /// Settled facility watts the group adds.
    rise: f64,
}

impl Group {
    /// Emits the group as a stage at `t` (seconds) and starts an empty one.
    fn flush(&mut self, t: f64, cur: &mut f64, stages: &mut Vec<Stage>) {
        if self.actions.is_empty() {
            return;
        }
        let peak = *cur + self.peak_add;
        *cur += self.rise;
        stages.push(Stage {
            offset: secs(t),
            actions: std::mem::take(&mut self.actions),
            predicted_power: watts(*cur),
            peak_power: watts(peak.max(*cur)),
        });
        *self = Self::default();
    }

    /// Adds the pending cap lifts of soft-started jobs to the group.
    fn take_lifts(&mut self, lifts: &mut Vec<(usize, f64, f64)>, jobs: &[crate::Job]) {
        for (j, p, rise) in lifts.drain(..) {
            self.actions.push(Action::SetCap {
                job: jobs[j].shared_id().clone(),
                cap_per_gpu: watts(p),
            });
            self.rise += rise;
            self.peak_add += rise;
        }
    }
}

/// The indices sorted by `key`, ties by index ([`radix_order`]).
fn by_key(indices: impl Iterator<Item = usize>, key: impl Fn(usize) -> f64) -> Vec<usize> {
    let idx: Vec<usize> = indices.collect();
    let keys: Vec<f64> = idx.iter().map(|&j| key(j) + 0.0).collect();
    radix_order(&keys)
        .into_iter()
        .map(|i| idx[i as usize])
        .collect()
}

/// Facility watts within which a prediction counts as meeting the target.
const TOL_W: f64 = 1e-6;

/// Plans a curtailment: who is capped or paused, when, and how power comes back.
///
/// Pure and deterministic: the same inputs give the same plan. The steps are
/// (`docs/planner.md`): the optimal steady allocation within every service level; a
/// fast stage of pauses when caps settle slower than the response time, with a
/// staggered transition to the steady mix; a restore under the ramp limit.
///
/// ```
/// use std::time::Duration;
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex_core::{Interval, JobId, Power};
/// use gridflex_planner::*;
///
/// let w = |v: f64| Power::watts(v);
/// let job = |id: &str, class: JobClass| -> Result<Job, Box<dyn std::error::Error>> {
///     Ok(Job::new(JobSpec {
///         id: JobId::new(id)?,
///         gpus: 8,
///         draw_per_gpu: w(700.0)?,
///         cap_range: CapRange { min: w(200.0)?, max: w(700.0)? },
///         paused_draw_per_gpu: w(130.0)?,
///         curve: ThroughputCurve::default(),
///         weight: 1.0,
///         class,
///     })?)
/// };
/// let fleet = Fleet::new(
///     vec![
///         job("serve", JobClass::Critical { floor: 0.95 })?,
///         job("train", JobClass::Flexible { floor: 0.5, max_pause: Duration::from_secs(60) })?,
///     ],
///     FacilityModel::new(w(1_000.0)?, 1.2)?,
/// )?;
/// let start = Utc.with_ymd_and_hms(2025, 8, 14, 18, 0, 0).unwrap();
/// let request = CurtailmentRequest::new(
///     Target::ReduceBy(Power::kilowatts(1.5)?),
///     Interval::new(start, start + TimeDelta::hours(1))?,
///     Duration::from_secs(1),
///     RampRate::per_second(Power::kilowatts(5.0)?)?,
/// )?;
/// let plan = plan(&fleet, &request, &PlannerOptions::default())?;
/// assert!(plan.shortfall.is_none());
/// assert!(plan.predicted_power <= plan.target);
/// assert_eq!(plan.jobs[1].state, JobState::Running); // a 1-hour pause exceeds its 60 s limit
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn plan(
    fleet: &Fleet,
    request: &CurtailmentRequest,
    options: &PlannerOptions,
) -> Result<Plan, PlannerError> {
    options.validate().map_err(|e| e.within("options"))?;
    Ok(Planner::new(fleet, request, options).run())
}

struct Planner<'a> {
    fleet: &'a Fleet,
    options: &'a PlannerOptions,
    models: Vec<JobModel>,
    /// Seconds from the window start by which each job must be running again.
    pause_limit: Vec<f64>,
    fixed: f64,
    mult: f64,
    baseline: f64,
    target: f64,
    /// Window length, seconds.
    window: f64,
    response: f64,
    ramp: f64,
}

impl<'a> Planner<'a> {
    fn new(fleet: &'a Fleet, request: &CurtailmentRequest, options: &'a PlannerOptions) -> Self {
        let fac = fleet.facility();
        let fixed = fac.fixed.as_watts();
        let mult = fac.multiplier;
        let window = seconds_f64(request.window().duration());
        let start = request.window().start();
        let o = options.levers.resume_overshoot;
        let ramp = request.restore_ramp().watts_per_second();
        let mut models = Vec::with_capacity(fleet.jobs().len());
        let mut pause_limit = Vec::with_capacity(fleet.jobs().len());
        let mut gpu = 0.0;
        for job in fleet.jobs() {
            let hi = job.draw_per_gpu().as_watts();
            let n = f64::from(job.gpus());
            gpu += n * hi;
            let curve = job.curve();
            let floor = job.class().floor();
            let floor_p = if floor > 0.0 {
                curve.fraction_for(floor) * hi
            } else {
                0.0
            };
            let lo = job
                .cap_range()
                .min
                .as_watts()
                .max(curve.min_fraction() * hi)
                .max(floor_p)
                .min(hi);
            let limit = match job.class() {
                JobClass::Critical { .. } => f64::NEG_INFINITY,
                JobClass::Flexible { max_pause, .. } => max_pause.as_secs_f64(),
                JobClass::Deferrable { deadline } => seconds_f64(*deadline - start),
            };
            pause_limit.push(limit);
            models.push(JobModel {
                n,
                hi,
                lo,
                w: job.weight(),
                paused: job.paused_draw_per_gpu().as_watts(),
                steady_pause: false,
            });
        }
        // A job may stay paused through the window only if the restore, resuming
        // paused jobs earliest-limit first under the ramp, reaches it in time. The
        // bound `window + o * M * sum(n * hi) / ramp` over the jobs resumed before it
        // holds for any subset actually paused (docs/planner.md, "Restore").
        let cands: Vec<usize> = (0..models.len())
            .filter(|&j| pause_limit[j] >= window)
            .collect();
        let step = |m: &JobModel| o * mult * m.n * m.hi;
        let total: f64 = cands.iter().map(|&j| step(&models[j])).sum();
        let earliest = cands
            .iter()
            .map(|&j| pause_limit[j])
            .fold(f64::INFINITY, f64::min);
        if earliest >= window + total / ramp {
            // Even resuming every candidate ahead of each one meets every limit.
            for &j in &cands {
                models[j].steady_pause = true;
            }
        } else {
            let mut cum = 0.0;
            for j in by_key(cands.into_iter(), |j| pause_limit[j]) {
                let m = &mut models[j];
                let s = step(m);
                if pause_limit[j] >= window + (cum + s) / ramp {
                    m.steady_pause = true;
                    cum += s;
                }
            }
        }
        let baseline = fixed + mult * gpu;
        let target = match request.target() {
            Target::FacilityCap(p) => p.as_watts(),
            Target::ReduceBy(p) => baseline - p.as_watts(),
        };
        Self {
            fleet,
            options,
            models,
            pause_limit,
            fixed,
            mult,
            baseline,
            target,
            window,
            response: request.response_time().as_secs_f64(),
            ramp,
        }
    }

    fn run(self) -> Plan {
        let jobs = self.fleet.jobs();
        let need = (self.baseline - self.target) / self.mult;
        let problem = Problem::new(&self.models, |j| jobs[j].curve().points());
        let alloc = problem.solve(need, self.options.exact_pause_limit);
        let levels = &alloc.levels;

        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut steady_gpu = 0.0;
        let mut total = 0.0;
        for (j, (job, m)) in jobs.iter().zip(&self.models).enumerate() {
            total += m.w * m.n;
            let (state, cap, p, f) = match levels[j] {
                Level::Paused => (JobState::Paused, None, m.paused, 0.0),
                Level::Run(p) => {
                    let cap = (p < m.hi - 1e-9).then(|| watts(p));
                    (JobState::Running, cap, p, problem.f(j, p))
                }
            };
            steady_gpu += m.n * p;
            outcomes.push(JobOutcome {
                job: job.shared_id().clone(),
                state,
                cap_per_gpu: cap,
                power_per_gpu: watts(p),
                throughput: f,
                weighted_throughput_lost: m.w * m.n * (1.0 - f),
            });
        }
        let steady = self.fixed + self.mult * steady_gpu;
        let (stages, at_response) = self.stages(levels, steady, &outcomes, &problem);
        let restore = self.restore(levels, steady);
        let short = |p: f64| (p > self.target + TOL_W).then(|| watts(p - self.target));
        Plan {
            target: watts(self.target),
            baseline: watts(self.baseline),
            predicted_power: watts(steady),
            power_at_response: watts(at_response),
            shortfall: if alloc.shortfall > 0.0 {
                short(steady)
            } else {
                None
            },
            response_shortfall: short(at_response),
            objective: Objective {
                weighted_throughput_lost: alloc.loss,
                weighted_throughput_total: total,
                lower_bound: alloc.lower_bound,
                method: match alloc.method {
                    Method::NoPauseChoice => AllocationMethod::Exact,
                    Method::Exhaustive => AllocationMethod::Exhaustive,
                    Method::Relaxation => AllocationMethod::Relaxation,
                },
            },
            stages,
            jobs: outcomes,
            restore_start: secs(self.window),
            restore,
        }
    }

    /// Stage 0 and, when caps settle slower than the response time, the fast stage and
    /// the staggered transition. Returns the stages and the power at the response time.
    fn stages(
        &self,
        levels: &[Level],
        steady: f64,
        outcomes: &[JobOutcome],
        problem: &Problem<'_>,
    ) -> (Vec<Stage>, f64) {
        let lev = &self.options.levers;
        let jobs = self.fleet.jobs();
        // Share of a pause's step reached by the response time, and whether caps
        // have settled by then (caps count only once settled: conservative).
        let pf = lev.pause_fraction_at(self.response);
        let cap_settle = lev.cap_settle.as_secs_f64();
        let cap_fast = cap_settle <= self.response;
        let mut actions = Vec::with_capacity(self.models.len());
        let mut at_response_gpu = 0.0;
        let mut any_cap = false;
        for (j, (m, o)) in self.models.iter().zip(outcomes).enumerate() {
            match levels[j] {
                Level::Paused => {
                    actions.push(Action::Pause {
                        job: jobs[j].shared_id().clone(),
                    });
                    at_response_gpu += m.n * (m.hi - pf * (m.hi - m.paused));
                }
                Level::Run(p) => {
                    if let Some(cap) = o.cap_per_gpu {
                        any_cap = true;
                        actions.push(Action::SetCap {
                            job: jobs[j].shared_id().clone(),
                            cap_per_gpu: cap,
                        });
                    }
                    at_response_gpu += m.n * if cap_fast { p } else { m.hi };
                }
            }
        }
        let at_response = self.fixed + self.mult * at_response_gpu;
        let transition = pf > 0.0 && !cap_fast && any_cap && cap_settle < self.window;
        if !transition || at_response <= self.target + TOL_W {
            if actions.is_empty() {
                // Nothing to do: the target is met without any action.
                return (Vec::new(), at_response);
            }
            let stage = Stage {
                offset: std::time::Duration::ZERO,
                actions,
                predicted_power: watts(at_response.max(steady)),
                peak_power: watts(at_response.max(steady)),
            };
            return (vec![stage], at_response);
        }
        let unsettled = at_response;

        // Fast stage: pause extra running jobs, cheapest throughput per watt first.
        let need = (unsettled - self.target) / self.mult;
        let cand: Vec<(f64, f64, usize)> = (0..self.models.len())
            .filter(|&j| {
                matches!(levels[j], Level::Run(_))
                    && self.pause_limit[j] >= cap_settle
                    && self.models[j].paused < self.models[j].hi
            })
            .map(|j| {
                let m = &self.models[j];
                let save = pf * m.n * (m.hi - m.paused);
                let p = match levels[j] {
                    Level::Run(p) => p,
                    Level::Paused => m.paused,
                };
                (m.w * m.n * problem.f(j, p) / save, save, j)
            })
            .collect();
        let ranked = radix_order(&cand.iter().map(|c| c.0 + 0.0).collect::<Vec<_>>());
        let cand: Vec<(f64, f64, usize)> = ranked.into_iter().map(|i| cand[i as usize]).collect();
        let mut chosen = Vec::new();
        let mut saved = 0.0;
        for &(_, save, j) in &cand {
            if saved >= need - 1e-9 {
                break;
            }
            chosen.push((save, j));
            saved += save;
        }
        // Drop the most expensive extras that turned out not to be needed.
        let mut keep = vec![true; chosen.len()];
        for i in (0..chosen.len()).rev() {
            if saved - chosen[i].0 >= need - 1e-9 {
                saved -= chosen[i].0;
                keep[i] = false;
            }
        }
        let extra: Vec<usize> = chosen
            .iter()
            .zip(keep)
            .filter_map(|(&(_, j), k)| k.then_some(j))
            .collect();
        for &j in &extra {
            actions.push(Action::Pause {
                job: jobs[j].shared_id().clone(),
            });
        }
        let fast = unsettled - self.mult * saved;
        let mut stages = vec![Stage {
            offset: std::time::Duration::ZERO,
            actions,
            predicted_power: watts(fast),
            peak_power: watts(fast),
        }];

        // Transition: once caps have settled, resume the extras earliest limit first,
        // grouped so each group's resume overshoot stays under the target, groups 50 ms
        // apart; a job whose pause limit would be passed goes in the current group.
        // A job whose overshoot alone does not fit resumes under a lower cap that
        // fits (a soft start) and has its cap lifted after the last resume.
        let o = lev.resume_overshoot;
        let gap = lev.resume_overshoot_duration.as_secs_f64();
        let run_p = |j: usize| match levels[j] {
            Level::Run(p) => p,
            Level::Paused => self.models[j].paused,
        };
        // Resumes that lower power (capped below the paused draw) go first, so every
        // settled prefix stays at or under the steady power.
        let (mut order, raising): (Vec<usize>, Vec<usize>) = extra
            .into_iter()
            .partition(|&j| run_p(j) <= self.models[j].paused);
        order.extend(by_key(raising.into_iter(), |j| self.pause_limit[j]));
        let mut cur = steady
            - self.mult
                * order
                    .iter()
                    .map(|&j| self.models[j].n * (run_p(j) - self.models[j].paused))
                    .sum::<f64>();
        let mut t = cap_settle;
        let mut group = Group::default();
        // Soft-started jobs, whose caps are lifted to their steady values after the
        // last resume (a lift has no overshoot, so it goes last).
        let mut lifts: Vec<(usize, f64, f64)> = Vec::new();
        for j in order {
            let m = &self.models[j];
            let p = run_p(j);
            let add = self.mult * m.n * (o * p - m.paused);
            let next_t = t + gap;
            let may_wait = next_t <= self.pause_limit[j] && next_t < self.window;
            if cur + group.peak_add + add > self.target + TOL_W && group.resumes > 0 && may_wait {
                group.flush(t, &mut cur, &mut stages);
                t = next_t;
            }
            let room = self.target - cur - group.peak_add;
            let id = jobs[j].shared_id().clone();
            group.resumes += 1;
            if add <= room + TOL_W {
                group.actions.push(Action::Resume { job: id });
                group.peak_add += add;
                group.rise += self.mult * m.n * (p - m.paused);
                continue;
            }
            // Soft start: resume under a lower cap whose overshoot fits, lift it later.
            let soft = (room / (self.mult * m.n) + m.paused) / o;
            let soft_min = m.lo.max(jobs[j].cap_range().min.as_watts());
            if soft >= soft_min && soft < p {
                group.actions.push(Action::SetCap {
                    job: id.clone(),
                    cap_per_gpu: watts(soft),
                });
                group.actions.push(Action::Resume { job: id });
                group.peak_add += self.mult * m.n * (o * soft - m.paused);
                group.rise += self.mult * m.n * (soft - m.paused);
                lifts.push((j, p, self.mult * m.n * (p - soft)));
            } else {
                // Nothing fits: resume anyway (the pause limit or the window forces it);
                // the stage's peak_power reports the transient.
                group.actions.push(Action::Resume { job: id });
                group.peak_add += add;
                group.rise += self.mult * m.n * (p - m.paused);
            }
        }
        if t + gap >= self.window {
            // No room for a later step before the restore: lift with the last group.
            group.take_lifts(&mut lifts, jobs);
        }
        group.flush(t, &mut cur, &mut stages);
        if !lifts.is_empty() {
            group.take_lifts(&mut lifts, jobs);
            group.flush(t + gap, &mut cur, &mut stages);
        }
        (stages, fast)
    }

    /// The restore at the window's end: paused jobs resumed earliest limit first, then
    /// caps lifted (critical jobs first), each step when the ramp line
    /// `P_end + ramp * (t - end)` has reached its peak (overshoot included).
    fn restore(&self, levels: &[Level], steady: f64) -> Vec<Stage> {
        let lev = &self.options.levers;
        let jobs = self.fleet.jobs();
        let o = lev.resume_overshoot;
        let d = lev.resume_overshoot_duration.as_secs_f64();
        let end = self.window;
        let resumes = by_key(
            (0..levels.len()).filter(|&j| levels[j] == Level::Paused),
            |j| self.pause_limit[j],
        );
        let class_rank = |j: usize| -> usize {
            match jobs[j].class() {
                JobClass::Critical { .. } => 0,
                JobClass::Flexible { .. } => 1,
                JobClass::Deferrable { .. } => 2,
            }
        };
        // Already in index order: a stable partition by class keeps it within a class.
        let lifted = (0..levels.len())
            .filter(|&j| matches!(levels[j], Level::Run(p) if p < self.models[j].hi - 1e-9));
        let mut lifts: Vec<usize> = Vec::new();
        let mut later: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
        for j in lifted {
            match class_rank(j) {
                0 => lifts.push(j),
                r => later[r - 1].push(j),
            }
        }
        lifts.extend(later.into_iter().flatten());

        let mut stages: Vec<Stage> = Vec::new();
        let mut cur = steady;
        let mut t_prev = end;
        // Overshoot still in force: (until, extra facility watts).
        let mut active: Vec<(f64, f64)> = Vec::new();
        let steps = resumes
            .iter()
            .map(|&j| (j, true))
            .chain(lifts.iter().map(|&j| (j, false)));
        for (j, resume) in steps {
            let m = &self.models[j];
            let (rise, extra, action) = if resume {
                (
                    self.mult * m.n * (m.hi - m.paused),
                    self.mult * m.n * (o - 1.0) * m.hi,
                    Action::Resume {
                        job: jobs[j].shared_id().clone(),
                    },
                )
            } else {
                let p = match levels[j] {
                    Level::Run(p) => p,
                    Level::Paused => m.paused,
                };
                (
                    self.mult * m.n * (m.hi - p),
                    0.0,
                    Action::SetCap {
                        job: jobs[j].shared_id().clone(),
                        cap_per_gpu: jobs[j].cap_range().max,
                    },
                )
            };
            // The earliest t >= t_prev whose peak (settled rise, this step's overshoot
            // and the earlier overshoots still running at t) is under the ramp line.
            // `active` is in expiry order, so the live overshoot only falls with t.
            active.retain(|&(until, _)| until > t_prev);
            let base = cur + rise + extra;
            let mut from = t_prev;
            let mut k = 0;
            let t = loop {
                let live: f64 = active[k..].iter().map(|a| a.1).sum();
                let t = from.max(end + (base + live - steady) / self.ramp);
                match active.get(k) {
                    Some(&(until, _)) if t >= until => {
                        from = until;
                        k += 1;
                    }
                    _ => break t,
                }
            };
            active.retain(|&(until, _)| until > t);
            let live_at_t: f64 = active.iter().map(|a| a.1).sum();
            cur += rise;
            let peak_at_t = cur + extra + live_at_t;
            if extra > 0.0 {
                active.push((t + d, extra));
            }
            let offset = secs(t);
            match stages.last_mut() {
                Some(s) if offset == s.offset => {
                    s.actions.push(action);
                    s.predicted_power = watts(cur);
                    s.peak_power = s.peak_power.max(watts(peak_at_t));
                }
                _ => stages.push(Stage {
                    offset,
                    actions: vec![action],
                    predicted_power: watts(cur),
                    peak_power: watts(peak_at_t),
                }),
            }
            t_prev = t;
        }
        stages
    }
}
