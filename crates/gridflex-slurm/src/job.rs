//! One Slurm job as gridflex sees it: [`SlurmJob`], its [`JobState`] and its GPUs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use gridflex_core::JobId;
use serde::{Deserialize, Serialize};

use crate::SlurmError;

/// A job's state, as Slurm names it (`job_state` in JSON, `JobState=` in text).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum JobState {
    /// Waiting for resources; holds no GPU.
    Pending,
    /// Running on its nodes.
    Running,
    /// Suspended (by gridflex or anyone else); keeps its GPUs, its processes are stopped.
    Suspended,
    /// Its processes are being torn down.
    Completing,
    /// Finished, cancelled, failed, timed out, preempted or lost; lingers in the queue
    /// for `MinJobAge` (300 s by default).
    Finished(String),
    /// Any other state (configuring, requeued, resizing, ...), as Slurm spells it.
    Other(String),
}

impl JobState {
    /// Reads Slurm's state name (`RUNNING`, `SUSPENDED`, ...).
    pub fn parse(name: &str) -> Self {
        match name {
            "PENDING" => Self::Pending,
            "RUNNING" => Self::Running,
            "SUSPENDED" => Self::Suspended,
            "COMPLETING" => Self::Completing,
            "COMPLETED" | "CANCELLED" | "FAILED" | "TIMEOUT" | "PREEMPTED" | "NODE_FAIL"
            | "BOOT_FAIL" | "DEADLINE" | "OUT_OF_MEMORY" | "SPECIAL_EXIT" | "REVOKED" => {
                Self::Finished(name.to_owned())
            }
            other => Self::Other(other.to_owned()),
        }
    }

    /// Whether the job is one gridflex tracks: pending, running or suspended.
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Pending | Self::Running | Self::Suspended)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Suspended => "SUSPENDED",
            Self::Completing => "COMPLETING",
            Self::Finished(s) | Self::Other(s) => s,
        })
    }
}

/// One GPU of a job: the node and the GPU's index there (gres.conf order).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GpuRef {
    /// The node's name.
    pub node: String,
    /// The GPU's index on that node (`IDX` in Slurm's GRES detail).
    pub index: u32,
}

/// A Slurm job: identity, placement and the fields site policy looks at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SlurmJob {
    /// Slurm's job id.
    pub id: u32,
    /// The job's name.
    pub name: String,
    /// The submitting user.
    pub user: String,
    /// Partition.
    pub partition: String,
    /// Quality of service (empty without accounting).
    pub qos: String,
    /// Account (empty without accounting).
    pub account: String,
    /// The job's comment (`sbatch --comment`).
    pub comment: String,
    /// The GRES it asked for (`tres_per_node` and `tres_per_job`, e.g. `gres:gpu:a100:2`).
    pub gres_request: String,
    /// State.
    pub state: JobState,
    /// Time limit; `None` when unlimited.
    pub time_limit: Option<Duration>,
    /// When it started (running or suspended jobs).
    pub start: Option<DateTime<Utc>>,
    /// When Slurm expects it to end (start + limit + time suspended).
    pub end: Option<DateTime<Utc>>,
    /// Its nodes, in Slurm's order.
    pub nodes: Vec<String>,
    /// Its GPUs, node by node, indices ascending.
    pub gpus: Vec<GpuRef>,
    /// Why its GPUs could not be read, if they could not (the job is then pinned).
    pub problem: Option<String>,
}

impl SlurmJob {
    /// The id gridflex uses for this job: `slurm-<id>`.
    pub fn gridflex_id(&self) -> Result<JobId, SlurmError> {
        Ok(gridflex_id(self.id)?)
    }

    /// Whether `tag` is one of the comment's words (split at whitespace, `,` and `;`).
    pub fn comment_has(&self, tag: &str) -> bool {
        comment_words(&self.comment).any(|w| w == tag)
    }

    /// The value of `key=value` in the comment, if present.
    pub fn comment_value(&self, key: &str) -> Option<&str> {
        comment_words(&self.comment).find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }
}

fn comment_words(comment: &str) -> impl Iterator<Item = &str> {
    comment
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|w| !w.is_empty())
}

/// The gridflex id of Slurm job `id`: `slurm-<id>`.
pub fn gridflex_id(id: u32) -> Result<JobId, gridflex_core::CoreError> {
    JobId::new(format!("slurm-{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_comment_words() {
        assert_eq!(JobState::parse("SUSPENDED"), JobState::Suspended);
        assert!(!JobState::parse("CANCELLED").is_live());
        assert!(JobState::parse("PENDING").is_live());
        assert_eq!(JobState::parse("CONFIGURING").to_string(), "CONFIGURING");
        let job = SlurmJob {
            id: 7,
            name: "n".into(),
            user: "u".into(),
            partition: "gpu".into(),
            qos: String::new(),
            account: String::new(),
            comment: "team=llm; gridflex:flexible,deadline=2026-01-01T00:00:00Z".into(),
            gres_request: String::new(),
            state: JobState::Running,
            time_limit: None,
            start: None,
            end: None,
            nodes: vec![],
            gpus: vec![],
            problem: None,
        };
        assert!(job.comment_has("gridflex:flexible"));
        assert!(!job.comment_has("gridflex"));
        assert_eq!(job.comment_value("deadline"), Some("2026-01-01T00:00:00Z"));
        assert_eq!(job.comment_value("team"), Some("llm"));
        assert_eq!(
            job.gridflex_id().map(|j| j.to_string()).ok().as_deref(),
            Some("slurm-7")
        );
    }
}
