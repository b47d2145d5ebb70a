//! The live handle: the orchestrator as a long-running service that jobs, devices and
//! operators talk to while it runs.
//!
//! [`Orchestrator::spawn`] moves the orchestrator into a tokio task that owns all of its
//! state (one owner, no locks) and returns an [`OrchestratorHandle`]: cloneable, `Send`,
//! and cheap; every call is a message to that task with a reply. The service runs until
//! [`OrchestratorHandle::shutdown`] or until every handle is dropped; either way it
//! restores everything before it stops. A signal source that ends does not end the
//! service: events already running run to their end, and signals can still be given
//! through [`OrchestratorHandle::signal`].

use tokio::sync::{broadcast, mpsc, oneshot};

use super::*;

/// An order to the running orchestrator, with its reply channel.
pub(super) enum Order {
    AddJob {
        entry: JobEntry,
        control: Option<Arc<dyn WorkloadControl>>,
        reply: oneshot::Sender<Result<(), GridflexError>>,
    },
    UpdateJob {
        entry: JobEntry,
        reply: oneshot::Sender<Result<(), GridflexError>>,
    },
    RemoveJob {
        job: JobId,
        reply: oneshot::Sender<Result<JobRemoval, GridflexError>>,
    },
    AddDevice {
        device: DeviceHandle,
        reply: oneshot::Sender<Result<(), GridflexError>>,
    },
    RemoveDevice {
        device: DeviceId,
        reply: oneshot::Sender<Result<(), GridflexError>>,
    },
    Signal {
        signal: Box<GridSignal>,
        reply: oneshot::Sender<Handled>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    TakeReports {
        reply: oneshot::Sender<Vec<EventReport>>,
    },
    EndEvent {
        reply: oneshot::Sender<Option<u64>>,
    },
    Shutdown {
        reply: oneshot::Sender<Vec<JobId>>,
    },
    RestoredOutside {
        restore: OutsideRestore,
        reply: oneshot::Sender<Result<Vec<JobId>, GridflexError>>,
    },
}

/// What removing a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobRemoval {
    /// The job was at its pre-event level (or was given back at once) and has left.
    Removed,
    /// The job's restore failed; it is out of every plan, its restore is retried with
    /// back-off, and it leaves the inventory once the hardware confirms the restore.
    Restoring,
}

/// A snapshot of the running orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Status {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// The active event, if any.
    pub active: Option<ActiveEvent>,
    /// Obligations waiting for the active one to end, strictest first is not implied:
    /// in arrival order.
    pub waiting: Vec<Cause>,
    /// Jobs that are capped or paused, or whose state is unknown after an error.
    pub curtailed: Vec<JobStatus>,
    /// Facility power at the latest telemetry sweep.
    pub facility_power: Option<Power>,
    /// When the orchestrator next acts on its own (a plan step, a restore, a retry, a
    /// pause limit, a telemetry sweep), if anything is scheduled.
    pub next_step: Option<DateTime<Utc>>,
    /// Jobs in the inventory.
    pub jobs: usize,
    /// Devices registered.
    pub devices: usize,
    /// Finished reports not yet taken.
    pub reports: usize,
}

/// The active event in a [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ActiveEvent {
    /// Its id (as in the audit log).
    pub event_id: u64,
    /// Why it runs.
    pub cause: Cause,
    /// Its window (its end is always finite).
    pub window: Interval,
    /// The facility target.
    pub target: Target,
    /// True once its restore has begun.
    pub restoring: bool,
}

/// One curtailed job in a [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct JobStatus {
    /// The job.
    pub job: JobId,
    /// The cap per GPU the hardware confirmed; `None` is the limit found at discovery.
    pub cap_per_gpu: Option<Power>,
    /// Paused (confirmed, or possibly after a failed command).
    pub paused: bool,
    /// A command failed and the restore loop owns the job until the hardware confirms it.
    pub unknown: bool,
    /// The job was removed and leaves once its restore is confirmed.
    pub leaving: bool,
}

/// A cloneable, `Send` handle to an orchestrator running as a service (see
/// [`Orchestrator::spawn`]). Every method waits for the service's answer; once the
/// service has stopped they return [`GridflexError::Stopped`].
#[derive(Debug, Clone)]
pub struct OrchestratorHandle {
    orders: mpsc::Sender<Order>,
    reports: broadcast::Sender<EventReport>,
}

