//! Per-event M&V reports, computed with `gridflex-mv` from what the orchestrator
//! recorded: the facility meter (interval means of telemetry), high-rate samples around
//! the instruction, regulation signal and response, and prices seen.

use std::collections::VecDeque;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use gridflex_core::{Energy, Interval, IntervalSeries, MarketZone, Money, Power, Price};
use gridflex_mv::baseline::{AppliedAdjustment, BaselineInterval, BaselineResult, Method};
use gridflex_mv::regulation::{RegulationConfig, regulation_score};
use gridflex_mv::response::{ResponseConfig, Sample, response_time};
use gridflex_mv::settlement::{PaymentRule, energy_credits};
use gridflex_mv::{Baseline, Calendar, Meter, MvError};
use serde::{Deserialize, Serialize};

use crate::GridflexError;
use crate::program::{Cause, Settlement};

/// The measured outcome of one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventReport {
    /// The event.
    pub event_id: u64,
    /// Why it happened.
    pub cause: Cause,
    /// The curtailment window.
    pub window: Interval,
    /// The facility power the plan aimed for.
    pub target: Power,
    /// The plan's predicted facility power once settled.
    pub predicted: Power,
    /// The plan's shortfall, when the target was out of reach within service levels.
    pub shortfall: Option<Power>,
    /// Baseline and delivered reduction (curtailment events).
    pub delivery: Option<Delivery>,
    /// Time to 50 % and 90 % of the step, from high-rate samples.
    pub response: Option<Response>,
    /// Regulation performance (regulation events).
    pub regulation: Option<RegulationReport>,
    /// Parts of the report that could not be computed, with the reason.
    pub not_computed: Vec<String>,
}

/// Baseline and delivered reduction of an event, settled with the program's method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The baseline method used (in JSON its kebab-case name, for example
    /// `caiso-10in10` or `mbma`).
    pub method: gridflex_mv::baseline::Method,
    /// Set when the program's method could not be used on the history held (too few
    /// like days, or data not reaching back far enough) and MBMA stood in.
    #[serde(default)]
    pub fallback: Option<Fallback>,
    /// The baseline days averaged, most recent first (empty for MBMA and Same Day).
    #[serde(default)]
    pub selected_days: Vec<NaiveDate>,
    /// The day-of adjustment applied, for day-matching methods.
    #[serde(default)]
    pub adjustment: Option<AppliedAdjustment>,
    /// When the site was notified (the dispatch's arrival): a day-of adjustment window
    /// ends before it.
    #[serde(default)]
    pub notified: Option<DateTime<Utc>>,
    /// Mean (adjusted) baseline over the event.
    pub baseline: Power,
    /// Mean metered power over the event.
    pub actual: Power,
    /// Mean settled reduction.
    pub delivered: Power,
    /// Settled reduction energy.
    pub energy: Energy,
    /// Energy credit at the event's LMP, when a price was known.
    pub credit: Option<Money>,
    /// Per meter interval: baseline, adjusted baseline and metered load.
    #[serde(default)]
    pub intervals: Vec<BaselineInterval>,
}

/// Why the program's baseline method was not used for an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fallback {
    /// The program's method.
    pub program_method: gridflex_mv::baseline::Method,
    /// Why it could not be computed (for example `too few baseline days: 2 of 5`).
    pub reason: String,
}

/// Response time of an event's first stage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Facility power before the instruction.
    pub from: Power,
    /// Facility power after the response settled.
    pub to: Power,
    /// Time to 50 % of the step (interpolated; JSON `t50_s`, seconds).
    #[serde(rename = "t50_s", with = "gridflex_core::duration_s::delta")]
    pub t50: TimeDelta,
    /// Time to 90 % of the step (interpolated; JSON `t90_s`, seconds).
    #[serde(rename = "t90_s", with = "gridflex_core::duration_s::delta")]
    pub t90: TimeDelta,
    /// Sample spacing, the resolution of the figures (JSON `sample_period_s`, seconds).
    #[serde(rename = "sample_period_s", with = "gridflex_core::duration_s::delta")]
    pub sample_period: TimeDelta,
}

