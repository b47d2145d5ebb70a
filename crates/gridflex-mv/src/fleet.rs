//! Settling a fleet: many meters, many events, many methods in one call, each meter
//! read and indexed once, spread over threads.
//!
//! An aggregator settles thousands of sites after each event. Calling a baseline once
//! per meter, event and method works, but re-reading each meter for every call is what
//! made it slow; here every meter is indexed once ([`Meter`]) and every (event, method)
//! pair is computed on it, meters spread over `threads` worker threads. The figures are
//! the same [`Baseline::compute`] gives (a test checks it).
//!
//! ```
//! use std::num::NonZeroUsize;
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use gridflex_core::{Interval, IntervalSeries, MarketZone, Power};
//! use gridflex_mv::fleet::{FleetEvent, FleetMeter, settle};
//! use gridflex_mv::{Calendar, Meter, Method};
//!
//! let start = Utc.with_ymd_and_hms(2025, 6, 1, 4, 0, 0).unwrap();
//! let meter = |kw: f64| -> Result<Meter, gridflex_mv::MvError> {
//!     let series = IntervalSeries::from_values(start, TimeDelta::hours(1), vec![Power::kilowatts(kw)?; 30 * 24])?;
//!     Meter::new(series, MarketZone::Pjm)
//! };
//! let meters = vec![FleetMeter::new("site-a", meter(500.0)?), FleetMeter::new("site-b", meter(800.0)?)];
//! let t0 = Utc.with_ymd_and_hms(2025, 6, 27, 18, 0, 0).unwrap();
//! let events = vec![FleetEvent::new("ev-1", Interval::new(t0, t0 + TimeDelta::hours(2))?)];
//! let rows = settle(&meters, &Calendar::new(MarketZone::Pjm), &events,
//!     &[Method::PjmCbl, Method::PjmSameDay], NonZeroUsize::MIN);
//! assert_eq!(rows.len(), 4); // 2 meters x 1 event x 2 methods, in that order
//! let cbl = rows[0].figures.as_ref().map_err(Clone::clone)?;
//! assert_eq!((rows[0].meter, rows[0].method), (0, Method::PjmCbl));
//! assert_eq!(cbl.baseline_energy.as_kilowatt_hours(), 1000.0); // 500 kW for 2 h
//! # Ok::<(), gridflex_mv::MvError>(())
//! ```

use std::num::NonZeroUsize;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use gridflex_core::{Energy, Interval, MarketZone, Power};

use crate::baseline::{
    CalendarDays, Eval, EventDay, EventPlan, EventWork, Kept, LaneBuffers, Selected, Totals, Work,
};
use crate::meter::{LANES, check_watts};
use crate::{Baseline, Calendar, Meter, Method, MvError};

/// One meter of the fleet, indexed.
#[derive(Debug, Clone)]
pub struct FleetMeter {
    /// The meter's id (a site, a service point).
    pub id: String,
    /// Its data.
    pub meter: Meter,
}

impl FleetMeter {
    /// A meter with its id.
    pub fn new(id: impl Into<String>, meter: Meter) -> Self {
        Self {
            id: id.into(),
            meter,
        }
    }
}

/// One event to settle on every meter.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetEvent {
    /// The event's id.
    pub id: String,
    /// Its window.
    pub window: Interval,
}

impl FleetEvent {
    /// An event with its id.
    pub fn new(id: impl Into<String>, window: Interval) -> Self {
        Self {
            id: id.into(),
            window,
        }
    }
}

/// The settlement figures of one meter, event and method.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetFigures {
    /// Adjusted baseline energy over the event.
    pub baseline_energy: Energy,
    /// Metered energy over the event.
    pub metered_energy: Energy,
    /// Settled reduction energy (the method's settlement rule applied).
    pub reduction_energy: Energy,
    /// Mean settled reduction.
    pub mean_reduction: Power,
    /// The days the baseline averaged, most recent first. Rows that averaged the same
    /// days may share one list (most meters of a fleet keep the same days for an event
    /// and method): [`settle_with`] and [`settle_grid`] hand out one allocation per
    /// distinct list a thread meets for an (event, method), not one per row.
    pub selected_days: Arc<[NaiveDate]>,
}

