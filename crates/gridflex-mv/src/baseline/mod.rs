//! Customer baselines: the day-matching engine, the day-of adjustments and the named
//! market methods built on them.
//!
//! A [`Baseline`] is a [`Method`] name plus its [`BaselineRule`] (all parameters
//! visible and editable), a [`GapPolicy`] and the program's [`SettlementRule`].
//! The named constructors ([`Baseline::caiso_10in10`], [`Baseline::pjm_cbl`], ...) give
//! each market's rule with the defaults of markets.md; [`Baseline::compute`] runs it for
//! one event and returns a [`BaselineResult`] that says which days were used, why the
//! others were dropped, the raw and adjusted baseline per interval, and the adjustment.
//!
//! ```
//! use chrono::{NaiveDate, TimeDelta, TimeZone, Utc};
//! use gridflex_core::{Interval, IntervalSeries, MarketZone, Power};
//! use gridflex_mv::{Baseline, Calendar, Meter};
//!
//! // 20 days of hourly data at 400 kW, starting at local midnight (PDT = UTC-7).
//! let start = Utc.with_ymd_and_hms(2025, 7, 1, 7, 0, 0).unwrap();
//! let kw = Power::kilowatts(400.0)?;
//! let series = IntervalSeries::from_values(start, TimeDelta::hours(1), vec![kw; 20 * 24])?;
//! let meter = Meter::new(series, MarketZone::Caiso)?;
//! let calendar = Calendar::new(MarketZone::Caiso);
//! // Event 14:00-16:00 local on Monday 2025-07-14.
//! let t0 = Utc.with_ymd_and_hms(2025, 7, 14, 21, 0, 0).unwrap();
//! let event = Interval::new(t0, t0 + TimeDelta::hours(2))?;
//! let result = Baseline::caiso_10in10().compute(&meter, &calendar, event)?;
//! // The data holds only 8 non-holiday weekdays before the event (Tue 7/1 .. Fri 7/11
//! // without Friday 7/4, a holiday); 10-in-10 accepts a reduced count down to 5.
//! assert_eq!(result.selected_days.len(), 8);
//! assert!(!result.selected_days.contains(&NaiveDate::from_ymd_opt(2025, 7, 4).unwrap()));
//! assert_eq!(result.intervals[0].adjusted_baseline, kw);
//! # Ok::<(), gridflex_mv::MvError>(())
//! ```

mod adjust;
mod caiso;
mod ercot;
mod matching;
mod mbma;
mod nyiso;
mod pjm;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use gridflex_core::{Interval, Power};
use serde::{Deserialize, Serialize};

use crate::MvError;
use crate::calendar::{Calendar, DayType, DayTypes};
use crate::meter::{Column, GapPolicy, LANES, Lanes, Meter};
use crate::reduction::SettlementRule;

pub use adjust::{Adjustment, AdjustmentKind, AdjustmentValue, AppliedAdjustment};
use matching::Frame;
pub(crate) use matching::{
    CalendarDays, Eval, EventDay, Kept, LaneBuffers, Selected, Totals, Work,
};

/// The named baseline methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Method {
    /// CAISO day matching 10-in-10 (weekday) / 4-in-4 (weekend or holiday) with the
    /// multiplicative load-point adjustment (markets.md §a).
    #[serde(rename = "caiso-10in10")]
    Caiso10in10,
    /// CAISO residential 5-in-10: the highest 5 of the 10 most recent eligible days
    /// (markets.md §a).
    #[serde(rename = "caiso-5in10")]
    Caiso5in10,
    /// PJM Customer Baseline Load: High 4 of 5 weekdays, High 2 of 3 Saturdays or
    /// Sundays/holidays, with the Symmetric Additive Adjustment (markets.md §b).
    PjmCbl,
    /// PJM Same Day (3+2): the event day's own load before and after the event
    /// (markets.md §b).
    PjmSameDay,
    /// NYISO Average Day CBL: highest 5 of 10 weekdays, 2 of 3 like weekend days,
    /// in-day multiplicative adjustment bounded 0.8-1.2 (markets.md §c).
    NyisoCbl,
    /// ERCOT middle 8 of 10 preceding like days (markets.md §c).
    #[serde(rename = "ercot-m8of10")]
    ErcotMiddle8of10,
    /// Meter Before / Meter After: the interval before the instruction against each
    /// event interval (markets.md §a, MBMA).
    Mbma,
    /// A rule assembled by the caller.
    Custom,
}

