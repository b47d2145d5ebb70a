//! Time shifting under a site power limit, with minimum run lengths (issue 21).
//!
//! [`shift`](crate::shift) places each job on its own. A site has one connection, so
//! [`shift_within_limit`] couples the jobs: in every price interval the power of the
//! jobs that run in it, plus the site's other load, stays within the limit. A job may
//! also need a minimum run length: once started it runs a block of at least
//! `ceil(min_run / step)` consecutive intervals (a job whose whole remainder is shorter
//! runs it in one block).
//!
//! # Model
//!
//! Job `j` (power `P_j`, `n_j` intervals of work, possibly fractional) runs a share
//! `x_jt ∈ [0, 1]` of interval `t` from the interval's start. The limit is a limit on
//! instantaneous power, so a job counts with its full power in every interval it runs
//! in at all: `Σ_j P_j·[x_jt > 0] ≤ limit − other_t`. The cost is
//! `Σ_jt price_t·P_j·x_jt·step`. Without a minimum run length the one fractional
//! interval of a job may be any of its intervals; with one, it is the job's last.
//! On/off decisions make this a mixed-integer program (bin packing is a special case),
//! so the method is not exact in general; instead every answer carries a **certified
//! optimality gap**.
//!
//! # Method
//!
//! - **Infeasibility, up front.** Before placing anything two necessary conditions are
//!   checked, and either failure is a proof that no schedule exists
//!   ([`PlannerError::Infeasible`], naming the jobs and why): (1) each job alone fits
//!   (enough priced intervals before its deadline with room for its power, in blocks
//!   of its minimum run length: an exact single-job search); (2) for every deadline
//!   `d`, the energy of the jobs due by `d` fits in the intervals ending by `d`, each
//!   interval offering its *usable room*: the largest sum of powers of the jobs that
//!   may run in it that stays within the room (a subset sum, exact over the powers'
//!   common divisor in whole watts when that is small, else the room itself).
//! - **Schedule (upper bound).** Jobs are placed one at a time, most constrained first
//!   (least spare eligible time), each in its cheapest placement given the room the
//!   others left: cheapest intervals first without a minimum run, an exact dynamic
//!   program over (work done, current block length) with one. A job that finds no room
//!   moves to the front and placement restarts (a few rounds); then each job in turn is
//!   taken out and put back in its cheapest placement given the others (two passes),
//!   which never raises the cost. Once the lower bound below is known, placement runs
//!   again choosing at `price_t + c·λ_t` for `c` in 1, ½, 2 (the multipliers price the
//!   congested intervals: a Lagrangian heuristic), is polished at the true prices, and
//!   the cheapest schedule found is kept. If no round places every job although neither
//!   condition above proved infeasibility, the answer is [`PlannerError::NotPlaced`]:
//!   the instance may be feasible, the heuristic says so rather than guess.
//! - **Certificate (lower bound).** Lagrangian relaxation of the limit (with the
//!   usable room): with a multiplier `λ_t ≥ 0` per interval and the minimum run
//!   dropped, each job alone picks its intervals at prices `price_t + λ_t` for a full
//!   interval and `price_t·share + λ_t` for its one partial interval (it counts its
//!   whole power while it runs at all), solved exactly in one pass over the intervals
//!   sorted by adjusted price; `L(λ) = Σ_j cost_j(λ) − Σ_t λ_t·usable_t·step` is below
//!   the optimum for every `λ ≥ 0` (weak duality). Projected subgradient steps
//!   (Polyak's rule against the schedule's cost) raise it; the best value found is
//!   [`SitePlan::lower_bound`]. So `lower_bound ≤ optimum ≤ plan.cost`, and
//!   [`SitePlan::gap`] is a proven bound on how far the schedule is from the best one.
//!   When the limit never binds, `λ = 0` already gives the unconstrained optimum and
//!   the gap is zero. The bound can be loose where minimum runs bind (they are dropped
//!   from it) and where on/off packing leaves room unused.
//!
//! The tests check the schedules, bounds and infeasibility proofs against the MILP
//! solved by `microlp` on small random instances.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gridflex_core::{Energy, IntervalSeries, Money, Power, Price};
use serde::{Deserialize, Serialize};

