//! Actuation: a plan stage applied as the change from what the hardware holds, every
//! command issued at once.

use super::*;

impl<C: Clock> Orchestrator<C> {
    /// Applies actions as changes from the present state (or from a clean fleet when
    /// `from_clean`: a new plan's first stage describes the whole fleet), issuing only
    /// the commands that change something, all at once. Jobs whose state is unknown are
    /// left to the retry loop. During a restore (`restoring`) no job is ever sent a
    /// level more curtailed than the one it holds. Returns the commands issued.
    pub(super) async fn execute_stage(
        &mut self,
        id: u64,
        actions: &[Action],
        from_clean: bool,
    ) -> usize {
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
}

impl<'a, T: Send + 'a, U, M: Fn(T) -> U> FanOut<'a, T, U, M> {
    /// A fan-out that fills `slots` (cleared first; its capacity is reused).
    pub(super) fn new(mut slots: Vec<Option<U>>, map: M) -> Self {
        slots.clear();
        Self {
            results: slots,
            pending: Vec::new(),
            map,
        }
    }

    pub(super) fn issue(&mut self, cx: &mut std::task::Context<'_>, mut command: Command<'a, T>) {
        match command.as_mut().poll(cx) {
            std::task::Poll::Ready(r) => self.results.push(Some((self.map)(r))),
            std::task::Poll::Pending => {
                self.pending.push((self.results.len(), command));
                self.results.push(None);
            }
        }
    }

    pub(super) async fn finish(self) -> Vec<Option<U>> {
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
