//! A signal's path: program rules, then the arbiter, then the audit.

use super::*;

impl<C: Clock> Orchestrator<C> {
    /// Handles one signal now: evaluates the rules, plans, and issues the first stage.
    ///
    /// Traced as a `signal` span (the signal's kind, and the event id once acted on)
    /// holding `decision`, `plan` and `actuation` spans.
    pub async fn handle_signal(&mut self, signal: GridSignal) -> Handled {
        use tracing::Instrument;
        self.signal_started = self.metrics.as_ref().map(|_| std::time::Instant::now());
        let span = tracing::info_span!(
            "signal",
            kind = signal_kind(&signal),
            event_id = tracing::field::Empty
        );
        let handled = self.evaluate_and_act(signal).instrument(span.clone()).await;
        if let Handled::Actuated { event_id, .. } = handled {
            span.record("event_id", event_id);
        }
        self.signal_started = None;
        handled
    }

    async fn evaluate_and_act(&mut self, signal: GridSignal) -> Handled {
        let now = self.clock.now();
        // A job the sweep could not read counts as the plan counts it: the reduction a
        // facility cap asks for is checked against the enrolled one with no load left
        // out.
        let facility = self.decision_power.unwrap_or(Power::ZERO);
        let decision = tracing::info_span!("decision")
            .in_scope(|| self.engine.evaluate(&signal, now, facility));
        tracing::debug!(?decision, "decided");
        if let (GridSignal::Regulation(r), Some(a)) = (&signal, self.active.as_mut())
            && matches!(a.curtailment.cause, Cause::Regulation)
        {
            a.reg_signal.push(Sample {
                at: r.at,
                value: r.signal.value(),
            });
        }
        let lmp = match &signal {
            GridSignal::Price(p) => Some((p.interval, p.lmp)),
            _ => None,
        };
        // Every price of the followed node during a price event counts for settlement,
        // whether it extended the event or not.
        if let (GridSignal::Price(p), Some(a), Some(rule)) = (
            &signal,
            self.active.as_mut(),
            self.engine.rules().price.as_ref(),
        ) && matches!(a.curtailment.cause, Cause::Price { .. })
            && p.node == rule.node
            && p.run == rule.run
        {
            a.prices.push((p.interval, p.lmp));
        }
        // Regulation yields to a curtailment event: a set-point every 2 s must not keep
        // replacing a price, dispatch or emergency obligation (nor be replaced by it and
        // come back 2 s later). The set-point is logged as ignored, with the reason.
        let curtailing = self
            .active
            .as_ref()
            .filter(|a| !a.restoring && !matches!(a.curtailment.cause, Cause::Regulation))
            .map(|a| a.id);
        let decision = match (decision, curtailing) {
            (Decision::Curtail(c), Some(event_id)) if matches!(c.cause, Cause::Regulation) => {
                Decision::Ignore {
                    reason: IgnoreReason::RegulationSuspended { event_id },
                }
            }
            (other, _) => other,
        };
        let outcome = match &decision {
            Decision::Curtail(c) if c.window.start() > now => {
                self.schedule(
                    c.window.start(),
                    Task::Start(c.clone(), signal.market(), now),
                );
                Handled::Scheduled {
                    at: c.window.start(),
                }
            }
            Decision::Curtail(c) => {
                let reg = match &signal {
                    GridSignal::Regulation(r) => Some(Sample {
                        at: r.at,
                        value: r.signal.value(),
                    }),
                    _ => None,
                };
                self.admit(c.clone(), signal.market(), lmp, reg).await
            }
            Decision::Ignore { .. } => Handled::Ignored,
            Decision::Refuse(_) => Handled::Refused,
        };
        // Regulation performance is scored on metered response: read the facility power
        // once the new set-point's commands are out (what it shows is still the response
        // to the previous set-point, which is what the score pairs with each signal).
        if let (GridSignal::Regulation(_), Some(rule)) = (&signal, self.engine.rules().regulation) {
            let regulating = self
                .active
                .as_ref()
                .is_some_and(|a| matches!(a.curtailment.cause, Cause::Regulation));
            if regulating
                && let Some(p) = self.instant_facility_power().await
                && let Some(a) = self.active.as_mut()
            {
                a.reg_response.push(Sample {
                    at: now,
                    value: rule.base_point - p,
                });
            }
        }
        // Logged after the commands went out: the audit never delays actuation.
        if let Some(m) = &self.metrics {
            m.signal(&signal, &outcome);
            if let Decision::Refuse(r) = &decision {
                m.refused(r);
            }
        }
        let mut first = vec![(now, AuditEvent::Signal { signal })];
        let event_id = match outcome {
            Handled::Actuated { event_id, .. } => Some(event_id),
            _ => None,
        };
        if let Decision::Refuse(r) = &decision {
            first.push((now, AuditEvent::Refused { refusal: r.clone() }));
        }
        first.push((now, AuditEvent::Decision { event_id, decision }));
        self.emit_with(first);
        outcome
    }
}

/// The signal's kind, as traced.
fn signal_kind(signal: &GridSignal) -> &'static str {
    match signal {
        GridSignal::Price(_) => "price",
        GridSignal::Dispatch(_) => "dispatch",
        GridSignal::Alert(_) => "alert",
        GridSignal::Regulation(_) => "regulation",
        _ => "other",
    }
}
