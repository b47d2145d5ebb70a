//! The arbiter: which obligation is active, which waits, and how one hands over to the next.

use super::*;

#[derive(Debug)]
pub(super) struct Active {
    pub(super) id: u64,
    pub(super) curtailment: Curtailment,
    pub(super) started: DateTime<Utc>,
    /// When the site was told of it (the signal's arrival; earlier than `started`
    /// for a dispatch with a lead time).
    pub(super) notified: DateTime<Utc>,
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
    /// How `c` meets the active event (see [`arbitrate`]).
    fn admission(&self, c: &Curtailment) -> Admission {
        let active = self
            .active
            .as_ref()
            .map(|a| (&a.curtailment, a.restoring, a.plan.baseline));
        arbitrate(active, c)
    }

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
        match self.admission(&c) {
            Admission::Wait { holder_cap, cap } => {
                let (behind, at) = self
                    .active
                    .as_ref()
                    .map_or((0, now), |a| (a.id, a.curtailment.window.end()));
                let record = AuditEvent::Waiting {
                    cause: c.cause.clone(),
                    behind,
                    cap,
                    holder_cap,
                };
                self.waiting.push((c, market));
                self.log(record);
                return Handled::Scheduled { at };
            }
            Admission::TakeOver => {
                if let Some(a) = self.active.as_ref()
                    && let Ok(rest) = Interval::new(now, a.curtailment.window.end())
                {
                    let interrupted = Curtailment {
                        window: rest,
                        ..a.curtailment.clone()
                    };
                    let record = AuditEvent::Interrupted {
                        event_id: a.id,
                        by: c.cause.clone(),
                    };
                    self.waiting.push((interrupted, a.market));
                    self.log(record);
                }
            }
            Admission::Start | Admission::Update => {}
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
            self.log(AuditEvent::WaitingExpired {
                count: before - self.waiting.len(),
            });
        }
        let best = strictest(&self.waiting, baseline)?;
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
        let update = matches!(self.admission(&c), Admission::Update);
        // Plan before anything changes: a plan that cannot be made leaves the active
        // event (if any) as it is.
        let prospective = match (update, self.active.as_ref()) {
            (true, Some(a)) => a.id,
            _ => self.next_event + 1,
        };
        let planned =
            tracing::info_span!("plan", event_id = prospective).in_scope(|| self.plan(&c, now));
        let plan = match planned {
            Ok(p) => Arc::new(p),
            Err(e) => {
                if let Some(m) = &self.metrics {
                    m.plan_failed();
                }
                let id = self.active.as_ref().map_or(self.next_event + 1, |a| a.id);
                self.log(AuditEvent::PlanFailed {
                    event_id: id,
                    error: e.to_string(),
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
                self.retire(prev);
            }
            self.next_event += 1;
            self.next_event
        };
        if !update {
            let mut active = Active {
                id,
                curtailment: c.clone(),
                started: now,
                notified: self.notice.take().map_or(now, |t| t.min(now)),
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
            if let Some(m) = &self.metrics {
                m.event_started(&c.cause);
            }
            self.store(history::span(id, c.window, &c.cause));
            if !matches!(c.cause, Cause::Regulation) {
                self.begin_capture(id, now).await;
            }
        } else if let Some(a) = self.active.as_mut() {
            a.curtailment.window = Interval::new(a.curtailment.window.start(), c.window.end())
                .unwrap_or(a.curtailment.window);
            a.curtailment.target = c.target;
            a.plan = plan.clone();
        }
        if let Some(m) = &self.metrics {
            m.active(Some((id, plan.baseline, cap_of(c.target, plan.baseline))));
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

/// How a new obligation meets the active one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Admission {
    /// Nothing is active (or the active event is restoring): a new event starts.
    Start,
    /// The same obligation again (a newer price, the same dispatch re-sent): the active
    /// event is updated.
    Update,
    /// A stricter (or equally strict) obligation: it takes over, the active one waits
    /// for the rest of its window.
    TakeOver,
    /// A looser obligation: it waits for the active one to end.
    Wait {
        /// The active event's cap.
        holder_cap: Power,
        /// The new obligation's cap.
        cap: Power,
    },
}

/// Concurrent obligations are served strictest first. `active` is the active event's
/// curtailment, whether it is restoring, and its plan's uncurtailed baseline, on which
/// caps compare (a reduce-by target counts as `baseline - reduction`).
pub(super) fn arbitrate(
    active: Option<(&Curtailment, bool, Power)>,
    new: &Curtailment,
) -> Admission {
    match active {
        Some((a, false, _)) if same_obligation(&a.cause, &new.cause) => Admission::Update,
        Some((a, false, baseline)) => {
            let (cap, holder_cap) = (cap_of(new.target, baseline), cap_of(a.target, baseline));
            if cap > holder_cap {
                Admission::Wait { holder_cap, cap }
            } else {
                Admission::TakeOver
            }
        }
        _ => Admission::Start,
    }
}

/// The strictest of the waiting obligations (lowest cap on `baseline`).
pub(super) fn strictest(waiting: &[(Curtailment, Market)], baseline: Power) -> Option<usize> {
    (0..waiting.len()).min_by(|&i, &j| {
        cap_of(waiting[i].0.target, baseline).total_cmp(&cap_of(waiting[j].0.target, baseline))
    })
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use gridflex_signals::Program;

    use super::*;

    fn kw(v: f64) -> Power {
        Power::kilowatts(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn dispatch(id: &str, target: Target) -> Curtailment {
        let t0 = Utc.with_ymd_and_hms(2025, 8, 1, 18, 0, 0).unwrap();
        Curtailment {
            cause: Cause::Dispatch {
                id: id.into(),
                program: Program::CaisoPdr,
            },
            target,
            window: Interval::new(t0, t0 + TimeDelta::hours(1)).unwrap_or_else(|e| panic!("{e}")),
            response_time: TimeDelta::minutes(10),
        }
    }

    #[test]
    fn strictest_first_and_the_same_obligation_updates() {
        let baseline = kw(1000.0);
        let active = dispatch("a", Target::FacilityCap(kw(800.0)));
        let held = Some((&active, false, baseline));
        // The same dispatch again updates the event.
        assert_eq!(
            arbitrate(held, &dispatch("a", Target::FacilityCap(kw(900.0)))),
            Admission::Update
        );
        // A stricter (or equally strict) one takes over; a reduce-by compares on the baseline.
        assert_eq!(
            arbitrate(held, &dispatch("b", Target::ReduceBy(kw(200.0)))),
            Admission::TakeOver
        );
        assert_eq!(
            arbitrate(held, &dispatch("b", Target::FacilityCap(kw(900.0)))),
            Admission::Wait {
                holder_cap: kw(800.0),
                cap: kw(900.0)
            }
        );
        // An event that is restoring holds nothing: whatever comes starts afresh.
        let restoring = Some((&active, true, baseline));
        assert_eq!(
            arbitrate(restoring, &dispatch("a", Target::FacilityCap(kw(900.0)))),
            Admission::Start
        );
        assert_eq!(
            arbitrate(None, &dispatch("a", Target::FacilityCap(kw(900.0)))),
            Admission::Start
        );
    }

    #[test]
    fn the_strictest_waiting_obligation_goes_next() {
        let w = |id, cap| (dispatch(id, Target::FacilityCap(kw(cap))), Market::Caiso);
        let waiting = vec![w("a", 900.0), w("b", 700.0), w("c", 800.0)];
        assert_eq!(strictest(&waiting, kw(1000.0)), Some(1));
        assert_eq!(strictest(&[], kw(1000.0)), None);
    }
}