impl Method {
    /// The kebab-case name used by the `mv` tool and in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Method::Caiso10in10 => "caiso-10in10",
            Method::Caiso5in10 => "caiso-5in10",
            Method::PjmCbl => "pjm-cbl",
            Method::PjmSameDay => "pjm-same-day",
            Method::NyisoCbl => "nyiso-cbl",
            Method::ErcotMiddle8of10 => "ercot-m8of10",
            Method::Mbma => "mbma",
            Method::Custom => "custom",
        }
    }

    /// Every named method with its default rule.
    pub const ALL: [Method; 7] = [
        Method::Caiso10in10,
        Method::Caiso5in10,
        Method::PjmCbl,
        Method::PjmSameDay,
        Method::NyisoCbl,
        Method::ErcotMiddle8of10,
        Method::Mbma,
    ];

    /// The method's default baseline ([`Method::Custom`] gives an unadjusted
    /// 10-day average of like days, a starting point to edit).
    pub fn baseline(self) -> Baseline {
        match self {
            Method::Caiso10in10 => Baseline::caiso_10in10(),
            Method::Caiso5in10 => Baseline::caiso_5in10(),
            Method::PjmCbl => Baseline::pjm_cbl(),
            Method::PjmSameDay => Baseline::pjm_same_day(),
            Method::NyisoCbl => Baseline::nyiso_cbl(),
            Method::ErcotMiddle8of10 => Baseline::ercot_middle_8_of_10(),
            Method::Mbma => Baseline::meter_before_meter_after(),
            Method::Custom => {
                let avg = DayMatching {
                    pool: DayTypes::WEEKDAYS,
                    count: 10,
                    select: Selection::All,
                    lookback_days: 45,
                    min_days: 1,
                    low_usage_threshold: None,
                    low_usage_reference: LowUsageReference::InitialWindow,
                };
                let weekend = DayMatching {
                    pool: DayTypes::WEEKEND_AND_HOLIDAYS,
                    ..avg
                };
                Baseline {
                    method: Method::Custom,
                    rule: BaselineRule::DayMatching {
                        days: DayRules {
                            weekday: avg,
                            saturday: weekend,
                            sunday_holiday: weekend,
                        },
                        adjustment: Adjustment::none(),
                    },
                    gap_policy: GapPolicy::Error,
                    settlement: SettlementRule::Net,
                }
            }
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Method {
    type Err = MvError;
    fn from_str(s: &str) -> Result<Self, MvError> {
        Method::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| MvError::InvalidParameter {
                name: "method",
                value: s.to_owned(),
                reason: "expected caiso-10in10, caiso-5in10, pjm-cbl, pjm-same-day, nyiso-cbl, ercot-m8of10 or mbma",
            })
    }
}

/// Which of the candidate days a day-matching rule keeps, ranked by their average load
/// over the event window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Selection {
    /// Every candidate day (a plain average, as CAISO 10-in-10).
    All,
    /// The `k` days with the highest event-window load (PJM High 4 of 5).
    Highest(usize),
    /// Drops the highest and lowest days (ERCOT middle 8 of 10 drops one of each).
    Middle {
        /// Days dropped from the top.
        drop_highest: usize,
        /// Days dropped from the bottom.
        drop_lowest: usize,
    },
}

/// One day-matching rule: the pool of like days, how many, and which to keep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DayMatching {
    /// The day types eligible as baseline days.
    pub pool: DayTypes,
    /// How many of the most recent eligible days form the window (N).
    pub count: usize,
    /// Which of the window days the baseline averages.
    pub select: Selection,
    /// How far back to search, in calendar days ending the day before the event.
    pub lookback_days: u32,
    /// The fewest window days accepted when the lookback holds fewer than `count`.
    pub min_days: usize,
    /// Low-usage exclusion: a window day whose event-window average is below this
    /// fraction of the window days' average is dropped and replaced by the next older
    /// eligible day (PJM and NYISO: 0.25).
    pub low_usage_threshold: Option<f64>,
    /// Which average the low-usage test compares each day with.
    #[serde(default)]
    pub low_usage_reference: LowUsageReference,
}

/// The average a low-usage test compares a day with, once low days have been replaced.
///
/// PJM M11 §10.3 and OA Schedule 1 §3.3A.2.1 (`[K]`: the wording not re-checked against
/// the current text; markets.md §b) define a low-usage day as one whose event-period
/// average is below 25 % of the average event-period usage of the CBL basis window of
/// five days, and replace it with the next older eligible day. The reading taken as the
/// default is that the five days are the window as first formed, so replacement days are
/// tested against that same average ([`LowUsageReference::InitialWindow`]); the other
/// reading recomputes the average over the window with its replacements after each round
/// ([`LowUsageReference::Refreshed`]). The two can give different baselines (one case
/// moved from 79.0 to 97.5 kW), so the choice is a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LowUsageReference {
    /// The average of the window as first formed, before any day is replaced (default).
    #[default]
    InitialWindow,
    /// The average of the current window, recomputed after each replacement.
    Refreshed,
}