/// Regulation performance of a regulation period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegulationReport {
    /// Accuracy score.
    pub accuracy: f64,
    /// Delay score.
    pub delay: f64,
    /// Precision score.
    pub precision: f64,
    /// Composite performance score.
    pub composite: f64,
    /// Signal mileage.
    pub mileage: f64,
    /// Credits at the configured clearing prices, when given.
    pub credit: Option<Money>,
}

/// The facility meter: means of sampled facility power per interval, the newest
/// `keep` intervals (older ones are dropped, so a long-running service holds a bounded
/// history; the store keeps the rest).
#[derive(Debug, Clone)]
pub(crate) struct MeterRecorder {
    step: TimeDelta,
    keep: usize,
    start: Option<DateTime<Utc>>,
    sums: VecDeque<(f64, u32)>,
}

impl MeterRecorder {
    pub(crate) fn new(step: TimeDelta, keep: usize) -> Self {
        Self {
            step,
            keep: keep.max(1),
            start: None,
            sums: VecDeque::new(),
        }
    }

    fn step_ns(&self) -> i64 {
        self.step.num_nanoseconds().unwrap_or(i64::MAX).max(1)
    }

    /// Starts from earlier history (one value per interval, on this recorder's step).
    pub(crate) fn seed(&mut self, history: &IntervalSeries<Power>) {
        if history.step() != self.step || history.is_empty() {
            return;
        }
        self.start = Some(history.start());
        self.sums = history
            .values()
            .iter()
            .map(|v| v.map_or((0.0, 0), |p| (p.as_watts(), 1)))
            .collect();
        self.trim();
    }

    fn trim(&mut self) {
        if self.sums.len() > self.keep {
            let excess = self.sums.len() - self.keep;
            self.sums.drain(..excess);
            let shift = TimeDelta::nanoseconds(self.step_ns().saturating_mul(excess as i64));
            if let Some(s) = self.start.as_mut() {
                *s += shift;
            }
        }
    }

    /// Adds a sample. Returns the intervals this sample completed (those before its own
    /// that hold samples), as (interval, mean, samples), for the history store.
    pub(crate) fn record(
        &mut self,
        at: DateTime<Utc>,
        power: Power,
    ) -> Vec<(Interval, Power, u32)> {
        let step_ns = self.step_ns();
        let start = *self.start.get_or_insert_with(|| {
            let ns = at.timestamp_nanos_opt().unwrap_or(0);
            DateTime::from_timestamp_nanos(ns - ns.rem_euclid(step_ns))
        });
        let Some(offset) = (at - start).num_nanoseconds() else {
            return Vec::new();
        };
        let Ok(i) = usize::try_from(offset / step_ns) else {
            return Vec::new();
        };
        let mut done = Vec::new();
        if self.sums.len() <= i {
            // The last interval holding samples is complete once a later one begins.
            if let Some(last) = self.sums.len().checked_sub(1)
                && let Some((sum, n)) = self.sums.get(last).copied()
                && n > 0
            {
                let from = start + TimeDelta::nanoseconds(step_ns * last as i64);
                if let (Ok(iv), Ok(p)) = (
                    Interval::new(from, from + self.step),
                    Power::watts(sum / f64::from(n)),
                ) {
                    done.push((iv, p, n));
                }
            }
            self.sums.resize(i + 1, (0.0, 0));
        }
        if let Some(slot) = self.sums.get_mut(i) {
            slot.0 += power.as_watts();
            slot.1 += 1;
        }
        self.trim();
        done
    }

