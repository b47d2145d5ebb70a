//! The day-matching engine and the Same Day rule.
//!
//! The event day's needed intervals (the adjustment window, then the event window) are
//! turned once into wall-clock times; each candidate day maps those clock times to its
//! own series indices with integer arithmetic ([`LocalDay::elapsed_of_clock`]), so the
//! scan does no time-zone conversion and allocates nothing per interval.

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use gridflex_core::{Energy, Interval, Power};

use super::{
    AppliedAdjustment, Baseline, BaselineInterval, BaselineResult, DayDecision, DayMatching,
    DayOutcome, DayRules, DropReason, LowUsageReference, Selection,
};
use crate::MvError;
use crate::baseline::{Adjustment, AdjustmentKind, AdjustmentValue};
use crate::calendar::{Calendar, DayType};
use crate::meter::{Column, GapPolicy, LANES, Lanes, LocalDay, Meter};
use crate::reduction::SettlementRule;
use wide::{CmpGt, CmpLe, CmpLt, f64x2};

/// Where the event and its adjustment window sit in the meter data.
pub(crate) struct Frame {
    pub(super) date: NaiveDate,
    pub(super) day_type: DayType,
    pub(super) event_first: usize,
    pub(super) n_event: usize,
    adj_first: usize,
    pub(super) n_adj: usize,
    adj_window: Option<Interval>,
    /// Wall-clock seconds after local midnight of the adjustment-window intervals, then
    /// of the event intervals.
    clocks: Vec<i64>,
    /// When the clocks of each part run without a jump (no DST change on the event day
    /// inside them): the first clock of the adjustment window and of the event.
    linear: Option<(i64, i64)>,
}

/// How many meter intervals `d` spans; it must be a whole number of them.
pub(super) fn whole_steps(
    meter: &Meter,
    name: &'static str,
    d: TimeDelta,
) -> Result<usize, MvError> {
    let s = d.num_seconds();
    if d.subsec_nanos() != 0 || s < 0 || s % meter.step_s() != 0 {
        return Err(MvError::InvalidParameter {
            name,
            value: d.to_string(),
            reason: "must be a non-negative whole number of meter intervals",
        });
    }
    usize::try_from(s / meter.step_s()).map_err(|_| MvError::InvalidParameter {
        name,
        value: d.to_string(),
        reason: "too long",
    })
}

fn shifted(t: DateTime<Utc>, d: TimeDelta, event: Interval) -> Result<DateTime<Utc>, MvError> {
    t.checked_add_signed(d).ok_or(MvError::InvalidEvent {
        event,
        reason: "a window around the event runs past the representable time range",
    })
}

/// Locates the event (and the adjustment window of `adj`) in the meter data.
pub(super) fn frame(
    meter: &Meter,
    calendar: &Calendar,
    event: Interval,
    adj: &Adjustment,
    notified: Option<DateTime<Utc>>,
) -> Result<Frame, MvError> {
    let step_s = meter.step_s();
    let event_first = meter.index_at("event start", event.start())?;
    let n_event = whole_steps(meter, "event length", event.duration())?;
    if n_event == 0 {
        return Err(MvError::InvalidEvent {
            event,
            reason: "shorter than one meter interval",
        });
    }
    let last = shifted(event.end(), -meter.step(), event)?;
    meter.index_at("event end", last)?;
    let date = meter.zone().operating_date(event.start());
    let day = *meter.day(date).ok_or(MvError::InvalidEvent {
        event,
        reason: "its local day is not in the meter data",
    })?;
    let elapsed0 = event_first as i64 * step_s - day.start_s;
    if elapsed0 + n_event as i64 * step_s > day.len_s {
        return Err(MvError::InvalidEvent {
            event,
            reason: "it crosses local midnight; split it into one event per local day",
        });
    }
    let (adj_first, n_adj, adj_window) = if adj.kind == AdjustmentKind::None {
        (0, 0, None)
    } else {
        let n_adj = whole_steps(meter, "adjustment window", adj.window)?;
        let n_gap = whole_steps(meter, "adjustment gap", adj.gap)?;
        // The window ends `gap` before the earlier of the event start and the
        // notification, taken at the start of its meter interval.
        let notice_steps = match notified {
            Some(n) if n < event.start() => {
                let ahead_s = (event.start() - n).num_seconds().max(1);
                (ahead_s + step_s - 1) / step_s
            }
            _ => 0,
        };
        let back = (n_adj + n_gap) as i64 * step_s + notice_steps * step_s;
        if elapsed0 < back {
            return Err(MvError::InvalidEvent {
                event,
                reason: "the adjustment window starts before the event's local day",
            });
        }
        let anchor = shifted(
            event.start(),
            -TimeDelta::seconds(notice_steps * step_s),
            event,
        )?;
        let start = shifted(anchor, -(adj.window + adj.gap), event)?;
        let first = meter.index_at("adjustment window start", start)?;
        let window = Interval::starting_at(start, adj.window)?;
        (first, n_adj, Some(window))
    };
    let mut clocks = Vec::with_capacity(n_adj + n_event);
    let adj_elapsed0 = adj_first as i64 * step_s - day.start_s;
    clocks.extend((0..n_adj as i64).map(|k| day.clock_of_elapsed(adj_elapsed0 + k * step_s)));
    clocks.extend((0..n_event as i64).map(|k| day.clock_of_elapsed(elapsed0 + k * step_s)));
    let steady = |part: &[i64]| part.windows(2).all(|p| p[1] - p[0] == step_s);
    let linear = (steady(&clocks[..n_adj]) && steady(&clocks[n_adj..])).then(|| {
        (
            clocks.first().copied().unwrap_or(0),
            clocks.get(n_adj).copied().unwrap_or(0),
        )
    });
    Ok(Frame {
        date,
        day_type: calendar.day_type(date),
        event_first,
        n_event,
        adj_first,
        n_adj,
        adj_window,
        clocks,
        linear,
    })
}

/// A candidate day in the window.
#[derive(Clone, Copy)]
struct Cand {
    decision: usize,
    day: LocalDay,
    mean: f64,
}

/// The series index ranges of a candidate day's adjustment-window and event values,
/// when both are contiguous (no DST change on either day inside them): the fast path.
fn day_ranges(meter: &Meter, frame: &Frame, day: &LocalDay) -> Option<[std::ops::Range<usize>; 2]> {
    let (adj0, ev0) = frame.linear?;
    if day.transition.is_some() {
        return None;
    }
    let range = |clock: i64, n: usize| {
        if n == 0 {
            return Some(0..0);
        }
        let end_clock = clock + n as i64 * meter.step_s();
        if clock < 0 || end_clock > day.len_s {
            return None;
        }
        let first = meter.index_in_day(day, clock)?;
        (first + n <= meter.len()).then_some(first..first + n)
    };
    Some([range(adj0, frame.n_adj)?, range(ev0, frame.n_event)?])
}

/// A candidate day's needed values, before the gap policy is applied.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Eval {
    /// Every needed value is there: the mean event-window load in watts.
    Mean(f64),
    /// The first missing needed value (its series index).
    Gap(usize),
    /// The needed clock times are outside the data or do not exist that day.
    NoData,
}

/// The first missing value (NaN) in `r`, if any.
fn first_gap<C: Column>(values: C, r: std::ops::Range<usize>) -> Option<usize> {
    values
        .window(r.clone())
        .position(f64::is_nan)
        .map(|k| r.start + k)
}

/// A day's [`Eval`] from the sums of its adjustment-window and event values (each
/// summed in index order from zero): the event's gap, when there is one, is reported
/// before the window's.
fn eval_of<C: Column>(
    values: C,
    frame: &Frame,
    [adj, ev]: [std::ops::Range<usize>; 2],
    adj_sum: f64,
    ev_sum: f64,
) -> Eval {
    if (ev_sum.is_nan() || adj_sum.is_nan())
        && let Some(i) = first_gap(values, ev).or_else(|| first_gap(values, adj))
    {
        return Eval::Gap(i);
    }
    Eval::Mean(ev_sum / frame.n_event as f64)
}