use crate::PlannerError;
use crate::shift::{DeferrableWork, JobSchedule, Run, ShiftPlan};

/// Tolerance on interval counts and watts.
const EPS: f64 = 1e-9;
/// Subgradient iterations for the lower bound.
const BOUND_ITERATIONS: usize = 120;
/// Placement rounds (a job that finds no room moves to the front).
const ROUNDS: usize = 6;
/// Multiples of the multipliers tried by the Lagrangian placement.
const LAMBDA_SCALES: [f64; 3] = [1.0, 0.5, 2.0];
/// Improvement passes (take each job out, put it back where it is cheapest).
const PASSES: usize = 2;

/// A deferrable job with a minimum run length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteWork {
    /// The job, its power, remaining running time and deadline.
    pub work: DeferrableWork,
    /// Once started, run at least this long without a break (JSON `min_run_s`; zero:
    /// may stop at any interval boundary).
    #[serde(rename = "min_run_s", default, with = "gridflex_core::duration_s::std")]
    pub min_run: Duration,
}

impl From<DeferrableWork> for SiteWork {
    fn from(work: DeferrableWork) -> Self {
        Self {
            work,
            min_run: Duration::ZERO,
        }
    }
}

/// The power a site can give its deferrable work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteLimit {
    /// The connection or contracted limit (watts in JSON).
    pub limit: Power,
    /// Load that is not deferrable, aligned with the prices (same start and step);
    /// `None`: none. The room for deferrable work is `limit − other_load`.
    #[serde(default)]
    pub other_load: Option<IntervalSeries<Power>>,
}

/// A schedule under a site limit, with its certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SitePlan {
    /// The schedule (one entry per job, in input order).
    pub plan: ShiftPlan,
    /// A proven lower bound on the cost of any schedule that meets the limit and the
    /// deadlines: `lower_bound ≤ optimum ≤ plan.cost`.
    pub lower_bound: Money,
    /// Deferrable power scheduled in each price interval (the sum of the powers of the
    /// jobs that run in it), aligned with the prices.
    pub load: Vec<Power>,
}

impl SitePlan {
    /// `plan.cost − lower_bound`: the schedule costs at most this much more than the
    /// best one (zero when it is proven optimal).
    pub fn gap(&self) -> Money {
        let g = self.plan.cost - self.lower_bound;
        if g.is_negative() { Money::ZERO } else { g }
    }
}

/// One job in the solver's own units.
struct Item {
    /// Watts.
    p: f64,
    /// Intervals of work.
    need: f64,
    /// Whole intervals touched: `ceil(need)`.
    units: usize,
    /// Share of the last unit, in `(0, 1]`.
    last: f64,
    /// Block length in intervals (1: no minimum run).
    block: usize,
    /// Eligible intervals: priced, ending by the deadline, room ≥ power.
    eligible: Vec<bool>,
}