    /// The meter so far: one mean per interval, `None` where nothing was sampled.
    pub(crate) fn series(&self) -> Result<Option<IntervalSeries<Power>>, GridflexError> {
        let Some(start) = self.start else {
            return Ok(None);
        };
        let values = self
            .sums
            .iter()
            .map(|(sum, n)| {
                if *n == 0 {
                    Ok(None)
                } else {
                    Power::watts(sum / f64::from(*n)).map(Some)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(IntervalSeries::new(start, self.step, values)?))
    }
}

/// Inputs of one event's report.
pub(crate) struct ReportInput<'a> {
    pub(crate) event_id: u64,
    pub(crate) cause: Cause,
    pub(crate) window: Interval,
    pub(crate) target: Power,
    pub(crate) predicted: Power,
    pub(crate) shortfall: Option<Power>,
    pub(crate) zone: MarketZone,
    /// The obligation's own window (the report's `window` starts at the signal when
    /// the signal came first, as with a PJM lead time).
    pub(crate) event_window: Interval,
    /// When the site was notified (the signal's arrival).
    pub(crate) notified: DateTime<Utc>,
    /// The program's settlement; `None` settles with MBMA.
    pub(crate) settlement: Option<Settlement>,
    /// Earlier event windows (their days are not baseline days).
    pub(crate) event_windows: &'a [Interval],
    pub(crate) meter: Option<IntervalSeries<Power>>,
    pub(crate) capture: &'a [Sample<Power>],
    pub(crate) prices: &'a [(Interval, Price)],
    pub(crate) regulation: Option<RegulationInput<'a>>,
}

pub(crate) struct RegulationInput<'a> {
    pub(crate) signal: &'a [Sample<f64>],
    pub(crate) response: &'a [Sample<Power>],
    pub(crate) capability: Power,
    pub(crate) prices: Option<(Price, Price, f64)>,
}

pub(crate) fn build(input: ReportInput<'_>) -> EventReport {
    let mut not_computed = Vec::new();
    let mut report = EventReport {
        event_id: input.event_id,
        cause: input.cause.clone(),
        window: input.window,
        target: input.target,
        predicted: input.predicted,
        shortfall: input.shortfall,
        delivery: None,
        response: None,
        regulation: None,
        not_computed: Vec::new(),
    };
    if let Some(reg) = &input.regulation {
        match regulation(reg) {
            Ok(r) => report.regulation = Some(r),
            Err(e) => not_computed.push(format!("regulation score: {e}")),
        }
    } else {
        match delivery(&input, &mut not_computed) {
            Ok(d) => report.delivery = Some(d),
            Err(e) => not_computed.push(format!("delivered reduction: {e}")),
        }
        if input.capture.is_empty() {
            not_computed.push("response time: no high-rate samples were captured".into());
        } else {
            match response_time(
                input.capture,
                input.window.start(),
                &ResponseConfig::default(),
            ) {
                Ok(r) => {
                    report.response = Some(Response {
                        from: r.from,
                        to: r.to,
                        t50: r.t50.interpolated,
                        t90: r.t90.interpolated,
                        sample_period: r.sample_period,
                    })
                }
                Err(e) => not_computed.push(format!("response time: {e}")),
            }
        }
    }
    report.not_computed = not_computed;
    report
}

/// The delivered reduction on the recorded meter history.
fn delivery(
    input: &ReportInput<'_>,
    not_computed: &mut Vec<String>,
) -> Result<Delivery, GridflexError> {
    let meter = input
        .meter
        .clone()
        .ok_or_else(|| GridflexError::invalid("meter", "no telemetry was recorded"))?;
    let settled = settle(&SettlementInput {
        meter,
        zone: input.zone,
        settlement: input.settlement,
        event_windows: input.event_windows,
        window: input.window,
        event_window: input.event_window,
        notified: Some(input.notified),
        prices: input.prices,
    })?;
    not_computed.extend(settled.notes);
    Ok(settled.delivery)
}

