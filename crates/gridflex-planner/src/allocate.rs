//! The optimal allocation: who gives how many watts (`docs/planner.md`, "Method").
//!
//! Each job either runs at a per-GPU power `p` in `[lo, hi]`, keeping throughput
//! `f(p)` (concave, piecewise linear), or, where its class allows, is paused at its
//! paused draw with throughput 0. The loss to minimise is `sum w * n * (1 - f)`
//! subject to the GPU power saved reaching `need`.
//!
//! * For a fixed set of paused jobs the rest is a continuous concave problem: taking
//!   curve segments in order of least weighted throughput lost per watt saved is exact
//!   (a fractional knapsack over segments; concavity keeps each job's segments in
//!   top-down order).
//! * The pause set is discrete. The LP relaxation over each job's concave hull of
//!   {running curve, pause point} is solved by the same greedy walk (a lower bound on
//!   the loss); when its own pause choice meets the bound it is optimal. Otherwise, up
//!   to `exact_pause_limit` candidates (and at most 2^18 segment visits in all) every
//!   subset is tried (exact); above it a best-first branch and bound over pause
//!   decisions ([`search`]) with the LP bound finds the optimum, or, past its work
//!   limit, returns its incumbent with the least open bound, so the gap is certified
//!   on every call.

/// Segment kinds in the sorted list.
const CURVE_HULL: u8 = 0;
/// A curve segment below a pausable job's hull tangent point: a valid running level,
/// but not on the concave hull the relaxation walks.
const CURVE_BELOW: u8 = 1;
/// The hull segment from the tangent point down to the paused draw.
const PAUSE: u8 = 2;

use crate::order::radix_order;
use gridflex_core::workload::interpolate;

mod search;

/// Watts of GPU power within which a saving counts as met.
const TOL_W: f64 = 1e-6;
/// Most segment visits the exhaustive pause search may cost (subsets x segments);
/// above it the branch and bound is used, so a few candidates in a large fleet cannot
/// make a plan slow.
const EXACT_WORK: usize = 1 << 18;

/// One job as the allocator sees it (all powers per GPU, in watts).
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobModel {
    pub(crate) n: f64,
    pub(crate) hi: f64,
    pub(crate) lo: f64,
    pub(crate) w: f64,
    pub(crate) paused: f64,
    /// May stay paused for the whole window and its restore.
    pub(crate) steady_pause: bool,
}

impl JobModel {
    /// A pause helps only when it draws less than the lowest running level.
    fn pause_candidate(&self) -> bool {
        self.steady_pause && self.paused < self.lo
    }
}

#[derive(Debug, Clone, Copy)]
struct Seg {
    cost: f64,
    /// GPU watts the segment can save (`n * width`).
    cap: f64,
    job: u32,
    kind: u8,
}

/// A job's level in an allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Level {
    /// Running at this per-GPU power (equal to `hi` when untouched).
    Run(f64),
    /// Paused.
    Paused,
}

/// How the pause set was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// No pause choice was needed, or the LP relaxation's pause choice met its bound.
    NoPauseChoice,
    Exhaustive,
    /// Branch and bound ([`search`]); exact unless its work limit stopped it.
    BranchAndBound,
}

/// The allocator's answer.
#[derive(Debug, Clone)]
pub(crate) struct Allocation {
    pub(crate) levels: Vec<Level>,
    /// Weighted throughput lost.
    pub(crate) loss: f64,
    /// LP lower bound on the loss (equal to `loss` when the method is exact).
    pub(crate) lower_bound: f64,
    /// GPU watts still missing when the need cannot be met.
    pub(crate) shortfall: f64,
    pub(crate) method: Method,
}

/// Prepared problem: per-job models and every curve/pause segment sorted once.
pub(crate) struct Problem<'a> {
    jobs: &'a [JobModel],
    segs: Vec<Seg>,
    /// Per-job throughput curve in watts: `(p, f)` points from `lo` to `hi`.
    pts: Vec<(f64, f64)>,
    pts_range: Vec<(u32, u32)>,
}