impl DayMatching {
    fn validate(&self) -> Result<(), MvError> {
        let bad = |name: &'static str, value: String, reason: &'static str| {
            Err(MvError::InvalidParameter {
                name,
                value,
                reason,
            })
        };
        if self.count == 0 {
            return bad("count", "0".into(), "must be at least 1");
        }
        if self.min_days == 0 || self.min_days > self.count {
            return bad(
                "min_days",
                self.min_days.to_string(),
                "must be between 1 and count",
            );
        }
        if self.lookback_days == 0 {
            return bad("lookback_days", "0".into(), "must be at least 1");
        }
        match self.select {
            Selection::Highest(k) if k == 0 || k > self.count => {
                return bad(
                    "select.highest",
                    k.to_string(),
                    "must be between 1 and count",
                );
            }
            Selection::Middle {
                drop_highest,
                drop_lowest,
            } if drop_highest + drop_lowest >= self.count => {
                return bad(
                    "select.middle",
                    format!("{drop_highest}+{drop_lowest}"),
                    "must leave at least one day",
                );
            }
            _ => {}
        }
        match self.low_usage_threshold {
            Some(t) if !(0.0..1.0).contains(&t) => {
                bad("low_usage_threshold", t.to_string(), "must be in [0, 1)")
            }
            _ => Ok(()),
        }
    }
}

/// The day-matching rule for each event day type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DayRules {
    /// For events on a non-holiday weekday.
    pub weekday: DayMatching,
    /// For events on a Saturday.
    pub saturday: DayMatching,
    /// For events on a Sunday or holiday.
    pub sunday_holiday: DayMatching,
}

impl DayRules {
    /// `weekday` for weekday events, and for weekend and holiday events the High 2 of 3
    /// most recent like days (Saturdays; Sundays and holidays) with the weekday rule's
    /// other settings, as both PJM's CBL and NYISO's CBL define them.
    pub fn with_high_2_of_3_weekends(weekday: DayMatching) -> Self {
        let saturday = DayMatching {
            pool: DayTypes::SATURDAYS,
            count: 3,
            select: Selection::Highest(2),
            min_days: 3,
            ..weekday
        };
        let sunday_holiday = DayMatching {
            pool: DayTypes::SUNDAYS_AND_HOLIDAYS,
            ..saturday
        };
        Self {
            weekday,
            saturday,
            sunday_holiday,
        }
    }

    /// The rule for an event on a day of type `t`.
    pub const fn for_day(&self, t: DayType) -> &DayMatching {
        match t {
            DayType::Weekday => &self.weekday,
            DayType::Saturday => &self.saturday,
            DayType::Sunday | DayType::Holiday => &self.sunday_holiday,
        }
    }
}

/// How a baseline is formed.
// The day-matching variant holds three day rules inline (a few hundred bytes); boxing
// them would cost `Baseline` its `Copy`, which callers use to share a method cheaply.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BaselineRule {
    /// Average of matched prior days, then a day-of adjustment.
    DayMatching {
        /// The day rules by event day type.
        days: DayRules,
        /// The day-of adjustment.
        adjustment: Adjustment,
    },
    /// The event day's own load around the event (PJM Same Day 3+2): the mean of the
    /// `before` hours ending `before_gap` before the event and the `after` hours
    /// starting `after_gap` after it, as one flat baseline.
    SameDay {
        /// Length of the pre-event window (default 3 h).
        before: TimeDelta,
        /// Gap between the pre-event window and the event (default 1 h).
        before_gap: TimeDelta,
        /// Length of the post-event window (default 2 h).
        after: TimeDelta,
        /// Gap between the event and the post-event window (default 1 h).
        after_gap: TimeDelta,
    },
    /// Meter Before / Meter After: the load of the last full interval before the
    /// instruction is the baseline of every event interval.
    MeterBefore {
        /// The dispatch instruction time; `None` means the event start.
        instruction: Option<chrono::DateTime<chrono::Utc>>,
    },
}

/// A complete baseline method: rule, gap policy and settlement rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The method's name.
    pub method: Method,
    /// How the baseline is formed.
    pub rule: BaselineRule,
    /// What to do with missing values on candidate days.
    pub gap_policy: GapPolicy,
    /// How negative interval reductions settle.
    pub settlement: SettlementRule,
}