/// One row of a fleet settlement.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetRow {
    /// Index of the meter in the input.
    pub meter: usize,
    /// Index of the event in the input.
    pub event: usize,
    /// The method.
    pub method: Method,
    /// The figures, or why they could not be computed.
    pub figures: Result<FleetFigures, MvError>,
}

/// Settles every event with every method on every meter: one row per (meter, event,
/// method), in that order (meters, then events, then methods), computed on up to
/// `threads` threads. The calendar (holidays, excluded event days) is shared by all
/// meters; each meter's data must be in the calendar's zone.
///
/// The figures are those of [`Baseline::compute`] and its
/// [`reduction`](crate::BaselineResult::reduction), bit for bit, but computed without
/// the per-interval output, and each meter's work is shared across methods: the event
/// is located once per adjustment window, each candidate day's values are read once for
/// every method, and each event's calendar facts once for the whole fleet.
pub fn settle(
    meters: &[FleetMeter],
    calendar: &Calendar,
    events: &[FleetEvent],
    methods: &[Method],
    threads: NonZeroUsize,
) -> Vec<FleetRow> {
    let baselines: Vec<Baseline> = methods.iter().map(|m| m.baseline()).collect();
    settle_with(meters, calendar, events, &baselines, threads)
}

/// [`settle`] with baselines of the caller's choosing (an edited cap, a gap policy,
/// a custom rule): one row per (meter, event, baseline), in that order; a row's
/// `method` is its baseline's.
///
/// ```
/// # use std::num::NonZeroUsize;
/// # use chrono::{TimeDelta, TimeZone, Utc};
/// # use gridflex_core::{Interval, IntervalSeries, MarketZone, Power};
/// use gridflex_mv::fleet::{FleetEvent, FleetMeter, settle_with};
/// use gridflex_mv::{Adjustment, Baseline, Calendar, GapPolicy, Meter};
/// # let start = Utc.with_ymd_and_hms(2025, 6, 1, 4, 0, 0).unwrap();
/// # let series = IntervalSeries::from_values(start, TimeDelta::hours(1), vec![Power::kilowatts(500.0)?; 30 * 24])?;
/// # let meters = vec![FleetMeter::new("site-a", Meter::new(series, MarketZone::Pjm)?)];
/// # let t0 = Utc.with_ymd_and_hms(2025, 6, 27, 18, 0, 0).unwrap();
/// # let events = vec![FleetEvent::new("ev-1", Interval::new(t0, t0 + TimeDelta::hours(2))?)];
/// // CAISO 10-in-10 with the 40 % load-point cap, days with gaps skipped.
/// let esder = Baseline::caiso_10in10()
///     .with_adjustment(Adjustment::multiplicative(3.0, 1.0, Some(0.40)))
///     .with_gap_policy(GapPolicy::SkipDay);
/// let rows = settle_with(&meters, &Calendar::new(MarketZone::Pjm), &events,
///     &[esder, Baseline::pjm_cbl()], NonZeroUsize::MIN);
/// assert_eq!(rows.len(), 2);
/// assert!(rows.iter().all(|r| r.figures.is_ok()));
/// # Ok::<(), gridflex_mv::MvError>(())
/// ```
pub fn settle_with(
    meters: &[FleetMeter],
    calendar: &Calendar,
    events: &[FleetEvent],
    baselines: &[Baseline],
    threads: NonZeroUsize,
) -> Vec<FleetRow> {
    let shared = calendar_days(calendar, events, baselines);
    let one = |(i, m): (usize, &FleetMeter), lists: &mut DayLists| -> Vec<FleetRow> {
        let mut rows = Vec::with_capacity(events.len() * baselines.len());
        let mut work = EventWork::default();
        for (e, (event, days)) in events.iter().zip(&shared).enumerate() {
            work.next_event();
            for (k, baseline) in baselines.iter().enumerate() {
                let figures = baseline
                    .totals(
                        &m.meter,
                        m.meter.column(),
                        calendar,
                        event.window,
                        Some(days),
                        &mut work,
                    )
                    .map(|t| {
                        let key = e * baselines.len() + k;
                        FleetFigures::of(t, lists.listed(key, work.selected_days()))
                    });
                rows.push(FleetRow {
                    meter: i,
                    event: e,
                    method: baseline.method,
                    figures,
                });
            }
        }
        rows
    };
    in_chunks(meters, threads, |c, chunk, part: &[FleetMeter]| {
        let mut lists = DayLists::default();
        part.iter()
            .enumerate()
            .flat_map(|(k, m)| one((c * chunk + k, m), &mut lists))
            .collect()
    })
}

