//! The one error type of `gridflex-planner`.

use gridflex_core::{CoreError, JobId};

/// Everything that can go wrong when building planner inputs.
///
/// Every variant names the field at fault with a path such as `jobs[3].cap_range.min`,
/// so a caller can point a user at the exact line of a fleet or request file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlannerError {
    /// A field holds a value outside what the planner can accept.
    #[error("{field}: {reason}")]
    Invalid {
        /// Path of the field, for example `jobs[2].class.floor`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two jobs of one fleet share an id.
    #[error("jobs[{index}].id: job id {id:?} appears more than once")]
    DuplicateJob {
        /// Index of the second occurrence.
        index: usize,
        /// The repeated id.
        id: JobId,
    },
    /// A core value (an id, a unit, an interval) was refused.
    #[error("{field}: {source}")]
    Core {
        /// Path of the field.
        field: String,
        /// The core error.
        source: CoreError,
    },
    /// A restore was asked to start after the planned one, which could break a pause limit.
    #[error(
        "restore offset {requested_ms} ms is after the planned restore start {planned_ms} ms; \
         starting later could hold a job paused beyond its limit"
    )]
    RestoreTooLate {
        /// Requested start, milliseconds from the plan start.
        requested_ms: f64,
        /// The plan's own restore start, milliseconds from the plan start.
        planned_ms: f64,
    },
    /// A site-limited schedule was proven impossible (see
    /// [`shift_within_limit`](crate::shift_within_limit)): the jobs named cannot all
    /// finish by their deadlines within the site limit, whatever the schedule.
    #[error("infeasible: jobs {jobs:?}: {reason}")]
    Infeasible {
        /// The jobs at fault (one job that cannot fit alone, or a set due by one
        /// deadline that together needs more energy than the limit leaves).
        jobs: Vec<JobId>,
        /// Why, with the figures.
        reason: String,
    },
    /// No site-limited schedule was found for these jobs, although infeasibility was
    /// not proven (the on/off problem is NP-hard; the placement is a heuristic).
    #[error("not placed: jobs {jobs:?}: {reason}")]
    NotPlaced {
        /// The jobs that found no room in the last attempt.
        jobs: Vec<JobId>,
        /// What was tried.
        reason: String,
    },
}

impl PlannerError {
    /// An [`PlannerError::Invalid`] for `field`.
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error with `prefix.` put before its field path.
    pub(crate) fn within(self, prefix: &str) -> Self {
        match self {
            Self::Invalid { field, reason } => Self::Invalid {
                field: join(prefix, &field),
                reason,
            },
            Self::Core { field, source } => Self::Core {
                field: join(prefix, &field),
                source,
            },
            other => other,
        }
    }

    /// The field path this error names, when it names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } | Self::Core { field, .. } => Some(field),
            Self::DuplicateJob { .. }
            | Self::RestoreTooLate { .. }
            | Self::Infeasible { .. }
            | Self::NotPlaced { .. } => None,
        }
    }
}

fn join(prefix: &str, field: &str) -> String {
    if field.is_empty() {
        prefix.to_owned()
    } else if field.starts_with('[') {
        format!("{prefix}{field}")
    } else {
        format!("{prefix}.{field}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_builds_paths() {
        let e = PlannerError::invalid("floor", "must be in [0, 1]")
            .within("class")
            .within("jobs[3]");
        assert_eq!(e.field(), Some("jobs[3].class.floor"));
        assert_eq!(e.to_string(), "jobs[3].class.floor: must be in [0, 1]");
        let p = PlannerError::invalid("[2]", "x").within("points");
        assert_eq!(p.field(), Some("points[2]"));
    }
}
