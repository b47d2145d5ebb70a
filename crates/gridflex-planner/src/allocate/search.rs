//! Branch and bound over pause decisions (`docs/planner.md`, "Discrete part: pauses").
//!
//! The LP relaxation over each job's concave hull is integral except for at most one
//! job: the one whose pause segment the greedy walk stops in. Branching on that job
//! (paused, or running on its whole curve) gives two subproblems whose relaxations are
//! again greedy walks over the same sorted segments with a few jobs fixed. Each is
//! solved without a walk: prefix sums of the root walk's watts and losses, corrected
//! by the few segments the fixed jobs add or remove, and a binary search for where the
//! walk stops, so a node costs `O(d log d + log S)` for `d` fixed jobs and `S`
//! segments. Nodes are expanded best bound first; a node whose relaxation is integral
//! is a feasible plan (its loss is exact: the segments it leaves out cost more than
//! where the walk stops). The search ends when no open node's bound is below the
//! incumbent (optimal), or after a work limit, with the least open bound as the
//! certified lower bound.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{CURVE_BELOW, PAUSE, Problem, TOL_W};

/// Work units (segment corrections and search steps) after which the search stops
/// and returns its incumbent with the least open bound.
pub(super) const WORK_LIMIT: usize = 1 << 20;
/// Relative loss within which a bound counts as meeting the incumbent.
const REL_TOL: f64 = 1e-9;

/// The search's answer.
pub(super) struct Outcome {
    /// Jobs paused in the best plan found.
    pub(super) paused: Vec<bool>,
    /// Certified lower bound on the least loss (the best plan's loss when the search
    /// finished).
    pub(super) lower_bound: f64,
    /// Whether the search finished (the plan is optimal) rather than hit its limit.
    pub(super) finished: bool,
}

/// The parent of the root.
const ROOT: u32 = u32::MAX;
/// `class_of` for a job that cannot pause.
const NO_CLASS: u32 = u32::MAX;
/// The relaxation of a node that holds no plan.
const INFEASIBLE: Relaxed = Relaxed {
    bound: f64::INFINITY,
    stop: None,
    frac: None,
};

/// Whether a node of relaxation `bound` cannot beat an incumbent of loss `best`: it
/// holds no plan, or its bound is within a relative [`REL_TOL`] of `best` or above.
fn pruned(bound: f64, best: f64) -> bool {
    !bound.is_finite() || (best.is_finite() && bound >= best - REL_TOL * (1.0 + best))
}

/// The search's moving parts.
struct State {
    /// Loss of the incumbent.
    best: f64,
    /// The incumbent when a node found it: (node, where its walk stops).
    leaf: Option<(u32, Option<usize>)>,
    /// Open slots by bound (non-negative, so its bits order like it), then age.
    open: BinaryHeap<Reverse<(u64, u32)>>,
}

/// One search node: a decision on one job, under its parent's decisions.
#[derive(Clone, Copy)]
struct Node {
    parent: u32,
    job: u32,
    pause: bool,
}

/// Where a node's relaxation stops.
#[derive(Clone, Copy)]
struct Relaxed {
    bound: f64,
    /// Index (in cost order) of the segment the walk stops in; `None` when the fixed
    /// pauses alone meet the need.
    stop: Option<usize>,
    /// The job paused fractionally, if any.
    frac: Option<u32>,
}

/// Prepared search over one problem and need.
pub(super) struct Search<'p, 'a> {
    problem: &'p Problem<'a>,
    need: f64,
    /// Watts and losses of the root walk (pause candidates on their hulls) before each
    /// segment: `pcap[i]`, `pcost[i]` sum segments `0..i`.
    pcap: Vec<f64>,
    pcost: Vec<f64>,
    /// Segment indices of each job, in cost order: `pos[start[j]..start[j + 1]]`.
    pos: Vec<u32>,
    start: Vec<u32>,
    nodes: Vec<Node>,
    /// Identical pause candidates (same model and curve), each class's members in
    /// index order: `members[class_start[c]..class_start[c + 1]]`; `class_of[j]` and
    /// `rank_of[j]` place job `j` (`NO_CLASS` for jobs that cannot pause).
    members: Vec<u32>,
    class_start: Vec<u32>,
    class_of: Vec<u32>,
    rank_of: Vec<u32>,
    /// Scratch stamps, per job and per class, valid when equal to `epoch`.
    epoch: u32,
    job_stamp: Vec<u32>,
    job_paused: Vec<bool>,
    class_stamp: Vec<u32>,
    class_first_run: Vec<u32>,
    /// Scratch: the current node's decisions and segment corrections.
    fixed: Vec<(u32, bool)>,
    events: Vec<(u32, f64, f64)>,
    work: usize,
}

