//! PJM Data Miner 2 LMP rows, shared by the JSON and CSV readers.
//!
//! Fields used (reference `markets.md` §f): `datetime_beginning_utc` (start, naive UTC),
//! optional `datetime_ending_utc`, `pnode_id` (the node), `pnode_name` (kept beside it), `total_lmp_{da|rt}`,
//! `system_energy_price_{da|rt}`, `congestion_price_{da|rt}`,
//! `marginal_loss_price_{da|rt}`, and `row_is_current` (rows marked false are
//! superseded versions and are reported in `skipped`, never silently dropped).
//!
//! The suffix tells day-ahead from real-time. A real-time file's interval length
//! comes, in order, from [`ParseOptions::run`], the feed named in the JSON `links`,
//! the rows' ending times, or the spacing of the starting times (5 or 60 minutes).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::{Interval, Price, PricingNodeId};

use foldhash::fast::RandomState;

use super::Skips;
use super::scalar::{LastTime, parse_price, shown};
use crate::{Location, Market, MarketRun, PricePoint, SignalError};

/// Day-ahead or real-time columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    DayAhead,
    RealTime,
}

/// One field value, as JSON or CSV gives it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field<'a> {
    Num(f64),
    Text(&'a [u8]),
    Bool(bool),
    /// An object or array where a scalar was expected.
    Other,
}

/// The fields of one LMP row.
#[derive(Default)]
pub(crate) struct Fields<'a> {
    pub(crate) start: Option<Field<'a>>,
    pub(crate) end: Option<Field<'a>>,
    pub(crate) pnode_id: Option<Field<'a>>,
    pub(crate) pnode_name: Option<Field<'a>>,
    pub(crate) lmp: Option<Field<'a>>,
    pub(crate) energy: Option<Field<'a>>,
    pub(crate) congestion: Option<Field<'a>>,
    pub(crate) loss: Option<Field<'a>>,
    pub(crate) row_is_current: Option<Field<'a>>,
}

struct Raw {
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
    /// Index into `Collector::nodes`.
    node: u32,
    /// Index into `Collector::names`.
    name: Option<u32>,
    lmp: Price,
    energy: Option<Price>,
    congestion: Option<Price>,
    loss: Option<Price>,
    at: u64,
}

/// A timestamp field that does not read (`text`: `None` when it is not a string).
#[cold]
#[inline(never)]
fn bad_time(at: &Location, name: &'static str, text: Option<&[u8]>, e: &str) -> SignalError {
    let reason = match text {
        Some(text) => format!("{}: {e}", shown(text)),
        None => e.to_owned(),
    };
    SignalError::field(at.clone(), name, reason)
}

/// A price field other than a number in range, for [`Collector::add`]: text is read as
/// the CSV's prices are; anything else is an error naming the field.
#[cold]
#[inline(never)]
fn other_price(
    v: Field<'_>,
    at: &Location,
    base: &str,
    suffix: &str,
) -> Result<Option<Price>, SignalError> {
    match v {
        Field::Num(x) => Price::per_megawatt_hour(x)
            .map(Some)
            .map_err(|e| SignalError::field(at.clone(), format!("{base}_{suffix}"), e.to_string())),
        Field::Text(t) => parse_price(t)
            .map(Some)
            .map_err(|e| SignalError::field(at.clone(), format!("{base}_{suffix}"), e)),
        _ => Err(SignalError::field(
            at.clone(),
            format!("{base}_{suffix}"),
            "expected a number",
        )),
    }
}

/// Collects rows, then decides the run and builds the points.
pub(crate) struct Collector {
    rows: Vec<Raw>,
    /// Node ids, interned by their text (a numeric id by its decimal digits, so that
    /// `51291` and `"51291"` are one node); a file repeats each on every interval.
    nodes: Vec<PricingNodeId>,
    node_index: HashMap<Box<[u8]>, u32, RandomState>,
    numeric_nodes: HashMap<u64, u32, RandomState>,
    /// Node names, interned: a file repeats each name on every row.
    names: Vec<String>,
    name_index: HashMap<Box<[u8]>, u32, RandomState>,
    starts: LastTime,
    ends: LastTime,
    /// Whether positions are JSON items (else CSV lines).
    items: bool,
    /// The run named by the feed (JSON `links`), if any.
    pub(crate) feed_run: Option<MarketRun>,
}

