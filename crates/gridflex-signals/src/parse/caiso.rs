//! Gathering CAISO's one-row-per-component prices into [`PricePoint`]s.
//!
//! OASIS publishes each LMP component on its own row (`LMP_TYPE` LMP, MCE, MCC, MCL,
//! MGHG in CSV; `DATA_ITEM` LMP_PRC, LMP_ENE_PRC, ... in XML), and a zip may spread them
//! over several files (reference `markets.md` §f). The [`Gatherer`] joins them by
//! (interval start, node, market run), whatever order they come in.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use foldhash::fast::RandomState;

use chrono::{DateTime, Utc};
use gridflex_core::{Interval, Price, PricingNodeId};

use super::Skips;
use super::intern::Interner;
use super::scalar::shown;
use crate::{Location, MarketRun, PricePoint, SignalError};

/// One LMP component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Component {
    Lmp = 0,
    Energy = 1,
    Congestion = 2,
    Loss = 3,
    Ghg = 4,
}

const COMPONENT_NAMES: [&str; 5] = ["LMP", "MCE", "MCC", "MCL", "MGHG"];

impl Component {
    /// From a CSV `LMP_TYPE` value: the exact bytes every row has first, trimmed only
    /// when that fails.
    #[inline]
    pub(crate) fn from_lmp_type(t: &[u8]) -> Option<Self> {
        match Self::lmp_type(t) {
            Some(c) => Some(c),
            None => Self::lmp_type_trimmed(t),
        }
    }

    #[cold]
    fn lmp_type_trimmed(t: &[u8]) -> Option<Self> {
        Self::lmp_type(t.trim_ascii())
    }

    #[inline(always)]
    fn lmp_type(t: &[u8]) -> Option<Self> {
        match t {
            b"LMP" => Some(Component::Lmp),
            b"MCE" => Some(Component::Energy),
            b"MCC" => Some(Component::Congestion),
            b"MCL" => Some(Component::Loss),
            b"MGHG" => Some(Component::Ghg),
            _ => None,
        }
    }

    /// From an `XML_DATA_ITEM` / `DATA_ITEM` value.
    pub(crate) fn from_data_item(t: &[u8]) -> Option<Self> {
        match t.trim_ascii() {
            b"LMP_PRC" => Some(Component::Lmp),
            b"LMP_ENE_PRC" => Some(Component::Energy),
            b"LMP_CONG_PRC" => Some(Component::Congestion),
            b"LMP_LOSS_PRC" => Some(Component::Loss),
            b"LMP_GHG_PRC" => Some(Component::Ghg),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        COMPONENT_NAMES[self as usize]
    }
}

type Key = (i64, u32, MarketRun);

/// Where a pending point was first seen, compactly.
#[derive(Clone, Copy)]
struct Seen {
    /// Line (CSV) or element ordinal (XML).
    n: u64,
    /// Index into `Gatherer::entries`, or `u32::MAX` outside a zip.
    entry: u32,
    element: bool,
}

/// What the gatherer keeps beside each point it builds.
#[derive(Clone, Copy)]
struct Meta {
    key: Key,
    seen: Seen,
    /// The components read so far, one bit each (`1 << Component`).
    have: u8,
    poisoned: bool,
}

/// A point being gathered: its interval and its components' prices, indexed by
/// [`Component`].
#[derive(Clone, Copy)]
struct Pending {
    interval: Interval,
    prices: [Price; 5],
}

/// The location of a row: element ordinal (XML) or line (CSV), in its zip entry if any.
fn location(entries: &[String], seen: Seen) -> Location {
    let mut at = if seen.element {
        Location::element("REPORT_DATA", seen.n)
    } else {
        Location::line(seen.n)
    };
    if let Some(e) = entries.get(seen.entry as usize) {
        at.entry = Some(e.clone());
    }
    at
}

/// Where a file's rows go: straight into a [`Gatherer`] ([`Direct`]), or recorded
/// for a later replay in file order ([`Recorder`], a zip entry parsed on another
/// thread).
pub(crate) trait Sink {
    /// The interned index of a node name, validating it on first sight.
    fn node(&mut self, text: &[u8]) -> Result<u32, String>;
    /// One component of a point (see [`Gatherer::add`]), from the row `at`.
    fn add(
        &mut self,
        key: &RowKey,
        component: Component,
        price: Price,
        at: RowAt,
    ) -> Result<(), SignalError>;
    /// Marks the point a bad row belonged to.
    fn poison(&mut self, key: &RowKey, n: u64, element: bool);
    /// A bad row: an error in strict mode, recorded in lenient mode.
    fn bad_row(&mut self, at: Location, error: SignalError) -> Result<(), SignalError>;
    /// A lenient-mode bad row beyond the kept examples (see [`Skips::count_beyond_examples`]).
    fn count_beyond_examples(&mut self);
}

/// Reads one CAISO document (`read` puts its rows into the sink) and gathers its
/// points: the body of [`super::parse_caiso_csv`] and [`super::parse_caiso_xml`].
pub(crate) fn gather(
    format: super::Format,
    options: &super::ParseOptions,
    read: impl FnOnce(&mut Direct<'_>) -> Result<(), SignalError>,
) -> Result<super::ParseOutput, SignalError> {
    let mut gatherer = Gatherer::new();
    let mut skips = Skips::new(options.mode);
    read(&mut Direct {
        gatherer: &mut gatherer,
        skips: &mut skips,
    })?;
    let points = gatherer.finish(&mut skips)?;
    Ok(super::ParseOutput {
        format,
        points,
        skipped_count: skips.count,
        skipped: skips.rows,
        next_page: None,
    })
}

/// Rows straight into a gatherer, bad rows into the skips.
pub(crate) struct Direct<'a> {
    pub(crate) gatherer: &'a mut Gatherer,
    pub(crate) skips: &'a mut Skips,
}

impl Sink for Direct<'_> {
    #[inline(always)]
    fn node(&mut self, text: &[u8]) -> Result<u32, String> {
        self.gatherer.node(text)
    }

