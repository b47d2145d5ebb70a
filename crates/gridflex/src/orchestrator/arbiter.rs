//! The arbiter: which obligation is active, which waits, and how one hands over to the next.

use super::*;

#[derive(Debug)]
pub(super) struct Active {
    pub(super) id: u64,
    pub(super) curtailment: Curtailment,
    pub(super) started: DateTime<Utc>,
    pub(super) market: Market,
    pub(super) zone: MarketZone,
    pub(super) plan: Arc<Plan>,
    /// Prices seen at the followed node during a price event, for settlement.
    pub(super) prices: Vec<(Interval, Price)>,
    pub(super) reg_signal: Vec<Sample<f64>>,
    pub(super) reg_response: Vec<Sample<Power>>,
    pub(super) restoring: bool,
}

impl<C: Clock> Orchestrator<C> {
    /// Admits a curtailment while another may be running. Concurrent obligations are
    /// served strictest first: a new one with a lower (or equal) facility cap takes
    /// over and the one it interrupts waits for the rest of its window; a looser one
    /// waits for the active one to end. Caps compare on the active plan's uncurtailed
    /// baseline, so a reduce-by target counts as `baseline - reduction`.
    pub(super) async fn admit(
        &mut self,
        c: Curtailment,
        market: Market,
        price: Option<(Interval, Price)>,
        first_regulation: Option<Sample<f64>>,
    ) -> Handled {
        let now = self.clock.now();
        let competing = self
            .active
            .as_ref()
            .filter(|a| !a.restoring && !same_obligation(&a.curtailment.cause, &c.cause));
        if let Some(a) = competing {
            let baseline = a.plan.baseline;
            let (new_cap, active_cap) = (
                cap_of(c.target, baseline),
                cap_of(a.curtailment.target, baseline),
            );
            if new_cap > active_cap {
                let at = a.curtailment.window.end();
                let note = format!(
                    "{} waits: event {} ({}) holds a stricter cap ({active_cap:.0} against {new_cap:.0})",
                    c.cause, a.id, a.curtailment.cause
                );
                self.waiting.push((c, market));
                self.log(AuditEvent::Note { message: note });
                return Handled::Scheduled { at };
            }
            if let Ok(rest) = Interval::new(now, a.curtailment.window.end()) {
                let interrupted = Curtailment {
                    window: rest,
                    ..a.curtailment.clone()
                };
                let note = format!(
                    "event {} ({}) waits behind a stricter {}",
                    a.id, a.curtailment.cause, c.cause
                );
                self.waiting.push((interrupted, a.market));
                self.log(AuditEvent::Note { message: note });
            }
        }
        self.start_or_update(c, market, price, first_regulation)
            .await
    }

    /// The strictest waiting obligation whose window is still open, dropping those
    /// that have ended.
    pub(super) fn take_waiting(
        &mut self,
        now: DateTime<Utc>,
        baseline: Power,
    ) -> Option<(Curtailment, Market)> {
        let before = self.waiting.len();
        self.waiting.retain(|(c, _)| c.window.end() > now);
        if self.waiting.len() < before {
            let message = format!(
                "{} waiting obligation(s) ended before they could run",
                before - self.waiting.len()
            );
            self.log(AuditEvent::Note { message });
        }
        let best = (0..self.waiting.len()).min_by(|&i, &j| {
            cap_of(self.waiting[i].0.target, baseline)
                .total_cmp(&cap_of(self.waiting[j].0.target, baseline))
        })?;
        let (c, market) = self.waiting.swap_remove(best);
        let window = Interval::new(now.max(c.window.start()), c.window.end()).unwrap_or(c.window);
        Some((Curtailment { window, ..c }, market))
    }