impl FleetFigures {
    fn of(t: Totals, selected_days: Arc<[NaiveDate]>) -> Self {
        Self {
            baseline_energy: t.baseline,
            metered_energy: t.metered,
            reduction_energy: t.settled,
            mean_reduction: t.mean_settled,
            selected_days,
        }
    }
}

/// The calendar facts of each event's lookback, shared by every meter.
fn calendar_days(
    calendar: &Calendar,
    events: &[FleetEvent],
    baselines: &[Baseline],
) -> Vec<CalendarDays> {
    let lookback = baselines
        .iter()
        .map(Baseline::lookback_days)
        .max()
        .unwrap_or(0);
    events
        .iter()
        .map(|e| {
            let day = calendar.zone().operating_date(e.window.start());
            CalendarDays::new(calendar, day, lookback)
        })
        .collect()
}

/// Runs `work(c, chunk, part)` on contiguous parts of `items` (part `c` starting at
/// item `c * chunk`), one per thread, up to `threads`, and joins the rows in order: the
/// output order does not depend on the thread count.
fn in_chunks<T: Sync>(
    items: &[T],
    threads: NonZeroUsize,
    work: impl Fn(usize, usize, &[T]) -> Vec<FleetRow> + Sync,
) -> Vec<FleetRow> {
    let threads = threads.get().min(items.len().max(1));
    let chunk = items.len().div_ceil(threads).max(1);
    if threads <= 1 {
        return work(0, chunk, items);
    }
    let work = &work;
    let tasks = items
        .chunks(chunk)
        .enumerate()
        .map(|(c, part)| move || work(c, chunk, part))
        .collect();
    let parts = crate::threads::each_on_a_thread(tasks);
    let mut rows = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for part in parts {
        rows.extend(part);
    }
    rows
}

