//! The schedule: plan steps, restores, reports, captures and retries, in time order.

use super::*;

#[derive(Debug, Clone)]
pub(super) enum Task {
    Start(Curtailment, Market, DateTime<Utc>),
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
    /// Re-plan the active event once devices a job released have settled at their
    /// uncurtailed draw (the re-plan made at the release saw them still ramping).
    Replan {
        reason: Replan,
    },
    /// Drive a job whose command failed back to its pre-event level.
    Retry {
        job: Arc<JobId>,
    },
}

/// Where a plan is: its stages, the restore's start (window end), the restore steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Stage(usize),
    RestoreBegin,
    Restore(usize),
    Done,
}

impl Step {
    pub(super) fn next(self, plan: &Plan) -> Step {
        match self {
            Step::Stage(i) if i + 1 < plan.stages.len() => Step::Stage(i + 1),
            Step::Stage(_) => Step::RestoreBegin,
            Step::RestoreBegin if !plan.restore.is_empty() => Step::Restore(0),
            Step::Restore(i) if i + 1 < plan.restore.len() => Step::Restore(i + 1),
            _ => Step::Done,
        }
    }

    /// Offset from the plan's start; `Done` follows the last restore step at once.
    pub(super) fn offset(self, plan: &Plan) -> Duration {
        let last_restore = plan.restore.last().map_or(plan.restore_start, |s| s.offset);
        match self {
            Step::Stage(i) => plan.stages.get(i).map_or(Duration::ZERO, |s| s.offset),
            Step::RestoreBegin => plan.restore_start,
            Step::Restore(i) => plan.restore.get(i).map_or(last_restore, |s| s.offset),
            Step::Done => last_restore.max(plan.restore_start),
        }
    }
}

/// Tasks in time order; tasks due at the same instant run in the order they were
/// scheduled.
#[derive(Debug, Default)]
pub(super) struct Schedule {
    tasks: BTreeMap<(DateTime<Utc>, u64), Task>,
    seq: u64,
}

impl Schedule {
    /// Schedules `task` at `at`, after anything already scheduled at that instant.
    pub(super) fn push(&mut self, at: DateTime<Utc>, task: Task) {
        self.seq += 1;
        self.tasks.insert((at, self.seq), task);
    }

    /// When the earliest task is due.
    pub(super) fn next_at(&self) -> Option<DateTime<Utc>> {
        self.tasks.keys().next().map(|(t, _)| *t)
    }

    /// Takes the earliest task if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: DateTime<Utc>) -> Option<Task> {
        let entry = self.tasks.first_entry()?;
        (entry.key().0 <= now).then(|| entry.remove())
    }

    /// Drops an event's pending plan steps and restore (not retries: those belong to
    /// jobs and outlive events; nor its report).
    pub(super) fn drop_event(&mut self, event_id: u64) {
        self.tasks.retain(|_, t| match t {
            Task::Step { event_id: e, .. } | Task::RestoreDone { event_id: e } => *e != event_id,
            _ => true,
        });
    }

    /// Drops a job's retries (a job that has left the inventory).
    pub(super) fn drop_job(&mut self, job: &JobId) {
        self.tasks
            .retain(|_, t| !matches!(t, Task::Retry { job: j } if **j == *job));
    }

    /// True when nothing but retries is scheduled.
    pub(super) fn only_retries(&self) -> bool {
        self.tasks.values().all(|t| matches!(t, Task::Retry { .. }))
    }

    /// Events scheduled to start later.
    pub(super) fn starts(&self) -> usize {
        self.tasks
            .values()
            .filter(|t| matches!(t, Task::Start(..)))
            .count()
    }

    /// Drops everything.
    pub(super) fn clear(&mut self) {
        self.tasks.clear();
    }

    /// Tasks scheduled.
    pub(super) fn len(&self) -> usize {
        self.tasks.len()
    }
}

impl<C: Clock> Orchestrator<C> {
    pub(super) fn schedule(&mut self, at: DateTime<Utc>, task: Task) {
        self.tasks.push(at, task);
    }

    /// Drops an event's pending plan steps and restore.
    pub(super) fn unschedule_event(&mut self, event_id: u64) {
        self.tasks.drop_event(event_id);
    }

