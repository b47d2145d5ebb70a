//! Prometheus metrics of the orchestrator, in the OpenMetrics text format through
//! [`prometheus_client`] (the official OpenMetrics crate; it encodes, it serves nothing).
//!
//! Serving them is the integrator's choice: [`Metrics::register`] adds every gridflex
//! metric to a [`Registry`] the integrator already serves (their own HTTP stack), or the
//! feature `metrics-server` brings `server::MetricsServer`, a small endpoint on one
//! thread that serves `/metrics`. Whoever serves must answer with
//! [`OPENMETRICS_CONTENT_TYPE`]: Prometheus refuses an `info` metric in the older
//! text format and fails the whole scrape.
//!
//! Every series is created when the metrics are registered, so a scrape shows them at
//! zero before anything happened (rates work from the first scrape), and the orchestrator
//! updates them with plain atomic operations: label sets are resolved once, up front,
//! never per command. Names, units and labels are listed in `docs/metrics.md`.
//!
//! ```
//! use gridflex::metrics::{Metrics, encode};
//! use gridflex::prometheus_client::registry::Registry;
//!
//! let mut registry = Registry::default();
//! let metrics = Metrics::register(&mut registry);
//! // Hand `metrics` to `Orchestrator::builder(..).metrics(metrics)`; serve this text:
//! let text = encode(&registry)?;
//! assert!(text.contains("# TYPE gridflex_facility_power_watts gauge"));
//! assert!(text.ends_with("# EOF\n"));
//! # let _ = metrics;
//! # Ok::<(), gridflex::GridflexError>(())
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gridflex_core::Power;
use gridflex_hal::ErrorKind;
use gridflex_signals::GridSignal;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use crate::GridflexError;
use crate::program::{Cause, Refusal};
use crate::report::EventReport;

#[cfg(feature = "metrics-server")]
pub mod server;

/// The `Content-Type` a `/metrics` answer must carry.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes a registry in the OpenMetrics text format (serve it with
/// [`OPENMETRICS_CONTENT_TYPE`]).
pub fn encode(registry: &Registry) -> Result<String, GridflexError> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .map_err(|e| GridflexError::invalid("metrics registry", e.to_string()))?;
    Ok(out)
}

type Labels = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];
type FGauge = Gauge<f64, AtomicU64>;

/// Signal kinds, as the `kind` label.
const SIGNAL_KINDS: [&str; 5] = ["price", "dispatch", "alert", "regulation", "other"];
/// What the orchestrator did with a signal, as the `decision` label.
const DECISIONS: [&str; 4] = ["actuated", "scheduled", "ignored", "refused"];
/// Refusal reasons, as the `reason` label (the audit log's snake_case names).
const REFUSALS: [&str; 10] = [
    "wrong_market",
    "no_rule",
    "not_enrolled",
    "wrong_regulation",
    "beyond_enrolled",
    "window_in_past",
    "window_out_of_range",
    "unsupported_target",
    "plan_failed",
    "other",
];
/// Portable device error kinds, as the `kind` label.
const ERROR_KINDS: [&str; 5] = [
    "no_permission",
    "out_of_range",
    "device_lost",
    "transient",
    "other",
];
/// Event causes, as the `cause` label.
const CAUSES: [&str; 5] = ["price", "dispatch", "alert", "regulation", "other"];
/// Curtailment states, as the `state` label.
const STATES: [&str; 3] = ["capped", "paused", "unknown"];
/// Command levers, as the `lever` label.
const LEVERS: [&str; 2] = ["workload", "power_limit"];

/// Buckets (seconds) of the latency histograms: 1 us to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    1e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 0.1, 1.0, 10.0,
];

/// How a job (and its GPUs) counts in the curtailment gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CurtailState {
    /// Capped below its limit at discovery, running.
    Capped = 0,
    /// Paused (confirmed, or possibly after a failed command).
    Paused = 1,
    /// A command failed; the retry loop owns it.
    Unknown = 2,
}

/// Which lever a command moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lever {
    /// A job's pause or resume.
    Workload = 0,
    /// A device's power limit (set or restored).
    PowerLimit = 1,
}

