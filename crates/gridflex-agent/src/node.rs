//! [`Node`]: the devices and jobs one agent owns, opened from the config (simulator,
//! NVML, processes) or handed in by an embedding program or a test.

use std::collections::HashMap;
use std::sync::Arc;

use gridflex_core::{DeviceId, JobId, TokioClock};
use gridflex_hal::sim::{SimFleet, SimGpuSpec, SimJob, WorkloadProfile};
use gridflex_hal::{PowerDevice, PowerSampleStream, WorkloadControl};

use crate::AgentError;
use crate::config::{AgentConfig, DevicesConfig};
use crate::protocol::{Inventory, JobInfo};

/// One job the node can pause, with the devices it runs on (if known).
#[derive(Clone)]
pub struct NodeJob {
    /// The control.
    pub control: Arc<dyn WorkloadControl>,
    /// Its devices on this node (empty when unknown).
    pub devices: Vec<DeviceId>,
}

/// The devices and jobs of one node.
#[derive(Clone)]
pub struct Node {
    name: String,
    devices: Vec<Arc<dyn PowerDevice>>,
    device_index: HashMap<DeviceId, usize>,
    samplers: HashMap<DeviceId, Arc<dyn PowerSampleStream>>,
    jobs: Vec<NodeJob>,
    job_index: HashMap<JobId, usize>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("devices", &self.devices.len())
            .field("jobs", &self.jobs.len())
            .finish()
    }
}

impl Node {
    /// A node of `devices` and `jobs`; refuses duplicate device or job ids.
    pub fn new(
        name: impl Into<String>,
        devices: Vec<Arc<dyn PowerDevice>>,
        jobs: Vec<NodeJob>,
    ) -> Result<Self, AgentError> {
        let mut device_index = HashMap::new();
        for (i, d) in devices.iter().enumerate() {
            if device_index.insert(d.id().clone(), i).is_some() {
                return Err(AgentError::ConfigField {
                    field: "devices".into(),
                    reason: format!("device {} is listed twice", d.id()),
                });
            }
        }
        let mut job_index = HashMap::new();
        for (i, j) in jobs.iter().enumerate() {
            if job_index.insert(j.control.job().clone(), i).is_some() {
                return Err(AgentError::ConfigField {
                    field: "jobs".into(),
                    reason: format!("job {} is listed twice", j.control.job()),
                });
            }
        }
        Ok(Self {
            name: name.into(),
            devices,
            device_index,
            samplers: HashMap::new(),
            jobs,
            job_index,
        })
    }

    /// A node of devices that also keep high-rate power samples (the simulator,
    /// NVML); the agent serves their samples. Refuses duplicate ids.
    pub fn with_samples(
        name: impl Into<String>,
        devices: Vec<Arc<dyn PowerSampleStream>>,
        jobs: Vec<NodeJob>,
    ) -> Result<Self, AgentError> {
        let plain = devices
            .iter()
            .map(|d| Arc::clone(d) as Arc<dyn PowerDevice>)
            .collect();
        let mut node = Self::new(name, plain, jobs)?;
        node.samplers = devices.into_iter().map(|d| (d.id().clone(), d)).collect();
        Ok(node)
    }