/// What [`settle`] needs: the meter history and the event.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SettlementInput<'a> {
    /// The facility meter (history and event day), on one grid.
    pub meter: IntervalSeries<Power>,
    /// The market zone whose local days the baseline rules use.
    pub zone: MarketZone,
    /// The program's method; `None` settles with MBMA.
    pub settlement: Option<Settlement>,
    /// Windows of earlier events: their days are never baseline days.
    pub event_windows: &'a [Interval],
    /// The span MBMA measures over: from the instruction to the end of the event.
    pub window: Interval,
    /// The obligation's window, which day-matching methods settle.
    pub event_window: Interval,
    /// When the site was notified (a day-of adjustment window ends before it).
    pub notified: Option<DateTime<Utc>>,
    /// Prices seen, for the energy credit.
    pub prices: &'a [(Interval, Price)],
}

impl<'a> SettlementInput<'a> {
    /// An event settled with `settlement` on `meter`, no earlier events, no prices.
    pub fn new(
        meter: IntervalSeries<Power>,
        zone: MarketZone,
        settlement: Option<Settlement>,
        event_window: Interval,
    ) -> Self {
        Self {
            meter,
            zone,
            settlement,
            event_windows: &[],
            window: event_window,
            event_window,
            notified: None,
            prices: &[],
        }
    }
}

/// The outcome of [`settle`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Settled {
    /// The delivered reduction.
    pub delivery: Delivery,
    /// Parts that could not be computed (an energy credit without prices), with why.
    pub notes: Vec<String>,
}

/// The calendar an event settles with: the zone's holidays, and the local days of
/// `event_windows` excluded as baseline days.
pub fn settlement_calendar(zone: MarketZone, event_windows: &[Interval]) -> Calendar {
    let mut calendar = Calendar::new(zone);
    calendar.add_event_days(event_windows.iter().flat_map(|w| {
        let first = zone.operating_date(w.start());
        let last = zone.operating_date(w.end() - TimeDelta::nanoseconds(1));
        first.iter_days().take_while(move |d| *d <= last)
    }));
    calendar
}