/// Reads a candidate day's needed values (the adjustment window's and the event's).
fn evaluate_raw<C: Column>(meter: &Meter, values: C, frame: &Frame, day: &LocalDay) -> Eval {
    if let Some([adj, ev]) = day_ranges(meter, frame, day) {
        // Memory order (the adjustment window comes first in the day): one pass over
        // each window, no branch per value. A missing value (NaN) makes a sum NaN.
        let adj_sum: f64 = values.window(adj.clone()).sum();
        let mut sum = 0.0;
        for w in values.window(ev.clone()) {
            sum += w;
        }
        return eval_of(values, frame, [adj, ev], adj_sum, sum);
    }
    let mut sum = 0.0;
    for (j, &clock) in frame.clocks.iter().enumerate() {
        let Some(i) = day
            .elapsed_of_clock(clock)
            .and_then(|e| meter.index_in_day(day, e))
        else {
            return Eval::NoData;
        };
        match values.get(i) {
            Some(w) => {
                if j >= frame.n_adj {
                    sum += w;
                }
            }
            None => return Eval::Gap(i),
        }
    }
    Eval::Mean(sum / frame.n_event as f64)
}

/// Days read together by [`evaluate_batch`].
const BATCH: usize = 4;

/// [`evaluate_raw`] for several days at once, `out[i]` for `days[i].1`. Where every
/// day's windows are contiguous, the days' sums run side by side, one pass over the
/// window positions: each day's sum still adds its values in the same order as
/// `evaluate_raw` (so it is the same to the bit), but the days' additions, and their
/// reads from memory, no longer wait on each other.
fn evaluate_batch<C: Column>(
    meter: &Meter,
    values: C,
    frame: &Frame,
    days: &[(usize, LocalDay)],
    out: &mut [Eval],
) {
    let found: [Option<[std::ops::Range<usize>; 2]>; BATCH] = std::array::from_fn(|i| {
        days.get(i)
            .filter(|_| days.len() == BATCH)
            .and_then(|(_, d)| day_ranges(meter, frame, d))
    });
    let Some(ranges) = found
        .iter()
        .all(Option::is_some)
        .then(|| found.map(Option::unwrap_or_default))
    else {
        for ((_, d), o) in days.iter().zip(out.iter_mut()) {
            *o = evaluate_raw(meter, values, frame, d);
        }
        return;
    };
    // Every day's windows have the frame's lengths.
    let sums = |part: usize| {
        let starts: [usize; BATCH] = std::array::from_fn(|i| ranges[i][part].start);
        let len = ranges[0][part].len();
        let mut s = [0.0f64; BATCH];
        for j in 0..len {
            for (acc, &start) in s.iter_mut().zip(&starts) {
                *acc += values.at(start + j);
            }
        }
        s
    };
    let adj = sums(0);
    let ev = sums(1);
    for (i, o) in out.iter_mut().enumerate() {
        *o = eval_of(values, frame, ranges[i].clone(), adj[i], ev[i]);
    }
}

/// A candidate day under the gap policy: `Ok(Ok(mean event-window load))` when it
/// qualifies, `Ok(Err(reason))` when it is dropped.
fn judge(meter: &Meter, eval: Eval, gaps: GapPolicy) -> Result<Result<f64, DropReason>, MvError> {
    match eval {
        Eval::Mean(mean) => Ok(Ok(mean)),
        Eval::NoData => Ok(Err(DropReason::NoData)),
        Eval::Gap(i) => {
            let interval = meter.interval_of(i);
            match gaps {
                GapPolicy::SkipDay => Ok(Err(DropReason::MissingData { interval })),
                GapPolicy::Error => Err(MvError::MissingData {
                    interval,
                    what: "baseline day",
                }),
            }
        }
    }
}

/// The calendar facts of the days before one event day, shared by every meter of a
/// zone: entry `k` is the day `k + 1` days back, with its type and whether it is an
/// excluded event day.
#[derive(Debug, Clone)]
pub(crate) struct CalendarDays {
    event_day: NaiveDate,
    days: Vec<(NaiveDate, DayType, bool)>,
}

impl CalendarDays {
    /// The `lookback` days before `event_day` (fewer at the start of chrono's range).
    pub(crate) fn new(calendar: &Calendar, event_day: NaiveDate, lookback: u32) -> Self {
        let days = (1..=lookback)
            .map_while(|back| event_day.checked_sub_days(Days::new(u64::from(back))))
            .map(|d| (d, calendar.day_type(d), calendar.is_event_day(d)))
            .collect();
        Self { event_day, days }
    }
}

/// The date `k + 1` days before the frame's event day, its day type and whether it is
/// an excluded event day (`None` before chrono's range), from `days` when they are
/// this event day's.
fn day_facts(
    calendar: &Calendar,
    days: Option<&CalendarDays>,
    frame: &Frame,
    k: usize,
) -> Option<(NaiveDate, DayType, bool)> {
    let shared = days
        .filter(|t| t.event_day == frame.date)
        .and_then(|t| t.days.get(k));
    if let Some(d) = shared {
        return Some(*d);
    }
    let date = frame.date.checked_sub_days(Days::new(k as u64 + 1))?;
    let day_type = calendar.day_type(date);
    Some((date, day_type, calendar.is_event_day(date)))
}

/// The first candidate days of a day-matching rule on one located event, the same for
/// every meter on one index: the days a scan of the rule reaches first (in its pool,
/// not excluded, in the data), most recent first, each with the series index ranges of
/// its adjustment-window and event values, up to the rule's `count`, and up to the
/// first day whose windows are not contiguous (a daylight-saving day), which the scan
/// reads itself.
#[derive(Debug, Clone)]
pub(crate) struct FirstDays {
    days: Vec<FirstDay>,
    /// Whether `days` holds the rule's whole first window (`count` days).
    complete: bool,
}

#[derive(Debug, Clone)]
struct FirstDay {
    /// Days back minus one.
    k: usize,
    day: LocalDay,
    ranges: [std::ops::Range<usize>; 2],
}

impl FirstDays {
    /// The first days of `rule` on `frame`, on `meter`'s index.
    pub(crate) fn new(
        meter: &Meter,
        calendar: &Calendar,
        days: Option<&CalendarDays>,
        frame: &Frame,
        rule: &DayMatching,
    ) -> Self {
        let mut first = Vec::with_capacity(rule.count);
        for k in 0..rule.lookback_days as usize {
            if first.len() == rule.count {
                break;
            }
            let Some((date, day_type, excluded)) = day_facts(calendar, days, frame, k) else {
                break;
            };
            if !rule.pool.contains(day_type) || excluded {
                continue;
            }
            let Some((day, ranges)) = meter
                .day(date)
                .and_then(|d| Some((*d, day_ranges(meter, frame, d)?)))
            else {
                break;
            };
            first.push(FirstDay { k, day, ranges });
        }
        Self {
            complete: first.len() == rule.count,
            days: first,
        }
    }

    /// The dates of the days `kept` of the window, most recent first.
    pub(crate) fn kept_dates(&self, kept: Kept) -> impl Iterator<Item = NaiveDate> + '_ {
        self.days
            .iter()
            .enumerate()
            .filter(move |(i, _)| kept >> i & 1 == 1)
            .map(|(_, d)| d.day.date)
    }
}

/// Reads, for every lane of a block of [`LANES`] meters on one index (`rows`), the
/// `first` days of a rule on `frame` into each lane's `evals` (`lanes[l]`): the lanes'
/// sums side by side, one pass over the block's rows, each lane's sum in the order
/// [`evaluate_raw`] adds its values (so every figure is the same to the bit). Days read
/// already (for another rule on this frame) are left as they are.
pub(crate) fn prefill(
    rows: &[f64],
    first: &FirstDays,
    frame: &Frame,
    lanes: &mut [Vec<Option<Eval>>; LANES],
    buf: &mut LaneBuffers,
) {
    // The days to read: (days back - 1, their two windows' index ranges).
    let todo = &mut buf.todo;
    todo.clear();
    todo.extend(
        first
            .days
            .iter()
            .filter(|d| !lanes[0].get(d.k).is_some_and(Option::is_some))
            .map(|d| (d.k, d.ranges.clone())),
    );
    // Up to five days at a time (as many in each pass as the days allow): five streams
    // from memory in flight, each lane's sums of the days side by side, each in its
    // own order.
    const DAYS: usize = 5;
    let (rows8, _) = rows.as_chunks::<LANES>();
    let sums = |starts: [usize; DAYS], n: usize| -> Option<[[f64; LANES]; DAYS]> {
        let mut src: [&[[f64; LANES]]; DAYS] = [&[]; DAYS];
        for (s, &a) in src.iter_mut().zip(&starts) {
            *s = rows8.get(a..a + n)?;
        }
        let mut acc = [[0.0f64; LANES]; DAYS];
        // Half the lanes at a time: the days' sums stay in registers.
        for half in [0, LANES / 2] {
            let mut part = [[0.0f64; LANES / 2]; DAYS];
            for j in 0..n {
                for (p, s) in part.iter_mut().zip(&src) {
                    let Some(row) = s.get(j) else {
                        continue;
                    };
                    for (a, w) in p.iter_mut().zip(&row[half..]) {
                        *a += w;
                    }
                }
            }
            for (a, p) in acc.iter_mut().zip(&part) {
                a[half..half + LANES / 2].copy_from_slice(p);
            }
        }
        Some(acc)
    };
    let Some(last) = todo.iter().map(|(k, _)| *k).max() else {
        return;
    };
    for evals in lanes.iter_mut() {
        if evals.len() <= last {
            evals.resize(last + 1, None);
        }
    }
    let per_pass = todo.len().div_ceil(todo.len().div_ceil(DAYS).max(1)).max(1);
    let n_event = f64x2::splat(frame.n_event as f64);
    for pass in todo.chunks(per_pass) {
        let at =
            |part: usize| std::array::from_fn(|i| pass.get(i).unwrap_or(&pass[0]).1[part].start);
        let (Some(adj), Some(ev)) = (sums(at(0), frame.n_adj), sums(at(1), frame.n_event)) else {
            return; // `rows` is not this index's block: leave every day to the scan
        };
        for (i, (k, ranges)) in pass.iter().enumerate() {
            // Every lane's mean at once (`eval_of`'s quotient); a lane with a missing
            // value (a sum NaN) has its gap found.
            let means = unpair(pairs(&ev[i]).map(|e| e / n_event));
            for (lane, evals) in lanes.iter_mut().enumerate() {
                let (a, e) = (adj[i][lane], ev[i][lane]);
                let eval = if a.is_nan() || e.is_nan() {
                    eval_of(Lanes { rows, lane }, frame, ranges.clone(), a, e)
                } else {
                    Eval::Mean(means[lane])
                };
                if let Some(slot) = evals.get_mut(*k) {
                    *slot = Some(eval);
                }
            }
        }
    }
}

