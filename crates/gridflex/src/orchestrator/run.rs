//! The run loop: signals, due tasks, telemetry sweeps and shutdown, one at a time.

use super::*;

impl<C: Clock> Orchestrator<C> {
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
    ///
    /// To keep running after the source ends, and to add jobs, query status or give
    /// orders while it runs, use [`Orchestrator::spawn`] instead.
    pub async fn run<S, F>(&mut self, source: S, shutdown: F) -> Result<RunSummary, GridflexError>
    where
        S: SignalSource,
        F: Future<Output = ()>,
    {
        self.serve(source, shutdown, None).await
    }

    /// The run loop of [`Orchestrator::run`] and of a spawned service (`orders` given):
    /// a service keeps running when the source ends and stops on a shutdown order or
    /// when every handle is dropped.
    pub(super) async fn serve<S, F>(
        &mut self,
        source: S,
        shutdown: F,
        mut orders: Option<mpsc::Receiver<Order>>,
    ) -> Result<RunSummary, GridflexError>
    where
        S: SignalSource,
        F: Future<Output = ()>,
    {
        use futures_util::StreamExt;
        enum Wake {
            Shutdown(StopReason),
            Due,
            Signal(Option<Result<Option<GridSignal>, gridflex_signals::SignalError>>),
            Order(Order),
            Outside(Option<OutsideRestore>),
        }
        let service = orders.is_some();
        self.log(AuditEvent::Started {
            jobs: self.jobs.len(),
            devices: self.all_devices.len(),
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
        let mut stopped_by: Option<oneshot::Sender<Vec<JobId>>> = None;
        let mut outside = self.outside.take();
        let left = loop {
            if self.intake_after.is_some_and(|t| t <= self.clock.now()) {
                self.intake_after = None;
            }
            let reading = open && self.intake_after.is_none();
            let next = self.next_deadline();
            let wake = {
                let sleep = self.clock.sleep_until(next);
                let order = async {
                    match orders.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let restored = async {
                    match outside.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    // A signal due at the same instant as a scheduled step goes first:
                    // a price that extends an event must arrive before its restore.
                    biased;
                    () = &mut shutdown => Wake::Shutdown(StopReason::Requested),
                    o = order, if service => match o {
                        Some(Order::Shutdown { reply }) => {
                            stopped_by = Some(reply);
                            Wake::Shutdown(StopReason::Handle)
                        }
                        Some(o) => Wake::Order(o),
                        None => Wake::Shutdown(StopReason::HandlesDropped),
                    },
                    r = restored => Wake::Outside(r),
                    s = signals.next(), if reading => Wake::Signal(s),
                    () = sleep => Wake::Due,
                }
            };
            match wake {
                Wake::Shutdown(reason) => {
                    let left = self.shutdown(reason).await;
                    break left;
                }
                Wake::Due => self.run_due().await,
                // Every sender is gone: no more reports, the run goes on.
                Wake::Outside(None) => outside = None,
                Wake::Outside(Some(restore)) => {
                    // A report naming what this orchestrator does not know is refused
                    // whole; the refusal is audited.
                    if let Err(e) = self.restored_outside(restore).await {
                        self.log(AuditEvent::OutsideRestoreRefused {
                            error: e.to_string(),
                        });
                    }
                }
                Wake::Order(order) => {
                    // Replies are sent as each order is carried out; a shutdown is
                    // answered above, once everything is restored.
                    let _ = self.obey(order).await;
                }
                Wake::Signal(Some(Ok(Some(signal)))) => {
                    source_errors = 0;
                    let handled = self.handle_signal(signal).await;
                    self.count(&handled);
                }
                Wake::Signal(None | Some(Ok(None))) => {
                    open = false;
                    self.log(AuditEvent::SourceEnded);
                }
                Wake::Signal(Some(Err(e))) => {
                    source_errors = source_errors.saturating_add(1);
                    let wait = TimeDelta::seconds(1 << source_errors.clamp(1, 7).saturating_sub(1))
                        .min(TimeDelta::seconds(60));
                    self.counts.source_errors += 1;
                    self.intake_after = Some(self.clock.now() + wait);
                    self.log(AuditEvent::SourceFailed {
                        consecutive: source_errors,
                        error: e.to_string(),
                        retry_in: wait,
                    });
                }
            }

            self.emit_deferred();
            let only_retries = self.tasks.only_retries();
            if !service && !open && self.active.is_none() && only_retries && self.ended.is_empty() {
                break self.shutdown(StopReason::SourceEnded).await;
            }
        };
        self.emit_deferred();
        let flushed = self.audit.flush();
        if let Some(reply) = stopped_by {
            let _ = reply.send(left);
        }
        flushed?;
        Ok(self.counts.clone())
    }

    /// Counts a handled signal in the run's summary.
    pub(super) fn count(&mut self, handled: &Handled) {
        self.counts.signals += 1;
        match handled {
            Handled::Actuated { commands, .. } => self.counts.commands += commands,
            Handled::Refused => self.counts.refused += 1,
            _ => {}
        }
    }

    /// Runs every task that is due, and the telemetry sweep when due.
    pub async fn run_due(&mut self) {
        let now = self.clock.now();
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.sweep().await;
            let step = self.options.telemetry_step;
            self.next_sweep = self.next_sweep.map(|t| (t + step).max(now));
        }
        while let Some(task) = self.tasks.pop_due(now) {
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

    pub(super) async fn run_task(&mut self, task: Task) {
        match task {
            Task::Start(c, market, notified) => {
                let now = self.clock.now();
                if c.window.end() <= now {
                    return;
                }
                let c = Curtailment {
                    window: Interval::new(now.max(c.window.start()), c.window.end())
                        .unwrap_or(c.window),
                    ..c
                };
                // The event settles from when the site was told, not when it began.
                self.notice = Some(notified);
                let decided = self.history.is_some().then(|| c.clone());
                let handled = self.admit(c, market, None, None).await;
                self.notice = None;
                if let Handled::Actuated { commands, event_id } = handled {
                    self.counts.commands += commands;
                    // The audit logged this decision when the signal came, before the
                    // event had an id; the history files it under its event.
                    if let Some(c) = decided {
                        self.store_decision(event_id, notified, c);
                    }
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
                                _ => self.log(AuditEvent::HandOverFailed { event_id }),
                            }
                        }
                        if let Some(a) = self.active.as_mut().filter(|a| a.id == event_id) {
                            a.restoring = true;
                            self.log(AuditEvent::Restore {
                                event_id,
                                reason: RestoreReason::WindowEnd,
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
                if let Some(&j) = self.job_index.get(job.as_str()) {
                    self.retry(j).await;
                }
            }
            Task::Report { event_id } => self.make_report(event_id),
            Task::Replan { reason } => self.replan_active(reason).await,
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
                Err(e) => errors.push(AuditEvent::TelemetryFailed {
                    device: d.id().clone(),
                    kind: e.kind(),
                    error: e.to_string(),
                }),
            }
        }
        let mut it_power = Power::ZERO;
        let mut complete = true;
        let mut answering = Vec::new();
        let mut unread = Vec::new();
        for (j, job) in self.jobs.iter().enumerate() {
            let mut sum = Power::ZERO;
            let mut n = 0u32;
            for d in &job.devices {
                if let Some(p) = power_of.get(d.id()) {
                    sum += *p;
                    n += 1;
                }
            }
            // A job whose state is unknown and whose devices answer again after a
            // sweep that could not read them (a node back from a partition) is retried
            // now, not at the end of its back-off.
            let read = n as usize == job.devices.len();
            let st = &mut self.state[j];
            if st.unknown && st.unread && read {
                answering.push(job.id.clone());
            }
            st.unread = !read;
            if n == 0 {
                complete = false;
                unread.push(j);
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
        let unread_power: Power = unread.iter().map(|&j| self.counted_draw(j)).sum();
        self.decision_power = self.facility.facility_power(it_power + unread_power);
        if let Some(m) = &self.metrics {
            if let Some(facility) = facility {
                m.facility_power(facility);
            }
            for e in &errors {
                if let AuditEvent::TelemetryFailed { kind, .. } = e {
                    m.device_error(*kind);
                }
            }
        }
        self.update_curtailed();
        self.fleet_cache = None;
        if complete && let Some(facility) = facility {
            let done = self.meter.record(now, facility);
            if !done.is_empty() {
                self.store(history::meter_record(done));
            }
        }
        for job in answering {
            self.schedule(now, Task::Retry { job });
        }
        for e in errors {
            self.log(e);
        }
        self.emit_deferred();
    }
}
