//! The schedule: plan steps, restores, reports, captures and retries, in time order.

use super::*;

#[derive(Debug, Clone)]
pub(super) enum Task {
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

impl<C: Clock> Orchestrator<C> {
    pub(super) fn schedule(&mut self, at: DateTime<Utc>, task: Task) {
        self.task_seq += 1;
        self.schedule.insert((at, self.task_seq), task);
    }

    /// Drops an event's pending plan steps and restore (not retries: those belong to
    /// jobs and outlive events).
    pub(super) fn unschedule_event(&mut self, event_id: u64) {
        self.schedule.retain(|_, t| match t {
            Task::Step { event_id: e, .. } | Task::RestoreDone { event_id: e } => *e != event_id,
            _ => true,
        });
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
        let task = self.schedule.keys().next().map(|(t, _)| *t);
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
