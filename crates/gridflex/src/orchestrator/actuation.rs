//! Actuation: a plan stage applied as the change from what the hardware holds, every
//! command issued at once.

use super::*;
use crate::metrics::AtomicHistogram;

/// The commands that take the fleet from what it holds to what a stage wants.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Diff {
    /// `(job, pause?)` for workload controls, pauses and resumes alike.
    pub(super) controls: Vec<(usize, bool)>,
    /// `(job, cap)` for every device of the job; `None` is the limit found at discovery.
    pub(super) caps: Vec<(usize, Option<Power>)>,
}

/// The level each job should hold once `actions` apply: from a clean fleet when
/// `from_clean` (a new plan's first stage describes the whole fleet), else from the
/// level each holds. A cap at or above the job's top (`job_max`) is the limit found at
/// discovery. Actions on jobs `job_of` does not know (a job that has left) are skipped.
pub(super) fn desired_levels(
    state: &[JobState],
    actions: &[Action],
    job_of: impl Fn(&JobId) -> Option<usize>,
    job_max: &[Power],
    from_clean: bool,
) -> Vec<Level> {
    let mut desired: Vec<Level> = if from_clean {
        vec![Level::CLEAN; state.len()]
    } else {
        state.iter().map(|s| s.applied).collect()
    };
    for a in actions {
        let Some(j) = job_of(a.job()).filter(|&j| j < desired.len()) else {
            continue;
        };
        match a {
            Action::SetCap { cap_per_gpu, .. } => {
                desired[j].cap = job_max
                    .get(j)
                    .is_none_or(|max| cap_per_gpu < max)
                    .then_some(*cap_per_gpu);
            }
            Action::Pause { .. } => desired[j].paused = true,
            Action::Resume { .. } => desired[j].paused = false,
            _ => {}
        }
    }
    desired
}

/// What must change to go from each job's applied level to `desired`: jobs whose state
/// is unknown are left out (the retry loop owns them), a job that cannot be paused
/// (`pausable` false) gets no pause or resume, and while `restoring` no job is sent a
/// level more curtailed than the one it holds (a restore only ever lifts).
pub(super) fn diff(
    desired: &[Level],
    state: &[JobState],
    restoring: bool,
    pausable: impl Fn(usize) -> bool,
) -> Diff {
    let mut out = Diff::default();
    for (j, (want, st)) in desired.iter().zip(state).enumerate() {
        if st.unknown {
            continue;
        }
        let have = st.applied;
        let mut want = *want;
        if restoring {
            want.paused &= have.paused;
            want.cap = match (want.cap, have.cap) {
                (Some(w), Some(h)) => Some(w.max(h)),
                _ => None,
            };
        }
        if want.cap != have.cap {
            out.caps.push((j, want.cap));
        }
        if want.paused != have.paused && pausable(j) {
            out.controls.push((j, want.paused));
        }
    }
    out
}

impl<C: Clock> Orchestrator<C> {
    /// Applies actions as changes from the present state (or from a clean fleet when
    /// `from_clean`: a new plan's first stage describes the whole fleet), issuing only
    /// the commands that change something, all at once. Jobs whose state is unknown are
    /// left to the retry loop. During a restore (`restoring`) no job is ever sent a
    /// level more curtailed than the one it holds. Returns the commands issued.
    ///
    /// Traced as an `actuation` span with the event id and the commands issued.
    pub(super) async fn execute_stage(
        &mut self,
        id: u64,
        actions: &[Action],
        from_clean: bool,
    ) -> usize {
        use tracing::Instrument;
        let span =
            tracing::info_span!("actuation", event_id = id, commands = tracing::field::Empty);
        let commands = self
            .apply_stage(id, actions, from_clean)
            .instrument(span.clone())
            .await;
        span.record("commands", commands);
        commands
    }