impl OrchestratorHandle {
    async fn ask<T>(
        &self,
        order: impl FnOnce(oneshot::Sender<T>) -> Order,
    ) -> Result<T, GridflexError> {
        let (tx, rx) = oneshot::channel();
        self.orders
            .send(order(tx))
            .await
            .map_err(|_| GridflexError::Stopped)?;
        rx.await.map_err(|_| GridflexError::Stopped)
    }

    /// Adds a job on registered devices that no other job uses. Mid-event it is planned
    /// in under the current target at once (from fresh telemetry).
    pub async fn add_job(
        &self,
        entry: JobEntry,
        control: Option<Arc<dyn WorkloadControl>>,
    ) -> Result<(), GridflexError> {
        self.ask(|reply| Order::AddJob {
            entry,
            control,
            reply,
        })
        .await?
    }

    /// Replaces a job's entry (class, weight, curve, pinning; its devices must stay the
    /// same: remove and add it to move it). Mid-event the event is re-planned; a job
    /// that becomes pinned is given back.
    pub async fn update_job(&self, entry: JobEntry) -> Result<(), GridflexError> {
        self.ask(|reply| Order::UpdateJob { entry, reply }).await?
    }

    /// Removes a job (it ended, or the scheduler moved it). A curtailed job is given
    /// back first (resumed, its devices' limits restored); mid-event the event is
    /// re-planned without it.
    pub async fn remove_job(&self, job: JobId) -> Result<JobRemoval, GridflexError> {
        self.ask(|reply| Order::RemoveJob { job, reply }).await?
    }

    /// Registers a device no job uses yet (its draw counts as facility load).
    pub async fn add_device(&self, device: DeviceHandle) -> Result<(), GridflexError> {
        self.ask(|reply| Order::AddDevice { device, reply }).await?
    }

    /// Unregisters a device no job uses.
    pub async fn remove_device(&self, device: DeviceId) -> Result<(), GridflexError> {
        self.ask(|reply| Order::RemoveDevice { device, reply })
            .await?
    }

    /// Handles a signal now, as one from the source would be.
    pub async fn signal(&self, signal: GridSignal) -> Result<Handled, GridflexError> {
        self.ask(|reply| Order::Signal {
            signal: Box::new(signal),
            reply,
        })
        .await
    }

    /// A snapshot of the service.
    pub async fn status(&self) -> Result<Status, GridflexError> {
        self.ask(|reply| Order::Status { reply }).await
    }

    /// Takes the finished reports kept so far (at most
    /// [`OrchestratorOptions::keep_reports`], the newest).
    pub async fn take_reports(&self) -> Result<Vec<EventReport>, GridflexError> {
        self.ask(|reply| Order::TakeReports { reply }).await
    }

    /// A stream of every report from now on. A receiver that falls more than
    /// [`OrchestratorOptions::keep_reports`] behind skips the oldest (it is told so by
    /// `RecvError::Lagged`).
    pub fn reports(&self) -> broadcast::Receiver<EventReport> {
        self.reports.subscribe()
    }

    /// Ends the active event by operator order: everything is restored at once (no
    /// stagger), waiting obligations are dropped, and both are audited. Returns the
    /// event ended, if one was active.
    pub async fn end_event(&self) -> Result<Option<u64>, GridflexError> {
        self.ask(|reply| Order::EndEvent { reply }).await
    }

    /// Reports devices and jobs given back outside the orchestrator (a node agent whose
    /// lease lapsed): see [`Orchestrator::restored_outside`]. Returns the jobs confirmed
    /// restored (and planned in again if an event is curtailing). A stream of reports is
    /// better given to [`OrchestratorBuilder::outside_restores`].
    pub async fn restored_outside(
        &self,
        restore: OutsideRestore,
    ) -> Result<Vec<JobId>, GridflexError> {
        self.ask(|reply| Order::RestoredOutside { restore, reply })
            .await?
    }

