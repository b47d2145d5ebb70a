//! The append-only audit log: one JSON object per line, for every signal, decision,
//! plan, action, outcome and error, each with its time and a sequence number.
//!
//! The log is written so that a settlement dispute can be answered from it alone: what
//! arrived, what the rules decided and why, what was planned, what each device and job
//! was told and what it answered, and the M&V report of each event.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use gridflex::audit::{AuditEvent, AuditLog};
//!
//! let (mut log, memory) = AuditLog::memory();
//! let t = Utc.with_ymd_and_hms(2025, 8, 14, 0, 0, 0).unwrap();
//! log.append(t, AuditEvent::Started { jobs: 3, devices: 24 })?;
//! log.flush()?;
//! let records = memory.records()?;
//! assert_eq!((records[0].schema, records[0].seq), (gridflex::audit::AUDIT_SCHEMA, 0));
//! assert!(matches!(records[0].event, AuditEvent::Started { jobs: 3, .. }));
//! # Ok::<(), gridflex::GridflexError>(())
//! ```

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::TimeDelta;
use chrono::{DateTime, Utc};
use gridflex_core::{DeviceId, JobId, Power};
use gridflex_hal::ErrorKind;
use gridflex_planner::{Action, Plan};
use gridflex_signals::GridSignal;
use serde::{Deserialize, Serialize};

use crate::GridflexError;
use crate::program::{Cause, Decision, Refusal};
use crate::report::EventReport;

/// The schema version this build writes in every record (`"v"`). Version 1 was the
/// unversioned log of gridflex 0.1 with free-text notes; a record without `"v"` reads
/// as version 1 (and its notes fail to parse, reported as problems by the readers).
pub const AUDIT_SCHEMA: u32 = 2;

fn schema_v1() -> u32 {
    1
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The schema version of the record ([`AUDIT_SCHEMA`] when written by this build).
    #[serde(rename = "v", default = "schema_v1")]
    pub schema: u32,
    /// Position in the log, from 0, without gaps.
    pub seq: u64,
    /// When it happened (the orchestrator's clock).
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// How an actuation ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActionOutcome {
    /// Every device (or the job's workload control) accepted the command.
    Done {
        /// For a cap: the limit each device reported as enforced, when they agree.
        enforced_per_gpu: Option<Power>,
    },
    /// Some or all targets failed; the rest was still carried out.
    Failed {
        /// Each failure: the device (or `None` for the job's workload control), the
        /// portable error kind and the message.
        failures: Vec<Failure>,
    },
}

/// One failed command within an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The device, or `None` when the job's workload control failed.
    pub device: Option<DeviceId>,
    /// The portable error kind (`no_permission`, `out_of_range`, `device_lost`,
    /// `transient`, `other`).
    pub kind: ErrorKind,
    /// The backend's message.
    pub message: String,
}

impl Failure {
    /// The failure of a command to `device` (`None`: the job's workload control).
    pub fn of(device: Option<DeviceId>, error: &gridflex_hal::HalError) -> Self {
        Self {
            device,
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

/// Why an event's curtailment ended and its restore began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RestoreReason {
    /// Its window ended (the restore is staggered under the ramp limit).
    WindowEnd,
    /// An operator ended it (everything restored at once).
    Operator,
    /// The orchestrator is stopping (everything restored at once).
    Shutdown,
}

impl std::fmt::Display for RestoreReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::WindowEnd => "window end",
            Self::Operator => "ended by an operator",
            Self::Shutdown => "shutdown",
        })
    }
}

/// Why the orchestrator stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StopReason {
    /// The shutdown future given to `run` resolved (for example ctrl-c).
    Requested,
    /// `OrchestratorHandle::shutdown` was called.
    Handle,
    /// Every `OrchestratorHandle` was dropped.
    HandlesDropped,
    /// The signal source ended and every event was restored and reported (`run` only;
    /// a spawned service keeps running).
    SourceEnded,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Requested => "shutdown requested",
            Self::Handle => "shutdown ordered through the handle",
            Self::HandlesDropped => "every handle was dropped",
            Self::SourceEnded => "the signal source ended",
        })
    }
}

/// Why an active event was re-planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Replan {
    /// Commands to these jobs failed: they are out of the plan until restored.
    JobsFailed {
        /// The jobs.
        jobs: Vec<JobId>,
    },
    /// A job whose command had failed is confirmed back at its pre-event level.
    JobBack {
        /// The job.
        job: JobId,
    },
    /// A paused job reached its pause budget (or deadline) and was resumed.
    PauseLimit {
        /// The job.
        job: JobId,
    },
    /// A job joined the inventory.
    JobAdded {
        /// The job.
        job: JobId,
    },
    /// A job's entry changed.
    JobUpdated {
        /// The job.
        job: JobId,
    },
    /// A job left the inventory.
    JobRemoved {
        /// The job.
        job: JobId,
    },
    /// Something outside the orchestrator (a node agent whose lease lapsed) gave these
    /// jobs back; their restore is confirmed and they are planned in again.
    RestoredOutside {
        /// The jobs.
        jobs: Vec<JobId>,
    },
    /// These jobs cannot be reached and may have been given back on their own (a node
    /// whose lease may have run out during a partition): they are planned at their
    /// pre-event draw until the hardware confirms their state.
    PresumedRestored {
        /// The jobs.
        jobs: Vec<JobId>,
    },
}

impl std::fmt::Display for Replan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::JobsFailed { jobs } => {
                let ids: Vec<&str> = jobs.iter().map(JobId::as_str).collect();
                write!(f, "commands to {} failed", ids.join(", "))
            }
            Self::JobBack { job } => write!(f, "job {job} is back after a failed command"),
            Self::PauseLimit { job } => write!(f, "job {job} reached its pause limit"),
            Self::JobAdded { job } => write!(f, "job {job} joined"),
            Self::JobUpdated { job } => write!(f, "job {job} changed"),
            Self::JobRemoved { job } => write!(f, "job {job} left"),
            Self::RestoredOutside { jobs } => {
                let ids: Vec<&str> = jobs.iter().map(JobId::as_str).collect();
                write!(f, "{} restored outside the orchestrator", ids.join(", "))
            }
            Self::PresumedRestored { jobs } => {
                let ids: Vec<&str> = jobs.iter().map(JobId::as_str).collect();
                write!(
                    f,
                    "{} unreachable and possibly restored on their own",
                    ids.join(", ")
                )
            }
        }
    }
}