/// Walks back from the event day, recording each day examined.
struct Scan<'a, C> {
    meter: &'a Meter,
    values: C,
    calendar: &'a Calendar,
    /// The calendar facts, when shared by a fleet (for this frame's event day).
    days: Option<&'a CalendarDays>,
    frame: &'a Frame,
    rule: &'a DayMatching,
    gaps: GapPolicy,
    /// Each day's values, by days back minus one, once read: shared by every rule
    /// computed on the same frame.
    evals: &'a mut Vec<Option<Eval>>,
    back: u32,
}

impl<C: Column> Scan<'_, C> {
    /// The date `k + 1` days before the event day, its day type and whether it is an
    /// excluded event day (`None` before chrono's range).
    fn day_facts(&self, k: usize) -> Option<(NaiveDate, DayType, bool)> {
        day_facts(self.calendar, self.days, self.frame, k)
    }

    /// Reads day `k` (`day`) and, ahead of need, up to `BATCH - 1` more of the days
    /// this scan may reach next, their values summed side by side (see
    /// [`evaluate_batch`]); returns day `k`'s.
    fn evaluate_ahead(&mut self, k: usize, day: &LocalDay) -> Eval {
        let mut batch = [(k, *day); BATCH];
        let mut n = 1;
        let last = (self.rule.lookback_days as usize).min(k + 1 + 2 * BATCH);
        for k2 in k + 1..last {
            if n == BATCH {
                break;
            }
            if self.evals.get(k2).is_some_and(Option::is_some) {
                continue;
            }
            let Some((date, day_type, excluded)) = self.day_facts(k2) else {
                break;
            };
            if !self.rule.pool.contains(day_type) || excluded {
                continue;
            }
            let Some(d) = self.meter.day(date) else {
                break;
            };
            batch[n] = (k2, *d);
            n += 1;
        }
        let mut out = [Eval::NoData; BATCH];
        evaluate_batch(
            self.meter,
            self.values,
            self.frame,
            &batch[..n],
            &mut out[..n],
        );
        let top = batch[n - 1].0;
        if self.evals.len() <= top {
            self.evals.resize(top + 1, None);
        }
        for (&(k2, _), e) in batch[..n].iter().zip(out) {
            self.evals[k2] = Some(e);
        }
        out[0]
    }

    fn next(&mut self, decisions: &mut Vec<DayDecision>) -> Result<Option<Cand>, MvError> {
        while self.back < self.rule.lookback_days {
            self.back += 1;
            let k = self.back as usize - 1;
            let Some((date, day_type, excluded)) = self.day_facts(k) else {
                return Ok(None);
            };
            let mut record = |outcome, load: Option<f64>| {
                decisions.push(DayDecision {
                    date,
                    day_type,
                    event_window_load: load.and_then(|w| Power::watts(w).ok()),
                    outcome,
                });
                decisions.len() - 1
            };
            if !self.rule.pool.contains(day_type) {
                record(DayOutcome::Dropped(DropReason::NotInPool), None);
                continue;
            }
            if excluded {
                record(DayOutcome::Dropped(DropReason::EventDay), None);
                continue;
            }
            let Some(day) = self.meter.day(date) else {
                // Older days are before the data too: stop here.
                record(DayOutcome::Dropped(DropReason::NoData), None);
                self.back = self.rule.lookback_days;
                return Ok(None);
            };
            let eval = match self.evals.get(k).copied().flatten() {
                Some(e) => e,
                None => {
                    let day = *day;
                    self.evaluate_ahead(k, &day)
                }
            };
            match judge(self.meter, eval, self.gaps)? {
                Ok(mean) => {
                    let decision = record(DayOutcome::Selected, Some(mean));
                    return Ok(Some(Cand {
                        decision,
                        day: *day,
                        mean,
                    }));
                }
                Err(reason) => {
                    record(DayOutcome::Dropped(reason), None);
                }
            }
        }
        Ok(None)
    }

    fn fill(
        &mut self,
        window: &mut Vec<Cand>,
        decisions: &mut Vec<DayDecision>,
    ) -> Result<(), MvError> {
        while window.len() < self.rule.count {
            match self.next(decisions)? {
                Some(c) => window.push(c),
                None => break,
            }
        }
        Ok(())
    }
}

/// The buffers of a day-matching run, reusable from one run to the next.
#[derive(Default)]
pub(crate) struct Work {
    /// Every day examined, most recent first.
    pub(crate) decisions: Vec<DayDecision>,
    /// The days averaged, most recent first.
    pub(crate) selected_days: Vec<NaiveDate>,
    /// The raw baseline in watts: the adjustment window's intervals, then the event's.
    pub(crate) profile: Vec<f64>,
    window: Vec<Cand>,
    order: Vec<usize>,
    keep: Vec<bool>,
}

/// Runs a day-matching baseline.
pub(super) fn compute(
    baseline: &Baseline,
    days: &DayRules,
    adj: &Adjustment,
    meter: &Meter,
    calendar: &Calendar,
    event: Interval,
    notified: Option<DateTime<Utc>>,
) -> Result<BaselineResult, MvError> {
    adj.validate()?;
    let frame = frame(meter, calendar, event, adj, notified)?;
    let rule = days.for_day(frame.day_type);
    rule.validate()?;
    let mut work = Work::default();
    let on = On {
        meter,
        values: meter.column(),
        calendar,
        days: None,
        frame: &frame,
    };
    let applied = select(
        (baseline.gap_policy, rule, adj),
        on,
        &mut Vec::new(),
        &mut work,
    )?;
    let intervals = event_intervals(meter, &frame, &work.profile[frame.n_adj..], applied)?;
    Ok(BaselineResult {
        method: baseline.method,
        event,
        event_day: frame.date,
        day_type: frame.day_type,
        selected_days: work.selected_days,
        days: work.decisions,
        adjustment: applied,
        intervals,
        settlement: baseline.settlement,
    })
}

/// What the steps of a day-matching run read: one meter's index and values, the
/// calendar (with its facts for the event's lookback, when a fleet shares them) and the
/// located event.
#[derive(Clone, Copy)]
pub(crate) struct On<'a, C> {
    pub(crate) meter: &'a Meter,
    pub(crate) values: C,
    pub(crate) calendar: &'a Calendar,
    pub(crate) days: Option<&'a CalendarDays>,
    pub(crate) frame: &'a Frame,
}

/// The day matching itself, on a located event: selects the days (`work.decisions`,
/// `work.selected_days`), averages them interval by interval (`work.profile`) and
/// returns the day-of adjustment. `evals` caches each day's values for this frame.
pub(crate) fn select<C: Column>(
    (gaps, rule, adj): (GapPolicy, &DayMatching, &Adjustment),
    on: On<'_, C>,
    evals: &mut Vec<Option<Eval>>,
    work: &mut Work,
) -> Result<AppliedAdjustment, MvError> {
    choose(gaps, rule, on, evals, work)?;
    average(on, work);
    let base_sum = || work.profile.iter().take(on.frame.n_adj).sum::<f64>();
    adjust(adj, on, base_sum, None)
}

