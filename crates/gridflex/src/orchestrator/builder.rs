//! The orchestrator's settings and its builder: every input checked before anything runs.

use super::*;

/// Settings of the orchestrator, apart from the rules and the inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OrchestratorOptions {
    /// The planner's settings (lever response profiles).
    pub planner: PlannerOptions,
    /// How often all devices' telemetry is swept and the facility meter sampled
    /// (default 10 s). Plans are made from the latest sweep, so a signal costs no
    /// telemetry round-trip.
    #[serde(rename = "telemetry_step_s", with = "gridflex_core::duration_s::delta")]
    pub telemetry_step: TimeDelta,
    /// Interval length of the recorded facility meter used for M&V (default 5 min).
    #[serde(rename = "meter_step_s", with = "gridflex_core::duration_s::delta")]
    pub meter_step: TimeDelta,
    /// How long after an event's first actuation power is captured at high rate for the
    /// response time (default 2 s).
    #[serde(rename = "capture_s", with = "gridflex_core::duration_s::delta")]
    pub capture: TimeDelta,
    /// Polling step of that capture for devices without a sample stream (default 20 ms).
    #[serde(rename = "capture_step_s", with = "gridflex_core::duration_s::delta")]
    pub capture_step: TimeDelta,
    /// Regulation clearing prices for credit estimates: capability and performance
    /// price ($/MW per hour) and the mileage ratio. `None`: no credit is estimated.
    pub regulation_prices: Option<(Price, Price, f64)>,
    /// First wait before a failed command's job is driven back to its pre-event level
    /// again (default 0.5 s); each further failure doubles it, up to `retry_max`.
    #[serde(
        rename = "retry_initial_s",
        with = "gridflex_core::duration_s::delta",
        default = "default_retry_initial"
    )]
    pub retry_initial: TimeDelta,
    /// Longest wait between two restore attempts (default 30 s).
    #[serde(
        rename = "retry_max_s",
        with = "gridflex_core::duration_s::delta",
        default = "default_retry_max"
    )]
    pub retry_max: TimeDelta,
    /// How long a shutdown (or the end of a run) keeps retrying restores that have not
    /// been confirmed before it returns and reports what is left (default 60 s).
    #[serde(
        rename = "restore_grace_s",
        with = "gridflex_core::duration_s::delta",
        default = "default_restore_grace"
    )]
    pub restore_grace: TimeDelta,
    /// How many finished reports are kept for [`Orchestrator::take_reports`] (the
    /// newest; default 64). Every report is also in the audit log and is sent to the
    /// live handle's report subscribers; this bounds memory in a long-running service.
    #[serde(default = "default_keep_reports")]
    pub keep_reports: usize,
    /// How the history store is used, when one is given (meter days held in memory,
    /// writer queue and retention). Without a store the meter held in memory is bounded
    /// by the same `meter_days`.
    #[serde(default)]
    pub history: HistoryOptions,
    /// Who is curtailed first (default [`Priority::ClassOrder`]: deferrable work, then
    /// flexible, then critical; by weight within a class).
    #[serde(default)]
    pub priority: Priority,
}

/// Who is curtailed first when a target needs cuts.
///
/// The planner minimises the weighted throughput lost, `sum weight x GPUs x (1 -
/// throughput)`, within every job's service level. With plain weights a critical job
/// whose curve is flat near the top may be capped harder than a flexible one (it loses
/// less throughput per watt given), which is optimal for the weights but not what an
/// operator expects. `ClassOrder` keeps the optimisation and adds the class as the
/// first criterion: each class's weights are scaled 1,000 times above the class before
/// it (deferrable x1, flexible x1,000, critical x1,000,000), so a class is cut only
/// once the classes before it are at their limits (floors, pauses, budgets). The order
/// is exact while, within a class, weights differ by less than about 100 times (the
/// slopes of the throughput curves differ by less than 10 times); weights must then be
/// at most 1,000 (the planner's weight limit is 1e9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Priority {
    /// Deferrable, then flexible, then critical; by weight within a class.
    #[default]
    ClassOrder,
    /// The weights alone decide, across classes.
    Weights,
}

/// The largest job weight under [`Priority::ClassOrder`].
pub(super) const CLASS_ORDER_MAX_WEIGHT: f64 = 1_000.0;

