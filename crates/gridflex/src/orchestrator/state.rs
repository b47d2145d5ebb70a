//! What the orchestrator knows of each job (the level the hardware confirmed, the pause
//! budget of the episode) and the planner's view of the fleet built from it.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Level {
    /// `None`: the limit found at discovery.
    pub(super) cap: Option<Power>,
    pub(super) paused: bool,
}

impl Level {
    pub(super) const CLEAN: Level = Level {
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
pub(super) struct JobState {
    /// The level last confirmed by the hardware.
    pub(super) applied: Level,
    /// A command failed, so what the hardware holds is uncertain. The job is left out
    /// of every plan (its draw counts as fixed load) and the retry loop drives it back
    /// to its pre-event level until that is confirmed; nothing else commands it.
    pub(super) unknown: bool,
    /// When the present pause began (also set when a failed command may have paused it).
    pub(super) paused_since: Option<DateTime<Utc>>,
    /// Pause time of this episode's pauses that have ended.
    pub(super) pause_used: Duration,
    /// When the present pause reaches the job's budget (or deadline): it is resumed
    /// then if still paused.
    pub(super) pause_limit_at: Option<DateTime<Utc>>,
    /// Failed restore attempts in a row (the retry back-off).
    pub(super) retries: u32,
    /// When the job was last commanded: its demand is learnt again only once it settled.
    pub(super) last_command: Option<DateTime<Utc>>,
    /// The job was removed while curtailed: it leaves once its restore is confirmed.
    pub(super) leaving: bool,
    /// The last telemetry sweep could not read every device of the job.
    pub(super) unread: bool,
}

impl Default for Level {
    fn default() -> Self {
        Level::CLEAN
    }
}

impl JobState {
    /// Pause time spent in this episode, the running pause included.
    pub(super) fn pause_spent(&self, now: DateTime<Utc>) -> Duration {
        let running = self.paused_since.map_or(Duration::ZERO, |since| {
            (now - since).to_std().unwrap_or_default()
        });
        self.pause_used.saturating_add(running)
    }

    /// A pause (or a command that may have paused) took effect at `now`.
    pub(super) fn paused(&mut self, now: DateTime<Utc>) {
        self.paused_since.get_or_insert(now);
    }

    /// The job is confirmed running at `now`: its pause, if any, is counted.
    pub(super) fn running(&mut self, now: DateTime<Utc>) {
        if self.paused_since.is_some() {
            self.pause_used = self.pause_spent(now);
            self.paused_since = None;
        }
        self.pause_limit_at = None;
    }

    pub(super) fn is_clean(&self) -> bool {
        self.applied == Level::CLEAN && !self.unknown && self.paused_since.is_none()
    }

    /// Nothing that would change the planner's view of the job: known, not paused, no
    /// budget spent.
    pub(super) fn is_clean_budget(&self) -> bool {
        !self.unknown && self.paused_since.is_none() && self.pause_used.is_zero()
    }
}

impl<C: Clock> Orchestrator<C> {
    /// The planner's view of the fleet from the latest sweep, at `now`: each job with
    /// the pause budget it has left in this episode. A job whose state is unknown (a
    /// command failed; the retry loop owns it) is pinned: left out of the plan, its
    /// draw counted as fixed load ([`Self::counted_draw`]); so is a job the integrator
    /// pinned, and a job never read while others were (an error when none was).
    /// What job `j` counts for where it is not planned (pinned, or its state unknown)
    /// or could not be read: a pinned job what it was last read at; a job whose state
    /// is unknown, being given back to its pre-event level or there already on its own
    /// (a node agent whose lease ran out) where it may not be read, the more of its
    /// last reading and its free-running draw; a job never read (its telemetry fails)
    /// the most its GPUs may draw, the limits they had when found, so that no load is
    /// left out of the count.
    pub(super) fn counted_draw(&self, j: usize) -> Power {
        let job = &self.jobs[j];
        let draw = match (self.measured[j], self.demand[j]) {
            (Some(m), Some(d)) if self.state[j].unknown => Some(m.max(d)),
            (m, d) => m.or(d),
        };
        match draw {
            Some(draw) => draw.times(job.devices.len()),
            None => job
                .devices
                .iter()
                .map(|d| d.device.info().limit_at_discovery)
                .sum(),
        }
    }

    pub(super) fn fleet(&self, now: DateTime<Utc>) -> Result<Fleet, GridflexError> {
        let mut specs = Vec::with_capacity(self.jobs.len());
        let mut pinned = Power::ZERO;
        let mut never_read = None;
        for (j, job) in self.jobs.iter().enumerate() {
            let st = &self.state[j];
            if st.unknown || job.entry.pinned {
                pinned += self.counted_draw(j);
                continue;
            }
            let Some(draw) = self.demand[j].or(self.measured[j]) else {
                // Never read (its telemetry fails): it cannot be planned, and one such
                // job must not stop the rest of the fleet from answering. It is left as
                // it is and counted at its GPUs' limits.
                never_read.get_or_insert(j);
                pinned += self.counted_draw(j);
                continue;
            };
            let infos = job.devices.iter().map(|d| d.device.info());
            let (mut min, mut max) = (Power::ZERO, Power::watts(gridflex_core::MAX_MAGNITUDE)?);
            for info in infos {
                min = min.max(info.limits.min());
                max = max.min(info.limit_at_discovery);
            }
            let weight = self
                .options
                .priority
                .weight(&job.planner_class(), job.entry.weight);
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
                weight,
                class,
            });
        }
        if let Some(j) = never_read.filter(|_| specs.is_empty()) {
            // Nothing could be read at all: the fleet has not been swept yet.
            return Err(GridflexError::invalid(
                format!("jobs[{}]", self.jobs[j].entry.id),
                "no telemetry yet (sweep first)",
            ));
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
    pub(super) fn plan(
        &mut self,
        c: &Curtailment,
        from: DateTime<Utc>,
    ) -> Result<Plan, GridflexError> {
        let window = Interval::new(from, c.window.end())?;
        let request = CurtailmentRequest::new(c.target, window, c.response_duration(), self.ramp)?;
        let started = self.metrics.as_ref().map(|_| std::time::Instant::now());
        let plan = if !self.state.iter().all(JobState::is_clean_budget) {
            let fleet = self.fleet(from)?;
            gridflex_planner::plan(&fleet, &request, &self.options.planner)?
        } else {
            if self.fleet_cache.is_none() {
                self.fleet_cache = Some(self.fleet(from)?);
            }
            match &self.fleet_cache {
                Some(fleet) => gridflex_planner::plan(fleet, &request, &self.options.planner)?,
                None => return Err(GridflexError::invalid("fleet", "no fleet view")),
            }
        };
        if let (Some(m), Some(t)) = (&self.metrics, started) {
            m.planned(t.elapsed(), plan.objective.gap_bound());
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn pause_time_is_counted_across_pauses_of_one_episode() {
        let t0 = Utc.with_ymd_and_hms(2025, 8, 1, 0, 0, 0).unwrap();
        let s = |n| t0 + TimeDelta::seconds(n);
        let mut st = JobState::default();
        assert!(st.is_clean() && st.is_clean_budget());
        st.paused(s(0));
        st.paused(s(5)); // already paused: the first instant counts
        assert_eq!(st.pause_spent(s(10)), Duration::from_secs(10));
        assert!(!st.is_clean_budget());
        st.running(s(30));
        assert_eq!(st.pause_spent(s(100)), Duration::from_secs(30));
        st.paused(s(200));
        assert_eq!(st.pause_spent(s(215)), Duration::from_secs(45));
        st.running(s(215));
        // Running again but with budget spent: clean, not a clean budget.
        assert!(st.is_clean());
        assert!(!st.is_clean_budget());
        st.unknown = true;
        assert!(!st.is_clean());
    }
}