    #[inline(always)]
    fn add(
        &mut self,
        key: &RowKey,
        component: Component,
        price: Price,
        at: RowAt,
    ) -> Result<(), SignalError> {
        self.gatherer.add(key, component, price, at.n, at.element)
    }

    fn poison(&mut self, key: &RowKey, n: u64, element: bool) {
        self.gatherer.poison(key, n, element);
    }

    fn bad_row(&mut self, at: Location, error: SignalError) -> Result<(), SignalError> {
        self.skips.bad_row(at, error)
    }

    fn count_beyond_examples(&mut self) {
        self.skips.count_beyond_examples();
    }
}

/// One recorded call: 56 bytes for the call every row makes (an `Add`: its interval
/// an index into [`Recorder::intervals`], the rare calls boxed), so that recording a
/// zip entry's rows writes little memory.
enum Event {
    Add {
        interval: u32,
        node: u32,
        price: Price,
        at: RowAt,
        run: MarketRun,
        component: Component,
    },
    Poison {
        key: RowKey,
        n: u64,
        element: bool,
    },
    /// A bad row whose error is kept: the first [`super::SKIPPED_EXAMPLES`] (no later
    /// one can be among the examples the replay keeps).
    Bad(Box<(Location, SignalError)>),
    /// A bad row after those, only counted (nothing allocated for it).
    Beyond,
    /// A fatal error that ended the file.
    Fatal(Box<SignalError>),
}

/// A file's rows recorded on a worker thread, to be replayed into the one gatherer
/// in file order: the replay makes exactly the calls a direct parse would have made,
/// so the result, the skips and the first error are the same.
pub(crate) struct Recorder {
    strict: bool,
    events: Vec<Event>,
    /// Node names in first-seen order (the recorded keys hold these indexes).
    names: Interner,
    /// The intervals of the recorded rows, each run of rows with one interval
    /// holding one entry.
    intervals: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    kept: usize,
    /// A strict-mode bad row ended the file.
    stopped: bool,
}

impl Recorder {
    pub(crate) fn new(mode: super::Mode) -> Self {
        Self {
            strict: mode == super::Mode::Strict,
            events: Vec::new(),
            names: Interner::default(),
            intervals: Vec::new(),
            kept: 0,
            stopped: false,
        }
    }

