//! Hardware abstraction for gridflex: the traits the orchestrator drives, and backends.
//!
//! | item | what |
//! | --- | --- |
//! | [`PowerDevice`] | read telemetry, set and restore a power limit (every backend) |
//! | [`SmClockLock`], [`PowerSampleStream`] | optional capabilities: locked SM clocks, 20 ms power samples |
//! | [`WorkloadControl`] | pause, resume and observe a job |
//! | [`OutsideRestore`] | devices and jobs a backend gave back on its own (a node agent's lapsed lease) |
//! | [`HalError`], [`ErrorKind`] | one error type; `kind()` is portable (embedded-hal style) |
//! | [`conformance`] | a kit a backend's own tests call to check it keeps the traits' promises |
//! | [`sim`] | simulated GPUs on a virtual clock, calibrated to a real H100 |
//! | `process` (unix) | pause a job's processes with SIGSTOP/SIGCONT |
//! | `nvml` (feature `nvml`) | NVIDIA GPUs through nvml-wrapper, loaded at run time |
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use gridflex_core::{JobId, Power};
//! use gridflex_core::ManualClock;
//! use gridflex_hal::sim::{SimFleet, SimGpuSpec, SimJob, WorkloadKind, WorkloadProfile};
//! use gridflex_hal::{PowerDevice, WorkloadControl};
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let clock = ManualClock::default();
//! let fleet = SimFleet::new(Arc::new(clock.clone()), 4, &SimGpuSpec::h100_sxm())?;
//! let job = SimJob::start(JobId::new("pretrain")?, fleet.iter().cloned().collect(),
//!     WorkloadProfile::of(WorkloadKind::Matmul))?;
//! clock.advance(Duration::from_secs(2));
//! let before = fleet.true_power_total();
//! job.pause().await?;                          // fastest lever: SIGSTOP semantics
//! clock.advance(Duration::from_millis(40));
//! let after = fleet.true_power_total();
//! assert!((before - after) / (before - Power::watts(4.0 * 125.0)?) > 0.9);
//! for gpu in fleet.devices() {
//!     gpu.set_power_limit(Power::watts(450.0)?).await?; // slower, keeps throughput
//! }
//! job.resume().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod backend;
pub mod conformance;
mod device;
mod error;
mod outside;
mod telemetry;
mod workload;

#[cfg(feature = "nvml")]
pub use backend::nvml;
#[cfg(unix)]
pub use backend::process;
pub use backend::sim;
pub use device::{PowerDevice, PowerSampleStream, SmClockLock};
pub use error::{ErrorKind, HalError};
pub use outside::OutsideRestore;
pub use telemetry::{
    ClockRange, DeviceInfo, EnergyReading, LimitChange, Megahertz, Percent, PowerLimits,
    PowerSample, Telemetry,
};
pub use workload::{WorkloadControl, WorkloadState};
