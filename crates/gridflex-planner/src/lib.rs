//! SLA-aware curtailment planning for GPU fleets: pure, synchronous, deterministic.
//!
//! Given a [`Fleet`] snapshot (jobs with a service class, a cap range, a paused draw,
//! a throughput curve and a weight; a facility model) and a [`CurtailmentRequest`]
//! (target, window, response time, restore ramp limit), [`plan`] returns a [`Plan`]:
//!
//! - the steady allocation that loses the least weighted throughput while bringing
//!   predicted facility power to the target, with every class limit kept (critical
//!   jobs never paused nor under their floor; flexible jobs paused no longer than
//!   allowed; deferrable jobs running again by their deadline);
//! - stages from the window start: when caps settle slower than the response time,
//!   a fast stage of pauses meets the target first, then paused jobs are resumed in
//!   groups once caps have settled, each before its pause limit, never letting
//!   settled power pass the target;
//! - the exact shortfall when the target cannot be met within the service levels;
//! - a restore at the window's end, staggered under the ramp limit with the 1.3x
//!   resume overshoot (`calibration/README.md`) accounted for.
//!
//! [`shift`] places deferrable work in the cheapest price intervals before each
//! job's deadline (price-responsive time shifting).
//!
//! The crate does no I/O and reads no clock; see `docs/planner.md` for the method,
//! the JSON schema and the defaults. The main entry point is [`plan`].
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod allocate;
mod curve;
mod error;
mod fleet;
pub mod json;
mod order;
mod plan;
mod planner;
mod request;
mod shift;
pub mod site_shift;
mod units;

pub use curve::{ThroughputCurve, WorkloadKind, concave_curve, validate_curve};
pub use error::PlannerError;
pub use fleet::{CapRange, FacilityModel, Fleet, Job, JobClass, JobSpec};
pub use plan::{Action, AllocationMethod, JobOutcome, JobState, Objective, Plan, Stage};
pub use planner::plan;
pub use request::{CurtailmentRequest, LeverProfile, PlannerOptions, Target};
pub use shift::{DeferrableWork, JobSchedule, Run, ShiftPlan, shift};
pub use site_shift::{SiteLimit, SitePlan, SiteWork, shift_within_limit};
pub use units::RampRate;
