//! The simulated backend: [`SimGpu`], [`SimFleet`] and [`SimJob`] on a virtual
//! [`SimClock`], calibrated to measurements on a real H100 (`calibration/README.md`).
//!
//! Deterministic, no sleeps, no threads: the owner advances the clock and the devices
//! catch up when they are next read or commanded. This is the default backend for
//! tests, examples and benches. See `docs/hal.md` for the model and its sources.

mod clock;
mod fleet;
mod gpu;
mod job;
mod profile;
mod spec;

pub use clock::SimClock;
pub use fleet::SimFleet;
pub use gpu::{SimActivity, SimCommand, SimGpu};
pub use job::SimJob;
pub use profile::{ThroughputCurve, WorkloadKind, WorkloadProfile};
pub use spec::{SimGpuSpec, SimNoise};