/// What an audit record says happened. Serde writes the variant name in snake_case
/// as `"event"`, beside `"v"`, `"seq"` and `"at"`; `docs/audit.md` shows one record of
/// each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEvent {
    /// The orchestrator started.
    Started {
        /// Jobs in the inventory.
        jobs: usize,
        /// Devices registered.
        devices: usize,
    },
    /// A signal arrived.
    Signal {
        /// The signal as received.
        signal: GridSignal,
    },
    /// The program rules decided on the last signal.
    Decision {
        /// The event it belongs to, when it started or changed one.
        event_id: Option<u64>,
        /// The decision, with its reason.
        decision: Decision,
    },
    /// A signal was refused; nothing was executed for it.
    Refused {
        /// Why.
        refusal: Refusal,
    },
    /// A plan was made for an event.
    Plan {
        /// The event.
        event_id: u64,
        /// The plan in full.
        plan: Arc<Plan>,
    },
    /// An event's plan was re-solved for a newer signal of the same kind (a
    /// regulation set-point, a price extension). The commands that followed are the
    /// `action` records after it; the full plan is logged when an event starts.
    PlanUpdate {
        /// The event.
        event_id: u64,
        /// The new facility target.
        target: Power,
        /// Predicted facility power once settled.
        predicted_power: Power,
        /// Shortfall, if the target is out of reach within service levels.
        shortfall: Option<Power>,
        /// The event's (possibly extended) end.
        window_end: DateTime<Utc>,
    },
    /// No plan could be made for an obligation; nothing was changed for it.
    PlanFailed {
        /// The event it would have started or changed.
        event_id: u64,
        /// The planner's error.
        error: String,
    },
    /// The active event was re-planned from the fleet as it is; its full new plan
    /// follows as a `plan` record.
    Replanned {
        /// The event.
        event_id: u64,
        /// Why.
        reason: Replan,
    },
    /// A re-plan failed; the event's previous plan goes on.
    ReplanFailed {
        /// The event.
        event_id: u64,
        /// Why it was re-planned.
        reason: Replan,
        /// The planner's error.
        error: String,
    },
    /// A planned action was carried out (or tried).
    Action {
        /// The event (0 for a restore outside any event).
        event_id: u64,
        /// The action (it names the job).
        action: Action,
        /// How many devices it went to.
        devices: usize,
        /// The result.
        outcome: ActionOutcome,
    },
    /// A new obligation waits: the active event holds a stricter cap.
    Waiting {
        /// The waiting obligation.
        cause: Cause,
        /// The event it waits behind.
        behind: u64,
        /// Its cap (on the active plan's baseline).
        cap: Power,
        /// The active event's cap.
        holder_cap: Power,
    },
    /// The active event waits behind a stricter obligation that takes over; it resumes
    /// for the rest of its window if that is still open when the other ends.
    Interrupted {
        /// The interrupted event.
        event_id: u64,
        /// The stricter obligation.
        by: Cause,
    },
    /// An event ended without a restore: the next event's plan took over from the
    /// fleet as it was.
    TakenOver {
        /// The event that ended.
        event_id: u64,
    },
    /// Waiting obligations whose windows ended before they could run.
    WaitingExpired {
        /// How many.
        count: usize,
    },
    /// A waiting obligation could not be planned when its turn came; the fleet restores.
    HandOverFailed {
        /// The event that was ending.
        event_id: u64,
    },
    /// The event's curtailment ended and restoration began.
    Restore {
        /// The event.
        event_id: u64,
        /// Why.
        reason: RestoreReason,
    },
    /// Obligations dropped without running (by an operator's end or a shutdown).
    ObligationsDropped {
        /// Obligations that were waiting for the active event to end.
        waiting: usize,
        /// Events scheduled to start later.
        scheduled: usize,
    },
    /// A paused job reached its pause budget (or its deadline) and was resumed.
    PauseLimitReached {
        /// The job.
        job: JobId,
    },
    /// A job whose command had failed is confirmed back at its pre-event level.
    JobRestored {
        /// The job.
        job: JobId,
    },
    /// Something outside the orchestrator gave devices and jobs back (a node agent
    /// whose lease lapsed, or that restarted): `confirming` are the curtailed jobs it
    /// touched, whose restore the orchestrator now confirms on the hardware before it
    /// plans them in again (each confirmation is an `action` resume record, then
    /// `job_restored`).
    RestoredOutside {
        /// Devices reported back at their pre-curtailment limit.
        devices: Vec<DeviceId>,
        /// Jobs reported resumed.
        jobs: Vec<JobId>,
        /// Why, as reported.
        reason: String,
        /// The jobs the orchestrator held curtailed among those touched.
        confirming: Vec<JobId>,
        /// True for a presumed restore ([`gridflex_hal::OutsideRestore::presumed`]): the jobs are
        /// planned at their pre-event draw and confirmed once they can be reached
        /// (absent from the record when false).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        presumed: bool,
    },
    /// A report of a restore outside the orchestrator named a device or job it does not
    /// know, and was refused whole (nothing was changed).
    OutsideRestoreRefused {
        /// Why.
        error: String,
    },
    /// Restores still unconfirmed when the retry grace ran out (the jobs stay in the
    /// restore loop while the orchestrator runs).
    RestoreIncomplete {
        /// The jobs.
        jobs: Vec<JobId>,
        /// How long restores were retried.
        #[serde(rename = "grace_s", with = "gridflex_core::duration_s::delta")]
        grace: TimeDelta,
    },
    /// A device's telemetry could not be read in a sweep.
    TelemetryFailed {
        /// The device.
        device: DeviceId,
        /// The portable error kind.
        kind: ErrorKind,
        /// The backend's message.
        error: String,
    },
    /// The signal source returned an error; reading resumes after a back-off.
    SourceFailed {
        /// Errors in a row.
        consecutive: u32,
        /// The source's error.
        error: String,
        /// When reading resumes.
        #[serde(rename = "retry_in_s", with = "gridflex_core::duration_s::delta")]
        retry_in: TimeDelta,
    },
    /// The signal source ended; active events run to their end.
    SourceEnded,
    /// The facility meter could not be read for an event's report.
    MeterUnavailable {
        /// The event.
        event_id: u64,
        /// Why.
        error: String,
    },
    /// The M&V report of an event.
    Report {
        /// The event.
        event_id: u64,
        /// The report.
        report: Box<EventReport>,
    },
    /// A job joined the inventory while running.
    JobAdded {
        /// The job.
        job: JobId,
    },
    /// A job's entry changed while running.
    JobUpdated {
        /// The job.
        job: JobId,
    },
    /// A job left the inventory (given back first if it was curtailed).
    JobRemoved {
        /// The job.
        job: JobId,
    },
    /// A job was removed while curtailed and its restore failed: it is out of every
    /// plan, the retry loop drives it back, and it leaves (`job_removed`) once the
    /// hardware confirms the restore.
    JobLeaving {
        /// The job.
        job: JobId,
    },
    /// A device was registered while running.
    DeviceAdded {
        /// The device.
        device: DeviceId,
    },
    /// A device was unregistered while running.
    DeviceRemoved {
        /// The device.
        device: DeviceId,
    },
    /// A record could not be handed to the history store (its queue was full or its
    /// writer failed): that record is not in the store; the audit log still has the
    /// event.
    HistoryFailed {
        /// Why.
        error: String,
    },
    /// The orchestrator stopped.
    Stopped {
        /// Why.
        reason: StopReason,
        /// Jobs whose restore could not be confirmed (empty when all were given back).
        curtailed_left: Vec<JobId>,
    },
}