impl<'p, 'a> Search<'p, 'a> {
    pub(super) fn new(problem: &'p Problem<'a>, need: f64) -> Self {
        let segs = &problem.segs;
        let mut pcap = Vec::with_capacity(segs.len() + 1);
        let mut pcost = Vec::with_capacity(segs.len() + 1);
        let (mut c, mut l) = (0.0, 0.0);
        pcap.push(c);
        pcost.push(l);
        let mut start = vec![0u32; problem.jobs.len() + 1];
        for s in segs {
            if s.kind != CURVE_BELOW {
                c += s.cap;
                l += s.cap * s.cost;
            }
            pcap.push(c);
            pcost.push(l);
            start[s.job as usize + 1] += 1;
        }
        for j in 0..problem.jobs.len() {
            start[j + 1] += start[j];
        }
        let mut fill = start.clone();
        let mut pos = vec![0u32; segs.len()];
        for (i, s) in segs.iter().enumerate() {
            let f = &mut fill[s.job as usize];
            pos[*f as usize] = i as u32;
            *f += 1;
        }
        let (members, class_start, class_of, rank_of) = classes(problem);
        let n_classes = class_start.len().saturating_sub(1);
        Self {
            problem,
            need,
            pcap,
            pcost,
            pos,
            start,
            nodes: Vec::new(),
            members,
            class_start,
            class_of,
            rank_of,
            epoch: 0,
            job_stamp: vec![0; problem.jobs.len()],
            job_paused: vec![false; problem.jobs.len()],
            class_stamp: vec![0; n_classes],
            class_first_run: vec![0; n_classes],
            fixed: Vec::new(),
            events: Vec::new(),
            work: 0,
        }
    }

    /// Best-first branch and bound from the root relaxation, starting from a feasible
    /// pause set `incumbent` of loss `best` (infinite when none is known).
    /// Stops after `work_limit` work units ([`WORK_LIMIT`] in plans).
    pub(super) fn run(mut self, incumbent: Vec<bool>, best: f64, work_limit: usize) -> Outcome {
        let mut state = State {
            best,
            leaf: None,
            open: BinaryHeap::new(),
        };
        let root = self.relax(ROOT);
        self.offer(&mut state, ROOT, root);
        let mut finished = true;
        let mut lower = state.best;
        while let Some(&Reverse((key, slot))) = state.open.peek() {
            let bound = f64::from_bits(key);
            if pruned(bound, state.best) {
                break;
            }
            if self.work > work_limit {
                finished = false;
                lower = bound;
                break;
            }
            state.open.pop();
            // An open slot holds (its node, the job it is fractional in): branch.
            let Node { parent, job, .. } = self.nodes[slot as usize];
            for pause in [true, false] {
                self.nodes.push(Node { parent, job, pause });
                let id = (self.nodes.len() - 1) as u32;
                let r = self.relax(id);
                self.offer(&mut state, id, r);
            }
        }
        let paused = match state.leaf {
            Some((id, stop)) => self.pause_set(id, stop),
            None => incumbent,
        };
        Outcome {
            paused,
            lower_bound: lower.min(state.best),
            finished,
        }
    }

    /// Takes node `id` with relaxation `r` into the search: pruned when its bound
    /// cannot beat the incumbent, the new incumbent when integral, else opened.
    fn offer(&mut self, state: &mut State, id: u32, r: Relaxed) {
        if pruned(r.bound, state.best) {
            return;
        }
        match r.frac {
            None => {
                state.best = r.bound;
                state.leaf = Some((id, r.stop));
            }
            Some(job) => {
                // The open slot records the node and the job to branch on; it is
                // never on a path of decisions.
                self.nodes.push(Node {
                    parent: id,
                    job,
                    pause: false,
                });
                let slot = (self.nodes.len() - 1) as u32;
                state.open.push(Reverse((r.bound.max(0.0).to_bits(), slot)));
            }
        }
    }

