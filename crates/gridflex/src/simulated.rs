//! A simulated facility: simulated H100s running jobs, with the matching inventory,
//! ready to hand to an [`Orchestrator`]. Used by the quickstart, the tests and the
//! benches, and by integrators trying rules before touching hardware.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use gridflex::simulated::{JobPlan, SimulatedFacility};
//! use gridflex::planner::{JobClass, WorkloadKind};
//!
//! let t0 = Utc.with_ymd_and_hms(2025, 8, 14, 0, 0, 0).unwrap();
//! let facility = SimulatedFacility::build(t0, &[
//!     JobPlan::new("chat", 8, JobClass::Critical { floor: 0.9 }, WorkloadKind::Inference),
//!     JobPlan::new("train", 16, JobClass::Critical { floor: 0.5 }, WorkloadKind::Pretraining),
//! ])?;
//! assert_eq!(facility.fleet().len(), 24);
//! # Ok::<(), gridflex::GridflexError>(())
//! ```

use std::sync::Arc;

use chrono::{DateTime, Utc};
use gridflex_core::JobId;
use gridflex_core::WorkloadKind;
use gridflex_hal::sim::{SimFleet, SimGpuSpec, SimJob, WorkloadProfile};
use gridflex_hal::{PowerDevice, WorkloadControl};
use gridflex_planner::JobClass;

use crate::GridflexError;
use crate::clock::{Clock, TokioClock};
use crate::inventory::{DeviceHandle, JobEntry};
use crate::orchestrator::{Orchestrator, OrchestratorBuilder};

/// One job to start on the simulated fleet.
#[derive(Debug, Clone)]
pub struct JobPlan {
    /// Job id.
    pub id: String,
    /// GPUs it runs on.
    pub gpus: usize,
    /// Its service class.
    pub class: JobClass,
    /// Its workload kind (picks the simulator's profile and the planner's curve).
    pub kind: WorkloadKind,
}

impl JobPlan {
    /// A job of `gpus` GPUs.
    pub fn new(id: impl Into<String>, gpus: usize, class: JobClass, kind: WorkloadKind) -> Self {
        Self {
            id: id.into(),
            gpus,
            class,
            kind,
        }
    }
}

/// Simulated GPUs with jobs running on them.
#[derive(Debug, Clone)]
pub struct SimulatedFacility {
    clock: TokioClock,
    fleet: SimFleet,
    jobs: Vec<(JobEntry, Arc<SimJob>)>,
}

impl SimulatedFacility {
    /// Builds H100-class GPUs for the jobs (in order) and starts each job's workload,
    /// all reading a [`TokioClock`] that starts at `start` (see [`Self::clock`]).
    pub fn build(start: DateTime<Utc>, jobs: &[JobPlan]) -> Result<Self, GridflexError> {
        let total: usize = jobs.iter().map(|j| j.gpus).sum();
        let clock = TokioClock::starting_at(start);
        let fleet = SimFleet::new(Arc::new(clock.clone()), total, &SimGpuSpec::h100_sxm())
            .map_err(|e| GridflexError::invalid("simulated fleet", e.to_string()))?;
        let mut next = 0;
        let mut bound = Vec::with_capacity(jobs.len());
        for plan in jobs {
            let id = JobId::new(plan.id.clone())?;
            let gpus: Vec<_> = fleet.iter().skip(next).take(plan.gpus).cloned().collect();
            next += plan.gpus;
            let devices = gpus.iter().map(|g| g.info().id.clone()).collect();
            // One kind, one curve: what the planner predicts for a cap is what the
            // simulated GPUs deliver.
            let profile = WorkloadProfile::of(plan.kind);
            let job =
                SimJob::start(id.clone(), gpus, profile).map_err(|e| GridflexError::Workload {
                    job: id.clone(),
                    source: e,
                })?;
            bound.push((
                JobEntry::new(id, devices, plan.class.clone(), plan.kind),
                Arc::new(job),
            ));
        }
        Ok(Self {
            clock,
            fleet,
            jobs: bound,
        })
    }

    /// The simulated GPUs.
    pub fn fleet(&self) -> &SimFleet {
        &self.fleet
    }

    /// The jobs with their inventory entries.
    pub fn jobs(&self) -> &[(JobEntry, Arc<SimJob>)] {
        &self.jobs
    }

    /// The clock the simulated GPUs read (virtual when tokio's time is paused); hand
    /// it to the orchestrator and the signal sources.
    pub fn clock(&self) -> TokioClock {
        self.clock.clone()
    }

    /// An orchestrator builder with every GPU and job registered.
    pub fn orchestrator<C: Clock>(&self, clock: C) -> OrchestratorBuilder<C> {
        let mut builder = Orchestrator::builder(clock)
            .devices(self.fleet.iter().cloned().map(DeviceHandle::with_samples));
        for (entry, job) in &self.jobs {
            let control: Arc<dyn WorkloadControl> = job.clone();
            builder = builder.job(entry.clone(), Some(control));
        }
        builder
    }
}

