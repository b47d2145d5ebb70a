//! Per-event M&V reports, computed with `gridflex-mv` from what the orchestrator
//! recorded: the facility meter (interval means of telemetry), high-rate samples around
//! the instruction, regulation signal and response, and prices seen.

use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::{Energy, Interval, IntervalSeries, MarketZone, Money, Power, Price};
use gridflex_mv::regulation::{RegulationConfig, regulation_score};
use gridflex_mv::response::{ResponseConfig, Sample, response_time};
use gridflex_mv::settlement::{PaymentRule, energy_credits};
use gridflex_mv::{Baseline, Calendar, Meter};
use serde::{Deserialize, Serialize};

use crate::GridflexError;
use crate::program::Cause;

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

/// Baseline and delivered reduction of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The baseline method (in JSON its kebab-case name, for example `mbma`: the
    /// meter interval before the instruction).
    pub method: gridflex_mv::baseline::Method,
    /// Mean baseline over the event.
    pub baseline: Power,
    /// Mean metered power over the event.
    pub actual: Power,
    /// Mean settled reduction.
    pub delivered: Power,
    /// Settled reduction energy.
    pub energy: Energy,
    /// Energy credit at the event's LMP, when a price was known.
    pub credit: Option<Money>,
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

/// The facility meter: means of sampled facility power per interval.
#[derive(Debug, Clone)]
pub(crate) struct MeterRecorder {
    step: TimeDelta,
    start: Option<DateTime<Utc>>,
    sums: Vec<(f64, u32)>,
}

impl MeterRecorder {
    pub(crate) fn new(step: TimeDelta) -> Self {
        Self {
            step,
            start: None,
            sums: Vec::new(),
        }
    }

    pub(crate) fn record(&mut self, at: DateTime<Utc>, power: Power) {
        let step_ns = self.step.num_nanoseconds().unwrap_or(i64::MAX).max(1);
        let start = *self.start.get_or_insert_with(|| {
            let ns = at.timestamp_nanos_opt().unwrap_or(0);
            DateTime::from_timestamp_nanos(ns - ns.rem_euclid(step_ns))
        });
        let Some(offset) = (at - start).num_nanoseconds() else {
            return;
        };
        let Ok(i) = usize::try_from(offset / step_ns) else {
            return;
        };
        if self.sums.len() <= i {
            self.sums.resize(i + 1, (0.0, 0));
        }
        self.sums[i].0 += power.as_watts();
        self.sums[i].1 += 1;
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

/// MBMA on the recorded meter, over the event window rounded out to the meter grid.
fn delivery(
    input: &ReportInput<'_>,
    not_computed: &mut Vec<String>,
) -> Result<Delivery, GridflexError> {
    let meter = input
        .meter
        .clone()
        .ok_or_else(|| GridflexError::invalid("meter", "no telemetry was recorded"))?;
    let step = meter.step();
    let origin = meter.start();
    let snap = |t: DateTime<Utc>, up: bool| {
        let step_ns = step.num_nanoseconds().unwrap_or(1).max(1);
        let off = (t - origin).num_nanoseconds().unwrap_or(0);
        let k = off.div_euclid(step_ns) + i64::from(up && off.rem_euclid(step_ns) != 0);
        origin + TimeDelta::nanoseconds(k * step_ns)
    };
    let event = Interval::new(
        snap(input.window.start(), false),
        snap(input.window.end(), true),
    )?;
    let meter = Meter::new(meter, input.zone)?;
    let result =
        Baseline::meter_before_meter_after().compute(&meter, &Calendar::new(input.zone), event)?;
    let reduction = result.reduction();
    let no_intervals = || GridflexError::invalid("window", "no metered interval in the event");
    let baseline =
        Power::mean(result.intervals.iter().map(|i| i.baseline)).ok_or_else(no_intervals)?;
    let actual = baseline
        - Power::mean(reduction.intervals.iter().map(|i| i.raw)).ok_or_else(no_intervals)?;
    // A credit needs a price for every interval; without one, say so rather than
    // settle part of the event.
    let credit = match price_series(input.prices) {
        Ok(Some(prices)) => match energy_credits(&reduction, &prices, PaymentRule::AllIntervals) {
            Ok(c) => Some(c.total),
            Err(e) => {
                not_computed.push(format!("energy credit: {e}"));
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            not_computed.push(format!("energy credit: {e}"));
            None
        }
    };
    Ok(Delivery {
        method: gridflex_mv::baseline::Method::Mbma,
        baseline,
        actual,
        delivered: reduction.mean_settled,
        energy: reduction.settled_energy,
        credit,
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