impl Collector {
    pub(crate) fn new(items: bool) -> Self {
        Self {
            rows: Vec::new(),
            nodes: Vec::new(),
            node_index: HashMap::default(),
            numeric_nodes: HashMap::default(),
            names: Vec::new(),
            name_index: HashMap::default(),
            starts: LastTime::default(),
            ends: LastTime::default(),
            items,
            feed_run: None,
        }
    }

    fn location(&self, n: u64) -> Location {
        if self.items {
            Location::item(n)
        } else {
            Location::line(n)
        }
    }

    /// Adds one row; `side` says which suffix the price fields had.
    pub(crate) fn add(
        &mut self,
        f: &Fields<'_>,
        side: Side,
        n: u64,
        skips: &mut Skips,
    ) -> Result<(), SignalError> {
        let at = self.location(n);
        let suffix = match side {
            Side::DayAhead => "da",
            Side::RealTime => "rt",
        };
        if let Some(current) = f.row_is_current {
            let is_current = match current {
                Field::Bool(b) => Some(b),
                Field::Text(t) => match t.trim_ascii().to_ascii_lowercase().as_slice() {
                    b"true" | b"1" => Some(true),
                    b"false" | b"0" => Some(false),
                    _ => None,
                },
                Field::Num(x) => Some(x != 0.0),
                Field::Other => None,
            };
            match is_current {
                Some(true) => {}
                Some(false) => {
                    skips.superseded(
                        at.clone(),
                        SignalError::field(
                            at,
                            "row_is_current",
                            "row is superseded by a later version",
                        ),
                    );
                    return Ok(());
                }
                None => {
                    return Err(SignalError::field(
                        at,
                        "row_is_current",
                        "expected true or false",
                    ));
                }
            }
        }
        // Inline (a closure stayed a call); the errors out of line.
        #[inline(always)]
        fn time(
            last: &mut LastTime,
            v: Option<Field<'_>>,
            name: &'static str,
            at: &Location,
        ) -> Result<Option<DateTime<Utc>>, SignalError> {
            match v {
                None => Ok(None),
                Some(Field::Text(t)) => match last.parse(t) {
                    Ok(time) => Ok(Some(time)),
                    Err(e) => Err(bad_time(at, name, Some(t), e)),
                },
                Some(_) => Err(bad_time(at, name, None, "expected a timestamp string")),
            }
        }
        let start = time(&mut self.starts, f.start, "datetime_beginning_utc", &at)?
            .ok_or_else(|| SignalError::field(at.clone(), "datetime_beginning_utc", "missing"))?;
        let end = time(&mut self.ends, f.end, "datetime_ending_utc", &at)?;
        if let Some(end) = end
            && end <= start
        {
            return Err(SignalError::field(
                at,
                "datetime_ending_utc",
                format!(
                    "end {} is not after start {}",
                    end.to_rfc3339(),
                    start.to_rfc3339()
                ),
            ));
        }
        let node = match f.pnode_id {
            Some(Field::Num(x)) if x.fract() == 0.0 && (0.0..1e18).contains(&x) => {
                // Whole and below 1e18: exact as u64, and its digits are `{x:.0}`'s.
                self.numeric_node(x as u64)
            }
            Some(Field::Text(t)) => self.node(t.trim_ascii()),
            None => return Err(SignalError::field(at, "pnode_id", "missing")),
            Some(_) => {
                return Err(SignalError::field(
                    at,
                    "pnode_id",
                    "expected a whole number or text",
                ));
            }
        }
        .map_err(|e| SignalError::field(at.clone(), "pnode_id", e))?;
        // A price given as a number is taken here, inline; any other (text, a wrong
        // type, a value out of range) out of line.
        #[inline(always)]
        fn price(
            v: Option<Field<'_>>,
            base: &str,
            suffix: &str,
            at: &Location,
        ) -> Result<Option<Price>, SignalError> {
            match v {
                None => Ok(None),
                Some(Field::Num(x)) => match Price::per_megawatt_hour(x) {
                    Ok(p) => Ok(Some(p)),
                    Err(_) => other_price(Field::Num(x), at, base, suffix),
                },
                Some(v) => other_price(v, at, base, suffix),
            }
        }
        let lmp = price(f.lmp, "total_lmp", suffix, &at)?.ok_or_else(|| {
            SignalError::field(at.clone(), format!("total_lmp_{suffix}"), "missing")
        })?;
        let name = match f.pnode_name {
            None => None,
            Some(Field::Text(t)) => self.name(t.trim_ascii(), &at)?,
            Some(_) => return Err(SignalError::field(at, "pnode_name", "expected text")),
        };
        let energy = price(f.energy, "system_energy_price", suffix, &at)?;
        let congestion = price(f.congestion, "congestion_price", suffix, &at)?;
        let loss = price(f.loss, "marginal_loss_price", suffix, &at)?;
        self.rows.push(Raw {
            start,
            end,
            node,
            name,
            lmp,
            energy,
            congestion,
            loss,
            at: n,
        });
        Ok(())
    }

