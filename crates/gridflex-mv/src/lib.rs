//! Measurement and verification (M&V) for demand response: customer baselines and
//! their adjustments, delivered reduction, response time, the PJM regulation
//! performance score, baseline accuracy and energy settlement.
//!
//! Pure and synchronous: no clock, no I/O. Meter data comes in as
//! [`IntervalSeries<Power>`](gridflex_core::IntervalSeries), indexed by local market day
//! in a [`Meter`]; a [`Calendar`] says which days are holidays and prior event days.
//! The market rules and their sources are in `docs/mv.md` (and the project's
//! `reference/markets.md` sections a to e); every parameter the sources leave uncertain
//! is a public field with the documented default.
//!
//! | module | what |
//! | --- | --- |
//! | [`calendar`] | day types, NERC holidays, excluded event days |
//! | [`meter`] | meter data indexed by local day, gap policy |
//! | [`baseline`] | day-matching engine, adjustments, CAISO / PJM / NYISO / ERCOT / MBMA methods |
//! | [`reduction`] | delivered reduction, raw and settled; performance vs commitment |
//! | [`response`] | response time t50 / t90 from high-rate samples |
//! | [`regulation`] | PJM regulation performance score, mileage, credits |
//! | [`accuracy`] | baseline accuracy on non-event days (rRMSE, CV(RMSE), NMBE) |
//! | [`settlement`] | energy credits (settled reduction x LMP, Net Benefits Test) |
//! | [`fleet`] | many meters x events x methods in one call, on several threads |
//! | [`input`] | CSV parsers for meter data, prices and samples (text in, no I/O) |
//!
//! ```
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use gridflex_core::{Interval, IntervalSeries, MarketZone, Power};
//! use gridflex_mv::{Baseline, Calendar, Meter};
//!
//! // 30 days of hourly data at 500 kW from local midnight in PJM (EDT = UTC-4).
//! let start = Utc.with_ymd_and_hms(2025, 6, 1, 4, 0, 0).unwrap();
//! let mut kw = vec![Power::kilowatts(500.0)?; 30 * 24];
//! // Event day 2025-06-27 (a Friday), 14:00-16:00 local: the site drops to 200 kW.
//! kw[26 * 24 + 14] = Power::kilowatts(200.0)?;
//! kw[26 * 24 + 15] = Power::kilowatts(200.0)?;
//! let meter = Meter::new(IntervalSeries::from_values(start, TimeDelta::hours(1), kw)?, MarketZone::Pjm)?;
//! let t0 = Utc.with_ymd_and_hms(2025, 6, 27, 18, 0, 0).unwrap();
//! let event = Interval::new(t0, t0 + TimeDelta::hours(2))?;
//! let result = Baseline::pjm_cbl().compute(&meter, &Calendar::new(MarketZone::Pjm), event)?;
//! assert_eq!(result.selected_days.len(), 4); // High 4 of 5
//! assert_eq!(result.reduction().settled_energy.as_kilowatt_hours(), 600.0);
//! # Ok::<(), gridflex_mv::MvError>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![forbid(unsafe_code)]

pub mod accuracy;
pub mod baseline;
pub mod cache;
pub mod calendar;
mod error;
pub mod fleet;
pub mod input;
pub mod meter;
pub mod reduction;
pub mod regulation;
pub mod response;
pub mod settlement;
mod threads;

pub use baseline::{
    Adjustment, AdjustmentKind, Baseline, BaselineResult, BaselineRule, DayMatching, DayRules,
    LowUsageReference, Method, Selection,
};
pub use calendar::{Calendar, DayType, DayTypes};
pub use error::MvError;
pub use meter::{GapPolicy, Meter};
pub use reduction::{ReductionReport, SettlementRule};
