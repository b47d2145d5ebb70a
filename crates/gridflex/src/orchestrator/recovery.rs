//! Keeping the promise when things fail: pause budgets and limits, failed commands,
//! retries until the hardware confirms a restore, and re-plans around what is unknown.

use super::*;

impl<C: Clock> Orchestrator<C> {
    /// A confirmed pause of job `j` (or a command that may have paused it) at `now`:
    /// starts its pause clock and schedules the moment its budget (or deadline) ends.
    pub(super) fn paused(&mut self, j: usize, now: DateTime<Utc>) {
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
    pub(super) fn resumed(&mut self, j: usize, now: DateTime<Utc>) {
        self.state[j].running(now);
    }

    /// Marks job `j` unknown after a failed command and schedules its restore.
    pub(super) fn fail(&mut self, j: usize, now: DateTime<Utc>) {
        let st = &mut self.state[j];
        if !st.unknown {
            st.unknown = true;
            st.retries = 0;
            self.fleet_cache = None;
            self.schedule(
                now + self.options.retry_initial,
                Task::Retry {
                    job: self.jobs[j].id.clone(),
                },
            );
        }
    }

    /// Re-solves the active event from fresh telemetry and the fleet as it is (jobs in
    /// an unknown state pinned, budgets as left), replacing its remaining steps.
    pub(super) async fn replan(&mut self, id: u64, reason: Replan) {
        use tracing::Instrument;
        let span = tracing::info_span!("replan", event_id = id, reason = ?reason);
        self.replan_now(id, reason).instrument(span).await;
    }

    async fn replan_now(&mut self, id: u64, reason: Replan) {
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
                self.log(AuditEvent::Replanned {
                    event_id: id,
                    reason,
                });
                self.unschedule_event(id);
                if let Some(a) = self.active.as_mut() {
                    a.plan = plan.clone();
                }
                Box::pin(self.execute_plan(id, &plan, now)).await;
                self.defer(AuditEvent::Plan { event_id: id, plan });
            }
            Err(e) => {
                if let Some(m) = &self.metrics {
                    m.plan_failed();
                }
                self.log(AuditEvent::ReplanFailed {
                    event_id: id,
                    reason,
                    error: e.to_string(),
                });
            }
        }
    }

    /// Drives a job whose state is unknown back to its pre-event level (uncapped and
    /// running), the only level a retry ever sends; on failure tries again later, each
    /// wait twice the last up to `retry_max`.
    pub(super) async fn retry(&mut self, j: usize) -> bool {
        if !self.state[j].unknown {
            return true;
        }
        let failures = self.give_back(j).await;
        match self.given_back(j, failures) {
            Some(reason) => {
                // Back in a known state (or gone): the active event is re-planned.
                self.replan_active(reason).await;
                true
            }
            None => false,
        }
    }

    /// The commands that take job `j` to its pre-event level: resumed (a job whose
    /// processes have all exited counts as resumed) and every device's limit restored,
    /// all at once. Owns what it needs, so several jobs' commands can run together.
    fn give_back(&self, j: usize) -> impl Future<Output = Vec<Failure>> + Send + 'static {
        let job = &self.jobs[j];
        let control = job.control.clone();
        let devices: Vec<_> = job.devices.iter().map(|d| d.device.clone()).collect();
        async move {
            let resume = async {
                match &control {
                    Some(c) => match c.resume().await {
                        Ok(()) => Vec::new(),
                        Err(_) if matches!(c.status().await, Ok(WorkloadState::Exited)) => {
                            Vec::new()
                        }
                        Err(e) => vec![Failure::of(None, &e)],
                    },
                    None => Vec::new(),
                }
            };
            let restores = join_all(devices.iter().map(|d| d.restore_power_limit()));
            let (mut failures, reads) = futures_util::future::join(resume, restores).await;
            for (d, r) in devices.iter().zip(reads) {
                if let Err(e) = r {
                    failures.push(Failure::of(Some(d.id().clone()), &e));
                }
            }
            failures
        }
    }

    /// Accounts for a give-back of job `j` (an unknown job) that ended with `failures`:
    /// on success the job is clean again (a leaving job leaves) and the reason to
    /// re-plan is returned; on failure its next retry is scheduled with back-off.
    fn given_back(&mut self, j: usize, failures: Vec<Failure>) -> Option<Replan> {
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
            self.schedule(
                now + wait,
                Task::Retry {
                    job: self.jobs[j].id.clone(),
                },
            );
            ActionOutcome::Failed { failures }
        };
        self.log_resume(j, now, self.jobs[j].devices.len(), outcome);
        if !ok {
            return None;
        }
        self.resumed(j, now);
        self.fleet_cache = None;
        let job = JobId::clone(&self.jobs[j].id);
        self.log(AuditEvent::JobRestored { job: job.clone() });
        let reason = if self.state[j].leaving {
            self.drop_job(j);
            self.log(AuditEvent::JobRemoved { job: job.clone() });
            Replan::JobRemoved { job }
        } else {
            Replan::JobBack { job }
        };
        self.end_episode_if_restored();
        Some(reason)
    }

    /// Something outside the orchestrator gave devices and jobs back: typically a node
    /// agent whose lease lapsed (a partition, a stalled orchestrator) or that restarted
    /// (see [`OutsideRestore`]). Every job the orchestrator holds curtailed that the
    /// report touches (one of its devices, or the job itself) is treated as a job whose
    /// state is unknown: it is driven to its pre-event level at once (all of them
    /// together; a no-op on hardware that really was restored, and a correction where
    /// a command crossed the restore), and once the hardware confirms it, the active
    /// event, if it is still curtailing, is re-planned over the fleet as it now is, so
    /// the restored jobs are curtailed again within the event's response time. A job
    /// whose confirmation fails stays unknown and the retry loop owns it, as after any
    /// failed command. Jobs the orchestrator already holds unknown are left to the
    /// retry loop; jobs it holds at their pre-event level need nothing.
    ///
    /// Returns the jobs confirmed restored. A report naming a device that is not
    /// registered or a job not in the inventory is refused whole, with nothing done.
    pub async fn restored_outside(
        &mut self,
        restore: OutsideRestore,
    ) -> Result<Vec<JobId>, GridflexError> {
        let known: HashSet<&DeviceId> = self.all_devices.iter().map(DeviceHandle::id).collect();
        if let Some(d) = restore.devices.iter().find(|d| !known.contains(d)) {
            return Err(GridflexError::invalid(
                "restore.devices",
                format!("device {d} is not registered"),
            ));
        }
        if let Some(job) = restore
            .jobs
            .iter()
            .find(|job| !self.job_index.contains_key(job.as_str()))
        {
            return Err(GridflexError::UnknownJob { job: job.clone() });
        }
        let devices: HashSet<&DeviceId> = restore.devices.iter().collect();
        let jobs: HashSet<&str> = restore.jobs.iter().map(JobId::as_str).collect();
        let touched: Vec<usize> = (0..self.jobs.len())
            .filter(|&j| {
                let st = &self.state[j];
                let job = &self.jobs[j];
                !st.unknown
                    && !st.is_clean()
                    && (jobs.contains(job.entry.id.as_str())
                        || job.devices.iter().any(|d| devices.contains(d.id())))
            })
            .collect();
        let ids: Vec<Arc<JobId>> = touched.iter().map(|&j| self.jobs[j].id.clone()).collect();
        let confirming: Vec<JobId> = ids.iter().map(|id| JobId::clone(id)).collect();
        let presumed = restore.presumed;
        self.log(AuditEvent::RestoredOutside {
            devices: restore.devices,
            jobs: restore.jobs,
            reason: restore.reason,
            confirming: confirming.clone(),
            presumed,
        });
        if ids.is_empty() {
            self.emit_deferred();
            return Ok(Vec::new());
        }
        // Unknown from here: nothing else commands them, the plan pins them at their
        // pre-event draw, and a confirmation that fails leaves them to the retry loop
        // (already scheduled).
        let now = self.clock.now();
        for &j in &touched {
            self.fail(j, now);
        }
        if presumed {
            // Whoever holds them cannot be reached now: no confirmation is tried (it
            // would wait out a timeout); the rest of the fleet carries the target at
            // once, and the retry loop gives them back when they answer.
            self.replan_active(Replan::PresumedRestored { jobs: confirming })
                .await;
            self.emit_deferred();
            return Ok(Vec::new());
        }
        let commands: Vec<_> = touched.iter().map(|&j| self.give_back(j)).collect();
        let results = join_all(commands).await;
        let mut back = Vec::new();
        for (id, failures) in ids.iter().zip(results) {
            // By id: a leaving job that is given back leaves, which moves the others.
            let Some(&j) = self.job_index.get(id.as_str()) else {
                continue;
            };
            if self.given_back(j, failures).is_some() {
                back.push(JobId::clone(id));
            }
        }
        if !back.is_empty() {
            self.replan_active(Replan::RestoredOutside { jobs: back.clone() })
                .await;
        } else {
            // None confirmed: they stay unknown (planned at their pre-event draw), and
            // the rest of the fleet carries the target now, not after the retries.
            self.replan_active(Replan::JobsFailed { jobs: confirming })
                .await;
        }
        self.emit_deferred();
        Ok(back)
    }

    /// A paused job's budget (or deadline) ends now: it is resumed, and the active
    /// event re-planned with the budget it has left (none), or its shortfall reported.
    pub(super) async fn pause_limit(&mut self, j: usize) {
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
        let job = JobId::clone(&self.jobs[j].id);
        self.log(AuditEvent::PauseLimitReached { job: job.clone() });
        self.log_resume(j, now, 1, outcome);
        self.fleet_cache = None;
        self.replan_active(Replan::PauseLimit { job }).await;
    }

    /// Audits a resume of job `j` outside a plan's stages (a retry, a pause limit), on
    /// the active event if any (event 0 when none).
    pub(super) fn log_resume(
        &mut self,
        j: usize,
        now: DateTime<Utc>,
        devices: usize,
        outcome: ActionOutcome,
    ) {
        let event_id = self.active.as_ref().map_or(0, |a| a.id);
        let job = self.jobs[j].id.clone();
        if let (Some(m), ActionOutcome::Failed { failures }) = (&self.metrics, &outcome) {
            for f in failures {
                m.device_error(f.kind);
            }
        }
        self.update_curtailed();
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
    pub(super) fn end_episode_if_restored(&mut self) {
        let spent = self.state.iter().any(|s| !s.pause_used.is_zero());
        if spent && self.active.is_none() && self.state.iter().all(JobState::is_clean) {
            for st in &mut self.state {
                st.pause_used = Duration::ZERO;
            }
        }
    }

    /// Lifts anything still capped or paused (jobs in an unknown state are the retry
    /// loop's).
    pub(super) async fn ensure_restored(&mut self, id: u64) {
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
    /// until `restore_grace` has passed; what is left is audited (and stays in
    /// [`Orchestrator::curtailed_jobs`]).
    pub(super) async fn converge(&mut self) {
        let give_up = self.clock.now() + self.options.restore_grace;
        let mut wait = self.options.retry_initial;
        loop {
            self.ensure_restored(0).await;
            // By id: a leaving job that is given back leaves, which moves the others.
            let left: Vec<Arc<JobId>> = (0..self.state.len())
                .filter(|&j| self.state[j].unknown)
                .map(|j| self.jobs[j].id.clone())
                .collect();
            for job in left {
                if let Some(&j) = self.job_index.get(job.as_str()) {
                    self.retry(j).await;
                }
            }
            self.emit_deferred();
            if self.state.iter().all(JobState::is_clean) {
                self.end_episode_if_restored();
                return;
            }
            let now = self.clock.now();
            if now >= give_up {
                self.log(AuditEvent::RestoreIncomplete {
                    jobs: self.curtailed_jobs(),
                    grace: self.options.restore_grace,
                });
                return;
            }
            self.clock.sleep_until((now + wait).min(give_up)).await;
            wait = (wait * 2).min(self.options.retry_max);
        }
    }
}