impl Baseline {
    /// Replaces the day-of adjustment (no effect on Same Day and MBMA, which have none).
    pub fn with_adjustment(mut self, adjustment: Adjustment) -> Self {
        if let BaselineRule::DayMatching { adjustment: a, .. } = &mut self.rule {
            *a = adjustment;
        }
        self
    }

    /// Replaces the gap policy.
    pub fn with_gap_policy(mut self, gap_policy: GapPolicy) -> Self {
        self.gap_policy = gap_policy;
        self
    }

    /// The day-of adjustment, if the rule has one.
    pub fn adjustment(&self) -> Option<&Adjustment> {
        match &self.rule {
            BaselineRule::DayMatching { adjustment, .. } => Some(adjustment),
            _ => None,
        }
    }

    /// Computes the baseline of one event window for one meter.
    ///
    /// The event must lie on the meter's interval grid, inside one local day, and the
    /// meter must hold the event day's load (and the adjustment window's). The calendar
    /// must be for the meter's market zone. Baseline
    /// days come from the data before the event; the calendar says which days are
    /// holidays and which are excluded event days.
    pub fn compute(
        &self,
        meter: &Meter,
        calendar: &Calendar,
        event: Interval,
    ) -> Result<BaselineResult, MvError> {
        self.compute_notified(meter, calendar, event, None)
    }

    /// [`Baseline::compute`] for an event whose dispatch was notified at `notified`.
    ///
    /// A day-of adjustment window ends `gap` before the earlier of the event start and
    /// the notification (the notification taken at the start of its meter interval), so
    /// that load the site already changed on notice does not enter the adjustment: PJM's
    /// Symmetric Additive Adjustment uses the 3 hours ending 1 hour before the event
    /// start or, when the resource was notified earlier, before the notification (M11
    /// §10.3, `[K]`: not re-checked against the current text; ERCOT's event-day
    /// adjustment likewise ends before dispatch notification, markets.md §c `[K]`). A
    /// notification at or after the event start changes nothing. Methods without an
    /// adjustment ignore it.
    pub fn compute_notified(
        &self,
        meter: &Meter,
        calendar: &Calendar,
        event: Interval,
        notified: Option<DateTime<Utc>>,
    ) -> Result<BaselineResult, MvError> {
        same_zone(meter, calendar)?;
        match &self.rule {
            BaselineRule::DayMatching { days, adjustment } => {
                matching::compute(self, days, adjustment, meter, calendar, event, notified)
            }
            BaselineRule::SameDay { .. } | BaselineRule::MeterBefore { .. } => {
                let (frame, level) = self.flat_level(meter, meter.column(), calendar, event)?;
                matching::flat_result(self, meter, &frame, event, level)
            }
        }
    }

    /// The located event and the one level of a flat rule (Same Day, Meter Before /
    /// Meter After) in watts; day matching has none (an unsupported-rule error).
    fn flat_level<C: Column>(
        &self,
        meter: &Meter,
        values: C,
        calendar: &Calendar,
        event: Interval,
    ) -> Result<(Frame, f64), MvError> {
        match &self.rule {
            BaselineRule::SameDay {
                before,
                before_gap,
                after,
                after_gap,
            } => matching::same_day_level(
                meter,
                values,
                calendar,
                event,
                [*before, *before_gap, *after, *after_gap],
            ),
            BaselineRule::MeterBefore { instruction } => {
                mbma::level(meter, values, calendar, event, *instruction)
            }
            BaselineRule::DayMatching { .. } => Err(MvError::InvalidParameter {
                name: "rule",
                value: "day matching".into(),
                reason: "has no single level",
            }),
        }
    }
}

fn same_zone(meter: &Meter, calendar: &Calendar) -> Result<(), MvError> {
    if calendar.zone() != meter.zone() {
        return Err(MvError::InvalidParameter {
            name: "calendar zone",
            value: calendar.zone().to_string(),
            reason: "must be the meter's market zone",
        });
    }
    Ok(())
}

/// What a fleet settlement keeps from one method to the next on one meter and event:
/// the located event per adjustment window, each candidate day's values read once, and
/// the buffers of a run.
#[derive(Default)]
pub(crate) struct EventWork {
    frames: Vec<Located>,
    work: Work,
}

/// The event located for one adjustment window (length, gap; `None` for none), and the
/// candidate days' values read on that frame so far.
type Located = (
    Option<(TimeDelta, TimeDelta)>,
    Result<Frame, MvError>,
    Vec<Option<Eval>>,
);

