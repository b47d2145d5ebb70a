//! The store's error type.

use chrono::{DateTime, Utc};

/// Everything that can go wrong reading or writing the history.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("history store {what}: {message}")]
    Backend {
        /// What was being done (for example `"open /var/lib/gridflex/history.db"`).
        what: String,
        /// The backend's message.
        message: String,
    },
    /// The database was written by a newer gridflex whose schema this build does not know.
    #[error(
        "history schema version {found} is newer than this build's {supported}; refusing to touch it"
    )]
    SchemaTooNew {
        /// The version found in the database.
        found: u32,
        /// The newest version this build can migrate to.
        supported: u32,
    },
    /// A stored value that does not decode (a corrupt or hand-edited row).
    #[error("history row {table}#{row}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row id.
        row: i64,
        /// What is wrong with it.
        reason: String,
    },
    /// A value that cannot be stored (for example an instant outside the +/-292-year
    /// nanosecond range, or a non-positive interval length).
    #[error("cannot store {what}: {reason}")]
    Invalid {
        /// What was refused.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// An instant outside the range the store can represent.
    #[error("instant {at} is outside the storable range")]
    OutOfRange {
        /// The instant.
        at: DateTime<Utc>,
    },
    /// The background writer is gone (its thread could not start or has stopped).
    #[error("history writer: {0}")]
    Writer(String),
    /// A unit or series error from gridflex-core.
    #[error(transparent)]
    Core(#[from] gridflex_core::CoreError),
}

impl StoreError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            reason: reason.into(),
        }
    }
}
