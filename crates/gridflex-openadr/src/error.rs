//! The one error type of `gridflex-openadr`.

use gridflex_signals::SignalError;

/// What went wrong talking to a VTN or reading what it sent.
///
/// No variant ever holds a secret: URLs carry no credentials (they travel in the form
/// body of the token request and in the `Authorization` header), and bodies of failed
/// token requests are not kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenAdrError {
    /// A setting is invalid (for example an empty VEN name or a URL that is not http(s)).
    #[error("invalid {what}: {reason}")]
    Config {
        /// The setting.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Plain HTTP to a VTN that is not on this machine, without
    /// [`VtnEndpoint::allow_insecure_http`](crate::VtnEndpoint::allow_insecure_http).
    #[error(
        "refusing plain http to non-loopback VTN {url}: use https, or allow insecure http explicitly"
    )]
    InsecureUrl {
        /// The VTN's base URL.
        url: String,
    },
    /// A secret could not be read from the environment or a file.
    #[error("reading secret {name}: {reason}")]
    Secret {
        /// The environment variable or file that was to hold it.
        name: String,
        /// Why it could not be read (never the secret itself).
        reason: String,
    },
    /// The VTN could not be reached (connection refused, timeout, TLS failure).
    #[error("{method} {url}: VTN unreachable: {reason}")]
    Unreachable {
        /// The HTTP method.
        method: &'static str,
        /// The URL (no credentials in it).
        url: String,
        /// What the transport said.
        reason: String,
    },
    /// The VTN answered with an error status; `detail` is its RFC 7807 problem
    /// `title`/`detail` when it sent one.
    #[error("{method} {url}: HTTP {status}: {detail}")]
    Status {
        /// The HTTP method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The problem the VTN described, or a note that it sent none.
        detail: String,
    },
    /// The VTN refused the credentials (token request answered 400/401/403, or a
    /// request still unauthorised after a fresh token).
    #[error("VTN refused the credentials of client {client_id}: HTTP {status}")]
    Unauthorized {
        /// The OAuth client id (not secret).
        client_id: String,
        /// The status code.
        status: u16,
    },
    /// A body from the VTN is not what OpenADR 3.1 says it should be.
    #[error("{what}: malformed: {reason}")]
    Malformed {
        /// What was being read (for example `GET /events` or `event 12 interval 0`).
        what: String,
        /// Why.
        reason: String,
    },
    /// A report input is inconsistent (for example intervals of different counts).
    #[error("invalid report for event {event_id}: {reason}")]
    Report {
        /// The event it was for.
        event_id: String,
        /// Why.
        reason: String,
    },
}

impl OpenAdrError {
    pub(crate) fn config(what: &'static str, reason: impl Into<String>) -> Self {
        OpenAdrError::Config {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn malformed(what: impl Into<String>, reason: impl Into<String>) -> Self {
        OpenAdrError::Malformed {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Whether the error is the VTN being away (unreachable or answering 5xx), after
    /// which the VEN backs off and tries again.
    pub fn is_transient(&self) -> bool {
        match self {
            OpenAdrError::Unreachable { .. } => true,
            OpenAdrError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

impl From<OpenAdrError> for SignalError {
    fn from(e: OpenAdrError) -> Self {
        let (url, status) = match &e {
            OpenAdrError::Unreachable { url, .. } => (url.clone(), None),
            OpenAdrError::Status { url, status, .. } => (url.clone(), Some(*status)),
            OpenAdrError::Unauthorized { status, .. } => ("OpenADR VTN".to_owned(), Some(*status)),
            _ => ("OpenADR VTN".to_owned(), None),
        };
        SignalError::Http {
            url,
            status,
            reason: e.to_string(),
        }
    }
}