impl EventWork {
    /// Forgets the event (the buffers stay allocated).
    pub(crate) fn next_event(&mut self) {
        self.frames.clear();
    }

    /// The days the last [`Baseline::totals`] averaged, most recent first.
    pub(crate) fn selected_days(&self) -> &[NaiveDate] {
        &self.work.selected_days
    }
}

impl Baseline {
    /// The longest lookback of the rule's day rules (0 for rules without one).
    pub(crate) fn lookback_days(&self) -> u32 {
        match &self.rule {
            BaselineRule::DayMatching { days, .. } => days
                .weekday
                .lookback_days
                .max(days.saturday.lookback_days)
                .max(days.sunday_holiday.lookback_days),
            _ => 0,
        }
    }

    /// The settlement totals [`Baseline::compute`] and its reduction give, without the
    /// per-interval output, sharing with the other methods computed on the same
    /// `work` (one meter, one event) the located event and each day's values; the days
    /// used are left in `work`. `values` is the meter's column on `meter`'s index.
    pub(crate) fn totals<C: Column>(
        &self,
        meter: &Meter,
        values: C,
        calendar: &Calendar,
        event: Interval,
        shared_days: Option<&CalendarDays>,
        work: &mut EventWork,
    ) -> Result<Totals, MvError> {
        same_zone(meter, calendar)?;
        let BaselineRule::DayMatching { days, adjustment } = &self.rule else {
            return self.flat_totals(meter, values, calendar, event, &mut work.work);
        };
        adjustment.validate()?;
        let key = frame_key(adjustment);
        let slot = match work.frames.iter().position(|f| f.0 == key) {
            Some(i) => i,
            None => {
                let f = matching::frame(meter, calendar, event, adjustment, None);
                work.frames.push((key, f, Vec::new()));
                work.frames.len() - 1
            }
        };
        let (_, frame, evals) = &mut work.frames[slot];
        let frame = frame.as_ref().map_err(Clone::clone)?;
        let rule = days.for_day(frame.day_type);
        rule.validate()?;
        let on = matching::On {
            meter,
            values,
            calendar,
            days: shared_days,
            frame,
        };
        let applied = matching::select(
            (self.gap_policy, rule, adjustment),
            on,
            evals,
            &mut work.work,
        )?;
        matching::totals(
            meter,
            values,
            frame,
            &work.work.profile[frame.n_adj..],
            applied,
            self.settlement,
            event,
        )
    }

    /// [`Baseline::totals`] of a flat rule (Same Day, Meter Before / Meter After).
    fn flat_totals<C: Column>(
        &self,
        meter: &Meter,
        values: C,
        calendar: &Calendar,
        event: Interval,
        w: &mut Work,
    ) -> Result<Totals, MvError> {
        let (frame, level) = self.flat_level(meter, values, calendar, event)?;
        w.selected_days.clear();
        w.selected_days.push(frame.date);
        w.profile.clear();
        w.profile.resize(frame.n_event, level);
        matching::totals(
            meter,
            values,
            &frame,
            &w.profile,
            AppliedAdjustment::NONE,
            self.settlement,
            event,
        )
    }
}

/// One event located once for every meter on one index (a [`FleetGrid`]'s): each
/// baseline's located event, shared by the rules with the same adjustment window, or
/// the error every meter gets for it.
///
/// [`FleetGrid`]: crate::fleet::FleetGrid
pub(crate) struct EventPlan {
    frames: Vec<Frame>,
    plans: Vec<Plan>,
    /// Per baseline, the first window of its day-matching rule on its located event
    /// (`None` for a baseline that is not matched on a frame).
    first: Vec<Option<matching::FirstDays>>,
}

/// What a baseline does with a located event.
enum Plan {
    /// Day matching on `frames[i]`.
    Matched(usize),
    /// A flat rule, located per meter.
    Flat,
    /// The error of every meter.
    Failed(MvError),
}