    /// Ends the recording with what the file's reader returned.
    pub(crate) fn end(&mut self, result: Result<(), SignalError>) {
        match result {
            Ok(()) => {}
            // The bad row that stopped a strict parse is recorded already.
            Err(_) if self.stopped => {}
            Err(e) => self.events.push(Event::Fatal(Box::new(e))),
        }
    }

    /// Replays the recording into `sink`, making the calls a direct parse would have
    /// made, in the same order.
    pub(crate) fn replay(self, sink: &mut impl Sink) -> Result<(), SignalError> {
        let mut global = Vec::with_capacity(self.names.len());
        for name in (0..self.names.len() as u32).filter_map(|i| self.names.text(i)) {
            // Validated when recorded; interning again cannot fail differently.
            global.push(
                sink.node(name)
                    .map_err(|e| SignalError::invalid("NODE", e))?,
            );
        }
        // Every recorded key names one of the recording's own nodes; a key that did not
        // would be an error here, never a point on another node.
        let map = |key: RowKey| {
            let node = global.get(key.node as usize).copied().ok_or_else(|| {
                SignalError::invalid("NODE", "a recorded row names a node not recorded")
            })?;
            Ok::<_, SignalError>(RowKey { node, ..key })
        };
        for event in self.events {
            match event {
                Event::Add {
                    interval,
                    node,
                    price,
                    at,
                    run,
                    component,
                } => {
                    let (start, end) =
                        self.intervals
                            .get(interval as usize)
                            .copied()
                            .ok_or_else(|| {
                                SignalError::invalid(
                                    "row",
                                    "a recorded row names an interval not recorded",
                                )
                            })?;
                    let key = RowKey {
                        start,
                        end,
                        node,
                        run,
                    };
                    if let Err(e) = sink.add(&map(key)?, component, price, at) {
                        sink.bad_row(at.location(), e)?;
                    }
                }
                Event::Poison { key, n, element } => sink.poison(&map(key)?, n, element),
                Event::Bad(bad) => {
                    let (at, e) = *bad;
                    sink.bad_row(at, e)?;
                }
                Event::Beyond => sink.count_beyond_examples(),
                Event::Fatal(e) => return Err(*e),
            }
        }
        Ok(())
    }
}

impl Sink for Recorder {
    fn node(&mut self, text: &[u8]) -> Result<u32, String> {
        self.names
            .intern(text.trim_ascii(), |text| node_id(text).map(drop))
    }

    fn add(
        &mut self,
        key: &RowKey,
        component: Component,
        price: Price,
        at: RowAt,
    ) -> Result<(), SignalError> {
        let interval = (key.start, key.end);
        if self.intervals.last() != Some(&interval) {
            self.intervals.push(interval);
        }
        self.events.push(Event::Add {
            interval: u32::try_from(self.intervals.len() - 1).map_err(|_| {
                SignalError::invalid("row", "more intervals than a recording can hold")
            })?,
            node: key.node,
            price,
            at,
            run: key.run,
            component,
        });
        Ok(())
    }

    fn poison(&mut self, key: &RowKey, n: u64, element: bool) {
        self.events.push(Event::Poison {
            key: key.clone(),
            n,
            element,
        });
    }

    fn bad_row(&mut self, at: Location, error: SignalError) -> Result<(), SignalError> {
        if self.strict {
            self.events.push(Event::Bad(Box::new((at, error))));
            self.stopped = true;
            return Err(SignalError::invalid("row", "recorded"));
        }
        if self.kept < super::SKIPPED_EXAMPLES {
            self.kept += 1;
            self.events.push(Event::Bad(Box::new((at, error))));
        } else {
            self.events.push(Event::Beyond);
        }
        Ok(())
    }

    fn count_beyond_examples(&mut self) {
        self.events.push(Event::Beyond);
    }
}

/// A node name as a node id: UTF-8 and a valid [`PricingNodeId`].
fn node_id(text: &[u8]) -> Result<PricingNodeId, String> {
    let s = std::str::from_utf8(text).map_err(|_| format!("{} is not UTF-8", shown(text)))?;
    PricingNodeId::new(s).map_err(|e| e.to_string())
}

/// The node, interval and run a component row belongs to.
#[derive(Clone)]
pub(crate) struct RowKey {
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
    pub(crate) node: u32,
    pub(crate) run: MarketRun,
}

