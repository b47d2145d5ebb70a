//! [`SimClock`]: the virtual clock every simulated device reads.
//!
//! Time moves only when the owner calls [`SimClock::advance`] or
//! [`SimClock::advance_to`] (as tokio's paused clock does), so a 3-hour event replays in
//! milliseconds and every run is reproducible. Clones share one clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use crate::HalError;

#[derive(Debug)]
struct Inner {
    epoch: DateTime<Utc>,
    /// Nanoseconds since `epoch`; only ever increases.
    nanos: AtomicU64,
}

/// A shared, monotonic virtual clock with nanosecond resolution.
///
/// ```
/// use std::time::Duration;
/// use gridflex_hal::sim::SimClock;
/// let clock = SimClock::default();
/// let other = clock.clone();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(other.elapsed(), Duration::from_millis(250));
/// assert!(clock.advance_to(clock.epoch()).is_err()); // never backwards
/// ```
#[derive(Debug, Clone)]
pub struct SimClock {
    inner: Arc<Inner>,
}

impl Default for SimClock {
    /// A clock starting at 2025-01-01T00:00:00Z.
    fn default() -> Self {
        let epoch = Utc
            .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::UNIX_EPOCH);
        Self::new(epoch)
    }
}

impl SimClock {
    /// A clock that reads `epoch` until advanced.
    pub fn new(epoch: DateTime<Utc>) -> Self {
        Self {
            inner: Arc::new(Inner {
                epoch,
                nanos: AtomicU64::new(0),
            }),
        }
    }

    /// The instant the clock started at.
    pub fn epoch(&self) -> DateTime<Utc> {
        self.inner.epoch
    }

    /// Virtual time since the epoch.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos())
    }

    /// The current virtual instant.
    pub fn now(&self) -> DateTime<Utc> {
        self.at_nanos(self.nanos())
    }

    /// Moves the clock forward by `by` (saturating at about 584 years after the epoch).
    pub fn advance(&self, by: Duration) {
        let add = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .inner
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(add))
            });
    }

    /// Moves the clock forward to `t`; refuses an instant before the current time.
    pub fn advance_to(&self, t: DateTime<Utc>) -> Result<(), HalError> {
        let target = (t - self.inner.epoch)
            .num_nanoseconds()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| HalError::InvalidConfig {
                field: "clock target",
                reason: format!("{t} is before the clock epoch {}", self.inner.epoch),
            })?;
        let result = self
            .inner
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (target >= n).then_some(target)
            });
        result.map(|_| ()).map_err(|n| HalError::InvalidConfig {
            field: "clock target",
            reason: format!(
                "{t} is before the current virtual time {}",
                self.at_nanos(n)
            ),
        })
    }

    /// True when `other` is a clone of this clock (they share time), not merely a clock
    /// that happens to read the same.
    pub fn shares_time_with(&self, other: &SimClock) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Nanoseconds since the epoch.
    pub(crate) fn nanos(&self) -> u64 {
        self.inner.nanos.load(Ordering::Acquire)
    }

    /// The instant `nanos` after the epoch.
    pub(crate) fn at_nanos(&self, nanos: u64) -> DateTime<Utc> {
        let delta = TimeDelta::nanoseconds(i64::try_from(nanos).unwrap_or(i64::MAX));
        self.inner
            .epoch
            .checked_add_signed(delta)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Nanoseconds since the epoch of `t`, or `None` before the epoch.
    pub(crate) fn nanos_of(&self, t: DateTime<Utc>) -> Option<u64> {
        (t - self.inner.epoch)
            .num_nanoseconds()
            .and_then(|n| u64::try_from(n).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_to_moves_forward_only() {
        let c = SimClock::default();
        let t = c.epoch() + TimeDelta::seconds(3);
        assert!(c.advance_to(t).is_ok());
        assert_eq!(c.now(), t);
        assert!(c.advance_to(t).is_ok()); // same instant is fine
        assert!(c.advance_to(t - TimeDelta::milliseconds(1)).is_err());
        assert!(c.advance_to(c.epoch() - TimeDelta::seconds(1)).is_err());
        assert!(c.shares_time_with(&c.clone()));
        assert!(!c.shares_time_with(&SimClock::default()));
        c.advance(Duration::MAX);
        assert_eq!(c.nanos(), u64::MAX);
    }
}
