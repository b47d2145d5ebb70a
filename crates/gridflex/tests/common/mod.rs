//! Checks of the safety promise from the simulated hardware's own state: the command
//! history each simulated GPU records, and the throughput it reports while running.
//! Nothing here reads what the orchestrator believes it did.

#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex::hal::sim::{SimActivity, SimCommand, SimGpu};
use gridflex::prelude::*;
use gridflex::signals::{
    AlertKind, AlertLevel, DispatchEvent, DispatchTarget, EventWindow, GridAlert, Program,
    RegulationKind, SignalError,
};
use gridflex::simulated::{JobPlan, SimulatedFacility};

/// Commands kept per GPU: plenty for hours of regulation set-points.
const HISTORY: usize = 1 << 16;

/// Turns on every GPU's command history (call before the run).
pub fn record(f: &SimulatedFacility) {
    for g in f.fleet().iter() {
        g.record_history(HISTORY);
    }
}

/// The intervals `[start, end)` during which `predicate` held for a GPU, replaying its
/// history from `from` (running and uncapped then) to `until`.
fn intervals(
    gpu: &SimGpu,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    predicate: impl Fn(SimActivity, Power) -> bool,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let top = gpu.info().limit_at_discovery;
    let (mut activity, mut limit) = (SimActivity::Running, top);
    let mut out = Vec::new();
    let mut open: Option<DateTime<Utc>> = None;
    let history = gpu.history();
    let mut i = 0;
    while i < history.len() {
        // Every command of one instant first, then the state at that instant.
        let at = history[i].0;
        while i < history.len() && history[i].0 == at {
            match history[i].1 {
                SimCommand::Activity(a) => activity = a,
                SimCommand::Limit(l) => limit = l,
                _ => {}
            }
            i += 1;
        }
        let holds = predicate(activity, limit);
        match (holds, open) {
            (true, None) => open = Some(at.max(from)),
            (false, Some(s)) => {
                if at > s {
                    out.push((s, at));
                }
                open = None;
            }
            _ => {}
        }
    }
    if let Some(s) = open
        && until > s
    {
        out.push((s, until));
    }
    out
}