/// The first part of [`select`]: selects the days (`work.decisions`,
/// `work.selected_days`, and the window with the days it keeps).
pub(crate) fn choose<C: Column>(
    gaps: GapPolicy,
    rule: &DayMatching,
    on: On<'_, C>,
    evals: &mut Vec<Option<Eval>>,
    work: &mut Work,
) -> Result<(), MvError> {
    let On {
        meter,
        values,
        calendar,
        days: shared_days,
        frame,
    } = on;
    let Work {
        decisions,
        selected_days,
        window,
        order,
        keep,
        ..
    } = work;
    decisions.clear();
    selected_days.clear();
    window.clear();
    let mut scan = Scan {
        meter,
        values,
        calendar,
        days: shared_days,
        frame,
        rule,
        gaps,
        evals,
        back: 0,
    };
    scan.fill(window, decisions)?;

    // Low-usage exclusion with refill from older days (PJM M11 §10.3; NYISO): repeat
    // until no window day is below the threshold or the lookback is exhausted. The
    // average is the first window's, or the current window's (`LowUsageReference`).
    if let Some(threshold) = rule.low_usage_threshold {
        let mean_of = |w: &[Cand]| w.iter().map(|c| c.mean).sum::<f64>() / w.len() as f64;
        let initial = (!window.is_empty()).then(|| mean_of(window));
        loop {
            if window.is_empty() {
                break;
            }
            let avg = match (rule.low_usage_reference, initial) {
                (LowUsageReference::InitialWindow, Some(a)) => a,
                _ => mean_of(window),
            };
            if avg <= 0.0 {
                break;
            }
            let before = window.len();
            window.retain(|c| {
                let ratio = c.mean / avg;
                if ratio < threshold {
                    decisions[c.decision].outcome =
                        DayOutcome::Dropped(DropReason::LowUsage { ratio });
                    false
                } else {
                    true
                }
            });
            if window.len() == before {
                break;
            }
            scan.fill(window, decisions)?;
        }
    }

    if window.len() < rule.min_days {
        return Err(MvError::InsufficientDays {
            event_day: frame.date,
            pool: rule.pool.name(),
            found: window.len(),
            required: rule.min_days,
            lookback_days: rule.lookback_days,
        });
    }

    let kept = keep_days(
        rule.select,
        window.len(),
        |i| window[i].mean,
        (order, true),
        keep,
    );
    for (rank, &k) in order.iter().enumerate() {
        if !kept.contains(&rank)
            && let Some(d) = decisions.get_mut(window[k].decision)
        {
            d.outcome = DayOutcome::Dropped(DropReason::NotSelected { rank: rank + 1 });
        }
    }
    for (c, _) in window.iter().zip(keep.iter()).filter(|(_, k)| **k) {
        selected_days.push(c.day.date);
    }
    Ok(())
}

/// The longest first window [`choose_first_lanes`] takes (a longer one goes to
/// [`choose`]).
const MAX_FIRST: usize = 16;

/// The days of a rule's first window ([`FirstDays`]) a lane keeps: bit `i` for the
/// window's day `i`.
pub(crate) type Kept = u16;
const _: () = assert!(
    MAX_FIRST <= Kept::BITS as usize,
    "a first window's days fit in Kept"
);

/// [`choose`] for the first `lanes` lanes of a block whose rule's first window is
/// `first` (the same for every lane), `evals[l]` holding lane `l`'s cached candidate
/// days: a lane every one of whose first days is cached with all its values, and none
/// of them a low-usage day, would have exactly those days selected by the scan, so
/// they are taken as they are; the result is then the days it keeps. `None` for a lane
/// left to [`choose`]. The lanes' means are read side by side; a lane's `works[l]` is
/// used only as scratch for a selection other than all days or all but the last rank
/// (its choice is written out by [`first_kept`] where a step reads it). Records no day
/// decisions: for settlements that need only the figures and the selected days.
pub(crate) fn choose_first_lanes(
    rule: &DayMatching,
    first: &FirstDays,
    evals: [&[Option<Eval>]; LANES],
    lanes: usize,
    works: &mut [Work; LANES],
) -> [Option<Kept>; LANES] {
    let n = first.days.len();
    if !first.complete || n < rule.min_days || n > MAX_FIRST {
        return [None; LANES];
    }
    let mut ok: [bool; LANES] = std::array::from_fn(|l| l < lanes);
    let mut means = [[0.0f64; LANES]; MAX_FIRST];
    for (d, m) in first.days.iter().zip(&mut means) {
        for (l, (m, e)) in m.iter_mut().zip(&evals).enumerate() {
            match e.get(d.k) {
                Some(Some(Eval::Mean(mean))) => *m = *mean,
                _ => ok[l] = false,
            }
        }
    }
    let means = &means[..n];
    // The low-usage test of `choose`, on the first window, each lane's sum in day order
    // from the identity `Iterator::sum` starts with: a day it would drop sends the lane
    // to the scan.
    if let Some(threshold) = rule.low_usage_threshold {
        let zero = f64x2::splat(std::iter::empty::<f64>().sum::<f64>());
        let (mut sum, mut low) = ([zero; PAIRS], [f64x2::ZERO; PAIRS]);
        for m in means {
            let m = pairs(m);
            for k in 0..PAIRS {
                sum[k] += m[k];
            }
        }
        let avg = sum.map(|s| s / f64x2::splat(n as f64));
        let t = f64x2::splat(threshold);
        for m in means {
            let m = pairs(m);
            for k in 0..PAIRS {
                low[k] |= (m[k] / avg[k]).cmp_lt(t);
            }
        }
        let positive = avg.map(|a| a.cmp_gt(f64x2::ZERO));
        let (low, positive) = (unpair(low), unpair(positive));
        for l in 0..LANES {
            if positive[l].to_bits() != 0 && low[l].to_bits() != 0 {
                ok[l] = false;
            }
        }
    }
    let all: Kept = Kept::MAX >> (Kept::BITS as usize - n);
    let (keep_from, keep_to) = kept_range(rule.select, n);
    std::array::from_fn(|l| {
        if !ok[l] {
            return None;
        }
        if (keep_from, keep_to) == (0, n) {
            return Some(all);
        }
        let mean = |i: usize| means[i][l];
        if keep_from == 0 && keep_to + 1 == n {
            // The last rank, as `keep_days` finds it.
            let last = (0..n).min_by(|a, b| mean(*a).total_cmp(&mean(*b)).then(b.cmp(a)))?;
            return Some(all & !(1 << last));
        }
        let Work { order, keep, .. } = &mut works[l];
        keep_days(rule.select, n, mean, (order, false), keep);
        Some(
            keep.iter()
                .enumerate()
                .filter(|(_, k)| **k)
                .fold(0, |m, (i, _)| m | 1 << i),
        )
    })
}

/// Writes out a lane's choice from [`choose_first_lanes`] (the days `kept` of `first`,
/// its candidate days cached in `evals`) into its `work` as [`choose`] would leave it
/// for the steps that read it: no day decisions, the selected days, the window and
/// which of its days are kept.
pub(crate) fn first_kept(first: &FirstDays, evals: &[Option<Eval>], kept: Kept, work: &mut Work) {
    let is_kept = |i: usize| kept >> i & 1 == 1;
    work.decisions.clear();
    work.keep.clear();
    work.keep.extend((0..first.days.len()).map(is_kept));
    work.selected_days.clear();
    work.selected_days.extend(first.kept_dates(kept));
    work.window.clear();
    work.window.extend(first.days.iter().map(|d| Cand {
        decision: usize::MAX,
        day: d.day,
        mean: match evals.get(d.k) {
            Some(Some(Eval::Mean(m))) => *m,
            _ => f64::NAN,
        },
    }));
}