/// Least-cost schedule of deferrable work within a site power limit, with minimum run
/// lengths; see the [module docs](self) for the model and the certified gap.
///
/// Fails with [`PlannerError::Infeasible`] (proven: names the jobs and why),
/// [`PlannerError::NotPlaced`] (not proven infeasible, but no schedule found) or
/// [`PlannerError::Invalid`] / [`PlannerError::Core`] for bad input.
///
/// ```
/// use std::time::Duration;
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex_core::{IntervalSeries, JobId, Power, Price};
/// use gridflex_planner::{DeferrableWork, SiteLimit, SiteWork, shift_within_limit};
///
/// let start = Utc.with_ymd_and_hms(2025, 8, 14, 0, 0, 0).unwrap();
/// let prices = IntervalSeries::from_values(
///     start,
///     TimeDelta::hours(1),
///     [90.0, 30.0, 60.0, 20.0].map(|p| Price::per_megawatt_hour(p).unwrap()),
/// )?;
/// let job = |id: &str| -> Result<SiteWork, Box<dyn std::error::Error>> {
///     Ok(SiteWork::from(DeferrableWork {
///         id: JobId::new(id)?,
///         power: Power::kilowatts(100.0)?,
///         remaining: Duration::from_secs(3600),
///         deadline: start + TimeDelta::hours(4),
///     }))
/// };
/// // Room for one job at a time: one takes the $20 hour, the other the $30 one.
/// let site = SiteLimit { limit: Power::kilowatts(150.0)?, other_load: None };
/// let plan = shift_within_limit(&prices, &[job("a")?, job("b")?], &site)?;
/// assert!((plan.plan.cost.as_usd() - 5.0).abs() < 1e-9);
/// assert!(plan.gap().as_usd() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn shift_within_limit(
    prices: &IntervalSeries<Price>,
    jobs: &[SiteWork],
    site: &SiteLimit,
) -> Result<SitePlan, PlannerError> {
    let step = prices.step();
    let step_s = gridflex_core::units::seconds_f64(step);
    let step_h = step_s / 3600.0;
    let n = prices.len();
    if site.limit.is_negative() {
        return Err(PlannerError::invalid(
            "site.limit",
            format!("must not be negative, got {}", site.limit),
        ));
    }
    let mut room = vec![site.limit.as_watts(); n];
    if let Some(other) = &site.other_load {
        prices
            .check_aligned(other)
            .map_err(|source| PlannerError::Core {
                field: "site.other_load".into(),
                source,
            })?;
        for (i, v) in other.values().iter().enumerate() {
            let v = v.ok_or_else(|| {
                PlannerError::invalid(format!("site.other_load[{i}]"), "value missing")
            })?;
            room[i] -= v.as_watts();
        }
    }
    let price: Vec<Option<f64>> = prices
        .values()
        .iter()
        .map(|p| p.map(Price::as_per_megawatt_hour))
        .collect();
    let ends: Vec<DateTime<Utc>> = prices.iter().map(|(iv, _)| iv.end()).collect();

    let mut items = Vec::with_capacity(jobs.len());
    for (k, job) in jobs.iter().enumerate() {
        let w = &job.work;
        let field = |f: &str| format!("jobs[{k}].{f}");
        if w.power.is_negative() {
            return Err(PlannerError::invalid(
                field("work.power"),
                format!("must not be negative, got {}", w.power),
            ));
        }
        let need = w.remaining.as_secs_f64() / step_s;
        if need > n as f64 + 1.0 {
            return Err(PlannerError::invalid(
                field("work.remaining"),
                format!(
                    "{:.3} h is longer than the {:.3} h of prices",
                    w.remaining.as_secs_f64() / 3600.0,
                    n as f64 * step_h
                ),
            ));
        }
        // Whole intervals touched; a remainder within EPS of a whole one is whole.
        let units = if need <= EPS {
            0
        } else {
            (need - EPS).ceil() as usize
        };
        let last = if units == 0 {
            0.0
        } else {
            (need - (units - 1) as f64).clamp(EPS, 1.0)
        };
        let min_units = (job.min_run.as_secs_f64() / step_s - EPS).ceil().max(1.0) as usize;
        let p = w.power.as_watts();
        let eligible = (0..n)
            .map(|t| price[t].is_some() && ends[t] <= w.deadline && p <= room[t] + EPS)
            .collect();
        items.push(Item {
            p,
            need,
            units,
            last,
            block: min_units.min(units.max(1)),
            eligible,
        });
    }

    let usable: Vec<f64> = (0..n).map(|t| usable_room(&items, room[t], t)).collect();
    prove_feasible(jobs, &items, &price, &usable, step_h)?;

    // Placement, most constrained first.
    let spare = |it: &Item| it.eligible.iter().filter(|e| **e).count() as f64 - it.need;
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        spare(&items[a])
            .total_cmp(&spare(&items[b]))
            .then(jobs[a].work.deadline.cmp(&jobs[b].work.deadline))
            .then(items[b].p.total_cmp(&items[a].p))
            .then(a.cmp(&b))
    });
    let runs = match schedule(&items, &mut order, &room, &price, &price) {
        Ok(runs) => runs,
        Err(failed) => {
            return Err(PlannerError::NotPlaced {
                jobs: failed.iter().map(|&j| jobs[j].work.id.clone()).collect(),
                reason: format!(
                    "no placement within the site limit found in {ROUNDS} rounds; \
                     the instance was not proven infeasible"
                ),
            });
        }
    };
    let price_ref = &price;
    let cost_of = |runs: &Runs| -> f64 {
        runs.iter()
            .zip(&items)
            .flat_map(|(r, it)| {
                r.iter()
                    .map(move |&(t, f)| price_ref[t].unwrap_or(0.0) * it.p * 1e-6 * f * step_h)
            })
            .sum()
    };
    let first = cost_of(&runs);
    let (bound, lambda) = lower_bound(&items, &price, &usable, step_h, first);
    // Lagrangian heuristic: place again at the prices the multipliers say the limit
    // adds (congested intervals dearer), polish at the true prices, keep the cheaper.
    let mut runs = runs;
    let mut best = first;
    if first - bound > 1e-9 * (1.0 + first.abs()) {
        for scale in LAMBDA_SCALES {
            let adjusted: Vec<Option<f64>> = price
                .iter()
                .zip(&lambda)
                .map(|(p, l)| p.map(|p| p + scale * l))
                .collect();
            if let Ok(other) = schedule(&items, &mut order, &room, &adjusted, &price) {
                let c = cost_of(&other);
                if c < best {
                    best = c;
                    runs = other;
                }
            }
        }
    }

    // Build the schedules.
    let mut out = Vec::with_capacity(items.len());
    let mut load = vec![0.0; n];
    let (mut energy, mut cost) = (Energy::ZERO, Money::ZERO);
    let step_std = step.to_std().unwrap_or_default();
    let mut upper = 0.0;
    for (j, mut r) in runs.into_iter().enumerate() {
        r.sort_by_key(|(t, _)| *t);
        let job = &jobs[j].work;
        let (mut e_job, mut c_job) = (Energy::ZERO, Money::ZERO);
        let mut sched = Vec::with_capacity(r.len());
        for (t, fraction) in r {
            load[t] += items[j].p;
            let field = format!("jobs[{j}].work.power");
            let e = (job.power * step_std)
                .checked_mul(fraction)
                .ok_or_else(|| PlannerError::invalid(field, "energy out of range"))?;
            // `price[t]` is `Some` for every eligible interval.
            let p = prices.values()[t].unwrap_or(Price::ZERO);
            upper += price[t].unwrap_or(0.0) * items[j].p * 1e-6 * fraction * step_h;
            e_job += e;
            c_job += e * p;
            sched.push(Run {
                interval: prices.interval(t).ok_or_else(|| {
                    PlannerError::invalid(format!("prices[{t}]"), "interval out of range")
                })?,
                fraction,
            });
        }
        energy += e_job;
        cost += c_job;
        out.push(JobSchedule {
            job: Arc::new(job.id.clone()),
            runs: sched,
            energy: e_job,
            cost: c_job,
        });
    }
    let bound = bound.min(upper);
    let lower = Money::usd(bound).map_err(|source| PlannerError::Core {
        field: "lower_bound".into(),
        source,
    })?;
    let load = load
        .into_iter()
        .map(|w| Power::watts(w).unwrap_or(Power::ZERO))
        .collect();
    Ok(SitePlan {
        plan: ShiftPlan {
            jobs: out,
            energy,
            cost,
        },
        lower_bound: lower,
        load,
    })
}