/// Where a component row is, as a recording keeps it (the [`Location`] a failing row
/// is reported at is built from it only then): a CSV line, or an XML `REPORT_DATA`
/// element's ordinal and the byte it starts at.
#[derive(Clone, Copy)]
pub(crate) struct RowAt {
    pub(crate) n: u64,
    pub(crate) byte: Option<u64>,
    pub(crate) element: bool,
}

impl RowAt {
    /// CSV line `n`.
    pub(crate) fn line(n: u64) -> Self {
        Self {
            n,
            byte: None,
            element: false,
        }
    }

    /// The `n`th `REPORT_DATA` element, starting at `byte` where known.
    pub(crate) fn report_data(n: u64, byte: Option<u64>) -> Self {
        Self {
            n,
            byte,
            element: true,
        }
    }

    /// The location the format's reader reports the row at.
    pub(crate) fn location(self) -> Location {
        let at = if self.element {
            Location::element("REPORT_DATA", self.n)
        } else {
            Location::line(self.n)
        };
        match self.byte {
            Some(byte) => at.at_byte(byte),
            None => at,
        }
    }
}

/// The name of the interval-end field of an XML element's row (`element`) or a CSV
/// row's.
fn end_field(element: bool) -> &'static str {
    if element {
        "INTERVAL_END_GMT"
    } else {
        "INTERVALENDTIME_GMT"
    }
}

/// Joins component rows into price points.
pub(crate) struct Gatherer {
    names: Interner,
    /// Each interned name as a node id.
    nodes: Vec<PricingNodeId>,
    /// Points in the order first seen, as their intervals and prices (a component of a
    /// point means something only once `Meta::have` says its row was read): 64 bytes
    /// a point where a [`PricePoint`] takes 144, so the rows write to less memory and
    /// nothing large is moved to sort them; [`Self::finish`] builds each
    /// [`PricePoint`] once, in output order. Looked up in two steps, (start, run) to a slot and then the node within the slot: a
    /// file's rows come in runs of one interval, so the slot's small map stays in
    /// cache, where one map of every point would miss the cache on nearly every row.
    points: Vec<Pending>,
    /// Beside each point, by index.
    meta: Vec<Meta>,
    slots: HashMap<(i64, MarketRun), u32, RandomState>,
    slot_nodes: Vec<HashMap<u32, u32, RandomState>>,
    last_slot: Option<((i64, MarketRun), u32)>,
    /// The point found last (the first guess for the next row).
    last_point: u32,
    /// The last start seen, with its Unix seconds.
    last_start: (DateTime<Utc>, i64),
    hasher: RandomState,
    entries: Vec<String>,
    entry: u32,
}

impl Gatherer {
    pub(crate) fn new() -> Self {
        Self {
            names: Interner::default(),
            nodes: Vec::new(),
            points: Vec::new(),
            meta: Vec::new(),
            slots: HashMap::default(),
            slot_nodes: Vec::new(),
            last_slot: None,
            last_point: u32::MAX,
            last_start: (DateTime::UNIX_EPOCH, 0),
            hasher: RandomState::default(),
            entries: Vec::new(),
            entry: u32::MAX,
        }
    }

    /// Rows that follow come from the zip entry `name`.
    pub(crate) fn set_entry(&mut self, name: &str) {
        self.entries.push(name.to_owned());
        self.entry = u32::try_from(self.entries.len() - 1).unwrap_or(u32::MAX);
    }

    /// The interned index of a node name, validating it on first sight.
    #[inline(always)]
    pub(crate) fn node(&mut self, text: &[u8]) -> Result<u32, String> {
        let nodes = &mut self.nodes;
        self.names.intern(text.trim_ascii(), |text| {
            nodes.push(node_id(text)?);
            Ok(())
        })
    }

