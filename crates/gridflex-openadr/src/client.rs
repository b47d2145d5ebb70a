//! [`VenClient`]: the VEN's HTTP side. OAuth2 client credentials with token refresh,
//! the VEN object, programs, events and reports, over a blocking `ureq` agent (rustls)
//! run on tokio's blocking pool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{self, Event, Program, Report, Ven};
use crate::{Credentials, OpenAdrError, Secret};

/// Objects per page when listing (the VTN caps `limit` at 50).
const PAGE: usize = 50;
/// At most this many pages per listing: a VTN that never stops paging is an error, not
/// unbounded memory.
const MAX_PAGES: usize = 200;
/// The largest body accepted from the VTN.
const MAX_BODY: u64 = 16 << 20;
/// A token is renewed this long before the VTN says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

/// Where and how to reach the VTN.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VtnEndpoint {
    /// Base URL of the VTN's OpenADR API, for example `https://vtn.example.com/openadr3`
    /// (no trailing slash needed).
    pub base_url: String,
    /// The OAuth2 token endpoint (default: `{base_url}/auth/token`).
    pub token_url: Option<String>,
    /// The VEN's OAuth client credentials.
    pub credentials: Credentials,
    /// Allow plain `http://` to a host that is not loopback (default false: such a URL
    /// is refused, since tokens and secrets would cross the network in clear).
    pub allow_insecure_http: bool,
    /// Timeout of one whole request (default 10 s).
    pub timeout: Duration,
}

impl VtnEndpoint {
    /// An endpoint with the defaults.
    pub fn new(base_url: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            base_url: base_url.into(),
            token_url: None,
            credentials,
            allow_insecure_http: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Checks a URL: `https://` anywhere, `http://` only to loopback unless `allow_http`.
pub(crate) fn check_url(url: &str, allow_http: bool) -> Result<(), OpenAdrError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| OpenAdrError::config("VTN URL", format!("{url:?} is not absolute")))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('@') {
        return Err(OpenAdrError::config(
            "VTN URL",
            "credentials in the URL are refused (use Credentials)",
        ));
    }
    if authority.is_empty() {
        return Err(OpenAdrError::config(
            "VTN URL",
            format!("{url:?} has no host"),
        ));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(authority) => Ok(()),
        "http" => Err(OpenAdrError::InsecureUrl {
            url: url.to_owned(),
        }),
        other => Err(OpenAdrError::config(
            "VTN URL",
            format!("scheme {other:?} is not http or https"),
        )),
    }
}

/// Whether `host[:port]` names this machine.
fn is_loopback(authority: &str) -> bool {
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Percent-encodes a form or query value (everything but RFC 3986 unreserved).
pub(crate) use gridflex_core::url::encode_component as encode;

#[derive(Debug)]
struct Token {
    value: Secret,
    renew_at: Instant,
}

struct Inner {
    agent: ureq::Agent,
    base: String,
    token_url: String,
    credentials: Credentials,
    token: tokio::sync::Mutex<Option<Token>>,
}

/// The VEN's client of one VTN: cheap to clone (the clones share one agent and token),
/// so the signal source and the report path use the same login.
///
/// Every call gets a bearer token first (client-credentials grant), renews it 30 s
/// before it expires, and on a 401 fetches a fresh one and tries once more.
#[derive(Clone)]
pub struct VenClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for VenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VenClient")
            .field("base", &self.inner.base)
            .field("client_id", &self.inner.credentials.client_id)
            .finish_non_exhaustive()
    }
}

enum Method {
    Get,
    Post,
    Put,
}