    /// The decisions of node `id` in the `fixed` scratch list: those on its path from
    /// the root, and the runs they imply. Identical jobs are interchangeable, so some
    /// optimum pauses a prefix (in index order) of each class: a member that runs
    /// makes every later member run. Returns false when that contradicts a pause on
    /// the path (the node holds no plan that breaks the symmetry this way).
    fn decisions(&mut self, mut id: u32) -> bool {
        self.fixed.clear();
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.job_stamp.fill(0);
            self.class_stamp.fill(0);
            self.epoch = 1;
        }
        let epoch = self.epoch;
        while let Some(n) = self.nodes.get(id as usize) {
            self.fixed.push((n.job, n.pause));
            let j = n.job as usize;
            self.job_stamp[j] = epoch;
            self.job_paused[j] = n.pause;
            let c = self.class_of[j];
            if !n.pause && c != NO_CLASS {
                let c = c as usize;
                let r = self.rank_of[j];
                if self.class_stamp[c] != epoch || r < self.class_first_run[c] {
                    self.class_stamp[c] = epoch;
                    self.class_first_run[c] = r;
                }
            }
            id = n.parent;
        }
        for k in 0..self.fixed.len() {
            let (j, pause) = self.fixed[k];
            let c = self.class_of[j as usize];
            if pause
                || c == NO_CLASS
                || self.class_first_run[c as usize] != self.rank_of[j as usize]
            {
                continue;
            }
            let c = c as usize;
            let from = self.class_start[c] as usize + self.rank_of[j as usize] as usize + 1;
            let to = self.class_start[c + 1] as usize;
            for i in from..to {
                let m = self.members[i] as usize;
                if self.job_stamp[m] == epoch {
                    if self.job_paused[m] {
                        return false;
                    }
                    continue;
                }
                self.job_stamp[m] = epoch;
                self.job_paused[m] = false;
                self.fixed.push((m as u32, false));
            }
        }
        true
    }

    /// The relaxation of node `id`: the root walk with its fixed jobs corrected.
    fn relax(&mut self, id: u32) -> Relaxed {
        if !self.decisions(id) {
            return INFEASIBLE;
        }
        let p = self.problem;
        let mut rem = self.need;
        let mut loss = 0.0;
        self.events.clear();
        for &(j, pause) in &self.fixed {
            let m = &p.jobs[j as usize];
            if pause {
                rem -= m.n * (m.hi - m.paused);
                loss += m.w * m.n;
            }
            let range = self.start[j as usize] as usize..self.start[j as usize + 1] as usize;
            for &i in &self.pos[range] {
                let s = &p.segs[i as usize];
                // Paused: none of its segments; running: its whole curve, no pause.
                let sign = match (pause, s.kind) {
                    (true, CURVE_BELOW) | (false, super::CURVE_HULL) => 0.0,
                    (true, _) | (false, PAUSE) => -1.0,
                    (false, _) => 1.0,
                };
                if sign != 0.0 {
                    self.events.push((i, sign * s.cap, sign * s.cap * s.cost));
                }
            }
        }
        // Collecting the decisions, then sorting the corrections: E log E.
        let e = self.events.len();
        self.work += 8 + self.fixed.len() + e * (1 + (usize::BITS - e.leading_zeros()) as usize);
        if rem <= TOL_W {
            return Relaxed {
                bound: loss,
                stop: None,
                frac: None,
            };
        }
        self.events.sort_unstable_by_key(|e| e.0);
        // The walk stops at the least i with N(i) = pcap[i] + (corrections before i)
        // >= rem - TOL_W; between corrections N follows pcap, so search those runs.
        let goal = rem - TOL_W;
        let n_segs = self.pcap.len() - 1;
        let (mut acap, mut acost) = (0.0, 0.0);
        let mut lo = 0usize;
        let mut found = None;
        for k in 0..=self.events.len() {
            let hi = self.events.get(k).map_or(n_segs, |e| e.0 as usize);
            if hi >= lo && self.pcap[hi] + acap >= goal {
                let run = &self.pcap[lo..=hi];
                let i = lo + run.partition_point(|&c| c + acap < goal);
                self.work += 2 + (usize::BITS - run.len().leading_zeros()) as usize;
                found = Some((i, acap, acost));
                break;
            }
            if let Some(e) = self.events.get(k) {
                acap += e.1;
                acost += e.2;
                lo = e.0 as usize + 1;
            }
        }
        let Some((i, acap, acost)) = found else {
            // The need cannot be met under these decisions.
            return INFEASIBLE;
        };
        // N(i) >= goal > N(i - 1), so segment i - 1 is in this node's walk.
        let stop = i.saturating_sub(1);
        let s = &p.segs[stop];
        let before = self.pcap[i] + acap - s.cap;
        let taken = (rem - before).min(s.cap);
        let bound = loss + self.pcost[i] + acost - (s.cap - taken) * s.cost;
        let frac = (s.kind == PAUSE && taken < s.cap - TOL_W).then_some(s.job);
        Relaxed {
            bound,
            stop: Some(stop),
            frac,
        }
    }

    /// The pause set of an integral node: its fixed pauses and every free candidate
    /// whose pause segment its walk took (up to and including `stop`).
    fn pause_set(&mut self, id: u32, stop: Option<usize>) -> Vec<bool> {
        // A leaf's decisions were consistent when it was relaxed.
        self.decisions(id);
        let p = self.problem;
        let mut paused = vec![false; p.jobs.len()];
        let mut decided = vec![false; p.jobs.len()];
        for &(j, pause) in &self.fixed {
            paused[j as usize] = pause;
            decided[j as usize] = true;
        }
        if let Some(stop) = stop {
            for s in &p.segs[..=stop] {
                if s.kind == PAUSE && !decided[s.job as usize] {
                    paused[s.job as usize] = true;
                }
            }
        }
        paused
    }
}