    /// The index of the point of `key`, created on first sight (with the row's end,
    /// which the row has checked is after its start).
    #[inline(always)]
    fn point(&mut self, key: &RowKey, seen: Seen) -> Result<usize, SignalError> {
        // Rows come in runs of one start: its seconds are worked out once a run.
        let start = match self.last_start {
            (time, seconds) if time == key.start => seconds,
            _ => {
                let seconds = key.start.timestamp();
                self.last_start = (key.start, seconds);
                seconds
            }
        };
        let want = (start, key.node, key.run);
        // A file's rows for one point come one after another (its components), or in
        // the same order as the rows that made the points (a later component's pass).
        // Inline, so that a guess that holds costs no call.
        let last = self.last_point as usize;
        for i in [last, last.wrapping_add(1)] {
            if self.meta.get(i).is_some_and(|m| m.key == want) {
                self.last_point = i as u32;
                return Ok(i);
            }
        }
        self.point_in_slot(key, want, seen)
    }

    /// [`Self::point`] when neither guess holds: the point looked up by its interval
    /// and run, then its node, or made.
    #[inline(never)]
    fn point_in_slot(&mut self, key: &RowKey, want: Key, seen: Seen) -> Result<usize, SignalError> {
        let start = want.0;
        let slot_key = (start, key.run);
        let slot = match self.last_slot {
            Some((k, slot)) if k == slot_key => slot,
            _ => {
                let next = u32::try_from(self.slot_nodes.len()).unwrap_or(u32::MAX);
                let slot = *self.slots.entry(slot_key).or_insert(next);
                if slot == next {
                    // Sized like the last interval's (intervals usually have the same
                    // nodes), so that it does not grow row by row.
                    let like = self.slot_nodes.last().map_or(0, HashMap::len);
                    self.slot_nodes
                        .push(HashMap::with_capacity_and_hasher(like, self.hasher));
                }
                self.last_slot = Some((slot_key, slot));
                slot
            }
        };
        let next = u32::try_from(self.points.len()).unwrap_or(u32::MAX);
        let known = (key.node as usize) < self.nodes.len();
        let map = &mut self.slot_nodes[slot as usize];
        // One lookup for both cases (a point found, or its place for a new one).
        let i = match map.entry(key.node) {
            Entry::Occupied(found) => *found.get(),
            Entry::Vacant(place) => {
                if !known {
                    return Err(SignalError::invalid(
                        "NODE",
                        "a row names a node not interned",
                    ));
                }
                let interval = Interval::new(key.start, key.end)?;
                // Each price is set by its row; until then `Meta::have` says it is not
                // read.
                self.points.push(Pending {
                    interval,
                    prices: [Price::ZERO; 5],
                });
                self.meta.push(Meta {
                    key: want,
                    seen,
                    have: 0,
                    poisoned: false,
                });
                place.insert(next);
                next
            }
        };
        self.last_point = i;
        Ok(i as usize)
    }

    fn location(&self, seen: Seen) -> Location {
        location(&self.entries, seen)
    }

    fn describe(&self, key: &RowKey) -> String {
        let node = self
            .nodes
            .get(key.node as usize)
            .map_or("?", |n| n.as_str());
        format!(
            "node {node}, {} interval starting {}",
            key.run,
            key.start.to_rfc3339()
        )
    }

    /// Adds one component; fails on a duplicate component or an end time that
    /// disagrees with an earlier row of the same point. Inline, with the failures out
    /// of line: it runs for every row.
    #[inline(always)]
    pub(crate) fn add(
        &mut self,
        key: &RowKey,
        component: Component,
        price: Price,
        n: u64,
        element: bool,
    ) -> Result<(), SignalError> {
        let seen = Seen {
            n,
            entry: self.entry,
            element,
        };
        let i = self.point(key, seen)?;
        let bit = 1u8 << component as u8;
        if self.points[i].interval.end() != key.end || self.meta[i].have & bit != 0 {
            return Err(self.conflict(i, key, component, seen));
        }
        self.meta[i].have |= bit;
        self.points[i].prices[component as usize] = price;
        Ok(())
    }

    /// The error for a row that [`Self::add`] refuses (its point `i` is then poisoned):
    /// an end that disagrees with the point's, or a second row of one component.
    #[cold]
    #[inline(never)]
    fn conflict(
        &mut self,
        i: usize,
        key: &RowKey,
        component: Component,
        seen: Seen,
    ) -> SignalError {
        let (first, end) = (self.meta[i].seen, self.points[i].interval.end());
        self.meta[i].poisoned = true;
        let here = self.location(seen);
        if end != key.end {
            let reason = format!(
                "end {} disagrees with end {} given at {} for {}",
                key.end.to_rfc3339(),
                end.to_rfc3339(),
                self.location(first),
                self.describe(key)
            );
            return SignalError::field(here, end_field(seen.element), reason);
        }
        let reason = format!(
            "second {} row for {} (first row at {})",
            component.name(),
            self.describe(key),
            self.location(first)
        );
        SignalError::field(here, "LMP_TYPE", reason)
    }

