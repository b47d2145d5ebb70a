//! The planning entry point: fleet snapshot + request -> staged [`Plan`].

use gridflex_core::Power;
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
    /// Transient facility watts above the level in force right after the group.
    peak_add: f64,
    /// Settled facility watts the group adds.
    rise: f64,
}

/// A soft-started job's cap lift: the job, the cap to set, the settled facility watts
/// it adds.
type Lift = (usize, Power, f64);

impl Group {
    /// The group as a stage at `t` (seconds); `cur` moves to the settled power after it.
    fn into_stage(self, t: f64, cur: &mut f64) -> Result<Stage, PlannerError> {
        let peak = *cur + self.peak_add;
        *cur += self.rise;
        Ok(Stage {
            offset: secs(t),
            actions: self.actions,
            predicted_power: watts(*cur)?,
            peak_power: watts(peak.max(*cur))?,
        })
    }

    /// Adds the pending cap lifts of soft-started jobs to the group.
    fn take_lifts(&mut self, lifts: &mut Vec<Lift>, jobs: &[crate::Job]) {
        for (j, cap, rise) in lifts.drain(..) {
            self.actions.push(Action::SetCap {
                job: jobs[j].shared_id().clone(),
                cap_per_gpu: cap,
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
    Planner::new(fleet, request, options).run()
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

    fn run(self) -> Result<Plan, PlannerError> {
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
                    let cap = (p < m.hi - 1e-9).then(|| watts(p)).transpose()?;
                    (JobState::Running, cap, p, problem.f(j, p))
                }
            };
            steady_gpu += m.n * p;
            outcomes.push(JobOutcome {
                job: job.shared_id().clone(),
                state,
                cap_per_gpu: cap,
                power_per_gpu: watts(p)?,
                throughput: f,
                weighted_throughput_lost: m.w * m.n * (1.0 - f),
            });
        }
        let steady = self.fixed + self.mult * steady_gpu;
        let (stages, at_response) = self.stages(levels, steady, &outcomes, &problem)?;
        let restore = self.restore(levels, steady)?;
        let short = |p: f64| {
            (p > self.target + TOL_W)
                .then(|| watts(p - self.target))
                .transpose()
        };
        Ok(Plan {
            target: watts(self.target)?,
            baseline: watts(self.baseline)?,
            predicted_power: watts(steady)?,
            power_at_response: watts(at_response)?,
            shortfall: if alloc.shortfall > 0.0 {
                short(steady)?
            } else {
                None
            },
            response_shortfall: short(at_response)?,
            objective: Objective {
                weighted_throughput_lost: alloc.loss,
                weighted_throughput_total: total,
                lower_bound: alloc.lower_bound,
                method: match alloc.method {
                    Method::NoPauseChoice => AllocationMethod::Exact,
                    Method::Exhaustive => AllocationMethod::Exhaustive,
                    Method::BranchAndBound => AllocationMethod::BranchAndBound,
                },
            },
            stages,
            jobs: outcomes,
            restore_start: secs(self.window),
            restore,
        })
    }

    /// Stage 0 and, when caps settle slower than the response time, the fast stage and
    /// the staggered transition. Returns the stages and the power at the response time.
    fn stages(
        &self,
        levels: &[Level],
        steady: f64,
        outcomes: &[JobOutcome],
        problem: &Problem<'_>,
    ) -> Result<(Vec<Stage>, f64), PlannerError> {
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
                return Ok((Vec::new(), at_response));
            }
            let stage = Stage {
                offset: std::time::Duration::ZERO,
                actions,
                predicted_power: watts(at_response.max(steady))?,
                peak_power: watts(at_response.max(steady))?,
            };
            return Ok((vec![stage], at_response));
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
            predicted_power: watts(fast)?,
            peak_power: watts(fast)?,
        }];

        self.transition(&extra, levels, steady, &mut stages)?;
        Ok((stages, fast))
    }

    /// The transition from the fast stage to the steady mix (`docs/planner.md`,
    /// "Stages"): from `cap_settle` on, the `extra` jobs paused in stage 0 are resumed
    /// in groups `resume_overshoot_duration` apart (one overshoot ends as the next
    /// group starts).
    ///
    /// * Pause limits are hard constraints. Each group first takes every job whose
    ///   limit would pass before the next group (all that are left when no later group
    ///   fits before the window's end), earliest limit first, with room reserved for
    ///   them before any other job joins.
    /// * Then the other jobs join in order while the group's peak (settled power plus
    ///   each resume's overshoot) stays within the bound: resumes that lower settled
    ///   power first, then earliest limit first. The bound is the target, or the
    ///   settled power already in force when that is higher (a response shortfall),
    ///   so resumes that lower both settled and peak power are never spread out.
    /// * The first job of a group always goes; a job whose overshoot does not fit is
    ///   soft-started under a lower cap (never below its floor or its device range)
    ///   and has its cap lifted after the last resume, to its steady cap or, when it
    ///   runs uncapped, to `cap_range.max` (a cap change has no overshoot).
    fn transition(
        &self,
        extra: &[usize],
        levels: &[Level],
        steady: f64,
        stages: &mut Vec<Stage>,
    ) -> Result<(), PlannerError> {
        let lev = &self.options.levers;
        let jobs = self.fleet.jobs();
        let gap = lev.resume_overshoot_duration.as_secs_f64();
        let t0 = lev.cap_settle.as_secs_f64();
        let run_p = |j: usize| match levels[j] {
            Level::Run(p) => p,
            Level::Paused => self.models[j].paused,
        };
        let settled_rise = |j: usize| {
            let m = &self.models[j];
            self.mult * m.n * (run_p(j) - m.paused)
        };
        // Least peak a job can add: soft-started at its lowest level when that is lower.
        let least_add = |j: usize| self.resume_step(j, self.soft_min(j).min(run_p(j))).0;
        let (lowering, raising): (Vec<usize>, Vec<usize>) = extra
            .iter()
            .partition(|&&j| run_p(j) <= self.models[j].paused);
        let mut voluntary = by_key(lowering.into_iter(), |j| self.pause_limit[j]);
        voluntary.extend(by_key(raising.into_iter(), |j| self.pause_limit[j]));
        let by_limit = by_key(extra.iter().copied(), |j| self.pause_limit[j]);
        let mut placed = vec![false; jobs.len()];
        let mut cur = steady - extra.iter().map(|&j| settled_rise(j)).sum::<f64>();
        let mut left = extra.len();
        let (mut vi, mut fi) = (0, 0);
        let mut lifts: Vec<Lift> = Vec::new();
        let mut k = 0u32;
        while left > 0 {
            let t = t0 + f64::from(k) * gap;
            k += 1;
            let last = t + gap >= self.window;
            let bound = self.target.max(cur);
            let mut forced = Vec::new();
            while let Some(&j) = by_limit.get(fi) {
                if !placed[j] {
                    if !last && self.pause_limit[j] >= t + gap {
                        break;
                    }
                    placed[j] = true;
                    forced.push(j);
                }
                fi += 1;
            }
            let mut reserve: f64 = forced.iter().map(|&j| least_add(j)).sum();
            let mut group = Group::default();
            while let Some(&j) = voluntary.get(vi) {
                if !placed[j] {
                    let add = self.resume_step(j, run_p(j)).0;
                    let fits = cur + group.peak_add + add + reserve <= bound + TOL_W;
                    if !fits && (group.resumes > 0 || !forced.is_empty()) {
                        break;
                    }
                    placed[j] = true;
                    self.resume_into(&mut group, j, run_p(j), bound - cur, &mut lifts)?;
                }
                vi += 1;
            }
            for j in forced {
                reserve -= least_add(j);
                self.resume_into(&mut group, j, run_p(j), bound - cur - reserve, &mut lifts)?;
            }
            left -= group.resumes;
            if left > 0 {
                stages.push(group.into_stage(t, &mut cur)?);
                continue;
            }
            if last {
                // No room for a later step before the restore: lift with the last group.
                group.take_lifts(&mut lifts, jobs);
            }
            stages.push(group.into_stage(t, &mut cur)?);
            if !lifts.is_empty() {
                let mut lift = Group::default();
                lift.take_lifts(&mut lifts, jobs);
                stages.push(lift.into_stage(t + gap, &mut cur)?);
            }
        }
        Ok(())
    }

    /// Facility watts a resume of job `j` under per-GPU cap `p` adds: (the overshoot
    /// peak, the settled rise).
    fn resume_step(&self, j: usize, p: f64) -> (f64, f64) {
        let m = &self.models[j];
        let o = self.options.levers.resume_overshoot;
        (
            self.mult * m.n * (o * p - m.paused),
            self.mult * m.n * (p - m.paused),
        )
    }

    /// Lowest cap a soft start of job `j` may set: its floor and its device range.
    fn soft_min(&self, j: usize) -> f64 {
        let min = self.fleet.jobs()[j].cap_range().min.as_watts();
        self.models[j].lo.max(min)
    }

    /// Resumes job `j` (steady per-GPU level `p`) in `group`, whose peak may rise by
    /// `avail` facility watts in all: a plain resume when its overshoot fits, else a
    /// soft start under the highest cap that fits (at least [`Self::soft_min`]), with
    /// the lift recorded in `lifts`.
    fn resume_into(
        &self,
        group: &mut Group,
        j: usize,
        p: f64,
        avail: f64,
        lifts: &mut Vec<Lift>,
    ) -> Result<(), PlannerError> {
        let m = &self.models[j];
        let job = &self.fleet.jobs()[j];
        let id = job.shared_id().clone();
        let o = self.options.levers.resume_overshoot;
        let room = avail - group.peak_add;
        group.resumes += 1;
        let (add, rise) = self.resume_step(j, p);
        let soft = ((room / (self.mult * m.n) + m.paused) / o).max(self.soft_min(j));
        if add <= room + TOL_W || soft >= p {
            group.actions.push(Action::Resume { job: id });
            group.peak_add += add;
            group.rise += rise;
            return Ok(());
        }
        let (soft_add, soft_rise) = self.resume_step(j, soft);
        group.actions.push(Action::SetCap {
            job: id.clone(),
            cap_per_gpu: watts(soft)?,
        });
        group.actions.push(Action::Resume { job: id });
        group.peak_add += soft_add;
        group.rise += soft_rise;
        // An uncapped job gets its device maximum back, so no cap is left behind.
        let cap = if p >= m.hi - 1e-9 {
            job.cap_range().max
        } else {
            watts(p)?
        };
        lifts.push((j, cap, rise - soft_rise));
        Ok(())
    }

    /// The restore at the window's end: paused jobs resumed earliest limit first, then
    /// caps lifted (critical jobs first), each step when the ramp line
    /// `P_end + ramp * (t - end)` has reached its peak (overshoot included).
    fn restore(&self, levels: &[Level], steady: f64) -> Result<Vec<Stage>, PlannerError> {
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
                    s.predicted_power = watts(cur)?;
                    s.peak_power = s.peak_power.max(watts(peak_at_t)?);
                }
                _ => stages.push(Stage {
                    offset,
                    actions: vec![action],
                    predicted_power: watts(cur)?,
                    peak_power: watts(peak_at_t)?,
                }),
            }
            t_prev = t;
        }
        Ok(stages)
    }
}
