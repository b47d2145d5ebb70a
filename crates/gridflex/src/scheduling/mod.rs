//! Following the grid: deferrable work scheduled by price within a site limit
//! (issue 21).
//!
//! A [`Scheduler`] runs as a service next to the [`Orchestrator`](crate::Orchestrator).
//! It holds the day-ahead prices (overwritten by real-time ones as they come), the
//! deferrable jobs (power, remaining running time, deadline, minimum run length, and a
//! [`WorkloadControl`] to hold and release each: the process lever, the simulator, or
//! Slurm through `gridflex::slurm::SlurmJobControl`, which holds a pending job and
//! suspends a running one) and the site limit, and decides at every price interval
//! which jobs run, with [`shift_within_limit`]:
//!
//! - **Re-planning.** At every interval boundary after a change (prices, jobs,
//!   deadlines, obligations), from the work each job still needs. Between boundaries
//!   only the current interval's decisions run (a job with a fractional share runs
//!   from the interval's start and is held when its share is spent). A job added
//!   mid-interval waits for the next boundary.
//! - **Deadlines are hard.** When the planner proves the jobs cannot all meet their
//!   deadlines (or finds no placement) the scheduler falls back to running the
//!   earliest deadlines first, now, within the limit, whatever the price, and says so
//!   in [`SchedulerStatus::last_error`].
//! - **Curtailment keeps priority.** An [`Obligations`] view (the orchestrator's live
//!   handle, or an [`ObligationBoard`] an integrator fills) names the windows in which
//!   no deferrable work may run: the planner gives them no room, and while one is
//!   active every job the scheduler manages is held, even one whose deadline then
//!   slips (reported as missed).
//! - **Load increase.** With [`SchedulerConfig::absorb_below`] set, an interval priced
//!   below that floor (a negative price, or a program asking for consumption as a low
//!   price) runs every job that still has work, as far as the site limit allows, on
//!   top of the plan: work brought forward, never beyond the limit.
//! - **Truth from the hardware.** Progress is credited only for the time a job's
//!   control reported `Running`; a job that reports `Exited` is finished.
//!
//! [`Scheduler::report`] gives per day the energy and its cost with scheduling, the
//! cost of running the same jobs as they came (each from its arrival, continuously,
//! ignoring the limit) at the same prices, the energy absorbed at negative prices and
//! its value, and the deadlines met ([`DayReport`]).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use gridflex::prelude::*;
//! use gridflex::hal::sim::{SimFleet, SimGpuSpec, SimJob, WorkloadProfile};
//! use gridflex::planner::{DeferrableWork, SiteWork};
//! use gridflex::scheduling::{DeferrableJob, Scheduler, SchedulerConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?.block_on(async {
//! let t0 = Utc.with_ymd_and_hms(2025, 8, 14, 0, 0, 0).unwrap();
//! let clock = TokioClock::starting_at(t0);
//! let fleet = SimFleet::new(Arc::new(clock.clone()), 2, &SimGpuSpec::h100_sxm())?;
//! let job = Arc::new(SimJob::start(JobId::new("batch")?, fleet.iter().cloned().collect(),
//!     WorkloadProfile::of(WorkloadKind::Matmul))?);
//! // Dear, then cheap: the hour of work waits for the second hour.
//! let prices = IntervalSeries::from_values(t0, TimeDelta::hours(1),
//!     [120.0, 15.0, 80.0].map(|p| Price::per_megawatt_hour(p).unwrap()))?;
//! let config = SchedulerConfig::new(power!(5 kW), power!(250 W));
//! let mut scheduler = Scheduler::new(clock.clone(), config, prices)?;
//! scheduler.add_job(DeferrableJob::new(SiteWork::from(DeferrableWork {
//!     id: JobId::new("batch")?, power: power!(1400 W),
//!     remaining: Duration::from_secs(3600), deadline: t0 + TimeDelta::hours(3),
//! }), job.clone()))?;
//! let (handle, task) = scheduler.spawn();
//! tokio::time::sleep(Duration::from_secs(30 * 60)).await;
//! assert_eq!(job.status().await?, gridflex::hal::WorkloadState::Paused);
//! tokio::time::sleep(Duration::from_secs(60 * 60)).await;
//! assert_eq!(job.status().await?, gridflex::hal::WorkloadState::Running);
//! tokio::time::sleep(Duration::from_secs(60 * 60)).await;
//! let reports = handle.report().await?;
//! assert_eq!(reports[0].deadlines_met, 1);
//! assert!(reports[0].cost < reports[0].cost_as_they_come);
//! handle.shutdown().await?;
//! task.await??;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod report;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::{Interval, IntervalSeries, JobId, Money, Power, Price};
use gridflex_hal::{WorkloadControl, WorkloadState};
use gridflex_planner::{PlannerError, SiteLimit, SiteWork, shift_within_limit};
use tokio::sync::{mpsc, oneshot};