/// The orchestrator's metrics: a cheap, cloneable handle on atomics registered in a
/// [`Registry`]. Give it to the builder with `OrchestratorBuilder::metrics`.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    facility_power: FGauge,
    baseline: FGauge,
    target: FGauge,
    active_event: Gauge,
    curtailed_gpus: [Gauge; 3],
    curtailed_jobs: [Gauge; 3],
    signals: [[Counter; 4]; 5],
    refusals: [Counter; 10],
    events: [Counter; 5],
    commands: Counter,
    device_errors: [Counter; 5],
    signal_to_commands: AtomicHistogram,
    command_latency: [AtomicHistogram; 2],
    planner_seconds: AtomicHistogram,
    planner_gap: FGauge,
    delivered_power: FGauge,
    delivered_energy: Counter<f64, AtomicU64>,
    regulation_score: FGauge,
}

impl Metrics {
    /// Creates every gridflex metric (names prefixed `gridflex_`) in `registry`, with
    /// all their label sets, and returns the handle that updates them.
    pub fn register(registry: &mut Registry) -> Metrics {
        let r = registry.sub_registry_with_prefix("gridflex");
        let watts = || Unit::Other("watts".into());
        r.register(
            "build",
            "The gridflex version serving these metrics",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        let gauge_f = |r: &mut Registry, name: &str, help: &str, unit: Option<Unit>| {
            let g = FGauge::default();
            match unit {
                Some(u) => r.register_with_unit(name, help, u, g.clone()),
                None => r.register(name, help, g.clone()),
            }
            g
        };
        let facility_power = gauge_f(
            r,
            "facility_power",
            "Facility power at the latest telemetry sweep",
            Some(watts()),
        );
        let baseline = gauge_f(
            r,
            "facility_baseline",
            "Uncurtailed facility power the active event's plan starts from (NaN: no event)",
            Some(watts()),
        );
        baseline.set(f64::NAN);
        let target = gauge_f(
            r,
            "target",
            "The active event's facility target as a cap (NaN: no event)",
            Some(watts()),
        );
        target.set(f64::NAN);
        let active_event = Gauge::default();
        r.register(
            "active_event_id",
            "Id of the active event (0: none)",
            active_event.clone(),
        );
        let curtailed_gpus = labelled::<Gauge, _>(
            r,
            "curtailed_gpus",
            "GPUs of curtailed jobs, by state",
            "state",
            STATES,
        );
        let curtailed_jobs = labelled::<Gauge, _>(
            r,
            "curtailed_jobs",
            "Curtailed jobs, by state",
            "state",
            STATES,
        );
        let signals_family = Family::<Labels2, Counter>::default();
        r.register(
            "signals",
            "Signals received, by kind and what was done with them",
            signals_family.clone(),
        );
        let signals = SIGNAL_KINDS.map(|kind| {
            DECISIONS.map(|decision| {
                signals_family
                    .get_or_create(&[("kind", kind), ("decision", decision)])
                    .clone()
            })
        });
        let refusals = labelled::<Counter, _>(
            r,
            "refusals",
            "Signals refused and plans that could not be made, by reason",
            "reason",
            REFUSALS,
        );
        let events =
            labelled::<Counter, _>(r, "events", "Events started, by cause", "cause", CAUSES);
        let commands = Counter::default();
        r.register(
            "commands",
            "Device and job commands issued",
            commands.clone(),
        );
        let device_errors = labelled::<Counter, _>(
            r,
            "device_errors",
            "Failed device and workload commands and telemetry reads, by error kind",
            "kind",
            ERROR_KINDS,
        );
        let signal_to_commands = AtomicHistogram::new(&LATENCY_BUCKETS);
        r.register_with_unit(
            "signal_to_commands",
            "Time from a signal's arrival to its last command issued",
            Unit::Seconds,
            signal_to_commands.clone(),
        );
        let latency_family =
            Family::<Labels, AtomicHistogram, fn() -> AtomicHistogram>::new_with_constructor(
                || AtomicHistogram::new(&LATENCY_BUCKETS),
            );
        r.register_with_unit(
            "command_duration",
            "Time from a stage's start to each command's answer, by lever",
            Unit::Seconds,
            latency_family.clone(),
        );
        let command_latency =
            LEVERS.map(|lever| latency_family.get_or_create(&[("lever", lever)]).clone());
        let planner_seconds = AtomicHistogram::new(&LATENCY_BUCKETS);
        r.register_with_unit(
            "planner_duration",
            "Time the planner took per plan",
            Unit::Seconds,
            planner_seconds.clone(),
        );
        let planner_gap = gauge_f(
            r,
            "planner_gap",
            "Bound on the latest plan's optimality gap (fraction of the best kept throughput)",
            Some(Unit::Other("ratio".into())),
        );
        let delivered_power = gauge_f(
            r,
            "event_delivered",
            "Mean settled reduction of the latest reported event",
            Some(watts()),
        );
        let delivered_energy = Counter::<f64, AtomicU64>::default();
        r.register_with_unit(
            "delivered_energy",
            "Settled reduction energy of every reported event",
            Unit::Joules,
            delivered_energy.clone(),
        );
        let regulation_score = gauge_f(
            r,
            "regulation_score",
            "Composite performance score (0 to 1) of the latest reported regulation period",
            Some(Unit::Other("ratio".into())),
        );
        regulation_score.set(f64::NAN);
        Metrics {
            inner: Arc::new(Inner {
                facility_power,
                baseline,
                target,
                active_event,
                curtailed_gpus,
                curtailed_jobs,
                signals,
                refusals,
                events,
                commands,
                device_errors,
                signal_to_commands,
                command_latency,
                planner_seconds,
                planner_gap,
                delivered_power,
                delivered_energy,
                regulation_score,
            }),
        }
    }

    pub(crate) fn facility_power(&self, p: Power) {
        self.inner.facility_power.set(p.as_watts());
    }

    /// The active event changed: its id, baseline and cap (`None`: no event).
    pub(crate) fn active(&self, event: Option<(u64, Power, Power)>) {
        let i = &self.inner;
        match event {
            Some((id, baseline, cap)) => {
                i.active_event.set(i64::try_from(id).unwrap_or(i64::MAX));
                i.baseline.set(baseline.as_watts());
                i.target.set(cap.as_watts());
            }
            None => {
                i.active_event.set(0);
                i.baseline.set(f64::NAN);
                i.target.set(f64::NAN);
            }
        }
    }

    pub(crate) fn event_started(&self, cause: &Cause) {
        let c = match cause {
            Cause::Price { .. } => 0,
            Cause::Dispatch { .. } => 1,
            Cause::Alert { .. } => 2,
            Cause::Regulation => 3,
            #[allow(unreachable_patterns)]
            _ => 4,
        };
        self.inner.events[c].inc();
    }

    /// Jobs and GPUs per curtailment state (indexed by [`CurtailState`]).
    pub(crate) fn curtailed(&self, jobs: [i64; 3], gpus: [i64; 3]) {
        for s in 0..3 {
            self.inner.curtailed_jobs[s].set(jobs[s]);
            self.inner.curtailed_gpus[s].set(gpus[s]);
        }
    }

    pub(crate) fn signal(&self, signal: &GridSignal, handled: &crate::Handled) {
        let kind = match signal {
            GridSignal::Price(_) => 0,
            GridSignal::Dispatch(_) => 1,
            GridSignal::Alert(_) => 2,
            GridSignal::Regulation(_) => 3,
            _ => 4,
        };
        let decision = match handled {
            crate::Handled::Actuated { .. } => 0,
            crate::Handled::Scheduled { .. } => 1,
            crate::Handled::Ignored => 2,
            _ => 3,
        };
        self.inner.signals[kind][decision].inc();
    }

    pub(crate) fn refused(&self, refusal: &Refusal) {
        let r = match refusal {
            Refusal::WrongMarket { .. } => 0,
            Refusal::NoRule { .. } => 1,
            Refusal::NotEnrolled { .. } => 2,
            Refusal::WrongRegulation { .. } => 3,
            Refusal::BeyondEnrolled { .. } => 4,
            Refusal::WindowInPast { .. } => 5,
            Refusal::WindowOutOfRange { .. } => 6,
            Refusal::UnsupportedTarget { .. } | Refusal::UnsupportedPlannerTarget { .. } => 7,
            #[allow(unreachable_patterns)]
            _ => 9,
        };
        self.inner.refusals[r].inc();
    }

    pub(crate) fn plan_failed(&self) {
        self.inner.refusals[8].inc();
    }

    pub(crate) fn commands(&self, n: usize) {
        self.inner.commands.inc_by(n as u64);
    }

    pub(crate) fn device_error(&self, kind: ErrorKind) {
        let k = match kind {
            ErrorKind::NoPermission => 0,
            ErrorKind::OutOfRange => 1,
            ErrorKind::DeviceLost => 2,
            ErrorKind::Transient => 3,
            _ => 4,
        };
        self.inner.device_errors[k].inc();
    }

    pub(crate) fn signal_to_commands(&self, took: Duration) {
        self.inner.signal_to_commands.observe(took.as_secs_f64(), 1);
    }

    pub(crate) fn command_latency(&self, lever: Lever) -> &AtomicHistogram {
        &self.inner.command_latency[lever as usize]
    }

    pub(crate) fn planned(&self, took: Duration, gap: f64) {
        self.inner.planner_seconds.observe(took.as_secs_f64(), 1);
        self.inner.planner_gap.set(gap);
    }

    pub(crate) fn report(&self, report: &EventReport) {
        if let Some(d) = &report.delivery {
            self.inner.delivered_power.set(d.delivered.as_watts());
            let j = d.energy.as_joules();
            if j > 0.0 {
                self.inner.delivered_energy.inc_by(j);
            }
        }
        if let Some(r) = &report.regulation {
            self.inner.regulation_score.set(r.composite);
        }
    }
}

/// One metric per label value, created at registration so the hot path never builds a
/// label set.
fn labelled<M, const N: usize>(
    r: &mut Registry,
    name: &str,
    help: &str,
    key: &'static str,
    values: [&'static str; N],
) -> [M; N]
where
    M: prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + Default
        + Clone
        + Send
        + Sync
        + std::fmt::Debug
        + 'static,
{
    let family = Family::<Labels, M>::default();
    r.register(name, help, family.clone());
    values.map(|v| family.get_or_create(&[(key, v)]).clone())
}

/// A histogram of fixed buckets kept in atomics: observing takes no lock (the crate's
/// own histogram takes a mutex), so the actuation path can record each command.
#[derive(Debug, Clone)]
pub(crate) struct AtomicHistogram {
    inner: Arc<HistogramInner>,
}

#[derive(Debug)]
struct HistogramInner {
    bounds: Vec<f64>,
    /// One per bound plus `+Inf`; not cumulative.
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum of observations, as `f64` bits.
    sum: AtomicU64,
}

impl AtomicHistogram {
    fn new(bounds: &[f64]) -> Self {
        Self {
            inner: Arc::new(HistogramInner {
                bounds: bounds.to_vec(),
                counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                count: AtomicU64::new(0),
                sum: AtomicU64::new(0f64.to_bits()),
            }),
        }
    }

    /// Records `n` observations of `value`.
    pub(crate) fn observe(&self, value: f64, n: u64) {
        if n == 0 {
            return;
        }
        let h = &self.inner;
        let i = h.bounds.partition_point(|b| *b < value);
        h.counts[i].fetch_add(n, Ordering::Relaxed);
        h.count.fetch_add(n, Ordering::Relaxed);
        let add = value * n as f64;
        let _ = h
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + add).to_bits())
            });
    }

    #[cfg(test)]
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let h = &self.inner;
        let buckets = h
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(h.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        (
            f64::from_bits(h.sum.load(Ordering::Relaxed)),
            h.count.load(Ordering::Relaxed),
            buckets,
        )
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let h = &self.inner;
        // The encoder makes the buckets cumulative.
        let buckets: Vec<(f64, u64)> = h
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(h.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, c)| c).sum();
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            f64::from_bits(h.sum.load(Ordering::Relaxed)),
            count,
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_there_from_the_start_with_base_units() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.facility_power(Power::kilowatts(12.5).unwrap());
        m.curtailed([1, 2, 0], [8, 24, 0]);
        m.device_error(ErrorKind::Transient);
        m.signal_to_commands(Duration::from_micros(30));
        let text = encode(&registry).unwrap();
        for line in [
            "gridflex_facility_power_watts 12500.0",
            "gridflex_curtailed_gpus{state=\"paused\"} 24",
            "gridflex_curtailed_jobs{state=\"capped\"} 1",
            "gridflex_device_errors_total{kind=\"transient\"} 1",
            "gridflex_device_errors_total{kind=\"device_lost\"} 0",
            "gridflex_signals_total{kind=\"price\",decision=\"refused\"} 0",
            "gridflex_refusals_total{reason=\"plan_failed\"} 0",
            "gridflex_signal_to_commands_seconds_bucket{le=\"0.00005\"} 1",
            "gridflex_signal_to_commands_seconds_count 1",
            "gridflex_command_duration_seconds_count{lever=\"power_limit\"} 0",
            "gridflex_facility_baseline_watts NaN",
            "gridflex_build_info{version=",
            "# UNIT gridflex_facility_power_watts watts",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_histogram_counts_each_observation_once_in_its_bucket() {
        let h = AtomicHistogram::new(&[1.0, 2.0]);
        h.observe(0.5, 1);
        h.observe(1.0, 2); // a bound is inclusive (le)
        h.observe(3.0, 1);
        h.observe(9.0, 0); // nothing
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 4);
        assert!((sum - 5.5).abs() < 1e-12);
        assert_eq!(buckets, vec![(1.0, 3), (2.0, 0), (f64::INFINITY, 1)]);
    }
}
