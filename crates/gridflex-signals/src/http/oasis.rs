//! [`OasisPoller`]: CAISO OASIS `SingleZip` price queries.

use std::io::Cursor;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gridflex_core::{Interval, PricingNodeId};

use super::client::{Backoff, HttpGet, get_ok};
use super::encode;
use super::polling::FetchPrices;
use crate::parse::{ParseOptions, ParseOutput, parse_oasis_zip};
use crate::{Market, MarketRun, SignalError};
use gridflex_core::Clock;

/// Fetches LMPs for a set of nodes from CAISO OASIS.
///
/// The request is `GET {base}?queryname=…&startdatetime=YYYYMMDDTHH:MM-0000&enddatetime=…
/// &version=N&market_run_id=…&node=A,B&resultformat=6` (reference `markets.md` §f);
/// the zip that comes back is parsed with [`parse_oasis_zip`]. Query names and
/// versions: DAM `PRC_LMP` v12, RTPD `PRC_RTPD_LMP` v3, RTM `PRC_INTVL_LMP` v3 (as
/// gridstatus uses them); HASP `PRC_HASP_LMP` v3 is not confirmed by the reference
/// and can be changed with [`OasisPoller::with_version`]. OASIS needs no key.
#[derive(Debug, Clone)]
pub struct OasisPoller<H, C> {
    client: H,
    clock: C,
    run: MarketRun,
    nodes: Vec<PricingNodeId>,
    base_url: String,
    version: u32,
    backoff: Backoff,
    options: ParseOptions,
}

impl<H: HttpGet, C: Clock> OasisPoller<H, C> {
    /// The public OASIS endpoint.
    pub const DEFAULT_URL: &'static str = "https://oasis.caiso.com/oasisapi/SingleZip";

    /// A poller for `run` (a CAISO run) and `nodes` (at least one).
    pub fn new(
        client: H,
        clock: C,
        run: MarketRun,
        nodes: Vec<PricingNodeId>,
    ) -> Result<Self, SignalError> {
        super::check_target("OASIS poller", Market::Caiso, run, &nodes)?;
        Ok(Self {
            client,
            clock,
            run,
            nodes,
            base_url: Self::DEFAULT_URL.to_owned(),
            version: Self::default_version(run),
            backoff: Backoff::default(),
            options: ParseOptions::strict().with_run(run),
        })
    }

    /// The OASIS query name of a run.
    pub fn query_name(run: MarketRun) -> &'static str {
        match run {
            MarketRun::CaisoRtpd => "PRC_RTPD_LMP",
            MarketRun::CaisoRtm => "PRC_INTVL_LMP",
            MarketRun::CaisoHasp => "PRC_HASP_LMP",
            _ => "PRC_LMP",
        }
    }

    fn default_version(run: MarketRun) -> u32 {
        if run == MarketRun::CaisoDam { 12 } else { 3 }
    }

    /// Uses another endpoint (a mirror, or a local test server).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Uses another report version.
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Uses another back-off policy.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Parses leniently (bad rows come back in `skipped`).
    pub fn lenient(mut self) -> Self {
        self.options = ParseOptions::lenient().with_run(self.run);
        self
    }

    fn stamp(t: DateTime<Utc>) -> String {
        t.format("%Y%m%dT%H:%M-0000").to_string()
    }

    /// The request URL for a window.
    pub fn url(&self, window: Interval) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|n| encode(n.as_str())).collect();
        format!(
            "{}?queryname={}&startdatetime={}&enddatetime={}&version={}&market_run_id={}&node={}&resultformat=6",
            self.base_url,
            Self::query_name(self.run),
            Self::stamp(window.start()),
            Self::stamp(window.end()),
            self.version,
            self.run.name(),
            nodes.join(",")
        )
    }

    /// Fetches and parses the prices of `window`. An empty selection is
    /// [`SignalError::NoData`], as OASIS reports it.
    pub async fn fetch(&self, window: Interval) -> Result<ParseOutput, SignalError> {
        let url = self.url(window);
        let body = get_ok(&self.client, &self.clock, &self.backoff, &url, &[]).await?;
        parse_oasis_zip(Cursor::new(body), &self.options)
    }
}

#[async_trait]
impl<H: HttpGet, C: Clock> FetchPrices for OasisPoller<H, C> {
    async fn fetch_prices(&self, window: Interval) -> Result<ParseOutput, SignalError> {
        match self.fetch(window).await {
            Err(SignalError::NoData { .. }) => {
                Ok(ParseOutput::empty(crate::parse::Format::OasisZip))
            }
            other => other,
        }
    }
}
