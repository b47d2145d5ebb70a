//! The one error type of `gridflex-signals`, and [`Location`], the place in an input it points at.

use std::fmt;

use gridflex_core::CoreError;

/// Where in an input something was found: zip entry, line, JSON item or XML element.
///
/// Only the parts that apply are set; `Display` prints them in order, for example
/// `entry "PRC_LMP.csv", line 12` or `item 3` or `element REPORT_DATA #7 (byte 1834)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Location {
    /// Name of the zip entry the input came from, when it came from a zip.
    pub entry: Option<String>,
    /// 1-based line number (CSV rows, JSON lines files, XML elements).
    pub line: Option<u64>,
    /// 0-based index in a JSON `items` array (or bare array).
    pub item: Option<u64>,
    /// XML element name and its 1-based ordinal among elements of that name.
    pub element: Option<(String, u64)>,
    /// Byte offset in the (decompressed) input, when known.
    pub byte: Option<u64>,
}

impl Location {
    /// A location at a 1-based line.
    pub fn line(line: u64) -> Self {
        Self {
            line: Some(line),
            ..Self::default()
        }
    }

    /// A location at a 0-based JSON array item.
    pub fn item(index: u64) -> Self {
        Self {
            item: Some(index),
            ..Self::default()
        }
    }

    /// A location at the `ordinal`-th element called `name`.
    pub fn element(name: impl Into<String>, ordinal: u64) -> Self {
        Self {
            element: Some((name.into(), ordinal)),
            ..Self::default()
        }
    }

    /// The same location inside the zip entry `entry`.
    pub fn in_entry(mut self, entry: impl Into<String>) -> Self {
        self.entry = Some(entry.into());
        self
    }

    /// The same location with a byte offset added.
    pub fn at_byte(mut self, byte: u64) -> Self {
        self.byte = Some(byte);
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(e) = &self.entry {
            parts.push(format!("entry {e:?}"));
        }
        if let Some(l) = self.line {
            parts.push(format!("line {l}"));
        }
        if let Some(i) = self.item {
            parts.push(format!("item {i}"));
        }
        if let Some((name, n)) = &self.element {
            parts.push(format!("element {name} #{n}"));
        }
        if let Some(b) = self.byte {
            parts.push(format!("byte {b}"));
        }
        if parts.is_empty() {
            f.write_str("start of input")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Everything that can go wrong in `gridflex-signals`.
///
/// Parser variants carry a [`Location`] and, where one applies, the field (column,
/// JSON key or XML element) that was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// A value in the input could not be used.
    #[error("{at}: field {field}: {reason}")]
    Field {
        /// Where.
        at: Box<Location>,
        /// The column, key or element name.
        field: String,
        /// What was wrong, with the offending text.
        reason: String,
    },
    /// The input is not well-formed in its format (broken CSV quoting, invalid JSON,
    /// malformed XML) or lacks a structure the format requires.
    #[error("{at}: malformed {format}: {reason}")]
    Malformed {
        /// Where.
        at: Box<Location>,
        /// The format being read (for example `"CAISO OASIS CSV"`).
        format: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A required column is absent from a CSV header.
    #[error("{at}: {format} header has no column {column:?}")]
    MissingColumn {
        /// Where the header is.
        at: Box<Location>,
        /// The format being read.
        format: &'static str,
        /// The column looked for (or the alternatives, joined by `|`).
        column: String,
    },
    /// OASIS answered with its "no data" error document (`ERR_CODE` 1000) instead of a
    /// report: the selection (dates, nodes, market run) matched nothing.
    #[error("{at}: OASIS returned no data (ERR_CODE {code}): {description}")]
    NoData {
        /// Where the error document was found.
        at: Box<Location>,
        /// The `ERR_CODE` (1000 for "no data").
        code: i64,
        /// The `ERR_DESC` text.
        description: String,
    },
    /// OASIS answered with an error document other than "no data".
    #[error("{at}: OASIS error {code}: {description}")]
    Operator {
        /// Where the error document was found.
        at: Box<Location>,
        /// The `ERR_CODE`.
        code: i64,
        /// The `ERR_DESC` text.
        description: String,
    },
    /// The content matches no format this crate reads.
    #[error("unrecognised input format: {reason}")]
    UnknownFormat {
        /// What was seen.
        reason: String,
    },
    /// A model value that breaks its invariant (a window ending before it starts, a
    /// regulation signal outside [-1, 1], a program from another market).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which model or field.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A replay file whose signals go back in time.
    #[error("{at}: signal at {this} is earlier than the previous one at {previous}")]
    OutOfOrder {
        /// Where.
        at: Box<Location>,
        /// The previous signal's time.
        previous: chrono::DateTime<chrono::Utc>,
        /// This signal's time.
        this: chrono::DateTime<chrono::Utc>,
    },
    /// Reading the input failed.
    #[error("{at}: read failed: {source}")]
    Io {
        /// Where reading stopped.
        at: Box<Location>,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The zip container could not be read.
    #[error("zip archive: {reason}")]
    Zip {
        /// What was wrong.
        reason: String,
    },
    /// The other end of a channel source is gone.
    #[error("signal channel closed")]
    ChannelClosed,
    /// A channel source is full (from `try_send`).
    #[error("signal channel full")]
    ChannelFull,
    /// An HTTP poll failed: transport error, unexpected status, or rate limiting that
    /// outlasted the back-off (used by the `http` feature's pollers).
    #[error("HTTP GET {url}: {reason}")]
    Http {
        /// The request URL (never holds the API key, which travels in a header).
        url: String,
        /// The HTTP status, when a response came back.
        status: Option<u16>,
        /// What happened.
        reason: String,
    },
    /// A core type refused a value.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl SignalError {
    /// The location the error points at, if it has one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            SignalError::Field { at, .. }
            | SignalError::Malformed { at, .. }
            | SignalError::MissingColumn { at, .. }
            | SignalError::NoData { at, .. }
            | SignalError::Operator { at, .. }
            | SignalError::OutOfOrder { at, .. }
            | SignalError::Io { at, .. } => Some(at),
            _ => None,
        }
    }

    /// Sets the zip entry on the location, for errors found inside an archive member.
    pub(crate) fn in_entry(mut self, entry: &str) -> Self {
        match &mut self {
            SignalError::Field { at, .. }
            | SignalError::Malformed { at, .. }
            | SignalError::MissingColumn { at, .. }
            | SignalError::NoData { at, .. }
            | SignalError::Operator { at, .. }
            | SignalError::OutOfOrder { at, .. }
            | SignalError::Io { at, .. } => at.entry = Some(entry.to_owned()),
            _ => {}
        }
        self
    }

    pub(crate) fn field(at: Location, field: impl Into<String>, reason: impl Into<String>) -> Self {
        SignalError::Field {
            at: Box::new(at),
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        SignalError::Invalid {
            what,
            reason: reason.into(),
        }
    }
}