/// A fleet's meters on one interval grid (the same start, interval length, length and
/// market zone), stored for settling them all at once with [`settle_grid`]: one local-day
/// index for the fleet, and the values of each block of eight meters interval by
/// interval, so that reading one window of every meter's day is one pass over
/// contiguous memory instead of a jump per meter.
///
/// It holds what the meters hold (8 bytes a value, NaN where missing; the last block
/// padded to eight meters). [`FleetGrid::from_meters`] builds one from indexed meters;
/// [`FleetGrid::new`] and [`FleetGrid::push`] from columns of watts as they are read.
///
/// ```
/// use std::num::NonZeroUsize;
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex_core::{Interval, MarketZone};
/// use gridflex_mv::fleet::{FleetEvent, FleetGrid, settle_grid};
/// use gridflex_mv::{Calendar, Method};
///
/// let start = Utc.with_ymd_and_hms(2025, 6, 1, 4, 0, 0).unwrap();
/// let mut grid = FleetGrid::new(MarketZone::Pjm, start, TimeDelta::hours(1), 30 * 24)?;
/// grid.push("site-a", &vec![500_000.0; 30 * 24])?; // watts
/// grid.push("site-b", &vec![800_000.0; 30 * 24])?;
/// let t0 = Utc.with_ymd_and_hms(2025, 6, 27, 18, 0, 0).unwrap();
/// let events = vec![FleetEvent::new("ev-1", Interval::new(t0, t0 + TimeDelta::hours(2))?)];
/// let rows = settle_grid(&grid, &Calendar::new(MarketZone::Pjm), &events,
///     &[Method::PjmCbl.baseline()], NonZeroUsize::MIN);
/// assert_eq!(rows.len(), 2); // 2 meters x 1 event x 1 method
/// let b = rows[1].figures.as_ref().map_err(Clone::clone)?;
/// assert_eq!(b.baseline_energy.as_kilowatt_hours(), 1600.0); // site-b: 800 kW for 2 h
/// # Ok::<(), gridflex_mv::MvError>(())
/// ```
#[derive(Clone)]
pub struct FleetGrid {
    /// The shared local-day index (its own column holds no value and is never read).
    index: Meter,
    ids: Vec<String>,
    /// Per block of [`LANES`] meters: value `i` of lane `l` at `i * LANES + l`.
    blocks: Vec<Vec<f64>>,
}

impl FleetGrid {
    /// An empty grid of `intervals` intervals of `step` from `start`, indexed by the
    /// local days of `zone`. The step, start and length follow
    /// [`Meter::from_watts`]'s rules (a step dividing an hour, a start on that grid, at
    /// least one interval), and the length is at most
    /// [`MAX_SERIES_INTERVALS`](crate::input::MAX_SERIES_INTERVALS), as for a meter
    /// file (checked before anything is allocated).
    pub fn new(
        zone: MarketZone,
        start: DateTime<Utc>,
        step: TimeDelta,
        intervals: usize,
    ) -> Result<Self, MvError> {
        if intervals > crate::input::MAX_SERIES_INTERVALS {
            return Err(MvError::TooLarge {
                what: "fleet grid intervals",
                found: intervals as u64,
                limit: crate::input::MAX_SERIES_INTERVALS as u64,
            });
        }
        let index = Meter::from_watts(start, step, vec![f64::NAN; intervals], zone)?;
        Ok(Self {
            index,
            ids: Vec::new(),
            blocks: Vec::new(),
        })
    }

    /// A grid holding `meters`, in order, on the first meter's grid; each meter must
    /// have the same start, interval length, length and zone, else the error names the
    /// first that does not. An empty slice is refused (it sets no grid).
    pub fn from_meters(meters: &[FleetMeter]) -> Result<Self, MvError> {
        let first = meters.first().ok_or(MvError::InvalidParameter {
            name: "meters",
            value: "none".into(),
            reason: "a grid takes its start, step and length from its first meter",
        })?;
        let m = &first.meter;
        let mut grid = Self::new(m.zone(), m.start(), m.step(), m.len())?;
        if let Some(off) = meters.iter().find(|fm| !grid.on_grid(&fm.meter)) {
            return Err(grid.off_grid(off));
        }
        // A block at a time, in one pass: eight columns read side by side, the block
        // written once. A meter's values are checked already (a `Meter` holds only
        // NaN or valid powers).
        grid.blocks.reserve(meters.len().div_ceil(LANES));
        for part in meters.chunks(LANES) {
            let columns: Vec<&[f64]> = part.iter().map(|fm| fm.meter.column()).collect();
            let mut block = Vec::with_capacity(m.len() * LANES);
            for i in 0..m.len() {
                let row: [f64; LANES] = std::array::from_fn(|l| {
                    columns
                        .get(l)
                        .and_then(|c| c.get(i))
                        .copied()
                        .unwrap_or(f64::NAN)
                });
                block.extend_from_slice(&row);
            }
            grid.blocks.push(block);
            grid.ids.extend(part.iter().map(|fm| fm.id.clone()));
        }
        Ok(grid)
    }