/// The days a lane of a block selected, as [`EventPlan::block_totals`] hands them out.
///
/// [`EventPlan::block_totals`]: super::EventPlan::block_totals
#[derive(Debug, Clone, Copy)]
pub(crate) enum Selected<'a> {
    /// The days listed, most recent first.
    Days(&'a [NaiveDate]),
    /// The days kept of a rule's first window ([`choose_first_lanes`]).
    First(&'a FirstDays, Kept),
}

/// Each lane's sum of `rows`, in row order from `zero` (the identity the one-meter sum
/// starts with).
pub(crate) fn column_sums(rows: &[[f64; LANES]], zero: f64) -> [f64; LANES] {
    let mut acc = [f64x2::splat(zero); PAIRS];
    for row in rows {
        let w = pairs(row);
        for k in 0..PAIRS {
            acc[k] += w[k];
        }
    }
    unpair(acc)
}

/// The ranks a selection keeps of a full window of `n` days: from the first to before
/// the second (rank 0 the highest event-window load).
fn kept_range(select: Selection, n: usize) -> (usize, usize) {
    match select {
        Selection::All => (0, n),
        Selection::Highest(k) => (0, k.min(n)),
        Selection::Middle {
            drop_highest,
            drop_lowest,
        } => {
            if n > drop_highest + drop_lowest {
                (drop_highest, n - drop_lowest)
            } else {
                (0, n)
            }
        }
    }
}

/// The selection of `choose` on a full window of `n` days, the event-window load of day
/// `i` being `mean(i)`: marks the days kept (`keep`) and returns the ranks kept. Where
/// not every day is kept, `order` lists the days by rank (event-window load, highest
/// first; ties go to the more recent day); otherwise it is left empty. Without `ranks`
/// (no rank is reported), where only the last rank is left out, `order` is left empty
/// too: that day is found without ranking the others.
fn keep_days(
    select: Selection,
    n: usize,
    mean: impl Fn(usize) -> f64,
    (order, ranks): (&mut Vec<usize>, bool),
    keep: &mut Vec<bool>,
) -> std::ops::Range<usize> {
    let (keep_from, keep_to) = kept_range(select, n);
    keep.clear();
    order.clear();
    if (keep_from, keep_to) == (0, n) {
        keep.resize(n, true); // every day kept: no rank is reported
        return 0..n;
    }
    if !ranks
        && keep_from == 0
        && keep_to + 1 == n
        && let Some(last) = (0..n).min_by(|a, b| mean(*a).total_cmp(&mean(*b)).then(b.cmp(a)))
    {
        // The last rank: the lowest load, the oldest of equal ones (PJM's High 4 of 5).
        keep.resize(n, true);
        keep[last] = false;
        return keep_from..keep_to;
    }
    order.extend(0..n);
    order.sort_by(|a, b| mean(*b).total_cmp(&mean(*a)).then(a.cmp(b)));
    keep.resize(n, false);
    for &k in order.get(keep_from..keep_to).unwrap_or(&[]) {
        keep[k] = true;
    }
    keep_from..keep_to
}

/// The second part of [`select`]: averages the kept days interval by interval
/// (`work.profile`).
pub(crate) fn average<C: Column>(on: On<'_, C>, work: &mut Work) {
    let On {
        meter,
        values,
        frame,
        ..
    } = on;
    let Work {
        selected_days,
        profile,
        window,
        keep,
        ..
    } = work;
    profile.clear();
    profile.resize(frame.clocks.len(), 0.0);
    for (c, _) in window.iter().zip(keep.iter()).filter(|(_, k)| **k) {
        // `evaluate_raw` checked every one of these values exists (none is NaN).
        if let Some([adj, ev]) = day_ranges(meter, frame, &c.day) {
            for (p, w) in profile.iter_mut().zip(values.window(adj)) {
                *p += w;
            }
            for (p, w) in profile[frame.n_adj..].iter_mut().zip(values.window(ev)) {
                *p += w;
            }
            continue;
        }
        for (p, &clock) in profile.iter_mut().zip(&frame.clocks) {
            *p += c
                .day
                .elapsed_of_clock(clock)
                .and_then(|e| meter.index_in_day(&c.day, e))
                .and_then(|i| values.get(i))
                .unwrap_or(0.0);
        }
    }
    let used = selected_days.len() as f64;
    for p in profile.iter_mut() {
        *p /= used;
    }
}

/// The buffers of [`average_lanes`] and [`prefill`], kept from one call to the next.
#[derive(Debug, Default)]
pub(crate) struct LaneBuffers {
    /// The lanes' profiles side by side, one entry per position of the frame.
    pub(crate) sums: Vec<[f64; LANES]>,
    /// The days to add, and which lanes keep them.
    parts: Vec<([usize; 2], [u64; LANES])>,
    /// The days [`prefill`] reads: days back - 1, their two windows' index ranges.
    todo: Vec<(usize, [std::ops::Range<usize>; 2])>,
}

/// [`average`] for the lanes of one block of [`LANES`] meters at once (`rows`, on the
/// index `meter`): `works[l]` holds lane `l`'s chosen days where `chosen[l]`. Where
/// every kept day of a lane has contiguous windows, its profile is summed here with the
/// other such lanes' side by side, one pass over each day's rows: each lane adds its
/// kept days' values in the order [`average`] does, and +0 for a day it does not keep
/// (a sum that starts at +0 is never -0, so adding +0 changes nothing, to the bit).
/// Returns the lanes averaged, whose profiles are left in `buf.sums` (lane `l`'s
/// values at `[p][l]`), not in their `works`; the others are left to [`average`].
///
/// `first`, when given, is the rule's first window and `firsts[l]` the days of it lane
/// `l` keeps where it chose it as it is ([`choose_first_lanes`]), its `works[l]` then
/// written out only where a step reads it: when every chosen lane did, the days and
/// their ranges are taken from it.
pub(crate) fn average_lanes(
    meter: &Meter,
    rows: &[f64],
    frame: &Frame,
    works: &[Work; LANES],
    (chosen, first, firsts): ([bool; LANES], Option<&FirstDays>, [Option<Kept>; LANES]),
    buf: &mut LaneBuffers,
) -> [bool; LANES] {
    let LaneBuffers { sums, parts, .. } = buf;
    parts.clear();
    let counts = std::array::from_fn(|l| match firsts[l] {
        Some(kept) => kept.count_ones() as usize,
        None => works[l].selected_days.len(),
    });
    let done = match first.filter(|_| (0..LANES).all(|l| firsts[l].is_some() || !chosen[l])) {
        Some(first) => {
            // Every lane averaged here keeps some of the same first days.
            for (i, d) in first.days.iter().enumerate() {
                let mask: [u64; LANES] = std::array::from_fn(|l| match firsts[l] {
                    Some(kept) if chosen[l] && kept >> i & 1 == 1 => u64::MAX,
                    _ => 0,
                });
                if mask.iter().any(|m| *m != 0) {
                    parts.push(([d.ranges[0].start, d.ranges[1].start], mask));
                }
            }
            chosen
        }
        None => kept_parts(meter, frame, works, chosen, parts),
    };
    sum_parts(rows, frame, counts, done, parts, sums)
}

/// The parts of [`average_lanes`] without a shared first window: each chosen lane whose
/// kept days all have contiguous windows, and those days merged into one list, most
/// recent first, each with, per lane, all ones where the lane keeps it, else zero (its
/// value, or +0). Returns the lanes listed.
fn kept_parts(
    meter: &Meter,
    frame: &Frame,
    works: &[Work; LANES],
    chosen: [bool; LANES],
    parts: &mut Vec<([usize; 2], [u64; LANES])>,
) -> [bool; LANES] {
    fn kept(w: &Work) -> impl Iterator<Item = LocalDay> + '_ {
        w.window
            .iter()
            .zip(&w.keep)
            .filter(|(_, k)| **k)
            .map(|(c, _)| c.day)
    }
    let mut done = [false; LANES];
    let mut days: Vec<(LocalDay, [u64; LANES])> = Vec::new();
    for (l, (w, &c)) in works.iter().zip(&chosen).enumerate() {
        done[l] = c && kept(w).all(|day| day_ranges(meter, frame, &day).is_some());
        if !done[l] {
            continue;
        }
        for day in kept(w) {
            let at = days.partition_point(|(d, _)| d.date > day.date);
            match days.get_mut(at) {
                Some((d, mask)) if d.date == day.date => mask[l] = u64::MAX,
                _ => {
                    let mut mask = [0; LANES];
                    mask[l] = u64::MAX;
                    days.insert(at, (day, mask));
                }
            }
        }
    }
    for (day, mask) in &days {
        let Some([adj, ev]) = day_ranges(meter, frame, day) else {
            continue;
        };
        parts.push(([adj.start, ev.start], *mask));
    }
    done
}

