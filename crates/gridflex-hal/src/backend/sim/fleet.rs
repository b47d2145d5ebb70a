//! [`SimFleet`]: many simulated GPUs on one clock, cheap to clone and share.

use std::collections::HashMap;
use std::sync::Arc;

use gridflex_core::clock::SharedClock;
use gridflex_core::{DeviceId, Power};

use super::{SimGpu, SimGpuSpec};
use crate::{HalError, PowerDevice, Telemetry};

/// A fleet of simulated GPUs reading one shared clock.
///
/// Cloning is three `Arc` clones; every GPU has its own lock, so commands to different
/// GPUs never contend and the fleet holds no lock of its own.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use gridflex_core::{ManualClock, power};
/// use gridflex_hal::sim::{SimFleet, SimGpuSpec};
///
/// let clock = ManualClock::default();
/// let fleet = SimFleet::new(Arc::new(clock.clone()), 1_000, &SimGpuSpec::h100_sxm())?;
/// for gpu in fleet.iter() {
///     gpu.set_power_limit_now(power!(350 W))?;
/// }
/// clock.advance(Duration::from_secs(1));
/// let mut sweep = Vec::new();
/// fleet.telemetry_into(&mut sweep)?;
/// assert_eq!(sweep.len(), 1_000);
/// assert!((fleet.true_power_total().as_kilowatts() - 84.0).abs() < 1e-6); // all idle
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SimFleet {
    clock: SharedClock,
    gpus: Arc<[Arc<SimGpu>]>,
    index: Arc<HashMap<DeviceId, usize>>,
}

impl SimFleet {
    /// `count` GPUs built from `spec`, numbered from 0, on `clock`.
    pub fn new(clock: SharedClock, count: usize, spec: &SimGpuSpec) -> Result<Self, HalError> {
        let gpus = (0..count)
            .map(|i| SimGpu::new(i, clock.clone(), spec.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_gpus(clock, gpus)
    }

    /// A fleet of GPUs built by the caller (for mixed specs); they must share `clock`
    /// and have distinct ids.
    pub fn from_gpus(clock: SharedClock, gpus: Vec<SimGpu>) -> Result<Self, HalError> {
        let mut index = HashMap::with_capacity(gpus.len());
        for (i, g) in gpus.iter().enumerate() {
            if !Arc::ptr_eq(g.clock(), &clock) {
                return Err(HalError::InvalidConfig {
                    field: "fleet clock",
                    reason: format!("GPU {} does not read the fleet's clock", g.info().id),
                });
            }
            if index.insert(g.info().id.clone(), i).is_some() {
                return Err(HalError::InvalidConfig {
                    field: "fleet ids",
                    reason: format!("duplicate GPU id {}", g.info().id),
                });
            }
        }
        Ok(Self {
            clock,
            gpus: gpus.into_iter().map(Arc::new).collect(),
            index: Arc::new(index),
        })
    }

    /// The shared clock the GPUs read.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Number of GPUs.
    pub fn len(&self) -> usize {
        self.gpus.len()
    }

    /// True when the fleet has no GPU.
    pub fn is_empty(&self) -> bool {
        self.gpus.is_empty()
    }

    /// The GPU at `index`.
    pub fn gpu(&self, index: usize) -> Option<&Arc<SimGpu>> {
        self.gpus.get(index)
    }

    /// The GPU with id `id`.
    pub fn get(&self, id: &DeviceId) -> Option<&Arc<SimGpu>> {
        self.index.get(id).and_then(|&i| self.gpus.get(i))
    }

    /// The GPUs in index order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Arc<SimGpu>> {
        self.gpus.iter()
    }

    /// The GPUs as trait objects, for code generic over backends.
    pub fn devices(&self) -> Vec<Arc<dyn PowerDevice>> {
        self.gpus
            .iter()
            .map(|g| Arc::clone(g) as Arc<dyn PowerDevice>)
            .collect()
    }

    /// Reads every GPU's telemetry into `out` (cleared first), in index order. Reuses
    /// `out`'s capacity, so a sweep allocates nothing after the first.
    pub fn telemetry_into(&self, out: &mut Vec<Telemetry>) -> Result<(), HalError> {
        out.clear();
        out.reserve(self.gpus.len());
        for g in self.gpus.iter() {
            out.push(g.telemetry_now()?);
        }
        Ok(())
    }

    /// Sum of the GPUs' physical power now.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use gridflex_core::{ManualClock, SharedClock};
    /// use gridflex_hal::sim::{SimFleet, SimGpu, SimGpuSpec};
    /// let clock: SharedClock = Arc::new(ManualClock::default());
    /// let a = SimGpu::new(0, clock.clone(), SimGpuSpec::h100_sxm())?;
    /// let b = SimGpu::new(0, clock.clone(), SimGpuSpec::h100_sxm())?;
    /// assert!(SimFleet::from_gpus(clock.clone(), vec![a, b]).is_err()); // same id twice
    /// let c = SimGpu::new(1, Arc::new(ManualClock::default()), SimGpuSpec::h100_sxm())?;
    /// assert!(SimFleet::from_gpus(clock, vec![c]).is_err()); // another clock
    /// # Ok::<(), gridflex_hal::HalError>(())
    /// ```
    pub fn true_power_total(&self) -> Power {
        self.gpus.iter().map(|g| g.true_power()).sum()
    }
}
