//! The clock a replay source waits on: [`VirtualClock`] for tests and simulations,
//! [`RealClock`] for live replays, optionally faster than real time.
//!
//! The facade will own time for the whole pipeline; sources are generic over
//! [`Clock`] so the same clock can be handed to them.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

use crate::SignalError;

/// A source of the current (possibly simulated) UTC time that can wait for an instant.
#[async_trait]
pub trait Clock: Send + Sync {
    /// The current instant on this clock.
    fn now(&self) -> DateTime<Utc>;

    /// Completes once `now() >= deadline`; immediately when the deadline has passed.
    async fn sleep_until(&self, deadline: DateTime<Utc>);
}

#[async_trait]
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        (**self).sleep_until(deadline).await;
    }
}

#[async_trait]
impl<C: Clock + ?Sized> Clock for Box<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        (**self).sleep_until(deadline).await;
    }
}

/// A clock that moves only when told: deterministic tests of long processes in
/// microseconds, with no sleeps.
///
/// Clones share the same time. In the default manual mode, [`VirtualClock::advance`]
/// and [`VirtualClock::set`] move it and wake every waiter whose deadline has come.
/// A clock made with [`VirtualClock::auto_advancing`] instead jumps straight to any
/// deadline it is asked to wait for, so a replay runs through a whole file at once
/// while `now()` still reads each signal's time.
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex_signals::clock::{Clock, VirtualClock};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let t0 = Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap();
/// let clock = VirtualClock::new(t0);
/// let waiter = clock.clone();
/// let ((), ()) = tokio::join!(
///     waiter.sleep_until(t0 + TimeDelta::minutes(15)),
///     async { clock.advance(TimeDelta::minutes(15)).unwrap() },
/// );
/// assert_eq!(clock.now(), t0 + TimeDelta::minutes(15));
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct VirtualClock {
    time: Arc<watch::Sender<DateTime<Utc>>>,
    auto: bool,
}

impl VirtualClock {
    /// A manual clock reading `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            time: Arc::new(watch::Sender::new(start)),
            auto: false,
        }
    }

    /// A clock reading `start` that jumps to each deadline it is asked to wait for.
    pub fn auto_advancing(start: DateTime<Utc>) -> Self {
        Self {
            auto: true,
            ..Self::new(start)
        }
    }

    /// Moves the clock forward by `by`; a negative step is refused (time never goes back).
    pub fn advance(&self, by: TimeDelta) -> Result<(), SignalError> {
        if by < TimeDelta::zero() {
            return Err(SignalError::invalid(
                "clock step",
                format!("{by} is negative; a clock never goes back"),
            ));
        }
        let target = self.now().checked_add_signed(by).ok_or_else(|| {
            SignalError::invalid("clock step", format!("{by} overflows the time range"))
        })?;
        self.set(target)
    }

    /// Sets the clock to `t`, which must not be before the current time.
    pub fn set(&self, t: DateTime<Utc>) -> Result<(), SignalError> {
        let now = self.now();
        if t < now {
            return Err(SignalError::invalid(
                "clock time",
                format!("{t} is before the current time {now}"),
            ));
        }
        self.time.send_replace(t);
        Ok(())
    }
}

#[async_trait]
impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.time.borrow()
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        if self.auto {
            self.time.send_if_modified(|now| {
                let later = deadline > *now;
                if later {
                    *now = deadline;
                }
                later
            });
            return;
        }
        let mut rx = self.time.subscribe();
        // `wait_for` checks the current value first, then each new one; it fails only
        // when the sender is dropped, which cannot happen while `self` holds it.
        let _ = rx.wait_for(|now| *now >= deadline).await;
    }
}

/// Wall-clock time, optionally running faster than real time from a chosen origin.
///
/// `now()` is `origin + elapsed * speed`, where `elapsed` is measured on tokio's
/// monotonic clock, so tests under `tokio::time::pause` stay deterministic.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use gridflex_signals::clock::RealClock;
///
/// // Replay a recorded day 60 times faster than real time.
/// let origin = Utc.with_ymd_and_hms(2022, 9, 6, 0, 0, 0).unwrap();
/// let clock = RealClock::with_speed(origin, 60.0)?;
/// assert_eq!(clock.speed(), 60.0);
/// assert!(RealClock::with_speed(origin, 0.0).is_err());
/// # Ok::<(), gridflex_signals::SignalError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RealClock {
    origin: DateTime<Utc>,
    started: tokio::time::Instant,
    speed: f64,
}

impl RealClock {
    /// The system's UTC time at normal speed.
    pub fn new() -> Self {
        Self {
            origin: Utc::now(),
            started: tokio::time::Instant::now(),
            speed: 1.0,
        }
    }

    /// A clock that reads `origin` now and runs `speed` times faster than real time
    /// (`speed` must be finite and positive).
    pub fn with_speed(origin: DateTime<Utc>, speed: f64) -> Result<Self, SignalError> {
        if !(speed.is_finite() && speed > 0.0) {
            return Err(SignalError::invalid(
                "clock speed",
                format!("{speed} must be a finite number above zero"),
            ));
        }
        Ok(Self {
            origin,
            started: tokio::time::Instant::now(),
            speed,
        })
    }

    /// The speed factor.
    pub fn speed(&self) -> f64 {
        self.speed
    }
}

impl Default for RealClock {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Clock for RealClock {
    fn now(&self) -> DateTime<Utc> {
        let real = self.started.elapsed().as_secs_f64();
        let simulated =
            TimeDelta::try_milliseconds((real * self.speed * 1e3) as i64).unwrap_or(TimeDelta::MAX);
        self.origin
            .checked_add_signed(simulated)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        let ahead = deadline - self.now();
        if ahead <= TimeDelta::zero() {
            return;
        }
        let ahead_s = ahead.num_milliseconds() as f64 / 1e3;
        // Round up to a whole millisecond so the deadline has passed on waking.
        let real =
            std::time::Duration::try_from_secs_f64(((ahead_s / self.speed) * 1e3).ceil() / 1e3)
                .unwrap_or(std::time::Duration::MAX);
        tokio::time::sleep(real).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn virtual_clock_refuses_going_back() {
        let c = VirtualClock::new(t0());
        assert!(c.advance(TimeDelta::seconds(-1)).is_err());
        assert!(c.set(t0() - TimeDelta::seconds(1)).is_err());
        c.advance(TimeDelta::hours(3)).unwrap();
        assert_eq!(c.now(), t0() + TimeDelta::hours(3));
    }

    #[tokio::test]
    async fn auto_clock_jumps_to_deadlines_but_not_back() {
        let c = VirtualClock::auto_advancing(t0());
        c.sleep_until(t0() + TimeDelta::hours(2)).await;
        assert_eq!(c.now(), t0() + TimeDelta::hours(2));
        c.sleep_until(t0()).await;
        assert_eq!(c.now(), t0() + TimeDelta::hours(2));
    }

    #[tokio::test(start_paused = true)]
    async fn real_clock_runs_at_its_speed() {
        let c = RealClock::with_speed(t0(), 60.0).unwrap();
        let started = tokio::time::Instant::now();
        c.sleep_until(t0() + TimeDelta::hours(1)).await;
        assert_eq!(started.elapsed(), std::time::Duration::from_secs(60));
        assert!(c.now() >= t0() + TimeDelta::hours(1));
        assert!(c.now() < t0() + TimeDelta::hours(1) + TimeDelta::seconds(1));
        assert!(RealClock::with_speed(t0(), f64::NAN).is_err());
    }
}
