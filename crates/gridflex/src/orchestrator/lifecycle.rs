//! How events end: restores, hand-overs without a restore, reports, and shutdown.

use super::*;

/// Data of an ended event, kept until its report is made.
#[derive(Debug)]
pub(super) struct Ended {
    pub(super) active: Active,
    pub(super) capture: Vec<Sample<Power>>,
}

impl<C: Clock> Orchestrator<C> {
    /// Ends an event now: cancels its remaining stages and restores everything at once.
    pub(super) async fn end_event(&mut self, id: u64, reason: RestoreReason) {
        self.cut_window(id);
        self.log(AuditEvent::Restore {
            event_id: id,
            reason,
        });
        self.execute_stage(id, &[], true).await;
        self.finish_event(id).await;
    }

    /// Cancels an event's remaining steps and, if it ends before its window does,
    /// shortens the window to the part that ran (what it is reported over).
    pub(super) fn cut_window(&mut self, id: u64) {
        self.unschedule_event(id);
        let now = self.clock.now();
        if let Some(a) = self.active.as_mut().filter(|a| a.id == id) {
            let w = a.curtailment.window;
            if now < w.end() {
                a.curtailment.window = Interval::new(w.start(), now).unwrap_or(w);
            }
        }
    }

    /// Ends an event without restoring: the next event's plan takes over from the fleet
    /// as it is. The ended event is reported over the part that ran.
    pub(super) fn retire(&mut self, id: u64) {
        self.cut_window(id);
        self.log(AuditEvent::TakenOver { event_id: id });
        self.close(id);
    }

    pub(super) async fn finish_event(&mut self, id: u64) {
        self.ensure_restored(id).await;
        self.close(id);
        self.end_episode_if_restored();
    }

    /// Takes the active event `id` out and schedules its report.
    pub(super) fn close(&mut self, id: u64) {
        let Some(active) = self.active.take_if(|a| a.id == id) else {
            return;
        };
        if let Some(m) = &self.metrics {
            m.active(None);
        }
        let capture = match self.capture.take() {
            Some(c) if c.event_id == id => c.samples,
            other => {
                self.capture = other;
                Vec::new()
            }
        };
        // Report once the meter interval holding the window end is complete.
        let step = self.options.meter_step;
        let end = active.curtailment.window.end().min(
            self.clock
                .now()
                .max(active.started + TimeDelta::nanoseconds(1)),
        );
        let at = ceil_to(end, step) + self.options.telemetry_step;
        self.schedule(at, Task::Report { event_id: id });
        let window = active.curtailment.window;
        self.store(history::span(id, window, &active.curtailment.cause));
        if !capture.is_empty() {
            self.store(Record::Capture {
                event_id: id,
                samples: capture
                    .iter()
                    .map(|s| gridflex_store::CaptureSample {
                        at: s.at,
                        power: s.value,
                    })
                    .collect(),
            });
        }
        // The same window again (a signal repeated after its event ended) excludes no
        // other day: kept once, so the list cannot grow without bound between prunes.
        if !matches!(active.curtailment.cause, Cause::Regulation)
            && !self.event_windows.contains(&window)
        {
            self.event_windows.push(window);
            // Only windows within the meter held can exclude a baseline day.
            let horizon = self.clock.now()
                - TimeDelta::days(i64::from(self.options.history.meter_days.max(1)));
            self.event_windows.retain(|w| w.end() > horizon);
        }
        self.ended.push(Ended { active, capture });
    }