/// Synthetic CAISO-shaped prices ($/MWh) for `days` days from `start` at `step`: the
/// shape of recorded SP15 day-ahead prices on a spring or summer day with much solar
/// (the "duck"): moderate at night, falling through the morning to negative prices
/// around local noon (Pacific daylight time, UTC−7), an evening peak around 19:00
/// local. **Not recorded data**: the hourly shape is fixed, each day varies it
/// deterministically from `seed` (the midday bottom, from about +10 to −55 $/MWh; the
/// evening peak, about 125 to 180 $/MWh), and 5-minute values are interpolated with a
/// small wiggle. For demonstrations, tests and benches.
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex::simulated::caiso_shaped_prices;
///
/// let day = Utc.with_ymd_and_hms(2025, 4, 14, 7, 0, 0).unwrap(); // local midnight
/// let prices = caiso_shaped_prices(day, 1, TimeDelta::minutes(5), 1)?;
/// assert_eq!(prices.len(), 288);
/// let noon = prices.at(day + TimeDelta::hours(12))?.unwrap();
/// let evening = prices.at(day + TimeDelta::hours(19))?.unwrap();
/// assert!(noon.as_per_megawatt_hour() < 10.0 && evening.as_per_megawatt_hour() > 100.0);
/// # Ok::<(), gridflex::GridflexError>(())
/// ```
pub fn caiso_shaped_prices(
    start: DateTime<Utc>,
    days: usize,
    step: chrono::TimeDelta,
    seed: u64,
) -> Result<gridflex_core::IntervalSeries<gridflex_core::Price>, GridflexError> {
    use gridflex_core::{IntervalSeries, Price};
    // Local hour (PDT) -> $/MWh, before the day's variation.
    const SHAPE: [f64; 25] = [
        38.0, 34.0, 32.0, 31.0, 32.0, 36.0, 44.0, 36.0, 20.0, 6.0, -4.0, -10.0, -14.0, -12.0, -6.0,
        6.0, 26.0, 55.0, 95.0, 150.0, 125.0, 85.0, 58.0, 44.0, 38.0,
    ];
    let step_s = step.num_seconds();
    if step_s <= 0 || 3600 % step_s != 0 {
        return Err(GridflexError::Invalid {
            field: "step".into(),
            reason: "must divide an hour".into(),
        });
    }
    if days == 0 || days > 366 {
        return Err(GridflexError::Invalid {
            field: "days".into(),
            reason: "must be 1 to 366".into(),
        });
    }
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((x >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let per_day = (86_400 / step_s) as usize;
    let mut values = Vec::with_capacity(per_day * days);
    for _ in 0..days {
        let depth = 0.3 + 1.9 * next(); // scales the midday dip
        let peak = 0.75 + 0.55 * next(); // scales the evening peak
        for k in 0..per_day {
            // Hours since local midnight (the series starts at UTC `start`).
            let h_utc = (start + step * k as i32).timestamp().rem_euclid(86_400) as f64 / 3600.0;
            let h = (h_utc - 7.0).rem_euclid(24.0);
            let i = h.floor() as usize;
            let f = h - h.floor();
            let base = SHAPE[i] * (1.0 - f) + SHAPE[i + 1] * f;
            let v = if base < 20.0 && (8.0..16.0).contains(&h) {
                20.0 - (20.0 - base) * depth
            } else if base > 60.0 {
                60.0 + (base - 60.0) * peak
            } else {
                base
            };
            let wiggle = 3.0 * (next() - 0.5);
            values.push(Price::per_megawatt_hour(v + wiggle)?);
        }
    }
    Ok(IntervalSeries::from_values(start, step, values)?)
}

#[cfg(test)]
mod built_outside_a_runtime {
    use super::*;
    use crate::prelude::*;

    /// A facility built before the runtime exists (a fixture built before `block_on`)
    /// runs its workloads once time moves in the runtime.
    #[test]
    fn workloads_run_once_time_moves() {
        let t0 = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 8, 14, 16, 0, 0).unwrap();
        let plan = [JobPlan::new(
            "train",
            8,
            JobClass::Flexible {
                floor: 0.5,
                max_pause: std::time::Duration::from_secs(600),
            },
            WorkloadKind::Pretraining,
        )];
        let facility = SimulatedFacility::build(t0, &plan).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let (power, reported) = runtime.block_on(async {
            let _ = facility.clock().now();
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            let gpu = facility.fleet().iter().next().cloned().unwrap();
            let t = gpu.telemetry().await.unwrap();
            (facility.fleet().true_power_total(), t.power_average)
        });
        assert!(power > power!(4 kW), "8 GPUs training draw {power}");
        assert!(reported > Some(power!(400 W)), "telemetry {reported:?}");
    }
}