    /// Starts a new event, or updates the active one when `c` is the same obligation
    /// (a newer price, the same dispatch re-sent). A new event takes over from the
    /// active one directly: its plan is applied as a change from the fleet as it is, so
    /// a job paused under both is never resumed and paused again, and the pause budget
    /// of the episode carries on.
    pub(super) async fn start_or_update(
        &mut self,
        c: Curtailment,
        market: Market,
        price: Option<(Interval, Price)>,
        first_regulation: Option<Sample<f64>>,
    ) -> Handled {
        let now = self.clock.now();
        let update = self
            .active
            .as_ref()
            .is_some_and(|a| !a.restoring && same_obligation(&a.curtailment.cause, &c.cause));
        // Plan before anything changes: a plan that cannot be made leaves the active
        // event (if any) as it is.
        let plan = match self.plan(&c, now) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                let id = self.active.as_ref().map_or(self.next_event + 1, |a| a.id);
                self.log(AuditEvent::Error {
                    message: format!("planning event {id}: {e}"),
                });
                return Handled::Refused;
            }
        };
        let id = if update {
            let a = self.active.as_ref().map(|a| a.id).unwrap_or_default();
            self.unschedule_event(a);
            a
        } else {
            if let Some(prev) = self.active.as_ref().map(|a| a.id) {
                self.retire(prev, "a newer event takes over");
            }
            self.next_event += 1;
            self.next_event
        };
        if !update {
            let mut active = Active {
                id,
                curtailment: c.clone(),
                started: now,
                market,
                zone: market.zone(),
                plan: plan.clone(),
                prices: price.into_iter().collect(),
                reg_signal: Vec::new(),
                reg_response: Vec::new(),
                restoring: false,
            };
            if let Some(first) = first_regulation {
                active.reg_signal.push(first);
            }
            self.active = Some(active);
            if !matches!(c.cause, Cause::Regulation) {
                self.begin_capture(id, now).await;
            }
        } else if let Some(a) = self.active.as_mut() {
            a.curtailment.window = Interval::new(a.curtailment.window.start(), c.window.end())
                .unwrap_or(a.curtailment.window);
            a.curtailment.target = c.target;
            a.plan = plan.clone();
        }
        // A plan's first stage describes the whole fleet from a clean state, so it is
        // applied as a diff against a clean fleet, for a new event and an update alike.
        let commands = self.execute_plan(id, &plan, now).await;
        if !update {
            self.defer(AuditEvent::Plan { event_id: id, plan });
        } else {
            self.defer(AuditEvent::PlanUpdate {
                event_id: id,
                target: plan.target,
                predicted_power: plan.predicted_power,
                shortfall: plan.shortfall,
                window_end: c.window.end(),
            });
        }
        Handled::Actuated {
            event_id: id,
            commands,
        }
    }

    /// Issues stage 0 now (as a change from the fleet as it is) and schedules the later
    /// stages and the restore.
    pub(super) async fn execute_plan(
        &mut self,
        id: u64,
        plan: &Arc<Plan>,
        start: DateTime<Utc>,
    ) -> usize {
        let mut commands = 0;
        let next = match plan.stages.first() {
            Some(first) => {
                commands = self.execute_stage(id, &first.actions, true).await;
                Step::Stage(0).next(plan)
            }
            None => Step::RestoreBegin,
        };
        self.schedule_step(id, plan, start, next);
        commands
    }
}

/// Whether two causes are one obligation, so that the newer updates the event of the
/// older: prices of the followed node, the emergency alerts, and the regulation
/// set-points are each one obligation; dispatches are one only under the same event id
/// (an unrelated dispatch is an obligation of its own, served strictest first).
pub(super) fn same_obligation(a: &Cause, b: &Cause) -> bool {
    match (a, b) {
        (Cause::Dispatch { id: x, .. }, Cause::Dispatch { id: y, .. }) => x == y,
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

/// A target as a facility cap, given the uncurtailed facility power.
pub(super) fn cap_of(target: Target, baseline: Power) -> Power {
    match target {
        Target::FacilityCap(cap) => cap,
        Target::ReduceBy(r) => baseline - r,
        // Targets the planner adds later compare as the loosest.
        _ => baseline,
    }
}