/// Per job, its (interval, share) runs.
type Runs = Vec<Vec<(usize, f64)>>;

/// Places every job, most constrained first (`order`; a job that finds no room moves to
/// the front for the next round), choosing at `choose` prices; then improvement passes
/// at the true `price`s. `Err` holds the jobs the last round could not place.
fn schedule(
    items: &[Item],
    order: &mut Vec<usize>,
    room: &[f64],
    choose: &[Option<f64>],
    price: &[Option<f64>],
) -> Result<Runs, Vec<usize>> {
    let by_choice = cheapest_first(choose);
    let by_price = cheapest_first(price);
    let mut failed = Vec::new();
    for _ in 0..ROUNDS {
        let mut left = room.to_vec();
        let mut runs: Runs = vec![Vec::new(); items.len()];
        failed.clear();
        for &j in order.iter() {
            match place(&items[j], &left, choose, &by_choice) {
                Some(r) => {
                    for &(t, _) in &r {
                        left[t] -= items[j].p;
                    }
                    runs[j] = r;
                }
                None => failed.push(j),
            }
        }
        if failed.is_empty() {
            // Improvement: each job out and back in at its cheapest given the others.
            for _ in 0..PASSES {
                for &j in order.iter() {
                    for &(t, _) in &runs[j] {
                        left[t] += items[j].p;
                    }
                    let r = place(&items[j], &left, price, &by_price)
                        .unwrap_or_else(|| std::mem::take(&mut runs[j]));
                    for &(t, _) in &r {
                        left[t] -= items[j].p;
                    }
                    runs[j] = r;
                }
            }
            return Ok(runs);
        }
        let mut next = failed.clone();
        next.extend(order.iter().filter(|j| !failed.contains(j)));
        *order = next;
    }
    Err(failed)
}

