//! The HTTP seam and its `ureq` implementation, with rate-limit back-off.

use std::time::Duration;

use async_trait::async_trait;
use chrono::TimeDelta;

use crate::SignalError;
use gridflex_core::Clock;

/// A response: status, any `Retry-After` delay, any `Location`, and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The `Retry-After` header, when given in seconds.
    pub retry_after: Option<Duration>,
    /// The `Location` header of a redirect (3xx), as sent (absolute or relative).
    pub location: Option<String>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response.
    pub fn new(status: u16, retry_after: Option<Duration>, body: Vec<u8>) -> Self {
        Self {
            status,
            retry_after,
            location: None,
            body,
        }
    }

    /// The same response with a `Location` header.
    pub fn with_location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }
}

/// The scheme and authority (`host:port`, lower case, default port filled in) of an
/// absolute URL; `None` when the URL is not absolute.
pub(crate) fn origin(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let mut host_port = host_port.to_ascii_lowercase();
    if host_port.is_empty() {
        return None;
    }
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && !host_port.ends_with(']');
    if !has_port {
        match scheme.as_str() {
            "http" => host_port.push_str(":80"),
            "https" => host_port.push_str(":443"),
            _ => {}
        }
    }
    Some((scheme, host_port))
}

/// Resolves a redirect's `Location` against the URL that answered it.
fn resolve(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    if origin(location).is_some() {
        return Some(location.to_owned());
    }
    let (scheme, rest) = base.split_once("://")?;
    if let Some(path) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{path}"));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let root = format!("{scheme}://{}", &rest[..end]);
    if location.starts_with('/') {
        return Some(format!("{root}{location}"));
    }
    // A relative path: next to the base URL's last path segment.
    let path = rest[end..].split(['?', '#']).next().unwrap_or("");
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    let dir = if dir.is_empty() { "/" } else { dir };
    Some(format!("{root}{dir}{location}"))
}

/// The most redirects followed for one request.
const MAX_REDIRECTS: u32 = 10;

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
///
/// The agent follows no redirect itself: a 3xx comes back as a response with its
/// `Location`, and the pollers decide (credentials go only to the host they were
/// configured for). Bodies are limited to [`UreqClient::DEFAULT_MAX_BODY`] (64 MiB,
/// room for a day of 5-minute prices for every node); raise it with
/// [`UreqClient::with_max_body`].
#[derive(Debug, Clone)]
pub struct UreqClient {
    agent: ureq::Agent,
    max_body: u64,
}

impl UreqClient {
    /// The default body limit: 64 MiB.
    pub const DEFAULT_MAX_BODY: u64 = 64 << 20;

    /// A client with a whole-request `timeout`, the system proxy settings
    /// (`HTTPS_PROXY`, ...), and the [default body limit](Self::DEFAULT_MAX_BODY).
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
            .http_status_as_error(false)
            // Redirects are returned, not followed: `get_ok` follows them only where
            // the request's credentials may go.
            .max_redirects(0);
        if !env_proxy {
            config = config.proxy(None);
        }
        Self {
            agent: config.build().into(),
            max_body: Self::DEFAULT_MAX_BODY,
        }
    }

    /// The largest body accepted, in bytes (a larger one is a transport error).
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
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response
                .body_mut()
                .with_config()
                .limit(max_body)
                .read_to_vec()
                .map_err(|e| e.to_string())?;
            let mut r = HttpResponse::new(status, retry_after, body);
            r.location = location;
            Ok::<_, String>(r)
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

/// GETs `url` until it answers 200, waiting on `clock` between rate-limited tries and
/// following up to 10 redirects.
///
/// A request with `headers` (an API key) follows a redirect only to the same scheme,
/// host and port: the key goes only to the host it was configured for, and a redirect
/// elsewhere is an error. A request without headers follows any redirect.
pub(crate) async fn get_ok<H: HttpGet + ?Sized, C: Clock + ?Sized>(
    client: &H,
    clock: &C,
    backoff: &Backoff,
    url: &str,
    headers: &[(String, String)],
) -> Result<Vec<u8>, SignalError> {
    let mut attempt = 0;
    let mut redirects = 0;
    let mut current = url.to_owned();
    let url = current.clone();
    let url = url.as_str();
    loop {
        let response = client.get(&current, headers).await?;
        match response.status {
            200 => return Ok(response.body),
            301 | 302 | 303 | 307 | 308 => {
                let fail = |reason: String| SignalError::Http {
                    url: current.clone(),
                    status: Some(response.status),
                    reason,
                };
                let Some(location) = response.location.as_deref() else {
                    return Err(fail("redirect without a Location header".into()));
                };
                let Some(next) = resolve(&current, location) else {
                    return Err(fail(format!(
                        "redirect to an unusable Location {location:?}"
                    )));
                };
                if !headers.is_empty() && origin(&next) != origin(url) {
                    return Err(fail(format!(
                        "redirect to another host ({}): the request's credentials go only to {}; not followed",
                        origin(&next).map_or_else(|| next.clone(), |(s, h)| format!("{s}://{h}")),
                        origin(url).map_or_else(|| url.to_owned(), |(s, h)| format!("{s}://{h}")),
                    )));
                }
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(fail(format!("more than {MAX_REDIRECTS} redirects")));
                }
                current = next;
            }
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
                    url: current,
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
    fn origins_and_redirect_targets() {
        let o = |u: &str| origin(u).map(|(s, h)| format!("{s}://{h}"));
        assert_eq!(
            o("https://api.pjm.com/api/v1/x?a=1").as_deref(),
            Some("https://api.pjm.com:443")
        );
        assert_eq!(
            o("HTTPS://API.pjm.com:443/").as_deref(),
            Some("https://api.pjm.com:443")
        );
        assert_eq!(
            o("http://user@127.0.0.1:8080?x").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            o("https://api.pjm.com@evil.example/").as_deref(),
            Some("https://evil.example:443")
        );
        assert_eq!(o("/relative"), None);
        assert_ne!(
            o("https://api.pjm.com/"),
            o("https://api.pjm.com.evil.example/")
        );
        assert_ne!(o("https://api.pjm.com/"), o("http://api.pjm.com/"));
        let base = "https://api.pjm.com/api/v1/da?x=1";
        assert_eq!(
            resolve(base, "/api/v2/y").as_deref(),
            Some("https://api.pjm.com/api/v2/y")
        );
        assert_eq!(
            resolve(base, "z?k=1").as_deref(),
            Some("https://api.pjm.com/api/v1/z?k=1")
        );
        assert_eq!(
            resolve(base, "//evil.example/k").as_deref(),
            Some("https://evil.example/k")
        );
        assert_eq!(
            resolve(base, "http://evil.example/").as_deref(),
            Some("http://evil.example/")
        );
    }

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
