//! The planner's output: staged actions, predictions, objective, shortfall and restore.

use std::sync::Arc;
use std::time::Duration;

use gridflex_core::{JobId, Power};
use serde::{Deserialize, Serialize};

use crate::PlannerError;

/// One command for the executor. Each applies to every GPU of the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Action {
    /// Set the power cap of each of the job's GPUs.
    SetCap {
        /// The job.
        job: Arc<JobId>,
        /// Cap per GPU; always inside the job's cap range.
        cap_per_gpu: Power,
    },
    /// Pause the job (for example SIGSTOP; its state stays in GPU memory).
    Pause {
        /// The job.
        job: Arc<JobId>,
    },
    /// Resume a paused job.
    Resume {
        /// The job.
        job: Arc<JobId>,
    },
}

impl Action {
    /// The job the action applies to.
    pub fn job(&self) -> &Arc<JobId> {
        match self {
            Self::SetCap { job, .. } | Self::Pause { job } | Self::Resume { job } => job,
        }
    }
}

/// A set of actions issued together at an offset from the plan start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// When to issue the actions, from the window start (JSON `offset_s`, seconds).
    #[serde(rename = "offset_s", with = "gridflex_core::duration_s::std")]
    pub offset: Duration,
    /// The actions, in the order to issue them.
    pub actions: Vec<Action>,
    /// Stage 0 (offset 0): the facility power at the response time, with each pause
    /// part-way through its step and caps counted only once settled (the highest power
    /// from the response time on while the stage is in force). Every later stage: the
    /// settled facility power once its actions have taken effect.
    pub predicted_power: Power,
    /// The transient peak right after the stage (resume overshoot included).
    pub peak_power: Power,
}

/// A job's level in the steady part of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Running, at its uncapped draw or under a cap.
    Running,
    /// Paused for the window.
    Paused,
}

/// Prediction for one job in the steady part of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobOutcome {
    /// The job.
    pub job: Arc<JobId>,
    /// Running or paused.
    pub state: JobState,
    /// The cap the stages leave per GPU, when the plan caps the job; `None` when they
    /// set none or leave it at `cap_range.max` (no cap binding).
    pub cap_per_gpu: Option<Power>,
    /// Predicted draw per GPU.
    pub power_per_gpu: Power,
    /// Predicted throughput as a fraction of uncapped (0 when paused).
    pub throughput: f64,
    /// `weight * gpus * (1 - throughput)`.
    pub weighted_throughput_lost: f64,
}

/// How the discrete pause choice was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AllocationMethod {
    /// Exact without a search: no pause choice was involved (no candidates, no
    /// reduction needed, or infeasible), or the LP relaxation's own pause choice met
    /// the LP bound, which certifies it optimal.
    Exact,
    /// Every subset of pause candidates was tried: exact.
    Exhaustive,
    /// LP relaxation over concave hulls, rounded; `lower_bound` bounds the gap. No
    /// longer produced (replaced by [`AllocationMethod::BranchAndBound`]); kept so that
    /// plans recorded by earlier versions, in audit logs for example, still parse.
    Relaxation,
    /// Best-first branch and bound over pause decisions with the LP relaxation as the
    /// bound. Exact when it finished (`lower_bound` equals the loss); when its work
    /// limit stopped it, `lower_bound` is the least bound left open, so
    /// [`Objective::gap_bound`] is a certified gap.
    BranchAndBound,
}

/// The objective and its certified bound.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// `sum weight * gpus * (1 - throughput)`: what the planner minimises.
    pub weighted_throughput_lost: f64,
    /// `sum weight * gpus`: the weighted throughput with no curtailment.
    pub weighted_throughput_total: f64,
    /// A lower bound on the least possible loss (the LP relaxation); equal to the
    /// loss when the method is exact. `loss - lower_bound` bounds the optimality gap.
    pub lower_bound: f64,
    /// How the pause choice was made.
    pub method: AllocationMethod,
}

impl Objective {
    /// Weighted throughput kept.
    pub fn weighted_throughput_kept(&self) -> f64 {
        self.weighted_throughput_total - self.weighted_throughput_lost
    }

    /// Upper bound on the gap to the optimum, as a fraction of the optimum's kept
    /// throughput (0 when exact).
    pub fn gap_bound(&self) -> f64 {
        let best_kept = self.weighted_throughput_total - self.lower_bound;
        if best_kept <= 0.0 {
            0.0
        } else {
            ((self.weighted_throughput_lost - self.lower_bound) / best_kept).max(0.0)
        }
    }
}

/// A staged curtailment plan.
///
/// All offsets count from the request window's start. Stages are issued in order; the
/// `restore` stages begin at the window's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The facility power target.
    pub target: Power,
    /// Predicted facility power with no action (every job uncapped).
    pub baseline: Power,
    /// Predicted facility power once every stage has settled.
    pub predicted_power: Power,
    /// Predicted facility power at the required response time.
    pub power_at_response: Power,
    /// By how much the settled plan stays above the target, when the target cannot
    /// be met within the service levels (exact).
    pub shortfall: Option<Power>,
    /// By how much power at the response time stays above the target.
    pub response_shortfall: Option<Power>,
    /// Weighted throughput lost and its bound.
    pub objective: Objective,
    /// Staged actions from the window start.
    pub stages: Vec<Stage>,
    /// Steady-state prediction per job, in fleet order.
    pub jobs: Vec<JobOutcome>,
    /// When the restore begins: the window's end, as an offset from its start (JSON
    /// `restore_start_s`, seconds). Its first step may come later, once the ramp allows it.
    #[serde(rename = "restore_start_s", with = "gridflex_core::duration_s::std")]
    pub restore_start: Duration,
    /// Staggered restore from `restore_start`, under the ramp limit.
    pub restore: Vec<Stage>,
}

impl Plan {
    /// The restore schedule moved to start at `offset` instead of the window's end
    /// (a restore on request). Only an earlier start is allowed: the plan's pause
    /// limits were checked against the planned one.
    pub fn restore_starting_at(&self, offset: Duration) -> Result<Vec<Stage>, PlannerError> {
        let planned = self.restore_start;
        if offset > planned {
            return Err(PlannerError::RestoreTooLate {
                requested_ms: offset.as_secs_f64() * 1e3,
                planned_ms: planned.as_secs_f64() * 1e3,
            });
        }
        let shift = planned - offset;
        Ok(self
            .restore
            .iter()
            .map(|s| Stage {
                offset: s.offset.saturating_sub(shift),
                ..s.clone()
            })
            .collect())
    }

    /// Every stage, the restore included, in time order.
    pub fn all_stages(&self) -> impl Iterator<Item = &Stage> {
        self.stages.iter().chain(&self.restore)
    }
}
