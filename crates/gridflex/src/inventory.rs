//! The job inventory the integrator supplies: which jobs run on which devices, their
//! service class, and how to pause them.
//!
//! The orchestrator curtails jobs, not devices (a synchronous job runs at its slowest
//! GPU's pace), so every device command is derived from a job's level. Devices that no
//! job claims still count in facility power but are never commanded.

use std::sync::Arc;

use gridflex_core::{DeviceId, JobId, Power, power};
use gridflex_core::{ThroughputCurve, WorkloadKind};
use gridflex_hal::{PowerDevice, PowerSampleStream, WorkloadControl};
use gridflex_planner::JobClass;
use serde::{Deserialize, Serialize};

use crate::GridflexError;

/// A device the orchestrator may command, with its optional 20 ms sample stream
/// (used to measure response times at the hardware's resolution).
#[derive(Clone)]
pub struct DeviceHandle {
    pub(crate) device: Arc<dyn PowerDevice>,
    pub(crate) samples: Option<Arc<dyn PowerSampleStream>>,
}

impl std::fmt::Debug for DeviceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceHandle")
            .field("id", self.device.id())
            .field("samples", &self.samples.is_some())
            .finish()
    }
}

impl DeviceHandle {
    /// A device with telemetry only.
    pub fn new(device: Arc<dyn PowerDevice>) -> Self {
        Self {
            device,
            samples: None,
        }
    }

    /// A device that also streams high-rate power samples.
    pub fn with_samples<D: PowerSampleStream + 'static>(device: Arc<D>) -> Self {
        Self {
            device: device.clone(),
            samples: Some(device),
        }
    }

    /// The device's id.
    pub fn id(&self) -> &DeviceId {
        self.device.id()
    }
}

/// One job of the inventory (serde: the integrator may load these from a file).
///
/// ```
/// use gridflex::core::{DeviceId, JobId};
/// use gridflex::inventory::JobEntry;
/// use gridflex::planner::{JobClass, WorkloadKind};
///
/// let job = JobEntry::new(JobId::new("chat-api")?, vec![DeviceId::new("GPU-0")?],
///     JobClass::Critical { floor: 0.9 }, WorkloadKind::Inference);
/// assert_eq!(job.weight, 1.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobEntry {
    /// The job.
    pub id: JobId,
    /// The devices it runs on (all curtailed alike).
    pub devices: Vec<DeviceId>,
    /// Its service class (a hard limit for the planner).
    pub class: JobClass,
    /// Its workload kind, which picks the default throughput-vs-cap curve.
    pub kind: WorkloadKind,
    /// A measured curve that replaces the default, if the integrator has one.
    #[serde(default)]
    pub curve: Option<ThroughputCurve>,
    /// Relative value of its throughput (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// Power per GPU while paused (default 125 W: a paused CUDA process on the measured
    /// H100 drew 120 to 145 W, `calibration/README.md`).
    #[serde(default = "paused_default")]
    pub paused_draw_per_gpu: Power,
    /// Never curtailed (default `false`): gridflex leaves the job alone, whatever its
    /// class, and counts its draw as fixed load when it plans. For work the site must
    /// not touch at all (a job under maintenance, a customer's reserved slice).
    #[serde(default)]
    pub pinned: bool,
}

fn one() -> f64 {
    1.0
}

fn paused_default() -> Power {
    power!(125 W)
}

impl JobEntry {
    /// An entry with weight 1, the default curve for `kind` and 125 W paused draw.
    pub fn new(id: JobId, devices: Vec<DeviceId>, class: JobClass, kind: WorkloadKind) -> Self {
        Self {
            id,
            devices,
            class,
            kind,
            curve: None,
            weight: 1.0,
            paused_draw_per_gpu: paused_default(),
            pinned: false,
        }
    }