    pub(super) fn make_report(&mut self, event_id: u64) {
        let Some(i) = self.ended.iter().position(|e| e.active.id == event_id) else {
            return;
        };
        let span = tracing::info_span!("report", event_id);
        let _entered = span.enter();
        let ended = self.ended.swap_remove(i);
        let a = ended.active;
        let meter = match self.meter.series() {
            Ok(m) => m,
            Err(e) => {
                self.log(AuditEvent::MeterUnavailable {
                    event_id,
                    error: e.to_string(),
                });
                None
            }
        };
        let regulation = match (&a.curtailment.cause, self.engine.rules().regulation) {
            (Cause::Regulation, Some(rule)) => Some(RegulationInput {
                signal: &a.reg_signal,
                response: &a.reg_response,
                capability: rule.capability,
                prices: self.options.regulation_prices,
            }),
            _ => None,
        };
        let report = report::build(ReportInput {
            event_id,
            cause: a.curtailment.cause.clone(),
            window: Interval::new(
                a.started.min(a.curtailment.window.start()),
                a.curtailment.window.end(),
            )
            .unwrap_or(a.curtailment.window),
            target: a.plan.target,
            predicted: a.plan.predicted_power,
            shortfall: a.plan.shortfall,
            zone: a.zone,
            event_window: a.curtailment.window,
            notified: a.notified,
            settlement: self
                .engine
                .rules()
                .settlement_for(&a.curtailment.cause, a.market),
            event_windows: &self.event_windows,
            meter,
            capture: &ended.capture,
            prices: &a.prices,
            regulation,
        });
        self.log(AuditEvent::Report {
            event_id,
            report: Box::new(report.clone()),
        });
        match serde_json::to_string(&report) {
            Ok(json) => self.store(Record::Report(gridflex_store::StoredReport {
                event_id,
                at: self.clock.now(),
                json,
            })),
            Err(e) => self.log(AuditEvent::HistoryFailed {
                error: format!("cannot encode report {event_id}: {e}"),
            }),
        }
        self.counts.events += 1;
        if let Some(m) = &self.metrics {
            m.report(&report);
        }
        // Kept for `take_reports` up to the bound (the newest), and sent to every
        // subscriber; the audit log has them all.
        let _ = self.report_tx.send(report.clone());
        if self.reports.len() >= self.options.keep_reports {
            let excess = self.reports.len() + 1 - self.options.keep_reports.max(1);
            self.reports.drain(..excess.min(self.reports.len()));
        }
        self.reports.push(report);
    }

    /// Ends the active event by operator order: everything is restored at once and
    /// waiting obligations are dropped (events scheduled to start later still will).
    /// Returns the event ended, if one was active.
    pub async fn end_by_operator(&mut self) -> Option<u64> {
        let id = self.active.as_ref().map(|a| a.id);
        if let Some(id) = id {
            self.end_event(id, RestoreReason::Operator).await;
        }
        if !self.waiting.is_empty() {
            self.log(AuditEvent::ObligationsDropped {
                waiting: self.waiting.len(),
                scheduled: 0,
            });
            self.waiting.clear();
        }
        self.emit_deferred();
        id
    }

    /// Restores everything now (staggering is skipped: shutdown must finish), reports
    /// every ended event, and drops anything scheduled. Returns the jobs whose restore
    /// could not be confirmed within [`OrchestratorOptions::restore_grace`] (empty when
    /// every job was given back).
    pub async fn shutdown(&mut self, reason: StopReason) -> Vec<JobId> {
        if let Some(id) = self.active.as_ref().map(|a| a.id) {
            self.end_event(id, RestoreReason::Shutdown).await;
        }
        let (waiting, scheduled) = (self.waiting.len(), self.tasks.starts());
        if waiting + scheduled > 0 {
            self.log(AuditEvent::ObligationsDropped { waiting, scheduled });
        }
        self.waiting.clear();
        self.tasks.clear();
        if !self.state.iter().all(JobState::is_clean) {
            self.converge().await;
        }
        let ids: Vec<u64> = self.ended.iter().map(|e| e.active.id).collect();
        for id in ids {
            self.make_report(id);
        }
        let curtailed_left = self.curtailed_jobs();
        self.emit_deferred();
        self.flush_history();
        self.log(AuditEvent::Stopped {
            reason,
            curtailed_left: curtailed_left.clone(),
        });
        self.emit_deferred();
        curtailed_left
    }
}