impl Priority {
    /// Refuses a weight the policy cannot order.
    pub(super) fn check(self, entry: &JobEntry) -> Result<(), GridflexError> {
        if self == Priority::ClassOrder && entry.weight > CLASS_ORDER_MAX_WEIGHT {
            return Err(GridflexError::invalid(
                format!("jobs[{}].weight", entry.id),
                format!(
                    "must be at most {CLASS_ORDER_MAX_WEIGHT} under the class-order priority, got {}",
                    entry.weight
                ),
            ));
        }
        Ok(())
    }

    /// The weight the planner is given for a job of `class` with weight `weight`.
    pub(super) fn weight(self, class: &JobClass, weight: f64) -> f64 {
        match self {
            Priority::Weights => weight,
            Priority::ClassOrder => {
                let tier = match class {
                    JobClass::Deferrable { .. } => 1.0,
                    JobClass::Flexible { .. } => 1e3,
                    _ => 1e6,
                };
                weight * tier
            }
        }
    }
}

fn default_keep_reports() -> usize {
    64
}

pub(super) fn default_retry_initial() -> TimeDelta {
    TimeDelta::milliseconds(500)
}

pub(super) fn default_retry_max() -> TimeDelta {
    TimeDelta::seconds(30)
}

pub(super) fn default_restore_grace() -> TimeDelta {
    TimeDelta::seconds(60)
}

impl Default for OrchestratorOptions {
    fn default() -> Self {
        Self {
            planner: PlannerOptions::default(),
            telemetry_step: TimeDelta::seconds(10),
            meter_step: TimeDelta::minutes(5),
            capture: TimeDelta::seconds(2),
            capture_step: TimeDelta::milliseconds(20),
            regulation_prices: None,
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            restore_grace: default_restore_grace(),
            keep_reports: default_keep_reports(),
            priority: Priority::default(),
            history: HistoryOptions::default(),
        }
    }
}

/// Builds an [`Orchestrator`]; see the crate docs for a complete example.
pub struct OrchestratorBuilder<C> {
    pub(super) clock: C,
    pub(super) devices: Vec<DeviceHandle>,
    pub(super) jobs: Vec<(JobEntry, Option<Arc<dyn WorkloadControl>>)>,
    pub(super) facility: Option<FacilityModel>,
    pub(super) rules: Option<ProgramRules>,
    pub(super) audit: Option<AuditLog>,
    pub(super) history: Option<Arc<dyn HistoryStore>>,
    pub(super) options: OrchestratorOptions,
    pub(super) metrics: Option<Metrics>,
    pub(super) outside: Option<mpsc::Receiver<OutsideRestore>>,
}

impl<C: Clock> OrchestratorBuilder<C> {
    /// Registers a device.
    pub fn device(mut self, device: DeviceHandle) -> Self {
        self.devices.push(device);
        self
    }

    /// Registers devices.
    pub fn devices(mut self, devices: impl IntoIterator<Item = DeviceHandle>) -> Self {
        self.devices.extend(devices);
        self
    }

    /// Adds a job; `control` pauses and resumes it (a job without one is never paused).
    pub fn job(mut self, entry: JobEntry, control: Option<Arc<dyn WorkloadControl>>) -> Self {
        self.jobs.push((entry, control));
        self
    }

    /// The facility power model (fixed part plus a multiplier on IT power).
    pub fn facility(mut self, facility: FacilityModel) -> Self {
        self.facility = Some(facility);
        self
    }