    /// Whether `meter` has the grid's start, interval length, length and zone.
    fn on_grid(&self, meter: &Meter) -> bool {
        let ix = &self.index;
        (meter.start(), meter.step(), meter.len(), meter.zone())
            == (ix.start(), ix.step(), ix.len(), ix.zone())
    }

    /// The error for a meter off the grid.
    fn off_grid(&self, meter: &FleetMeter) -> MvError {
        MvError::InvalidParameter {
            name: "meter",
            value: meter.id.clone(),
            reason: "must have the grid's start, interval length, length and zone",
        }
    }

    /// Adds a meter from its column of watts (one value per interval of the grid, NaN
    /// where missing; every other value a valid power), checked before anything is
    /// stored.
    pub fn push(&mut self, id: impl Into<String>, watts: &[f64]) -> Result<(), MvError> {
        let id = id.into();
        if watts.len() != self.index.len() {
            return Err(MvError::InvalidParameter {
                name: "meter column",
                value: format!("{id}: {} values", watts.len()),
                reason: "must hold one value per interval of the grid",
            });
        }
        check_watts(watts)?;
        let lane = self.ids.len() % LANES;
        if lane == 0 {
            self.blocks.push(vec![f64::NAN; watts.len() * LANES]);
        }
        if let Some(block) = self.blocks.last_mut() {
            for (row, &w) in block.chunks_exact_mut(LANES).zip(watts) {
                row[lane] = w;
            }
        }
        self.ids.push(id);
        Ok(())
    }

    /// Adds an indexed meter, which must be on the grid (same start, interval length,
    /// length and zone).
    pub fn push_meter(&mut self, meter: &FleetMeter) -> Result<(), MvError> {
        if !self.on_grid(&meter.meter) {
            return Err(self.off_grid(meter));
        }
        self.push(meter.id.clone(), meter.meter.column())
    }

    /// How many meters the grid holds.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the grid holds no meter.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The meters' ids, in the order they were added.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &str> {
        self.ids.iter().map(String::as_str)
    }

    /// The start of the grid's first interval.
    pub fn start(&self) -> DateTime<Utc> {
        self.index.start()
    }

    /// The interval length.
    pub fn step(&self) -> TimeDelta {
        self.index.step()
    }

    /// How many intervals each meter holds.
    pub fn intervals(&self) -> usize {
        self.index.len()
    }

    /// The market zone whose local days index the grid.
    pub fn zone(&self) -> MarketZone {
        self.index.zone()
    }

    /// A copy of meter `i` as a [`Meter`], if there is one.
    pub fn meter(&self, i: usize) -> Option<Meter> {
        let block = self.blocks.get(i / LANES).filter(|_| i < self.ids.len())?;
        let lane = i % LANES;
        let watts = block.chunks_exact(LANES).map(|row| row[lane]).collect();
        Some(self.index.with_column(watts))
    }
}

/// The grid and its meters' ids, not their values.
impl std::fmt::Debug for FleetGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetGrid")
            .field("zone", &self.zone())
            .field("start", &self.start())
            .field("step", &self.step())
            .field("intervals", &self.intervals())
            .field("ids", &self.ids)
            .finish()
    }
}