/// Appends records to a writer, numbering them.
///
/// Encoding and writing happen on a background thread, so appending a record costs the
/// caller a channel send: the audit never delays actuation. [`AuditLog::flush`] waits
/// until everything appended so far is written and flushed, and reports any write error
/// (an error is also reported by the next `append` after it happened).
pub struct AuditLog {
    /// `false` for [`AuditLog::discard`]: records are counted and dropped unencoded.
    keep: bool,
    tx: Option<std::sync::mpsc::Sender<Msg>>,
    worker: Option<std::thread::JoinHandle<()>>,
    failure: Arc<Mutex<Option<String>>>,
    next_seq: u64,
}

enum Msg {
    /// Events numbered from `first`.
    Records {
        first: u64,
        events: Vec<(DateTime<Utc>, AuditEvent)>,
    },
    Flush(std::sync::mpsc::SyncSender<()>),
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// A log written to any writer (buffered, on a background thread).
    pub fn new(out: impl Write + Send + 'static) -> Self {
        Self::with_sink(Plain(BufWriter::new(out)), SyncPolicy::OsBuffer)
    }

    fn with_sink(sink: impl Sink + 'static, sync: SyncPolicy) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Msg>();
        let failure = Arc::new(Mutex::new(None));
        let fail = failure.clone();
        let worker = std::thread::Builder::new()
            .name("gridflex-audit".into())
            .spawn(move || write_loop(sink, sync, &rx, &fail));
        match worker {
            Ok(worker) => Self {
                keep: true,
                tx: Some(tx),
                worker: Some(worker),
                failure,
                next_seq: 0,
            },
            Err(e) => {
                // No thread: every append reports the failure instead of losing records.
                let failure = Arc::new(Mutex::new(Some(format!(
                    "cannot start the writer thread: {e}"
                ))));
                Self {
                    keep: true,
                    tx: None,
                    worker: None,
                    failure,
                    next_seq: 0,
                }
            }
        }
    }

    /// A log that keeps nothing: records are numbered and dropped without being
    /// encoded, and no writer thread runs (for benchmarks of the actuation path, and for
    /// callers that audit elsewhere).
    pub fn discard() -> Self {
        Self {
            keep: false,
            tx: None,
            worker: None,
            failure: Arc::new(Mutex::new(None)),
            next_seq: 0,
        }
    }

    /// A log appended to a file (created if absent; never truncated), with the
    /// default [`AuditFileOptions`]: [`SyncPolicy::OnFlush`], no rotation. A log that
    /// already holds records is continued: numbering goes on from its last whole record,
    /// and a torn last line (a crash mid-write) is closed with a line break first, so it
    /// stays one unreadable line and the new records read back whole.
    pub fn append_to_file(path: impl AsRef<Path>) -> Result<Self, GridflexError> {
        Self::append_to_file_with(path, AuditFileOptions::default())
    }

    /// [`AuditLog::append_to_file`] with a sync policy and rotation. With rotation,
    /// `path` is the active file; a full one is renamed to `PATH.SEQ` (SEQ: the first
    /// sequence number it holds, 20 digits, so names sort in order) and a new one
    /// started. [`read_audit_files`] reads them all back in order.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use gridflex::audit::{AuditEvent, AuditFileOptions, AuditLog, Rotation, read_audit_files};
    ///
    /// let dir = std::env::temp_dir().join(format!("gridflex-audit-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("audit.jsonl");
    /// let mut options = AuditFileOptions::default();
    /// options.rotation = Rotation { max_bytes: Some(200), daily: true };
    /// let mut log = AuditLog::append_to_file_with(&path, options)?;
    /// let t = Utc.with_ymd_and_hms(2025, 8, 14, 0, 0, 0).unwrap();
    /// for _ in 0..5 {
    ///     log.append(t, AuditEvent::Started { jobs: 3, devices: 24 })?;
    /// }
    /// log.flush()?; // fsynced: survives a power loss
    /// let back = read_audit_files(&path)?;
    /// assert!(back.is_complete());
    /// assert_eq!(back.records.len(), 5);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append_to_file_with(
        path: impl AsRef<Path>,
        options: AuditFileOptions,
    ) -> Result<Self, GridflexError> {
        let path = path.as_ref().to_path_buf();
        let err = |e: std::io::Error| {
            GridflexError::Audit(format!("cannot open {}: {e}", path.display()))
        };
        if options.rotation.max_bytes == Some(0) {
            return Err(GridflexError::invalid(
                "audit.rotation.max_bytes",
                "must be positive",
            ));
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        let (mut last, ends_with_newline) = last_record(&mut file).map_err(err)?;
        if !ends_with_newline {
            file.write_all(b"\n").map_err(err)?;
        }
        if last.is_none() {
            // A crash between a rotation's rename and the first record of the new
            // file: the numbering goes on from the newest rotated segment.
            if let Some(seg) = segments(&path).map_err(err)?.last() {
                let mut f = File::open(seg).map_err(err)?;
                last = last_record(&mut f).map_err(err)?.0;
            }
        }
        let size = file.metadata().map_err(err)?.len();
        let first = first_seq(&path).map_err(err)?;
        let sink = Files {
            day: last.map(|(_, at)| at.date_naive()),
            path,
            file: BufWriter::new(file),
            size,
            first,
            options,
        };
        let mut log = Self::with_sink(sink, options.sync);
        log.next_seq = last.map_or(0, |(s, _)| s.saturating_add(1));
        Ok(log)
    }

    /// A log kept in memory, with a handle to read it back.
    pub fn memory() -> (Self, MemoryLog) {
        let buffer = MemoryLog(Arc::new(Mutex::new(Vec::new())));
        (Self::new(buffer.clone()), buffer)
    }

    fn failed(&self) -> Result<(), GridflexError> {
        match self.failure.lock() {
            Ok(f) => f
                .as_ref()
                .map_or(Ok(()), |e| Err(GridflexError::Audit(e.clone()))),
            Err(_) => Err(GridflexError::Audit("writer state poisoned".into())),
        }
    }

    /// Appends one record.
    pub fn append(&mut self, at: DateTime<Utc>, event: AuditEvent) -> Result<(), GridflexError> {
        self.append_all(vec![(at, event)])
    }

    /// Appends several records in one hand-off to the writer.
    pub fn append_all(
        &mut self,
        events: Vec<(DateTime<Utc>, AuditEvent)>,
    ) -> Result<(), GridflexError> {
        self.failed()?;
        let first = self.next_seq;
        let n = events.len() as u64;
        if !self.keep {
            self.next_seq += n;
            return Ok(());
        }
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| GridflexError::Audit("the log is closed".into()))?;
        tx.send(Msg::Records { first, events }).map_err(|_| {
            GridflexError::Audit(format!("the writer stopped before record {first}"))
        })?;
        self.next_seq += n;
        Ok(())
    }

    /// Appends every record of `events` in order and leaves `events` empty. A log that
    /// keeps nothing ([`AuditLog::discard`]) keeps the vector's capacity for the next
    /// batch, so counting records costs no allocation.
    pub fn append_from(
        &mut self,
        events: &mut Vec<(DateTime<Utc>, AuditEvent)>,
    ) -> Result<(), GridflexError> {
        if !self.keep {
            self.failed()?;
            self.next_seq += events.len() as u64;
            events.clear();
            return Ok(());
        }
        self.append_all(std::mem::take(events))
    }

    /// Waits until every record appended so far is written and flushed.
    pub fn flush(&mut self) -> Result<(), GridflexError> {
        if !self.keep {
            return Ok(());
        }
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| GridflexError::Audit("the log is closed".into()))?;
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        tx.send(Msg::Flush(done_tx))
            .map_err(|_| GridflexError::Audit("the writer stopped".into()))?;
        done_rx
            .recv()
            .map_err(|_| GridflexError::Audit("the writer stopped".into()))?;
        self.failed()
    }

    /// Records appended so far.
    pub fn len(&self) -> u64 {
        self.next_seq
    }

    /// True when nothing was appended yet.
    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it has written everything queued.
        self.tx.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// An [`AuditRecord`] written from borrowed parts (same JSON).
