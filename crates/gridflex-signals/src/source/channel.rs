//! [`ChannelSource`]: signals pushed by the integrator through a [`SignalSender`].

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::SignalSource;
use crate::{GridSignal, SignalError};

/// A bounded channel: the sender half for the integrator, the source half for gridflex.
/// A `capacity` of 0 is raised to 1.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use gridflex_signals::source::{channel, SignalSource};
/// use gridflex_signals::{GridSignal, RegulationKind, RegulationSample, RegulationSignal};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (tx, mut source) = channel(16);
/// let at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 2).unwrap();
/// let s = GridSignal::Regulation(RegulationSample::new(at, RegulationKind::RegA, RegulationSignal::new(0.3)?));
/// tx.send(s.clone()).await?;
/// drop(tx);
/// assert_eq!(source.next_signal().await?, Some(s));
/// assert_eq!(source.next_signal().await?, None); // every sender gone
/// # Ok::<(), gridflex_signals::SignalError>(())
/// # }).unwrap();
/// ```
pub fn channel(capacity: usize) -> (SignalSender, ChannelSource) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (SignalSender(tx), ChannelSource(rx))
}

/// The integrator's end of a [`channel`]; clone it to push from several tasks.
#[derive(Debug, Clone)]
pub struct SignalSender(mpsc::Sender<GridSignal>);

impl SignalSender {
    /// Sends a signal, waiting while the channel is full; fails with
    /// [`SignalError::ChannelClosed`] once the source is dropped.
    pub async fn send(&self, signal: GridSignal) -> Result<(), SignalError> {
        self.0
            .send(signal)
            .await
            .map_err(|_| SignalError::ChannelClosed)
    }

    /// Sends without waiting; fails with [`SignalError::ChannelFull`] or
    /// [`SignalError::ChannelClosed`].
    pub fn try_send(&self, signal: GridSignal) -> Result<(), SignalError> {
        self.0.try_send(signal).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SignalError::ChannelFull,
            mpsc::error::TrySendError::Closed(_) => SignalError::ChannelClosed,
        })
    }
}

/// gridflex's end of a [`channel`]: yields signals in the order they were sent, and
/// `None` once every sender is dropped and the channel is drained. Cancel-safe.
#[derive(Debug)]
pub struct ChannelSource(mpsc::Receiver<GridSignal>);

#[async_trait]
impl SignalSource for ChannelSource {
    async fn next_signal(&mut self) -> Result<Option<GridSignal>, SignalError> {
        Ok(self.0.recv().await)
    }
}
