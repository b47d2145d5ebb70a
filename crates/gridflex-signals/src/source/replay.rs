//! [`ReplaySource`]: a JSON-lines file of signals released each at its time.

use std::collections::VecDeque;
use std::io::BufRead;

use async_trait::async_trait;

use super::SignalSource;
use crate::{GridSignal, Location, SignalError, read_json_lines};
use gridflex_core::Clock;

/// Plays recorded signals back, releasing each when the clock reaches its
/// [`GridSignal::time`].
///
/// The whole file is read and checked when the source is built (every line must
/// parse, and times must not go backwards), so a bad file fails before any signal is
/// released. Signals whose time has already passed are released at once.
/// `next_signal` is cancel-safe: a signal is removed only when it is returned.
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex_core::clock::{Clock, TokioClock};
/// use gridflex_signals::source::{ReplaySource, SignalSource};
///
/// let file = r#"{"type":"regulation","at":"2025-01-01T00:00:02Z","kind":"RegD","signal":0.5}
/// {"type":"regulation","at":"2025-01-01T00:00:04Z","kind":"RegD","signal":-0.25}
/// "#;
/// let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
/// // Paused tokio time: the replay jumps straight to each signal's time.
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let clock = TokioClock::starting_at(t0);
/// let mut replay = ReplaySource::from_json_lines(file.as_bytes(), clock.clone())?;
/// let first = replay.next_signal().await?.unwrap();
/// assert_eq!(clock.now(), t0 + TimeDelta::seconds(2)); // released at its time
/// assert_eq!(first.time(), clock.now());
/// assert!(replay.next_signal().await?.is_some());
/// assert!(replay.next_signal().await?.is_none());
/// # Ok::<(), gridflex_signals::SignalError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct ReplaySource<C> {
    signals: VecDeque<GridSignal>,
    clock: C,
}

impl<C: Clock> ReplaySource<C> {
    /// Reads a JSON-lines file of [`GridSignal`]s (blank lines allowed); errors name the line.
    pub fn from_json_lines<R: BufRead>(input: R, clock: C) -> Result<Self, SignalError> {
        let mut signals = VecDeque::new();
        let mut previous: Option<chrono::DateTime<chrono::Utc>> = None;
        for (signal, line) in read_json_lines(input) {
            let signal = signal?;
            let this = signal.time();
            if let Some(previous) = previous
                && this < previous
            {
                return Err(SignalError::OutOfOrder {
                    at: Box::new(Location::line(line)),
                    previous,
                    this,
                });
            }
            previous = Some(this);
            signals.push_back(signal);
        }
        Ok(Self { signals, clock })
    }

    /// Replays signals already in memory; they must be in time order (errors name the
    /// 0-based index as `item`).
    pub fn from_signals(signals: Vec<GridSignal>, clock: C) -> Result<Self, SignalError> {
        for (i, w) in signals.windows(2).enumerate() {
            if w[1].time() < w[0].time() {
                return Err(SignalError::OutOfOrder {
                    at: Box::new(Location::item(i as u64 + 1)),
                    previous: w[0].time(),
                    this: w[1].time(),
                });
            }
        }
        Ok(Self {
            signals: signals.into(),
            clock,
        })
    }

    /// The clock the source waits on.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// How many signals are still to be released.
    pub fn remaining(&self) -> usize {
        self.signals.len()
    }
}

#[async_trait]
impl<C: Clock> SignalSource for ReplaySource<C> {
    async fn next_signal(&mut self) -> Result<Option<GridSignal>, SignalError> {
        let Some(due) = self.signals.front().map(GridSignal::time) else {
            return Ok(None);
        };
        self.clock.sleep_until(due).await;
        Ok(self.signals.pop_front())
    }
}