/// Union of sorted-or-not intervals.
fn union(mut v: Vec<(DateTime<Utc>, DateTime<Utc>)>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    v.sort();
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn overlap(a: (DateTime<Utc>, DateTime<Utc>), b: (DateTime<Utc>, DateTime<Utc>)) -> TimeDelta {
    (a.1.min(b.1) - a.0.max(b.0)).max(TimeDelta::zero())
}

/// What the hardware shows of one job.
pub struct JobTrace {
    /// Intervals during which any of its GPUs was paused.
    pub paused: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Instants at which a pause ended and another began (a resume and re-pause at once).
    pub flickers: usize,
}

/// The hardware's record of job `index` of the facility, from `from` to `until`.
pub fn job_trace(
    f: &SimulatedFacility,
    index: usize,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> JobTrace {
    let (_, job) = &f.jobs()[index];
    let mut all = Vec::new();
    let mut flickers = 0;
    for g in job.gpus() {
        let mine = intervals(g, from, until, |a, _| a == SimActivity::Paused);
        // A GPU resumed and paused again at the same instant shows as one interval with
        // both commands in its history at one time.
        let h = g.history();
        flickers += h
            .windows(2)
            .filter(|w| {
                w[0].0 == w[1].0
                    && w[0].1 == SimCommand::Activity(SimActivity::Running)
                    && w[1].1 == SimCommand::Activity(SimActivity::Paused)
            })
            .count();
        all.extend(mine);
    }
    JobTrace {
        paused: union(all),
        flickers,
    }
}

/// Curtailment episodes as the hardware shows them: the union of every interval during
/// which any GPU of the facility was paused or capped below its limit at discovery.
pub fn episodes(
    f: &SimulatedFacility,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut all = Vec::new();
    for g in f.fleet().iter() {
        let top = g.info().limit_at_discovery;
        all.extend(intervals(g, from, until, |a, l| {
            a == SimActivity::Paused || l < top
        }));
    }
    union(all)
}

/// The longest total pause of job `index` within one hardware episode.
pub fn worst_pause_per_episode(
    f: &SimulatedFacility,
    index: usize,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Duration {
    let trace = job_trace(f, index, from, until);
    episodes(f, from, until)
        .into_iter()
        .map(|e| {
            trace
                .paused
                .iter()
                .map(|&p| overlap(p, e))
                .fold(TimeDelta::zero(), |a, b| a + b)
        })
        .max()
        .unwrap_or_default()
        .to_std()
        .unwrap_or_default()
}

/// Samples every running GPU's reported throughput every `step` of virtual time and
/// keeps the lowest seen per job (paused counts as 0), until dropped.
#[derive(Clone, Default)]
pub struct FloorMonitor {
    lowest: Rc<RefCell<BTreeMap<usize, f64>>>,
}

impl FloorMonitor {
    /// Runs forever; select it against the orchestrator's run.
    pub async fn watch(
        &self,
        f: &SimulatedFacility,
        jobs: &[usize],
        clock: TokioClock,
        step: Duration,
    ) {
        loop {
            tokio::time::sleep(step).await;
            let _ = clock.now(); // drives the simulator to this instant
            for &j in jobs {
                let (_, job) = &f.jobs()[j];
                for g in job.gpus() {
                    let thr = match g.activity() {
                        SimActivity::Running => g.throughput(),
                        SimActivity::Paused => 0.0,
                        _ => continue,
                    };
                    let mut lowest = self.lowest.borrow_mut();
                    let e = lowest.entry(j).or_insert(1.0);
                    *e = e.min(thr);
                }
            }
        }
    }

    /// The lowest throughput the hardware reported for job `j` (1 when never sampled).
    pub fn lowest(&self, j: usize) -> f64 {
        self.lowest.borrow().get(&j).copied().unwrap_or(1.0)
    }
}

/// Every GPU at its limit at discovery and every job running, from the hardware.
pub fn fully_restored(f: &SimulatedFacility) -> Result<(), String> {
    for g in f.fleet().iter() {
        if g.requested_limit() != g.info().limit_at_discovery {
            return Err(format!(
                "{} left at {} (limit {})",
                g.info().id,
                g.requested_limit(),
                g.info().limit_at_discovery
            ));
        }
        if g.activity() != SimActivity::Running {
            return Err(format!("{} left {:?}", g.info().id, g.activity()));
        }
    }
    Ok(())
}

/// The facility and rules of the safety tests.
pub const SERVE: usize = 0;
pub const TRAIN: usize = 1;
pub const BATCH: usize = 2;
pub const FLOOR: f64 = 0.85;
pub const MAX_PAUSE: Duration = Duration::from_secs(600);

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 8, 14, 16, 0, 0).unwrap()
}

pub fn at(min: i64) -> DateTime<Utc> {
    t0() + TimeDelta::minutes(min)
}

pub fn kw(v: f64) -> Power {
    Power::kilowatts(v).unwrap()
}

pub fn node() -> PricingNodeId {
    PricingNodeId::new("TH_SP15_GEN-APND").unwrap()
}

/// 40 GPUs, about 27 kW: critical inference (floor 0.85), flexible training (floor 0.9,
/// so that deep cuts need its pause), deferrable batch.
pub fn facility() -> SimulatedFacility {
    facility_until(at(12 * 60))
}

/// The same facility with the batch job due at `deadline`.
pub fn facility_until(deadline: DateTime<Utc>) -> SimulatedFacility {
    let f = SimulatedFacility::build(
        t0(),
        &[
            JobPlan::new(
                "serve",
                8,
                JobClass::Critical { floor: FLOOR },
                WorkloadKind::Inference,
            ),
            JobPlan::new(
                "train",
                24,
                JobClass::Flexible {
                    floor: 0.9,
                    max_pause: MAX_PAUSE,
                },
                WorkloadKind::Pretraining,
            ),
            JobPlan::new(
                "batch",
                8,
                JobClass::Deferrable { deadline },
                WorkloadKind::FineTuning,
            ),
        ],
    )
    .unwrap();
    record(&f);
    f
}

pub fn rules() -> ProgramRules {
    let mut rules = ProgramRules::new(Market::Caiso, power!(30 kW));
    rules.markets.push(Market::Pjm);
    let mut price = PriceRule::new(
        node(),
        MarketRun::CaisoRtm,
        price!(300 per MWh),
        power!(12 kW),
    );
    price.min_hold = TimeDelta::minutes(5);
    rules.price = Some(price);
    rules.dispatch = Some(DispatchRule::new(vec![Program::CaisoPdr]));
    rules.emergency = Some(EmergencyRule::new(vec![LevelCap::new(
        AlertLevel::Eea2,
        power!(11 kW),
    )]));
    rules.regulation = Some(RegulationRule::new(
        RegulationKind::RegD,
        power!(20 kW),
        power!(4 kW),
    ));
    rules
}

pub fn price(start: DateTime<Utc>, lmp: f64) -> GridSignal {
    let i = Interval::new(start, start + TimeDelta::minutes(5)).unwrap();
    GridSignal::Price(PricePoint::new(
        MarketRun::CaisoRtm,
        node(),
        i,
        Price::per_megawatt_hour(lmp).unwrap(),
    ))
}

pub fn dispatch(id: &str, start: DateTime<Utc>, end: DateTime<Utc>, cap_kw: f64) -> GridSignal {
    GridSignal::Dispatch(
        DispatchEvent::new(
            id,
            Program::CaisoPdr,
            start,
            EventWindow::new(start, Some(end)).unwrap(),
            DispatchTarget::CapAt { power: kw(cap_kw) },
            None,
        )
        .unwrap(),
    )
}

pub fn alert(start: DateTime<Utc>, end: DateTime<Utc>) -> GridSignal {
    GridSignal::Alert(
        GridAlert::new(
            Market::Caiso,
            AlertKind::Eea2,
            start,
            EventWindow::new(start, Some(end)).unwrap(),
        )
        .unwrap(),
    )
}

/// A scripted source: each item is released at its instant; counts reads started.
pub struct Scripted {
    /// Items with the instant each is released.
    pub items: VecDeque<(DateTime<Utc>, Result<GridSignal, SignalError>)>,
    /// The clock the items wait on.
    pub clock: TokioClock,
    /// Reads started.
    pub started: Arc<AtomicUsize>,
}

#[async_trait]
impl SignalSource for Scripted {
    async fn next_signal(&mut self) -> Result<Option<GridSignal>, SignalError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        match self.items.pop_front() {
            Some((when, item)) => {
                self.clock.sleep_until(when).await;
                item.map(Some)
            }
            None => Ok(None),
        }
    }
}