impl<'a> Problem<'a> {
    /// Builds segments. `curve(j, p)` gives job `j`'s throughput fraction at per-GPU
    /// power `p`; `breaks(j)` its breakpoints as fractions of `hi`.
    pub(crate) fn new<'c>(
        jobs: &'a [JobModel],
        breaks: impl Fn(usize) -> &'c [(f64, f64)],
    ) -> Self {
        let mut segs = Vec::with_capacity(jobs.len() * 7);
        let mut pts = Vec::with_capacity(jobs.len() * 7);
        let mut pts_range = Vec::with_capacity(jobs.len());
        let mut below: Vec<Seg> = Vec::new();
        for (j, m) in jobs.iter().enumerate() {
            let start = pts.len();
            let curve = breaks(j);
            let f_at = |p: f64| interpolate(curve, p / m.hi);
            pts.push((m.lo, f_at(m.lo)));
            for &(x, y) in curve {
                let p = x * m.hi;
                if p > m.lo + 1e-9 && p < m.hi - 1e-9 {
                    pts.push((p, y));
                }
            }
            if m.hi > m.lo + 1e-9 {
                pts.push((m.hi, 1.0));
            }
            let end = pts.len();
            pts_range.push((start as u32, end as u32));
            let jp = &pts[start..end];
            // Tangent point of the hull from the pause point (highest p on ties).
            let q = if m.pause_candidate() {
                let mut best = 0;
                let mut best_slope = f64::NEG_INFINITY;
                for (i, &(p, f)) in jp.iter().enumerate() {
                    let s = f / (p - m.paused);
                    if s >= best_slope {
                        best_slope = s;
                        best = i;
                    }
                }
                Some((best, best_slope))
            } else {
                None
            };
            // Pushed in tie-break order: hull segments top-down, the pause segment,
            // then the segments below the tangent point.
            below.clear();
            for i in (1..jp.len()).rev() {
                let (p0, f0) = jp[i - 1];
                let (p1, f1) = jp[i];
                let width = p1 - p0;
                if width <= 1e-12 {
                    continue;
                }
                let slope = ((f1 - f0) / width).max(0.0);
                let kind = match q {
                    Some((qi, _)) if i <= qi => CURVE_BELOW,
                    _ => CURVE_HULL,
                };
                let seg = Seg {
                    // `+ 0.0` turns a -0.0 into +0.0, so cost bits order like costs.
                    cost: m.w * slope + 0.0,
                    cap: m.n * width,
                    job: j as u32,
                    kind,
                };
                if kind == CURVE_BELOW {
                    below.push(seg);
                } else {
                    segs.push(seg);
                }
            }
            if let Some((qi, slope)) = q {
                segs.push(Seg {
                    cost: m.w * slope.max(0.0) + 0.0,
                    cap: m.n * (jp[qi].0 - m.paused),
                    job: j as u32,
                    kind: PAUSE,
                });
            }
            for &s in &below {
                segs.push(s);
            }
        }
        let segs = sort_by_cost(segs);
        Self {
            jobs,
            segs,
            pts,
            pts_range,
        }
    }

    /// Most GPU watts that can be saved within the service levels.
    fn max_saving(&self) -> f64 {
        self.jobs
            .iter()
            .map(|m| {
                let cap = m.n * (m.hi - m.lo);
                if m.pause_candidate() {
                    cap.max(m.n * (m.hi - m.paused))
                } else {
                    cap
                }
            })
            .sum()
    }

    /// Solves for a GPU-watt saving of `need`.
    pub(crate) fn solve(&self, need: f64, exact_limit: usize) -> Allocation {
        let nj = self.jobs.len();
        if need <= TOL_W {
            return Allocation {
                levels: self.jobs.iter().map(|m| Level::Run(m.hi)).collect(),
                loss: 0.0,
                lower_bound: 0.0,
                shortfall: 0.0,
                method: Method::NoPauseChoice,
            };
        }
        let max = self.max_saving();
        if need > max + TOL_W {
            return self.deepest(need - max);
        }
        let candidates: Vec<usize> = (0..nj)
            .filter(|&j| self.jobs[j].pause_candidate())
            .collect();
        let mut paused = vec![false; nj];
        if candidates.is_empty() {
            let (levels, loss, _) = self.levels(&paused, need);
            return Allocation {
                levels,
                loss,
                lower_bound: loss,
                shortfall: 0.0,
                method: Method::NoPauseChoice,
            };
        }
        let (lb, lp_full, lp_frac) = self.relaxation(need);
        let method;
        // The certified lower bound: the LP bound, raised by a finished search.
        let mut bound = lb;
        // The LP's own pause choice, evaluated exactly: when it meets the LP bound it
        // is optimal (certified), and no search is needed.
        for &j in &lp_full {
            paused[j] = true;
        }
        let (p0, _) = self.evaluate(&paused, need, None);
        let exhaustive = candidates.len() <= exact_limit
            && (self.segs.len().max(1) << candidates.len()) <= EXACT_WORK;
        if p0 <= lb + 1e-9 * (1.0 + lb) {
            method = Method::NoPauseChoice;
        } else if exhaustive {
            method = Method::Exhaustive;
            let mut best = (f64::INFINITY, 0u32);
            for mask in 0u32..(1u32 << candidates.len()) {
                let mut ploss = 0.0;
                for (b, &j) in candidates.iter().enumerate() {
                    paused[j] = mask & (1 << b) != 0;
                    if paused[j] {
                        let m = &self.jobs[j];
                        ploss += m.w * m.n;
                    }
                }
                if ploss >= best.0 {
                    continue;
                }
                let (loss, _) = self.evaluate(&paused, need, Some(best.0));
                if loss < best.0 * (1.0 - 1e-12) - 1e-12 {
                    best = (loss, mask);
                }
            }
            for (b, &j) in candidates.iter().enumerate() {
                paused[j] = best.1 & (1 << b) != 0;
            }
        } else {
            method = Method::BranchAndBound;
            let start = match lp_frac {
                Some(frac) => self.start(need, &paused, frac, (p0, paused.clone())),
                None => (p0, paused.clone()),
            };
            let search = search::Search::new(self, need).run(start.1, start.0, search::WORK_LIMIT);
            paused = search.paused;
            // A finished search proves its plan optimal: the bound is its loss.
            bound = if search.finished {
                f64::INFINITY
            } else {
                search.lower_bound
            };
        }
        let (levels, loss, rem) = self.levels(&paused, need);
        if rem > TOL_W {
            // Cannot happen when the relaxation is feasible; keep the SLA-safe deepest cut.
            return self.deepest(0.0);
        }
        Allocation {
            levels,
            loss,
            lower_bound: match method {
                Method::BranchAndBound => bound.min(loss),
                Method::Exhaustive | Method::NoPauseChoice => loss,
            },
            shortfall: 0.0,
            method,
        }
    }

    /// Every job at its lowest-power level within its class; `short` GPU watts missing.
    fn deepest(&self, short: f64) -> Allocation {
        let mut loss = 0.0;
        let levels = self
            .jobs
            .iter()
            .enumerate()
            .map(|(j, m)| {
                if m.pause_candidate() {
                    loss += m.w * m.n;
                    Level::Paused
                } else {
                    loss += m.w * m.n * (1.0 - self.f(j, m.lo));
                    Level::Run(m.lo)
                }
            })
            .collect();
        Allocation {
            levels,
            loss,
            lower_bound: loss,
            shortfall: short.max(0.0),
            method: Method::NoPauseChoice,
        }
    }

    /// Throughput fraction of job `j` at per-GPU power `p` (from its watt points).
    pub(crate) fn f(&self, j: usize, p: f64) -> f64 {
        let (a, b) = self.pts_range[j];
        interpolate(&self.pts[a as usize..b as usize], p)
    }

    /// A feasible pause set near the LP's choice `lp` (its full pauses) to start the
    /// search from, and its loss; `(k, taken)` is the job the LP pauses fractionally
    /// and the watts of its pause segment it takes, `best` the LP's choice with `k`
    /// running. Also tried: `k` paused, which over-saves, with
    /// the excess given back by running again the largest fully paused jobs that fit in
    /// it (a greedy subset sum, which matters when many jobs lose the same per watt);
    /// and `k` running with the cheapest other candidate large enough to cover its
    /// part paused instead. Each is evaluated exactly; the least loss wins.
    fn start(
        &self,
        need: f64,
        lp: &[bool],
        (k, taken): (usize, f64),
        best: (f64, Vec<bool>),
    ) -> (f64, Vec<bool>) {
        let mut best = best;
        // Each candidate's pause segment: (watts, loss per watt).
        let mut seg = vec![(0.0, f64::INFINITY); self.jobs.len()];
        for s in self.segs.iter().filter(|s| s.kind == PAUSE) {
            seg[s.job as usize] = (s.cap, s.cost);
        }
        let mut try_set = |set: Vec<bool>| {
            let (loss, _) = self.evaluate(&set, need, Some(best.0));
            if loss < best.0 {
                best = (loss, set);
            }
        };
        let mut up = lp.to_vec();
        up[k] = true;
        let mut full: Vec<usize> = (0..lp.len()).filter(|&j| lp[j]).collect();
        full.sort_unstable_by(|&a, &b| seg[b].0.total_cmp(&seg[a].0).then(a.cmp(&b)));
        let mut excess = seg[k].0 - taken;
        for &j in &full {
            if seg[j].0 <= excess {
                up[j] = false;
                excess -= seg[j].0;
            }
        }
        try_set(up);
        let other = (0..lp.len())
            .filter(|&j| j != k && !lp[j] && seg[j].0 >= taken && seg[j].1.is_finite())
            .min_by(|&a, &b| {
                (seg[a].0 * seg[a].1)
                    .total_cmp(&(seg[b].0 * seg[b].1))
                    .then(a.cmp(&b))
            });
        if let Some(j) = other {
            let mut set = lp.to_vec();
            set[j] = true;
            try_set(set);
        }
        best
    }

    /// The LP relaxation over hulls: (lower bound, the jobs it pauses fully, the job it
    /// pauses fractionally and the watts of its pause segment taken).
    fn relaxation(&self, need: f64) -> (f64, Vec<usize>, Option<(usize, f64)>) {
        let mut rem = need;
        let mut lb = 0.0;
        let mut full = Vec::new();
        let mut frac = None;
        for s in &self.segs {
            if rem <= TOL_W {
                break;
            }
            if s.kind == CURVE_BELOW {
                continue;
            }
            let take = s.cap.min(rem);
            rem -= take;
            lb += take * s.cost;
            if s.kind == PAUSE {
                if take >= s.cap - TOL_W {
                    full.push(s.job as usize);
                } else {
                    frac = Some((s.job as usize, take));
                }
            }
        }
        (lb, full, frac)
    }

    /// Loss of the best continuous allocation with the given jobs paused; infinite when
    /// the need cannot be met, or when the loss passes `cutoff`.
    fn evaluate(&self, paused: &[bool], need: f64, cutoff: Option<f64>) -> (f64, f64) {
        let mut rem = need;
        let mut loss = 0.0;
        for (m, _) in self.jobs.iter().zip(paused).filter(|(_, p)| **p) {
            rem -= m.n * (m.hi - m.paused);
            loss += m.w * m.n;
        }
        let cut = cutoff.unwrap_or(f64::INFINITY);
        for s in &self.segs {
            if rem <= TOL_W || loss > cut {
                break;
            }
            if s.kind == PAUSE || paused[s.job as usize] {
                continue;
            }
            let take = s.cap.min(rem);
            rem -= take;
            loss += take * s.cost;
        }
        if rem > TOL_W || loss > cut {
            (f64::INFINITY, rem)
        } else {
            (loss, rem)
        }
    }

    /// The levels of the continuous optimum with the given jobs paused, its loss, and
    /// the GPU watts still missing (zero when the need is met).
    fn levels(&self, paused: &[bool], need: f64) -> (Vec<Level>, f64, f64) {
        let mut rem = need;
        let mut loss = 0.0;
        let mut cut = vec![0.0f64; self.jobs.len()];
        for (m, _) in self.jobs.iter().zip(paused).filter(|(_, p)| **p) {
            rem -= m.n * (m.hi - m.paused);
            loss += m.w * m.n;
        }
        for s in &self.segs {
            if rem <= TOL_W {
                break;
            }
            if s.kind == PAUSE || paused[s.job as usize] {
                continue;
            }
            let take = s.cap.min(rem);
            rem -= take;
            loss += take * s.cost;
            cut[s.job as usize] += take;
        }
        let levels = self
            .jobs
            .iter()
            .zip(paused)
            .zip(cut)
            .map(|((m, &p), c)| {
                if p {
                    Level::Paused
                } else {
                    Level::Run((m.hi - c / m.n).clamp(m.lo, m.hi))
                }
            })
            .collect();
        (levels, loss, rem.max(0.0))
    }
}

/// Segments in cost order, ties in their input order ([`radix_order`]).
fn sort_by_cost(segs: Vec<Seg>) -> Vec<Seg> {
    let costs: Vec<f64> = segs.iter().map(|s| s.cost).collect();
    radix_order(&costs)
        .into_iter()
        .map(|i| segs[i as usize])
        .collect()
}