pub use report::DayReport;

use crate::GridflexError;
use crate::clock::Clock;
use crate::orchestrator::OrchestratorHandle;

/// The windows in which no deferrable work may run (active or announced curtailment
/// obligations).
#[async_trait]
pub trait Obligations: Send + Sync {
    /// The windows known now; an active one first if any.
    async fn windows(&self) -> Result<Vec<Interval>, GridflexError>;

    /// Windows in which a program asks for consumption (an OpenADR
    /// `IMPORT_CAPACITY_SUBSCRIPTION`-style request): load increase runs in them
    /// whatever the price. None by default.
    async fn consumption_requests(&self) -> Result<Vec<Interval>, GridflexError> {
        Ok(Vec::new())
    }
}

/// The orchestrator's active event (also while it restores) is an obligation.
#[async_trait]
impl Obligations for OrchestratorHandle {
    async fn windows(&self) -> Result<Vec<Interval>, GridflexError> {
        Ok(self
            .status()
            .await?
            .active
            .map(|a| a.window)
            .into_iter()
            .collect())
    }
}

/// A shared list of obligation windows an integrator fills (from its own program
/// feed, an OpenADR VEN, or a test).
#[derive(Debug, Clone, Default)]
pub struct ObligationBoard {
    windows: Arc<Mutex<Vec<Interval>>>,
    requests: Arc<Mutex<Vec<Interval>>>,
}

impl ObligationBoard {
    /// An empty board.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a window.
    pub fn add(&self, window: Interval) {
        self.lock().push(window);
    }

    /// Adds a window in which a program asks for consumption.
    pub fn request_consumption(&self, window: Interval) {
        lock(&self.requests).push(window);
    }

    /// Removes every window (obligations and consumption requests).
    pub fn clear(&self) {
        self.lock().clear();
        lock(&self.requests).clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Interval>> {
        lock(&self.windows)
    }
}

fn lock(list: &Mutex<Vec<Interval>>) -> std::sync::MutexGuard<'_, Vec<Interval>> {
    // A panic while holding this lock cannot leave the list half-written.
    list.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl Obligations for ObligationBoard {
    async fn windows(&self) -> Result<Vec<Interval>, GridflexError> {
        Ok(self.lock().clone())
    }

    async fn consumption_requests(&self) -> Result<Vec<Interval>, GridflexError> {
        Ok(lock(&self.requests).clone())
    }
}

/// The site and the scheduler's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// The site's power limit (interconnection or contracted cap).
    pub limit: Power,
    /// Load that is not deferrable (the rest of the facility, and the idle draw of held
    /// jobs' hardware).
    pub other_load: Power,
    /// How often obligations are read between interval boundaries (default 10 s).
    pub poll: Duration,
    /// Load increase: below this price every job with work left runs, within the limit
    /// (`None`: off; `Some(0 $/MWh)`: absorb at negative prices).
    pub absorb_below: Option<Price>,
}

impl SchedulerConfig {
    /// A site limit and its other load; obligations read every 10 s; load increase at
    /// negative prices.
    pub fn new(limit: Power, other_load: Power) -> Self {
        Self {
            limit,
            other_load,
            poll: Duration::from_secs(10),
            absorb_below: Some(Price::ZERO),
        }
    }
}