    async fn apply_stage(&mut self, id: u64, actions: &[Action], from_clean: bool) -> usize {
        let restoring = self.active.as_ref().is_none_or(|a| a.restoring);
        let desired = desired_levels(
            &self.state,
            actions,
            |job| self.job_index.get(job.as_str()).copied(),
            &self.job_max,
            from_clean,
        );
        let Diff { controls, caps } = diff(&desired, &self.state, restoring, |j| {
            self.jobs[j].control.is_some()
        });
        let commands = controls.len()
            + caps
                .iter()
                .map(|(j, _)| self.jobs[*j].devices.len())
                .sum::<usize>();
        if commands == 0 {
            return 0;
        }
        // Latency is measured only when metrics are kept: no clock reading otherwise.
        let metrics = self.metrics.as_ref();
        let started = metrics.map(|_| std::time::Instant::now());
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
            let timer = |lever| Some((started?, metrics?.command_latency(lever)));
            let mut control_out = FanOut::new(control_slots, compact, timer(Lever::Workload));
            let mut cap_out = FanOut::new(cap_slots, enforced, timer(Lever::PowerLimit));
            // Plain loops (no iterator closures) keep the run future `Send`. The whole
            // stage is issued at one instant of the clock: every command, and every
            // simulated device that takes one, reads the same time (one reading, not a
            // thousand).
            std::future::poll_fn(|cx| {
                gridflex_core::clock::at_one_instant(|| {
                    // A backend that answers at once does so without a future.
                    for &(j, pause) in &controls {
                        if let Some(c) = jobs[j].control.as_ref() {
                            let answer = if pause {
                                c.pause_at_once()
                            } else {
                                c.resume_at_once()
                            };
                            match answer {
                                Some(r) => control_out.answered(r),
                                None => control_out
                                    .issue(cx, if pause { c.pause() } else { c.resume() }),
                            }
                        }
                    }
                    for &(j, cap) in &caps {
                        for d in &jobs[j].devices {
                            let answer = match cap {
                                Some(c) => d.device.set_power_limit_at_once(c),
                                None => d.device.restore_power_limit_at_once(),
                            };
                            if let Some(r) = answer {
                                cap_out.answered(r);
                                continue;
                            }
                            let command = match cap {
                                Some(c) => d.device.set_power_limit(c),
                                None => d.device.restore_power_limit(),
                            };
                            cap_out.issue(cx, command);
                        }
                    }
                });
                std::task::Poll::Ready(())
            })
            .await;
            // Every command is out: the signal's latency ends here (a stage that no
            // signal started has none).
            if let (Some(m), Some(t)) = (metrics, self.signal_started.take()) {
                m.signal_to_commands(t.elapsed());
            }
            control_out.issued();
            cap_out.issued();
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
                    if let Some(m) = &self.metrics {
                        m.device_error(e.kind());
                    }
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
                    Err(e) => {
                        if let Some(m) = &self.metrics {
                            m.device_error(e.kind());
                        }
                        failures.push(Failure::of(Some(d.id().clone()), &e))
                    }
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
        if let Some(m) = &self.metrics {
            m.commands(commands);
        }
        self.update_curtailed();
        new_failures.sort_unstable();
        new_failures.dedup();
        if !new_failures.is_empty() {
            // A job whose command failed is in an unknown state: it leaves the plan and
            // the retry loop gives it back; the rest of the event is re-solved without it.
            for &j in &new_failures {
                self.fail(j, now);
            }
            let jobs = new_failures
                .iter()
                .map(|&j| JobId::clone(&self.jobs[j].id))
                .collect();
            self.replan(id, Replan::JobsFailed { jobs }).await;
        }
        commands
    }
}

