//! Shared foundations of gridflex: units, market time, interval series and identifiers.
//!
//! Every other gridflex crate speaks in these types, so a watt is never confused with a
//! kilowatt, a device id with a job id, or local time with UTC.
//!
//! - [`units`]: [`Power`], [`Energy`], [`Price`], [`Money`] with physically meaningful
//!   arithmetic (power x duration = energy, energy x price = money), compile-time
//!   checked literals ([`power!`], [`energy!`], [`price!`], [`money!`]) and no silent
//!   zero: arithmetic that can be invalid returns `Option`.
//! - [`time`]: UTC [`Interval`]s, [`MarketZone`]s (CAISO Pacific, PJM/NYISO Eastern,
//!   ERCOT Central), [`OperatingDay`]s that are 23, 24 or 25 hours long, hour-ending
//!   labels, and local <-> UTC conversion that refuses skipped times and makes the
//!   caller choose on repeated ones.
//! - [`series`]: [`IntervalSeries`], a regular series with explicit gaps and
//!   energy-conserving resampling.
//! - [`id`]: validated string identifiers.
//! - [`duration_s`]: the one JSON duration convention (seconds as a number, fields
//!   named `*_s`), as serde helpers for `Duration` and `TimeDelta`.
//! - [`clock`]: the one [`Clock`] trait, with [`TokioClock`] (tokio's time, virtual
//!   under a paused runtime) and [`ManualClock`] (moved by hand).
//! - [`workload`]: the one workload vocabulary, [`WorkloadKind`] and
//!   [`ThroughputCurve`] (throughput versus allowed power), shared by the planner and
//!   the simulator.
//! - [`number`]: exact, fast reading of the plain decimals operator and meter files are
//!   made of; [`url`]: the percent-encoding of URL and form values, shared by the
//!   operator and OpenADR clients.
//!
//! ```
//! use chrono::TimeDelta;
//! use gridflex_core::{energy, power, price};
//!
//! let saved = power!(250 kW) * TimeDelta::minutes(30);
//! assert_eq!(saved, energy!(125 kWh));
//! let credit = saved * price!(400 per MWh);
//! assert_eq!(credit.to_string(), "$50.00");
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod clock;
pub mod duration_s;
mod error;
pub mod id;
pub mod number;
pub mod series;
pub mod time;
pub mod units;
pub mod url;
pub mod workload;

pub use clock::{Clock, ManualClock, SharedClock, TokioClock};
pub use error::CoreError;
pub use id::{DeviceId, JobId, NodeId, PricingNodeId};
pub use series::{Aggregation, IntervalSeries, Quantity};
pub use time::{HourEnding, HourLabelStyle, Interval, LocalMapping, MarketZone, OperatingDay};
pub use units::{Energy, MAX_MAGNITUDE, Money, Power, Price};
pub use workload::{ThroughputCurve, WorkloadKind};