    /// Marks the point a bad row belonged to, so it is not emitted without that row.
    pub(crate) fn poison(&mut self, key: &RowKey, n: u64, element: bool) {
        let seen = Seen {
            n,
            entry: self.entry,
            element,
        };
        // A point is made for any row whose end is after its start, which every row
        // that gets here has checked; were one made for no point, nothing is emitted
        // for it either.
        if let Ok(i) = self.point(key, seen) {
            self.meta[i].poisoned = true;
        }
    }

    /// The finished points, sorted by start, node, run. A point with no LMP row is a
    /// bad row; a point one of whose rows was bad is dropped and reported.
    pub(crate) fn finish(self, skips: &mut Skips) -> Result<Vec<PricePoint>, SignalError> {
        let Gatherer {
            nodes,
            points,
            meta,
            entries,
            ..
        } = self;
        // Each node's rank in name order, so the sort compares integers.
        let mut by_name: Vec<u32> = (0..nodes.len() as u32).collect();
        by_name
            .sort_unstable_by(|&a, &b| nodes[a as usize].as_str().cmp(nodes[b as usize].as_str()));
        let mut rank = vec![0u32; nodes.len()];
        for (r, &n) in by_name.iter().enumerate() {
            rank[n as usize] = r as u32;
        }
        let order = output_order(&meta, &rank, NARROW_RANKS);
        // The points emitted, built in output order; the others are reported in that
        // order too.
        let mut out: Vec<PricePoint> = Vec::with_capacity(order.len());
        // The last interval and run whose length was checked, and passed: a file's
        // points come in runs of one interval.
        let mut checked: Option<(MarketRun, Interval)> = None;
        for i in order {
            let (p, m) = (&points[i as usize], meta[i as usize]);
            let at = || location(&entries, m.seen);
            let (_, node, run) = m.key;
            let node = &nodes[node as usize];
            let start = p.interval.start();
            if m.poisoned {
                skips.bad_row(
                    at(),
                    SignalError::invalid(
                        "price point",
                        format!(
                            "node {node}, {run} interval starting {} dropped: one of its rows was bad",
                            start.to_rfc3339()
                        ),
                    ),
                )?;
                continue;
            }
            if m.have & (1 << Component::Lmp as u8) == 0 {
                let have: Vec<&str> = (0..5)
                    .filter(|&c| m.have & (1 << c) != 0)
                    .map(|c| COMPONENT_NAMES[c])
                    .collect();
                skips.bad_row(
                    at(),
                    SignalError::field(
                        at(),
                        "LMP_TYPE",
                        format!(
                            "no LMP row for node {node}, {run} interval starting {} (only {})",
                            start.to_rfc3339(),
                            have.join(", ")
                        ),
                    ),
                )?;
                continue;
            }
            if checked != Some((run, p.interval))
                && let Err(e) = crate::model::check_length(run, &p.interval)
            {
                let field = end_field(m.seen.element);
                skips.bad_row(at(), SignalError::field(at(), field, e.to_string()))?;
                continue;
            }
            checked = Some((run, p.interval));
            let price = |c: Component| (m.have & 1 << c as u8 != 0).then_some(p.prices[c as usize]);
            out.push(PricePoint {
                market: run.market(),
                run,
                node: node.clone(),
                pnode_name: None,
                interval: p.interval,
                lmp: p.prices[Component::Lmp as usize],
                energy: price(Component::Energy),
                congestion: price(Component::Congestion),
                loss: price(Component::Loss),
                ghg: price(Component::Ghg),
            });
        }
        Ok(out)
    }
}

/// Node ranks below this fit beside the run in 32 bits (see [`output_order`]).
const NARROW_RANKS: usize = 1 << 24;