#[derive(Serialize)]
struct RecordRef<'a> {
    v: u32,
    seq: u64,
    at: &'a DateTime<Utc>,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

/// When the writer thread makes what it wrote durable (asks the OS to put it on the
/// disk, `fsync`). Every policy writes each batch to the OS as soon as the queue is
/// empty, so a crash of the *process* (kill -9, panic, abort) loses at most the batch
/// being written, whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Never fsynced by gridflex (the OS writes back within its own delay, typically
    /// 5-30 s): a machine crash or power loss can lose the records of that delay.
    OsBuffer,
    /// Fsynced when [`AuditLog::flush`] is called (and at rotation and close): a record
    /// is durable against power loss once a `flush` that follows it has returned. The
    /// default; the orchestrator flushes when it stops.
    #[default]
    OnFlush,
    /// Fsynced after every batch the writer thread writes: each record is durable
    /// within one batch's latency without any `flush`, at one fsync per batch (about
    /// 0.1-10 ms on a disk; the actuation path never waits for it).
    EveryBatch,
}

/// When an audit file is closed and a new one started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rotation {
    /// Start a new file before a record would take the active one past this size.
    pub max_bytes: Option<u64>,
    /// Start a new file at the first record of each UTC day.
    pub daily: bool,
}

/// Settings of a file audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuditFileOptions {
    /// What is fsynced when.
    pub sync: SyncPolicy,
    /// When a new file is started (default: never).
    pub rotation: Rotation,
}

/// Where the writer thread puts encoded records.
trait Sink: Send {
    /// Writes one whole line (ending in a line break).
    fn write_record(&mut self, seq: u64, at: &DateTime<Utc>, line: &[u8]) -> std::io::Result<()>;
    /// Hands what is buffered to the OS and, when `durable`, fsyncs it.
    fn flush(&mut self, durable: bool) -> std::io::Result<()>;
}

/// Any writer: flushed, never synced.
struct Plain<W: Write>(BufWriter<W>);

impl<W: Write + Send> Sink for Plain<W> {
    fn write_record(&mut self, _: u64, _: &DateTime<Utc>, line: &[u8]) -> std::io::Result<()> {
        self.0.write_all(line)
    }
    fn flush(&mut self, _durable: bool) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A file, rotated by size or day.
struct Files {
    path: std::path::PathBuf,
    file: BufWriter<File>,
    size: u64,
    /// The first sequence number in the active file.
    first: Option<u64>,
    /// The UTC day of the last record written.
    day: Option<chrono::NaiveDate>,
    options: AuditFileOptions,
}

impl Files {
    fn rotate(&mut self) -> std::io::Result<()> {
        let Some(first) = self.first else {
            return Ok(());
        };
        let durable = self.options.sync != SyncPolicy::OsBuffer;
        self.flush(durable)?;
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{first:020}"));
        std::fs::rename(&self.path, &name)?;
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)?;
        if durable && let Some(dir) = self.path.parent() {
            // The rename and the new file are durable once the directory is.
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            File::open(dir)?.sync_all()?;
        }
        self.file = BufWriter::new(file);
        self.size = 0;
        self.first = None;
        Ok(())
    }
}

