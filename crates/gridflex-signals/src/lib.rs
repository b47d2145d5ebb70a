//! CAISO and PJM grid-signal models, operator-format parsers and signal sources.
//!
//! - [`model`]: [`PricePoint`] (LMP with its components by market run),
//!   [`DispatchEvent`] (demand-response instruction under a [`Program`]),
//!   [`GridAlert`] (Flex Alert, EEA levels, PJM emergency procedures),
//!   [`RegulationSample`] (RegA/RegD set-point in [-1, 1]) and [`GridSignal`], the enum
//!   over them with a stable JSON-lines form.
//! - [`parse`]: streaming parsers for CAISO OASIS CSV/XML/zip and PJM Data Miner 2
//!   JSON/CSV, with format detection, located errors, strict and lenient modes.
//! - [`source`]: the async [`source::SignalSource`] trait, a replay source on the one
//!   [`Clock`](gridflex_core::Clock) of `gridflex-core` (`TokioClock`, virtual under a
//!   paused runtime, or `ManualClock`), and a channel source.
//! - `http` (feature `http`): pollers for CAISO OASIS and PJM Data Miner 2 with
//!   rate-limit back-off and paging, and a polling signal source.
//!
//! ```
//! use gridflex_signals::parse::{parse_prices, ParseOptions};
//! use gridflex_signals::{GridSignal, MarketRun};
//!
//! let json = r#"[{"datetime_beginning_utc":"2024-07-01T16:00:00","pnode_id":1,"total_lmp_da":42.0}]"#;
//! let out = parse_prices(json.as_bytes(), &ParseOptions::default())?;
//! assert_eq!(out.points[0].run, MarketRun::PjmDayAheadHourly);
//! let line = GridSignal::Price(out.points[0].clone()).to_json_line()?;
//! assert!(line.starts_with(r#"{"type":"price","market":"PJM","run":"PJM_DA_HOURLY""#));
//! # Ok::<(), gridflex_signals::SignalError>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![forbid(unsafe_code)]

mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod model;
pub mod parse;
pub mod source;

pub use error::{Location, SignalError};
pub use model::{
    AlertKind, AlertLevel, DispatchEvent, DispatchTarget, EventWindow, GridAlert, GridSignal,
    LeadTime, Market, MarketRun, PricePoint, Program, RegulationKind, RegulationSample,
    RegulationSignal, read_json_lines, write_json_lines,
};