/// The points' indexes in output order: by start, then node (`rank`: its place in name
/// order), then run. Sorted as small keys with the index, not the points themselves,
/// each key an integer that sorts the same way: the start with its sign bit flipped,
/// then the rank, then the run. Where every rank is below `narrow` (any file short of
/// 16 million nodes), the rank and the run share 32 bits, so a key and its index take
/// 16 bytes instead of 32: half the memory to sort and to fault in; and points that
/// come in runs of one start, as a file's do, are put in order run by run
/// ([`order_by_runs`]).
fn output_order(meta: &[Meta], rank: &[u32], narrow: usize) -> Vec<u32> {
    let start = |m: &Meta| m.key.0 as u64 ^ 1 << 63;
    if rank.len() <= narrow {
        let keys: Vec<(u64, u32)> = meta
            .iter()
            .map(|m| {
                let (_, node, run) = m.key;
                (start(m), rank[node as usize] << 8 | run as u32)
            })
            .collect();
        if let Some(order) = order_by_runs(&keys) {
            return order;
        }
        let mut order: Vec<(u64, u32, u32)> = keys
            .iter()
            .enumerate()
            .map(|(i, &(start, rest))| (start, rest, i as u32))
            .collect();
        order.sort_unstable_by_key(|&(start, rest, _)| (start, rest));
        order.into_iter().map(|(_, _, i)| i).collect()
    } else {
        let mut order: Vec<(u128, u32)> = meta
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let (_, node, run) = m.key;
                let rest = u128::from(rank[node as usize]) << 8 | u128::from(run as u8);
                (u128::from(start(m)) << 64 | rest, i as u32)
            })
            .collect();
        order.sort_unstable_by_key(|&(key, _)| key);
        order.into_iter().map(|(_, i)| i).collect()
    }
}

