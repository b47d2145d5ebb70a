//! The fleet snapshot: jobs with their service classes, power ranges and throughput
//! curves, and the facility model that turns GPU power into metered power.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gridflex_core::{JobId, Power};
use serde::{Deserialize, Serialize};

use crate::{PlannerError, ThroughputCurve};

/// Largest per-GPU power accepted (100 kW): far above any accelerator, small enough
/// that fleet totals stay exact in `f64`.
const MAX_GPU_WATTS: f64 = 1e5;
/// Largest GPU count of one job.
const MAX_GPUS: u32 = 1_000_000;

/// A job's service class: the hard limits the planner must keep (`DESIGN.md`, "Service
/// levels are hard limits").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum JobClass {
    /// Latency-bound work (inference): never paused, throughput never below `floor`.
    Critical {
        /// Minimum throughput fraction in `[0, 1]`.
        floor: f64,
    },
    /// Training: throughput never below `floor` while running; may be paused for at most
    /// `max_pause` in one stretch.
    Flexible {
        /// Minimum throughput fraction in `[0, 1]` while running.
        floor: f64,
        /// Longest allowed pause (JSON: `max_pause_s`, seconds).
        #[serde(rename = "max_pause_s", with = "gridflex_core::duration_s::std")]
        max_pause: Duration,
    },
    /// Batch work: may be stopped, but must be running again by `deadline`.
    Deferrable {
        /// When the job must be running again (RFC 3339, UTC).
        deadline: DateTime<Utc>,
    },
}

impl JobClass {
    /// The throughput floor while running (0 for deferrable jobs).
    pub fn floor(&self) -> f64 {
        match self {
            Self::Critical { floor } | Self::Flexible { floor, .. } => *floor,
            Self::Deferrable { .. } => 0.0,
        }
    }

    fn validate(&self) -> Result<(), PlannerError> {
        let f = self.floor();
        if !(f.is_finite() && (0.0..=1.0).contains(&f)) {
            return Err(PlannerError::invalid(
                "floor",
                format!("a throughput floor must be in [0, 1], got {f}"),
            ));
        }
        Ok(())
    }
}

/// The per-GPU power-limit range a device accepts (NVML min/max limit; 200-700 W on an
/// H100 SXM, `calibration/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapRange {
    /// Lowest settable cap.
    pub min: Power,
    /// Highest settable cap (the restore value).
    pub max: Power,
}

/// The plain description of a job, as read from JSON; [`Job::new`] validates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The job's id.
    pub id: JobId,
    /// Number of GPUs; one level is applied to all of them.
    pub gpus: u32,
    /// Per-GPU draw at full throughput with no cap binding (watts in JSON).
    pub draw_per_gpu: Power,
    /// The devices' cap range.
    pub cap_range: CapRange,
    /// Per-GPU draw while the job is paused (120-145 W measured on an H100).
    pub paused_draw_per_gpu: Power,
    /// Throughput-vs-power curve; a kind name or `[[x, y], ...]`. Default `"generic"`.
    #[serde(default)]
    pub curve: ThroughputCurve,
    /// Value of one GPU's full throughput of this job, relative to other jobs. Default 1.
    #[serde(default = "one")]
    pub weight: f64,
    /// Service class.
    pub class: JobClass,
}

fn one() -> f64 {
    1.0
}

/// A validated job.
///
/// ```
/// use gridflex_core::{JobId, Power};
/// use gridflex_planner::{CapRange, Job, JobClass, JobSpec, ThroughputCurve};
/// let job = Job::new(JobSpec {
///     id: JobId::new("llm-train")?,
///     gpus: 64,
///     draw_per_gpu: Power::watts(690.0)?,
///     cap_range: CapRange { min: Power::watts(200.0)?, max: Power::watts(700.0)? },
///     paused_draw_per_gpu: Power::watts(130.0)?,
///     curve: ThroughputCurve::default(),
///     weight: 1.0,
///     class: JobClass::Critical { floor: 0.9 },
/// })?;
/// assert_eq!(job.gpus(), 64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    spec: JobSpec,
    /// The id, shared with every plan action that names this job (cheap to clone).
    shared_id: Arc<JobId>,
}

impl Serialize for Job {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.spec.serialize(s)
    }
}

fn check_watts(field: &str, p: Power, allow_zero: bool) -> Result<(), PlannerError> {
    let w = p.as_watts();
    let ok = if allow_zero { w >= 0.0 } else { w > 0.0 };
    if ok && w <= MAX_GPU_WATTS {
        Ok(())
    } else {
        let lo = if allow_zero { "[0" } else { "(0" };
        Err(PlannerError::invalid(
            field,
            format!("per-GPU power must be in {lo}, {MAX_GPU_WATTS} W], got {p}"),
        ))
    }
}