impl EventPlan {
    /// Locates `event` on `meter`'s index for each of `baselines`, with the checks
    /// [`Baseline::totals`] makes first, in its order, and finds each day-matching
    /// rule's first window (`days`: the calendar facts of the event's lookback).
    pub(crate) fn new(
        meter: &Meter,
        calendar: &Calendar,
        days: Option<&CalendarDays>,
        event: Interval,
        baselines: &[Baseline],
    ) -> Self {
        let mut frames = Vec::new();
        let mut keys = Vec::new();
        let plans = baselines
            .iter()
            .map(|b| {
                if let Err(e) = same_zone(meter, calendar) {
                    return Plan::Failed(e);
                }
                let BaselineRule::DayMatching { adjustment, .. } = &b.rule else {
                    return Plan::Flat;
                };
                if let Err(e) = adjustment.validate() {
                    return Plan::Failed(e);
                }
                let key = frame_key(adjustment);
                if let Some(i) = keys.iter().position(|k| *k == key) {
                    return Plan::Matched(i);
                }
                match matching::frame(meter, calendar, event, adjustment, None) {
                    Ok(f) => {
                        frames.push(f);
                        keys.push(key);
                        Plan::Matched(frames.len() - 1)
                    }
                    Err(e) => Plan::Failed(e),
                }
            })
            .collect::<Vec<_>>();
        let first = baselines
            .iter()
            .zip(&plans)
            .map(|(b, plan)| match (plan, &b.rule) {
                (Plan::Matched(f), BaselineRule::DayMatching { days: rules, .. }) => {
                    let frame = frames.get(*f)?;
                    let rule = rules.for_day(frame.day_type);
                    rule.validate().ok()?;
                    Some(matching::FirstDays::new(meter, calendar, days, frame, rule))
                }
                _ => None,
            })
            .collect();
        Self {
            frames,
            plans,
            first,
        }
    }

    /// How many located events (one per adjustment window) the plan holds: the number
    /// of candidate-day caches each meter needs.
    pub(crate) fn frames(&self) -> usize {
        self.frames.len()
    }

    /// Reads, for each lane of one block (`rows`, on the plan's index `meter`), the
    /// first candidate days each day-matching rule reaches, into `evals[lane][frame]`.
    pub(crate) fn prefill(
        &self,
        rows: &[f64],
        evals: &mut [Vec<Vec<Option<Eval>>>; LANES],
        buf: &mut matching::LaneBuffers,
    ) {
        let mut lanes: [Vec<Option<Eval>>; LANES] = Default::default();
        if evals.iter().any(|e| e.len() < self.frames.len()) {
            return; // caches made for another plan: each scan reads its own days
        }
        for (f, frame) in self.frames.iter().enumerate() {
            for (lane, e) in lanes.iter_mut().zip(evals.iter_mut()) {
                std::mem::swap(lane, &mut e[f]);
            }
            for (plan, first) in self.plans.iter().zip(&self.first) {
                if let (Plan::Matched(i), Some(first)) = (plan, first)
                    && *i == f
                {
                    matching::prefill(rows, first, frame, &mut lanes, buf);
                }
            }
            for (lane, e) in lanes.iter_mut().zip(evals.iter_mut()) {
                std::mem::swap(lane, &mut e[f]);
            }
        }
    }

    /// Each located event's [`matching::EventDay`] for every lane of one block (`rows`,
    /// whose meters' interval is `step`), [`matching::lane_event_day`], for
    /// [`EventPlan::block_totals`], into `days` (one per located event).
    pub(crate) fn event_days(
        &self,
        rows: &[f64],
        step: TimeDelta,
        days: &mut Vec<matching::EventDay>,
    ) {
        days.clear();
        days.extend(
            self.frames
                .iter()
                .map(|f| matching::lane_event_day(rows, f, step)),
        );
    }