/// Settles one event: the program's baseline on the meter history, or MBMA (saying
/// why) when the history cannot give the program's method.
///
/// This is what every event report does; it is public so that a settlement can be
/// recomputed from stored history, and so that its cost can be measured.
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex::core::{Interval, IntervalSeries, MarketZone, Power};
/// use gridflex::mv::baseline::Method;
/// use gridflex::program::Settlement;
/// use gridflex::report::{SettlementInput, settle};
///
/// // 20 days at 800 kW (5-minute data from local midnight), then an event at 14:00
/// // local on Monday 2025-07-21 during which the site drew 500 kW.
/// let start = Utc.with_ymd_and_hms(2025, 7, 1, 7, 0, 0).unwrap();
/// let event_start = Utc.with_ymd_and_hms(2025, 7, 21, 21, 0, 0).unwrap();
/// let step = TimeDelta::minutes(5);
/// let n = ((event_start + TimeDelta::hours(1) - start).num_minutes() / 5) as usize;
/// let values = (0..n).map(|i| {
///     let t = start + step * i as i32;
///     Power::kilowatts(if t >= event_start { 500.0 } else { 800.0 })
/// }).collect::<Result<Vec<_>, _>>()?;
/// let meter = IntervalSeries::from_values(start, step, values)?;
/// let event = Interval::new(event_start, event_start + TimeDelta::hours(1))?;
/// let settlement = Settlement::for_market(gridflex::signals::Market::Caiso);
/// let settled = settle(&SettlementInput::new(meter, MarketZone::Caiso, Some(settlement), event))?;
/// let d = settled.delivery;
/// assert_eq!(d.method, Method::Caiso10in10);
/// assert!(d.fallback.is_none());
/// assert_eq!(d.selected_days.len(), 10);
/// assert!((d.delivered.as_kilowatts() - 300.0).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn settle(input: &SettlementInput<'_>) -> Result<Settled, GridflexError> {
    let mut notes = Vec::new();
    let step = input.meter.step();
    let origin = input.meter.start();
    let snap = |t: DateTime<Utc>, up: bool| {
        let step_ns = step.num_nanoseconds().unwrap_or(1).max(1);
        let off = (t - origin).num_nanoseconds().unwrap_or(0);
        let k = off.div_euclid(step_ns) + i64::from(up && off.rem_euclid(step_ns) != 0);
        origin + TimeDelta::nanoseconds(k * step_ns)
    };
    let snapped = |w: Interval| Interval::new(snap(w.start(), false), snap(w.end(), true));
    let meter = Meter::new(input.meter.clone(), input.zone)?;
    let calendar = settlement_calendar(input.zone, input.event_windows);
    let mbma = || -> Result<BaselineResult, GridflexError> {
        Ok(Baseline::meter_before_meter_after().compute(
            &meter,
            &calendar,
            snapped(input.window)?,
        )?)
    };
    let (result, fallback) = match input.settlement {
        Some(s) if s.method() != Method::Mbma => {
            match s.baseline.compute_notified(
                &meter,
                &calendar,
                snapped(input.event_window)?,
                input.notified,
            ) {
                Ok(r) => (r, None),
                // History too short, or not reaching the needed days: MBMA stands in.
                Err(
                    e @ (MvError::InsufficientDays { .. }
                    | MvError::OutsideData { .. }
                    | MvError::MissingData { .. }
                    | MvError::AdjustmentUndefined { .. }
                    | MvError::InvalidEvent { .. }),
                ) => (
                    mbma()?,
                    Some(Fallback {
                        program_method: s.method(),
                        reason: e.to_string(),
                    }),
                ),
                Err(e) => return Err(e.into()),
            }
        }
        _ => (mbma()?, None),
    };
    let reduction = result.reduction();
    let no_intervals = || GridflexError::invalid("window", "no metered interval in the event");
    let baseline = Power::mean(result.intervals.iter().map(|i| i.adjusted_baseline))
        .ok_or_else(no_intervals)?;
    let actual = Power::mean(result.intervals.iter().map(|i| i.actual)).ok_or_else(no_intervals)?;
    // A credit needs a price for every interval; without one, say so rather than
    // settle part of the event.
    let credit = match price_series(input.prices) {
        Ok(Some(prices)) => match energy_credits(&reduction, &prices, PaymentRule::AllIntervals) {
            Ok(c) => Some(c.total),
            Err(e) => {
                notes.push(format!("energy credit: {e}"));
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            notes.push(format!("energy credit: {e}"));
            None
        }
    };
    let unadjusted = matches!(result.method, Method::Mbma | Method::PjmSameDay);
    Ok(Settled {
        delivery: Delivery {
            method: result.method,
            fallback,
            selected_days: result.selected_days.clone(),
            adjustment: (!unadjusted).then_some(result.adjustment),
            notified: input.notified,
            baseline,
            actual,
            delivered: reduction.mean_settled,
            energy: reduction.settled_energy,
            credit,
            intervals: result.intervals,
        },
        notes,
    })
}

/// The prices seen, as a regular series on their own interval length (gaps missing).
fn price_series(
    prices: &[(Interval, Price)],
) -> Result<Option<IntervalSeries<Price>>, GridflexError> {
    let Some(first) = prices.iter().map(|(i, _)| *i).min() else {
        return Ok(None);
    };
    let step = first.duration();
    let end = prices
        .iter()
        .map(|(i, _)| i.end())
        .max()
        .unwrap_or(first.end());
    let n = usize::try_from((end - first.start()).num_seconds() / step.num_seconds().max(1))
        .unwrap_or(0);
    let mut series = IntervalSeries::missing(first.start(), step, n)?;
    for (i, p) in prices {
        if let Ok(k) = series.index_of(i.start()) {
            series.set(k, Some(*p))?;
        }
    }
    Ok(Some(series))
}

fn regulation(reg: &RegulationInput<'_>) -> Result<RegulationReport, GridflexError> {
    let score = regulation_score(
        reg.signal,
        reg.response,
        &RegulationConfig::new(reg.capability),
    )?;
    let credit = reg
        .prices
        .map(|(capability, performance, mileage_ratio)| {
            score
                .hours
                .iter()
                .map(|h| {
                    h.credits(reg.capability, capability, performance, mileage_ratio)
                        .map(|c| c.capability + c.performance)
                })
                .sum::<Result<Money, _>>()
        })
        .transpose()?;
    Ok(RegulationReport {
        accuracy: score.accuracy,
        delay: score.delay,
        precision: score.precision,
        composite: score.composite,
        mileage: score.mileage,
        credit,
    })
}