/// The sums of [`average_lanes`] over `parts` (`sums`), divided by each lane's count of
/// days (`counts`); returns `done`, or no lane where `rows` is not this index's block.
fn sum_parts(
    rows: &[f64],
    frame: &Frame,
    counts: [usize; LANES],
    done: [bool; LANES],
    parts: &[([usize; 2], [u64; LANES])],
    sums: &mut Vec<[f64; LANES]>,
) -> [bool; LANES] {
    let (rows, _) = rows.as_chunks::<LANES>();
    // Every position is written by the first pass (its sums start there): the length
    // is set, the values left as they were.
    sums.resize(frame.clocks.len(), [0.0; LANES]);
    let scale = Scale::of(counts);
    let (adj, ev) = sums.split_at_mut(frame.n_adj.min(frame.clocks.len()));
    // Up to `GROUP` days at a time, each position's sums kept in registers for them
    // and divided after the last: the days in order, so each lane adds its days in the
    // order [`average`] does. A group of days every lane keeps is added as it is; any
    // other through the days' masks.
    for (part, acc) in [(0, adj), (1, ev)] {
        let mut rest = parts;
        let mut first = true;
        loop {
            let (group, after) = rest.split_at(rest.len().min(GROUP));
            let whole = group.iter().all(|(_, m)| m.iter().all(|b| *b == u64::MAX));
            let days = DayGroup {
                group,
                part,
                first,
                scale: after.is_empty().then_some(&scale),
            };
            if !days.add(acc, rows, whole) {
                return [false; LANES];
            }
            if after.is_empty() {
                break;
            }
            (rest, first) = (after, false);
        }
    }
    done
}

/// How many days [`sum_parts`] adds in one pass ([`DayGroup::add`] has a loop for
/// each count up to it).
const GROUP: usize = 10;
const _: () = assert!(GROUP == 10, "DayGroup::add dispatches counts 0 to 10");

/// Pairs of lanes in a block's row.
const PAIRS: usize = LANES / 2;

/// A block's row as pairs of lanes.
fn pairs(row: &[f64; LANES]) -> [f64x2; PAIRS] {
    std::array::from_fn(|k| f64x2::from([row[2 * k], row[2 * k + 1]]))
}

/// Pairs of lanes as a block's row.
fn unpair(x: [f64x2; PAIRS]) -> [f64; LANES] {
    std::array::from_fn(|l| x[l / 2].to_array()[l % 2])
}

/// How each lane's summed profile becomes its average.
enum Scale {
    /// Multiplied by the exact inverse of the lane's count of days, where every count
    /// is a power of two: dividing by 2^k and multiplying by 2^-k round the same
    /// quotient, so this is the division's figure, to the bit, without a division.
    Multiply([f64x2; PAIRS]),
    /// Divided by the lane's count of days.
    Divide([f64x2; PAIRS]),
}

impl Scale {
    fn of(counts: [usize; LANES]) -> Self {
        let by = |f: fn(usize) -> f64| -> [f64x2; PAIRS] {
            std::array::from_fn(|k| f64x2::from([f(counts[2 * k]), f(counts[2 * k + 1])]))
        };
        if counts.iter().all(|n| n.is_power_of_two()) {
            Self::Multiply(by(|n| 1.0 / n as f64))
        } else {
            Self::Divide(by(|n| n as f64))
        }
    }

    fn apply(&self, x: [f64x2; PAIRS]) -> [f64x2; PAIRS] {
        match self {
            Self::Multiply(m) => std::array::from_fn(|k| x[k] * m[k]),
            Self::Divide(d) => std::array::from_fn(|k| x[k] / d[k]),
        }
    }
}

/// One pass of [`sum_parts`]: a `group` of at most [`GROUP`] days, each with its
/// window's first row on `part` (0 for the adjustment window, 1 for the event) and,
/// per lane, all ones where the lane keeps it; `first` when the sums start here (from
/// +0), `scale` when the days are the last.
struct DayGroup<'a> {
    group: &'a [([usize; 2], [u64; LANES])],
    part: usize,
    first: bool,
    scale: Option<&'a Scale>,
}

impl DayGroup<'_> {
    /// Adds the days to each position of `acc`, in order: each lane's value where the
    /// day's mask has all ones, else +0 (without masks where every day is `whole`).
    /// False, with nothing added, where a day's rows are not in `rows`.
    fn add(&self, acc: &mut [[f64; LANES]], rows: &[[f64; LANES]], whole: bool) -> bool {
        macro_rules! by_count {
            ($($g:literal)*) => {
                match (self.group.len(), whole) {
                    $(
                        ($g, true) => self.add_n::<$g, false>(acc, rows),
                        ($g, false) => self.add_n::<$g, true>(acc, rows),
                    )*
                    _ => false,
                }
            };
        }
        by_count!(0 1 2 3 4 5 6 7 8 9 10)
    }

    /// [`DayGroup::add`] for `G` days, through their masks where `MASKED`.
    fn add_n<const G: usize, const MASKED: bool>(
        &self,
        acc: &mut [[f64; LANES]],
        rows: &[[f64; LANES]],
    ) -> bool {
        let n = acc.len();
        let mut src: [&[[f64; LANES]]; G] = [&[]; G];
        let mut masks = [[f64x2::ZERO; PAIRS]; G];
        for ((s, m), (starts, mask)) in src.iter_mut().zip(&mut masks).zip(self.group) {
            let Some(r) = rows.get(starts[self.part]..starts[self.part] + n) else {
                return false;
            };
            *s = r;
            *m = pairs(&mask.map(f64::from_bits));
        }
        for (p, a) in acc.iter_mut().enumerate() {
            let mut x = if self.first {
                [f64x2::ZERO; PAIRS]
            } else {
                pairs(a)
            };
            for (s, m) in src.iter().zip(&masks) {
                // Every day's rows are `n` long: `get` always finds the position.
                let Some(r) = s.get(p) else {
                    return false;
                };
                let r = pairs(r);
                for k in 0..PAIRS {
                    x[k] += if MASKED { r[k] & m[k] } else { r[k] };
                }
            }
            if let Some(scale) = self.scale {
                x = scale.apply(x);
            }
            *a = unpair(x);
        }
        true
    }
}

/// The last part of [`select`]: the day-of adjustment of the averaged days.
/// `base_sum` gives the sum of their profile's values over the adjustment window, in
/// order, as `Iterator::sum` adds them (asked only for an adjustment). `actual`, when
/// given, is the event day's mean load over the adjustment window as
/// [`lane_event_day`] reads it (the same figure this reads itself without it).
pub(crate) fn adjust<C: Column>(
    adj: &Adjustment,
    on: On<'_, C>,
    base_sum: impl FnOnce() -> f64,
    actual: Option<f64>,
) -> Result<AppliedAdjustment, MvError> {
    let On {
        meter,
        values,
        frame,
        ..
    } = on;
    match frame.adj_window {
        Some(w) if adj.kind != AdjustmentKind::None => {
            let mean_actual = match actual {
                Some(mean) => mean,
                None => {
                    let mut sum = 0.0;
                    for k in 0..frame.n_adj {
                        sum += meter.watts(values, frame.adj_first + k, "adjustment window")?;
                    }
                    sum / frame.n_adj as f64
                }
            };
            let mean_base = base_sum() / frame.n_adj as f64;
            adj.apply(w, mean_actual, mean_base)
        }
        _ => Ok(AppliedAdjustment::NONE),
    }
}

/// What the event day gives every rule located on one frame, for the lanes of a block:
/// read once for all of them ([`lane_event_day`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventDay {
    /// Each lane's mean load over the adjustment window, as [`adjust`] reads it; `None`
    /// for a lane with a missing value there (whose error [`adjust`] then finds), and
    /// for every lane when the frame has no window.
    pub(crate) means: [Option<f64>; LANES],
    /// Each lane's metered energy over the event (joules): its loads times the
    /// interval's length, summed in interval order from zero, as [`totals_lanes`] adds.
    metered: [f64; LANES],
    /// Whether every load of the lane over the event is below [`small_bound`] (which a
    /// missing value is not); false for every lane where the event's rows are not in
    /// the block.
    small: [bool; LANES],
}

impl EventDay {
    /// No figure: every lane is left to the one-meter paths.
    pub(crate) const NONE: Self = Self {
        means: [None; LANES],
        metered: [0.0; LANES],
        small: [false; LANES],
    };
}

/// The bound on the loads and adjusted baselines of an event of `n_event` intervals of
/// `step_s` seconds below which no sum of [`totals_lanes`] and no step of one reaches
/// the bound where the quantities' arithmetic saturates.
fn small_bound(n_event: usize, step_s: f64) -> f64 {
    gridflex_core::MAX_MAGNITUDE / (4.0 * n_event as f64 * step_s.max(1.0))
}

