//! The [`Orchestrator`]: signal -> program rules -> plan -> actuation -> verification.
//!
//! It owns the clock, the backends, the job inventory, the schedule of plan stages and
//! restores, telemetry recording and the audit log. Everything else it delegates to the
//! pure crates: the rules to [`ProgramEngine`], planning to `gridflex-planner`, and
//! measurement to `gridflex-mv`.
//!
//! Safety rules it keeps:
//! - every curtailment has an end ([`ProgramRules::max_event`] closes open windows), and
//!   its restore is scheduled when it starts, so a silent or failed signal source can
//!   never leave a GPU capped or a job paused;
//! - an actuation error on one device is reported with its kind, the rest of the stage
//!   still runs, and the plan is re-solved without the failed job;
//! - shutdown (any future, for example [`ctrl_c`]) restores everything before `run`
//!   returns, and a final pass re-tries anything a restore left behind.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::join_all;
use gridflex_core::{Interval, JobId, MarketZone, Power, Price};
use gridflex_hal::{HalError, LimitChange, WorkloadControl};
use gridflex_mv::response::Sample;
use gridflex_planner::{
    Action, CapRange, CurtailmentRequest, FacilityModel, Fleet, JobClass, JobSpec, Plan,
    PlannerOptions, RampRate, Target,
};
use gridflex_signals::source::SignalSource;
use gridflex_signals::{GridSignal, Market};
use serde::{Deserialize, Serialize};

use crate::GridflexError;
use crate::audit::{ActionOutcome, AuditEvent, AuditLog, Failure};
use crate::clock::Clock;
use crate::inventory::{BoundJob, DeviceHandle, JobEntry, bind};
use crate::program::{Cause, Curtailment, Decision, ProgramEngine, ProgramRules};
use crate::report::{self, EventReport, MeterRecorder, RegulationInput, ReportInput};

/// Settings of the orchestrator, apart from the rules and the inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OrchestratorOptions {
    /// The planner's settings (lever response profiles).
    pub planner: PlannerOptions,
    /// How often all devices' telemetry is swept and the facility meter sampled
    /// (default 10 s). Plans are made from the latest sweep, so a signal costs no
    /// telemetry round-trip.
    #[serde(rename = "telemetry_step_s", with = "gridflex_core::duration_s::delta")]
    pub telemetry_step: TimeDelta,
    /// Interval length of the recorded facility meter used for M&V (default 5 min).
    #[serde(rename = "meter_step_s", with = "gridflex_core::duration_s::delta")]
    pub meter_step: TimeDelta,
    /// How long after an event's first actuation power is captured at high rate for the
    /// response time (default 2 s).
    #[serde(rename = "capture_s", with = "gridflex_core::duration_s::delta")]
    pub capture: TimeDelta,
    /// Polling step of that capture for devices without a sample stream (default 20 ms).
    #[serde(rename = "capture_step_s", with = "gridflex_core::duration_s::delta")]
    pub capture_step: TimeDelta,
    /// Regulation clearing prices for credit estimates: capability and performance
    /// price ($/MW per hour) and the mileage ratio. `None`: no credit is estimated.
    pub regulation_prices: Option<(Price, Price, f64)>,
    /// First wait before a failed command's job is driven back to its pre-event level
    /// again (default 0.5 s); each further failure doubles it, up to `retry_max`.
    #[serde(
        rename = "retry_initial_s",
        with = "gridflex_core::duration_s::delta",
        default = "default_retry_initial"
    )]
    pub retry_initial: TimeDelta,
    /// Longest wait between two restore attempts (default 30 s).
    #[serde(
        rename = "retry_max_s",
        with = "gridflex_core::duration_s::delta",
        default = "default_retry_max"
    )]
    pub retry_max: TimeDelta,
    /// How long a shutdown (or the end of a run) keeps retrying restores that have not
    /// been confirmed before it returns and reports what is left (default 60 s).
    #[serde(
        rename = "restore_grace_s",
        with = "gridflex_core::duration_s::delta",
        default = "default_restore_grace"
    )]
    pub restore_grace: TimeDelta,
}

fn default_retry_initial() -> TimeDelta {
    TimeDelta::milliseconds(500)
}

fn default_retry_max() -> TimeDelta {
    TimeDelta::seconds(30)
}

fn default_restore_grace() -> TimeDelta {
    TimeDelta::seconds(60)
}

impl Default for OrchestratorOptions {
    fn default() -> Self {
        Self {
            planner: PlannerOptions::default(),
            telemetry_step: TimeDelta::seconds(10),
            meter_step: TimeDelta::minutes(5),
            capture: TimeDelta::seconds(2),
            capture_step: TimeDelta::milliseconds(20),
            regulation_prices: None,
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            restore_grace: default_restore_grace(),
        }
    }
}

/// Builds an [`Orchestrator`]; see the crate docs for a complete example.
pub struct OrchestratorBuilder<C> {
    clock: C,
    devices: Vec<DeviceHandle>,
    jobs: Vec<(JobEntry, Option<Arc<dyn WorkloadControl>>)>,
    facility: Option<FacilityModel>,
    rules: Option<ProgramRules>,
    audit: Option<AuditLog>,
    options: OrchestratorOptions,
}

impl<C: Clock> OrchestratorBuilder<C> {
    /// Registers a device.
    pub fn device(mut self, device: DeviceHandle) -> Self {
        self.devices.push(device);
        self
    }

    /// Registers devices.
    pub fn devices(mut self, devices: impl IntoIterator<Item = DeviceHandle>) -> Self {
        self.devices.extend(devices);
        self
    }

    /// Adds a job; `control` pauses and resumes it (a job without one is never paused).
    pub fn job(mut self, entry: JobEntry, control: Option<Arc<dyn WorkloadControl>>) -> Self {
        self.jobs.push((entry, control));
        self
    }

    /// The facility power model (fixed part plus a multiplier on IT power).
    pub fn facility(mut self, facility: FacilityModel) -> Self {
        self.facility = Some(facility);
        self
    }

    /// The program rules.
    pub fn rules(mut self, rules: ProgramRules) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Where the audit log goes (default: discarded).
    pub fn audit(mut self, audit: AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Other settings.
    pub fn options(mut self, options: OrchestratorOptions) -> Self {
        self.options = options;
        self
    }

    /// Checks everything and builds the orchestrator.
    pub fn build(self) -> Result<Orchestrator<C>, GridflexError> {
        let rules = self
            .rules
            .ok_or_else(|| GridflexError::invalid("rules", "program rules are required"))?;
        let facility = self
            .facility
            .ok_or_else(|| GridflexError::invalid("facility", "a facility model is required"))?;
        let mut seen = HashSet::new();
        for d in &self.devices {
            if !seen.insert(d.id().clone()) {
                return Err(GridflexError::invalid(
                    "devices",
                    format!("device {} is registered twice", d.id()),
                ));
            }
        }
        if self.jobs.is_empty() {
            return Err(GridflexError::invalid(
                "jobs",
                "at least one job is required",
            ));
        }
        self.options.planner.validate()?;
        for (field, step) in [
            ("options.telemetry_step_s", self.options.telemetry_step),
            ("options.meter_step_s", self.options.meter_step),
            ("options.capture_step_s", self.options.capture_step),
            ("options.retry_initial_s", self.options.retry_initial),
            ("options.retry_max_s", self.options.retry_max),
        ] {
            if step <= TimeDelta::zero() {
                return Err(GridflexError::invalid(field, "must be positive"));
            }
        }
        let jobs = bind(self.jobs, &self.devices)?;
        let claimed: HashSet<_> = jobs
            .iter()
            .flat_map(|j| j.devices.iter().map(|d| d.id().clone()))
            .collect();
        let unassigned = self
            .devices
            .iter()
            .filter(|d| !claimed.contains(d.id()))
            .cloned()
            .collect();
        let n = jobs.len();
        let job_index = jobs
            .iter()
            .enumerate()
            .map(|(j, b)| (b.entry.id.as_str().to_owned(), j))
            .collect();
        let job_max = jobs
            .iter()
            .map(|b| {
                b.devices
                    .iter()
                    .map(|d| d.device.info().limit_at_discovery)
                    .reduce(Power::min)
                    .unwrap_or(Power::ZERO)
            })
            .collect();
        let ramp = RampRate::per_second(rules.restore_ramp_per_s)?;
        let meter_step = self.options.meter_step;
        Ok(Orchestrator {
            clock: self.clock,
            engine: ProgramEngine::new(rules)?,
            ramp,
            jobs,
            unassigned,
            all_devices: self.devices,
            facility,
            options: self.options,
            audit: self.audit.unwrap_or_else(AuditLog::discard),
            state: vec![JobState::default(); n],
            demand: vec![None; n],
            measured: vec![None; n],
            other_power: Power::ZERO,
            facility_power: None,
            active: None,
            schedule: BTreeMap::new(),
            task_seq: 0,
            meter: MeterRecorder::new(meter_step),
            next_sweep: None,
            capture: None,
            reports: Vec::new(),
            ended: Vec::new(),
            deferred_plans: Vec::new(),
            deferred: Vec::new(),
            fleet_cache: None,
            waiting: Vec::new(),
            job_index,
            job_max,
            next_event: 0,
            counts: RunSummary::default(),
            intake_after: None,
            batch: Vec::new(),
            control_slots: Vec::new(),
            cap_slots: Vec::new(),
        })
    }
}

/// What one job is set to.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Level {
    /// `None`: the limit found at discovery.
    cap: Option<Power>,
    paused: bool,
}