/// A deferrable job and the lever that holds and releases it.
#[derive(Clone)]
pub struct DeferrableJob {
    /// Its power, the running time it still needs, deadline and minimum run.
    pub work: SiteWork,
    /// Holds (pause) and releases (resume) it.
    pub control: Arc<dyn WorkloadControl>,
}

impl std::fmt::Debug for DeferrableJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferrableJob")
            .field("work", &self.work)
            .field("control", self.control.job())
            .finish()
    }
}

impl DeferrableJob {
    /// A job and its control.
    pub fn new(work: SiteWork, control: Arc<dyn WorkloadControl>) -> Self {
        Self { work, control }
    }
}

/// A snapshot of the scheduler.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerStatus {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// Jobs the hardware last reported running.
    pub running: Vec<JobId>,
    /// Jobs with work left that are held.
    pub held: Vec<JobId>,
    /// Finished jobs and whether each met its deadline.
    pub finished: Vec<(JobId, bool)>,
    /// The certified gap of the latest plan (`None` before the first, or on fallback).
    pub gap: Option<Money>,
    /// Why the latest plan fell back to earliest deadline first, if it did; or the
    /// latest control error.
    pub last_error: Option<String>,
    /// True while an obligation window is active.
    pub in_obligation: bool,
}

/// One job as the scheduler tracks it.
struct Tracked {
    job: DeferrableJob,
    /// When it was added (the as-they-come baseline starts it then).
    arrived: DateTime<Utc>,
    /// Running time credited (the hardware reported it running).
    done: Duration,
    /// Run until this instant (from the plan or the load increase).
    run_until: Option<DateTime<Utc>>,
    /// The hardware's latest answer was `Running`.
    running: bool,
    /// When it finished, and whether by its deadline.
    finished: Option<(DateTime<Utc>, bool)>,
}

impl Tracked {
    fn left(&self) -> Duration {
        self.job.work.work.remaining.saturating_sub(self.done)
    }

    /// Work left beyond the one-second tolerance of the accounting (run shares are
    /// rounded to milliseconds).
    fn has_work(&self) -> bool {
        self.left() >= DONE_TOLERANCE
    }
}

/// Work left below this counts as done.
const DONE_TOLERANCE: Duration = Duration::from_secs(1);

enum Order {
    Add(DeferrableJob, oneshot::Sender<Result<(), GridflexError>>),
    Remove(JobId, oneshot::Sender<Result<(), GridflexError>>),
    Deadline(
        JobId,
        DateTime<Utc>,
        oneshot::Sender<Result<(), GridflexError>>,
    ),
    Prices(
        IntervalSeries<Price>,
        oneshot::Sender<Result<(), GridflexError>>,
    ),
    RealTime(Interval, Price, oneshot::Sender<Result<(), GridflexError>>),
    Status(oneshot::Sender<SchedulerStatus>),
    Report(oneshot::Sender<Vec<DayReport>>),
    Stop(oneshot::Sender<()>),
}

/// The scheduling loop; see the [module docs](self).
pub struct Scheduler<C: Clock> {
    clock: C,
    config: SchedulerConfig,
    prices: IntervalSeries<Price>,
    jobs: Vec<Tracked>,
    obligations: Option<Arc<dyn Obligations>>,
    windows: Vec<Interval>,
    requests: Vec<Interval>,
    /// The interval start the latest plan was made for.
    planned_for: Option<DateTime<Utc>>,
    last_tick: Option<DateTime<Utc>>,
    gap: Option<Money>,
    last_error: Option<String>,
    /// Watt-hours run per interval start, with scheduling.
    ran: BTreeMap<DateTime<Utc>, f64>,
    /// Watt-hours run inside consumption requests, per interval start.
    requested_ran: BTreeMap<DateTime<Utc>, f64>,
}

