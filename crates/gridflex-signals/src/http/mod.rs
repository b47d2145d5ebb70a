//! HTTP pollers for CAISO OASIS and PJM Data Miner 2 (feature `http`).
//!
//! - [`HttpGet`]: the one-method seam to an HTTP client; [`UreqClient`] implements it
//!   with a blocking `ureq` agent (rustls) run on tokio's blocking pool.
//! - [`OasisPoller`] and [`DataMinerPoller`] build the operators' query URLs
//!   (reference `markets.md` §f), back off on rate limiting (HTTP 429/503, honouring
//!   `Retry-After`) by waiting on a [`Clock`](gridflex_core::Clock), follow Data
//!   Miner's `next` links, and parse the answers with [`crate::parse`].
//! - [`PollingSource`]: a [`SignalSource`](crate::source::SignalSource) that polls a
//!   [`FetchPrices`] every period and yields each new price once.

mod client;
mod dataminer;
mod oasis;
mod polling;

pub use client::{Backoff, HttpGet, HttpResponse, UreqClient};
pub use dataminer::DataMinerPoller;
pub use oasis::OasisPoller;
pub use polling::{FetchPrices, PollingSource};

/// Checks a poller's target: a run of `market` and at least one node. `poller` names
/// the poller in the error.
pub(crate) fn check_target(
    poller: &'static str,
    market: crate::Market,
    run: crate::MarketRun,
    nodes: &[gridflex_core::PricingNodeId],
) -> Result<(), crate::SignalError> {
    if run.market() != market {
        return Err(crate::SignalError::invalid(
            poller,
            format!("{run} is not a {market} run"),
        ));
    }
    if nodes.is_empty() {
        return Err(crate::SignalError::invalid(poller, "no nodes"));
    }
    Ok(())
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
pub(crate) use gridflex_core::url::encode_component as encode;

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_reserved_characters() {
        assert_eq!(
            super::encode("7/1/2024 00:00to7/1/2024 01:00"),
            "7%2F1%2F2024%2000%3A00to7%2F1%2F2024%2001%3A00"
        );
        assert_eq!(super::encode("TH_NP15_GEN-APND"), "TH_NP15_GEN-APND");
    }
}
