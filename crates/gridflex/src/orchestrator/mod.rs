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
use gridflex_core::{DeviceId, Interval, JobId, MarketZone, Power, Price};
pub use gridflex_hal::OutsideRestore;
use gridflex_hal::{HalError, LimitChange, WorkloadControl, WorkloadState};
use gridflex_mv::response::Sample;
use gridflex_planner::{
    Action, CapRange, CurtailmentRequest, FacilityModel, Fleet, JobClass, JobSpec, Plan,
    PlannerOptions, RampRate, Target,
};
use gridflex_signals::source::SignalSource;
use gridflex_signals::{GridSignal, Market};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::GridflexError;
use crate::audit::{
    ActionOutcome, AuditEvent, AuditLog, Failure, Replan, RestoreReason, StopReason,
};
use crate::clock::Clock;
use crate::history::{self, HistoryOptions};
use crate::inventory::{BoundJob, DeviceHandle, JobEntry, bind};
use crate::metrics::{CurtailState, Lever, Metrics};
use crate::program::{Cause, Curtailment, Decision, IgnoreReason, ProgramEngine, ProgramRules};
use crate::report::{self, EventReport, MeterRecorder, RegulationInput, ReportInput};
use gridflex_store::{DetailKind, EventDetail, HistoryStore, Record, StoreWriter};

mod actuation;
mod arbiter;
mod builder;
mod capture;
mod handle;
mod jobs;
mod lifecycle;
mod recovery;
mod run;
mod schedule;
mod signal;
mod state;

use arbiter::Active;
pub use builder::{OrchestratorBuilder, OrchestratorOptions, Priority};
use capture::Capture;
use handle::Order;
pub use handle::{ActiveEvent, JobRemoval, JobStatus, OrchestratorHandle, Status};
use jobs::job_top;
use lifecycle::Ended;
use schedule::{Schedule, Step, Task, ceil_to, delta};
use state::{JobState, Level};

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
    /// Facility power as a signal's decision weighs it: the sweep's, plus what the jobs
    /// it could not read at all count for (`counted_draw`).
    decision_power: Option<Power>,
    active: Option<Active>,
    tasks: Schedule,
    meter: MeterRecorder,
    /// The notification time of the obligation being admitted from the schedule.
    notice: Option<DateTime<Utc>>,
    /// The history store's writer, when a store was given.
    history: Option<StoreWriter>,
    /// Windows of earlier events (not regulation) within the meter held: their days
    /// are not baseline days.
    event_windows: Vec<Interval>,
    next_sweep: Option<DateTime<Utc>>,
    capture: Option<Capture>,
    /// Finished reports not yet taken (at most `options.keep_reports`, the newest).
    reports: Vec<EventReport>,
    /// Every finished report, to subscribers of the live handle.
    report_tx: broadcast::Sender<EventReport>,
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
    /// Where metrics go (`None`: nothing is measured).
    metrics: Option<Metrics>,
    /// When the signal being handled arrived (only while metrics are kept).
    signal_started: Option<std::time::Instant>,
    /// Restores made outside the orchestrator (node agents' lapses), read by the run
    /// loop (see [`OrchestratorBuilder::outside_restores`]).
    outside: Option<mpsc::Receiver<OutsideRestore>>,
}

impl<C> std::fmt::Debug for Orchestrator<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("jobs", &self.jobs.len())
            .field("devices", &self.all_devices.len())
            .field("active_event", &self.active.as_ref().map(|a| a.id))
            .field("scheduled", &self.tasks.len())
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
            history: None,
            options: OrchestratorOptions::default(),
            metrics: None,
            outside: None,
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

    /// Sets the curtailment gauges from what each job holds (when metrics are kept).
    fn update_curtailed(&self) {
        let Some(m) = &self.metrics else {
            return;
        };
        let (mut jobs, mut gpus) = ([0i64; 3], [0i64; 3]);
        for (st, job) in self.state.iter().zip(&self.jobs) {
            let s = if st.unknown {
                CurtailState::Unknown
            } else if st.applied.paused || st.paused_since.is_some() {
                CurtailState::Paused
            } else if st.applied.cap.is_some() {
                CurtailState::Capped
            } else {
                continue;
            };
            jobs[s as usize] += 1;
            gpus[s as usize] += i64::try_from(job.devices.len()).unwrap_or(i64::MAX);
        }
        m.curtailed(jobs, gpus);
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
        if self.history.is_some() {
            self.mirror(&batch);
        }
        // The audit log must not stop curtailment or restoration: a failure is kept by
        // the log and returned by the next flush (at the latest when `run` ends).
        let _ = self.audit.append_from(&mut batch);
        batch.clear();
        self.batch = batch;
    }

    /// Hands an event's decision, plans and outcome to the history (as the audit
    /// record's JSON). Runs after the commands of the moment are issued.
    fn mirror(&mut self, batch: &[(DateTime<Utc>, AuditEvent)]) {
        for (at, event) in batch {
            let (event_id, kind) = match event {
                AuditEvent::Decision {
                    event_id: Some(id), ..
                } => (*id, DetailKind::Signal),
                AuditEvent::Plan { event_id, .. }
                | AuditEvent::PlanUpdate { event_id, .. }
                | AuditEvent::Replanned { event_id, .. } => (*event_id, DetailKind::Plan),
                AuditEvent::Restore { event_id, .. }
                | AuditEvent::TakenOver { event_id }
                | AuditEvent::Interrupted { event_id, .. } => (*event_id, DetailKind::Outcome),
                _ => continue,
            };
            match serde_json::to_string(event) {
                Ok(json) => self.store(Record::Detail(EventDetail {
                    event_id,
                    at: *at,
                    kind,
                    json,
                })),
                Err(e) => self.deferred.push((
                    *at,
                    AuditEvent::HistoryFailed {
                        error: format!("cannot encode an event detail: {e}"),
                    },
                )),
            }
        }
    }

    /// Files the decision that started a scheduled event under the event's id.
    fn store_decision(&mut self, event_id: u64, at: DateTime<Utc>, c: Curtailment) {
        let event = AuditEvent::Decision {
            event_id: Some(event_id),
            decision: Decision::Curtail(c),
        };
        match serde_json::to_string(&event) {
            Ok(json) => self.store(Record::Detail(EventDetail {
                event_id,
                at,
                kind: DetailKind::Signal,
                json,
            })),
            Err(e) => self.log(AuditEvent::HistoryFailed {
                error: format!("cannot encode the decision of event {event_id}: {e}"),
            }),
        }
    }

    /// Hands a record to the history writer, if there is one, without waiting; a
    /// refusal (queue full, writer gone) is logged.
    fn store(&mut self, record: Record) {
        let Some(w) = &self.history else {
            return;
        };
        if let Err(e) = w.submit(record) {
            let at = self.clock.now();
            self.deferred.push((
                at,
                AuditEvent::HistoryFailed {
                    error: e.to_string(),
                },
            ));
        }
    }

    /// Waits until every history record handed over so far is committed; a failure is
    /// logged. Called at shutdown.
    fn flush_history(&mut self) {
        let Some(w) = &self.history else {
            return;
        };
        if let Err(e) = w.flush() {
            self.log(AuditEvent::HistoryFailed {
                error: e.to_string(),
            });
        }
    }

    /// Queues a record; it is written after the commands of the current signal or task.
    fn log(&mut self, event: AuditEvent) {
        let now = self.clock.now();
        self.deferred.push((now, event));
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