impl Method {
    fn name(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

impl VenClient {
    /// A client for `endpoint`; fails on a URL that is not allowed (see
    /// [`VtnEndpoint::allow_insecure_http`]). Makes no request yet.
    pub fn new(endpoint: VtnEndpoint) -> Result<Self, OpenAdrError> {
        let base = endpoint.base_url.trim_end_matches('/').to_owned();
        check_url(&base, endpoint.allow_insecure_http)?;
        let token_url = endpoint
            .token_url
            .clone()
            .unwrap_or_else(|| format!("{base}/auth/token"));
        check_url(&token_url, endpoint.allow_insecure_http)?;
        if endpoint.credentials.client_id.is_empty() {
            return Err(OpenAdrError::config("credentials", "empty client id"));
        }
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(endpoint.timeout))
            .http_status_as_error(false)
            // Never follow a redirect: the bearer token goes only to the configured VTN.
            .max_redirects(0);
        if is_loopback_url(&base) {
            config = config.proxy(None);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                agent: config.build().into(),
                base,
                token_url,
                credentials: endpoint.credentials,
                token: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The VTN's base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Forgets the current token, so the next call logs in again.
    pub async fn invalidate_token(&self) {
        *self.inner.token.lock().await = None;
    }

    async fn send(
        &self,
        method: &Method,
        url: &str,
        bearer: Option<&str>,
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Result<(u16, Vec<u8>), OpenAdrError> {
        let agent = self.inner.agent.clone();
        let owned = url.to_owned();
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let m = match method {
            Method::Get => 0,
            Method::Post => 1,
            Method::Put => 2,
        };
        let result = tokio::task::spawn_blocking(move || {
            let response = match (m, body) {
                (0, _) => {
                    let mut r = agent.get(&owned).header("Accept", "application/json");
                    if let Some(a) = &auth {
                        r = r.header("Authorization", a);
                    }
                    r.call()
                }
                (m, body) => {
                    let mut r = if m == 1 {
                        agent.post(&owned)
                    } else {
                        agent.put(&owned)
                    }
                    .header("Accept", "application/json");
                    if let Some(a) = &auth {
                        r = r.header("Authorization", a);
                    }
                    let (bytes, ct) = body.unwrap_or((Vec::new(), "application/json"));
                    r.header("Content-Type", ct).send(&bytes[..])
                }
            };
            let mut response = response.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_vec()
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((status, body))
        })
        .await;
        let fail = |reason: String| OpenAdrError::Unreachable {
            method: method.name(),
            url: url.to_owned(),
            reason,
        };
        result
            .map_err(|e| fail(format!("request task failed: {e}")))?
            .map_err(fail)
    }

    /// A valid token, logging in when there is none or it is about to expire.
    async fn token(&self) -> Result<Secret, OpenAdrError> {
        let mut slot = self.inner.token.lock().await;
        if let Some(t) = slot.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let c = &self.inner.credentials;
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            encode(&c.client_id),
            encode(c.client_secret.expose())
        );
        let (status, body) = self
            .send(
                &Method::Post,
                &self.inner.token_url,
                None,
                Some((form.into_bytes(), "application/x-www-form-urlencoded")),
            )
            .await?;
        if matches!(status, 400 | 401 | 403) {
            return Err(OpenAdrError::Unauthorized {
                client_id: c.client_id.clone(),
                status,
            });
        }
        if status != 200 {
            // The body of a failed token request is not kept: it may echo the form.
            return Err(OpenAdrError::Status {
                method: "POST",
                url: self.inner.token_url.clone(),
                status,
                detail: "token request failed".into(),
            });
        }
        let parsed: wire::TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| OpenAdrError::malformed("token response", e.to_string()))?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600).min(86_400 * 365));
        let token = Token {
            value: Secret::new(parsed.access_token),
            renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        };
        let value = token.value.clone();
        *slot = Some(token);
        Ok(value)
    }

