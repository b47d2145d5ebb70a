//! The simulated backend: [`SimGpu`], [`SimFleet`] and [`SimJob`] reading the one
//! [`Clock`](gridflex_core::Clock) they are given, calibrated to measurements on a
//! real H100 (`calibration/README.md`).
//!
//! Deterministic, no sleeps, no threads: the devices read the clock (a
//! [`TokioClock`](gridflex_core::TokioClock) under the orchestrator, a
//! [`ManualClock`](gridflex_core::ManualClock) advanced by hand in synchronous tests)
//! and catch up when they are next read or commanded; they never move it. This is the default backend for
//! tests, examples and benches. See `docs/hal.md` for the model and its sources.

mod fleet;
mod gpu;
mod job;
mod profile;
mod spec;
mod time;

pub use fleet::SimFleet;
pub use gpu::{SimActivity, SimCommand, SimGpu};
pub use job::SimJob;
pub use profile::{ThroughputCurve, WorkloadKind, WorkloadProfile};
pub use spec::{SimGpuSpec, SimNoise};