impl<C: Clock + 'static> Scheduler<C> {
    /// A scheduler on `clock` for a site, with the day-ahead `prices` (their step is the
    /// scheduling step).
    pub fn new(
        clock: C,
        config: SchedulerConfig,
        prices: IntervalSeries<Price>,
    ) -> Result<Self, GridflexError> {
        if config.limit.is_negative() || config.other_load.is_negative() {
            return Err(invalid(
                "scheduler.limit",
                "limit and other load must not be negative",
            ));
        }
        if config.poll.is_zero() {
            return Err(invalid("scheduler.poll", "must be positive"));
        }
        Ok(Self {
            clock,
            config,
            prices,
            jobs: Vec::new(),
            obligations: None,
            windows: Vec::new(),
            requests: Vec::new(),
            requested_ran: BTreeMap::new(),
            planned_for: None,
            last_tick: None,
            gap: None,
            last_error: None,
            ran: BTreeMap::new(),
        })
    }

    /// Reads obligation windows from `view` (the orchestrator's handle, a board).
    pub fn obligations(mut self, view: Arc<dyn Obligations>) -> Self {
        self.obligations = Some(view);
        self
    }

    /// Adds a job (held until the plan runs it). Refuses a duplicate id.
    pub fn add_job(&mut self, job: DeferrableJob) -> Result<(), GridflexError> {
        let id = &job.work.work.id;
        if self.jobs.iter().any(|t| &t.job.work.work.id == id) {
            return Err(invalid(
                "scheduler.jobs",
                format!("job {id} is already scheduled"),
            ));
        }
        if job.work.work.power.is_negative() {
            return Err(invalid(
                format!("scheduler.jobs.{id}.power"),
                "must not be negative",
            ));
        }
        self.jobs.push(Tracked {
            job,
            arrived: self.clock.now(),
            done: Duration::ZERO,
            run_until: None,
            running: false,
            finished: None,
            // Energy accounting is per interval in `ran`.
        });
        Ok(())
    }

    /// Starts the loop as a task; returns its handle and the task (which yields the
    /// day reports once stopped). Stopping releases every job it holds.
    pub fn spawn(
        self,
    ) -> (
        SchedulerHandle,
        tokio::task::JoinHandle<Result<Vec<DayReport>, GridflexError>>,
    ) {
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(self.serve(rx));
        (SchedulerHandle { orders: tx }, task)
    }

    /// The per-day reports so far.
    pub fn report(&self) -> Vec<DayReport> {
        report::days(
            &self.prices,
            &self.ran,
            &self.requested_ran,
            &self.baseline(),
            &self.outcomes(),
        )
    }

    /// Finished jobs (when, met) and jobs whose deadline passed with work left.
    fn outcomes(&self) -> Vec<(DateTime<Utc>, bool)> {
        let now = self.clock.now();
        self.jobs
            .iter()
            .filter_map(|t| {
                let deadline = t.job.work.work.deadline;
                t.finished
                    .or_else(|| (deadline < now && t.has_work()).then_some((deadline, false)))
            })
            .collect()
    }

    /// Watt-hours per interval start had every job run from its arrival, continuously.
    fn baseline(&self) -> BTreeMap<DateTime<Utc>, f64> {
        let step = self.prices.step();
        let mut out = BTreeMap::new();
        for t in &self.jobs {
            let w = t.job.work.work.power.as_watts();
            let mut left = t.job.work.work.remaining.as_secs_f64();
            let mut at = t.arrived;
            while left > 1e-9 {
                let start = self.interval_start(at);
                let end = start + step;
                let span = ((end - at).num_milliseconds() as f64 / 1e3).min(left);
                *out.entry(start).or_insert(0.0) += w * span / 3600.0;
                left -= span;
                at = end;
            }
        }
        out
    }

    fn interval_start(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let step = self.prices.step().num_milliseconds().max(1);
        let k = (t - self.prices.start())
            .num_milliseconds()
            .div_euclid(step);
        self.prices.start() + TimeDelta::milliseconds(k * step)
    }

    fn status(&self) -> SchedulerStatus {
        let now = self.clock.now();
        let ids = |f: &dyn Fn(&Tracked) -> bool| {
            self.jobs
                .iter()
                .filter(|t| f(t))
                .map(|t| t.job.work.work.id.clone())
                .collect()
        };
        SchedulerStatus {
            at: now,
            running: ids(&|t| t.running),
            held: ids(&|t| !t.running && t.finished.is_none()),
            finished: self
                .jobs
                .iter()
                .filter_map(|t| t.finished.map(|(_, met)| (t.job.work.work.id.clone(), met)))
                .collect(),
            gap: self.gap,
            last_error: self.last_error.clone(),
            in_obligation: self.windows.iter().any(|w| w.contains(now)),
        }
    }

    async fn serve(
        mut self,
        mut rx: mpsc::Receiver<Order>,
    ) -> Result<Vec<DayReport>, GridflexError> {
        loop {
            let wake = self.tick().await;
            // A tick due now runs before an order that arrives at the same instant, so
            // what an order sees does not depend on which was polled first.
            let order = tokio::select! {
                biased;
                () = self.clock.sleep_until(wake) => continue,
                o = rx.recv() => o,
            };
            let Some(order) = order else { break };
            match order {
                Order::Add(job, reply) => {
                    let _ = reply.send(self.add_job(job));
                }
                Order::Remove(id, reply) => {
                    let r = match self.jobs.iter().position(|t| t.job.work.work.id == id) {
                        None => Err(GridflexError::UnknownJob { job: id }),
                        Some(i) => {
                            self.credit(self.clock.now());
                            let t = self.jobs.remove(i);
                            // Given back as it was before the scheduler held it.
                            t.job
                                .control
                                .resume()
                                .await
                                .map_err(|source| GridflexError::Workload { job: id, source })
                        }
                    };
                    let _ = reply.send(r);
                }
                Order::Deadline(id, deadline, reply) => {
                    let r = match self.jobs.iter_mut().find(|t| t.job.work.work.id == id) {
                        None => Err(GridflexError::UnknownJob { job: id }),
                        Some(t) => {
                            t.job.work.work.deadline = deadline;
                            Ok(())
                        }
                    };
                    let _ = reply.send(r);
                }
                Order::Prices(series, reply) => {
                    let _ = reply.send(self.merge_prices(&series));
                }
                Order::RealTime(interval, price, reply) => {
                    let r = self.set_price(interval, price);
                    let _ = reply.send(r);
                }
                Order::Status(reply) => {
                    let _ = reply.send(self.status());
                }
                Order::Report(reply) => {
                    self.credit(self.clock.now());
                    let _ = reply.send(self.report());
                }
                Order::Stop(reply) => {
                    self.release_all().await;
                    let _ = reply.send(());
                    return Ok(self.report());
                }
            }
        }
        self.release_all().await;
        Ok(self.report())
    }

    async fn release_all(&mut self) {
        self.credit(self.clock.now());
        for t in &mut self.jobs {
            if let Err(e) = t.job.control.resume().await {
                self.last_error = Some(format!("{}: resume on stop: {e}", t.job.work.work.id));
            }
            t.run_until = None;
        }
    }

    fn merge_prices(&mut self, series: &IntervalSeries<Price>) -> Result<(), GridflexError> {
        if series.step() != self.prices.step() {
            return Err(invalid(
                "scheduler.prices",
                "step differs from the scheduler's",
            ));
        }
        for (iv, p) in series.iter() {
            if let Some(p) = p {
                self.set_price(iv, p)?;
            }
        }
        Ok(())
    }

    /// Sets one interval's price, growing the series forward as needed (a year at most).
    fn set_price(&mut self, interval: Interval, price: Price) -> Result<(), GridflexError> {
        let step = self.prices.step();
        let offset = interval.start() - self.prices.start();
        if interval.duration() != step
            || offset < TimeDelta::zero()
            || offset.num_milliseconds() % step.num_milliseconds().max(1) != 0
        {
            return Err(invalid(
                "scheduler.prices",
                format!("interval {interval} is not one of the scheduler's intervals"),
            ));
        }
        let i = (offset.num_milliseconds() / step.num_milliseconds().max(1)) as usize;
        let year = (366 * 24 * 3600 * 1000 / step.num_milliseconds().max(1)) as usize;
        if i > self.prices.len() + year {
            return Err(invalid("scheduler.prices", "more than a year ahead"));
        }
        while self.prices.len() <= i {
            self.prices.push(None)?;
        }
        self.prices.set(i, Some(price))?;
        Ok(())
    }

    /// Credits running time and energy up to `now` for the jobs the hardware last
    /// reported running.
    fn credit(&mut self, now: DateTime<Utc>) {
        let Some(last) = self.last_tick else {
            self.last_tick = Some(now);
            return;
        };
        if now <= last {
            return;
        }
        let step = self.prices.step();
        let mut at = last;
        while at < now {
            let start = self.interval_start(at);
            let end = (start + step).min(now);
            let secs = (end - at).num_milliseconds() as f64 / 1e3;
            let requested = self.requests.iter().any(|w| w.contains(at));
            for t in &mut self.jobs {
                if t.running && t.finished.is_none() {
                    let span = secs.min(t.left().as_secs_f64());
                    t.done += Duration::from_secs_f64(span.max(0.0));
                    let wh = t.job.work.work.power.as_watts() * span / 3600.0;
                    *self.ran.entry(start).or_insert(0.0) += wh;
                    if requested {
                        *self.requested_ran.entry(start).or_insert(0.0) += wh;
                    }
                    // Done at the instant its work ran out, not at the next tick: a
                    // report asked for at that instant counts it.
                    if !t.has_work() {
                        let when = at + TimeDelta::milliseconds((span * 1e3) as i64);
                        t.finished = Some((when, when <= t.job.work.work.deadline));
                        t.run_until = None;
                    }
                }
            }
            at = end;
        }
        self.last_tick = Some(now);
    }

    /// One pass: credit, read the hardware and obligations, plan at a boundary, act.
    /// Returns when to wake next.
    async fn tick(&mut self) -> DateTime<Utc> {
        let now = self.clock.now();
        self.credit(now);
        // Hardware truth.
        for t in &mut self.jobs {
            if t.finished.is_some() {
                continue;
            }
            match t.job.control.status().await {
                Ok(WorkloadState::Exited) => {
                    t.running = false;
                    t.finished = Some((now, now <= t.job.work.work.deadline));
                }
                Ok(s) => t.running = s == WorkloadState::Running,
                Err(e) => self.last_error = Some(format!("{}: status: {e}", t.job.work.work.id)),
            }
            if t.finished.is_none() && !t.has_work() {
                t.finished = Some((now, now <= t.job.work.work.deadline));
                t.run_until = None;
            }
        }
        if let Some(view) = &self.obligations {
            match view.windows().await {
                Ok(w) => {
                    self.windows = w;
                }
                Err(e) => self.last_error = Some(format!("obligations: {e}")),
            }
            match view.consumption_requests().await {
                Ok(w) => self.requests = w,
                Err(e) => self.last_error = Some(format!("consumption requests: {e}")),
            }
        }
        let start = self.interval_start(now);
        let next_boundary = start + self.prices.step();
        // Once per interval (changes wait for the next boundary), and on the first tick.
        if self.planned_for != Some(start) {
            self.planned_for = Some(start);
            self.plan(start, now);
        }
        self.act(now, next_boundary).await;
        let next_run_end = self
            .jobs
            .iter()
            .filter_map(|t| t.run_until)
            .filter(|&u| u > now)
            .min();
        let poll = now + TimeDelta::from_std(self.config.poll).unwrap_or(TimeDelta::MAX);
        [
            Some(next_boundary),
            next_run_end,
            self.obligations.as_ref().map(|_| poll),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(next_boundary)
    }

    /// Plans from `start` (the current interval's start); sets each job's `run_until`.
    fn plan(&mut self, start: DateTime<Utc>, now: DateTime<Utc>) {
        let step = self.prices.step();
        let open: Vec<usize> = (0..self.jobs.len())
            .filter(|&j| self.jobs[j].finished.is_none() && self.jobs[j].has_work())
            .collect();
        for t in &mut self.jobs {
            t.run_until = None;
        }
        if open.is_empty() {
            return;
        }
        // Horizon: from the current interval to the latest deadline (prices missing
        // beyond what is known leave those intervals out).
        let latest = open
            .iter()
            .map(|&j| self.jobs[j].job.work.work.deadline)
            .max()
            .unwrap_or(start);
        let count = ((latest - start).num_milliseconds() / step.num_milliseconds().max(1))
            .clamp(1, 366 * 24 * 12) as usize;
        let mut values = Vec::with_capacity(count);
        let mut other = Vec::with_capacity(count);
        let elapsed = (now - start).num_milliseconds() as f64 / step.num_milliseconds() as f64;
        for k in 0..count {
            let iv_start = start + step * k as i32;
            let iv = Interval::starting_at(iv_start, step).ok();
            values.push(self.prices.at(iv_start).ok().flatten());
            let blocked = iv.is_some_and(|iv| self.windows.iter().any(|w| w.overlaps(&iv)));
            // The current interval, joined more than 5 % late (the first tick), offers
            // no room: its share could not be run from its start.
            let late = k == 0 && elapsed > 0.05;
            other.push(if blocked || late {
                self.config.limit
            } else {
                self.config.other_load
            });
        }
        let (Ok(prices), Ok(other)) = (
            IntervalSeries::new(start, step, values),
            IntervalSeries::from_values(start, step, other),
        ) else {
            self.fallback(now, step, "could not build the planning horizon".into());
            return;
        };
        let work: Vec<SiteWork> = open
            .iter()
            .map(|&j| {
                let t = &self.jobs[j];
                let mut w = t.job.work.clone();
                w.work.remaining = t.left();
                w
            })
            .collect();
        let site = SiteLimit {
            limit: self.config.limit,
            other_load: Some(other),
        };
        match shift_within_limit(&prices, &work, &site) {
            Ok(plan) => {
                self.gap = Some(plan.gap());
                self.last_error = None;
                for (sched, &j) in plan.plan.jobs.iter().zip(&open) {
                    if let Some(r) = sched.runs.first().filter(|r| r.interval.start() == start) {
                        let run = step.num_milliseconds() as f64 * r.fraction;
                        self.jobs[j].run_until =
                            Some(start + TimeDelta::milliseconds(run.ceil() as i64));
                    }
                }
            }
            Err(e) => {
                let why = match &e {
                    PlannerError::Infeasible { .. } | PlannerError::NotPlaced { .. } => {
                        format!("{e}; running earliest deadlines first")
                    }
                    _ => format!("planning failed ({e}); running earliest deadlines first"),
                };
                self.fallback(now, step, why);
            }
        }
    }

    /// Earliest deadline first, now, within the limit, for the rest of the interval.
    fn fallback(&mut self, now: DateTime<Utc>, step: TimeDelta, why: String) {
        self.gap = None;
        self.last_error = Some(why);
        let end = self.interval_start(now) + step;
        let mut open: Vec<usize> = (0..self.jobs.len())
            .filter(|&j| self.jobs[j].finished.is_none() && self.jobs[j].has_work())
            .collect();
        open.sort_by_key(|&j| self.jobs[j].job.work.work.deadline);
        let mut room = self.config.limit.as_watts() - self.config.other_load.as_watts();
        for j in open {
            let p = self.jobs[j].job.work.work.power.as_watts();
            if p <= room + 1e-9 {
                room -= p;
                let left = TimeDelta::from_std(self.jobs[j].left()).unwrap_or(TimeDelta::MAX);
                self.jobs[j].run_until = Some(end.min(now + left));
            }
        }
    }

    /// Holds and releases to match the decisions at `now`: holds first, then releases,
    /// so the site never draws both the old and the new set.
    async fn act(&mut self, now: DateTime<Utc>, next_boundary: DateTime<Utc>) {
        let blocked = self.windows.iter().any(|w| w.contains(now));
        // Load increase on top of the plan, within the limit.
        let price = self.prices.at(self.interval_start(now)).ok().flatten();
        let absorb = match (self.config.absorb_below, price) {
            (Some(floor), Some(p)) => p < floor,
            _ => false,
        } || self.requests.iter().any(|w| w.contains(now));
        let mut want: Vec<bool> = self
            .jobs
            .iter()
            .map(|t| t.finished.is_none() && t.run_until.is_some_and(|u| u > now))
            .collect();
        if absorb && !blocked {
            let mut room = self.config.limit.as_watts()
                - self.config.other_load.as_watts()
                - self
                    .jobs
                    .iter()
                    .zip(&want)
                    .filter(|(_, w)| **w)
                    .map(|(t, _)| t.job.work.work.power.as_watts())
                    .sum::<f64>();
            let mut extra: Vec<usize> = (0..self.jobs.len())
                .filter(|&j| !want[j] && self.jobs[j].finished.is_none())
                .filter(|&j| self.jobs[j].has_work())
                .collect();
            extra.sort_by_key(|&j| self.jobs[j].job.work.work.deadline);
            for j in extra {
                let p = self.jobs[j].job.work.work.power.as_watts();
                if p <= room + 1e-9 {
                    room -= p;
                    want[j] = true;
                    let left = TimeDelta::from_std(self.jobs[j].left()).unwrap_or(TimeDelta::MAX);
                    self.jobs[j].run_until = Some(next_boundary.min(now + left));
                }
            }
        }
        if blocked {
            want.iter_mut().for_each(|w| *w = false);
        }
        for (t, &w) in self.jobs.iter_mut().zip(&want) {
            if !w && t.running {
                match t.job.control.pause().await {
                    Ok(()) => t.running = false,
                    Err(e) => self.last_error = Some(format!("{}: hold: {e}", t.job.work.work.id)),
                }
            }
        }
        for (t, &w) in self.jobs.iter_mut().zip(&want) {
            if w && !t.running {
                match t.job.control.resume().await {
                    Ok(()) => t.running = true,
                    Err(e) => {
                        self.last_error = Some(format!("{}: release: {e}", t.job.work.work.id));
                    }
                }
            }
        }
        // A finished job the accounting says is done, still running: held until it
        // exits or is removed (the site limit counts it otherwise).
        for t in &mut self.jobs {
            if t.finished.is_some() && t.running && t.job.control.pause().await.is_ok() {
                t.running = false;
            }
        }
    }
}