/// The event day's [`EventDay`] of `frame` for every lane of a block (`rows`, whose
/// meters' interval is `step`): the adjustment window's means, each lane's values
/// summed in [`adjust`]'s order, and the event's metered energy with its bound check,
/// each lane's terms as [`totals_lanes`] adds them, side by side, one pass each.
pub(crate) fn lane_event_day(rows: &[f64], frame: &Frame, step: TimeDelta) -> EventDay {
    use gridflex_core::units::seconds_f64;
    let step_s = seconds_f64(step);
    let small = small_bound(frame.n_event, step_s);
    let (rows, _) = rows.as_chunks::<LANES>();
    // Side by side in pairs of lanes: `fine` all ones while every load is below the
    // bound (a comparison with NaN is false).
    let all = f64x2::splat(f64::from_bits(u64::MAX));
    let (mut metered, mut fine) = ([f64x2::ZERO; PAIRS], [all; PAIRS]);
    let (small, step) = (f64x2::splat(small), f64x2::splat(step_s));
    let event_rows = rows.get(frame.event_first..frame.event_first + frame.n_event);
    for row in event_rows.unwrap_or(&[]) {
        let w = pairs(row);
        for k in 0..PAIRS {
            fine[k] &= w[k].abs().cmp_le(small);
            metered[k] += w[k] * step;
        }
    }
    let fine = match event_rows {
        Some(_) => unpair(fine).map(|m| m.to_bits() != 0),
        None => [false; LANES],
    };
    let metered = unpair(metered);
    let part = |first: usize, n: usize| Some(column_sums(rows.get(first..first + n)?, 0.0));
    let means = match (frame.adj_window, part(frame.adj_first, frame.n_adj)) {
        (Some(_), Some(sums)) if frame.n_adj > 0 => {
            sums.map(|s| (!s.is_nan()).then(|| s / frame.n_adj as f64))
        }
        _ => [None; LANES],
    };
    EventDay {
        means,
        metered,
        small: fine,
    }
}

/// What a settlement needs of one event's baseline, without the per-interval output:
/// the same figures [`BaselineResult`] and its [`reduction`](BaselineResult::reduction)
/// give, computed in the same order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Totals {
    /// Adjusted baseline energy over the event.
    pub(crate) baseline: Energy,
    /// Metered energy over the event.
    pub(crate) metered: Energy,
    /// Settled reduction energy.
    pub(crate) settled: Energy,
    /// Settled reduction energy over the event's duration.
    pub(crate) mean_settled: Power,
}

/// [`Totals`] of an event given its raw baseline per event interval (watts).
pub(crate) fn totals<C: Column>(
    meter: &Meter,
    values: C,
    frame: &Frame,
    baseline_w: &[f64],
    applied: AppliedAdjustment,
    settlement: SettlementRule,
    event: Interval,
) -> Result<Totals, MvError> {
    let step = meter.step();
    let (mut baseline, mut metered) = (Energy::ZERO, Energy::ZERO);
    let mut settled_sum = Power::ZERO;
    for (k, &b) in baseline_w.iter().enumerate().take(frame.n_event) {
        let actual = Power::watts(meter.watts(values, frame.event_first + k, "event window")?)?;
        let adjusted = applied.value.apply(Power::watts(b)?)?;
        baseline += adjusted * step;
        metered += actual * step;
        settled_sum += settlement.settle(adjusted - actual);
    }
    let settled = settled_sum * step;
    Ok(Totals {
        baseline,
        metered,
        settled,
        mean_settled: settled.mean_power_over(event),
    })
}

/// [`totals`] for the lanes of one block (`rows`) at once, each lane `l` with its raw
/// baseline per event interval `baselines[k][l]` and its adjustment `applied[l]`: the same
/// arithmetic on plain numbers, the lanes side by side, so every figure is the same to
/// the bit. `day` is the block's [`lane_event_day`] of `frame` (the metered energy,
/// shared by every rule on the frame). `None` for a lane not in `lanes`, or one with a
/// value that [`totals`] refuses (a missing value, a baseline beyond what a power can
/// hold) or whose sums could saturate, which [`totals`] then computes (or refuses)
/// itself.
pub(crate) fn totals_lanes(
    (rows, frame, day): (&[f64], &Frame, &EventDay),
    (baselines, applied, lanes): (&[[f64; LANES]], [AppliedAdjustment; LANES], [bool; LANES]),
    settlement: SettlementRule,
    step: TimeDelta,
    event: Interval,
) -> [Option<Totals>; LANES] {
    use gridflex_core::units::seconds_f64;
    // Each lane's adjustment as a product and a sum: `b * f + 0` for a factor, `b * 1
    // + a` for an offset (`b * 1` is `b`), `b * 1 + 0` for none.
    let (mut mul, mut add) = ([1.0f64; LANES], [0.0f64; LANES]);
    for l in 0..LANES {
        match applied[l].value {
            AdjustmentValue::None => {}
            AdjustmentValue::Factor(f) => mul[l] = f,
            AdjustmentValue::Offset(a) => add[l] = a.as_watts(),
        }
    }
    let step_s = seconds_f64(step);
    // Where every load and adjusted baseline of a lane is below `small`, no sum of the
    // event and no step of one reaches the bound, where the quantities' arithmetic
    // saturates: the sums are plain additions, which do not wait on a saturation each.
    // A lane beyond it gets [`totals`]. The loads' check and sum are `day`'s.
    let small = small_bound(frame.n_event, step_s);
    let (Some(event_rows), Some(baselines)) = (
        rows.get(frame.event_first * LANES..(frame.event_first + frame.n_event) * LANES),
        baselines.get(..frame.n_event),
    ) else {
        return [None; LANES];
    };
    let terms = Terms {
        rows: event_rows,
        baselines,
        mul,
        add,
        small,
        step_s,
    };
    let (fine, base, settled) = match settlement {
        SettlementRule::FloorAtZero => terms.sums::<true>(day.small),
        SettlementRule::Net => terms.sums::<false>(day.small),
    };
    let duration = event.duration();
    std::array::from_fn(|l| {
        if !(lanes[l] && fine[l]) {
            return None;
        }
        // The sum of the settled reductions is a power; as in `totals` from here.
        let settled = Power::watts(settled[l]).ok()? * step;
        Some(Totals {
            baseline: Energy::joules(base[l]).ok()?,
            metered: Energy::joules(day.metered[l]).ok()?,
            settled,
            // `mean_power_over(event)`, the event's length found once for the lanes
            // (the same quotient where it is a valid power, as it is below the bound).
            mean_settled: (settled / duration).unwrap_or_else(|| settled.mean_power_over(event)),
        })
    })
}

/// The event's terms of [`totals_lanes`]: the block's event rows, the lanes' raw
/// baselines, each lane's adjustment as a product and a sum, the bound below which the
/// sums need no saturation, and the interval length in seconds.
struct Terms<'a> {
    rows: &'a [f64],
    baselines: &'a [[f64; LANES]],
    mul: [f64; LANES],
    add: [f64; LANES],
    small: f64,
    step_s: f64,
}

impl Terms<'_> {
    /// Per lane: whether every term is valid and below the bound (starting from
    /// `loads_small`, whether every load is), and the sums of the adjusted baseline's
    /// energy and of the reductions (floored at zero when `FLOOR`), each in interval
    /// order.
    fn sums<const FLOOR: bool>(
        &self,
        loads_small: [bool; LANES],
    ) -> ([bool; LANES], [f64; LANES], [f64; LANES]) {
        use gridflex_core::MAX_MAGNITUDE;
        let all = f64::from_bits(u64::MAX);
        let mut fine = pairs(&loads_small.map(|s| if s { all } else { 0.0 }));
        let (mul, add) = (pairs(&self.mul), pairs(&self.add));
        let (max, small, step_s) = (
            f64x2::splat(MAX_MAGNITUDE),
            f64x2::splat(self.small),
            f64x2::splat(self.step_s),
        );
        let (mut base, mut settled) = ([f64x2::ZERO; PAIRS], [f64x2::ZERO; PAIRS]);
        let (rows, _) = self.rows.as_chunks::<LANES>();
        for (row, b) in rows.iter().zip(self.baselines) {
            let (a, b) = (pairs(row), pairs(b));
            for k in 0..PAIRS {
                // As `AdjustmentValue::apply` on the checked baseline: the same value,
                // and never -0 (`+ 0` makes -0 0).
                let adjusted = b[k] * mul[k] + add[k];
                // `b` must be a valid power; the adjusted baseline below the bound
                // (which a non-finite value is not) is a valid power too, and so is the
                // load where `loads_small`. A comparison with NaN is false.
                fine[k] = fine[k] & b[k].abs().cmp_le(max) & adjusted.abs().cmp_le(small);
                // A load of -0 (a checked power makes it 0) changes no sum and no
                // difference: `x + -0` is `x`, `+0 + -0` is +0, and `adjusted - -0` is
                // `adjusted`, never -0.
                base[k] += adjusted * step_s;
                let d = adjusted - a[k];
                // Floored: +0 (no bits) where `0 > d`, else `d` itself (-0 and NaN
                // included), as `if 0.0 > d { 0.0 } else { d }`.
                settled[k] += if FLOOR { d & !f64x2::ZERO.cmp_gt(d) } else { d };
            }
        }
        (
            unpair(fine).map(|m| m.to_bits() != 0),
            unpair(base),
            unpair(settled),
        )
    }
}

