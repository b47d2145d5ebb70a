//! The one error type of `gridflex-agent`.

use std::path::PathBuf;

use gridflex_hal::HalError;

use crate::protocol::Refusal;

/// Everything that can go wrong in the agent or its client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The config file could not be read.
    #[error("config {}: cannot read: {detail}", file.display())]
    ConfigRead {
        /// The file.
        file: PathBuf,
        /// The OS message.
        detail: String,
    },
    /// The config file is not valid TOML or has a field of the wrong type or an unknown
    /// field (toml's message names the key, line and column).
    #[error("config {}: {detail}", file.display())]
    ConfigParse {
        /// The file.
        file: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// A config field has a value that cannot work.
    #[error("config field `{field}`: {reason}")]
    ConfigField {
        /// The field, dotted (`lease.max_ms`, `jobs[2].pids`).
        field: String,
        /// Why.
        reason: String,
    },
    /// The node's devices or jobs could not be opened.
    #[error("{what}: {source}")]
    Hardware {
        /// What was being opened.
        what: String,
        /// The backend's error.
        #[source]
        source: HalError,
    },
    /// The state file could not be read, parsed or written.
    #[error("state file {}: {detail}", file.display())]
    State {
        /// The file.
        file: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A network or socket error.
    #[error("network: {operation}: {detail}")]
    Io {
        /// What was attempted (`connect`, `read`, `bind 0.0.0.0:7471`).
        operation: String,
        /// The OS message.
        detail: String,
    },
    /// A malformed or oversized frame, or an answer that does not fit the request.
    #[error("protocol: {detail}")]
    Protocol {
        /// What was wrong.
        detail: String,
    },
    /// The agent refused the request or the handshake.
    #[error("agent {node} refused: {reason}")]
    Refused {
        /// The node (its address when the name is not known yet).
        node: String,
        /// Why.
        reason: Refusal,
    },
    /// The agent did not answer in time.
    #[error("agent {node} did not answer within {ms} ms")]
    Timeout {
        /// The node.
        node: String,
        /// The limit.
        ms: u64,
    },
    /// The client's connection task has stopped (the client is shutting down).
    #[error("agent client for {node} is closed")]
    Closed {
        /// The node.
        node: String,
    },
    /// The node could not be reached on the last attempt, and the client fails
    /// requests at once until a reconnection (tried in the background every
    /// `ClientOptions::reconnect_every`) succeeds: no caller waits out a timeout on a
    /// node that is known to be cut off.
    #[error("agent {node} is unreachable (for {since_ms} ms: {cause})")]
    Unreachable {
        /// The node.
        node: String,
        /// How long since the failure that found it unreachable.
        since_ms: u64,
        /// That failure.
        cause: String,
    },
}

impl AgentError {
    /// A closure mapping an I/O error for `operation`.
    pub(crate) fn io(operation: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let operation = operation.into();
        move |e| Self::Io {
            operation,
            detail: e.to_string(),
        }
    }
}