impl Job {
    /// Validates a job description; errors name the field (`gpus`, `cap_range.min`, ...).
    pub fn new(spec: JobSpec) -> Result<Self, PlannerError> {
        if spec.gpus == 0 || spec.gpus > MAX_GPUS {
            return Err(PlannerError::invalid(
                "gpus",
                format!("must be in 1..={MAX_GPUS}, got {}", spec.gpus),
            ));
        }
        check_watts("cap_range.min", spec.cap_range.min, true)?;
        check_watts("cap_range.max", spec.cap_range.max, false)?;
        if spec.cap_range.min > spec.cap_range.max {
            return Err(PlannerError::invalid(
                "cap_range.min",
                format!(
                    "must not exceed cap_range.max ({} > {})",
                    spec.cap_range.min, spec.cap_range.max
                ),
            ));
        }
        check_watts("draw_per_gpu", spec.draw_per_gpu, false)?;
        if spec.draw_per_gpu > spec.cap_range.max {
            return Err(PlannerError::invalid(
                "draw_per_gpu",
                format!(
                    "{} is above cap_range.max {}; pass the draw clipped to the cap",
                    spec.draw_per_gpu, spec.cap_range.max
                ),
            ));
        }
        check_watts("paused_draw_per_gpu", spec.paused_draw_per_gpu, true)?;
        if !(spec.weight.is_finite() && spec.weight >= 0.0 && spec.weight <= 1e9) {
            return Err(PlannerError::invalid(
                "weight",
                format!("must be a finite number in [0, 1e9], got {}", spec.weight),
            ));
        }
        spec.class.validate().map_err(|e| e.within("class"))?;
        crate::validate_curve(&spec.curve).map_err(|e| e.within("curve"))?;
        let shared_id = Arc::new(spec.id.clone());
        Ok(Self { spec, shared_id })
    }

    /// The description it was built from.
    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }
    /// The id as shared by the plan's actions and outcomes.
    pub fn shared_id(&self) -> &Arc<JobId> {
        &self.shared_id
    }
    /// The job's id.
    pub fn id(&self) -> &JobId {
        &self.spec.id
    }
    /// Number of GPUs.
    pub fn gpus(&self) -> u32 {
        self.spec.gpus
    }
    /// Per-GPU draw at full throughput.
    pub fn draw_per_gpu(&self) -> Power {
        self.spec.draw_per_gpu
    }
    /// The devices' cap range.
    pub fn cap_range(&self) -> CapRange {
        self.spec.cap_range
    }
    /// Per-GPU draw while paused.
    pub fn paused_draw_per_gpu(&self) -> Power {
        self.spec.paused_draw_per_gpu
    }
    /// Throughput curve.
    pub fn curve(&self) -> &ThroughputCurve {
        &self.spec.curve
    }
    /// Weight.
    pub fn weight(&self) -> f64 {
        self.spec.weight
    }
    /// Service class.
    pub fn class(&self) -> &JobClass {
        &self.spec.class
    }
}

impl<'de> Deserialize<'de> for Job {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Job::new(JobSpec::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Facility power as a function of GPU power: `fixed + multiplier * gpu_power`.
///
/// `fixed` holds the rest of the IT load and the constant part of cooling and losses;
/// `multiplier` (at least 1, like a PUE) scales GPU power for the cooling and
/// conversion losses that follow it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilityModel {
    /// Power that does not change with GPU power.
    pub fixed: Power,
    /// Facility watts per GPU watt.
    pub multiplier: f64,
}

impl FacilityModel {
    /// Validates: `fixed >= 0`, `multiplier` finite in `[1, 10]`.
    pub fn new(fixed: Power, multiplier: f64) -> Result<Self, PlannerError> {
        let m = Self { fixed, multiplier };
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), PlannerError> {
        if self.fixed.is_negative() {
            return Err(PlannerError::invalid(
                "fixed",
                format!("must not be negative, got {}", self.fixed),
            ));
        }
        if !(self.multiplier.is_finite() && (1.0..=10.0).contains(&self.multiplier)) {
            return Err(PlannerError::invalid(
                "multiplier",
                format!("must be in [1, 10], got {}", self.multiplier),
            ));
        }
        Ok(())
    }

    /// Facility power for a total GPU power; `None` when the multiplier (a public
    /// field, validated by [`FacilityModel::new`] only) makes the product invalid.
    pub fn facility_power(&self, gpu_power: Power) -> Option<Power> {
        Some(self.fixed + gpu_power.checked_mul(self.multiplier)?)
    }
}

/// A snapshot of the fleet: its jobs and the facility model.
///
/// ```
/// use gridflex_core::Power;
/// use gridflex_planner::{FacilityModel, Fleet};
/// let fleet = Fleet::new(Vec::new(), FacilityModel::new(Power::kilowatts(50.0)?, 1.2)?)?;
/// assert_eq!(fleet.current_facility_power(), Some(Power::kilowatts(50.0)?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fleet {
    facility: FacilityModel,
    jobs: Vec<Job>,
}

