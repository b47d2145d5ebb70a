//! The live inventory: jobs and devices that arrive and leave while the orchestrator
//! runs. A job that arrives mid-event is planned in under the current target; one that
//! leaves is given back first and the event re-planned without it.

use super::*;

impl<C: Clock> Orchestrator<C> {
    /// Adds a job on registered devices no other job uses; mid-event, re-plans the
    /// event with it (from fresh telemetry, so its draw is known).
    pub async fn add_job(
        &mut self,
        entry: JobEntry,
        control: Option<Arc<dyn WorkloadControl>>,
    ) -> Result<(), GridflexError> {
        if self.job_index.contains_key(entry.id.as_str()) {
            return Err(GridflexError::invalid(
                format!("jobs[{}]", entry.id),
                "a job with this id is already in the inventory",
            ));
        }
        let claimed: HashMap<&DeviceId, &JobId> = self
            .jobs
            .iter()
            .flat_map(|j| j.devices.iter().map(move |d| (d.id(), &j.entry.id)))
            .collect();
        if let Some((d, other)) = entry
            .devices
            .iter()
            .find_map(|d| claimed.get(d).map(|o| (d, *o)))
        {
            return Err(GridflexError::invalid(
                format!("jobs[{}].devices", entry.id),
                format!("device {d} is already used by job {other}"),
            ));
        }
        self.options.priority.check(&entry)?;
        let mut bound = bind(vec![(entry, control)], &self.all_devices)?;
        let Some(job) = bound.pop() else {
            return Err(GridflexError::invalid("jobs", "nothing to add"));
        };
        let max = job_top(&job);
        let ids: HashSet<&DeviceId> = job.devices.iter().map(DeviceHandle::id).collect();
        self.unassigned.retain(|d| !ids.contains(d.id()));
        let id = JobId::clone(&job.id);
        self.job_index
            .insert(job.entry.id.as_str().to_owned(), self.jobs.len());
        self.jobs.push(job);
        self.state.push(JobState::default());
        self.demand.push(None);
        self.measured.push(None);
        self.job_max.push(max);
        self.fleet_cache = None;
        self.log(AuditEvent::JobAdded { job: id.clone() });
        self.replan_active(Replan::JobAdded { job: id }).await;
        self.emit_deferred();
        Ok(())
    }

    /// Replaces a job's entry; its devices must stay the same. Mid-event, re-plans.
    pub async fn update_job(&mut self, entry: JobEntry) -> Result<(), GridflexError> {
        let Some(&j) = self.job_index.get(entry.id.as_str()) else {
            return Err(GridflexError::UnknownJob { job: entry.id });
        };
        if entry.devices != self.jobs[j].entry.devices {
            return Err(GridflexError::invalid(
                format!("jobs[{}].devices", entry.id),
                "a job's devices cannot change: remove the job and add it again",
            ));
        }
        // Validate as a new job would be (weight, control), without touching anything.
        self.options.priority.check(&entry)?;
        let control = self.jobs[j].control.clone();
        let mut bound = bind(vec![(entry, control)], &self.all_devices)?;
        let Some(job) = bound.pop() else {
            return Err(GridflexError::invalid("jobs", "nothing to update"));
        };
        let id = JobId::clone(&self.jobs[j].id);
        self.jobs[j].entry = job.entry;
        self.fleet_cache = None;
        self.log(AuditEvent::JobUpdated { job: id.clone() });
        self.replan_active(Replan::JobUpdated { job: id }).await;
        self.emit_deferred();
        Ok(())
    }