    /// One authorised call: returns the status and body of any answer but 401, after
    /// one retry with a fresh token on 401.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>, String), OpenAdrError> {
        let url = format!("{}{path}", self.inner.base);
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let (status, bytes) = self
                .send(
                    &method,
                    &url,
                    Some(token.expose()),
                    body.clone().map(|b| (b, "application/json")),
                )
                .await?;
            if status != 401 {
                return Ok((status, bytes, url));
            }
            // Expired or revoked (the VTN's secret changes on restart): log in again once.
            self.invalidate_token().await;
            if retried {
                return Err(OpenAdrError::Unauthorized {
                    client_id: self.inner.credentials.client_id.clone(),
                    status,
                });
            }
            retried = true;
        }
    }

    fn problem(method: &'static str, url: String, status: u16, body: &[u8]) -> OpenAdrError {
        let detail = serde_json::from_slice::<wire::Problem>(body)
            .ok()
            .map(|p| {
                [p.title, p.detail]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ")
            })
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "no problem details".into());
        OpenAdrError::Status {
            method,
            url,
            status,
            detail,
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, OpenAdrError> {
        let name = method.name();
        let (status, bytes, url) = self.call(method, path, body).await?;
        if !(200..300).contains(&status) {
            return Err(Self::problem(name, url, status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| OpenAdrError::malformed(format!("{name} {path}"), e.to_string()))
    }

    /// Lists a collection page by page, each object as raw JSON.
    async fn list(&self, path: &str, query: &str) -> Result<Vec<serde_json::Value>, OpenAdrError> {
        let mut all = Vec::new();
        for page in 0..MAX_PAGES {
            let sep = if query.is_empty() { "" } else { "&" };
            let p = format!("{path}?{query}{sep}skip={}&limit={PAGE}", page * PAGE);
            let items: Vec<serde_json::Value> = self.json(Method::Get, &p, None).await?;
            let n = items.len();
            all.extend(items);
            if n < PAGE {
                return Ok(all);
            }
        }
        Err(OpenAdrError::malformed(
            format!("GET {path}"),
            format!("more than {} objects", PAGE * MAX_PAGES),
        ))
    }

    /// Finds this client's VEN object by name, or creates it.
    pub async fn register(&self, ven_name: &str) -> Result<Ven, OpenAdrError> {
        if ven_name.trim().is_empty() || ven_name.len() > 128 {
            return Err(OpenAdrError::config(
                "VEN name",
                "must be 1 to 128 characters",
            ));
        }
        if let Some(v) = self.find_ven(ven_name).await? {
            return Ok(v);
        }
        let body = serde_json::to_vec(&wire::VenVenRequest {
            object_type: "VEN_VEN_REQUEST",
            ven_name,
        })
        .map_err(|e| OpenAdrError::malformed("VEN request", e.to_string()))?;
        let (status, bytes, url) = self.call(Method::Post, "/vens", Some(body)).await?;
        match status {
            200 | 201 => serde_json::from_slice(&bytes)
                .map_err(|e| OpenAdrError::malformed("POST /vens", e.to_string())),
            // Created meanwhile by another instance of this client, or the client
            // already owns a VEN of another name (the VTN allows one per client).
            409 => match self.find_ven(ven_name).await? {
                Some(v) => Ok(v),
                None => {
                    let owned: Vec<String> = self
                        .list("/vens", "")
                        .await?
                        .iter()
                        .filter_map(|v| v.get("venName").and_then(|n| n.as_str()))
                        .map(str::to_owned)
                        .collect();
                    if owned.is_empty() {
                        Err(Self::problem("POST", url, status, &bytes))
                    } else {
                        Err(OpenAdrError::config(
                            "VEN name",
                            format!(
                                "client {} already owns VEN {owned:?} (the VTN allows one VEN per client), not {ven_name:?}",
                                self.inner.credentials.client_id
                            ),
                        ))
                    }
                }
            },
            _ => Err(Self::problem("POST", url, status, &bytes)),
        }
    }

    async fn find_ven(&self, ven_name: &str) -> Result<Option<Ven>, OpenAdrError> {
        let found = self
            .list("/vens", &format!("venName={}", encode(ven_name)))
            .await?;
        for v in found {
            let ven: Ven = serde_json::from_value(v)
                .map_err(|e| OpenAdrError::malformed("GET /vens", e.to_string()))?;
            if ven.ven_name == ven_name {
                return Ok(Some(ven));
            }
        }
        Ok(None)
    }

    /// Reads a VEN object (for its current targets).
    pub async fn ven(&self, id: &str) -> Result<Ven, OpenAdrError> {
        self.json(Method::Get, &format!("/vens/{}", encode(id)), None)
            .await
    }

    /// The programs this VEN may see.
    pub async fn programs(&self) -> Result<Vec<Program>, OpenAdrError> {
        self.list("/programs", "")
            .await?
            .into_iter()
            .map(|v| {
                serde_json::from_value(v)
                    .map_err(|e| OpenAdrError::malformed("GET /programs", e.to_string()))
            })
            .collect()
    }

    /// The events of one program this VEN may see. Each event is parsed on its own: a
    /// malformed one is an `Err` in its slot and the others are still read.
    pub async fn events(
        &self,
        program_id: &str,
    ) -> Result<Vec<Result<Event, OpenAdrError>>, OpenAdrError> {
        let raw = self
            .list("/events", &format!("programID={}", encode(program_id)))
            .await?;
        Ok(raw
            .into_iter()
            .map(|v| {
                let id = v
                    .get("id")
                    .and_then(|i| i.as_str())
                    .unwrap_or("?")
                    .to_owned();
                serde_json::from_value::<Event>(v)
                    .map_err(|e| OpenAdrError::malformed(format!("event {id}"), e.to_string()))
            })
            .collect())
    }

    /// Posts a report; returns it as the VTN stored it.
    pub async fn post_report(&self, report: &Report) -> Result<Report, OpenAdrError> {
        let body = serde_json::to_vec(report)
            .map_err(|e| OpenAdrError::malformed("report", e.to_string()))?;
        self.json(Method::Post, "/reports", Some(body)).await
    }

    /// Replaces a report the VEN posted earlier (an update as the event runs on).
    pub async fn put_report(&self, id: &str, report: &Report) -> Result<Report, OpenAdrError> {
        let body = serde_json::to_vec(report)
            .map_err(|e| OpenAdrError::malformed("report", e.to_string()))?;
        self.json(Method::Put, &format!("/reports/{}", encode(id)), Some(body))
            .await
    }

    /// A plain authorised `GET` of any path, parsed as `T` (for objects this crate has
    /// no call for).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, OpenAdrError> {
        self.json(Method::Get, path, None).await
    }

    /// A plain authorised `POST` of a serialisable body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, OpenAdrError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| OpenAdrError::malformed(format!("POST {path}"), e.to_string()))?;
        self.json(Method::Post, path, Some(bytes)).await
    }
}