/// [`settle_with`] on a [`FleetGrid`]: one row per (meter, event, baseline), in that
/// order, the same rows [`settle_with`] gives for the same meters, bit for bit, errors
/// included (a test checks it).
///
/// What the grid's layout lets it share: each event is located once for the fleet
/// (one index); the candidate days every meter's scan reaches first are read for eight
/// meters at once, up to five days a pass, each meter's sums side by side over
/// contiguous memory; each meter then chooses its days, the eight meters' kept days
/// are averaged together, and the event day's adjustment window is read once for the
/// eight; the adjustment and the totals are each meter's. Threads take contiguous
/// blocks of eight meters. On 1,000 meter-years x 10 events x 2 methods it takes half
/// the time of [`settle_with`] on the same meters (docs/throughput.md, sixth round).
pub fn settle_grid(
    grid: &FleetGrid,
    calendar: &Calendar,
    events: &[FleetEvent],
    baselines: &[Baseline],
    threads: NonZeroUsize,
) -> Vec<FleetRow> {
    let shared = calendar_days(calendar, events, baselines);
    let plans: Vec<EventPlan> = events
        .iter()
        .zip(&shared)
        .map(|(e, days)| EventPlan::new(&grid.index, calendar, Some(days), e.window, baselines))
        .collect();
    let (n_events, n_baselines) = (events.len(), baselines.len());
    // One block's rows into `out`, in the output's order; `slots` is the block's
    // rows by (lane, event, method), computed events first.
    let block = |b: usize, rows: &[f64], out: &mut Vec<FleetRow>, state: &mut BlockState| {
        let lanes = grid.ids.len().saturating_sub(b * LANES).min(LANES);
        let BlockState {
            slots,
            evals,
            works,
            buf,
            event_days,
            lists,
        } = state;
        slots.clear();
        slots.resize(lanes * n_events * n_baselines, None);
        for (e, ((event, plan), days)) in events.iter().zip(&plans).zip(&shared).enumerate() {
            for lane in evals.iter_mut() {
                lane.resize(plan.frames(), Vec::new());
                lane.iter_mut().for_each(Vec::clear);
            }
            plan.prefill(rows, evals, buf);
            plan.event_days(rows, grid.index.step(), event_days);
            for (k, baseline) in baselines.iter().enumerate() {
                let mut row = |lane: usize, t: Result<Totals, MvError>, selected: Selected<'_>| {
                    if let Some(slot) = slots.get_mut((lane * n_events + e) * n_baselines + k) {
                        *slot = Some(FleetRow {
                            meter: b * LANES + lane,
                            event: e,
                            method: baseline.method,
                            figures: t.map(|t| {
                                FleetFigures::of(t, lists.get(e * n_baselines + k, selected))
                            }),
                        });
                    }
                };
                plan.block_totals(
                    k,
                    baseline,
                    &grid.index,
                    (rows, lanes),
                    calendar,
                    event.window,
                    Some(days),
                    evals,
                    works,
                    buf,
                    event_days,
                    &mut row,
                );
            }
        }
        out.extend(slots.drain(..).flatten());
    };
    in_chunks(&grid.blocks, threads, |c, chunk, part: &[Vec<f64>]| {
        let mut out = Vec::with_capacity(part.len() * LANES * n_events * n_baselines);
        let mut state = BlockState::default();
        for (k, rows) in part.iter().enumerate() {
            block(c * chunk + k, rows, &mut out, &mut state);
        }
        out
    })
}

/// What [`settle_grid`] keeps from one block to the next on a thread: the block's rows
/// by (lane, event, method), each lane's candidate-day caches and work, the buffers of
/// the lanes' sums and the event day's figures per located event, and the lists of
/// selected days handed out.
#[derive(Default)]
struct BlockState {
    slots: Vec<Option<FleetRow>>,
    evals: [Vec<Vec<Option<Eval>>>; LANES],
    works: [Work; LANES],
    buf: LaneBuffers,
    event_days: Vec<EventDay>,
    lists: DayLists,
}

/// The lists of selected days a thread has handed out, the last few of each (event,
/// method): a row whose days are one of them shares it. The meters of a fleet mostly
/// keep the same days (all of a rule's first window, or one of few subsets of it), so
/// a handful per pair covers nearly every row. A lane that kept days of its rule's
/// first window finds its list by the days it kept, without listing them.
#[derive(Debug, Default)]
struct DayLists {
    /// By (event, method): the lists, the most recently made first.
    lists: Vec<Vec<Arc<[NaiveDate]>>>,
    /// By (event, method): the lists found for the days kept of the pair's first
    /// window (one window per pair), the most recently found first.
    firsts: Vec<Vec<(Kept, Arc<[NaiveDate]>)>>,
    /// The days of a first window being listed.
    listing: Vec<NaiveDate>,
}

