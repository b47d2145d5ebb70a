//! [`PollingSource`]: turns a price poller into a [`SignalSource`].

use std::collections::{HashSet, VecDeque};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::{Interval, PricingNodeId};

use crate::parse::{ParseOutput, SkippedRow};
use crate::source::SignalSource;
use crate::{GridSignal, MarketRun, PricePoint, SignalError};
use gridflex_core::Clock;

/// Something that fetches the prices of a time window ([`super::OasisPoller`],
/// [`super::DataMinerPoller`], or a test double).
#[async_trait]
pub trait FetchPrices: Send + Sync {
    /// The prices whose intervals start in `window` (an empty selection is an empty
    /// output, not an error).
    async fn fetch_prices(&self, window: Interval) -> Result<ParseOutput, SignalError>;
}

/// Polls a [`FetchPrices`] every `every` on a [`Clock`] and yields each price once.
///
/// Each poll asks for `[now - lookback, now + lookahead)` (defaults 1 hour and 24
/// hours, so day-ahead prices are seen when published and late real-time ones are
/// caught); prices already yielded (same run, node and interval start) are not
/// yielded again. It never ends; a failed poll returns its error and the next call
/// polls again at the next period. Rows a lenient poller skipped are counted, and the
/// first [`SKIPPED_EXAMPLES`](crate::parse::SKIPPED_EXAMPLES) since the last take are
/// kept, for [`PollingSource::take_skipped`].
pub struct PollingSource<F, C> {
    fetcher: F,
    clock: C,
    every: TimeDelta,
    lookback: TimeDelta,
    lookahead: TimeDelta,
    next_poll: DateTime<Utc>,
    queue: VecDeque<PricePoint>,
    seen: HashSet<(MarketRun, PricingNodeId, DateTime<Utc>)>,
    skipped: Vec<SkippedRow>,
    skipped_count: u64,
}

impl<F: FetchPrices, C: Clock> PollingSource<F, C> {
    /// Polls now, then every `every` (which must be positive).
    pub fn new(fetcher: F, clock: C, every: TimeDelta) -> Result<Self, SignalError> {
        if every <= TimeDelta::zero() {
            return Err(SignalError::invalid(
                "polling period",
                format!("{every} is not positive"),
            ));
        }
        let next_poll = clock.now();
        Ok(Self {
            fetcher,
            clock,
            every,
            lookback: TimeDelta::hours(1),
            lookahead: TimeDelta::hours(24),
            next_poll,
            queue: VecDeque::new(),
            seen: HashSet::new(),
            skipped: Vec::new(),
            skipped_count: 0,
        })
    }

    /// Sets the window each poll asks for around the current time (both non-negative,
    /// not both zero).
    pub fn with_window(
        mut self,
        lookback: TimeDelta,
        lookahead: TimeDelta,
    ) -> Result<Self, SignalError> {
        if lookback < TimeDelta::zero()
            || lookahead < TimeDelta::zero()
            || lookback + lookahead <= TimeDelta::zero()
        {
            return Err(SignalError::invalid(
                "polling window",
                format!(
                    "lookback {lookback} and lookahead {lookahead} must be non-negative and not both zero"
                ),
            ));
        }
        self.lookback = lookback;
        self.lookahead = lookahead;
        Ok(self)
    }

    /// Rows skipped by a lenient poller since the last call (the first
    /// [`SKIPPED_EXAMPLES`](crate::parse::SKIPPED_EXAMPLES) of them), and how many
    /// were skipped in all.
    pub fn take_skipped(&mut self) -> (Vec<SkippedRow>, u64) {
        (
            std::mem::take(&mut self.skipped),
            std::mem::take(&mut self.skipped_count),
        )
    }

    async fn poll(&mut self) -> Result<(), SignalError> {
        self.clock.sleep_until(self.next_poll).await;
        let now = self.clock.now();
        let overflow =
            || SignalError::invalid("polling window", "runs past the representable time range");
        self.next_poll = now.checked_add_signed(self.every).ok_or_else(overflow)?;
        let window = Interval::new(
            now.checked_sub_signed(self.lookback).ok_or_else(overflow)?,
            now.checked_add_signed(self.lookahead)
                .ok_or_else(overflow)?,
        )?;
        let out = self.fetcher.fetch_prices(window).await?;
        // Forget what can no longer come back, so memory stays bounded.
        self.seen.retain(|(_, _, start)| *start >= window.start());
        for p in out.points {
            if self
                .seen
                .insert((p.run, p.node.clone(), p.interval.start()))
            {
                self.queue.push_back(p);
            }
        }
        let room = crate::parse::SKIPPED_EXAMPLES.saturating_sub(self.skipped.len());
        self.skipped.extend(out.skipped.into_iter().take(room));
        self.skipped_count = self.skipped_count.saturating_add(out.skipped_count);
        Ok(())
    }
}

#[async_trait]
impl<F: FetchPrices, C: Clock> SignalSource for PollingSource<F, C> {
    async fn next_signal(&mut self) -> Result<Option<GridSignal>, SignalError> {
        loop {
            if let Some(p) = self.queue.pop_front() {
                return Ok(Some(GridSignal::Price(p)));
            }
            self.poll().await?;
        }
    }
}
