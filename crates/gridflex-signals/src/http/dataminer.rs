//! [`DataMinerPoller`]: PJM Data Miner 2 LMP feeds.

use async_trait::async_trait;
use gridflex_core::{Interval, MarketZone, PricingNodeId};

use super::client::{Backoff, HttpGet, get_ok};
use super::encode;
use super::polling::FetchPrices;
use crate::parse::{Format, ParseOptions, ParseOutput, parse_pjm_json_bytes};
use crate::{Market, MarketRun, SignalError};
use gridflex_core::Clock;

/// Fetches LMPs for a set of pricing nodes from PJM Data Miner 2.
///
/// The request is `GET {base}/{feed}?rowCount=N&startRow=1&row_is_current=TRUE
/// &datetime_beginning_ept=MM/DD/YYYY HH:MMtoMM/DD/YYYY HH:MM&pnode_id=1;2` with the
/// key in the `Ocp-Apim-Subscription-Key` header; later pages are fetched by
/// following each answer's `next` link (reference `markets.md` §f). The key is sent
/// only to the host of the base URL: a `next` link or a redirect to another host is
/// an error. The time filter is
/// in Eastern prevailing time with an inclusive end, so the poller asks for the local
/// span of the window and keeps only points whose UTC start lies in the window
/// (the repeated 1 am hour of the fall-back day is handled this way).
#[derive(Debug, Clone)]
pub struct DataMinerPoller<H, C> {
    client: H,
    clock: C,
    run: MarketRun,
    nodes: Vec<PricingNodeId>,
    api_key: String,
    base_url: String,
    row_count: u32,
    max_pages: u32,
    backoff: Backoff,
    options: ParseOptions,
}

impl<H: HttpGet, C: Clock> DataMinerPoller<H, C> {
    /// The public Data Miner 2 API root.
    pub const DEFAULT_URL: &'static str = "https://api.pjm.com/api/v1";

    /// A poller for `run` (a PJM run) and `nodes` (at least one), with an API key.
    pub fn new(
        client: H,
        clock: C,
        run: MarketRun,
        nodes: Vec<PricingNodeId>,
        api_key: impl Into<String>,
    ) -> Result<Self, SignalError> {
        super::check_target("Data Miner poller", Market::Pjm, run, &nodes)?;
        Ok(Self {
            client,
            clock,
            run,
            nodes,
            api_key: api_key.into(),
            base_url: Self::DEFAULT_URL.to_owned(),
            row_count: 50_000,
            max_pages: 1_000,
            backoff: Backoff::default(),
            options: ParseOptions::strict().with_run(run),
        })
    }

    /// The Data Miner feed of a run.
    pub fn feed(run: MarketRun) -> &'static str {
        match run {
            MarketRun::PjmRealTimeHourly => "rt_hrl_lmps",
            MarketRun::PjmRealTimeFiveMinute => "rt_fivemin_hrl_lmps",
            _ => "da_hrl_lmps",
        }
    }

    /// Uses another API root (a local test server).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Rows per page (Data Miner allows at most 50,000, the default).
    pub fn with_row_count(mut self, rows: u32) -> Self {
        self.row_count = rows.clamp(1, 50_000);
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

    /// The first page's URL for a window.
    pub fn url(&self, window: Interval) -> String {
        let local = |t| {
            MarketZone::Pjm
                .to_local(t)
                .format("%m/%d/%Y %H:%M")
                .to_string()
        };
        let last = window.end() - chrono::TimeDelta::minutes(1);
        let range = format!(
            "{}to{}",
            local(window.start()),
            local(last.max(window.start()))
        );
        let nodes: Vec<&str> = self.nodes.iter().map(|n| n.as_str()).collect();
        format!(
            "{}/{}?rowCount={}&startRow=1&row_is_current=TRUE&datetime_beginning_ept={}&pnode_id={}",
            self.base_url.trim_end_matches('/'),
            Self::feed(self.run),
            self.row_count,
            encode(&range),
            encode(&nodes.join(";"))
        )
    }

    /// Fetches every page of `window` and parses them into one output.
    pub async fn fetch(&self, window: Interval) -> Result<ParseOutput, SignalError> {
        let headers = [("Ocp-Apim-Subscription-Key".to_owned(), self.api_key.clone())];
        let mut url = self.url(window);
        let mut all = ParseOutput::empty(Format::PjmJson);
        for _ in 0..self.max_pages {
            let body = get_ok(&self.client, &self.clock, &self.backoff, &url, &headers).await?;
            let page = parse_pjm_json_bytes(&body, &self.options)?;
            all.points.extend(
                page.points
                    .into_iter()
                    .filter(|p| window.contains(p.interval.start())),
            );
            all.add_skipped(page.skipped, page.skipped_count);
            match page.next_page {
                Some(next) if next != url => {
                    // The key goes only to the configured host: a paging link
                    // elsewhere is refused, never followed with (or without) it.
                    if super::client::origin(&next) != super::client::origin(&self.base_url) {
                        return Err(SignalError::Http {
                            url: next,
                            status: None,
                            reason: format!(
                                "the next-page link leaves the configured host {}; not followed, so the API key is not sent there",
                                self.base_url
                            ),
                        });
                    }
                    url = next;
                }
                _ => {
                    all.points.sort_by(|a, b| {
                        (a.interval.start(), &a.node).cmp(&(b.interval.start(), &b.node))
                    });
                    return Ok(all);
                }
            }
        }
        Err(SignalError::Http {
            url,
            status: None,
            reason: format!("more than {} pages", self.max_pages),
        })
    }
}

#[async_trait]
impl<H: HttpGet, C: Clock> FetchPrices for DataMinerPoller<H, C> {
    async fn fetch_prices(&self, window: Interval) -> Result<ParseOutput, SignalError> {
        self.fetch(window).await
    }
}