pub(super) type Command<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Issues commands concurrently: each is polled once as soon as it is made, so a
/// backend that answers at once costs no scheduling (and its future is freed before the
/// next is made); only the commands still pending are awaited together, in `finish`.
/// `map` turns each result into what is kept; results come back in command order, in
/// the slots the fan-out was given (every one filled).
pub(super) struct FanOut<'a, T, U, M> {
    pub(super) results: Vec<Option<U>>,
    pub(super) pending: Vec<(usize, Command<'a, T>)>,
    pub(super) map: M,
    /// When the stage began and where each command's latency is recorded (`None`: not
    /// measured).
    pub(super) timer: Option<(std::time::Instant, &'a AtomicHistogram)>,
    /// Commands answered at issue, not yet recorded.
    pub(super) ready: u64,
}

impl<'a, T: Send + 'a, U, M: Fn(T) -> U> FanOut<'a, T, U, M> {
    /// A fan-out that fills `slots` (cleared first; its capacity is reused).
    pub(super) fn new(
        mut slots: Vec<Option<U>>,
        map: M,
        timer: Option<(std::time::Instant, &'a AtomicHistogram)>,
    ) -> Self {
        slots.clear();
        Self {
            results: slots,
            pending: Vec::new(),
            map,
            timer,
            ready: 0,
        }
    }

    /// A command the backend answered at once, without a future.
    pub(super) fn answered(&mut self, result: T) {
        self.ready += 1;
        self.results.push(Some((self.map)(result)));
    }

    pub(super) fn issue(&mut self, cx: &mut std::task::Context<'_>, mut command: Command<'a, T>) {
        match command.as_mut().poll(cx) {
            std::task::Poll::Ready(r) => {
                self.ready += 1;
                self.results.push(Some((self.map)(r)))
            }
            std::task::Poll::Pending => {
                self.pending.push((self.results.len(), command));
                self.results.push(None);
            }
        }
    }

    /// Records the latency of the commands answered at issue: one clock reading for
    /// all of them, the end of the issue pass (an upper bound on each; reading the clock
    /// per command would cost more than most such commands take).
    pub(super) fn issued(&mut self) {
        if let Some((start, h)) = self.timer {
            h.observe(start.elapsed().as_secs_f64(), self.ready);
        }
        self.ready = 0;
    }

    pub(super) async fn finish(self) -> Vec<Option<U>> {
        use futures_util::StreamExt;
        use futures_util::stream::FuturesUnordered;
        let Self {
            mut results,
            pending,
            map,
            timer,
            ..
        } = self;
        if !pending.is_empty() {
            let mut waiting: FuturesUnordered<_> = pending
                .into_iter()
                .map(|(i, f)| async move { (i, f.await) })
                .collect();
            while let Some((i, r)) = waiting.next().await {
                if let Some((start, h)) = timer {
                    h.observe(start.elapsed().as_secs_f64(), 1);
                }
                results[i] = Some(map(r));
            }
        }
        // Every slot is filled: at issue, or by the loop, which runs until all finish.
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: f64) -> Power {
        Power::watts(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn job(n: usize) -> Arc<JobId> {
        Arc::new(JobId::new(format!("j{n}")).unwrap_or_else(|e| panic!("{e}")))
    }

    fn holding(levels: &[Level]) -> Vec<JobState> {
        levels
            .iter()
            .map(|&applied| JobState {
                applied,
                ..JobState::default()
            })
            .collect()
    }

    fn index(id: &JobId) -> Option<usize> {
        id.as_str().strip_prefix('j')?.parse().ok()
    }

    const CAPPED: Level = Level {
        cap: Some(Power::ZERO),
        paused: false,
    };

    #[test]
    fn a_stage_from_clean_restores_jobs_it_does_not_name() {
        let state = holding(&[CAPPED, Level::CLEAN]);
        let actions = [Action::Pause { job: job(1) }];
        let d = desired_levels(&state, &actions, index, &[w(700.0); 2], true);
        assert_eq!(d[0], Level::CLEAN);
        assert!(d[1].paused);
        let diff = diff(&d, &state, false, |_| true);
        assert_eq!(diff.caps, vec![(0, None)]);
        assert_eq!(diff.controls, vec![(1, true)]);
    }

    #[test]
    fn a_cap_at_the_top_is_the_discovered_limit_and_unknown_jobs_are_skipped() {
        let state = holding(&[Level::CLEAN, Level::CLEAN]);
        let actions = [
            Action::SetCap {
                job: job(0),
                cap_per_gpu: w(700.0),
            },
            Action::SetCap {
                job: job(1),
                cap_per_gpu: w(400.0),
            },
            Action::Pause { job: job(7) }, // a job that has left
        ];
        let d = desired_levels(&state, &actions, index, &[w(700.0); 2], false);
        assert_eq!(d[0].cap, None);
        assert_eq!(d[1].cap, Some(w(400.0)));
        let mut unknown = state.clone();
        unknown[1].unknown = true;
        assert_eq!(diff(&d, &unknown, false, |_| true), Diff::default());
    }

    #[test]
    fn a_restore_only_lifts() {
        let held = Level {
            cap: Some(w(400.0)),
            paused: false,
        };
        let state = holding(&[held, Level::CLEAN, held]);
        let want = [
            Level {
                cap: Some(w(300.0)),
                paused: true,
            },
            Level {
                cap: Some(w(500.0)),
                paused: true,
            },
            Level {
                cap: Some(w(550.0)),
                paused: false,
            },
        ];
        let d = diff(&want, &state, true, |_| true);
        // Job 0 keeps 400 W and is not paused; job 1 stays clean; job 2 is lifted.
        assert_eq!(d.caps, vec![(2, Some(w(550.0)))]);
        assert!(d.controls.is_empty());
        // Outside a restore the same wants are applied as they are, but a job without
        // a workload control is never paused.
        let d = diff(&want, &state, false, |j| j != 1);
        assert_eq!(
            d.caps,
            vec![
                (0, Some(w(300.0))),
                (1, Some(w(500.0))),
                (2, Some(w(550.0)))
            ]
        );
        assert_eq!(d.controls, vec![(0, true)]);
    }
}