impl Fleet {
    /// Builds a fleet; job ids must be unique.
    pub fn new(jobs: Vec<Job>, facility: FacilityModel) -> Result<Self, PlannerError> {
        facility.validate().map_err(|e| e.within("facility"))?;
        let mut ids: Vec<(&JobId, usize)> =
            jobs.iter().enumerate().map(|(i, j)| (j.id(), i)).collect();
        ids.sort_unstable();
        for w in ids.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(PlannerError::DuplicateJob {
                    index: w[0].1.max(w[1].1),
                    id: w[1].0.clone(),
                });
            }
        }
        Ok(Self { facility, jobs })
    }

    /// Validates job descriptions, naming a bad field as `jobs[i].field`.
    pub fn from_specs(specs: Vec<JobSpec>, facility: FacilityModel) -> Result<Self, PlannerError> {
        let jobs = specs
            .into_iter()
            .enumerate()
            .map(|(i, s)| Job::new(s).map_err(|e| e.within(&format!("jobs[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(jobs, facility)
    }

    /// The jobs, in input order (the planner's tie-break order).
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// The facility model.
    pub fn facility(&self) -> FacilityModel {
        self.facility
    }

    /// Total GPU count.
    pub fn gpus(&self) -> u64 {
        self.jobs.iter().map(|j| u64::from(j.gpus())).sum()
    }

    /// Predicted facility power with every job at its uncapped draw; `None` when the
    /// facility model's multiplier makes it invalid (see [`FacilityModel::facility_power`]).
    pub fn current_facility_power(&self) -> Option<Power> {
        let gpu = self
            .jobs
            .iter()
            .map(|j| j.draw_per_gpu().checked_mul(f64::from(j.gpus())))
            .sum::<Option<Power>>()?;
        self.facility.facility_power(gpu)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    facility: FacilityModel,
    jobs: Vec<JobSpec>,
}

impl<'de> Deserialize<'de> for Fleet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawFleet::deserialize(d)?;
        Fleet::from_specs(raw.jobs, raw.facility).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> JobSpec {
        JobSpec {
            id: JobId::new(id).unwrap(),
            gpus: 8,
            draw_per_gpu: Power::watts(680.0).unwrap(),
            cap_range: CapRange {
                min: Power::watts(200.0).unwrap(),
                max: Power::watts(700.0).unwrap(),
            },
            paused_draw_per_gpu: Power::watts(130.0).unwrap(),
            curve: ThroughputCurve::default(),
            weight: 1.0,
            class: JobClass::Flexible {
                floor: 0.5,
                max_pause: Duration::from_secs(600),
            },
        }
    }

    fn facility() -> FacilityModel {
        FacilityModel::new(Power::kilowatts(10.0).unwrap(), 1.3).unwrap()
    }

    #[test]
    fn errors_name_the_field() {
        let mut s = spec("a");
        s.gpus = 0;
        let e = Fleet::from_specs(vec![spec("ok"), s], facility()).unwrap_err();
        assert_eq!(e.field(), Some("jobs[1].gpus"));

        let mut s = spec("a");
        s.cap_range.min = Power::watts(800.0).unwrap();
        assert_eq!(Job::new(s).unwrap_err().field(), Some("cap_range.min"));

        let mut s = spec("a");
        s.draw_per_gpu = Power::watts(701.0).unwrap();
        assert_eq!(Job::new(s).unwrap_err().field(), Some("draw_per_gpu"));

        let mut s = spec("a");
        s.class = JobClass::Critical { floor: 1.5 };
        assert_eq!(Job::new(s).unwrap_err().field(), Some("class.floor"));

        let mut s = spec("a");
        s.weight = -1.0;
        assert_eq!(Job::new(s).unwrap_err().field(), Some("weight"));

        let e = FacilityModel::new(Power::ZERO, 0.9).unwrap_err();
        assert_eq!(e.field(), Some("multiplier"));
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let e = Fleet::from_specs(vec![spec("a"), spec("b"), spec("a")], facility()).unwrap_err();
        assert!(
            matches!(e, PlannerError::DuplicateJob { index: 2, .. }),
            "{e}"
        );
    }

    #[test]
    fn json_round_trip_and_errors() {
        let fleet = Fleet::from_specs(vec![spec("a"), spec("b")], facility()).unwrap();
        let s = serde_json::to_string(&fleet).unwrap();
        let back: Fleet = serde_json::from_str(&s).unwrap();
        assert_eq!(back, fleet);
        let bad = s.replacen("\"gpus\":8", "\"gpus\":0", 1);
        let e = serde_json::from_str::<Fleet>(&bad).unwrap_err().to_string();
        assert!(e.contains("jobs[0].gpus"), "{e}");
        let cur = fleet.current_facility_power().unwrap().as_watts();
        assert!((cur - (10_000.0 + 1.3 * 16.0 * 680.0)).abs() < 1e-6);
    }
}
