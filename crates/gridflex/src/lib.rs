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
//! | [`program`] | this crate | program rules: signal -> curtailment request |
//! | [`orchestrator`] | this crate | the run loop, actuation, safety, M&V per event |
//! | [`audit`] | this crate | the append-only JSON-lines audit log |
//!
//! A simulated facility answering a price spike, in virtual time:
//!
//! ```
//! use std::sync::Arc;
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use gridflex::prelude::*;
//! use gridflex::hal::sim::{SimClock, SimFleet, SimGpuSpec, SimJob, WorkloadKind as SimKind, WorkloadProfile};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?.block_on(async {
//! let t0 = Utc.with_ymd_and_hms(2025, 8, 14, 0, 0, 0).unwrap();
//! let fleet = SimFleet::new(SimClock::new(t0), 8, &SimGpuSpec::h100_sxm())?;
//! let gpus: Vec<_> = fleet.iter().cloned().collect();
//! let job = Arc::new(SimJob::start(JobId::new("train")?, gpus.clone(), WorkloadProfile::of(SimKind::Matmul))?);
//! let clock = TokioClock::driving(fleet.clock().clone());
//!
//! let node = PricingNodeId::new("TH_SP15_GEN-APND")?;
//! let mut rules = ProgramRules::new(Market::Caiso, Power::kilowatts(10.0)?);
//! rules.price = Some(PriceRule::new(node.clone(), MarketRun::CaisoRtm,
//!     Price::per_megawatt_hour(300.0)?, Power::kilowatts(4.0)?));
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
pub mod orchestrator;
pub mod program;
pub mod report;
pub mod simulated;

pub use error::GridflexError;
pub use gridflex_core as core;
pub use gridflex_hal as hal;
pub use gridflex_mv as mv;
pub use gridflex_planner as planner;
pub use gridflex_signals as signals;
pub use gridflex_store as store;
pub use orchestrator::{
    Handled, Orchestrator, OrchestratorBuilder, OrchestratorOptions, RunSummary,
};

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
        PricingNodeId,
    };
    pub use gridflex_hal::{PowerDevice, WorkloadControl};
    pub use gridflex_planner::{FacilityModel, JobClass, WorkloadKind};
    pub use gridflex_signals::source::{ReplaySource, SignalSource};
    pub use gridflex_signals::{GridSignal, Market, MarketRun, PricePoint};
}