fn is_loopback_url(url: &str) -> bool {
    url.split_once("://").is_some_and(|(_, rest)| {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        is_loopback(&rest[..end])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        for ok in [
            "http://127.0.0.1:3000",
            "http://localhost/openadr",
            "http://[::1]:8080",
            "https://vtn.example.com",
            "HTTPS://vtn.example.com:443/x",
        ] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
        let e = check_url("http://vtn.example.com", false).unwrap_err();
        assert!(matches!(e, OpenAdrError::InsecureUrl { .. }), "{e}");
        assert!(check_url("http://10.0.0.5:3000", false).is_err());
        assert!(check_url("http://10.0.0.5:3000", true).is_ok());
        assert!(check_url("ftp://x", true).is_err());
        assert!(check_url("vtn.example.com", true).is_err());
        assert!(check_url("https://user:pw@vtn.example.com", true).is_err());
        assert!(check_url("http://127.0.0.1.evil.com", false).is_err());
    }

    #[test]
    fn encode_escapes_reserved() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn client_debug_shows_no_secret() {
        let c = VenClient::new(VtnEndpoint::new(
            "http://127.0.0.1:1",
            Credentials::new("ven", Secret::new("very-secret")),
        ))
        .unwrap();
        let s = format!("{c:?}");
        assert!(!s.contains("very-secret") && s.contains("ven"), "{s}");
    }

    #[tokio::test]
    async fn unreachable_vtn_is_a_transient_error() {
        // Port 1 on loopback: nothing listens there.
        let c = VenClient::new(VtnEndpoint::new(
            "http://127.0.0.1:1",
            Credentials::new("ven", Secret::new("s")),
        ))
        .unwrap();
        let e = c.programs().await.unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(!e.to_string().contains("client_secret"), "{e}");
    }
}