impl Level {
    const CLEAN: Level = Level {
        cap: None,
        paused: false,
    };
}

/// What the orchestrator knows of one job and owns of it: the level the hardware
/// confirmed, whether a failed command left its state unknown, and how much of its
/// pause budget the present curtailment episode has used. Every plan starts from it,
/// so a plan made mid-event starts from the fleet as it is, with the budget left.
///
/// An episode runs from the first curtailment after a fully restored fleet to the next
/// moment the whole fleet is restored with no event active: re-plans, updates and
/// take-overs all spend one budget.
#[derive(Debug, Clone, Default)]
struct JobState {
    /// The level last confirmed by the hardware.
    applied: Level,
    /// A command failed, so what the hardware holds is uncertain. The job is left out
    /// of every plan (its draw counts as fixed load) and the retry loop drives it back
    /// to its pre-event level until that is confirmed; nothing else commands it.
    unknown: bool,
    /// When the present pause began (also set when a failed command may have paused it).
    paused_since: Option<DateTime<Utc>>,
    /// Pause time of this episode's pauses that have ended.
    pause_used: Duration,
    /// When the present pause reaches the job's budget (or deadline): it is resumed
    /// then if still paused.
    pause_limit_at: Option<DateTime<Utc>>,
    /// Failed restore attempts in a row (the retry back-off).
    retries: u32,
    /// When the job was last commanded: its demand is learnt again only once it settled.
    last_command: Option<DateTime<Utc>>,
}

impl Default for Level {
    fn default() -> Self {
        Level::CLEAN
    }
}

impl JobState {
    /// Pause time spent in this episode, the running pause included.
    fn pause_spent(&self, now: DateTime<Utc>) -> Duration {
        let running = self.paused_since.map_or(Duration::ZERO, |since| {
            (now - since).to_std().unwrap_or_default()
        });
        self.pause_used.saturating_add(running)
    }

    /// A pause (or a command that may have paused) took effect at `now`.
    fn paused(&mut self, now: DateTime<Utc>) {
        self.paused_since.get_or_insert(now);
    }

    /// The job is confirmed running at `now`: its pause, if any, is counted.
    fn running(&mut self, now: DateTime<Utc>) {
        if self.paused_since.is_some() {
            self.pause_used = self.pause_spent(now);
            self.paused_since = None;
        }
        self.pause_limit_at = None;
    }

    fn is_clean(&self) -> bool {
        self.applied == Level::CLEAN && !self.unknown && self.paused_since.is_none()
    }

    /// Nothing that would change the planner's view of the job: known, not paused, no
    /// budget spent.
    fn is_clean_budget(&self) -> bool {
        !self.unknown && self.paused_since.is_none() && self.pause_used.is_zero()
    }
}

#[derive(Debug, Clone)]
enum Task {
    Start(Curtailment, Market),
    /// One step of a plan whose offsets count from `start`; each step schedules the
    /// next when it has run, so a plan costs one schedule entry at a time.
    Step {
        event_id: u64,
        plan: Arc<Plan>,
        start: DateTime<Utc>,
        step: Step,
    },
    RestoreDone {
        event_id: u64,
    },
    Report {
        event_id: u64,
    },
    CaptureEnd {
        event_id: u64,
    },
    CapturePoll {
        event_id: u64,
    },
    /// Drive a job whose command failed back to its pre-event level.
    Retry {
        job: usize,
    },
}

/// Where a plan is: its stages, the restore's start (window end), the restore steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Stage(usize),
    RestoreBegin,
    Restore(usize),
    Done,
}

impl Step {
    fn next(self, plan: &Plan) -> Step {
        match self {
            Step::Stage(i) if i + 1 < plan.stages.len() => Step::Stage(i + 1),
            Step::Stage(_) => Step::RestoreBegin,
            Step::RestoreBegin if !plan.restore.is_empty() => Step::Restore(0),
            Step::Restore(i) if i + 1 < plan.restore.len() => Step::Restore(i + 1),
            _ => Step::Done,
        }
    }

    /// Offset from the plan's start; `Done` follows the last restore step at once.
    fn offset(self, plan: &Plan) -> Duration {
        let last_restore = plan.restore.last().map_or(plan.restore_start, |s| s.offset);
        match self {
            Step::Stage(i) => plan.stages.get(i).map_or(Duration::ZERO, |s| s.offset),
            Step::RestoreBegin => plan.restore_start,
            Step::Restore(i) => plan.restore.get(i).map_or(last_restore, |s| s.offset),
            Step::Done => last_restore.max(plan.restore_start),
        }
    }
}

#[derive(Debug)]
struct Active {
    id: u64,
    curtailment: Curtailment,
    started: DateTime<Utc>,
    market: Market,
    zone: MarketZone,
    plan: Arc<Plan>,
    /// Prices seen at the followed node during a price event, for settlement.
    prices: Vec<(Interval, Price)>,
    reg_signal: Vec<Sample<f64>>,
    reg_response: Vec<Sample<Power>>,
    restoring: bool,
}

/// Data of an ended event, kept until its report is made.
#[derive(Debug)]
struct Ended {
    active: Active,
    capture: Vec<Sample<Power>>,
}

#[derive(Debug)]
struct Capture {
    event_id: u64,
    from: DateTime<Utc>,
    samples: Vec<Sample<Power>>,
}

/// What [`Orchestrator::handle_signal`] did with a signal.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Handled {
    /// Acted on at once: the event id and the number of device or job commands issued.
    Actuated {
        /// The event.
        event_id: u64,
        /// Commands issued (device cap writes plus job pauses/resumes).
        commands: usize,
    },
    /// Accepted for a window that starts later.
    Scheduled {
        /// When it will start.
        at: DateTime<Utc>,
    },
    /// Nothing to do.
    Ignored,
    /// Refused (logged, never executed).
    Refused,
}

/// Runs signal -> plan -> actuation -> verification for one facility.
pub struct Orchestrator<C> {
    clock: C,
    engine: ProgramEngine,
    ramp: RampRate,
    jobs: Vec<BoundJob>,
    unassigned: Vec<DeviceHandle>,
    all_devices: Vec<DeviceHandle>,
    facility: FacilityModel,
    options: OrchestratorOptions,
    audit: AuditLog,
    /// Per job: confirmed level, unknown state, pause budget used (see [`JobState`]).
    state: Vec<JobState>,
    /// Uncurtailed draw per GPU, per job: refreshed only while the job runs free.
    demand: Vec<Option<Power>>,
    /// Latest measured draw per GPU, per job.
    measured: Vec<Option<Power>>,
    other_power: Power,
    facility_power: Option<Power>,
    active: Option<Active>,
    schedule: BTreeMap<(DateTime<Utc>, u64), Task>,
    task_seq: u64,
    meter: MeterRecorder,
    next_sweep: Option<DateTime<Utc>>,
    capture: Option<Capture>,
    reports: Vec<EventReport>,
    ended: Vec<Ended>,
    deferred_plans: Vec<(DateTime<Utc>, AuditEvent)>,
    deferred: Vec<(DateTime<Utc>, AuditEvent)>,
    /// The planner's fleet view as of the last sweep (no exclusions).
    fleet_cache: Option<Fleet>,
    /// Obligations interrupted by, or looser than, the active event, in arrival order.
    waiting: Vec<(Curtailment, Market)>,
    /// Job position by id.
    job_index: HashMap<String, usize>,
    /// Per job: the lowest limit found at discovery among its devices (a cap at or above
    /// it is a restore).
    job_max: Vec<Power>,
    next_event: u64,
    counts: RunSummary,
    /// After a source error: when reading signals resumes.
    intake_after: Option<DateTime<Utc>>,
    /// The audit batch being assembled (its capacity reused when the log keeps nothing).
    batch: Vec<(DateTime<Utc>, AuditEvent)>,
    /// Result slots of job commands, reused by every stage.
    control_slots: Vec<Option<Result<(), Box<HalError>>>>,
    /// Result slots of device cap commands, reused by every stage.
    cap_slots: Vec<Option<Result<Power, Box<HalError>>>>,
}

impl<C> std::fmt::Debug for Orchestrator<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("jobs", &self.jobs.len())
            .field("devices", &self.all_devices.len())
            .field("active_event", &self.active.as_ref().map(|a| a.id))
            .field("scheduled", &self.schedule.len())
            .finish_non_exhaustive()
    }
}

