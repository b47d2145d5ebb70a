//! How a simulated GPU reads the clock it is given: nanoseconds since the instant it
//! was built, the unit its physics steps in.
//!
//! The simulator never moves a clock. It reads the shared [`Clock`] (a
//! [`TokioClock`](gridflex_core::TokioClock) under the orchestrator, a
//! [`ManualClock`](gridflex_core::ManualClock) in synchronous tests) and catches its
//! state up to that time whenever it is read or commanded.

use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::clock::{Clock, SharedClock};

/// A shared clock and the instant a GPU started reading it.
#[derive(Debug, Clone)]
pub(crate) struct SimTime {
    clock: SharedClock,
    epoch: DateTime<Utc>,
    /// `epoch` as nanoseconds since the Unix epoch.
    epoch_nanos: i64,
}

impl SimTime {
    /// Starts reading `clock` now.
    pub(crate) fn new(clock: SharedClock) -> Self {
        let epoch = clock.now();
        let epoch_nanos = epoch
            .timestamp_nanos_opt()
            .unwrap_or(if epoch.timestamp() < 0 {
                i64::MIN
            } else {
                i64::MAX
            });
        Self {
            clock,
            epoch,
            epoch_nanos,
        }
    }

    /// The clock read.
    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Nanoseconds since the epoch now (0 if the clock reads earlier, which a clock
    /// never does).
    pub(crate) fn nanos(&self) -> u64 {
        self.nanos_at(self.clock.now_nanos())
    }

    /// Nanoseconds since the epoch at `raw`, a reading of the clock's
    /// [`now_nanos`](gridflex_core::Clock::now_nanos) (0 before the epoch): GPUs that share a
    /// clock can share one reading for a command that spans them.
    pub(crate) fn nanos_at(&self, raw: i64) -> u64 {
        u64::try_from(raw.saturating_sub(self.epoch_nanos)).unwrap_or(0)
    }

    /// The instant `nanos` after the epoch.
    pub(crate) fn at_nanos(&self, nanos: u64) -> DateTime<Utc> {
        let delta = TimeDelta::nanoseconds(i64::try_from(nanos).unwrap_or(i64::MAX));
        self.epoch
            .checked_add_signed(delta)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Nanoseconds since the epoch of `t`, or `None` before the epoch.
    pub(crate) fn nanos_of(&self, t: DateTime<Utc>) -> Option<u64> {
        (t - self.epoch)
            .num_nanoseconds()
            .and_then(|n| u64::try_from(n).ok())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use gridflex_core::ManualClock;

    use super::*;

    #[test]
    fn reads_the_clock_it_is_given() {
        let clock = ManualClock::default();
        let t = SimTime::new(Arc::new(clock.clone()));
        assert_eq!(t.nanos(), 0);
        clock.advance(Duration::from_millis(250));
        assert_eq!(t.nanos(), 250_000_000);
        assert_eq!(t.at_nanos(t.nanos()), clock.now());
        assert_eq!(t.nanos_of(clock.now() - TimeDelta::days(1)), None);
    }
}