impl Sink for Files {
    fn write_record(&mut self, seq: u64, at: &DateTime<Utc>, line: &[u8]) -> std::io::Result<()> {
        let len = line.len() as u64;
        let full = self
            .options
            .rotation
            .max_bytes
            .is_some_and(|max| self.size > 0 && self.size + len > max);
        let new_day = self.options.rotation.daily
            && self.size > 0
            && self.day.is_some_and(|d| d != at.date_naive());
        if full || new_day {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += len;
        self.first.get_or_insert(seq);
        self.day = Some(at.date_naive());
        Ok(())
    }

    fn flush(&mut self, durable: bool) -> std::io::Result<()> {
        self.file.flush()?;
        if durable {
            self.file.get_ref().sync_data()?;
        }
        Ok(())
    }
}

fn write_loop(
    mut out: impl Sink,
    sync: SyncPolicy,
    rx: &std::sync::mpsc::Receiver<Msg>,
    failure: &Mutex<Option<String>>,
) {
    let mut line = Vec::with_capacity(1024);
    let fail = |message: String| {
        if let Ok(mut f) = failure.lock() {
            f.get_or_insert(message);
        }
    };
    let on_flush = sync != SyncPolicy::OsBuffer;
    let every_batch = sync == SyncPolicy::EveryBatch;
    while let Ok(mut msg) = rx.recv() {
        loop {
            match msg {
                Msg::Records { first, events } => {
                    for (seq, (at, event)) in (first..).zip(&events) {
                        line.clear();
                        let record = RecordRef {
                            v: AUDIT_SCHEMA,
                            seq,
                            at,
                            event,
                        };
                        if let Err(e) = serde_json::to_writer(&mut line, &record) {
                            fail(format!("cannot encode record {seq}: {e}"));
                            continue;
                        }
                        line.push(b'\n');
                        if let Err(e) = out.write_record(seq, at, &line) {
                            fail(format!("cannot write record {seq}: {e}"));
                        }
                    }
                }
                Msg::Flush(done) => {
                    if let Err(e) = out.flush(on_flush) {
                        fail(format!("cannot flush: {e}"));
                    }
                    let _ = done.send(());
                }
            }
            match rx.try_recv() {
                Ok(next) => msg = next,
                Err(_) => break,
            }
        }
        // Nothing more queued: push what was written to the OS, so a crash of the
        // process loses at most the batch in flight (and fsync it if asked to).
        if let Err(e) = out.flush(every_batch) {
            fail(format!("cannot flush: {e}"));
        }
    }
    if let Err(e) = out.flush(on_flush) {
        fail(format!("cannot flush: {e}"));
    }
}

/// The rotated segments of an audit file (`PATH.SEQ`), oldest first.
fn segments(path: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = format!("{name}.");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let n = entry.file_name();
        if let Some(rest) = n.to_str().and_then(|n| n.strip_prefix(&prefix))
            && rest.len() == 20
            && rest.bytes().all(|b| b.is_ascii_digit())
        {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// The sequence number of the first whole record of the active file.
fn first_seq(path: &Path) -> std::io::Result<Option<u64>> {
    #[derive(Deserialize)]
    struct Seq {
        seq: u64,
    }
    let file = File::open(path)?;
    for line in BufReader::new(file).split(b'\n') {
        if let Ok(s) = serde_json::from_slice::<Seq>(&line?) {
            return Ok(Some(s.seq));
        }
    }
    Ok(None)
}

/// Reads an audit log and its rotated segments ([`AuditLog::append_to_file_with`])
/// back as one log, oldest first: line numbers in problems count across the files in
/// that order. A missing active file reads as empty.
pub fn read_audit_files(path: impl AsRef<Path>) -> Result<AuditReadback, GridflexError> {
    let path = path.as_ref();
    let err = |e: std::io::Error| GridflexError::Audit(format!("{}: {e}", path.display()));
    let mut files = segments(path).map_err(err)?;
    if path.exists() {
        files.push(path.to_path_buf());
    }
    let mut bytes = Vec::new();
    for f in files {
        let mut b = std::fs::read(&f).map_err(err)?;
        if !b.is_empty() && b.last() != Some(&b'\n') {
            b.push(b'\n');
        }
        bytes.extend(b);
    }
    read_audit_log(&bytes[..])
}

/// An in-memory audit log, readable while the orchestrator writes it.
#[derive(Debug, Clone, Default)]
pub struct MemoryLog(Arc<Mutex<Vec<u8>>>);

impl MemoryLog {
    /// Parses what was written (and flushed) so far.
    pub fn records(&self) -> Result<Vec<AuditRecord>, GridflexError> {
        let bytes = self
            .0
            .lock()
            .map_err(|_| GridflexError::Audit("memory log poisoned".into()))?
            .clone();
        read_audit_log(bytes.as_slice())?.into_complete()
    }
}

impl Write for MemoryLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut v = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("memory log poisoned"))?;
        v.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What reading an audit log back found: every whole record, in order, and whatever
/// else the file holds, reported rather than failing the whole read (a crash can tear
/// the last line; a lost write leaves a gap in the sequence).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct AuditReadback {
    /// The records that parse, in file order.
    pub records: Vec<AuditRecord>,
    /// Everything else, in file order.
    pub problems: Vec<AuditProblem>,
}

/// Something in an audit log that is not the next whole record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditProblem {
    /// A line that is not a record (for example the torn last line of a crash).
    #[error("line {line}: not a whole record: {reason}")]
    Unreadable {
        /// Line number, from 1.
        line: usize,
        /// Why it does not parse.
        reason: String,
    },
    /// A record whose sequence number is not the one after the previous record's.
    #[error("line {line}: sequence number {found} where {expected} was expected")]
    Gap {
        /// Line number, from 1.
        line: usize,
        /// The number that should have come.
        expected: u64,
        /// The number found.
        found: u64,
    },
}

impl AuditReadback {
    /// Whether the log is complete: whole records, numbered without gap or repeat.
    pub fn is_complete(&self) -> bool {
        self.problems.is_empty()
    }

    /// The records of a complete log, or an error naming the first problem.
    pub fn into_complete(self) -> Result<Vec<AuditRecord>, GridflexError> {
        match self.problems.first() {
            None => Ok(self.records),
            Some(p) => Err(GridflexError::Audit(p.to_string())),
        }
    }
}

