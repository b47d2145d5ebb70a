//! gridflex: make an AI compute cluster a grid-interactive resource.
//!
//! This facade re-exports the gridflex crates as modules, so an integrator depends on
//! one crate:
//!
//! | module | crate | owns |
//! | --- | --- | --- |
//! | [`core`] | `gridflex-core` | units, market time, interval series, identifiers |
//! | [`signals`] | `gridflex-signals` | CAISO/PJM signal models, parsers, sources |
//! | [`hal`] | `gridflex-hal` | power-device and workload traits, simulated GPU, NVML |
//! | [`planner`] | `gridflex-planner` | SLA-aware curtailment planning |
//! | [`mv`] | `gridflex-mv` | baselines, delivered reduction, regulation scores |
//!
//! ```
//! use gridflex::core::{MarketZone, Power};
//! let cap = Power::kilowatts(600.0)?;
//! assert_eq!(MarketZone::Caiso.tz().name(), "America/Los_Angeles");
//! assert_eq!(cap.to_string(), "600 kW");
//! # Ok::<(), gridflex::core::CoreError>(())
//! ```
#![forbid(unsafe_code)]

pub use gridflex_core as core;
pub use gridflex_hal as hal;
pub use gridflex_mv as mv;
pub use gridflex_planner as planner;
pub use gridflex_signals as signals;