impl DayLists {
    /// How many lists are kept per (event, method).
    const KEPT: usize = 8;

    /// A list of the days `selected` for the pair `key`: one already handed out, or a
    /// new one.
    fn get(&mut self, key: usize, selected: Selected<'_>) -> Arc<[NaiveDate]> {
        let (first, kept) = match selected {
            Selected::Days(days) => return self.listed(key, days),
            Selected::First(first, kept) => (first, kept),
        };
        if self.firsts.len() <= key {
            self.firsts.resize_with(key + 1, Vec::new);
        }
        if let Some((_, list)) = self
            .firsts
            .get(key)
            .and_then(|f| f.iter().find(|(k, _)| *k == kept))
        {
            return Arc::clone(list);
        }
        let mut days = std::mem::take(&mut self.listing);
        days.clear();
        days.extend(first.kept_dates(kept));
        let list = self.listed(key, &days);
        self.listing = days;
        if let Some(found) = self.firsts.get_mut(key) {
            found.truncate(Self::KEPT - 1);
            found.insert(0, (kept, Arc::clone(&list)));
        }
        list
    }

    /// A list equal to `days` for the pair `key`: one already handed out, or a new one.
    fn listed(&mut self, key: usize, days: &[NaiveDate]) -> Arc<[NaiveDate]> {
        if self.lists.len() <= key {
            self.lists.resize_with(key + 1, Vec::new);
        }
        let Some(kept) = self.lists.get_mut(key) else {
            return days.into();
        };
        if let Some(list) = kept.iter().find(|l| ***l == *days) {
            return Arc::clone(list);
        }
        let list: Arc<[NaiveDate]> = days.into();
        kept.truncate(Self::KEPT - 1);
        kept.insert(0, Arc::clone(&list));
        list
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};
    use gridflex_core::{IntervalSeries, MarketZone};

    use super::*;