    /// [`Baseline::totals`] of `baselines[b]` (`baseline`) for the first `lanes`
    /// meters of one block (`rows`, on the plan's index `meter`), handed to `out` with
    /// the lane and its selected days, each lane's days left in `works[l]`; `evals[l]`
    /// holds lane `l`'s candidate-day caches (one per located event), `event_days` the
    /// [`EventPlan::event_days`] of the block. A day-matching rule chooses each lane's
    /// days, averages them for the lanes together ([`matching::average_lanes`]), then
    /// adjusts and totals each lane.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn block_totals(
        &self,
        b: usize,
        baseline: &Baseline,
        meter: &Meter,
        (rows, lanes): (&[f64], usize),
        calendar: &Calendar,
        event: Interval,
        days: Option<&CalendarDays>,
        evals: &mut [Vec<Vec<Option<Eval>>>; LANES],
        works: &mut [Work; LANES],
        buf: &mut matching::LaneBuffers,
        event_days: &[matching::EventDay],
        out: &mut impl FnMut(usize, Result<Totals, MvError>, Selected<'_>),
    ) {
        let lanes = lanes.min(LANES);
        let lane = |l: usize| Lanes { rows, lane: l };
        let matched = match (self.plans.get(b), &baseline.rule) {
            (Some(Plan::Failed(e)), _) => {
                for (l, w) in works.iter().enumerate().take(lanes) {
                    out(l, Err(e.clone()), Selected::Days(&w.selected_days));
                }
                return;
            }
            (
                Some(Plan::Matched(f)),
                BaselineRule::DayMatching {
                    days: rules,
                    adjustment,
                },
            ) => self
                .frames
                .get(*f)
                .map(|frame| (*f, frame, rules, adjustment)),
            _ => None,
        };
        let Some((f, frame, rules, adjustment)) = matched else {
            // A flat rule (or a plan made for other baselines): each lane on its own.
            for (l, w) in works.iter_mut().enumerate().take(lanes) {
                let mut own = EventWork::default();
                std::mem::swap(w, &mut own.work);
                let totals = baseline.totals(meter, lane(l), calendar, event, days, &mut own);
                std::mem::swap(w, &mut own.work);
                out(l, totals, Selected::Days(&w.selected_days));
            }
            return;
        };
        let rule = rules.for_day(frame.day_type);
        if let Err(e) = rule.validate() {
            for (l, w) in works.iter().enumerate().take(lanes) {
                out(l, Err(e.clone()), Selected::Days(&w.selected_days));
            }
            return;
        }
        let on = |l: usize| matching::On {
            meter,
            values: lane(l),
            calendar,
            days,
            frame,
        };
        let first = self.first.get(b).and_then(Option::as_ref);
        // Lane `l`'s cached candidate days of the frame.
        fn cache(evals: &[Vec<Vec<Option<Eval>>>; LANES], l: usize, f: usize) -> &[Option<Eval>] {
            evals[l].get(f).map_or(&[][..], Vec::as_slice)
        }
        // The lanes that take the rule's first window as it is, with the days each
        // keeps; each other lane's choice.
        let firsts = match first {
            Some(first) => {
                let caches = std::array::from_fn(|l| cache(evals, l, f));
                matching::choose_first_lanes(rule, first, caches, lanes, works)
            }
            None => [None; LANES],
        };
        // An error boxed, so that the lanes' arrays stay small (errors are rare).
        let mut picked: [Option<Result<(), Box<MvError>>>; LANES] = std::array::from_fn(|l| {
            let (w, e) = (works.get_mut(l).filter(|_| l < lanes)?, &mut evals[l]);
            if firsts[l].is_some() {
                return Some(Ok(()));
            }
            let cache = match e.get_mut(f) {
                Some(c) => c,
                None => &mut Vec::new(),
            };
            Some(matching::choose(baseline.gap_policy, rule, on(l), cache, w).map_err(Box::new))
        });
        let chosen = picked.each_ref().map(|p| matches!(p, Some(Ok(()))));
        // A lane that took its first window as it is has its choice written out only
        // where a step reads it: the days of the lanes averaged when not every chosen
        // lane took its first window, and the one-lane average.
        let write_out = |l: usize, works: &mut [Work; LANES]| {
            if let (Some(first), Some(kept)) = (first, firsts[l]) {
                matching::first_kept(first, cache(evals, l, f), kept, &mut works[l]);
            }
        };
        if (0..LANES).any(|l| chosen[l] && firsts[l].is_none()) {
            for l in 0..LANES {
                write_out(l, works);
            }
        }
        let averaged =
            matching::average_lanes(meter, rows, frame, works, (chosen, first, firsts), buf);
        let event_day = event_days.get(f).unwrap_or(&matching::EventDay::NONE);
        let actual = event_day.means;
        // Each lane's adjustment, then the lanes' totals side by side; a lane the
        // side-by-side totals leave out gets its own (and its error). A lane averaged
        // with the others has its profile in `sums`, the others in their `works`.
        let sums = &mut buf.sums;
        // The averaged lanes' profile sums over the adjustment window, side by side,
        // each in order from the identity `Iterator::sum` starts with.
        let zero = std::iter::empty::<f64>().sum::<f64>();
        let base_sums = matching::column_sums(sums.get(..frame.n_adj).unwrap_or(sums), zero);
        let applied: [Option<Result<AppliedAdjustment, Box<MvError>>>; LANES] =
            std::array::from_fn(|l| {
                Some(picked[l].take()?.and_then(|()| {
                    if !averaged[l] {
                        write_out(l, works);
                        matching::average(on(l), &mut works[l]);
                    }
                    let w = &works[l];
                    let base_sum = || {
                        if averaged[l] {
                            base_sums[l]
                        } else {
                            w.profile.iter().take(frame.n_adj).sum::<f64>()
                        }
                    };
                    matching::adjust(adjustment, on(l), base_sum, actual[l]).map_err(Box::new)
                }))
            });
        let ready = applied.each_ref().map(|a| matches!(a, Some(Ok(_))));
        let values = applied.each_ref().map(|a| match a {
            Some(Ok(a)) => *a,
            _ => AppliedAdjustment::NONE,
        });
        // The lanes' profiles side by side: `sums` holds those `average_lanes` made.
        sums.resize(frame.n_adj + frame.n_event, [0.0; LANES]);
        for (l, w) in works.iter().enumerate() {
            if ready[l] && !averaged[l] {
                for (s, p) in sums.iter_mut().zip(&w.profile) {
                    s[l] = *p;
                }
            }
        }
        let side_by_side = matching::totals_lanes(
            (rows, frame, event_day),
            (sums.get(frame.n_adj..).unwrap_or(&[]), values, ready),
            baseline.settlement,
            meter.step(),
            event,
        );
        for (l, (a, t)) in applied.into_iter().zip(side_by_side).enumerate() {
            let Some(a) = a else {
                continue;
            };
            let w = &mut works[l];
            let totals = match (a, t) {
                (Ok(_), Some(t)) => Ok(t),
                (Ok(a), None) => {
                    if averaged[l] {
                        w.profile.clear();
                        w.profile.extend(sums.iter().map(|s| s[l]));
                    }
                    matching::totals(
                        meter,
                        lane(l),
                        frame,
                        w.profile.get(frame.n_adj..).unwrap_or(&[]),
                        a,
                        baseline.settlement,
                        event,
                    )
                }
                (Err(e), _) => Err(*e),
            };
            let selected = match (first, firsts[l]) {
                (Some(first), Some(kept)) => Selected::First(first, kept),
                _ => Selected::Days(&w.selected_days),
            };
            out(l, totals, selected);
        }
    }
}