/// Priced intervals, cheapest first, earlier on ties.
fn cheapest_first(price: &[Option<f64>]) -> Vec<usize> {
    let mut v: Vec<usize> = (0..price.len()).filter(|&t| price[t].is_some()).collect();
    v.sort_by(|&a, &b| {
        price[a]
            .unwrap_or(0.0)
            .total_cmp(&price[b].unwrap_or(0.0))
            .then(a.cmp(&b))
    });
    v
}

/// The cheapest placement of one job in the intervals with room for it, or `None`.
fn place(
    it: &Item,
    left: &[f64],
    price: &[Option<f64>],
    by_price: &[usize],
) -> Option<Vec<(usize, f64)>> {
    if it.units == 0 {
        return Some(Vec::new());
    }
    let ok = |t: usize| it.eligible[t] && it.p <= left[t] + EPS;
    if it.block <= 1 {
        let mut chosen: Vec<usize> = by_price
            .iter()
            .copied()
            .filter(|&t| ok(t))
            .take(it.units)
            .collect();
        if chosen.len() < it.units {
            return None;
        }
        // The fractional share goes to the dearest chosen interval (the last taken).
        let last = chosen.pop()?;
        let mut r: Vec<(usize, f64)> = chosen.into_iter().map(|t| (t, 1.0)).collect();
        r.push((last, it.last));
        return Some(r);
    }
    block_dp(it, &ok, price)
}

/// Exact single-job placement with blocks of at least `it.block` consecutive
/// intervals; the last interval of the job runs the fraction `it.last`.
fn block_dp(
    it: &Item,
    ok: &dyn Fn(usize) -> bool,
    price: &[Option<f64>],
) -> Option<Vec<(usize, f64)>> {
    let n = price.len();
    let (u, m) = (it.units, it.block);
    // State: (work done k in 0..=u, block length b in 0..=m, m meaning "≥ m").
    let w = (u + 1) * (m + 1);
    let idx = |k: usize, b: usize| k * (m + 1) + b;
    let mut cost = vec![f64::INFINITY; w];
    cost[idx(0, 0)] = 0.0;
    // choice[t][state]: the previous state index, or u32::MAX (unreached).
    let mut prev: Vec<u32> = vec![u32::MAX; n * w];
    for t in 0..n {
        let mut next = vec![f64::INFINITY; w];
        for k in 0..=u {
            for b in 0..=m {
                let c = cost[idx(k, b)];
                if !c.is_finite() {
                    continue;
                }
                // Idle (a finished job idles in any state; else only between blocks).
                if k == u || b == 0 || b == m {
                    let nb = if k == u { b } else { 0 };
                    let s = idx(k, nb);
                    if c < next[s] {
                        next[s] = c;
                        prev[t * w + s] = idx(k, b) as u32;
                    }
                }
                if k < u && ok(t) {
                    let frac = if k + 1 == u { it.last } else { 1.0 };
                    let nc = c + price[t].unwrap_or(0.0) * frac;
                    let s = idx(k + 1, (b + 1).min(m));
                    if nc < next[s] {
                        next[s] = nc;
                        prev[t * w + s] = idx(k, b) as u32;
                    }
                }
            }
        }
        cost = next;
    }
    let end = idx(u, m);
    if !cost[end].is_finite() {
        return None;
    }
    let mut runs = Vec::with_capacity(u);
    let mut s = end;
    for t in (0..n).rev() {
        let p = prev[t * w + s] as usize;
        let (k, kp) = (s / (m + 1), p / (m + 1));
        if k == kp + 1 {
            runs.push((t, if k == u { it.last } else { 1.0 }));
        }
        s = p;
    }
    runs.reverse();
    Some(runs)
}

