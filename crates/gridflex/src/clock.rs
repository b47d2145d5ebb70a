//! The one clock of gridflex.
//!
//! Every part of the SDK reads time from a [`Clock`] it is given, defined once in
//! `gridflex-core` and re-exported here: signal replay and the HTTP pollers wait on it,
//! the simulated GPUs read it to catch their physics up, and the orchestrator schedules
//! stages, restores and reports on it. Hand the same clock to all of them.
//!
//! - [`TokioClock`]: UTC on tokio's time. Real time in a normal runtime
//!   ([`TokioClock::real`]); virtual in a runtime started with time paused
//!   (`#[tokio::test(start_paused = true)]` or `Builder::start_paused(true)`), where
//!   tokio jumps straight to the earliest timer whenever every task waits: a day of
//!   virtual time passes in milliseconds, in exactly the order a real day would.
//! - [`ManualClock`]: advanced by hand; for synchronous tests and benches of the
//!   simulated physics.
//!
//! A simulator never moves the clock: it reads it. With a
//! [`SimulatedFacility`](crate::simulated::SimulatedFacility), the facility's
//! [`clock()`](crate::simulated::SimulatedFacility::clock) is the `TokioClock` its GPUs
//! read, so the orchestrator and the physics cannot disagree about "now".
//!
//! ```
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use gridflex::clock::{Clock, TokioClock};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?.block_on(async {
//! let start = Utc.with_ymd_and_hms(2025, 8, 1, 0, 0, 0).unwrap();
//! let clock = TokioClock::starting_at(start);
//! clock.sleep_until(start + TimeDelta::hours(3)).await; // instant in virtual time
//! assert_eq!(clock.now(), start + TimeDelta::hours(3));
//! # });
//! # Ok::<(), std::io::Error>(())
//! ```

pub use gridflex_core::clock::{Clock, ManualClock, SharedClock, TokioClock};