/// Resolves when the process receives ctrl-c (or when installing the handler fails,
/// so that a broken handler errs on the side of restoring). Pass it to
/// [`Orchestrator::run`].
pub async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

impl<C: Clock> Orchestrator<C> {
    /// Starts a builder on a clock.
    pub fn builder(clock: C) -> OrchestratorBuilder<C> {
        OrchestratorBuilder {
            clock,
            devices: Vec::new(),
            jobs: Vec::new(),
            facility: None,
            rules: None,
            audit: None,
            options: OrchestratorOptions::default(),
        }
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Reports of the events that have ended so far.
    pub fn reports(&self) -> &[EventReport] {
        &self.reports
    }

    /// The recorded facility meter (interval means), if anything was recorded.
    pub fn meter(&self) -> Result<Option<gridflex_core::IntervalSeries<Power>>, GridflexError> {
        self.meter.series()
    }

    /// Facility power at the latest telemetry sweep.
    pub fn facility_power(&self) -> Option<Power> {
        self.facility_power
    }

    /// Jobs that are capped or paused right now, or whose state is unknown after an
    /// error. Empty when the fleet is fully restored.
    pub fn curtailed_jobs(&self) -> Vec<JobId> {
        self.jobs
            .iter()
            .enumerate()
            .filter(|(j, _)| !self.state[*j].is_clean())
            .map(|(_, b)| b.entry.id.clone())
            .collect()
    }

    /// Flushes the audit log.
    pub fn flush_audit(&mut self) -> Result<(), GridflexError> {
        self.audit.flush()
    }

    /// Queues a record to be written once the current signal or task is handled, so
    /// the audit never delays actuation and reads plan-then-actions.
    fn defer(&mut self, event: AuditEvent) {
        let at = self.clock.now();
        self.defer_at(at, event);
    }

    fn defer_at(&mut self, at: DateTime<Utc>, event: AuditEvent) {
        match event {
            AuditEvent::Plan { .. } | AuditEvent::PlanUpdate { .. } => {
                self.deferred_plans.push((at, event))
            }
            other => self.deferred.push((at, other)),
        }
    }

    /// Writes every queued record in one batch (one hand-off to the writer thread).
    fn emit_deferred(&mut self) {
        self.emit_with(Vec::new());
    }

    /// Writes `first`, then the queued plans, then the other queued records.
    fn emit_with(&mut self, first: Vec<(DateTime<Utc>, AuditEvent)>) {
        if first.is_empty() && self.deferred_plans.is_empty() && self.deferred.is_empty() {
            return;
        }
        // One batch, in a buffer the log hands back when it keeps nothing.
        let mut batch = std::mem::take(&mut self.batch);
        batch.reserve(first.len() + self.deferred_plans.len() + self.deferred.len());
        batch.extend(first);
        batch.append(&mut self.deferred_plans);
        batch.append(&mut self.deferred);
        // The audit log must not stop curtailment or restoration: a failure is kept by
        // the log and returned by the next flush (at the latest when `run` ends).
        let _ = self.audit.append_from(&mut batch);
        batch.clear();
        self.batch = batch;
    }

    /// Queues a record; it is written after the commands of the current signal or task.
    fn log(&mut self, event: AuditEvent) {
        let now = self.clock.now();
        self.deferred.push((now, event));
    }

    /// Sweeps every device's telemetry: updates measured draw, demand of free-running
    /// jobs, facility power, and the meter.
    pub async fn sweep(&mut self) {
        let now = self.clock.now();
        let reads = join_all(self.all_devices.iter().map(|d| {
            let dev = d.device.clone();
            async move { dev.telemetry().await }
        }))
        .await;
        let mut power_of = std::collections::HashMap::with_capacity(reads.len());
        let mut errors = Vec::new();
        for (d, r) in self.all_devices.iter().zip(reads) {
            match r {
                Ok(t) => {
                    if let Some(p) = t.power_average.or(t.power_instant) {
                        power_of.insert(d.id().clone(), p);
                    }
                }
                Err(e) => errors.push(format!("telemetry of {}: {e} ({:?})", d.id(), e.kind())),
            }
        }
        let mut it_power = Power::ZERO;
        let mut complete = true;
        for (j, job) in self.jobs.iter().enumerate() {
            let mut sum = Power::ZERO;
            let mut n = 0u32;
            for d in &job.devices {
                if let Some(p) = power_of.get(d.id()) {
                    sum += *p;
                    n += 1;
                }
            }
            if n == 0 {
                complete = false;
                continue;
            }
            let Some(per_gpu) = sum.checked_div(f64::from(n)) else {
                complete = false;
                continue;
            };
            self.measured[j] = Some(per_gpu);
            // Demand is learnt only from a job running free and settled: the averaged
            // reading must not hold a pause or a restore ramp.
            let st = &self.state[j];
            let settled = st
                .last_command
                .is_none_or(|at| now - at >= TimeDelta::seconds(2));
            let free = st.is_clean() && settled && self.active.is_none();
            if free || self.demand[j].is_none() {
                self.demand[j] = Some(per_gpu);
            }
            it_power += per_gpu.times(job.devices.len());
            complete &= n as usize == job.devices.len();
        }
        self.other_power = self
            .unassigned
            .iter()
            .filter_map(|d| power_of.get(d.id()).copied())
            .sum();
        it_power += self.other_power;
        let facility = self.facility.facility_power(it_power);
        self.facility_power = facility;
        self.fleet_cache = None;
        if complete && let Some(facility) = facility {
            self.meter.record(now, facility);
        }
        for e in errors {
            self.log(AuditEvent::Error { message: e });
        }
        self.emit_deferred();
    }

    /// The planner's view of the fleet from the latest sweep, at `now`: each job with
    /// the pause budget it has left in this episode. A job whose state is unknown (a
    /// command failed; the retry loop owns it) is pinned: left out of the plan, its
    /// measured draw counted as fixed load; so is a job the integrator pinned.
    fn fleet(&self, now: DateTime<Utc>) -> Result<Fleet, GridflexError> {
        let mut specs = Vec::with_capacity(self.jobs.len());
        let mut pinned = Power::ZERO;
        for (j, job) in self.jobs.iter().enumerate() {
            let st = &self.state[j];
            if st.unknown || job.entry.pinned {
                let draw = self.measured[j].or(self.demand[j]).unwrap_or(Power::ZERO);
                pinned += draw.times(job.devices.len());
                continue;
            }
            let draw = self.demand[j].or(self.measured[j]).ok_or_else(|| {
                GridflexError::invalid(
                    format!("jobs[{}]", job.entry.id),
                    "no telemetry yet (sweep first)",
                )
            })?;
            let infos = job.devices.iter().map(|d| d.device.info());
            let (mut min, mut max) = (Power::ZERO, Power::watts(gridflex_core::MAX_MAGNITUDE)?);
            for info in infos {
                min = min.max(info.limits.min());
                max = max.min(info.limit_at_discovery);
            }
            let class = match job.planner_class() {
                JobClass::Flexible { floor, max_pause } => JobClass::Flexible {
                    floor,
                    max_pause: max_pause.saturating_sub(st.pause_spent(now)),
                },
                other => other,
            };
            specs.push(JobSpec {
                id: job.entry.id.clone(),
                gpus: u32::try_from(job.devices.len()).unwrap_or(u32::MAX),
                draw_per_gpu: draw.min(max),
                cap_range: CapRange {
                    min: min.min(max),
                    max,
                },
                paused_draw_per_gpu: job.entry.paused_draw_per_gpu,
                curve: job.entry.throughput_curve(),
                weight: job.entry.weight,
                class,
            });
        }
        let fixed = (self.other_power + pinned)
            .checked_mul(self.facility.multiplier)
            .ok_or_else(|| GridflexError::invalid("facility.multiplier", "not finite"))?;
        let facility = FacilityModel::new(self.facility.fixed + fixed, self.facility.multiplier)?;
        Ok(Fleet::from_specs(specs, facility)?)
    }

    /// Plans a curtailment from `from` to its end. While every job is clean (no budget
    /// spent, nothing pinned) the fleet view is cached until the next telemetry sweep,
    /// so a signal costs one planner run.
    fn plan(&mut self, c: &Curtailment, from: DateTime<Utc>) -> Result<Plan, GridflexError> {
        let window = Interval::new(from, c.window.end())?;
        let request = CurtailmentRequest::new(c.target, window, c.response_duration(), self.ramp)?;
        if !self.state.iter().all(JobState::is_clean_budget) {
            let fleet = self.fleet(from)?;
            return Ok(gridflex_planner::plan(
                &fleet,
                &request,
                &self.options.planner,
            )?);
        }
        if self.fleet_cache.is_none() {
            self.fleet_cache = Some(self.fleet(from)?);
        }
        match &self.fleet_cache {
            Some(fleet) => Ok(gridflex_planner::plan(
                fleet,
                &request,
                &self.options.planner,
            )?),
            None => Err(GridflexError::invalid("fleet", "no fleet view")),
        }
    }

    fn schedule(&mut self, at: DateTime<Utc>, task: Task) {
        self.task_seq += 1;
        self.schedule.insert((at, self.task_seq), task);
    }

    /// Drops an event's pending plan steps and restore (not retries: those belong to
    /// jobs and outlive events).
    fn unschedule_event(&mut self, event_id: u64) {
        self.schedule.retain(|_, t| match t {
            Task::Step { event_id: e, .. } | Task::RestoreDone { event_id: e } => *e != event_id,
            _ => true,
        });
    }

    /// Handles one signal now: evaluates the rules, plans, and issues the first stage.
    pub async fn handle_signal(&mut self, signal: GridSignal) -> Handled {
        let now = self.clock.now();
        let facility = self.facility_power.unwrap_or(Power::ZERO);
        let decision = self.engine.evaluate(&signal, now, facility);
        if let (GridSignal::Regulation(r), Some(a)) = (&signal, self.active.as_mut())
            && matches!(a.curtailment.cause, Cause::Regulation)
        {
            a.reg_signal.push(Sample {
                at: r.at,
                value: r.signal.value(),
            });
        }
        let lmp = match &signal {
            GridSignal::Price(p) => Some((p.interval, p.lmp)),
            _ => None,
        };
        // Every price of the followed node during a price event counts for settlement,
        // whether it extended the event or not.
        if let (GridSignal::Price(p), Some(a), Some(rule)) = (
            &signal,
            self.active.as_mut(),
            self.engine.rules().price.as_ref(),
        ) && matches!(a.curtailment.cause, Cause::Price { .. })
            && p.node == rule.node
            && p.run == rule.run
        {
            a.prices.push((p.interval, p.lmp));
        }
        // Regulation yields to a curtailment event: a set-point every 2 s must not keep
        // replacing a price, dispatch or emergency obligation (nor be replaced by it and
        // come back 2 s later). The set-point is logged as ignored, with the reason.
        let curtailing = self
            .active
            .as_ref()
            .is_some_and(|a| !a.restoring && !matches!(a.curtailment.cause, Cause::Regulation));
        let decision = match decision {
            Decision::Curtail(c) if curtailing && matches!(c.cause, Cause::Regulation) => {
                Decision::Ignore {
                    reason: "regulation is suspended while a curtailment event is active".into(),
                }
            }
            other => other,
        };
        let outcome = match &decision {
            Decision::Curtail(c) if c.window.start() > now => {
                self.schedule(c.window.start(), Task::Start(c.clone(), signal.market()));
                Handled::Scheduled {
                    at: c.window.start(),
                }
            }
            Decision::Curtail(c) => {
                let reg = match &signal {
                    GridSignal::Regulation(r) => Some(Sample {
                        at: r.at,
                        value: r.signal.value(),
                    }),
                    _ => None,
                };
                self.admit(c.clone(), signal.market(), lmp, reg).await
            }
            Decision::Ignore { .. } => Handled::Ignored,
            Decision::Refuse(_) => Handled::Refused,
        };
        // Regulation performance is scored on metered response: read the facility power
        // once the new set-point's commands are out (what it shows is still the response
        // to the previous set-point, which is what the score pairs with each signal).
        if let (GridSignal::Regulation(_), Some(rule)) = (&signal, self.engine.rules().regulation) {
            let regulating = self
                .active
                .as_ref()
                .is_some_and(|a| matches!(a.curtailment.cause, Cause::Regulation));
            if regulating
                && let Some(p) = self.instant_facility_power().await
                && let Some(a) = self.active.as_mut()
            {
                a.reg_response.push(Sample {
                    at: now,
                    value: rule.base_point - p,
                });
            }
        }
        // Logged after the commands went out: the audit never delays actuation.
        let mut first = vec![(now, AuditEvent::Signal { signal })];
        let event_id = match outcome {
            Handled::Actuated { event_id, .. } => Some(event_id),
            _ => None,
        };
        if let Decision::Refuse(r) = &decision {
            first.push((now, AuditEvent::Refused { refusal: r.clone() }));
        }
        first.push((now, AuditEvent::Decision { event_id, decision }));
        self.emit_with(first);
        outcome
    }

    /// Admits a curtailment while another may be running. Concurrent obligations are
    /// served strictest first: a new one with a lower (or equal) facility cap takes
    /// over and the one it interrupts waits for the rest of its window; a looser one
    /// waits for the active one to end. Caps compare on the active plan's uncurtailed
    /// baseline, so a reduce-by target counts as `baseline - reduction`.
    async fn admit(
        &mut self,
        c: Curtailment,
        market: Market,
        price: Option<(Interval, Price)>,
        first_regulation: Option<Sample<f64>>,
    ) -> Handled {
        let now = self.clock.now();
        let competing = self
            .active
            .as_ref()
            .filter(|a| !a.restoring && !same_obligation(&a.curtailment.cause, &c.cause));
        if let Some(a) = competing {
            let baseline = a.plan.baseline;
            let (new_cap, active_cap) = (
                cap_of(c.target, baseline),
                cap_of(a.curtailment.target, baseline),
            );
            if new_cap > active_cap {
                let at = a.curtailment.window.end();
                let note = format!(
                    "{} waits: event {} ({}) holds a stricter cap ({active_cap:.0} against {new_cap:.0})",
                    c.cause, a.id, a.curtailment.cause
                );
                self.waiting.push((c, market));
                self.log(AuditEvent::Note { message: note });
                return Handled::Scheduled { at };
            }
            if let Ok(rest) = Interval::new(now, a.curtailment.window.end()) {
                let interrupted = Curtailment {
                    window: rest,
                    ..a.curtailment.clone()
                };
                let note = format!(
                    "event {} ({}) waits behind a stricter {}",
                    a.id, a.curtailment.cause, c.cause
                );
                self.waiting.push((interrupted, a.market));
                self.log(AuditEvent::Note { message: note });
            }
        }
        self.start_or_update(c, market, price, first_regulation)
            .await
    }

    /// The strictest waiting obligation whose window is still open, dropping those
    /// that have ended.
    fn take_waiting(
        &mut self,
        now: DateTime<Utc>,
        baseline: Power,
    ) -> Option<(Curtailment, Market)> {
        let before = self.waiting.len();
        self.waiting.retain(|(c, _)| c.window.end() > now);
        if self.waiting.len() < before {
            let message = format!(
                "{} waiting obligation(s) ended before they could run",
                before - self.waiting.len()
            );
            self.log(AuditEvent::Note { message });
        }
        let best = (0..self.waiting.len()).min_by(|&i, &j| {
            cap_of(self.waiting[i].0.target, baseline)
                .total_cmp(&cap_of(self.waiting[j].0.target, baseline))
        })?;
        let (c, market) = self.waiting.swap_remove(best);
        let window = Interval::new(now.max(c.window.start()), c.window.end()).unwrap_or(c.window);
        Some((Curtailment { window, ..c }, market))
    }

    /// Starts a new event, or updates the active one when `c` is the same obligation
    /// (a newer price, the same dispatch re-sent). A new event takes over from the
    /// active one directly: its plan is applied as a change from the fleet as it is, so
    /// a job paused under both is never resumed and paused again, and the pause budget
    /// of the episode carries on.
    async fn start_or_update(
        &mut self,
        c: Curtailment,
        market: Market,
        price: Option<(Interval, Price)>,
        first_regulation: Option<Sample<f64>>,
    ) -> Handled {
        let now = self.clock.now();
        let update = self
            .active
            .as_ref()
            .is_some_and(|a| !a.restoring && same_obligation(&a.curtailment.cause, &c.cause));
        // Plan before anything changes: a plan that cannot be made leaves the active
        // event (if any) as it is.
        let plan = match self.plan(&c, now) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                let id = self.active.as_ref().map_or(self.next_event + 1, |a| a.id);
                self.log(AuditEvent::Error {
                    message: format!("planning event {id}: {e}"),
                });
                return Handled::Refused;
            }
        };
        let id = if update {
            let a = self.active.as_ref().map(|a| a.id).unwrap_or_default();
            self.unschedule_event(a);
            a
        } else {
            if let Some(prev) = self.active.as_ref().map(|a| a.id) {
                self.retire(prev, "a newer event takes over");
            }
            self.next_event += 1;
            self.next_event
        };
        if !update {
            let mut active = Active {
                id,
                curtailment: c.clone(),
                started: now,
                market,
                zone: market.zone(),
                plan: plan.clone(),
                prices: price.into_iter().collect(),
                reg_signal: Vec::new(),
                reg_response: Vec::new(),
                restoring: false,
            };
            if let Some(first) = first_regulation {
                active.reg_signal.push(first);
            }
            self.active = Some(active);
            if !matches!(c.cause, Cause::Regulation) {
                self.begin_capture(id, now).await;
            }
        } else if let Some(a) = self.active.as_mut() {
            a.curtailment.window = Interval::new(a.curtailment.window.start(), c.window.end())
                .unwrap_or(a.curtailment.window);
            a.curtailment.target = c.target;
            a.plan = plan.clone();
        }
        // A plan's first stage describes the whole fleet from a clean state, so it is
        // applied as a diff against a clean fleet, for a new event and an update alike.
        let commands = self.execute_plan(id, &plan, now).await;
        if !update {
            self.defer(AuditEvent::Plan { event_id: id, plan });
        } else {
            self.defer(AuditEvent::PlanUpdate {
                event_id: id,
                target: plan.target,
                predicted_power: plan.predicted_power,
                shortfall: plan.shortfall,
                window_end: c.window.end(),
            });
        }
        Handled::Actuated {
            event_id: id,
            commands,
        }
    }

    /// Issues stage 0 now (as a change from the fleet as it is) and schedules the later
    /// stages and the restore.
    async fn execute_plan(&mut self, id: u64, plan: &Arc<Plan>, start: DateTime<Utc>) -> usize {
        let mut commands = 0;
        let next = match plan.stages.first() {
            Some(first) => {
                commands = self.execute_stage(id, &first.actions, true).await;
                Step::Stage(0).next(plan)
            }
            None => Step::RestoreBegin,
        };
        self.schedule_step(id, plan, start, next);
        commands
    }

    fn schedule_step(&mut self, id: u64, plan: &Arc<Plan>, start: DateTime<Utc>, step: Step) {
        let at = start + delta(step.offset(plan));
        let task = match step {
            Step::Done => Task::RestoreDone { event_id: id },
            step => Task::Step {
                event_id: id,
                plan: plan.clone(),
                start,
                step,
            },
        };
        self.schedule(at, task);
    }

    /// Applies actions as changes from the present state (or from a clean fleet when
    /// `from_clean`: a new plan's first stage describes the whole fleet), issuing only
    /// the commands that change something, all at once. Jobs whose state is unknown are
    /// left to the retry loop. During a restore (`restoring`) no job is ever sent a
    /// level more curtailed than the one it holds. Returns the commands issued.
    async fn execute_stage(&mut self, id: u64, actions: &[Action], from_clean: bool) -> usize {
        let restoring = self.active.as_ref().is_none_or(|a| a.restoring);
        let mut desired: Vec<Level> = if from_clean {
            vec![Level::CLEAN; self.state.len()]
        } else {
            self.state.iter().map(|s| s.applied).collect()
        };
        for a in actions {
            let Some(&j) = self.job_index.get(a.job().as_str()) else {
                continue;
            };
            match a {
                Action::SetCap { cap_per_gpu, .. } => {
                    // A cap at the job's top is a restore to the limit found at discovery.
                    desired[j].cap = if *cap_per_gpu >= self.job_max[j] {
                        None
                    } else {
                        Some(*cap_per_gpu)
                    };
                }
                Action::Pause { .. } => desired[j].paused = true,
                Action::Resume { .. } => desired[j].paused = false,
                _ => {}
            }
        }
        // What changes: (job, pause?) for workload controls, (job, cap) for devices.
        let mut controls: Vec<(usize, bool)> = Vec::new();
        let mut caps: Vec<(usize, Option<Power>)> = Vec::new();
        for (j, (want, st)) in desired.iter_mut().zip(&self.state).enumerate() {
            if st.unknown {
                continue;
            }
            let have = st.applied;
            if restoring {
                // A restore only ever lifts: never a pause, never a lower cap.
                want.paused &= have.paused;
                want.cap = match (want.cap, have.cap) {
                    (Some(w), Some(h)) => Some(w.max(h)),
                    _ => None,
                };
            }
            if want.cap != have.cap {
                caps.push((j, want.cap));
            }
            if want.paused != have.paused && self.jobs[j].control.is_some() {
                controls.push((j, want.paused));
            }
        }
        let commands = controls.len()
            + caps
                .iter()
                .map(|(j, _)| self.jobs[*j].devices.len())
                .sum::<usize>();
        if commands == 0 {
            return 0;
        }
        // Issue everything before waiting for anything: pauses (the fast lever) first,
        // then every device's cap.
        let control_slots = std::mem::take(&mut self.control_slots);
        let cap_slots = std::mem::take(&mut self.cap_slots);
        let (mut control_results, mut cap_results) = {
            let jobs = &self.jobs;
            // Results are boxed down to a few bytes as they arrive: a thousand of them
            // are kept until the stage is accounted for.
            let compact = |r: Result<(), HalError>| r.map_err(Box::new);
            let enforced =
                |r: Result<LimitChange, HalError>| r.map(|c| c.enforced).map_err(Box::new);
            // Result slots are reused from stage to stage: issuing commands allocates
            // no result vector.
            let mut control_out = FanOut::new(control_slots, compact);
            let mut cap_out = FanOut::new(cap_slots, enforced);
            // Plain loops (no iterator closures) keep the run future `Send`.
            std::future::poll_fn(|cx| {
                for &(j, pause) in &controls {
                    if let Some(c) = jobs[j].control.as_ref() {
                        control_out.issue(cx, if pause { c.pause() } else { c.resume() });
                    }
                }
                for &(j, cap) in &caps {
                    for d in &jobs[j].devices {
                        let command = match cap {
                            Some(c) => d.device.set_power_limit(c),
                            None => d.device.restore_power_limit(),
                        };
                        cap_out.issue(cx, command);
                    }
                }
                std::task::Poll::Ready(())
            })
            .await;
            futures_util::future::join(control_out.finish(), cap_out.finish()).await
        };
        // One reading of the clock for every record of this stage.
        let now = self.clock.now();
        let mut new_failures = Vec::new();
        for (&(j, pause), result) in controls.iter().zip(control_results.drain(..).flatten()) {
            let job = self.jobs[j].id.clone();
            let action = if pause {
                Action::Pause { job }
            } else {
                Action::Resume { job }
            };
            let outcome = match result {
                Ok(()) => {
                    self.state[j].applied.paused = pause;
                    if pause {
                        self.paused(j, now);
                    } else {
                        self.resumed(j, now);
                    }
                    ActionOutcome::Done {
                        enforced_per_gpu: None,
                    }
                }
                Err(e) => {
                    if pause {
                        // Some of its GPUs may have stopped: count it as paused.
                        self.paused(j, now);
                    }
                    new_failures.push(j);
                    ActionOutcome::Failed {
                        failures: vec![Failure::of(None, &e)],
                    }
                }
            };
            self.defer_at(
                now,
                AuditEvent::Action {
                    event_id: id,
                    action,
                    devices: 1,
                    outcome,
                },
            );
        }
        let mut results = cap_results.drain(..).flatten();
        for &(j, cap) in &caps {
            let n = self.jobs[j].devices.len();
            let mut failures = Vec::new();
            let mut enforced: Option<Option<Power>> = None; // None: no answer yet
            for (d, r) in self.jobs[j].devices.iter().zip(results.by_ref().take(n)) {
                match r {
                    Ok(limit) => {
                        enforced = Some(match enforced {
                            None => Some(limit),
                            Some(e) => e.filter(|e| *e == limit),
                        })
                    }
                    Err(e) => failures.push(Failure::of(Some(d.id().clone()), &e)),
                }
            }
            let action = Action::SetCap {
                job: self.jobs[j].id.clone(),
                cap_per_gpu: cap.unwrap_or(self.job_max[j]),
            };
            let outcome = if failures.is_empty() {
                self.state[j].applied.cap = cap;
                ActionOutcome::Done {
                    enforced_per_gpu: enforced.flatten(),
                }
            } else {
                new_failures.push(j);
                ActionOutcome::Failed { failures }
            };
            self.defer_at(
                now,
                AuditEvent::Action {
                    event_id: id,
                    action,
                    devices: n,
                    outcome,
                },
            );
        }
        drop(results);
        self.control_slots = control_results;
        self.cap_slots = cap_results;
        for &j in controls
            .iter()
            .map(|(j, _)| j)
            .chain(caps.iter().map(|(j, _)| j))
        {
            self.state[j].last_command = Some(now);
        }
        new_failures.sort_unstable();
        new_failures.dedup();
        if !new_failures.is_empty() {
            // A job whose command failed is in an unknown state: it leaves the plan and
            // the retry loop gives it back; the rest of the event is re-solved without it.
            for &j in &new_failures {
                self.fail(j, now);
            }
            let reason = format!(
                "{} job(s) failed and are being restored",
                new_failures.len()
            );
            self.replan(id, &reason).await;
        }
        commands
    }

    /// A confirmed pause of job `j` (or a command that may have paused it) at `now`:
    /// starts its pause clock and schedules the moment its budget (or deadline) ends.
    fn paused(&mut self, j: usize, now: DateTime<Utc>) {
        let st = &mut self.state[j];
        if st.paused_since.is_some() {
            return;
        }
        st.paused(now);
        let limit = match self.jobs[j].planner_class() {
            JobClass::Flexible { max_pause, .. } => {
                let left = max_pause.saturating_sub(st.pause_used);
                now.checked_add_signed(delta(left))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
            }
            JobClass::Deferrable { deadline } => deadline.max(now),
            // Never to be paused: give it back at once.
            _ => now,
        };
        self.state[j].pause_limit_at = Some(limit);
    }

    /// Job `j` is confirmed running at `now`: its pause is counted and its pause limit,
    /// if one was scheduled, is dropped.
    fn resumed(&mut self, j: usize, now: DateTime<Utc>) {
        self.state[j].running(now);
    }

    /// Marks job `j` unknown after a failed command and schedules its restore.
    fn fail(&mut self, j: usize, now: DateTime<Utc>) {
        let st = &mut self.state[j];
        if !st.unknown {
            st.unknown = true;
            st.retries = 0;
            self.fleet_cache = None;
            self.schedule(now + self.options.retry_initial, Task::Retry { job: j });
        }
    }

    /// Re-solves the active event from fresh telemetry and the fleet as it is (jobs in
    /// an unknown state pinned, budgets as left), replacing its remaining steps.
    async fn replan(&mut self, id: u64, reason: &str) {
        let Some(c) = self
            .active
            .as_ref()
            .filter(|a| a.id == id && !a.restoring)
            .map(|a| a.curtailment.clone())
        else {
            return;
        };
        // Re-solve from fresh telemetry: what the failed devices and the rest draw now.
        Box::pin(self.sweep()).await;
        let now = self.clock.now();
        if c.window.end() <= now {
            return;
        }
        match self.plan(&c, now) {
            Ok(plan) => {
                let plan = Arc::new(plan);
                self.log(AuditEvent::Note {
                    message: format!("event {id}: re-planned: {reason}"),
                });
                self.unschedule_event(id);
                if let Some(a) = self.active.as_mut() {
                    a.plan = plan.clone();
                }
                Box::pin(self.execute_plan(id, &plan, now)).await;
                self.defer(AuditEvent::Plan { event_id: id, plan });
            }
            Err(e) => self.log(AuditEvent::Error {
                message: format!("re-planning event {id}: {e}"),
            }),
        }
    }

    /// Drives a job whose state is unknown back to its pre-event level (uncapped and
    /// running), the only level a retry ever sends; on failure tries again later, each
    /// wait twice the last up to `retry_max`.
    async fn retry(&mut self, j: usize) -> bool {
        if !self.state[j].unknown {
            return true;
        }
        let job = &self.jobs[j];
        let control = job.control.clone();
        let devices: Vec<_> = job.devices.iter().map(|d| d.device.clone()).collect();
        let resumed = match &control {
            Some(c) => c.resume().await.map_err(|e| vec![Failure::of(None, &e)]),
            None => Ok(()),
        };
        let reads = join_all(devices.iter().map(|d| d.restore_power_limit())).await;
        let mut failures: Vec<Failure> = resumed.err().unwrap_or_default();
        for (d, r) in devices.iter().zip(reads) {
            if let Err(e) = r {
                failures.push(Failure::of(Some(d.id().clone()), &e));
            }
        }
        let now = self.clock.now();
        let st = &mut self.state[j];
        st.last_command = Some(now);
        let ok = failures.is_empty();
        let outcome = if ok {
            st.unknown = false;
            st.applied = Level::CLEAN;
            st.retries = 0;
            ActionOutcome::Done {
                enforced_per_gpu: None,
            }
        } else {
            st.retries = st.retries.saturating_add(1);
            let wait = self
                .options
                .retry_initial
                .checked_mul(1 << st.retries.min(20))
                .unwrap_or(self.options.retry_max)
                .min(self.options.retry_max);
            self.schedule(now + wait, Task::Retry { job: j });
            ActionOutcome::Failed { failures }
        };
        self.log_resume(j, now, self.jobs[j].devices.len(), outcome);
        if ok {
            self.resumed(j, now);
            self.fleet_cache = None;
            self.log(AuditEvent::Note {
                message: format!("job {} restored after a failed command", self.jobs[j].id),
            });
            self.end_episode_if_restored();
            // Back in a known state: the active event may use it again.
            if let Some(id) = self.active.as_ref().filter(|a| !a.restoring).map(|a| a.id) {
                let reason = format!("job {} is back", self.jobs[j].id);
                self.replan(id, &reason).await;
            }
        }
        ok
    }

    /// A paused job's budget (or deadline) ends now: it is resumed, and the active
    /// event re-planned with the budget it has left (none), or its shortfall reported.
    async fn pause_limit(&mut self, j: usize) {
        let st = &mut self.state[j];
        st.pause_limit_at = None;
        if st.paused_since.is_none() || st.unknown {
            return;
        }
        let Some(control) = self.jobs[j].control.clone() else {
            return;
        };
        let result = control.resume().await;
        let now = self.clock.now();
        let outcome = match result {
            Ok(()) => {
                self.state[j].applied.paused = false;
                self.resumed(j, now);
                ActionOutcome::Done {
                    enforced_per_gpu: None,
                }
            }
            Err(e) => {
                self.fail(j, now);
                ActionOutcome::Failed {
                    failures: vec![Failure::of(None, &e)],
                }
            }
        };
        self.state[j].last_command = Some(now);
        self.log(AuditEvent::Note {
            message: format!(
                "job {} reached its pause limit and is resumed",
                self.jobs[j].id
            ),
        });
        self.log_resume(j, now, 1, outcome);
        self.fleet_cache = None;
        if let Some(id) = self.active.as_ref().filter(|a| !a.restoring).map(|a| a.id) {
            let reason = format!("job {} reached its pause limit", self.jobs[j].id);
            self.replan(id, &reason).await;
        }
    }

    /// Audits a resume of job `j` outside a plan's stages (a retry, a pause limit), on
    /// the active event if any (event 0 when none).
    fn log_resume(&mut self, j: usize, now: DateTime<Utc>, devices: usize, outcome: ActionOutcome) {
        let event_id = self.active.as_ref().map_or(0, |a| a.id);
        let job = self.jobs[j].id.clone();
        self.defer_at(
            now,
            AuditEvent::Action {
                event_id,
                action: Action::Resume { job },
                devices,
                outcome,
            },
        );
    }

    /// When no event is active and the whole fleet is confirmed back at its pre-event
    /// level, the episode is over: every pause budget is whole again.
    fn end_episode_if_restored(&mut self) {
        let spent = self.state.iter().any(|s| !s.pause_used.is_zero());
        if spent && self.active.is_none() && self.state.iter().all(JobState::is_clean) {
            for st in &mut self.state {
                st.pause_used = Duration::ZERO;
            }
        }
    }

    async fn begin_capture(&mut self, event_id: u64, at: DateTime<Utc>) {
        let streams = self.all_devices.iter().all(|d| d.samples.is_some());
        let mut capture = Capture {
            event_id,
            from: at,
            samples: Vec::new(),
        };
        if !streams {
            // Polling: one sample just before the instruction, then every capture step.
            if let Some(p) = self.instant_facility_power().await {
                capture.samples.push(Sample {
                    at: at - TimeDelta::milliseconds(1),
                    value: p,
                });
            }
            self.schedule(
                at + self.options.capture_step,
                Task::CapturePoll { event_id },
            );
        }
        self.capture = Some(capture);
        self.schedule(at + self.options.capture, Task::CaptureEnd { event_id });
    }

    async fn instant_facility_power(&self) -> Option<Power> {
        let reads = join_all(self.all_devices.iter().map(|d| {
            let dev = d.device.clone();
            async move { dev.telemetry().await }
        }))
        .await;
        let mut it = Power::ZERO;
        for r in reads {
            it += r.ok()?.power_instant?;
        }
        self.facility.facility_power(it)
    }

    async fn finish_capture(&mut self, event_id: u64) {
        let Some(mut capture) = self.capture.take().filter(|c| c.event_id == event_id) else {
            return;
        };
        if self.all_devices.iter().all(|d| d.samples.is_some()) {
            let since = capture.from - TimeDelta::milliseconds(500);
            let reads = join_all(
                self.all_devices
                    .iter()
                    .filter_map(|d| d.samples.clone())
                    .map(|s| async move { s.power_samples_since(Some(since)).await }),
            )
            .await;
            // Bin every device's samples on a common grid and add them up; only bins
            // that every device reported count.
            let bin_ns = self
                .options
                .capture_step
                .num_nanoseconds()
                .unwrap_or(20_000_000)
                .max(1);
            let mut bins: BTreeMap<i64, (Power, usize)> = BTreeMap::new();
            let n = reads.len();
            for r in reads.into_iter().flatten() {
                let mut seen = HashSet::new();
                for s in r {
                    let k = s.at.timestamp_nanos_opt().unwrap_or(0).div_euclid(bin_ns);
                    if seen.insert(k) {
                        let e = bins.entry(k).or_insert((Power::ZERO, 0));
                        e.0 += s.power;
                        e.1 += 1;
                    }
                }
            }
            capture.samples = bins
                .into_iter()
                .filter(|(_, (_, c))| *c == n)
                .filter_map(|(k, (p, _))| {
                    Some(Sample {
                        at: DateTime::from_timestamp_nanos(k * bin_ns),
                        value: self.facility.facility_power(p)?,
                    })
                })
                .collect();
        }
        capture.samples.sort_by_key(|s| s.at);
        capture.samples.dedup_by_key(|s| s.at);
        self.capture = Some(capture);
    }

    /// Ends an event now: cancels its remaining stages and restores everything at once.
    async fn end_event(&mut self, id: u64, reason: &str) {
        self.cut_window(id);
        self.log(AuditEvent::Restore {
            event_id: id,
            reason: reason.to_owned(),
        });
        self.execute_stage(id, &[], true).await;
        self.finish_event(id).await;
    }

    /// Cancels an event's remaining steps and, if it ends before its window does,
    /// shortens the window to the part that ran (what it is reported over).
    fn cut_window(&mut self, id: u64) {
        self.unschedule_event(id);
        let now = self.clock.now();
        if let Some(a) = self.active.as_mut().filter(|a| a.id == id) {
            let w = a.curtailment.window;
            if now < w.end() {
                a.curtailment.window = Interval::new(w.start(), now).unwrap_or(w);
            }
        }
    }

    /// Ends an event without restoring: the next event's plan takes over from the fleet
    /// as it is. The ended event is reported over the part that ran.
    fn retire(&mut self, id: u64, reason: &str) {
        self.cut_window(id);
        self.log(AuditEvent::Note {
            message: format!("event {id} ends: {reason}"),
        });
        self.close(id);
    }

    async fn finish_event(&mut self, id: u64) {
        self.ensure_restored(id).await;
        self.close(id);
        self.end_episode_if_restored();
    }

    /// Takes the active event `id` out and schedules its report.
    fn close(&mut self, id: u64) {
        let Some(active) = self.active.take_if(|a| a.id == id) else {
            return;
        };
        let capture = match self.capture.take() {
            Some(c) if c.event_id == id => c.samples,
            other => {
                self.capture = other;
                Vec::new()
            }
        };
        // Report once the meter interval holding the window end is complete.
        let step = self.options.meter_step;
        let end = active.curtailment.window.end().min(
            self.clock
                .now()
                .max(active.started + TimeDelta::nanoseconds(1)),
        );
        let at = ceil_to(end, step) + self.options.telemetry_step;
        self.schedule(at, Task::Report { event_id: id });
        self.ended.push(Ended { active, capture });
    }

    /// Lifts anything still capped or paused (jobs in an unknown state are the retry
    /// loop's).
    async fn ensure_restored(&mut self, id: u64) {
        if self
            .state
            .iter()
            .all(|s| s.applied == Level::CLEAN || s.unknown)
        {
            return;
        }
        self.execute_stage(id, &[], true).await;
    }

    /// Retries every job not yet confirmed at its pre-event level until all are, or
    /// until `restore_grace` has passed; what is left is logged as an error (and stays
    /// in [`Orchestrator::curtailed_jobs`]).
    async fn converge(&mut self, reason: &str) {
        let give_up = self.clock.now() + self.options.restore_grace;
        let mut wait = self.options.retry_initial;
        loop {
            self.ensure_restored(0).await;
            let left: Vec<usize> = (0..self.state.len())
                .filter(|&j| self.state[j].unknown)
                .collect();
            for j in left {
                self.retry(j).await;
            }
            self.emit_deferred();
            if self.state.iter().all(JobState::is_clean) {
                self.end_episode_if_restored();
                return;
            }
            let now = self.clock.now();
            if now >= give_up {
                let left = self.curtailed_jobs();
                self.log(AuditEvent::Error {
                    message: format!(
                        "{reason}: {} job(s) not confirmed restored after {}s of retries: {}",
                        left.len(),
                        self.options.restore_grace.num_seconds(),
                        left.iter()
                            .map(|j| j.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
                return;
            }
            self.clock.sleep_until((now + wait).min(give_up)).await;
            wait = (wait * 2).min(self.options.retry_max);
        }
    }

    /// Runs until `shutdown` resolves, or until the source has ended and every event
    /// has been restored and reported. Everything is restored before it returns:
    /// restores that fail are retried (with back-off) until confirmed, for at most
    /// [`OrchestratorOptions::restore_grace`] once the run is ending.
    ///
    /// Each wake-up handles one thing: a signal (evaluated, planned and actuated at
    /// once), a due stage, restore, retry or pause limit, a telemetry sweep, or the
    /// shutdown. The source is read without ever dropping a read in flight (a timer
    /// firing never cancels a poll), and an error from it is logged and reading goes on
    /// after a back-off (1 s, doubling to 60 s): only `Ok(None)` ends intake.
    pub async fn run<S, F>(&mut self, source: S, shutdown: F) -> Result<RunSummary, GridflexError>
    where
        S: SignalSource,
        F: Future<Output = ()>,
    {
        use futures_util::StreamExt;
        enum Wake {
            Shutdown,
            Due,
            Signal(Option<Result<Option<GridSignal>, gridflex_signals::SignalError>>),
        }
        self.log(AuditEvent::Note {
            message: format!(
                "orchestrator started: {} jobs on {} devices",
                self.jobs.len(),
                self.all_devices.len()
            ),
        });
        self.sweep().await;
        self.next_sweep = Some(self.clock.now() + self.options.telemetry_step);
        let mut shutdown = std::pin::pin!(shutdown);
        // The stream owns the source and its read in flight, so a read survives every
        // wake-up that is not its own (cancel safety).
        let mut signals =
            std::pin::pin!(futures_util::stream::unfold(source, |mut s| async move {
                let next = s.next_signal().await;
                Some((next, s))
            }));
        let mut open = true;
        let mut source_errors = 0u32;
        loop {
            if self.intake_after.is_some_and(|t| t <= self.clock.now()) {
                self.intake_after = None;
            }
            let reading = open && self.intake_after.is_none();
            let next = self.next_deadline();
            let wake = {
                let sleep = self.clock.sleep_until(next);
                tokio::select! {
                    // A signal due at the same instant as a scheduled step goes first:
                    // a price that extends an event must arrive before its restore.
                    biased;
                    () = &mut shutdown => Wake::Shutdown,
                    s = signals.next(), if reading => Wake::Signal(s),
                    () = sleep => Wake::Due,
                }
            };
            match wake {
                Wake::Shutdown => {
                    self.shutdown("shutdown requested").await;
                    break;
                }
                Wake::Due => self.run_due().await,
                Wake::Signal(Some(Ok(Some(signal)))) => {
                    source_errors = 0;
                    self.counts.signals += 1;
                    match self.handle_signal(signal).await {
                        Handled::Actuated { commands, .. } => self.counts.commands += commands,
                        Handled::Refused => self.counts.refused += 1,
                        _ => {}
                    }
                }
                Wake::Signal(None | Some(Ok(None))) => {
                    open = false;
                    self.log(AuditEvent::Note {
                        message: "signal source ended; active events run to their end".into(),
                    });
                }
                Wake::Signal(Some(Err(e))) => {
                    source_errors = source_errors.saturating_add(1);
                    let wait = TimeDelta::seconds(1 << source_errors.clamp(1, 7).saturating_sub(1))
                        .min(TimeDelta::seconds(60));
                    self.counts.source_errors += 1;
                    self.intake_after = Some(self.clock.now() + wait);
                    self.log(AuditEvent::Error {
                        message: format!(
                            "signal source failed ({source_errors} in a row): {e}; reading again in {}s",
                            wait.num_seconds()
                        ),
                    });
                }
            }

            self.emit_deferred();
            let only_retries = self
                .schedule
                .values()
                .all(|t| matches!(t, Task::Retry { .. }));
            if !open && self.active.is_none() && only_retries && self.ended.is_empty() {
                if !self.state.iter().all(JobState::is_clean) {
                    self.converge("signal source ended").await;
                }
                break;
            }
        }
        self.emit_deferred();
        self.counts.events = self.reports.len();
        self.audit.flush()?;
        Ok(self.counts.clone())
    }

    fn next_deadline(&self) -> DateTime<Utc> {
        let task = self.schedule.keys().next().map(|(t, _)| *t);
        let pause_limit = self.state.iter().filter_map(|s| s.pause_limit_at).min();
        [task, self.next_sweep, self.intake_after, pause_limit]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Runs every task that is due, and the telemetry sweep when due.
    pub async fn run_due(&mut self) {
        let now = self.clock.now();
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.sweep().await;
            let step = self.options.telemetry_step;
            self.next_sweep = self.next_sweep.map(|t| (t + step).max(now));
        }
        while let Some(entry) = self.schedule.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let task = entry.remove();
            self.run_task(task).await;
            self.emit_deferred();
        }
        // Pause limits after the plans' own steps, so a resume a plan makes at the same
        // instant comes first.
        for j in 0..self.state.len() {
            if self.state[j].pause_limit_at.is_some_and(|t| t <= now) {
                self.pause_limit(j).await;
                self.emit_deferred();
            }
        }
        self.emit_deferred();
    }

    async fn run_task(&mut self, task: Task) {
        match task {
            Task::Start(c, market) => {
                let now = self.clock.now();
                if c.window.end() <= now {
                    return;
                }
                let c = Curtailment {
                    window: Interval::new(now.max(c.window.start()), c.window.end())
                        .unwrap_or(c.window),
                    ..c
                };
                if let Handled::Actuated { commands, .. } = self.admit(c, market, None, None).await
                {
                    self.counts.commands += commands;
                }
            }
            Task::Step {
                event_id,
                plan,
                start,
                step,
            } => {
                match step {
                    Step::RestoreBegin => {
                        // A waiting obligation takes over from the ending event directly
                        // (no restore in between) instead of letting the fleet restore.
                        let now = self.clock.now();
                        let baseline = plan.baseline;
                        let ending = self.active.as_ref().is_some_and(|a| a.id == event_id);
                        if ending && let Some((next, market)) = self.take_waiting(now, baseline) {
                            match self.start_or_update(next, market, None, None).await {
                                Handled::Actuated { commands, .. } => {
                                    self.counts.commands += commands;
                                    return;
                                }
                                _ => self.log(AuditEvent::Note {
                                    message: format!(
                                        "event {event_id}: the waiting obligation could not be planned; restoring"
                                    ),
                                }),
                            }
                        }
                        if let Some(a) = self.active.as_mut().filter(|a| a.id == event_id) {
                            a.restoring = true;
                            self.log(AuditEvent::Restore {
                                event_id,
                                reason: "window end".into(),
                            });
                        }
                    }
                    Step::Stage(i) | Step::Restore(i) => {
                        let stages = if matches!(step, Step::Restore(_)) {
                            &plan.restore
                        } else {
                            &plan.stages
                        };
                        if let Some(stage) = stages.get(i) {
                            self.execute_stage(event_id, &stage.actions, false).await;
                        }
                    }
                    Step::Done => {}
                }
                self.schedule_step(event_id, &plan, start, step.next(&plan));
            }
            Task::RestoreDone { event_id } => self.finish_event(event_id).await,
            Task::Retry { job } => {
                self.retry(job).await;
            }
            Task::Report { event_id } => self.make_report(event_id),
            Task::CaptureEnd { event_id } => self.finish_capture(event_id).await,
            Task::CapturePoll { event_id } => {
                let now = self.clock.now();
                let p = self.instant_facility_power().await;
                if let (Some(c), Some(p)) =
                    (self.capture.as_mut().filter(|c| c.event_id == event_id), p)
                {
                    c.samples.push(Sample { at: now, value: p });
                    if now + self.options.capture_step < c.from + self.options.capture {
                        let at = now + self.options.capture_step;
                        self.schedule(at, Task::CapturePoll { event_id });
                    }
                }
            }
        }
    }

    fn make_report(&mut self, event_id: u64) {
        let Some(i) = self.ended.iter().position(|e| e.active.id == event_id) else {
            return;
        };
        let ended = self.ended.swap_remove(i);
        let a = ended.active;
        let meter = match self.meter.series() {
            Ok(m) => m,
            Err(e) => {
                self.log(AuditEvent::Error {
                    message: format!("meter of event {event_id}: {e}"),
                });
                None
            }
        };
        let regulation = match (&a.curtailment.cause, self.engine.rules().regulation) {
            (Cause::Regulation, Some(rule)) => Some(RegulationInput {
                signal: &a.reg_signal,
                response: &a.reg_response,
                capability: rule.capability,
                prices: self.options.regulation_prices,
            }),
            _ => None,
        };
        let report = report::build(ReportInput {
            event_id,
            cause: a.curtailment.cause.clone(),
            window: Interval::new(
                a.started.min(a.curtailment.window.start()),
                a.curtailment.window.end(),
            )
            .unwrap_or(a.curtailment.window),
            target: a.plan.target,
            predicted: a.plan.predicted_power,
            shortfall: a.plan.shortfall,
            zone: a.zone,
            meter,
            capture: &ended.capture,
            prices: &a.prices,
            regulation,
        });
        self.log(AuditEvent::Report {
            event_id,
            report: Box::new(report.clone()),
        });
        self.reports.push(report);
    }

    /// Restores everything now (staggering is skipped: shutdown must finish), reports
    /// every ended event, and drops anything scheduled.
    pub async fn shutdown(&mut self, reason: &str) {
        if let Some(id) = self.active.as_ref().map(|a| a.id) {
            self.end_event(id, reason).await;
        }
        if !self.waiting.is_empty() {
            let message = format!(
                "{} waiting obligation(s) dropped: {reason}",
                self.waiting.len()
            );
            self.waiting.clear();
            self.log(AuditEvent::Note { message });
        }
        let dropped = self
            .schedule
            .values()
            .filter(|t| matches!(t, Task::Start(..)))
            .count();
        if dropped > 0 {
            self.log(AuditEvent::Note {
                message: format!("{dropped} scheduled event(s) not started: {reason}"),
            });
        }
        self.schedule.clear();
        if !self.state.iter().all(JobState::is_clean) {
            self.converge(reason).await;
        }
        let ids: Vec<u64> = self.ended.iter().map(|e| e.active.id).collect();
        for id in ids {
            self.make_report(id);
        }
        self.log(AuditEvent::Note {
            message: format!(
                "stopped: {reason}; curtailed jobs left: {}",
                self.curtailed_jobs().len()
            ),
        });
        self.emit_deferred();
    }
}

/// Counts from one [`Orchestrator::run`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunSummary {
    /// Signals received.
    pub signals: usize,
    /// Signals refused.
    pub refused: usize,
    /// Events reported.
    pub events: usize,
    /// Device and job commands issued.
    pub commands: usize,
    /// Errors the signal source returned (each logged; reading went on after a back-off).
    #[serde(default)]
    pub source_errors: usize,
}

type Command<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Issues commands concurrently: each is polled once as soon as it is made, so a
/// backend that answers at once costs no scheduling (and its future is freed before the
/// next is made); only the commands still pending are awaited together, in `finish`.
/// `map` turns each result into what is kept; results come back in command order, in
/// the slots the fan-out was given (every one filled).
struct FanOut<'a, T, U, M> {
    results: Vec<Option<U>>,
    pending: Vec<(usize, Command<'a, T>)>,
    map: M,
}

impl<'a, T: Send + 'a, U, M: Fn(T) -> U> FanOut<'a, T, U, M> {
    /// A fan-out that fills `slots` (cleared first; its capacity is reused).
    fn new(mut slots: Vec<Option<U>>, map: M) -> Self {
        slots.clear();
        Self {
            results: slots,
            pending: Vec::new(),
            map,
        }
    }

    fn issue(&mut self, cx: &mut std::task::Context<'_>, mut command: Command<'a, T>) {
        match command.as_mut().poll(cx) {
            std::task::Poll::Ready(r) => self.results.push(Some((self.map)(r))),
            std::task::Poll::Pending => {
                self.pending.push((self.results.len(), command));
                self.results.push(None);
            }
        }
    }

    async fn finish(self) -> Vec<Option<U>> {
        use futures_util::StreamExt;
        use futures_util::stream::FuturesUnordered;
        let Self {
            mut results,
            pending,
            map,
        } = self;
        if !pending.is_empty() {
            let mut waiting: FuturesUnordered<_> = pending
                .into_iter()
                .map(|(i, f)| async move { (i, f.await) })
                .collect();
            while let Some((i, r)) = waiting.next().await {
                results[i] = Some(map(r));
            }
        }
        // Every slot is filled: at issue, or by the loop, which runs until all finish.
        results
    }
}

/// Whether two causes are one obligation, so that the newer updates the event of the
/// older: prices of the followed node, the emergency alerts, and the regulation
/// set-points are each one obligation; dispatches are one only under the same event id
/// (an unrelated dispatch is an obligation of its own, served strictest first).
fn same_obligation(a: &Cause, b: &Cause) -> bool {
    match (a, b) {
        (Cause::Dispatch { id: x, .. }, Cause::Dispatch { id: y, .. }) => x == y,
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

/// A target as a facility cap, given the uncurtailed facility power.
fn cap_of(target: Target, baseline: Power) -> Power {
    match target {
        Target::FacilityCap(cap) => cap,
        Target::ReduceBy(r) => baseline - r,
        // Targets the planner adds later compare as the loosest.
        _ => baseline,
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

fn ceil_to(t: DateTime<Utc>, step: TimeDelta) -> DateTime<Utc> {
    let step_ns = step.num_nanoseconds().unwrap_or(1).max(1);
    let ns = t.timestamp_nanos_opt().unwrap_or(0);
    let r = ns.rem_euclid(step_ns);
    DateTime::from_timestamp_nanos(if r == 0 { ns } else { ns - r + step_ns })
}