/// The two necessary conditions of the module docs; either failing proves infeasibility.
fn prove_feasible(
    jobs: &[SiteWork],
    items: &[Item],
    price: &[Option<f64>],
    usable: &[f64],
    step_h: f64,
) -> Result<(), PlannerError> {
    let room = usable;
    let full: Vec<f64> = room.iter().map(|_| f64::INFINITY).collect();
    let by_price = cheapest_first(price);
    for (j, it) in items.iter().enumerate() {
        if place(it, &full, price, &by_price).is_none() {
            let w = &jobs[j].work;
            let fit = it.eligible.iter().filter(|e| **e).count();
            let reason = if it.block > 1 {
                format!(
                    "needs {:.3} h in blocks of at least {} intervals; the {} intervals before \
                     {} with room for its {} under the site limit do not hold them",
                    w.remaining.as_secs_f64() / 3600.0,
                    it.block,
                    fit,
                    w.deadline.to_rfc3339(),
                    w.power
                )
            } else {
                format!(
                    "needs {:.3} h of running but only {:.3} h of priced intervals before {} \
                     leave room for its {} under the site limit",
                    w.remaining.as_secs_f64() / 3600.0,
                    fit as f64 * step_h,
                    w.deadline.to_rfc3339(),
                    w.power
                )
            };
            return Err(PlannerError::Infeasible {
                jobs: vec![w.id.clone()],
                reason,
            });
        }
    }
    // Energy by deadline.
    let mut by_deadline: Vec<usize> = (0..items.len()).collect();
    by_deadline.sort_by_key(|&j| jobs[j].work.deadline);
    let n = price.len();
    // Per interval: the most power the jobs can draw in it within the limit.
    let offer = room;
    let mut demand = 0.0;
    let mut supply = 0.0;
    let mut covered = vec![false; n];
    let mut k = 0;
    while k < by_deadline.len() {
        let d = jobs[by_deadline[k]].work.deadline;
        while k < by_deadline.len() && jobs[by_deadline[k]].work.deadline == d {
            let it = &items[by_deadline[k]];
            demand += it.p * it.need;
            for t in 0..n {
                if it.eligible[t] && !covered[t] {
                    covered[t] = true;
                    supply += offer[t];
                }
            }
            k += 1;
        }
        if demand > supply * (1.0 + 1e-9) + EPS {
            return Err(PlannerError::Infeasible {
                jobs: by_deadline[..k]
                    .iter()
                    .map(|&j| jobs[j].work.id.clone())
                    .collect(),
                reason: format!(
                    "together they need {:.3} kWh by {} but the site limit leaves at most \
                     {:.3} kWh for them before then",
                    demand * step_h / 1e3,
                    d.to_rfc3339(),
                    supply * step_h / 1e3
                ),
            });
        }
    }
    Ok(())
}

