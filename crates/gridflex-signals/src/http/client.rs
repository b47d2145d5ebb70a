//! The HTTP seam and its `ureq` implementation, with rate-limit back-off.

use std::time::Duration;

use async_trait::async_trait;
use chrono::TimeDelta;

use crate::SignalError;
use crate::clock::Clock;

/// A response: status, any `Retry-After` delay, and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The `Retry-After` header, when given in seconds.
    pub retry_after: Option<Duration>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response.
    pub fn new(status: u16, retry_after: Option<Duration>, body: Vec<u8>) -> Self {
        Self {
            status,
            retry_after,
            body,
        }
    }
}

/// Performs an HTTP GET. Implement it to route the pollers through your own client.
#[async_trait]
pub trait HttpGet: Send + Sync {
    /// GETs `url` with extra `headers`; any status is a response, only transport
    /// failures are errors.
    async fn get(
        &self,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<HttpResponse, SignalError>;
}

/// [`HttpGet`] over a blocking `ureq` agent (rustls), run with `spawn_blocking`.
#[derive(Debug, Clone)]
pub struct UreqClient {
    agent: ureq::Agent,
    max_body: u64,
}

impl UreqClient {
    /// A client with a whole-request `timeout`, the system proxy settings
    /// (`HTTPS_PROXY`, ...), and a 1 GiB body limit.
    pub fn new(timeout: Duration) -> Self {
        Self::build(timeout, true)
    }

    /// The same without any proxy, for local servers.
    pub fn without_proxy(timeout: Duration) -> Self {
        Self::build(timeout, false)
    }

    fn build(timeout: Duration, env_proxy: bool) -> Self {
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false);
        if !env_proxy {
            config = config.proxy(None);
        }
        Self {
            agent: config.build().into(),
            max_body: 1 << 30,
        }
    }

    /// The largest body accepted, in bytes.
    pub fn with_max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes;
        self
    }
}

#[async_trait]
impl HttpGet for UreqClient {
    async fn get(
        &self,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<HttpResponse, SignalError> {
        let agent = self.agent.clone();
        let max_body = self.max_body;
        let owned_url = url.to_owned();
        let headers = headers.to_vec();
        let fail = |reason: String| SignalError::Http {
            url: url.to_owned(),
            status: None,
            reason,
        };
        tokio::task::spawn_blocking(move || {
            let mut request = agent.get(&owned_url);
            for (k, v) in &headers {
                request = request.header(k, v);
            }
            let mut response = request.call().map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = response
                .body_mut()
                .with_config()
                .limit(max_body)
                .read_to_vec()
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(HttpResponse::new(status, retry_after, body))
        })
        .await
        .map_err(|e| fail(format!("request task failed: {e}")))?
        .map_err(fail)
    }
}

/// How to wait out rate limiting (HTTP 429, and 503).
///
/// Waits `Retry-After` when the server sends it, else `initial` doubled on each retry
/// up to `max`; gives up after `retries` retries. Defaults: 5 s (the pause gridstatus
/// keeps between OASIS calls, reference `markets.md` §f), 120 s, 5 retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// First wait.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Retries before giving up.
    pub retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(120),
            retries: 5,
        }
    }
}

impl Backoff {
    /// A policy.
    pub fn new(initial: Duration, max: Duration, retries: u32) -> Self {
        Self {
            initial,
            max,
            retries,
        }
    }

    fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let doubled = self.initial.saturating_mul(1u32 << attempt.min(20));
        retry_after.unwrap_or(doubled).min(self.max)
    }
}

/// GETs `url` until it answers 200, waiting on `clock` between rate-limited tries.
pub(crate) async fn get_ok<H: HttpGet + ?Sized, C: Clock + ?Sized>(
    client: &H,
    clock: &C,
    backoff: &Backoff,
    url: &str,
    headers: &[(String, String)],
) -> Result<Vec<u8>, SignalError> {
    let mut attempt = 0;
    loop {
        let response = client.get(url, headers).await?;
        match response.status {
            200 => return Ok(response.body),
            429 | 503 if attempt < backoff.retries => {
                let wait = backoff.wait(attempt, response.retry_after);
                let wait = TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX);
                let until = clock
                    .now()
                    .checked_add_signed(wait)
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
                clock.sleep_until(until).await;
                attempt += 1;
            }
            status => {
                let snippet: String = String::from_utf8_lossy(&response.body)
                    .chars()
                    .take(200)
                    .collect();
                let reason = if matches!(status, 429 | 503) {
                    format!("still rate limited after {attempt} retries")
                } else {
                    format!("unexpected status: {snippet}")
                };
                return Err(SignalError::Http {
                    url: url.to_owned(),
                    status: Some(status),
                    reason,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_honours_retry_after() {
        let b = Backoff::default();
        assert_eq!(b.wait(0, None), Duration::from_secs(5));
        assert_eq!(b.wait(2, None), Duration::from_secs(20));
        assert_eq!(b.wait(10, None), Duration::from_secs(120));
        assert_eq!(
            b.wait(0, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            b.wait(0, Some(Duration::from_secs(700))),
            Duration::from_secs(120)
        );
    }
}