/// Reads an audit log back, keeping every whole record and reporting every line that
/// is not one and every gap or repeat in the sequence numbers. Only an I/O error fails
/// the read.
///
/// ```
/// use gridflex::audit::{read_audit_log, AuditProblem};
///
/// let log = concat!(
///     r#"{"v":2,"seq":0,"at":"2025-08-14T16:00:00Z","event":"started","jobs":3,"devices":24}"#, "\n",
///     r#"{"v":2,"seq":1,"at":"2025-08-14T16:00:01Z","event":"sig"#, // torn by a crash
/// );
/// let back = read_audit_log(log.as_bytes())?;
/// assert_eq!(back.records.len(), 1);
/// assert!(matches!(back.problems[..], [AuditProblem::Unreadable { line: 2, .. }]));
/// # Ok::<(), gridflex::GridflexError>(())
/// ```
pub fn read_audit_log(input: impl BufRead) -> Result<AuditReadback, GridflexError> {
    let mut out = AuditReadback::default();
    for (i, line) in input.split(b'\n').enumerate() {
        let line = line.map_err(|e| GridflexError::Audit(format!("line {}: {e}", i + 1)))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record: AuditRecord = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                out.problems.push(AuditProblem::Unreadable {
                    line: i + 1,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let expected = out.records.last().map_or(record.seq, |r| r.seq + 1);
        if record.seq != expected {
            out.problems.push(AuditProblem::Gap {
                line: i + 1,
                expected,
                found: record.seq,
            });
        }
        out.records.push(record);
    }
    Ok(out)
}

/// Reads an audit log file (see [`read_audit_log`]).
pub fn read_audit_file(path: impl AsRef<Path>) -> Result<AuditReadback, GridflexError> {
    let path = path.as_ref();
    let file = File::open(path)
        .map_err(|e| GridflexError::Audit(format!("cannot open {}: {e}", path.display())))?;
    read_audit_log(BufReader::new(file))
}

/// The sequence number of the last whole record of a log file, read from its end (the
/// window grows until a whole record is found, so a file of any size costs about one
/// record's read), and whether the file ends with a line break.
/// The sequence number and time of a record.
type Position = (u64, DateTime<Utc>);

fn last_record(file: &mut File) -> std::io::Result<(Option<Position>, bool)> {
    use std::io::{Read, Seek, SeekFrom};
    #[derive(Deserialize)]
    struct Seq {
        seq: u64,
        at: DateTime<Utc>,
    }
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok((None, true));
    }
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        Read::by_ref(file).take(len - start).read_to_end(&mut buf)?;
        let ends_with_newline = buf.last() == Some(&b'\n');
        let mut lines: Vec<&[u8]> = buf.split(|b| *b == b'\n').collect();
        if start > 0 {
            // The first piece may be the tail of a longer line.
            lines.remove(0);
        }
        if let Some(seq) = lines
            .iter()
            .rev()
            .find_map(|l| serde_json::from_slice::<Seq>(l).ok())
        {
            return Ok((Some((seq.seq, seq.at)), ends_with_newline));
        }
        if start == 0 {
            return Ok((None, ends_with_newline));
        }
        window = window.saturating_mul(2);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn gaps_in_sequence_are_errors() {
        let t = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let a = serde_json::to_string(&AuditRecord {
            schema: AUDIT_SCHEMA,
            seq: 0,
            at: t,
            event: note("a"),
        })
        .unwrap();
        let c = serde_json::to_string(&AuditRecord {
            schema: AUDIT_SCHEMA,
            seq: 2,
            at: t,
            event: note("c"),
        })
        .unwrap();
        let back = read_audit_log(format!("{a}\n{c}\n").as_bytes()).unwrap();
        assert_eq!(back.records.len(), 2);
        let err = back.into_complete().unwrap_err();
        assert!(
            err.to_string()
                .contains("line 2: sequence number 2 where 1 was expected"),
            "{err}"
        );
        let back = read_audit_log("{not json\n".as_bytes()).unwrap();
        assert!(back.records.is_empty());
        let err = back.into_complete().unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    fn note(message: &str) -> AuditEvent {
        AuditEvent::MeterUnavailable {
            event_id: 1,
            error: message.into(),
        }
    }

    #[test]
    fn a_torn_last_line_keeps_the_whole_records_and_a_restart_continues_the_sequence() {
        let t = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let dir = std::env::temp_dir().join(format!("gridflex-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("torn.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut log = AuditLog::append_to_file(&path).unwrap();
        log.append_all(vec![(t, note("a")), (t, note("b")), (t, note("c"))])
            .unwrap();
        log.flush().unwrap();
        drop(log);
        // A crash mid-write: half a record, no line break.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"v":2,"seq":3,"at":"2025-01-01T00:00:00Z","event":"me"#)
            .unwrap();
        drop(f);
        let back = read_audit_file(&path).unwrap();
        assert_eq!(back.records.len(), 3);
        assert!(matches!(
            back.problems[..],
            [AuditProblem::Unreadable { line: 4, .. }]
        ));
        // A restarted writer continues after the last whole record.
        let mut log = AuditLog::append_to_file(&path).unwrap();
        log.append(t, note("d")).unwrap();
        log.flush().unwrap();
        drop(log);
        let back = read_audit_file(&path).unwrap();
        let seqs: Vec<u64> = back.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3]);
        assert_eq!(
            back.problems.len(),
            1,
            "only the torn line: {:?}",
            back.problems
        );
        // And a clean restart continues too, with no problem at all.
        let clean = dir.join("clean.jsonl");
        let _ = std::fs::remove_file(&clean);
        for message in ["first run", "second run"] {
            let mut log = AuditLog::append_to_file(&clean).unwrap();
            log.append_all(vec![(t, note(message)), (t, note(message))])
                .unwrap();
            log.flush().unwrap();
        }
        let back = read_audit_file(&clean).unwrap();
        assert!(back.is_complete(), "{:?}", back.problems);
        assert_eq!(back.records.len(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotation_by_size_and_day_reads_back_as_one_log_and_a_reopen_continues_it() {
        let dir = std::env::temp_dir().join(format!("gridflex-audit-rot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let options = AuditFileOptions {
            sync: SyncPolicy::EveryBatch,
            rotation: Rotation {
                max_bytes: Some(300),
                daily: true,
            },
        };
        let t = Utc.with_ymd_and_hms(2025, 1, 1, 23, 59, 0).unwrap();
        {
            let mut log = AuditLog::append_to_file_with(&path, options).unwrap();
            for k in 0..10 {
                log.append(t, note(&format!("a{k}"))).unwrap();
            }
            // A new UTC day starts a new file even when the size allows more.
            log.append(t + TimeDelta::minutes(2), note("day 2"))
                .unwrap();
            log.flush().unwrap();
        }
        let segs = segments(&path).unwrap();
        assert!(segs.len() >= 3, "{segs:?}");
        for s in &segs {
            assert!(std::fs::metadata(s).unwrap().len() <= 300);
        }
        // The day-2 record opened the active file alone.
        let active = read_audit_file(&path).unwrap();
        assert_eq!(active.records.len(), 1);
        assert_eq!(active.records[0].seq, 10);
        // A torn tail in the active file, then a reopen: numbering continues.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"v\":2,\"seq\":11,\"at")
            .unwrap();
        {
            let mut log = AuditLog::append_to_file_with(&path, options).unwrap();
            assert_eq!(log.len(), 11);
            log.append(t + TimeDelta::minutes(3), note("after"))
                .unwrap();
            log.flush().unwrap();
        }
        let back = read_audit_files(&path).unwrap();
        assert_eq!(back.records.len(), 12);
        assert!(
            back.records
                .iter()
                .enumerate()
                .all(|(k, r)| r.seq == k as u64)
        );
        assert!(
            matches!(back.problems[..], [AuditProblem::Unreadable { .. }]),
            "{:?}",
            back.problems
        );
        // A crash right after a rotation's rename leaves no active file: the numbering
        // goes on from the newest segment.
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{:020}", 10));
        std::fs::rename(&path, &name).unwrap();
        let log = AuditLog::append_to_file_with(&path, options).unwrap();
        assert_eq!(log.len(), 12);
        drop(log);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_last_record_is_found_behind_long_lines() {
        let t = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let dir = std::env::temp_dir().join(format!("gridflex-audit-long-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("long.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut log = AuditLog::append_to_file(&path).unwrap();
        // Records longer than the first 64 KiB read window.
        log.append_all(vec![(t, note(&"x".repeat(200_000))); 3])
            .unwrap();
        log.flush().unwrap();
        drop(log);
        let mut log = AuditLog::append_to_file(&path).unwrap();
        assert_eq!(log.len(), 3);
        log.append(t, note("after")).unwrap();
        log.flush().unwrap();
        drop(log);
        assert!(read_audit_file(&path).unwrap().is_complete());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// One record of every variant, checked against `docs/audit.md`: the schema page shows
/// exactly what this build writes. With `GRIDFLEX_PRINT_AUDIT_EXAMPLES=1` the test
/// prints the lines instead of failing, to update the page.
#[cfg(test)]
mod schema {
    use std::time::Duration;

    use chrono::TimeZone;
    use gridflex_core::{Energy, Interval, MarketZone, Price, PricingNodeId};
    use gridflex_planner::{AllocationMethod, JobOutcome, JobState, Objective, Stage, Target};
    use gridflex_signals::{MarketRun, PricePoint, Program};

    use super::*;
    use crate::program::{Curtailment, IgnoreReason};
    use crate::report::{Delivery, EventReport, Response};

    fn kw(v: f64) -> Power {
        Power::kilowatts(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn job(id: &str) -> JobId {
        JobId::new(id).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The name serde writes for a variant; the match has no wildcard, so a new
    /// variant fails to compile here until it has an example below.
    fn name(e: &AuditEvent) -> &'static str {
        match e {
            AuditEvent::Started { .. } => "started",
            AuditEvent::Signal { .. } => "signal",
            AuditEvent::Decision { .. } => "decision",
            AuditEvent::Refused { .. } => "refused",
            AuditEvent::Plan { .. } => "plan",
            AuditEvent::PlanUpdate { .. } => "plan_update",
            AuditEvent::PlanFailed { .. } => "plan_failed",
            AuditEvent::Replanned { .. } => "replanned",
            AuditEvent::ReplanFailed { .. } => "replan_failed",
            AuditEvent::Action { .. } => "action",
            AuditEvent::Waiting { .. } => "waiting",
            AuditEvent::Interrupted { .. } => "interrupted",
            AuditEvent::TakenOver { .. } => "taken_over",
            AuditEvent::WaitingExpired { .. } => "waiting_expired",
            AuditEvent::HandOverFailed { .. } => "hand_over_failed",
            AuditEvent::Restore { .. } => "restore",
            AuditEvent::ObligationsDropped { .. } => "obligations_dropped",
            AuditEvent::PauseLimitReached { .. } => "pause_limit_reached",
            AuditEvent::JobRestored { .. } => "job_restored",
            AuditEvent::RestoredOutside { .. } => "restored_outside",
            AuditEvent::OutsideRestoreRefused { .. } => "outside_restore_refused",
            AuditEvent::RestoreIncomplete { .. } => "restore_incomplete",
            AuditEvent::TelemetryFailed { .. } => "telemetry_failed",
            AuditEvent::SourceFailed { .. } => "source_failed",
            AuditEvent::SourceEnded => "source_ended",
            AuditEvent::MeterUnavailable { .. } => "meter_unavailable",
            AuditEvent::Report { .. } => "report",
            AuditEvent::JobAdded { .. } => "job_added",
            AuditEvent::JobUpdated { .. } => "job_updated",
            AuditEvent::JobRemoved { .. } => "job_removed",
            AuditEvent::JobLeaving { .. } => "job_leaving",
            AuditEvent::DeviceAdded { .. } => "device_added",
            AuditEvent::DeviceRemoved { .. } => "device_removed",
            AuditEvent::HistoryFailed { .. } => "history_failed",
            AuditEvent::Stopped { .. } => "stopped",
        }
    }

    fn examples() -> Vec<AuditEvent> {
        let t = Utc.with_ymd_and_hms(2025, 8, 14, 20, 0, 0).unwrap();
        let node = PricingNodeId::new("TH_SP15_GEN-APND").unwrap_or_else(|e| panic!("{e}"));
        let window = Interval::new(t, t + TimeDelta::minutes(30)).unwrap_or_else(|e| panic!("{e}"));
        let price = Price::per_megawatt_hour(912.5).unwrap_or_else(|e| panic!("{e}"));
        let cause = Cause::Price {
            node: node.clone(),
            run: MarketRun::CaisoRtm,
            lmp: price,
        };
        let dispatch = Cause::Dispatch {
            id: "PDR-0814".into(),
            program: Program::CaisoPdr,
        };
        let train = Arc::new(job("train"));
        let cap = Action::SetCap {
            job: train.clone(),
            cap_per_gpu: Power::watts(420.0).unwrap_or_else(|e| panic!("{e}")),
        };
        let plan = Plan {
            target: kw(600.0),
            baseline: kw(735.0),
            predicted_power: kw(598.5),
            power_at_response: kw(598.5),
            shortfall: None,
            response_shortfall: None,
            objective: Objective {
                weighted_throughput_lost: 57.6,
                weighted_throughput_total: 1000.0,
                lower_bound: 57.6,
                method: AllocationMethod::Exact,
            },
            stages: vec![Stage {
                offset: Duration::ZERO,
                actions: vec![cap.clone()],
                predicted_power: kw(598.5),
                peak_power: kw(598.5),
            }],
            jobs: vec![JobOutcome {
                job: train.clone(),
                state: JobState::Running,
                cap_per_gpu: Some(Power::watts(420.0).unwrap_or_else(|e| panic!("{e}"))),
                power_per_gpu: Power::watts(420.0).unwrap_or_else(|e| panic!("{e}")),
                throughput: 0.88,
                weighted_throughput_lost: 57.6,
            }],
            restore_start: Duration::from_secs(1800),
            restore: vec![Stage {
                offset: Duration::from_secs(1800),
                actions: vec![Action::SetCap {
                    job: train.clone(),
                    cap_per_gpu: Power::watts(700.0).unwrap_or_else(|e| panic!("{e}")),
                }],
                predicted_power: kw(735.0),
                peak_power: kw(735.0),
            }],
        };
        let report = EventReport {
            event_id: 1,
            cause: cause.clone(),
            window,
            target: kw(600.0),
            predicted: kw(598.5),
            shortfall: None,
            delivery: Some(Delivery {
                method: gridflex_mv::baseline::Method::Mbma,
                fallback: Some(crate::report::Fallback {
                    program_method: gridflex_mv::baseline::Method::PjmCbl,
                    reason: "too few baseline days for 2025-08-14: found 2, need 5".into(),
                }),
                selected_days: Vec::new(),
                adjustment: None,
                notified: Some(window.start()),
                baseline: kw(735.0),
                actual: kw(599.1),
                delivered: kw(135.9),
                energy: Energy::kilowatt_hours(67.95).unwrap_or_else(|e| panic!("{e}")),
                credit: Some(gridflex_core::Money::usd(62.0).unwrap_or_else(|e| panic!("{e}"))),
                intervals: vec![gridflex_mv::baseline::BaselineInterval {
                    interval: Interval::new(window.start(), window.start() + TimeDelta::minutes(5))
                        .unwrap_or_else(|e| panic!("{e}")),
                    baseline: kw(735.0),
                    adjusted_baseline: kw(735.0),
                    actual: kw(599.1),
                }],
            }),
            response: Some(Response {
                from: kw(735.0),
                to: kw(599.1),
                t50: TimeDelta::milliseconds(12),
                t90: TimeDelta::milliseconds(31),
                sample_period: TimeDelta::milliseconds(20),
            }),
            regulation: None,
            not_computed: Vec::new(),
        };
        let gpu = DeviceId::new("GPU-3f2a").unwrap_or_else(|e| panic!("{e}"));
        let _ = MarketZone::Caiso;
        vec![
            AuditEvent::Started {
                jobs: 100,
                devices: 1000,
            },
            AuditEvent::Signal {
                signal: GridSignal::Price(PricePoint::new(
                    MarketRun::CaisoRtm,
                    node.clone(),
                    Interval::new(t, t + TimeDelta::minutes(5)).unwrap_or_else(|e| panic!("{e}")),
                    price,
                )),
            },
            AuditEvent::Decision {
                event_id: Some(1),
                decision: Decision::Curtail(Curtailment {
                    cause: cause.clone(),
                    target: Target::FacilityCap(kw(600.0)),
                    window,
                    response_time: TimeDelta::seconds(5),
                }),
            },
            AuditEvent::Decision {
                event_id: None,
                decision: Decision::Ignore {
                    reason: IgnoreReason::BelowStrike {
                        lmp: Price::per_megawatt_hour(42.0).unwrap_or_else(|e| panic!("{e}")),
                        strike: Price::per_megawatt_hour(300.0).unwrap_or_else(|e| panic!("{e}")),
                    },
                },
            },
            AuditEvent::Refused {
                refusal: Refusal::BeyondEnrolled {
                    requested: kw(800.0),
                    enrolled: kw(500.0),
                },
            },
            AuditEvent::Plan {
                event_id: 1,
                plan: Arc::new(plan),
            },
            AuditEvent::PlanUpdate {
                event_id: 1,
                target: kw(600.0),
                predicted_power: kw(598.5),
                shortfall: None,
                window_end: t + TimeDelta::minutes(35),
            },
            AuditEvent::PlanFailed {
                event_id: 2,
                error: "invalid fleet: no telemetry yet (sweep first)".into(),
            },
            AuditEvent::Replanned {
                event_id: 1,
                reason: Replan::JobsFailed {
                    jobs: vec![job("train")],
                },
            },
            AuditEvent::ReplanFailed {
                event_id: 1,
                reason: Replan::PauseLimit { job: job("batch") },
                error: "invalid fleet: no telemetry yet (sweep first)".into(),
            },
            AuditEvent::Action {
                event_id: 1,
                action: cap.clone(),
                devices: 12,
                outcome: ActionOutcome::Done {
                    enforced_per_gpu: Some(Power::watts(420.0).unwrap_or_else(|e| panic!("{e}"))),
                },
            },
            AuditEvent::Action {
                event_id: 1,
                action: cap,
                devices: 12,
                outcome: ActionOutcome::Failed {
                    failures: vec![Failure {
                        device: Some(gpu.clone()),
                        kind: ErrorKind::DeviceLost,
                        message: "device GPU-3f2a: lost".into(),
                    }],
                },
            },
            AuditEvent::Waiting {
                cause: dispatch.clone(),
                behind: 1,
                cap: kw(650.0),
                holder_cap: kw(600.0),
            },
            AuditEvent::Interrupted {
                event_id: 1,
                by: dispatch,
            },
            AuditEvent::TakenOver { event_id: 1 },
            AuditEvent::WaitingExpired { count: 1 },
            AuditEvent::HandOverFailed { event_id: 1 },
            AuditEvent::Restore {
                event_id: 1,
                reason: RestoreReason::WindowEnd,
            },
            AuditEvent::ObligationsDropped {
                waiting: 1,
                scheduled: 0,
            },
            AuditEvent::PauseLimitReached { job: job("train") },
            AuditEvent::JobRestored { job: job("train") },
            AuditEvent::RestoreIncomplete {
                jobs: vec![job("train")],
                grace: TimeDelta::seconds(60),
            },
            AuditEvent::TelemetryFailed {
                device: gpu.clone(),
                kind: ErrorKind::Transient,
                error: "device GPU-3f2a: timed out".into(),
            },
            AuditEvent::SourceFailed {
                consecutive: 2,
                error: "HTTP 503 from the feed".into(),
                retry_in: TimeDelta::seconds(2),
            },
            AuditEvent::SourceEnded,
            AuditEvent::MeterUnavailable {
                event_id: 1,
                error: "no meter interval recorded".into(),
            },
            AuditEvent::Report {
                event_id: 1,
                report: Box::new(report),
            },
            AuditEvent::JobAdded {
                job: job("finetune"),
            },
            AuditEvent::JobUpdated {
                job: job("finetune"),
            },
            AuditEvent::JobRemoved { job: job("batch") },
            AuditEvent::JobLeaving { job: job("batch") },
            AuditEvent::DeviceAdded {
                device: gpu.clone(),
            },
            AuditEvent::DeviceRemoved { device: gpu },
            AuditEvent::HistoryFailed {
                error: "history writer: queue full: record dropped".into(),
            },
            AuditEvent::Stopped {
                reason: StopReason::Handle,
                curtailed_left: Vec::new(),
            },
            AuditEvent::RestoredOutside {
                devices: vec![DeviceId::new("GPU-3f2a").unwrap_or_else(|e| panic!("{e}"))],
                jobs: vec![job("train")],
                reason: "node n01: lease expired".into(),
                confirming: vec![job("train")],
                presumed: false,
            },
            AuditEvent::OutsideRestoreRefused {
                error: "invalid restore.devices: device GPU-9 is not registered".into(),
            },
        ]
    }

    #[test]
    fn docs_show_one_record_of_every_variant_as_this_build_writes_it() {
        let t = Utc.with_ymd_and_hms(2025, 8, 14, 20, 0, 0).unwrap();
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/audit.md"))
                .unwrap_or_default();
        let print = std::env::var_os("GRIDFLEX_PRINT_AUDIT_EXAMPLES").is_some();
        let mut missing = Vec::new();
        for (seq, event) in examples().into_iter().enumerate() {
            let record = AuditRecord {
                schema: AUDIT_SCHEMA,
                seq: seq as u64,
                at: t,
                event,
            };
            let line = serde_json::to_string(&record).unwrap_or_default();
            // Every example reads back as itself.
            let back: AuditRecord =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(back, record);
            let tag = format!("`{}`", name(&record.event));
            if print {
                println!("{tag}\n{line}");
            } else if !doc.contains(&line) || !doc.contains(&tag) {
                missing.push(tag);
            }
        }
        assert!(
            missing.is_empty(),
            "docs/audit.md lacks the current example of {missing:?}; run with GRIDFLEX_PRINT_AUDIT_EXAMPLES=1 to print them"
        );
    }
}