/// The per-interval output for the event, given the raw baseline per event interval.
pub(super) fn event_intervals(
    meter: &Meter,
    frame: &Frame,
    baseline_w: &[f64],
    applied: AppliedAdjustment,
) -> Result<Vec<BaselineInterval>, MvError> {
    let mut out = Vec::with_capacity(frame.n_event);
    // Consecutive intervals: each starts where the previous ended.
    let mut interval = meter.interval_of(frame.event_first);
    for (k, &b) in baseline_w.iter().enumerate().take(frame.n_event) {
        let i = frame.event_first + k;
        if k > 0 {
            interval = Interval::starting_at(interval.end(), meter.step())?;
        }
        let actual = Power::watts(meter.watts(meter.column(), i, "event window")?)?;
        let baseline = Power::watts(b)?;
        out.push(BaselineInterval {
            interval,
            baseline,
            adjusted_baseline: applied.value.apply(baseline)?,
            actual,
        });
    }
    Ok(out)
}

/// PJM Same Day (3+2): the located event and the mean of the event day's load in a
/// window before the event (ending `before_gap` before it) and one after it (starting
/// `after_gap` after it), in watts. `windows`: before, before gap, after, after gap.
pub(super) fn same_day_level<C: Column>(
    meter: &Meter,
    values: C,
    calendar: &Calendar,
    event: Interval,
    windows: [TimeDelta; 4],
) -> Result<(Frame, f64), MvError> {
    let [before, before_gap, after, after_gap] = windows;
    let frame = frame(meter, calendar, event, &Adjustment::none(), None)?;
    let n_before = whole_steps(meter, "same-day window before", before)?;
    let n_after = whole_steps(meter, "same-day window after", after)?;
    whole_steps(meter, "same-day gap before", before_gap)?;
    whole_steps(meter, "same-day gap after", after_gap)?;
    if n_before + n_after == 0 {
        return Err(MvError::InvalidParameter {
            name: "same-day windows",
            value: format!("{before} + {after}"),
            reason: "at least one window must be longer than zero",
        });
    }
    let mut sum = 0.0;
    if n_before > 0 {
        let start = shifted(event.start(), -(before + before_gap), event)?;
        let first = meter.index_at("same-day window before", start)?;
        for k in 0..n_before {
            sum += meter.watts(values, first + k, "same-day window before")?;
        }
    }
    if n_after > 0 {
        let start = shifted(event.end(), after_gap, event)?;
        let first = meter.index_at("same-day window after", start)?;
        meter.index_at(
            "same-day window after end",
            shifted(start, after - meter.step(), event)?,
        )?;
        for k in 0..n_after {
            sum += meter.watts(values, first + k, "same-day window after")?;
        }
    }
    Ok((frame, sum / (n_before + n_after) as f64))
}

/// A baseline at one level for every event interval, taken from the event day itself
/// (Same Day, Meter Before / Meter After): no other day is selected, no adjustment.
pub(super) fn flat_result(
    baseline: &Baseline,
    meter: &Meter,
    frame: &Frame,
    event: Interval,
    level_w: f64,
) -> Result<BaselineResult, MvError> {
    let profile = vec![level_w; frame.n_event];
    let intervals = event_intervals(meter, frame, &profile, AppliedAdjustment::NONE)?;
    Ok(BaselineResult {
        method: baseline.method,
        event,
        event_day: frame.date,
        day_type: frame.day_type,
        selected_days: vec![frame.date],
        days: Vec::new(),
        adjustment: AppliedAdjustment::NONE,
        intervals,
        settlement: baseline.settlement,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};
    use gridflex_core::MarketZone;
    use proptest::prelude::*;

    use super::*;
    use crate::baseline::adjust::AdjustmentKind;

    fn same(a: Eval, b: Eval) -> bool {
        match (a, b) {
            (Eval::Mean(x), Eval::Mean(y)) => x.to_bits() == y.to_bits(),
            (Eval::Gap(i), Eval::Gap(j)) => i == j,
            (Eval::NoData, Eval::NoData) => true,
            _ => false,
        }
    }

    proptest! {
        /// Leaving out only the last rank, found without ranking the other days, keeps
        /// the days the whole ranking keeps: equal loads (the older day left out) and
        /// signed zeros included.
        #[test]
        fn the_last_rank_found_alone_is_the_ranking_s_last(
            means in proptest::collection::vec(
                prop_oneof![Just(0.0), Just(-0.0), Just(1.5), Just(-2.0), -1e3f64..1e3],
                1..12,
            ),
        ) {
            let n = means.len();
            let select = Selection::Highest(n - 1);
            let (mut order, mut alone, mut ranked) = (Vec::new(), Vec::new(), Vec::new());
            let a = keep_days(select, n, |i| means[i], (&mut order, false), &mut alone);
            prop_assert!(order.is_empty(), "no ranking: {order:?}");
            let b = keep_days(select, n, |i| means[i], (&mut order, true), &mut ranked);
            prop_assert_eq!(order.len(), n);
            prop_assert_eq!(a, b);
            prop_assert_eq!(alone, ranked);
        }
    }

    proptest! {
        /// Days read four at a time give what each read alone gives, to the bit: the
        /// same means (signed zeros too), the same first gap, the same missing days,
        /// across the spring DST change (whose days take the per-day path).
        #[test]
        fn batched_days_read_like_single_days(
            seed in any::<u64>(),
            gaps in proptest::collection::vec((0usize..6_000, 1usize..40), 0..6),
            event_day in 10i64..55,
            hour in 6i64..20,
            adj_hours in 0i64..4,
            step_min in prop_oneof![Just(5i64), Just(15), Just(60)],
        ) {
            // Sixty days of data around the March DST change in CAISO's zone.
            let start = Utc.with_ymd_and_hms(2025, 2, 1, 8, 0, 0).unwrap();
            let step = TimeDelta::minutes(step_min);
            let n = (60 * 24 * 60 / step_min) as usize;
            let mut z = seed;
            let mut watts: Vec<f64> = (0..n)
                .map(|_| {
                    z = z.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    // Signed zeros and small values as well as loads.
                    match z >> 60 {
                        0 => -0.0,
                        1 => 0.0,
                        _ => ((z >> 11) as f64 / (1u64 << 53) as f64 - 0.2) * 1e6,
                    }
                })
                .collect();
            for (at, len) in gaps {
                for w in watts.iter_mut().skip(at * n / 6_000).take(len) {
                    *w = f64::NAN;
                }
            }
            let meter = Meter::from_watts(start, step, watts, MarketZone::Caiso).unwrap();
            let calendar = Calendar::new(MarketZone::Caiso);
            let event_start = start + TimeDelta::days(event_day) + TimeDelta::hours(hour);
            let event = Interval::new(event_start, event_start + TimeDelta::hours(2)).unwrap();
            let adj = Adjustment {
                kind: if adj_hours == 0 { AdjustmentKind::None } else { AdjustmentKind::Additive },
                window: TimeDelta::hours(adj_hours),
                gap: TimeDelta::hours(i64::from(adj_hours > 0)),
                cap: None,
            };
            let Ok(frame) = frame(&meter, &calendar, event, &adj, None) else {
                return Ok(());
            };
            let days: Vec<(usize, LocalDay)> = (1..=event_day as u64)
                .filter_map(|back| frame.date.checked_sub_days(Days::new(back)))
                .filter_map(|d| meter.day(d).copied())
                .enumerate()
                .collect();
            for chunk in days.chunks(BATCH) {
                let mut out = [Eval::NoData; BATCH];
                evaluate_batch(&meter, meter.column(), &frame, chunk, &mut out[..chunk.len()]);
                for ((_, d), got) in chunk.iter().zip(out) {
                    let want = evaluate_raw(&meter, meter.column(), &frame, d);
                    prop_assert!(same(got, want), "{:?}: batch {got:?}, alone {want:?}", d);
                }
            }
        }
    }
}
