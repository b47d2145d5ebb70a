//! [`Inventory`]: the cluster's live jobs with their devices and classes, and the
//! [`InventoryDiff`] between two of them (jobs started, ended, changed).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use gridflex_core::{DeviceId, JobId};
use serde::Serialize;

use crate::SlurmError;
use crate::devices::DeviceMap;
use crate::job::{SlurmJob, gridflex_id};
use crate::policy::{Policy, SlaClass};

/// One live job: Slurm's view, gridflex's id, its devices and its class.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct InventoryJob {
    /// The job as Slurm describes it.
    pub job: SlurmJob,
    /// gridflex's id for it (`slurm-<id>`).
    pub id: JobId,
    /// Its GPUs as device ids, in [`SlurmJob::gpus`] order.
    pub devices: Vec<DeviceId>,
    /// Its class under site policy.
    pub class: SlaClass,
    /// The policy rule that gave the class (`None`: no rule, or pinned for a problem).
    pub rule: Option<usize>,
}

/// The live jobs (pending, running, suspended) of the cluster at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Inventory {
    taken_at: Option<DateTime<Utc>>,
    jobs: BTreeMap<u32, InventoryJob>,
}

/// What changed between two inventories.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct InventoryDiff {
    /// Jobs in the newer inventory only.
    pub started: Vec<InventoryJob>,
    /// Jobs in the older inventory only (finished, cancelled, or gone from the queue).
    pub ended: Vec<JobId>,
    /// Jobs in both whose state, devices or class differ (as they are now).
    pub changed: Vec<InventoryJob>,
    /// Set by [`JobSync`](crate::JobSync) on the first good refresh after failed ones:
    /// every job was planned as pinned meanwhile, so the caller re-applies every class
    /// (from [`JobSync::planning_view`](crate::JobSync::planning_view)), not only the
    /// changed ones.
    pub recovered: bool,
}

impl InventoryDiff {
    /// Whether nothing changed (and the refresh did not follow an outage).
    pub fn is_empty(&self) -> bool {
        self.started.is_empty()
            && self.ended.is_empty()
            && self.changed.is_empty()
            && !self.recovered
    }
}

impl Inventory {
    /// Builds the inventory from parsed jobs: keeps live jobs, maps their GPUs through
    /// `devices` and classifies them under `policy` at `now`.
    ///
    /// A job seen in `previous` keeps its class while the fields policy reads are
    /// unchanged, so a deadline drawn from a window is fixed when the job is first seen
    /// (it does not slide with every refresh); a kept deadline that has passed makes the
    /// job critical. A GPU the map cannot name pins its job.
    pub fn build(
        jobs: Vec<SlurmJob>,
        policy: &Policy,
        devices: &DeviceMap,
        now: DateTime<Utc>,
        previous: Option<&Inventory>,
    ) -> Result<Self, SlurmError> {
        let mut out = BTreeMap::new();
        for mut job in jobs.into_iter().filter(|j| j.state.is_live()) {
            let id = gridflex_id(job.id)?;
            let mapped: Result<Vec<DeviceId>, SlurmError> =
                job.gpus.iter().map(|g| devices.device(g)).collect();
            let devices = match mapped {
                Ok(d) => d,
                Err(e) => {
                    job.problem = Some(e.to_string());
                    Vec::new()
                }
            };
            let kept = previous
                .and_then(|p| p.jobs.get(&job.id))
                .filter(|old| same_policy_inputs(&old.job, &job) && old.job.problem == job.problem);
            let (class, rule) = match kept {
                Some(old) => match old.class {
                    SlaClass::Deferrable { deadline } if deadline <= now => {
                        (SlaClass::UNMATCHED, old.rule)
                    }
                    ref c => (c.clone(), old.rule),
                },
                None => policy.classify(&job, now),
            };
            out.insert(
                job.id,
                InventoryJob {
                    job,
                    id,
                    devices,
                    class,
                    rule,
                },
            );
        }
        Ok(Self {
            taken_at: Some(now),
            jobs: out,
        })
    }

    /// Parses `squeue --json` output and builds the inventory ([`Inventory::build`]).
    pub fn from_squeue_json(
        json: &[u8],
        policy: &Policy,
        devices: &DeviceMap,
        now: DateTime<Utc>,
        previous: Option<&Inventory>,
    ) -> Result<Self, SlurmError> {
        Self::build(crate::squeue::parse(json)?, policy, devices, now, previous)
    }

    /// When it was taken (`None` for an empty default).
    pub fn taken_at(&self) -> Option<DateTime<Utc>> {
        self.taken_at
    }

    /// The jobs, by Slurm id.
    pub fn jobs(&self) -> impl ExactSizeIterator<Item = &InventoryJob> {
        self.jobs.values()
    }

    /// One job by Slurm id.
    pub fn get(&self, slurm_id: u32) -> Option<&InventoryJob> {
        self.jobs.get(&slurm_id)
    }

    /// The number of jobs.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether there is no job.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// The same jobs, every one pinned: what to plan with while slurmctld cannot be
    /// reached (no job is suspended on information that may be stale).
    pub fn pinned(&self) -> Self {
        let mut out = self.clone();
        for j in out.jobs.values_mut() {
            j.class = SlaClass::Pinned;
        }
        out
    }

