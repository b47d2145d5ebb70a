//! The one clock of gridflex: the [`Clock`] trait and its two implementations.
//!
//! Everything that needs the time reads it from a [`Clock`] it is given: signal replay
//! and pollers, the simulated GPUs, the orchestrator. Nobody advances someone else's
//! clock; a simulator *reads* the clock it is given and catches its physics up to it.
//!
//! - [`TokioClock`]: UTC mapped onto tokio's time. Real time in a normal runtime;
//!   virtual time in a runtime started paused (`#[tokio::test(start_paused = true)]`),
//!   where tokio jumps straight to the earliest timer whenever every task waits, so a
//!   day passes in milliseconds, deterministically. Use it for anything async.
//! - [`ManualClock`]: moved only by hand ([`ManualClock::advance`]), waking waiters whose
//!   deadline has come. Use it for synchronous tests and benches of the physics.
//!
//! ```
//! use std::time::Duration;
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use gridflex_core::clock::{Clock, ManualClock, TokioClock};
//!
//! let t0 = Utc.with_ymd_and_hms(2025, 8, 1, 0, 0, 0).unwrap();
//! let manual = ManualClock::new(t0);
//! manual.advance(Duration::from_secs(90));
//! assert_eq!(manual.now(), t0 + TimeDelta::seconds(90));
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?.block_on(async {
//! let clock = TokioClock::starting_at(t0);
//! clock.sleep_until(t0 + TimeDelta::hours(3)).await; // instant in virtual time
//! assert_eq!(clock.now(), t0 + TimeDelta::hours(3));
//! # });
//! # Ok::<(), std::io::Error>(())
//! ```

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::CoreError;

/// A source of the current (possibly virtual) UTC time that can wait for an instant.
#[async_trait]
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant on this clock; never goes back.
    fn now(&self) -> DateTime<Utc>;

    /// Completes once `now() >= deadline`; immediately when the deadline has passed.
    async fn sleep_until(&self, deadline: DateTime<Utc>);

    /// `now()` as nanoseconds since the Unix epoch (saturating outside 1677..2262): the
    /// simulator reads this on every command, so clocks may answer it without building
    /// a `DateTime`.
    fn now_nanos(&self) -> i64 {
        let t = self.now();
        t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        })
    }
}

/// A clock shared by many readers (the GPUs of a simulated fleet).
pub type SharedClock = Arc<dyn Clock>;

#[async_trait]
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        (**self).sleep_until(deadline).await;
    }
    fn now_nanos(&self) -> i64 {
        (**self).now_nanos()
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
    fn now_nanos(&self) -> i64 {
        (**self).now_nanos()
    }
}

/// The instant of an [`at_one_instant`] call, and the last [`TokioClock::now_nanos`]
/// reading taken at it: a thousand readings of one clock compute it once.
#[derive(Debug, Clone, Copy)]
struct OneInstant {
    at: Instant,
    /// `(clock, started, nanos)`: the clock's shared start (its address and instant)
    /// and its reading at `at`.
    last: Option<(usize, Instant, i64)>,
}

thread_local! {
    /// The tokio instant every [`TokioClock`] reading on this thread returns inside
    /// [`at_one_instant`].
    static ONE_INSTANT: std::cell::Cell<Option<OneInstant>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with every [`TokioClock`] reading on this thread taken at one instant: the
/// instant of the call (a reading inside an outer call keeps the outer instant).
///
/// For work that issues many commands at once, synchronously: the orchestrator issues a
/// plan stage this way, so every command of the stage, and every simulated GPU that
/// takes one, reads the same time (they are issued within microseconds, and under a
/// paused runtime time could not move between them anyway), and a thousand readings
/// cost one. Only code that does not await belongs inside.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use gridflex_core::clock::{Clock, TokioClock, at_one_instant};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let clock = TokioClock::starting_at(Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap());
/// let (a, b) = at_one_instant(|| {
///     let a = clock.now_nanos();
///     std::thread::sleep(std::time::Duration::from_millis(2));
///     (a, clock.now_nanos())
/// });
/// assert_eq!(a, b);
/// assert!(clock.now_nanos() > b); // outside, time moves on
/// # });
/// ```
pub fn at_one_instant<R>(f: impl FnOnce() -> R) -> R {
    /// Puts back what was there before, on return or unwind.
    struct Restore(Option<OneInstant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ONE_INSTANT.set(self.0);
        }
    }
    let outer = ONE_INSTANT.get();
    let _restore = Restore(outer);
    if outer.is_none() && tokio::runtime::Handle::try_current().is_ok() {
        ONE_INSTANT.set(Some(OneInstant {
            at: Instant::now(),
            last: None,
        }));
    }
    f()
}