    /// The program rules.
    pub fn rules(mut self, rules: ProgramRules) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Where the audit log goes (default: discarded).
    pub fn audit(mut self, audit: AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Where the orchestrator's metrics go (default: nothing is measured). See
    /// [`crate::metrics`] for registering them in a Prometheus registry.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Where the history goes and comes from (default: none, and every event is
    /// settled on what this run recorded). See [`crate::history`].
    pub fn history(mut self, store: Arc<dyn HistoryStore>) -> Self {
        self.history = Some(store);
        self
    }

    /// Where restores made outside the orchestrator arrive: node agents whose lease
    /// lapsed, or that restarted, report on the sending side (for example
    /// `gridflex_agent::AgentClient::forward_lapses`), and the run loop hands each to
    /// [`Orchestrator::restored_outside`], which corrects what the orchestrator believes
    /// each job holds and re-plans an active event over the restored hardware. The run
    /// goes on when every sender is gone.
    pub fn outside_restores(mut self, restores: mpsc::Receiver<OutsideRestore>) -> Self {
        self.outside = Some(restores);
        self
    }

    /// Other settings.
    pub fn options(mut self, options: OrchestratorOptions) -> Self {
        self.options = options;
        self
    }

    /// Checks everything and builds the orchestrator.
    pub fn build(self) -> Result<Orchestrator<C>, GridflexError> {
        let rules = self
            .rules
            .ok_or_else(|| GridflexError::invalid("rules", "program rules are required"))?;
        let facility = self
            .facility
            .ok_or_else(|| GridflexError::invalid("facility", "a facility model is required"))?;
        let mut seen = HashSet::new();
        for d in &self.devices {
            if !seen.insert(d.id().clone()) {
                return Err(GridflexError::invalid(
                    "devices",
                    format!("device {} is registered twice", d.id()),
                ));
            }
        }
        if self.jobs.is_empty() {
            return Err(GridflexError::invalid(
                "jobs",
                "at least one job is required",
            ));
        }
        self.options.planner.validate()?;
        for (field, step) in [
            ("options.telemetry_step_s", self.options.telemetry_step),
            ("options.meter_step_s", self.options.meter_step),
            ("options.capture_step_s", self.options.capture_step),
            ("options.retry_initial_s", self.options.retry_initial),
            ("options.retry_max_s", self.options.retry_max),
        ] {
            if step <= TimeDelta::zero() {
                return Err(GridflexError::invalid(field, "must be positive"));
            }
        }
        let jobs = bind(self.jobs, &self.devices)?;
        for job in &jobs {
            self.options.priority.check(&job.entry)?;
        }
        let claimed: HashSet<_> = jobs
            .iter()
            .flat_map(|j| j.devices.iter().map(|d| d.id().clone()))
            .collect();
        let unassigned = self
            .devices
            .iter()
            .filter(|d| !claimed.contains(d.id()))
            .cloned()
            .collect();
        let n = jobs.len();
        let job_index = jobs
            .iter()
            .enumerate()
            .map(|(j, b)| (b.entry.id.as_str().to_owned(), j))
            .collect();
        let job_max = jobs.iter().map(job_top).collect();
        let ramp = RampRate::per_second(rules.restore_ramp_per_s)?;
        let meter_step = self.options.meter_step;
        let keep_reports = self.options.keep_reports.max(1);
        let step_s = meter_step.num_seconds().max(1);
        let keep_intervals =
            usize::try_from(i64::from(self.options.history.meter_days.max(1)) * 86_400 / step_s)
                .unwrap_or(usize::MAX);
        let mut meter = MeterRecorder::new(meter_step, keep_intervals);
        let (history, event_windows, next_event) = match self.history {
            Some(store) => {
                let loaded = history::load(
                    &*store,
                    self.clock.now(),
                    meter_step,
                    self.options.history.meter_days,
                )?;
                if let Some(m) = &loaded.meter {
                    meter.seed(m);
                }
                let writer = history::writer(store, &self.options.history)?;
                (
                    Some(writer),
                    loaded.event_windows,
                    loaded.last_event_id.unwrap_or(0),
                )
            }
            None => (None, Vec::new(), 0),
        };
        Ok(Orchestrator {
            clock: self.clock,
            engine: ProgramEngine::new(rules)?,
            ramp,
            jobs,
            unassigned,
            all_devices: self.devices,
            facility,
            options: self.options,
            audit: self.audit.unwrap_or_else(AuditLog::discard),
            state: vec![JobState::default(); n],
            demand: vec![None; n],
            measured: vec![None; n],
            other_power: Power::ZERO,
            facility_power: None,
            decision_power: None,
            active: None,
            tasks: Schedule::default(),
            meter,
            notice: None,
            history,
            event_windows,
            next_sweep: None,
            capture: None,
            reports: Vec::new(),
            report_tx: broadcast::channel(keep_reports).0,
            ended: Vec::new(),
            deferred_plans: Vec::new(),
            deferred: Vec::new(),
            fleet_cache: None,
            waiting: Vec::new(),
            job_index,
            job_max,
            next_event,
            counts: RunSummary::default(),
            intake_after: None,
            batch: Vec::new(),
            control_slots: Vec::new(),
            cap_slots: Vec::new(),
            metrics: self.metrics,
            signal_started: None,
            outside: self.outside,
        })
    }
}
