//! gridflex: make an AI compute cluster a grid-interactive resource.
//!
//! This facade re-exports the gridflex crates as modules, so an integrator depends on
//! one crate, and adds the [`Orchestrator`] that runs signal -> plan -> actuation ->
//! verification with an audit log:
//!
//! | module | crate | owns |
//! | --- | --- | --- |
//! | [`core`] | `gridflex-core` | units, market time, interval series, identifiers |
//! | [`signals`] | `gridflex-signals` | CAISO/PJM signal models, parsers, sources |
//! | [`hal`] | `gridflex-hal` | power-device and workload traits, simulated GPU, NVML |
//! | [`planner`] | `gridflex-planner` | SLA-aware curtailment planning |
//! | [`mv`] | `gridflex-mv` | baselines, delivered reduction, regulation scores |
//! | `slurm` (feature `slurm`) | `gridflex-slurm` | Slurm jobs: inventory, SLA classes, suspend/resume |
//! | `openadr` (feature `openadr`) | `gridflex-openadr` | OpenADR 3.1 VEN: events in, reports out |
//! | [`program`] | this crate | program rules: signal -> curtailment request |
//! | [`orchestrator`] | this crate | the run loop, actuation, safety, M&V per event |
//! | [`audit`] | this crate | the append-only JSON-lines audit log |
//! | [`metrics`] | this crate | Prometheus metrics (OpenMetrics) and, behind `metrics-server`, a `/metrics` endpoint |
//!
//! The orchestrator also emits [`tracing`](https://docs.rs/tracing) spans (`signal`,
//! `decision`, `plan`, `actuation`, `replan`, `report`), each with the event id, for the
//! integrator's subscriber; with no subscriber they cost nothing and allocate nothing.
//!
//! A simulated facility answering a price spike, in virtual time:
//!
//! ```
//! use std::sync::Arc;
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use gridflex::prelude::*;
//! use gridflex::hal::sim::{SimFleet, SimGpuSpec, SimJob, WorkloadProfile};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?.block_on(async {
//! let t0 = Utc.with_ymd_and_hms(2025, 8, 14, 0, 0, 0).unwrap();
//! // One clock for everything: the simulated GPUs read it, the orchestrator waits on it.
//! let clock = TokioClock::starting_at(t0);
//! let fleet = SimFleet::new(Arc::new(clock.clone()), 8, &SimGpuSpec::h100_sxm())?;
//! let gpus: Vec<_> = fleet.iter().cloned().collect();
//! let job = Arc::new(SimJob::start(JobId::new("train")?, gpus.clone(), WorkloadProfile::of(WorkloadKind::Matmul))?);
//!
//! let node = PricingNodeId::new("TH_SP15_GEN-APND")?;
//! let mut rules = ProgramRules::new(Market::Caiso, power!(10 kW));
//! rules.price = Some(PriceRule::new(node.clone(), MarketRun::CaisoRtm,
//!     price!(300 per MWh), power!(4 kW)));
//! let entry = JobEntry::new(JobId::new("train")?, gpus.iter().map(|g| g.info().id.clone()).collect(),
//!     JobClass::Flexible { floor: 0.5, max_pause: std::time::Duration::from_secs(600) },
//!     WorkloadKind::Pretraining);
//! let mut orchestrator = Orchestrator::builder(clock.clone())
//!     .devices(gpus.iter().cloned().map(DeviceHandle::with_samples))
//!     .job(entry, Some(job))
//!     .facility(FacilityModel::new(Power::ZERO, 1.0)?)
//!     .rules(rules)
//!     .build()?;
//!
//! let start = t0 + TimeDelta::minutes(5);
//! let spike = PricePoint::new(MarketRun::CaisoRtm, node,
//!     Interval::new(start, start + TimeDelta::minutes(5))?, Price::per_megawatt_hour(1200.0)?);
//! let source = ReplaySource::from_signals(vec![GridSignal::Price(spike)], clock.clone())?;
//! let summary = orchestrator.run(source, std::future::pending()).await?;
//! assert_eq!(summary.events, 1);
//! let report = &orchestrator.reports()[0];
//! assert!(report.predicted <= Power::kilowatts(4.0)?);
//! assert!(orchestrator.curtailed_jobs().is_empty()); // everything restored
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod audit;
pub mod clock;
mod error;
pub mod history;
pub mod inventory;
pub mod metrics;
#[cfg(feature = "openadr")]
pub mod openadr;
pub mod orchestrator;
pub mod program;
pub mod report;
pub mod scheduling;
pub mod simulated;

/// The `async_trait` attribute, for implementing `PowerDevice`, `WorkloadControl` or
/// `SignalSource` without a direct dependency on the `async-trait` crate.
pub use async_trait::async_trait;
/// The `chrono` crate, whose `DateTime<Utc>` and `TimeDelta` the public API uses.
pub use chrono;
pub use error::GridflexError;
pub use gridflex_core as core;
/// Compile-time checked unit literals (`power!(10 kW)`, `energy!(2 kWh)`,
/// `price!(50 per MWh)`, `money!(12 USD)`), from `gridflex-core`.
pub use gridflex_core::{energy, money, power, price};
pub use gridflex_hal as hal;
pub use gridflex_mv as mv;
pub use gridflex_planner as planner;
pub use gridflex_signals as signals;
/// Slurm as the workload engine (feature `slurm`): the `gridflex-slurm` crate.
#[cfg(feature = "slurm")]
pub use gridflex_slurm as slurm;
pub use gridflex_store as store;
pub use orchestrator::{
    Handled, Orchestrator, OrchestratorBuilder, OrchestratorOptions, RunSummary,
};
/// The `prometheus-client` crate, whose `Registry` [`metrics::Metrics`] registers in.
pub use prometheus_client;

/// The names most integrations need, in one import.
pub mod prelude {
    pub use crate::GridflexError;
    pub use crate::audit::{AuditEvent, AuditLog, AuditRecord};
    pub use crate::clock::{Clock, TokioClock};
    pub use crate::inventory::{DeviceHandle, JobEntry};
    pub use crate::orchestrator::{
        Handled, Orchestrator, OrchestratorHandle, OrchestratorOptions, ctrl_c,
    };
    pub use crate::program::{
        Decision, DispatchRule, EmergencyRule, LevelCap, PriceRule, ProgramEngine, ProgramRules,
        RegulationRule,
    };
    pub use crate::report::EventReport;
    pub use gridflex_core::{
        DeviceId, Energy, Interval, IntervalSeries, JobId, MarketZone, Money, Power, Price,
        PricingNodeId, ThroughputCurve, WorkloadKind, energy, money, power, price,
    };
    pub use gridflex_hal::{PowerDevice, WorkloadControl};
    pub use gridflex_planner::{FacilityModel, JobClass};
    pub use gridflex_signals::source::{ReplaySource, SignalSource};
    pub use gridflex_signals::{GridSignal, Market, MarketRun, PricePoint};
}