    /// Removes a job. A job at its pre-event level leaves at once; a curtailed one is
    /// given back first (resumed, its devices' limits restored), and if that fails it
    /// stays, out of every plan, until the retry loop confirms the restore. Mid-event
    /// the event is re-planned without it.
    pub async fn remove_job(&mut self, job: &JobId) -> Result<JobRemoval, GridflexError> {
        let Some(&j) = self.job_index.get(job.as_str()) else {
            return Err(GridflexError::UnknownJob { job: job.clone() });
        };
        let id = JobId::clone(&self.jobs[j].id);
        self.state[j].leaving = true;
        self.fleet_cache = None;
        let removal = if self.state[j].is_clean() {
            self.drop_job(j);
            self.log(AuditEvent::JobRemoved { job: id.clone() });
            self.replan_active(Replan::JobRemoved { job: id }).await;
            JobRemoval::Removed
        } else {
            // The retry path gives a job back to its pre-event level and, for a leaving
            // job, takes it out (and re-plans) once that is confirmed.
            let now = self.clock.now();
            self.fail(j, now);
            if self.retry(j).await {
                JobRemoval::Removed
            } else {
                self.log(AuditEvent::JobLeaving { job: id.clone() });
                self.replan_active(Replan::JobRemoved { job: id }).await;
                JobRemoval::Restoring
            }
        };
        self.emit_deferred();
        Ok(removal)
    }

    /// Takes job `j` out of the inventory: its devices become unassigned (counted as
    /// facility load, never commanded), its retries are dropped.
    pub(super) fn drop_job(&mut self, j: usize) {
        let job = self.jobs.remove(j);
        self.state.remove(j);
        self.demand.remove(j);
        self.measured.remove(j);
        self.job_max.remove(j);
        self.tasks.drop_job(&job.id);
        self.unassigned.extend(job.devices);
        // Its devices were given back just now: their telemetry still averages the
        // curtailed draw. The event is re-planned again once they have settled.
        if self.active.as_ref().is_some_and(|a| !a.restoring) {
            let at = self.clock.now() + SETTLE;
            let reason = Replan::JobRemoved {
                job: JobId::clone(&job.id),
            };
            self.schedule(at, Task::Replan { reason });
        }
        self.job_index = self
            .jobs
            .iter()
            .enumerate()
            .map(|(j, b)| (b.entry.id.as_str().to_owned(), j))
            .collect();
        self.fleet_cache = None;
    }

    /// Registers a device no job uses yet.
    pub fn add_device(&mut self, device: DeviceHandle) -> Result<(), GridflexError> {
        if self.all_devices.iter().any(|d| d.id() == device.id()) {
            return Err(GridflexError::invalid(
                "devices",
                format!("device {} is registered twice", device.id()),
            ));
        }
        self.log(AuditEvent::DeviceAdded {
            device: device.id().clone(),
        });
        self.all_devices.push(device.clone());
        self.unassigned.push(device);
        self.fleet_cache = None;
        self.emit_deferred();
        Ok(())
    }

    /// Unregisters a device that no job uses.
    pub fn remove_device(&mut self, device: &DeviceId) -> Result<(), GridflexError> {
        if let Some(job) = self
            .jobs
            .iter()
            .find(|j| j.devices.iter().any(|d| d.id() == device))
        {
            return Err(GridflexError::invalid(
                "devices",
                format!(
                    "device {device} is used by job {}: remove the job first",
                    job.entry.id
                ),
            ));
        }
        let before = self.all_devices.len();
        self.all_devices.retain(|d| d.id() != device);
        if self.all_devices.len() == before {
            return Err(GridflexError::invalid(
                "devices",
                format!("device {device} is not registered"),
            ));
        }
        self.unassigned.retain(|d| d.id() != device);
        self.fleet_cache = None;
        self.log(AuditEvent::DeviceRemoved {
            device: device.clone(),
        });
        self.emit_deferred();
        Ok(())
    }

    /// Re-plans the active event (if it is curtailing) after the inventory changed.
    pub(super) async fn replan_active(&mut self, why: Replan) {
        if let Some(id) = self.active.as_ref().filter(|a| !a.restoring).map(|a| a.id) {
            self.replan(id, why).await;
        }
    }
}

/// How long a device given back takes to read its uncurtailed draw again: the
/// averaged telemetry (1 s on NVML and the simulator) after the restore transient.
pub(super) const SETTLE: TimeDelta = TimeDelta::seconds(3);

/// The lowest limit found at discovery among a job's devices: a cap at or above it is
/// a restore.
pub(super) fn job_top(job: &BoundJob) -> Power {
    job.devices
        .iter()
        .map(|d| d.device.info().limit_at_discovery)
        .reduce(Power::min)
        .unwrap_or(Power::ZERO)
}