/// Tokio's now, or the instant of an enclosing [`at_one_instant`].
fn tokio_now() -> Instant {
    ONE_INSTANT.get().map_or_else(Instant::now, |one| one.at)
}

/// UTC time read from tokio's clock (virtual when the runtime's time is paused).
///
/// Made inside a tokio runtime, the clock reads `origin` at once and advances with
/// tokio's time. Made outside one (a fixture built before `block_on`), it reads
/// `origin` until it is first read inside a runtime and advances from then on, so it
/// starts on the runtime's own time and paused runs stay exact to the nanosecond.
/// Clones share the start.
#[derive(Debug, Clone)]
pub struct TokioClock {
    origin: DateTime<Utc>,
    /// `origin` as nanoseconds since the Unix epoch (saturated), computed once: the
    /// simulator reads `now_nanos` on every command.
    origin_nanos: i64,
    started: Arc<OnceLock<Instant>>,
}

impl TokioClock {
    /// A clock that reads `origin` now and advances with tokio's time.
    pub fn starting_at(origin: DateTime<Utc>) -> Self {
        let clock = Self {
            origin,
            origin_nanos: nanos_of(origin),
            started: Arc::new(OnceLock::new()),
        };
        // Inside a runtime the clock starts now; outside, on its first read in one.
        let _ = clock.started();
        clock
    }

    /// The wall clock: UTC now, advancing in real time.
    pub fn real() -> Self {
        Self::starting_at(Utc::now())
    }

    /// The tokio instant `origin` maps to, fixed on the first read inside a runtime.
    fn started(&self) -> Option<Instant> {
        if let Some(s) = self.started.get() {
            return Some(*s);
        }
        tokio::runtime::Handle::try_current()
            .ok()
            .map(|_| *self.started.get_or_init(Instant::now))
    }
}

#[async_trait]
impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let Some(started) = self.started() else {
            return self.origin;
        };
        let elapsed = TimeDelta::from_std(tokio_now().saturating_duration_since(started))
            .unwrap_or(TimeDelta::MAX);
        self.origin
            .checked_add_signed(elapsed)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    fn now_nanos(&self) -> i64 {
        let Some(started) = self.started() else {
            return self.origin_nanos;
        };
        let reading = |at: Instant| {
            let elapsed =
                i64::try_from(at.saturating_duration_since(started).as_nanos()).unwrap_or(i64::MAX);
            self.origin_nanos.saturating_add(elapsed)
        };
        let Some(mut one) = ONE_INSTANT.get() else {
            return reading(Instant::now());
        };
        // Clones share `started`: its address names the clock, its instant guards
        // against a new clock at a freed address.
        let clock = Arc::as_ptr(&self.started) as usize;
        match one.last {
            Some((c, s, nanos)) if c == clock && s == started => nanos,
            _ => {
                let nanos = reading(one.at);
                one.last = Some((clock, started, nanos));
                ONE_INSTANT.set(Some(one));
                nanos
            }
        }
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        let started = self.started().unwrap_or_else(Instant::now);
        let ahead = (deadline - self.origin).to_std().unwrap_or_default();
        tokio::time::sleep_until(started + ahead).await;
    }
}

/// A clock that moves only when told: deterministic synchronous tests and benches of
/// long processes in microseconds, with no sleeps.
///
/// Clones share the same time. [`ManualClock::advance`] and
/// [`ManualClock::advance_to`] move it and wake every waiter whose deadline has come.
///
/// ```
/// use std::time::Duration;
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex_core::clock::{Clock, ManualClock};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let t0 = Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap();
/// let clock = ManualClock::new(t0);
/// let waiter = clock.clone();
/// let ((), ()) = tokio::join!(
///     waiter.sleep_until(t0 + TimeDelta::minutes(15)),
///     async { clock.advance(Duration::from_secs(900)) },
/// );
/// assert_eq!(clock.now(), t0 + TimeDelta::minutes(15));
/// assert!(clock.advance_to(t0).is_err()); // never backwards
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    time: Arc<watch::Sender<DateTime<Utc>>>,
    /// The same time as nanoseconds since the Unix epoch, for lock-free `now_nanos`;
    /// written under the channel's lock, so it never disagrees with it for a reader
    /// that reads it after the change.
    nanos: Arc<AtomicI64>,
}