    /// What changed from `self` to `newer`.
    pub fn diff(&self, newer: &Inventory) -> InventoryDiff {
        let mut d = InventoryDiff::default();
        for (id, job) in &newer.jobs {
            match self.jobs.get(id) {
                None => d.started.push(job.clone()),
                Some(old)
                    if old.job.state != job.job.state
                        || old.devices != job.devices
                        || old.class != job.class =>
                {
                    d.changed.push(job.clone());
                }
                Some(_) => {}
            }
        }
        d.ended = self
            .jobs
            .iter()
            .filter(|(id, _)| !newer.jobs.contains_key(id))
            .map(|(_, j)| j.id.clone())
            .collect();
        d
    }
}

fn same_policy_inputs(a: &SlurmJob, b: &SlurmJob) -> bool {
    a.partition == b.partition
        && a.qos == b.qos
        && a.account == b.account
        && a.user == b.user
        && a.comment == b.comment
        && a.gres_request == b.gres_request
        && a.time_limit == b.time_limit
        && a.end == b.end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::squeue::MODEL;
    use chrono::TimeDelta;

    fn doc(jobs: serde_json::Value) -> Vec<u8> {
        serde_json::json!({"meta":{"plugin":{"type":MODEL}},"jobs":jobs})
            .to_string()
            .into_bytes()
    }

    fn policy() -> Policy {
        serde_json::from_str(r#"{"rules":[
            {"match":{"partition":"batch"},"class":"deferrable","deadline":{"from":"window","within_s":60}},
            {"match":{"comment_tag":"flex"},"class":"flexible","floor":0.5,"max_pause_s":600}]}"#)
        .unwrap_or_default()
    }

    #[test]
    fn keeps_live_jobs_and_diffs_them() -> Result<(), SlurmError> {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let map = DeviceMap::default();
        let a = Inventory::from_squeue_json(
            &doc(serde_json::json!([
            {"job_id":1,"job_state":"RUNNING","nodes":"n1","gres_detail":["gpu:2(IDX:0-1)"],"comment":"flex"},
            {"job_id":2,"job_state":"PENDING","partition":"batch"},
            {"job_id":3,"job_state":"COMPLETED","nodes":"n1"},
            {"job_id":4,"job_state":"RUNNING","nodes":"n1","gres_detail":["gpu:1(IDX:2)"]}])),
            &policy(),
            &map,
            t0,
            None,
        )?;
        assert_eq!(a.len(), 3);
        let j1 = a.get(1).ok_or(SlurmError::JobGone { job: 1 })?;
        assert_eq!(
            j1.devices.iter().map(DeviceId::as_str).collect::<Vec<_>>(),
            ["n1/gpu0", "n1/gpu1"]
        );
        assert!(matches!(j1.class, SlaClass::Flexible { .. }));
        assert_eq!(a.get(4).map(|j| &j.class), Some(&SlaClass::UNMATCHED));
        let deadline = t0 + TimeDelta::seconds(60);
        assert_eq!(
            a.get(2).map(|j| &j.class),
            Some(&SlaClass::Deferrable { deadline })
        );

        // Later: 1 suspended, 2 running (its window deadline is kept), 4 gone, 5 new.
        let t1 = t0 + TimeDelta::seconds(30);
        let b = Inventory::from_squeue_json(
            &doc(serde_json::json!([
            {"job_id":1,"job_state":"SUSPENDED","nodes":"n1","gres_detail":["gpu:2(IDX:0-1)"],"comment":"flex"},
            {"job_id":2,"job_state":"RUNNING","partition":"batch","nodes":"n1","gres_detail":["gpu:1(IDX:3)"]},
            {"job_id":5,"job_state":"PENDING"}])),
            &policy(),
            &map,
            t1,
            Some(&a),
        )?;
        assert_eq!(
            b.get(2).map(|j| &j.class),
            Some(&SlaClass::Deferrable { deadline })
        );
        let d = a.diff(&b);
        assert_eq!(d.started.iter().map(|j| j.job.id).collect::<Vec<_>>(), [5]);
        assert_eq!(
            d.ended.iter().map(JobId::as_str).collect::<Vec<_>>(),
            ["slurm-4"]
        );
        assert_eq!(
            d.changed.iter().map(|j| j.job.id).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(b.diff(&b).is_empty());

        // Past the kept deadline: critical.
        let t2 = t0 + TimeDelta::seconds(61);
        let c = Inventory::from_squeue_json(
            &doc(serde_json::json!([
            {"job_id":2,"job_state":"RUNNING","partition":"batch","nodes":"n1","gres_detail":["gpu:1(IDX:3)"]}])),
            &policy(),
            &map,
            t2,
            Some(&b),
        )?;
        assert_eq!(c.get(2).map(|j| &j.class), Some(&SlaClass::UNMATCHED));
        assert!(c.pinned().jobs().all(|j| j.class == SlaClass::Pinned));
        Ok(())
    }

    #[test]
    fn an_unmapped_gpu_pins_its_job() -> Result<(), SlurmError> {
        let map = DeviceMap::custom(|g| {
            if g.index < 4 {
                DeviceId::new(format!("GPU-{}", g.index)).ok()
            } else {
                None
            }
        });
        let inv = Inventory::from_squeue_json(
            &doc(serde_json::json!([
            {"job_id":1,"job_state":"RUNNING","nodes":"n1","gres_detail":["gpu:2(IDX:3-4)"],"comment":"flex"}])),
            &policy(),
            &map,
            Utc::now(),
            None,
        )?;
        let j = inv.get(1).ok_or(SlurmError::JobGone { job: 1 })?;
        assert_eq!(j.class, SlaClass::Pinned);
        assert!(j.devices.is_empty());
        assert!(
            j.job
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("GPU 4"))
        );
        Ok(())
    }
}