/// Classes of identical pause candidates: (members by class then index, class starts,
/// class of each job, rank of each job in its class). Identical means bit-equal
/// models and throughput points, so members are interchangeable in every plan.
/// Candidates are sorted by a hash of those bits, then by index; a class is a run of
/// equal hashes whose members also equal their predecessor bit for bit (a collision
/// at worst splits a class, which keeps the symmetry rule valid).
fn classes(problem: &Problem<'_>) -> (Vec<u32>, Vec<u32>, Vec<u32>, Vec<u32>) {
    let jobs = problem.jobs;
    let bits = |j: usize| {
        let m = &jobs[j];
        let (a, b) = problem.pts_range[j];
        let pts = problem.pts[a as usize..b as usize]
            .iter()
            .flat_map(|&(p, f)| [p.to_bits(), f.to_bits()]);
        [m.n, m.hi, m.lo, m.w, m.paused]
            .map(f64::to_bits)
            .into_iter()
            .chain(pts)
    };
    // FNV-1a over the 64-bit words: deterministic, no allocation.
    let hash = |j: usize| {
        bits(j).fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
            (h ^ w).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let mut keyed: Vec<(u64, u32)> = (0..jobs.len())
        .filter(|&j| jobs[j].pause_candidate())
        .map(|j| (hash(j), j as u32))
        .collect();
    keyed.sort_unstable();
    let mut class_of = vec![NO_CLASS; jobs.len()];
    let mut rank_of = vec![0; jobs.len()];
    let mut class_start = Vec::new();
    for (i, &(h, j)) in keyed.iter().enumerate() {
        let same = i > 0 && {
            let (ph, pj) = keyed[i - 1];
            ph == h && bits(pj as usize).eq(bits(j as usize))
        };
        if !same {
            class_start.push(i as u32);
        }
        let c = class_start.len() - 1;
        class_of[j as usize] = c as u32;
        rank_of[j as usize] = (i - class_start[c] as usize) as u32;
    }
    class_start.push(keyed.len() as u32);
    let members = keyed.into_iter().map(|(_, j)| j).collect();
    (members, class_start, class_of, rank_of)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WorkloadKind;
    use crate::allocate::JobModel;

    /// `count` jobs alike but their sizes (every pause loses the same per watt: the
    /// search's hard case), floor 0.8 on the generic curve, all pausable.
    fn uniform(count: usize, seed: u64) -> Vec<JobModel> {
        let curve = WorkloadKind::Generic.default_curve();
        let lo = curve.fraction_for(0.8) * 700.0;
        let mut x = seed;
        (0..count)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                JobModel {
                    n: (1 + (x >> 33) % 200) as f64,
                    hi: 700.0,
                    lo,
                    w: 1.0,
                    paused: 130.0,
                    steady_pause: true,
                }
            })
            .collect()
    }

    /// Stopped by its work limit, the search still returns a feasible pause set, and
    /// its lower bound is at most the optimum the unlimited search proves.
    #[test]
    fn work_limit_keeps_a_feasible_plan_and_a_valid_bound() {
        let curve = WorkloadKind::Generic.default_curve();
        let mut stopped = 0;
        for seed in 1..=12 {
            let jobs = uniform(24, seed);
            let problem = Problem::new(&jobs, |_| curve.points());
            let total: f64 = jobs.iter().map(|m| m.n * (m.hi - m.paused)).sum();
            let need = total * 0.55;
            let start = vec![true; jobs.len()];
            let (start_loss, _) = problem.evaluate(&start, need, None);
            assert!(start_loss.is_finite());
            let full = Search::new(&problem, need).run(start.clone(), start_loss, usize::MAX);
            assert!(full.finished, "seed {seed}");
            let (opt, _) = problem.evaluate(&full.paused, need, None);
            let cut = Search::new(&problem, need).run(start, start_loss, 200);
            let (loss, _) = problem.evaluate(&cut.paused, need, None);
            assert!(loss.is_finite(), "seed {seed}: infeasible incumbent");
            let tol = 1e-9 * (1.0 + opt);
            assert!(
                loss >= opt - tol,
                "seed {seed}: {loss} beats the optimum {opt}"
            );
            assert!(
                cut.lower_bound <= opt + tol,
                "seed {seed}: bound {} > {opt}",
                cut.lower_bound
            );
            assert!(cut.lower_bound <= loss + tol);
            stopped += usize::from(!cut.finished);
        }
        assert!(stopped > 0, "the limit stops some searches");
    }
}