    /// The interned index of a node id given as text.
    fn node(&mut self, text: &[u8]) -> Result<u32, String> {
        if let Some(&i) = self.node_index.get(text) {
            return Ok(i);
        }
        let id = PricingNodeId::new(String::from_utf8_lossy(text).into_owned())
            .map_err(|e| e.to_string())?;
        let i = u32::try_from(self.nodes.len()).map_err(|_| "too many nodes".to_owned())?;
        self.nodes.push(id);
        self.node_index.insert(text.into(), i);
        Ok(i)
    }

    /// The interned index of a node id given as a whole number.
    fn numeric_node(&mut self, id: u64) -> Result<u32, String> {
        if let Some(&i) = self.numeric_nodes.get(&id) {
            return Ok(i);
        }
        let i = self.node(id.to_string().as_bytes())?;
        self.numeric_nodes.insert(id, i);
        Ok(i)
    }

    /// The interned index of a node name; an empty name is none.
    fn name(&mut self, text: &[u8], at: &Location) -> Result<Option<u32>, SignalError> {
        if text.is_empty() {
            return Ok(None);
        }
        if let Some(&i) = self.name_index.get(text) {
            return Ok(Some(i));
        }
        let s = std::str::from_utf8(text)
            .map_err(|_| SignalError::field(at.clone(), "pnode_name", "not UTF-8 text"))?;
        if s.len() > 256 || s.chars().any(char::is_control) {
            return Err(SignalError::field(
                at.clone(),
                "pnode_name",
                format!("{}: at most 256 bytes, no control characters", shown(text)),
            ));
        }
        let i = u32::try_from(self.names.len())
            .map_err(|_| SignalError::field(at.clone(), "pnode_name", "too many names"))?;
        self.names.push(s.to_owned());
        self.name_index.insert(text.into(), i);
        Ok(Some(i))
    }

