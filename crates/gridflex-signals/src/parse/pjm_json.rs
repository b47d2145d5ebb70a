//! PJM Data Miner 2 JSON: the `{links, items, searchSpecification, totalRows}`
//! envelope or a bare array of items (reference `markets.md` §f).
//!
//! The items are read one at a time from the stream; the envelope's other members
//! are skipped, except `links`, whose `self`/`next` href names the feed.

use std::fmt;
use std::io::Read;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::pjm::{Collector, Field, Fields, Side};
use super::{Format, ParseOptions, ParseOutput, Skips};
use crate::{Location, MarketRun, SignalError};

const FORMAT: &str = "PJM Data Miner JSON";

/// Parses a PJM Data Miner 2 LMP response (`da_hrl_lmps`, `rt_hrl_lmps`,
/// `rt_fivemin_hrl_lmps`).
///
/// ```
/// use gridflex_signals::parse::{parse_pjm_json, ParseOptions};
/// use gridflex_signals::MarketRun;
///
/// let json = r#"{"links":[{"rel":"self","href":"https://api.pjm.com/api/v1/rt_fivemin_hrl_lmps?rowCount=2"}],
///   "items":[{"datetime_beginning_utc":"2024-09-03T03:55:00","datetime_beginning_ept":"2024-09-02T23:55:00",
///             "pnode_id":51291,"pnode_name":"AECO","total_lmp_rt":25.31,"system_energy_price_rt":25.1,
///             "congestion_price_rt":0.05,"marginal_loss_price_rt":0.16,"row_is_current":true,"version_nbr":1}],
///   "totalRows":1}"#;
/// let out = parse_pjm_json(json.as_bytes(), &ParseOptions::default())?;
/// let p = &out.points[0];
/// assert_eq!(p.run, MarketRun::PjmRealTimeFiveMinute);
/// assert_eq!(p.node.as_str(), "51291");
/// assert_eq!(p.interval.end().to_rfc3339(), "2024-09-03T04:00:00+00:00");
/// # Ok::<(), gridflex_signals::SignalError>(())
/// ```
pub fn parse_pjm_json<R: Read>(
    input: R,
    options: &ParseOptions,
) -> Result<ParseOutput, SignalError> {
    let mut state = State {
        collector: Collector::new(true),
        skips: Skips::new(options.mode),
        side: None,
        fatal: None,
        index: 0,
        saw_items: false,
        keys: Vec::new(),
        next_page: None,
    };
    let mut de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 16, input));
    let result = Root(&mut state)
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if let Some(fatal) = state.fatal.take() {
        return Err(fatal);
    }
    result.map_err(|e| {
        let at = Location::line(e.line() as u64);
        if e.is_io() {
            SignalError::Io {
                at: Box::new(at),
                source: std::io::Error::other(e.to_string()),
            }
        } else {
            SignalError::Malformed {
                at: Box::new(at),
                format: FORMAT,
                reason: e.to_string(),
            }
        }
    })?;
    if !state.saw_items {
        return Err(SignalError::Malformed {
            at: Box::new(Location::default()),
            format: FORMAT,
            reason: format!(
                "no \"items\" array (top-level keys: {})",
                state.keys.join(", ")
            ),
        });
    }
    let mut skips = state.skips;
    let points = state
        .collector
        .finish(state.side, options.run, &mut skips)?;
    Ok(ParseOutput {
        format: Format::PjmJson,
        points,
        skipped_count: skips.count,
        skipped: skips.rows,
        next_page: state.next_page,
    })
}

struct State {
    collector: Collector,
    skips: Skips,
    side: Option<Side>,
    fatal: Option<SignalError>,
    index: u64,
    saw_items: bool,
    keys: Vec<String>,
    next_page: Option<String>,
}