/// The most power the jobs eligible in interval `t` can draw together within `room`:
/// the largest subset sum of their powers not above it (exact by a bitset over
/// multiples of the powers' common divisor in whole watts when that is small enough;
/// otherwise `min(room, Σ powers)`, still an upper bound).
fn usable_room(items: &[Item], room: f64, t: usize) -> f64 {
    let powers: Vec<f64> = items
        .iter()
        .filter(|it| it.eligible[t])
        .map(|it| it.p)
        .collect();
    let total: f64 = powers.iter().sum();
    let room = room.max(0.0);
    if total <= room + EPS {
        return total;
    }
    let whole = powers
        .iter()
        .all(|p| (p - p.round()).abs() < 1e-6 && *p >= 1.0);
    if !whole || powers.len() > 512 {
        return room;
    }
    let g = powers.iter().fold(0u64, |g, p| gcd(g, p.round() as u64));
    if g == 0 {
        return room;
    }
    let cap = ((room + EPS) / g as f64).floor() as usize;
    if cap > 200_000 {
        return room;
    }
    // reach bit k: some subset sums to k·g.
    let mut reach = vec![0u64; cap / 64 + 1];
    reach[0] = 1;
    for p in &powers {
        let w = (p.round() as u64 / g) as usize;
        if w > cap {
            continue;
        }
        let (words, bits) = (w / 64, w % 64);
        for i in (0..reach.len()).rev() {
            let mut v = if i >= words {
                reach[i - words] << bits
            } else {
                0
            };
            if bits > 0 && i > words {
                v |= reach[i - words - 1] >> (64 - bits);
            }
            reach[i] |= v;
        }
    }
    let best = (0..=cap)
        .rev()
        .find(|&k| reach[k / 64] >> (k % 64) & 1 == 1);
    best.map_or(0.0, |k| (k as u64 * g) as f64)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The Lagrangian lower bound of the module docs, in dollars. `room` is the usable
/// room per interval (see [`usable_room`]).
fn lower_bound(
    items: &[Item],
    price: &[Option<f64>],
    room: &[f64],
    step_h: f64,
    upper: f64,
) -> (f64, Vec<f64>) {
    let n = price.len();
    let priced: Vec<usize> = (0..n).filter(|&t| price[t].is_some()).collect();
    let mut lambda = vec![0.0f64; n];
    let mut best = f64::NEG_INFINITY;
    let mut theta = 1.0;
    let mut stale = 0;
    let mut use_t = vec![0.0f64; n];
    let mut best_lambda = lambda.clone();
    let mut elig = Vec::with_capacity(n);
    for _ in 0..BOUND_ITERATIONS {
        // Cheapest first at the adjusted prices (a full interval costs price + λ).
        let mut order = priced.clone();
        let c = |t: usize| price[t].unwrap_or(0.0);
        let adj = |t: usize| c(t) + lambda[t];
        order.sort_by(|&a, &b| adj(a).total_cmp(&adj(b)).then(a.cmp(&b)));
        use_t.iter_mut().for_each(|u| *u = 0.0);
        let mut value = 0.0;
        for it in items {
            if it.units == 0 {
                continue;
            }
            // Exact on/off inner problem (minimum run dropped): `units − 1` full
            // intervals and one running the share `last` (paying all of its λ).
            elig.clear();
            elig.extend(order.iter().copied().filter(|&t| it.eligible[t]));
            let u = it.units;
            if elig.len() < u {
                continue; // cannot happen after the proofs; contributes nothing
            }
            let head: f64 = elig[..u - 1].iter().map(|&t| adj(t)).sum();
            let next = adj(elig[u - 1]);
            let mut pick = (f64::INFINITY, 0usize);
            for (i, &t) in elig.iter().enumerate() {
                let base = if i < u - 1 {
                    head - adj(t) + next
                } else {
                    head
                };
                let v = base + c(t) * it.last + lambda[t];
                if v < pick.0 {
                    pick = (v, i);
                }
            }
            value += pick.0 * it.p * 1e-6 * step_h;
            let partial = elig[pick.1];
            use_t[partial] += it.p;
            let mut taken = 0;
            for &t in &elig {
                if taken == u - 1 {
                    break;
                }
                if t != partial {
                    use_t[t] += it.p;
                    taken += 1;
                }
            }
        }
        for &t in &priced {
            value -= lambda[t] * room[t] * 1e-6 * step_h;
        }
        if best == f64::NEG_INFINITY || value > best + 1e-12 * (1.0 + best.abs()) {
            best = value;
            best_lambda.clone_from(&lambda);
            stale = 0;
        } else {
            stale += 1;
            if stale >= 5 {
                theta *= 0.5;
                stale = 0;
            }
        }
        // Subgradient of L in λ_t ($/MWh): (use − room)·step in MWh.
        let g: Vec<f64> = (0..n)
            .map(|t| {
                if price[t].is_none() {
                    0.0
                } else {
                    let g = (use_t[t] - room[t]) * 1e-6 * step_h;
                    // Projected: a zero multiplier does not move down.
                    if lambda[t] <= 0.0 && g < 0.0 { 0.0 } else { g }
                }
            })
            .collect();
        let norm: f64 = g.iter().map(|g| g * g).sum();
        if norm <= 1e-30 || upper - best <= 1e-9 * (1.0 + upper.abs()) {
            break;
        }
        let s = theta * (upper - value).max(1e-9 * (1.0 + upper.abs())) / norm;
        for t in 0..n {
            lambda[t] = (lambda[t] + s * g[t]).max(0.0);
        }
    }
    (best, best_lambda)
}