fn nanos_of(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

impl Default for ManualClock {
    /// A clock reading 2025-01-01T00:00:00Z.
    fn default() -> Self {
        let epoch = Utc
            .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::UNIX_EPOCH);
        Self::new(epoch)
    }
}

impl ManualClock {
    /// A clock reading `start` until advanced.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            time: Arc::new(watch::Sender::new(start)),
            nanos: Arc::new(AtomicI64::new(nanos_of(start))),
        }
    }

    /// Moves the clock forward by `by`, saturating at the end of representable time.
    pub fn advance(&self, by: Duration) {
        let by = TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        self.time.send_modify(|now| {
            *now = now
                .checked_add_signed(by)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            self.nanos.store(nanos_of(*now), Ordering::Release);
        });
    }

    /// Moves the clock forward to `t`; refuses an instant before the current time
    /// (the same instant is fine).
    pub fn advance_to(&self, t: DateTime<Utc>) -> Result<(), CoreError> {
        let mut refused = None;
        self.time.send_if_modified(|now| {
            if t < *now {
                refused = Some(*now);
                false
            } else {
                let moved = t > *now;
                *now = t;
                self.nanos.store(nanos_of(t), Ordering::Release);
                moved
            }
        });
        match refused {
            Some(now) => Err(CoreError::ClockBackwards { to: t, now }),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.time.borrow()
    }

    fn now_nanos(&self) -> i64 {
        self.nanos.load(Ordering::Acquire)
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        let mut rx = self.time.subscribe();
        // `wait_for` checks the current value first, then each new one; it fails only
        // when the sender is dropped, which cannot happen while `self` holds it.
        let _ = rx.wait_for(|now| *now >= deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readings of several clocks at one instant each keep their own origin, however
    /// they interleave, and agree with readings outside it at the same paused time.
    #[tokio::test(start_paused = true)]
    async fn one_instant_readings_keep_each_clock_apart() {
        let a = TokioClock::starting_at(t0());
        tokio::time::advance(std::time::Duration::from_millis(3)).await;
        let b = TokioClock::starting_at(t0() + TimeDelta::hours(1));
        let a2 = a.clone();
        let outside = (a.now_nanos(), b.now_nanos());
        let inside = at_one_instant(|| {
            [
                a.now_nanos(),
                b.now_nanos(),
                a2.now_nanos(),
                b.now_nanos(),
                a.now_nanos(),
            ]
        });
        assert_eq!(
            inside,
            [outside.0, outside.1, outside.0, outside.1, outside.0]
        );
        assert_eq!(outside.1 - outside.0, 3_600_000_000_000 - 3_000_000);
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn manual_clock_moves_forward_only() {
        let c = ManualClock::new(t0());
        let t = t0() + TimeDelta::seconds(3);
        assert!(c.advance_to(t).is_ok());
        assert_eq!(c.now(), t);
        assert!(c.advance_to(t).is_ok());
        assert!(matches!(
            c.advance_to(t - TimeDelta::milliseconds(1)),
            Err(CoreError::ClockBackwards { .. })
        ));
        assert_eq!(c.now_nanos(), c.now().timestamp_nanos_opt().unwrap());
        c.advance(Duration::MAX);
        assert_eq!(c.now(), DateTime::<Utc>::MAX_UTC);
        assert_eq!(c.now_nanos(), i64::MAX);
    }

    #[test]
    fn tokio_clock_reads_its_origin_outside_a_runtime() {
        let c = TokioClock::starting_at(t0());
        assert_eq!(c.now(), t0());
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time_exactly() {
        let c = TokioClock::starting_at(t0());
        let other = c.clone();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(other.now(), t0() + TimeDelta::milliseconds(1500));
        assert_eq!(c.now_nanos(), c.now().timestamp_nanos_opt().unwrap());
        c.sleep_until(t0() + TimeDelta::hours(2)).await;
        assert_eq!(c.now(), t0() + TimeDelta::hours(2));
        c.sleep_until(t0()).await; // past: returns at once
        assert_eq!(c.now(), t0() + TimeDelta::hours(2));
    }
}