    /// Stops the service: restores everything (retrying restores for up to
    /// [`OrchestratorOptions::restore_grace`]), reports every ended event, flushes the
    /// audit log. Returns the jobs whose restore could not be confirmed (empty when all
    /// were given back). The task's join handle then yields the run's summary.
    pub async fn shutdown(&self) -> Result<Vec<JobId>, GridflexError> {
        self.ask(|reply| Order::Shutdown { reply }).await
    }
}

impl<C: Clock + 'static> Orchestrator<C> {
    /// Runs the orchestrator as a service on the current tokio runtime, reading
    /// `source`, and returns a handle to it and the task's join handle (which yields
    /// the [`RunSummary`], or the audit log's error, once the service has stopped).
    ///
    /// What ends it: [`OrchestratorHandle::shutdown`], or every handle being dropped;
    /// both restore everything first. A source that ends does not.
    pub fn spawn<S>(
        self,
        source: S,
    ) -> (
        OrchestratorHandle,
        tokio::task::JoinHandle<Result<RunSummary, GridflexError>>,
    )
    where
        S: SignalSource + 'static,
    {
        let (tx, rx) = mpsc::channel(64);
        let handle = OrchestratorHandle {
            orders: tx,
            reports: self.report_tx.clone(),
        };
        let mut this = self;
        let task =
            tokio::spawn(async move { this.serve(source, std::future::pending(), Some(rx)).await });
        (handle, task)
    }
}

impl<C: Clock> Orchestrator<C> {
    /// A snapshot of the orchestrator (what [`OrchestratorHandle::status`] returns).
    pub fn status(&self) -> Status {
        let pause_limit = self.state.iter().filter_map(|s| s.pause_limit_at).min();
        let next_step = [self.tasks.next_at(), self.next_sweep, pause_limit]
            .into_iter()
            .flatten()
            .min();
        Status {
            at: self.clock.now(),
            active: self.active.as_ref().map(|a| ActiveEvent {
                event_id: a.id,
                cause: a.curtailment.cause.clone(),
                window: a.curtailment.window,
                target: a.curtailment.target,
                restoring: a.restoring,
            }),
            waiting: self.waiting.iter().map(|(c, _)| c.cause.clone()).collect(),
            curtailed: self
                .jobs
                .iter()
                .zip(&self.state)
                .filter(|(_, s)| !s.is_clean() || s.leaving)
                .map(|(job, s)| JobStatus {
                    job: job.entry.id.clone(),
                    cap_per_gpu: s.applied.cap,
                    paused: s.applied.paused || s.paused_since.is_some(),
                    unknown: s.unknown,
                    leaving: s.leaving,
                })
                .collect(),
            facility_power: self.facility_power,
            next_step,
            jobs: self.jobs.len(),
            devices: self.all_devices.len(),
            reports: self.reports.len(),
        }
    }

    /// Takes the finished reports kept so far.
    pub fn take_reports(&mut self) -> Vec<EventReport> {
        std::mem::take(&mut self.reports)
    }

    /// Carries out one order. Returns the reply channel of a shutdown, which is
    /// answered once the run has stopped.
    pub(super) async fn obey(&mut self, order: Order) -> Option<oneshot::Sender<Vec<JobId>>> {
        match order {
            Order::AddJob {
                entry,
                control,
                reply,
            } => {
                let _ = reply.send(self.add_job(entry, control).await);
            }
            Order::UpdateJob { entry, reply } => {
                let _ = reply.send(self.update_job(entry).await);
            }
            Order::RemoveJob { job, reply } => {
                let _ = reply.send(self.remove_job(&job).await);
            }
            Order::AddDevice { device, reply } => {
                let _ = reply.send(self.add_device(device));
            }
            Order::RemoveDevice { device, reply } => {
                let _ = reply.send(self.remove_device(&device));
            }
            Order::Signal { signal, reply } => {
                let handled = self.handle_signal(*signal).await;
                self.count(&handled);
                let _ = reply.send(handled);
            }
            Order::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Order::TakeReports { reply } => {
                let _ = reply.send(self.take_reports());
            }
            Order::EndEvent { reply } => {
                let _ = reply.send(self.end_by_operator().await);
            }
            Order::RestoredOutside { restore, reply } => {
                let _ = reply.send(self.restored_outside(restore).await);
            }
            Order::Shutdown { reply } => return Some(reply),
        }
        None
    }
}