    fn run(&self, side: Side, wanted: Option<MarketRun>) -> Result<MarketRun, SignalError> {
        let check = |run: MarketRun, source: &str| -> Result<MarketRun, SignalError> {
            let ok = match side {
                Side::DayAhead => run == MarketRun::PjmDayAheadHourly,
                Side::RealTime => matches!(
                    run,
                    MarketRun::PjmRealTimeHourly | MarketRun::PjmRealTimeFiveMinute
                ),
            };
            if ok && run.market() == Market::Pjm {
                Ok(run)
            } else {
                Err(SignalError::invalid(
                    "PJM market run",
                    format!("{source} names {run}, but the file has {side:?} price fields"),
                ))
            }
        };
        if side == Side::DayAhead {
            return match wanted {
                Some(w) => check(w, "the options"),
                None => Ok(MarketRun::PjmDayAheadHourly),
            };
        }
        if let Some(w) = wanted {
            let w = check(w, "the options")?;
            if let Some(f) = self.feed_run
                && f != w
            {
                return Err(SignalError::invalid(
                    "PJM market run",
                    format!("the feed link names {f}, but the options ask for {w}"),
                ));
            }
            return Ok(w);
        }
        if let Some(f) = self.feed_run {
            return check(f, "the feed link");
        }
        let from_length = |len: TimeDelta| match len.num_minutes() {
            5 => Some(MarketRun::PjmRealTimeFiveMinute),
            60 => Some(MarketRun::PjmRealTimeHourly),
            _ => None,
        };
        if let Some(r) = self.rows.iter().find_map(|r| r.end.map(|e| e - r.start)) {
            return from_length(r).ok_or_else(|| {
                SignalError::invalid(
                    "PJM market run",
                    format!(
                        "interval length {} min is neither 5 nor 60",
                        r.num_minutes()
                    ),
                )
            });
        }
        let mut starts: Vec<i64> = self.rows.iter().map(|r| r.start.timestamp()).collect();
        starts.sort_unstable();
        starts.dedup();
        let gap = starts.windows(2).map(|w| w[1] - w[0]).min();
        match gap {
            Some(g) if g % 3600 == 0 && starts.iter().all(|s| s % 3600 == 0) => {
                Ok(MarketRun::PjmRealTimeHourly)
            }
            Some(300) => Ok(MarketRun::PjmRealTimeFiveMinute),
            Some(g) => Err(SignalError::invalid(
                "PJM market run",
                format!(
                    "starting times are {g} s apart, neither 5-minute nor hourly; set ParseOptions::run"
                ),
            )),
            None => Err(SignalError::invalid(
                "PJM market run",
                "a real-time file with one starting time does not tell 5-minute from hourly; set ParseOptions::run",
            )),
        }
    }

    /// Builds the sorted points; duplicate (start, node) rows are bad rows.
    pub(crate) fn finish(
        mut self,
        side: Option<Side>,
        wanted: Option<MarketRun>,
        skips: &mut Skips,
    ) -> Result<Vec<PricePoint>, SignalError> {
        let Some(side) = side else {
            return Ok(Vec::new());
        };
        if self.rows.is_empty() {
            return Ok(Vec::new());
        }
        let run = self.run(side, wanted)?;
        let length = run.nominal_length();
        let mut rows = std::mem::take(&mut self.rows);
        // Each node's rank in id order, so the sort compares integers.
        let nodes = &self.nodes;
        let mut by_id: Vec<u32> = (0..nodes.len() as u32).collect();
        by_id.sort_unstable_by(|&a, &b| nodes[a as usize].cmp(&nodes[b as usize]));
        let mut rank = vec![0u32; nodes.len()];
        for (r, &n) in by_id.iter().enumerate() {
            rank[n as usize] = r as u32;
        }
        rows.sort_unstable_by_key(|r| (r.start, rank[r.node as usize], r.at));
        let mut out: Vec<PricePoint> = Vec::with_capacity(rows.len());
        // Sorted by (start, node), so a second row for a point follows the first.
        let mut duplicate = Vec::with_capacity(rows.len());
        duplicate.push(false);
        duplicate.extend(
            rows.windows(2)
                .map(|w| w[0].start == w[1].start && w[0].node == w[1].node),
        );
        for (r, duplicate) in rows.into_iter().zip(duplicate) {
            let at = self.location(r.at);
            let node = &self.nodes[r.node as usize];
            if duplicate {
                skips.bad_row(
                    at.clone(),
                    SignalError::field(
                        at,
                        "pnode_id",
                        format!("second row for node {node} at {}", r.start.to_rfc3339()),
                    ),
                )?;
                continue;
            }
            let Some(end) = r.end.or_else(|| r.start.checked_add_signed(length)) else {
                skips.bad_row(
                    at.clone(),
                    SignalError::field(
                        at,
                        "datetime_beginning_utc",
                        "too late to add the interval length",
                    ),
                )?;
                continue;
            };
            let interval = Interval::new(r.start, end)?;
            if let Err(e) = crate::model::check_length(run, &interval) {
                skips.bad_row(
                    at.clone(),
                    SignalError::field(at, "datetime_ending_utc", e.to_string()),
                )?;
                continue;
            }
            let name = r.name.and_then(|i| self.names.get(i as usize)).cloned();
            out.push(
                PricePoint::new(run, node.clone(), interval, r.lmp)
                    .with_pnode_name(name)
                    .with_energy(r.energy)
                    .with_congestion(r.congestion)
                    .with_loss(r.loss),
            );
        }
        Ok(out)
    }
}