    /// An entry for the job `control` pauses and resumes, with its id taken from the
    /// control (so it is written once), weight 1, the default curve for `kind` and
    /// 125 W paused draw.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use gridflex::core::{DeviceId, JobId};
    /// use gridflex::hal::process::ProcessGroup;
    /// use gridflex::inventory::JobEntry;
    /// use gridflex::planner::{JobClass, WorkloadKind};
    ///
    /// let control = Arc::new(ProcessGroup::new(JobId::new("render-farm")?, [41_000, 41_001])?);
    /// let entry = JobEntry::for_control(&*control, vec![DeviceId::new("GPU-0")?],
    ///     JobClass::Critical { floor: 0.5 }, WorkloadKind::Inference);
    /// assert_eq!(entry.id.as_str(), "render-farm");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_control(
        control: &dyn WorkloadControl,
        devices: Vec<DeviceId>,
        class: JobClass,
        kind: WorkloadKind,
    ) -> Self {
        Self::new(control.job().clone(), devices, class, kind)
    }

    /// The throughput curve the planner uses for this job.
    pub fn throughput_curve(&self) -> ThroughputCurve {
        self.curve
            .clone()
            .unwrap_or_else(|| self.kind.default_curve())
    }
}

/// A job bound to its devices and (optionally) its workload control.
#[derive(Clone)]
pub(crate) struct BoundJob {
    pub(crate) entry: JobEntry,
    /// The id, shared with every planner action and audit record about this job.
    pub(crate) id: Arc<JobId>,
    pub(crate) devices: Vec<DeviceHandle>,
    pub(crate) control: Option<Arc<dyn WorkloadControl>>,
}

impl BoundJob {
    /// A job without a workload control cannot be paused; the planner sees it as
    /// critical with no throughput floor (capped, never paused).
    pub(crate) fn planner_class(&self) -> JobClass {
        match (&self.control, &self.entry.class) {
            (None, JobClass::Flexible { .. } | JobClass::Deferrable { .. }) => {
                JobClass::Critical { floor: 0.0 }
            }
            (_, class) => class.clone(),
        }
    }
}

/// Binds entries to registered devices and controls, checking every reference.
pub(crate) fn bind(
    entries: Vec<(JobEntry, Option<Arc<dyn WorkloadControl>>)>,
    devices: &[DeviceHandle],
) -> Result<Vec<BoundJob>, GridflexError> {
    let mut claimed: std::collections::HashMap<&DeviceId, &JobId> =
        std::collections::HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (entry, control) in &entries {
        if entry.devices.is_empty() {
            return Err(GridflexError::invalid(
                format!("jobs[{}].devices", entry.id),
                "must not be empty",
            ));
        }
        if let Some(c) = control
            && c.job() != &entry.id
        {
            return Err(GridflexError::invalid(
                format!("jobs[{}].control", entry.id),
                format!("the workload control is for job {}", c.job()),
            ));
        }
        if !(entry.weight.is_finite() && entry.weight >= 0.0) {
            return Err(GridflexError::invalid(
                format!("jobs[{}].weight", entry.id),
                "must be a finite non-negative number",
            ));
        }
        let mut handles = Vec::with_capacity(entry.devices.len());
        for id in &entry.devices {
            let handle = devices.iter().find(|d| d.id() == id).ok_or_else(|| {
                GridflexError::UnknownDevice {
                    job: entry.id.clone(),
                    device: id.clone(),
                }
            })?;
            if let Some(other) = claimed.insert(id, &entry.id) {
                return Err(GridflexError::invalid(
                    format!("jobs[{}].devices", entry.id),
                    format!("device {id} is already used by job {other}"),
                ));
            }
            handles.push(handle.clone());
        }
        out.push(BoundJob {
            id: Arc::new(entry.id.clone()),
            entry: entry.clone(),
            devices: handles,
            control: control.clone(),
        });
    }
    let mut ids: Vec<&JobId> = entries.iter().map(|(e, _)| &e.id).collect();
    ids.sort();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(GridflexError::invalid(
            "jobs",
            format!("job {} appears twice", w[0]),
        ));
    }
    Ok(out)
}