    /// Opens the devices and jobs a config names. The simulator runs on the wall clock
    /// and starts each configured job's simulated workload.
    pub fn from_config(cfg: &AgentConfig) -> Result<Self, AgentError> {
        let hw = |what: &str| {
            let what = what.to_owned();
            move |source| AgentError::Hardware { what, source }
        };
        let job_id = |i: usize, id: &str| {
            JobId::new(id).map_err(|e| AgentError::ConfigField {
                field: format!("jobs[{i}].id"),
                reason: e.to_string(),
            })
        };
        let mut jobs = Vec::new();
        let devices: Vec<Arc<dyn PowerSampleStream>> = match &cfg.devices {
            DevicesConfig::Sim { count } => {
                let clock = Arc::new(TokioClock::real());
                let fleet = SimFleet::new(clock, *count, &SimGpuSpec::h100_sxm())
                    .map_err(hw("simulated GPUs"))?;
                for (i, j) in cfg.jobs.iter().enumerate() {
                    let gpus: Vec<_> = j
                        .gpus
                        .iter()
                        .filter_map(|&g| fleet.gpu(g).cloned())
                        .collect();
                    let devices = gpus.iter().map(|g| g.id().clone()).collect();
                    let kind = j.kind.unwrap_or(gridflex_core::WorkloadKind::Matmul);
                    let job = SimJob::start(job_id(i, &j.id)?, gpus, WorkloadProfile::of(kind))
                        .map_err(hw(&format!("starting simulated job {}", j.id)))?;
                    jobs.push(NodeJob {
                        control: Arc::new(job),
                        devices,
                    });
                }
                fleet
                    .iter()
                    .map(|g| Arc::clone(g) as Arc<dyn PowerSampleStream>)
                    .collect()
            }
            DevicesConfig::Nvml { uuids } => {
                let devices = open_nvml(uuids.as_deref())?;
                for (i, j) in cfg.jobs.iter().enumerate() {
                    jobs.push(NodeJob {
                        control: process_job(job_id(i, &j.id)?, &j.pids, i)?,
                        devices: Vec::new(),
                    });
                }
                devices
            }
        };
        Self::with_samples(cfg.node.clone(), devices, jobs)
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every device.
    pub fn devices(&self) -> &[Arc<dyn PowerDevice>] {
        &self.devices
    }

    /// The device with this id.
    pub fn device(&self, id: &DeviceId) -> Option<&Arc<dyn PowerDevice>> {
        self.device_index.get(id).map(|&i| &self.devices[i])
    }

    /// The sample stream of this device, when it keeps one.
    pub fn sampler(&self, id: &DeviceId) -> Option<&Arc<dyn PowerSampleStream>> {
        self.samplers.get(id)
    }

    /// Every job.
    pub fn jobs(&self) -> &[NodeJob] {
        &self.jobs
    }

    /// The job with this id.
    pub fn job(&self, id: &JobId) -> Option<&Arc<dyn WorkloadControl>> {
        self.job_index.get(id).map(|&i| &self.jobs[i].control)
    }

    /// The inventory as the protocol sends it.
    pub fn inventory(&self, lease_default_ms: u64, lease_max_ms: u64) -> Inventory {
        Inventory {
            node: self.name.clone(),
            devices: self.devices.iter().map(|d| d.info().clone()).collect(),
            sampled: self
                .devices
                .iter()
                .filter(|d| self.samplers.contains_key(d.id()))
                .map(|d| d.id().clone())
                .collect(),
            jobs: self
                .jobs
                .iter()
                .map(|j| JobInfo {
                    job: j.control.job().clone(),
                    devices: j.devices.clone(),
                })
                .collect(),
            lease_default_ms,
            lease_max_ms,
        }
    }
}

#[cfg(feature = "nvml")]
fn open_nvml(uuids: Option<&[String]>) -> Result<Vec<Arc<dyn PowerSampleStream>>, AgentError> {
    use gridflex_hal::nvml::NvmlSystem;
    let hw = |what: &str| {
        let what = what.to_owned();
        move |source| AgentError::Hardware { what, source }
    };
    let system = NvmlSystem::init().map_err(hw("NVML"))?;
    let mut out: Vec<Arc<dyn PowerSampleStream>> = Vec::new();
    match uuids {
        Some(uuids) => {
            for u in uuids {
                let gpu = system
                    .gpu_by_uuid(u)
                    .map_err(hw(&format!("NVML GPU {u}")))?;
                out.push(Arc::new(gpu));
            }
        }
        None => {
            let found = system.discover().map_err(hw("NVML discovery"))?;
            for (index, e) in &found.skipped {
                tracing::warn!(index, error = %e, "NVML GPU skipped");
            }
            out.extend(
                found
                    .gpus
                    .into_iter()
                    .map(|g| Arc::new(g) as Arc<dyn PowerSampleStream>),
            );
        }
    }
    Ok(out)
}

#[cfg(not(feature = "nvml"))]
fn open_nvml(_uuids: Option<&[String]>) -> Result<Vec<Arc<dyn PowerSampleStream>>, AgentError> {
    Err(AgentError::ConfigField {
        field: "devices.backend".into(),
        reason: "`nvml` needs gridflex-agent built with the `nvml` feature".into(),
    })
}

#[cfg(unix)]
fn process_job(job: JobId, pids: &[u32], i: usize) -> Result<Arc<dyn WorkloadControl>, AgentError> {
    let group =
        gridflex_hal::process::ProcessGroup::new(job, pids.iter().copied()).map_err(|e| {
            AgentError::ConfigField {
                field: format!("jobs[{i}].pids"),
                reason: e.to_string(),
            }
        })?;
    Ok(Arc::new(group))
}

#[cfg(not(unix))]
fn process_job(
    _job: JobId,
    _pids: &[u32],
    i: usize,
) -> Result<Arc<dyn WorkloadControl>, AgentError> {
    Err(AgentError::ConfigField {
        field: format!("jobs[{i}].pids"),
        reason: "pausing processes needs a unix system".into(),
    })
}