/// The order of `keys` (start, then the rest) when they come in runs of one start,
/// each run's start after the last's: each run sorted on its own (a few hundred keys,
/// in cache, where sorting all of them makes a dozen passes over megabytes), and a run
/// whose keys come in the same order as the run before put in that run's order without
/// sorting (a file lists the same nodes in the same order interval after interval).
/// `None` when the starts are not in such runs (sort them all then).
fn order_by_runs(keys: &[(u64, u32)]) -> Option<Vec<u32>> {
    let mut order: Vec<u32> = Vec::with_capacity(keys.len());
    // The last run, and its keys' order as places within it.
    let mut last: &[(u64, u32)] = &[];
    let mut places: Vec<u32> = Vec::new();
    let mut at = 0;
    while let Some(&(start, _)) = keys.get(at) {
        if last.first().is_some_and(|&(before, _)| before >= start) {
            return None;
        }
        let len = keys[at..].iter().take_while(|k| k.0 == start).count();
        let run = &keys[at..at + len];
        let same = run.len() == last.len() && run.iter().zip(last).all(|(a, b)| a.1 == b.1);
        if !same {
            places.clear();
            places.extend(0..len as u32);
            places.sort_unstable_by_key(|&k| run[k as usize].1);
        }
        let base = at as u32;
        order.extend(places.iter().map(|&k| base + k));
        last = run;
        at += len;
    }
    Some(order)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::Strategy as _;

    use super::{Component, Meta, Seen, output_order};
    use crate::MarketRun;

    #[test]
    fn lmp_types_read_exact_or_trimmed() {
        for (text, want) in [
            (&b"LMP"[..], Some(Component::Lmp)),
            (b"MCE", Some(Component::Energy)),
            (b" MCC", Some(Component::Congestion)),
            (b"MCL\t", Some(Component::Loss)),
            (b"MGHG", Some(Component::Ghg)),
            (b" MGHG ", Some(Component::Ghg)),
            (b"mce", None),
            (b"MC", None),
            (b"", None),
        ] {
            assert_eq!(Component::from_lmp_type(text), want, "{text:?}");
        }
    }

    proptest::proptest! {
        /// Points in runs of one start, as a file's are: each run's nodes a shuffle,
        /// often the last run's nodes in the last run's order (taken again without a
        /// sort), sometimes a run with a start not after the last's (all sorted then):
        /// the order is the full sort's.
        #[test]
        fn runs_of_one_start_give_the_output_order(
            (ranks, runs) in (1usize..30).prop_flat_map(|nodes| {
                (
                    proptest::sample::subsequence((0..1000u32).collect::<Vec<_>>(), nodes)
                        .prop_shuffle(),
                    proptest::collection::vec(
                        (
                            -4i64..40,
                            proptest::sample::subsequence((0..nodes as u32).collect::<Vec<_>>(), 0..=nodes)
                                .prop_shuffle(),
                            proptest::prelude::any::<bool>(),
                            0usize..4,
                        ),
                        0..12,
                    ),
                )
            }),
        ) {
            let kinds = [
                MarketRun::CaisoDam,
                MarketRun::CaisoRtpd,
                MarketRun::CaisoRtm,
                MarketRun::CaisoHasp,
            ];
            let mut meta: Vec<Meta> = Vec::new();
            let (mut start, mut last): (i64, Vec<u32>) = (-10, Vec::new());
            for (step, nodes, again, run) in runs {
                // Mostly later starts; a step below 1 is a start not after the last.
                start += step / 4;
                let nodes = if again && !last.is_empty() { last.clone() } else { nodes };
                for &node in &nodes {
                    meta.push(Meta {
                        key: (start, node, kinds[run]),
                        seen: Seen { n: 1, entry: u32::MAX, element: false },
                        have: 1,
                        poisoned: false,
                    });
                }
                last = nodes;
            }
            let key = |i: u32| {
                let (start, node, run) = meta[i as usize].key;
                (start, ranks[node as usize], run as u8)
            };
            let mut want: Vec<u32> = (0..meta.len() as u32).collect();
            want.sort_by_key(|&i| key(i));
            let got = output_order(&meta, &ranks, super::NARROW_RANKS);
            let keys = |order: &[u32]| order.iter().map(|&i| key(i)).collect::<Vec<_>>();
            proptest::prop_assert_eq!(keys(&got), keys(&want));
            let mut sorted = got.clone();
            sorted.sort_unstable();
            let all: Vec<u32> = (0..meta.len() as u32).collect();
            proptest::prop_assert_eq!(sorted, all);
        }

        /// Both keys, the 16-byte one and the wide one, order points by start (negative
        /// ones included), node rank and run, as a sort of the plain tuples does.
        #[test]
        fn both_keys_give_the_output_order(
            (ranks, points) in (1usize..40).prop_flat_map(|nodes| {
                (
                    proptest::sample::subsequence((0..1000u32).collect::<Vec<_>>(), nodes)
                        .prop_shuffle(),
                    proptest::collection::vec(
                        (
                            proptest::prop_oneof![
                                proptest::prelude::Just(i64::MIN),
                                proptest::prelude::Just(i64::MAX),
                                -3i64..3,
                                proptest::prelude::any::<i64>(),
                            ],
                            0..nodes as u32,
                            0usize..4,
                        ),
                        0..80,
                    ),
                )
            }),
        ) {
            let runs = [
                MarketRun::CaisoDam,
                MarketRun::CaisoRtpd,
                MarketRun::CaisoRtm,
                MarketRun::CaisoHasp,
            ];
            let meta: Vec<Meta> = points
                .iter()
                .map(|&(start, node, run)| Meta {
                    key: (start, node, runs[run]),
                    seen: Seen { n: 1, entry: u32::MAX, element: false },
                    have: 1,
                    poisoned: false,
                })
                .collect();
            let mut want: Vec<u32> = (0..meta.len() as u32).collect();
            want.sort_by_key(|&i| {
                let (start, node, run) = meta[i as usize].key;
                (start, ranks[node as usize], run as u8, i)
            });
            // Equal keys may come in any order: compare the keys, then the sets.
            let keys = |order: &[u32]| -> Vec<(i64, u32, u8)> {
                order
                    .iter()
                    .map(|&i| {
                        let (start, node, run) = meta[i as usize].key;
                        (start, ranks[node as usize], run as u8)
                    })
                    .collect()
            };
            for narrow in [super::NARROW_RANKS, 0] {
                let got = output_order(&meta, &ranks, narrow);
                proptest::prop_assert_eq!(keys(&got), keys(&want));
                let mut sorted = got.clone();
                sorted.sort_unstable();
                let all: Vec<u32> = (0..meta.len() as u32).collect();
                proptest::prop_assert_eq!(sorted, all);
            }
        }
    }
}