impl State {
    fn item(&mut self, item: Item) -> Result<(), SignalError> {
        let n = self.index;
        self.index += 1;
        let at = Location::item(n);
        let side = match (&item.total_lmp_da, &item.total_lmp_rt) {
            (Some(_), None) => Side::DayAhead,
            (None, Some(_)) => Side::RealTime,
            (Some(_), Some(_)) => {
                return self.skips.bad_row(
                    at.clone(),
                    SignalError::field(
                        at,
                        "total_lmp_da",
                        "both total_lmp_da and total_lmp_rt are present",
                    ),
                );
            }
            (None, None) => {
                return self.skips.bad_row(
                    at.clone(),
                    SignalError::field(at, "total_lmp_rt", "no total_lmp_da or total_lmp_rt"),
                );
            }
        };
        if let Some(prev) = self.side
            && prev != side
        {
            return self.skips.bad_row(
                at.clone(),
                SignalError::field(
                    at,
                    "total_lmp",
                    "day-ahead and real-time rows are mixed in one file",
                ),
            );
        }
        self.side = Some(side);
        let (lmp, energy, congestion, loss) = match side {
            Side::DayAhead => (
                &item.total_lmp_da,
                &item.system_energy_price_da,
                &item.congestion_price_da,
                &item.marginal_loss_price_da,
            ),
            Side::RealTime => (
                &item.total_lmp_rt,
                &item.system_energy_price_rt,
                &item.congestion_price_rt,
                &item.marginal_loss_price_rt,
            ),
        };
        let fields = Fields {
            start: item.datetime_beginning_utc.as_ref().map(JVal::field),
            end: item.datetime_ending_utc.as_ref().map(JVal::field),
            pnode_id: item.pnode_id.as_ref().map(JVal::field),
            pnode_name: item.pnode_name.as_ref().map(JVal::field),
            lmp: lmp.as_ref().map(JVal::field),
            energy: energy.as_ref().map(JVal::field),
            congestion: congestion.as_ref().map(JVal::field),
            loss: loss.as_ref().map(JVal::field),
            row_is_current: item.row_is_current.as_ref().map(JVal::field),
        };
        match self.collector.add(&fields, side, n, &mut self.skips) {
            Ok(()) => Ok(()),
            Err(e) => self.skips.bad_row(at, e),
        }
    }
}

/// A scalar JSON value; `null` is read as an absent field by `Option`.
enum JVal {
    Num(f64),
    Text(String),
    Bool(bool),
    Other,
}

impl JVal {
    fn field(&self) -> Field<'_> {
        match self {
            JVal::Num(x) => Field::Num(*x),
            JVal::Text(s) => Field::Text(s.as_bytes()),
            JVal::Bool(b) => Field::Bool(*b),
            JVal::Other => Field::Other,
        }
    }
}

impl<'de> Deserialize<'de> for JVal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JVal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_f64<E>(self, v: f64) -> Result<JVal, E> {
                Ok(JVal::Num(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<JVal, E> {
                Ok(JVal::Num(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<JVal, E> {
                Ok(JVal::Num(v as f64))
            }
            fn visit_bool<E>(self, v: bool) -> Result<JVal, E> {
                Ok(JVal::Bool(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<JVal, E> {
                Ok(JVal::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<JVal, E> {
                Ok(JVal::Text(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<JVal, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(JVal::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<JVal, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(JVal::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct Item {
    datetime_beginning_utc: Option<JVal>,
    datetime_ending_utc: Option<JVal>,
    pnode_id: Option<JVal>,
    pnode_name: Option<JVal>,
    total_lmp_da: Option<JVal>,
    total_lmp_rt: Option<JVal>,
    system_energy_price_da: Option<JVal>,
    system_energy_price_rt: Option<JVal>,
    congestion_price_da: Option<JVal>,
    congestion_price_rt: Option<JVal>,
    marginal_loss_price_da: Option<JVal>,
    marginal_loss_price_rt: Option<JVal>,
    row_is_current: Option<JVal>,
}

#[derive(Deserialize)]
struct Link {
    rel: Option<String>,
    href: Option<String>,
}

/// The feed name in a Data Miner URL (`.../api/v1/{feed}?...`).
pub(crate) fn feed_of(href: &str) -> Option<MarketRun> {
    let path = href.split('?').next()?;
    MarketRun::from_pjm_feed(path.trim_end_matches('/').rsplit('/').next()?)
}

struct Root<'a>(&'a mut State);
struct Items<'a>(&'a mut State);

impl<'de> DeserializeSeed<'de> for Root<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Root<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Data Miner envelope object or an array of items")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.0.saw_items = true;
        Items(self.0).visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "items" => {
                    self.0.saw_items = true;
                    map.next_value_seed(Items(self.0))?;
                }
                "links" => {
                    let links: Option<Vec<Link>> = map.next_value()?;
                    for l in links.unwrap_or_default() {
                        if l.rel.as_deref() == Some("next") {
                            self.0.next_page.clone_from(&l.href);
                        }
                        if matches!(l.rel.as_deref(), Some("self" | "next"))
                            && let Some(run) = l.href.as_deref().and_then(feed_of)
                        {
                            self.0.collector.feed_run = Some(run);
                        }
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if self.0.keys.len() < 16 {
                self.0.keys.push(key);
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Items<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of LMP items")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Item>()? {
            if let Err(e) = self.0.item(item) {
                self.0.fatal = Some(e);
                return Err(de::Error::custom("stopped at a bad item"));
            }
        }
        Ok(())
    }
}