fn ms(d: TimeDelta) -> f64 {
    gridflex_core::units::seconds_f64(d) * 1e3
}

/// A human summary, several lines, as the quickstart prints it:
///
/// ```text
/// event 3 | price 950 $/MWh at TH_SP15_GEN-APND (RTM) | [2025-08-14T20:00:00+00:00 .. 2025-08-14T20:20:00+00:00)
///   target 560 kW, planned 560 kW
///   baseline (mbma) 879 kW, metered 568 kW: delivered 311 kW, 103.7 kWh, energy credit $78.87
///   response 879 kW -> 560 kW: t50 10.5 ms, t90 18.9 ms (samples every 20 ms)
/// ```
///
/// Each figure appears only when it could be computed; what could not is listed
/// (`not computed: ...`) with the reason. [`EventReport::to_json`] is the machine form.
impl std::fmt::Display for EventReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "event {} | {} | {}",
            self.event_id, self.cause, self.window
        )?;
        if !matches!(self.cause, Cause::Regulation) {
            write!(
                f,
                "\n  target {:.0}, planned {:.0}",
                self.target, self.predicted
            )?;
            if let Some(s) = self.shortfall {
                write!(f, ", shortfall {s:.0}")?;
            }
        }
        if let Some(d) = &self.delivery {
            write!(
                f,
                "\n  baseline ({}) {:.0}, metered {:.0}: delivered {:.0}, {:.1}",
                d.method, d.baseline, d.actual, d.delivered, d.energy
            )?;
            if let Some(c) = d.credit {
                write!(f, ", energy credit {c}")?;
            }
            if let (Some(newest), Some(oldest)) = (d.selected_days.first(), d.selected_days.last())
            {
                write!(
                    f,
                    "\n  program baseline days: {} ({oldest} .. {newest})",
                    d.selected_days.len()
                )?;
                match d.adjustment.map(|a| a.value) {
                    Some(gridflex_mv::baseline::AdjustmentValue::Factor(x)) => {
                        write!(f, ", adjustment x{x:.3}")?
                    }
                    Some(gridflex_mv::baseline::AdjustmentValue::Offset(p)) => {
                        write!(f, ", adjustment {:+.1} kW", p.as_kilowatts())?
                    }
                    _ => {}
                }
            }
            if let Some(fb) = &d.fallback {
                write!(
                    f,
                    "\n  program method {} not usable ({}): MBMA stood in",
                    fb.program_method, fb.reason
                )?;
            }
        }
        if let Some(x) = &self.response {
            write!(
                f,
                "\n  response {:.0} -> {:.0}: t50 {:.1} ms, t90 {:.1} ms (samples every {:.0} ms)",
                x.from,
                x.to,
                ms(x.t50),
                ms(x.t90),
                ms(x.sample_period)
            )?;
        }
        if let Some(g) = &self.regulation {
            write!(
                f,
                "\n  regulation score {:.3} (accuracy {:.3}, delay {:.3}, precision {:.3}), mileage {:.1}",
                g.composite, g.accuracy, g.delay, g.precision, g.mileage
            )?;
            if let Some(c) = g.credit {
                write!(f, ", estimated credit {c}")?;
            }
        }
        for n in &self.not_computed {
            write!(f, "\n  not computed: {n}")?;
        }
        Ok(())
    }
}

impl EventReport {
    /// The report as one JSON object (the form the audit log's `report` record
    /// carries: watts, joules, USD, durations in seconds in `*_s` fields).
    pub fn to_json(&self) -> Result<String, GridflexError> {
        serde_json::to_string(self).map_err(|e| GridflexError::invalid("report", e.to_string()))
    }
}

