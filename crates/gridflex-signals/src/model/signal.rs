//! [`GridSignal`]: the enum over every signal, with its stable JSON-lines form.

use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DispatchEvent, GridAlert, Market, PricePoint, RegulationSample};
use crate::{Location, SignalError};

/// Any grid signal gridflex acts on.
///
/// The JSON form is one object per signal with a `"type"` tag (`"price"`,
/// `"dispatch"`, `"alert"`, `"regulation"`) next to the fields of the signal; it is
/// used one signal per line (JSON lines) for replay files and logs. Field names are
/// stable; new signal types and fields may be added.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use gridflex_signals::{GridSignal, RegulationKind, RegulationSample, RegulationSignal};
///
/// let at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 2).unwrap();
/// let s = GridSignal::Regulation(RegulationSample::new(at, RegulationKind::RegD, RegulationSignal::new(0.5)?));
/// let line = s.to_json_line()?;
/// assert_eq!(line, r#"{"type":"regulation","at":"2025-01-01T00:00:02Z","kind":"RegD","signal":0.5}"#);
/// assert_eq!(GridSignal::from_json_line(&line)?, s);
/// assert_eq!(s.time(), at);
/// # Ok::<(), gridflex_signals::SignalError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum GridSignal {
    /// A price.
    Price(PricePoint),
    /// A demand-response dispatch.
    Dispatch(DispatchEvent),
    /// An emergency or conservation alert.
    Alert(GridAlert),
    /// A regulation set-point.
    Regulation(RegulationSample),
}

impl GridSignal {
    /// The instant the signal takes effect, used to order and release replayed
    /// signals: a price's interval start, a dispatch's or alert's issue time, a
    /// regulation sample's time.
    pub fn time(&self) -> DateTime<Utc> {
        match self {
            GridSignal::Price(p) => p.interval.start(),
            GridSignal::Dispatch(d) => d.issued_at,
            GridSignal::Alert(a) => a.issued_at,
            GridSignal::Regulation(r) => r.at,
        }
    }

    /// The market the signal comes from (regulation samples are PJM's).
    pub fn market(&self) -> Market {
        match self {
            GridSignal::Price(p) => p.market,
            GridSignal::Dispatch(d) => d.market,
            GridSignal::Alert(a) => a.market,
            GridSignal::Regulation(_) => Market::Pjm,
        }
    }

    /// The signal as one line of JSON (no trailing newline).
    pub fn to_json_line(&self) -> Result<String, SignalError> {
        serde_json::to_string(self).map_err(|e| SignalError::invalid("grid signal", e.to_string()))
    }

    /// Parses one JSON line.
    pub fn from_json_line(line: &str) -> Result<Self, SignalError> {
        serde_json::from_str(line).map_err(|e| SignalError::Malformed {
            at: Box::new(Location::default()),
            format: "grid-signal JSON",
            reason: e.to_string(),
        })
    }
}

/// Writes signals as JSON lines, one per line.
pub fn write_json_lines<'a, W: Write>(
    mut out: W,
    signals: impl IntoIterator<Item = &'a GridSignal>,
) -> Result<(), SignalError> {
    for s in signals {
        let line = s.to_json_line()?;
        out.write_all(line.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|source| SignalError::Io {
                at: Box::new(Location::default()),
                source,
            })?;
    }
    Ok(())
}

/// Reads a JSON-lines file of signals, yielding each with its 1-based line number.
/// Blank lines are skipped; a bad line is an error naming its line, after which the
/// iterator ends.
pub fn read_json_lines<R: BufRead>(
    input: R,
) -> impl Iterator<Item = (Result<GridSignal, SignalError>, u64)> {
    let mut failed = false;
    input
        .lines()
        .enumerate()
        .map_while(move |(i, line)| {
            if failed {
                return None;
            }
            let n = i as u64 + 1;
            let at = || Box::new(Location::line(n));
            let item = match line {
                Err(source) => Some(Err(SignalError::Io { at: at(), source })),
                Ok(l) if l.trim().is_empty() => None,
                Ok(l) => Some(
                    serde_json::from_str(&l).map_err(|e| SignalError::Malformed {
                        at: at(),
                        format: "grid-signal JSON",
                        reason: e.to_string(),
                    }),
                ),
            };
            failed = matches!(item, Some(Err(_)));
            Some(item.map(|r| (r, n)))
        })
        .flatten()
}