    fn meter(seed: u64) -> Meter {
        let start = Utc.with_ymd_and_hms(2025, 5, 1, 4, 0, 0).unwrap();
        let mut x = seed;
        let values = (0..60 * 96)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (x >> 40) as f64 / (1u64 << 24) as f64;
                Power::kilowatts(400.0 + 200.0 * ((i % 96) as f64 / 96.0) + 50.0 * noise).ok()
            })
            .collect();
        let series = IntervalSeries::new(start, TimeDelta::minutes(15), values).unwrap();
        Meter::new(series, MarketZone::Pjm).unwrap()
    }

    /// Events from 18:00 to 21:00 UTC on these days of June 2025, named `e{day}`.
    fn events(days: &[u32]) -> Vec<FleetEvent> {
        days.iter()
            .map(|&d| {
                let t = Utc.with_ymd_and_hms(2025, 6, d, 18, 0, 0).unwrap();
                FleetEvent::new(
                    format!("e{d}"),
                    Interval::new(t, t + TimeDelta::hours(3)).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_same_figures_as_one_call_at_a_time_whatever_the_threads() {
        let meters: Vec<_> = (0..7)
            .map(|k| FleetMeter::new(format!("m{k}"), meter(k)))
            .collect();
        let cal = Calendar::new(MarketZone::Pjm);
        let events = events(&[20, 23, 27]);
        let methods = Method::ALL;
        let one = settle(&meters, &cal, &events, &methods, NonZeroUsize::MIN);
        assert_eq!(one.len(), 7 * 3 * methods.len());
        for threads in [2, 3, 16] {
            let many = settle(
                &meters,
                &cal,
                &events,
                &methods,
                NonZeroUsize::new(threads).unwrap(),
            );
            assert_eq!(many, one, "{threads} threads");
        }
        for row in &one {
            let direct = row.method.baseline().compute(
                &meters[row.meter].meter,
                &cal,
                events[row.event].window,
            );
            match (&row.figures, direct) {
                (Ok(f), Ok(r)) => {
                    assert_eq!(f.reduction_energy, r.reduction().settled_energy);
                    assert_eq!(*f.selected_days, *r.selected_days);
                }
                (Err(a), Err(b)) => assert_eq!(*a, b),
                (a, b) => panic!("{a:?} against {b:?}"),
            }
        }
    }

    #[test]
    fn a_grid_s_rows_share_one_list_per_distinct_days_kept() {
        // Two blocks of meters; CAISO's lanes keep their first window as it is and
        // PJM's keep four of its five days, both found by the days' bits
        // (`Selected::First`), not listed per row.
        let meters: Vec<_> = (0..16)
            .map(|k| FleetMeter::new(format!("m{k}"), meter(100 + k)))
            .collect();
        let grid = FleetGrid::from_meters(&meters).unwrap();
        let cal = Calendar::new(MarketZone::Pjm);
        let events = events(&[23, 27]);
        let methods = [Method::Caiso10in10.baseline(), Method::PjmCbl.baseline()];
        let rows = settle_grid(&grid, &cal, &events, &methods, NonZeroUsize::MIN);
        assert_eq!(rows.len(), 16 * 2 * 2);
        let mut distinct = 0;
        for (e, event) in events.iter().enumerate() {
            for b in &methods {
                let pair: Vec<&FleetRow> = rows
                    .iter()
                    .filter(|r| r.event == e && r.method == b.method)
                    .collect();
                let lists: Vec<&Arc<[NaiveDate]>> = pair
                    .iter()
                    .map(|r| &r.figures.as_ref().unwrap().selected_days)
                    .collect();
                for (r, list) in pair.iter().zip(&lists) {
                    let direct = b
                        .compute(&meters[r.meter].meter, &cal, event.window)
                        .unwrap();
                    assert_eq!(***list, *direct.selected_days, "meter {}", r.meter);
                }
                for (i, a) in lists.iter().enumerate() {
                    for c in &lists[..i] {
                        assert_eq!(Arc::ptr_eq(a, c), **a == **c, "{:?} and {:?}", a, c);
                    }
                    distinct += usize::from(lists[..i].iter().all(|c| ***c != ***a));
                }
            }
        }
        // More than one list per pair somewhere (PJM's meters drop different days), so
        // lists that differ were compared too.
        assert!(distinct > events.len() * methods.len(), "{distinct} lists");
    }

    #[test]
    fn equal_lists_of_days_are_shared_and_others_are_not() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2025, 6, d).unwrap();
        let (a, b) = ([day(3), day(2)], [day(4), day(2)]);
        let mut lists = DayLists::default();
        let first = lists.listed(3, &a);
        assert_eq!(*first, a);
        assert!(
            Arc::ptr_eq(&first, &lists.listed(3, &a)),
            "the same days, one list"
        );
        let other = lists.listed(3, &b);
        assert_eq!(*other, b);
        assert!(Arc::ptr_eq(&first, &lists.listed(3, &a)), "both kept");
        assert!(!Arc::ptr_eq(&first, &lists.listed(0, &a)), "another pair");
        // Past `KEPT` lists for one pair, the oldest is let go (a new list, still equal).
        for d in 5..5 + DayLists::KEPT as u32 {
            lists.listed(3, &[day(d)]);
        }
        let again = lists.listed(3, &a);
        assert_eq!(*again, a);
        assert!(!Arc::ptr_eq(&first, &again));
        assert!(lists.lists.iter().all(|l| l.len() <= DayLists::KEPT));
    }
}
