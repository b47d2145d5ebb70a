//! Signal sources: the async [`SignalSource`] trait, a [`ReplaySource`] that plays a
//! JSON-lines file back on a [`Clock`](gridflex_core::Clock), and a [`ChannelSource`]
//! integrators push signals into.

mod channel;
mod replay;

use async_trait::async_trait;

pub use channel::{ChannelSource, SignalSender, channel};
pub use replay::ReplaySource;

use crate::{GridSignal, SignalError};

/// Something that yields grid signals over time.
///
/// `Ok(None)` means the source is finished (file played out, all senders gone); an
/// error is for that call, and a source documents whether it can be called again.
#[async_trait]
pub trait SignalSource: Send {
    /// Waits for and returns the next signal.
    async fn next_signal(&mut self) -> Result<Option<GridSignal>, SignalError>;
}

#[async_trait]
impl<S: SignalSource + ?Sized> SignalSource for Box<S> {
    async fn next_signal(&mut self) -> Result<Option<GridSignal>, SignalError> {
        (**self).next_signal().await
    }
}