/// A cloneable handle to a running [`Scheduler`]; methods fail with
/// [`GridflexError::Stopped`] once it has stopped.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    orders: mpsc::Sender<Order>,
}

impl std::fmt::Debug for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Order")
    }
}

impl SchedulerHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Order,
    ) -> Result<T, GridflexError> {
        let (tx, rx) = oneshot::channel();
        self.orders
            .send(make(tx))
            .await
            .map_err(|_| GridflexError::Stopped)?;
        rx.await.map_err(|_| GridflexError::Stopped)
    }

    /// Adds a deferrable job; it runs from the next interval boundary the plan gives it.
    pub async fn add_job(&self, job: DeferrableJob) -> Result<(), GridflexError> {
        self.ask(|r| Order::Add(job, r)).await?
    }

    /// Removes a job (it ended, or moved); it is released first.
    pub async fn remove_job(&self, job: JobId) -> Result<(), GridflexError> {
        self.ask(|r| Order::Remove(job, r)).await?
    }

    /// Changes a job's deadline.
    pub async fn set_deadline(
        &self,
        job: JobId,
        deadline: DateTime<Utc>,
    ) -> Result<(), GridflexError> {
        self.ask(|r| Order::Deadline(job, deadline, r)).await?
    }

    /// Merges day-ahead prices (same step) into the scheduler's series.
    pub async fn day_ahead(&self, prices: IntervalSeries<Price>) -> Result<(), GridflexError> {
        self.ask(|r| Order::Prices(prices, r)).await?
    }

    /// A real-time price for one interval (replaces the day-ahead one).
    pub async fn real_time(&self, interval: Interval, price: Price) -> Result<(), GridflexError> {
        self.ask(|r| Order::RealTime(interval, price, r)).await?
    }

    /// A snapshot.
    pub async fn status(&self) -> Result<SchedulerStatus, GridflexError> {
        self.ask(Order::Status).await
    }

    /// The per-day reports so far.
    pub async fn report(&self) -> Result<Vec<DayReport>, GridflexError> {
        self.ask(Order::Report).await
    }

    /// Stops the loop, releasing every job it holds.
    pub async fn shutdown(&self) -> Result<(), GridflexError> {
        self.ask(Order::Stop).await
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> GridflexError {
    GridflexError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}