    pub(super) fn schedule_step(
        &mut self,
        id: u64,
        plan: &Arc<Plan>,
        start: DateTime<Utc>,
        step: Step,
    ) {
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

    pub(super) fn next_deadline(&self) -> DateTime<Utc> {
        let task = self.tasks.next_at();
        let pause_limit = self.state.iter().filter_map(|s| s.pause_limit_at).min();
        [task, self.next_sweep, self.intake_after, pause_limit]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

pub(super) fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

pub(super) fn ceil_to(t: DateTime<Utc>, step: TimeDelta) -> DateTime<Utc> {
    let step_ns = step.num_nanoseconds().unwrap_or(1).max(1);
    let ns = t.timestamp_nanos_opt().unwrap_or(0);
    let r = ns.rem_euclid(step_ns);
    DateTime::from_timestamp_nanos(if r == 0 { ns } else { ns - r + step_ns })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 8, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(s)
    }

    fn job(id: &str) -> Arc<JobId> {
        Arc::new(JobId::new(id).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn due_tasks_come_in_time_then_arrival_order() {
        let mut s = Schedule::default();
        s.push(at(5), Task::Report { event_id: 2 });
        s.push(at(1), Task::Report { event_id: 1 });
        s.push(at(1), Task::CaptureEnd { event_id: 1 });
        assert_eq!(s.next_at(), Some(at(1)));
        assert!(matches!(
            s.pop_due(at(1)),
            Some(Task::Report { event_id: 1 })
        ));
        assert!(matches!(
            s.pop_due(at(1)),
            Some(Task::CaptureEnd { event_id: 1 })
        ));
        assert!(s.pop_due(at(4)).is_none(), "not due yet");
        assert!(matches!(
            s.pop_due(at(9)),
            Some(Task::Report { event_id: 2 })
        ));
        assert_eq!(s.next_at(), None);
    }

    #[test]
    fn dropping_an_event_keeps_retries_and_reports() {
        let mut s = Schedule::default();
        s.push(at(1), Task::RestoreDone { event_id: 1 });
        s.push(at(2), Task::Retry { job: job("a") });
        s.push(at(3), Task::Report { event_id: 1 });
        s.push(at(4), Task::RestoreDone { event_id: 2 });
        s.drop_event(1);
        assert_eq!(s.len(), 3);
        assert!(!s.only_retries());
        s.drop_event(2);
        s.drop_job(&JobId::new("b").unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(s.len(), 2);
        s.drop_job(&JobId::new("a").unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(s.len(), 1);
        assert!(matches!(
            s.pop_due(at(9)),
            Some(Task::Report { event_id: 1 })
        ));
        assert!(
            s.only_retries(),
            "an empty schedule holds nothing but retries"
        );
    }

    #[test]
    fn a_plan_is_walked_stage_by_stage_then_restore() {
        use gridflex_planner::Stage;
        let ms = Duration::from_millis;
        let stage = |offset| Stage {
            offset,
            actions: Vec::new(),
            predicted_power: Power::ZERO,
            peak_power: Power::ZERO,
        };
        let plan = Plan {
            target: Power::ZERO,
            baseline: Power::ZERO,
            predicted_power: Power::ZERO,
            power_at_response: Power::ZERO,
            shortfall: None,
            response_shortfall: None,
            objective: gridflex_planner::Objective {
                weighted_throughput_lost: 0.0,
                weighted_throughput_total: 0.0,
                lower_bound: 0.0,
                method: gridflex_planner::AllocationMethod::Exact,
            },
            stages: vec![stage(ms(0)), stage(ms(50))],
            jobs: Vec::new(),
            restore_start: ms(60_000),
            restore: vec![stage(ms(60_000)), stage(ms(61_000))],
        };
        let mut steps = vec![Step::Stage(0)];
        while *steps.last().unwrap_or(&Step::Done) != Step::Done {
            let next = steps[steps.len() - 1].next(&plan);
            steps.push(next);
        }
        assert_eq!(
            steps,
            vec![
                Step::Stage(0),
                Step::Stage(1),
                Step::RestoreBegin,
                Step::Restore(0),
                Step::Restore(1),
                Step::Done
            ]
        );
        let offsets: Vec<_> = steps.iter().map(|s| s.offset(&plan)).collect();
        assert_eq!(
            offsets,
            vec![
                ms(0),
                ms(50),
                ms(60_000),
                ms(60_000),
                ms(61_000),
                ms(61_000)
            ]
        );
    }
}