/// What locates an event for a day-matching rule: its adjustment window's length and
/// gap (`None` without an adjustment). Rules with the same key share the located event
/// and the candidate days' values.
pub(crate) fn frame_key(adjustment: &Adjustment) -> Option<(TimeDelta, TimeDelta)> {
    (adjustment.kind != AdjustmentKind::None).then_some((adjustment.window, adjustment.gap))
}

/// Why a day examined in the lookback is not a baseline day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
#[non_exhaustive]
pub enum DropReason {
    /// Its day type is not in the rule's pool (for example a weekend day or holiday for
    /// a weekday event).
    NotInPool,
    /// A prior event day (or other excluded day) of the calendar.
    EventDay,
    /// The meter data does not reach this day's needed intervals (or, on a
    /// daylight-saving day, the needed clock times do not exist).
    NoData,
    /// A needed value is missing (gap policy [`GapPolicy::SkipDay`]).
    MissingData {
        /// The interval without a value.
        interval: Interval,
    },
    /// Its event-window average was below the low-usage threshold.
    LowUsage {
        /// Its event-window average divided by the window days' average.
        ratio: f64,
    },
    /// In the window but not among the days kept by the selection.
    NotSelected {
        /// Its rank by event-window load, 1 = highest.
        rank: usize,
    },
}

/// What happened to a day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayOutcome {
    /// Used in the baseline.
    Selected,
    /// Left out, and why.
    Dropped(DropReason),
}

/// One day the method examined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DayDecision {
    /// The local date.
    pub date: NaiveDate,
    /// Its day type.
    pub day_type: DayType,
    /// Its average load over the event window's clock times, when it was measured.
    pub event_window_load: Option<Power>,
    /// Used or dropped.
    pub outcome: DayOutcome,
}

/// The baseline of one event interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BaselineInterval {
    /// The interval.
    pub interval: Interval,
    /// The baseline before the day-of adjustment.
    pub baseline: Power,
    /// The baseline after the adjustment.
    pub adjusted_baseline: Power,
    /// The metered load.
    pub actual: Power,
}

/// The outcome of [`Baseline::compute`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineResult {
    /// The method.
    pub method: Method,
    /// The event window.
    pub event: Interval,
    /// The event's local date.
    pub event_day: NaiveDate,
    /// The event day's type.
    pub day_type: DayType,
    /// The days averaged, most recent first.
    pub selected_days: Vec<NaiveDate>,
    /// Every day examined, most recent first, with what happened to it.
    pub days: Vec<DayDecision>,
    /// The day-of adjustment applied.
    pub adjustment: AppliedAdjustment,
    /// Baseline, adjusted baseline and load for each event interval.
    pub intervals: Vec<BaselineInterval>,
    /// How negative interval reductions settle under this method.
    pub settlement: SettlementRule,
}