impl EventReport {
    /// The settlement per meter interval as CSV (`interval_start,interval_end,
    /// baseline_kw,adjusted_baseline_kw,metered_kw,reduction_kw`, RFC 3339 times), or
    /// `None` for an event without a delivery (regulation, or not computed). The
    /// reduction is adjusted baseline minus metered, before the settlement rule floors
    /// negative intervals.
    pub fn intervals_csv(&self) -> Option<String> {
        use std::fmt::Write as _;
        let d = self.delivery.as_ref()?;
        let mut out = String::from(
            "interval_start,interval_end,baseline_kw,adjusted_baseline_kw,metered_kw,reduction_kw\n",
        );
        for i in &d.intervals {
            let _ = writeln!(
                out,
                "{},{},{:.3},{:.3},{:.3},{:.3}",
                i.interval.start().to_rfc3339(),
                i.interval.end().to_rfc3339(),
                i.baseline.as_kilowatts(),
                i.adjusted_baseline.as_kilowatts(),
                i.actual.as_kilowatts(),
                (i.adjusted_baseline - i.actual).as_kilowatts(),
            );
        }
        Some(out)
    }

    /// An SVG chart of the event: the metered facility power from an hour before the
    /// event to an hour after (as far as `meter` reaches), the program's adjusted
    /// baseline over the event and the target, and below it the response zoomed to the
    /// high-rate `capture` (empty: the lower panel says none was captured).
    pub fn svg(&self, meter: Option<&IntervalSeries<Power>>, capture: &[Sample<Power>]) -> String {
        use std::fmt::Write as _;
        const W: f64 = 900.0;
        const LEFT: f64 = 70.0;
        const RIGHT: f64 = 880.0;
        let hour = TimeDelta::hours(1);
        let from = self.window.start() - hour;
        let to = self.window.end() + hour;
        let metered: Vec<(DateTime<Utc>, f64)> = meter
            .map(|m| {
                m.iter()
                    .filter(|(i, _)| i.start() >= from && i.end() <= to)
                    .filter_map(|(i, v)| v.map(|p| (i.start(), p.as_kilowatts())))
                    .collect()
            })
            .unwrap_or_default();
        let baseline: Vec<(DateTime<Utc>, f64)> = self
            .delivery
            .iter()
            .flat_map(|d| &d.intervals)
            .flat_map(|i| {
                let kw = i.adjusted_baseline.as_kilowatts();
                [(i.interval.start(), kw), (i.interval.end(), kw)]
            })
            .collect();
        let target = self.target.as_kilowatts();
        let values = metered
            .iter()
            .chain(&baseline)
            .map(|(_, v)| *v)
            .chain([target]);
        let (lo, hi) = bounds(values);
        let x_of = |t: DateTime<Utc>| {
            let span = (to - from).num_milliseconds().max(1) as f64;
            LEFT + (RIGHT - LEFT) * (t - from).num_milliseconds() as f64 / span
        };
        let y_top = |v: f64| 290.0 - 250.0 * (v - lo) / (hi - lo);
        let mut svg = String::new();
        let _ = write!(
            svg,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="560" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="20" font-size="14">Event {id}: {cause}</text>"##,
            id = self.event_id,
            cause = escape(&self.cause.to_string()),
        );
        axis(&mut svg, 40.0, 290.0, lo, hi, "kW");
        let method = self
            .delivery
            .as_ref()
            .map(|d| match &d.fallback {
                Some(f) => format!("{} (fallback from {})", d.method, f.program_method),
                None => d.method.to_string(),
            })
            .unwrap_or_else(|| "no baseline".into());
        let _ = write!(
            svg,
            r##"<rect x="{x0:.1}" y="40" width="{w:.1}" height="250" fill="#eef3fb"/>"##,
            x0 = x_of(self.window.start()),
            w = x_of(self.window.end()) - x_of(self.window.start()),
        );
        line(
            &mut svg,
            metered.iter().map(|(t, v)| (x_of(*t), y_top(*v))),
            "#1f4e9c",
            "",
        );
        line(
            &mut svg,
            baseline.iter().map(|(t, v)| (x_of(*t), y_top(*v))),
            "#d9822b",
            "6 4",
        );
        line(
            &mut svg,
            [self.window.start(), self.window.end()]
                .map(|t| (x_of(t), y_top(target)))
                .into_iter(),
            "#c62828",
            "2 3",
        );
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="310">{from}</text><text x="{RIGHT}" y="310" text-anchor="end">{to}</text><text x="{LEFT}" y="328"><tspan fill="#1f4e9c">metered</tspan>  <tspan fill="#d9822b">baseline: {method}</tspan>  <tspan fill="#c62828">target</tspan></text>"##,
            from = from.format("%Y-%m-%d %H:%M UTC"),
            to = to.format("%H:%M UTC"),
            method = escape(&method),
        );
        // The response, zoomed to the capture.
        if capture.len() < 2 {
            let _ = write!(
                svg,
                r##"<text x="{LEFT}" y="420">response: no high-rate capture</text>"##
            );
        } else {
            let c0 = capture[0].at;
            let c1 = capture[capture.len() - 1].at;
            let span = (c1 - c0).num_microseconds().unwrap_or(1).max(1) as f64;
            let (lo, hi) = bounds(
                capture
                    .iter()
                    .map(|s| s.value.as_kilowatts())
                    .chain([target]),
            );
            let x = |t: DateTime<Utc>| {
                LEFT + (RIGHT - LEFT) * (t - c0).num_microseconds().unwrap_or(0) as f64 / span
            };
            let y = |v: f64| 530.0 - 170.0 * (v - lo) / (hi - lo);
            axis(&mut svg, 360.0, 530.0, lo, hi, "kW");
            line(
                &mut svg,
                capture.iter().map(|s| (x(s.at), y(s.value.as_kilowatts()))),
                "#1f4e9c",
                "",
            );
            line(
                &mut svg,
                [(LEFT, y(target)), (RIGHT, y(target))].into_iter(),
                "#c62828",
                "2 3",
            );
            let _ = write!(
                svg,
                r##"<text x="{LEFT}" y="352">response, first {ms:.0} ms{t50}</text><text x="{LEFT}" y="548">0 ms</text><text x="{RIGHT}" y="548" text-anchor="end">{ms:.0} ms</text>"##,
                ms = span / 1000.0,
                t50 = self
                    .response
                    .map(|r| format!(
                        ": t50 {:.0} ms, t90 {:.0} ms",
                        r.t50.num_microseconds().unwrap_or(0) as f64 / 1000.0,
                        r.t90.num_microseconds().unwrap_or(0) as f64 / 1000.0
                    ))
                    .unwrap_or_default(),
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// A padded value range, never empty.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.01).max(1e-3);
    (lo - pad, hi + pad)
}

fn axis(svg: &mut String, top: f64, bottom: f64, lo: f64, hi: f64, unit: &str) {
    use std::fmt::Write as _;
    let _ = write!(
        svg,
        r##"<line x1="70" y1="{top}" x2="70" y2="{bottom}" stroke="#888"/><line x1="70" y1="{bottom}" x2="880" y2="{bottom}" stroke="#888"/><text x="64" y="{ty:.0}" text-anchor="end">{hi:.1}</text><text x="64" y="{bottom}" text-anchor="end">{lo:.1}</text><text x="64" y="{my:.0}" text-anchor="end">{unit}</text>"##,
        ty = top + 10.0,
        my = (top + bottom) / 2.0,
    );
}

fn line(svg: &mut String, points: impl Iterator<Item = (f64, f64)>, color: &str, dash: &str) {
    use std::fmt::Write as _;
    let pts: Vec<String> = points.map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    if pts.len() < 2 {
        return;
    }
    let _ = write!(
        svg,
        r##"<polyline fill="none" stroke="{color}" stroke-width="1.6" stroke-dasharray="{dash}" points="{}"/>"##,
        pts.join(" ")
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
