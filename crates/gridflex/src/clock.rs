//! The orchestrator's clock: [`TokioClock`], real or virtual.
//!
//! gridflex uses the [`Clock`] trait of `gridflex-signals` everywhere (signal replay and
//! the orchestrator share one clock). [`TokioClock`] maps tokio's monotonic time onto
//! UTC. In a runtime started with time paused (`#[tokio::test(start_paused = true)]` or
//! `Builder::start_paused(true)`), tokio advances time by itself whenever every task is
//! waiting, straight to the earliest timer: a day of virtual time passes in
//! milliseconds, in exactly the order a real day would, deterministically.
//!
//! When the fleet is simulated, [`TokioClock::driving`] keeps the simulator's
//! [`SimClock`] in step: every reading of the time first moves the simulator to it, so
//! the physics and the orchestrator can never disagree about "now".

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use gridflex_hal::sim::SimClock;
pub use gridflex_signals::clock::Clock;
use tokio::time::Instant;

/// UTC time read from tokio's clock (virtual when the runtime's time is paused).
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex::clock::{Clock, TokioClock};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?.block_on(async {
/// let start = Utc.with_ymd_and_hms(2025, 8, 1, 0, 0, 0).unwrap();
/// let clock = TokioClock::starting_at(start);
/// clock.sleep_until(start + TimeDelta::hours(3)).await; // instant in virtual time
/// assert_eq!(clock.now(), start + TimeDelta::hours(3));
/// # });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TokioClock {
    origin: DateTime<Utc>,
    started: Instant,
    sim: Option<SimClock>,
}

impl TokioClock {
    /// A clock that reads `origin` now and advances with tokio's time. Call it inside
    /// a runtime with the time driver enabled.
    pub fn starting_at(origin: DateTime<Utc>) -> Self {
        Self {
            origin,
            started: Instant::now(),
            sim: None,
        }
    }

    /// The wall clock: UTC now, advancing in real time.
    pub fn real() -> Self {
        Self::starting_at(Utc::now())
    }

    /// A clock that starts at the simulator's current time and moves the simulator
    /// along with it.
    pub fn driving(sim: SimClock) -> Self {
        Self {
            origin: sim.now(),
            started: Instant::now(),
            sim: Some(sim),
        }
    }

    fn instant_of(&self, t: DateTime<Utc>) -> Instant {
        let ahead = (t - self.origin).to_std().unwrap_or_default();
        self.started + ahead
    }
}

#[async_trait]
impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.started.elapsed()).unwrap_or(TimeDelta::MAX);
        let now = self
            .origin
            .checked_add_signed(elapsed)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if let Some(sim) = &self.sim {
            // Monotonic by construction: tokio's clock never goes back, so this only
            // fails if someone else moved the simulator ahead; then keep its time.
            if sim.advance_to(now).is_err() {
                return sim.now();
            }
        }
        now
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        tokio::time::sleep_until(self.instant_of(deadline)).await;
    }
}
