//! Program rules: what the site has committed to, and how each grid signal turns into a
//! curtailment request, a regulation set-point, nothing, or a refusal.
//!
//! [`ProgramRules`] is plain configuration (serde, validated). [`ProgramEngine`] applies
//! it to signals one at a time; it keeps only the state the rules need (an active
//! price curtailment, for hysteresis and minimum hold) and takes the time and the
//! facility's present power as arguments, so it is pure and testable without a clock.
//!
//! ```
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use gridflex::core::{Interval, PricingNodeId};
//! use gridflex::{power, price};
//! use gridflex::program::{Decision, PriceRule, ProgramEngine, ProgramRules};
//! use gridflex::signals::{GridSignal, Market, MarketRun, PricePoint};
//!
//! let node = PricingNodeId::new("TH_NP15_GEN-APND")?;
//! let mut rules = ProgramRules::new(Market::Caiso, power!(400 kW));
//! rules.price = Some(PriceRule::new(node.clone(), MarketRun::CaisoRtm,
//!     price!(200 per MWh), power!(700 kW)));
//! let mut engine = ProgramEngine::new(rules)?;
//!
//! let t0 = Utc.with_ymd_and_hms(2025, 8, 14, 0, 0, 0).unwrap();
//! let spike = PricePoint::new(MarketRun::CaisoRtm, node,
//!     Interval::new(t0, t0 + TimeDelta::minutes(5))?, price!(950 per MWh));
//! let decision = engine.evaluate(&GridSignal::Price(spike), t0, power!(1000 kW));
//! let Decision::Curtail(c) = decision else { panic!("{decision:?}") };
//! assert_eq!(c.window.duration(), TimeDelta::minutes(15)); // the minimum hold
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::{Interval, Power, Price, PricingNodeId, power};
use gridflex_planner::Target;
use gridflex_signals::{
    AlertKind, AlertLevel, DispatchEvent, DispatchTarget, GridAlert, GridSignal, Market, MarketRun,
    PricePoint, Program, RegulationKind, RegulationSample,
};
use serde::{Deserialize, Serialize};

use gridflex_mv::baseline::Method;
use gridflex_mv::{Baseline, GapPolicy};

use crate::GridflexError;

/// Curtail to a facility cap while the LMP at one node and market run is high.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PriceRule {
    /// The pricing node whose LMP the site settles at.
    pub node: PricingNodeId,
    /// The market run to follow (for example CAISO `RTM`).
    pub run: MarketRun,
    /// Curtail while the LMP is at or above this price.
    pub strike: Price,
    /// Hysteresis: an active curtailment is extended through intervals priced at or
    /// above this (default: the strike, meaning no band).
    pub release_below: Price,
    /// A curtailment lasts at least this long once started (default 15 minutes).
    #[serde(rename = "min_hold_s", with = "gridflex_core::duration_s::delta")]
    pub min_hold: TimeDelta,
    /// The facility power to stay under while curtailed.
    pub facility_cap: Power,
    /// How fast the cap must be reached (default 5 seconds).
    #[serde(rename = "response_time_s", with = "gridflex_core::duration_s::delta")]
    pub response_time: TimeDelta,
    /// How its events settle (default `None`: the market's, see
    /// [`Settlement::for_market`]).
    #[serde(default)]
    pub settlement: Option<Settlement>,
}

impl PriceRule {
    /// A rule with the defaults: no hysteresis band, 15-minute hold, 5-second response.
    pub fn new(node: PricingNodeId, run: MarketRun, strike: Price, facility_cap: Power) -> Self {
        Self {
            node,
            run,
            strike,
            release_below: strike,
            min_hold: TimeDelta::minutes(15),
            facility_cap,
            response_time: TimeDelta::seconds(5),
            settlement: None,
        }
    }
}

/// Comply with demand-response dispatches of the enrolled programs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DispatchRule {
    /// The programs the site is enrolled in. A PJM load-management program matches
    /// whatever its lead time; a custom program matches by name and market.
    pub programs: Vec<Program>,
    /// How dispatched events settle, for every program (default `None`: each
    /// program's own, see [`Settlement::for_program`]).
    #[serde(default)]
    pub settlement: Option<Settlement>,
}

impl DispatchRule {
    /// Enrols the site in these programs, each settled by its default method.
    pub fn new(programs: Vec<Program>) -> Self {
        Self {
            programs,
            settlement: None,
        }
    }
}

/// Pre-agreed facility caps for emergency alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmergencyRule {
    /// Caps by alert level; an alert takes the entry of the highest level at or below
    /// its own. Levels below every entry are logged and ignored.
    pub caps: Vec<LevelCap>,
    /// How fast the cap must be reached (default 60 seconds).
    #[serde(rename = "response_time_s", with = "gridflex_core::duration_s::delta")]
    pub response_time: TimeDelta,
    /// How alert events settle (default `None`: the market's, see
    /// [`Settlement::for_market`]).
    #[serde(default)]
    pub settlement: Option<Settlement>,
}

impl EmergencyRule {
    /// Caps by level, with the default 60-second response time.
    pub fn new(caps: Vec<LevelCap>) -> Self {
        Self {
            caps,
            response_time: TimeDelta::seconds(60),
            settlement: None,
        }
    }
}

/// How a program's events are settled: the baseline method and all its parameters
/// (day pools, counts, lookback, adjustment, gap policy), as `gridflex-mv` defines them.
///
/// Every event report computes the delivered reduction with it on the stored meter
/// history. When the history is too short for it (a new site, or a gap), the report
/// falls back to MBMA and says so ([`crate::report::Fallback`]).
///
/// The defaults ([`Settlement::for_program`], [`Settlement::for_market`]) take the
/// market's rule with one change: a candidate day with a meter gap (for example the
/// minutes of a restart) is skipped and replaced by the next older like day
/// ([`GapPolicy::SkipDay`]) instead of failing the whole baseline.
///
/// ```
/// use gridflex::mv::baseline::Method;
/// use gridflex::program::Settlement;
/// use gridflex::signals::{LeadTime, Market, Program};
///
/// assert_eq!(Settlement::for_market(Market::Caiso).method(), Method::Caiso10in10);
/// let lm = Program::PjmEmergencyLoadManagement { lead_time: LeadTime::Minutes30 };
/// assert_eq!(Settlement::for_program(&lm).method(), Method::PjmCbl);
/// assert_eq!(Settlement::for_program(&Program::PjmSynchronizedReserve).method(), Method::Mbma);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Settlement {
    /// The baseline method with its parameters.
    pub baseline: Baseline,
}

impl Settlement {
    /// The named method's market-default parameters, with gap days skipped.
    pub fn of(method: Method) -> Self {
        let mut baseline = method.baseline();
        baseline.gap_policy = GapPolicy::SkipDay;
        Self { baseline }
    }

    /// The method.
    pub const fn method(&self) -> Method {
        self.baseline.method
    }

    /// A market's default for curtailments not tied to a program (price-responsive
    /// curtailment, emergency alerts): CAISO 10-in-10 with its load-point adjustment
    /// (the PDR/RDRR status quo, markets.md §a), PJM's CBL with the Symmetric Additive
    /// Adjustment (economic DR, markets.md §b).
    pub fn for_market(market: Market) -> Self {
        match market {
            Market::Caiso => Self::of(Method::Caiso10in10),
            Market::Pjm => Self::of(Method::PjmCbl),
            // A market gridflex has no day-matching rule for: the meter either side.
            _ => Self::of(Method::Mbma),
        }
    }

    /// A program's default: CAISO PDR and RDRR 10-in-10 with adjustment; PJM load
    /// management and economic DR the CBL with SAA; PJM synchronized reserve MBMA (the
    /// load just before the event against each event interval, on 1-minute metering,
    /// markets.md §b); a custom program its market's default.
    pub fn for_program(program: &Program) -> Self {
        match program {
            Program::PjmSynchronizedReserve => Self::of(Method::Mbma),
            p => Self::for_market(p.market()),
        }
    }
}

/// One entry of an [`EmergencyRule`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LevelCap {
    /// The alert level from which this cap applies.
    pub level: AlertLevel,
    /// The facility power to stay under.
    pub facility_cap: Power,
}

impl LevelCap {
    /// The cap from `level` up.
    pub fn new(level: AlertLevel, facility_cap: Power) -> Self {
        Self {
            level,
            facility_cap,
        }
    }
}

/// Follow a regulation signal around a base point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegulationRule {
    /// Which signal the site is qualified for.
    pub kind: RegulationKind,
    /// Facility power at signal 0.
    pub base_point: Power,
    /// Regulation capability: the swing at signal +/-1.
    pub capability: Power,
    /// Each set-point holds for this long unless a newer one arrives (default 4 s, two
    /// PJM 2-second signal periods), so a silent signal source ends regulation by itself.
    #[serde(rename = "hold_s", with = "gridflex_core::duration_s::delta")]
    pub hold: TimeDelta,
}

impl RegulationRule {
    /// A rule with the default 4-second hold.
    pub fn new(kind: RegulationKind, base_point: Power, capability: Power) -> Self {
        Self {
            kind,
            base_point,
            capability,
            hold: TimeDelta::seconds(4),
        }
    }

    /// The facility set-point for a signal value. A load provides regulation up by
    /// consuming less, so `+1` is `base - capability` and `-1` is `base + capability`.
    /// `None` when `signal` is not finite.
    pub fn setpoint(&self, signal: f64) -> Option<Power> {
        Some(self.base_point - self.capability.checked_mul(signal)?)
    }
}

/// Everything the site has committed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProgramRules {
    /// The markets the site takes part in; signals from any other market are refused.
    pub markets: Vec<Market>,
    /// The largest reduction the site has enrolled; a target asking for more is refused.
    pub enrolled_reduction: Power,
    /// The end given to a curtailment whose window has none (default 4 hours): every
    /// curtailment ends, even if the signal source goes silent.
    #[serde(rename = "max_event_s", with = "gridflex_core::duration_s::delta")]
    pub max_event: TimeDelta,
    /// How fast facility power may rise when restoring, per second (default 50 kW/s).
    pub restore_ramp_per_s: Power,
    /// Price-responsive curtailment.
    pub price: Option<PriceRule>,
    /// Dispatch compliance.
    pub dispatch: Option<DispatchRule>,
    /// Emergency alerts.
    pub emergency: Option<EmergencyRule>,
    /// Regulation.
    pub regulation: Option<RegulationRule>,
}

impl ProgramRules {
    /// Rules for one market with no program enabled yet and the defaults above.
    pub fn new(market: Market, enrolled_reduction: Power) -> Self {
        Self {
            markets: vec![market],
            enrolled_reduction,
            max_event: TimeDelta::hours(4),
            // 50 kW/s: a literal, always finite.
            restore_ramp_per_s: power!(50 kW),
            price: None,
            dispatch: None,
            emergency: None,
            regulation: None,
        }
    }

    /// Also takes part in `market` (its signals are no longer refused).
    ///
    /// ```
    /// use gridflex::prelude::*;
    /// use gridflex::program::DispatchRule;
    /// use gridflex::signals::Program;
    ///
    /// let rules = ProgramRules::new(Market::Caiso, Power::kilowatts(450.0)?)
    ///     .with_market(Market::Pjm)
    ///     .with_dispatch(DispatchRule::new(vec![Program::CaisoPdr]));
    /// assert_eq!(rules.markets, vec![Market::Caiso, Market::Pjm]);
    /// rules.validate()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_market(mut self, market: Market) -> Self {
        if !self.markets.contains(&market) {
            self.markets.push(market);
        }
        self
    }

    /// With price-responsive curtailment.
    pub fn with_price(mut self, rule: PriceRule) -> Self {
        self.price = Some(rule);
        self
    }

    /// With dispatch compliance.
    pub fn with_dispatch(mut self, rule: DispatchRule) -> Self {
        self.dispatch = Some(rule);
        self
    }

    /// With emergency alerts.
    pub fn with_emergency(mut self, rule: EmergencyRule) -> Self {
        self.emergency = Some(rule);
        self
    }

    /// With regulation.
    pub fn with_regulation(mut self, rule: RegulationRule) -> Self {
        self.regulation = Some(rule);
        self
    }

    /// How an event of this cause settles: the rule's own [`Settlement`] if set, else
    /// the program's or market's default. `None` for regulation (scored, not
    /// baselined).
    pub fn settlement_for(&self, cause: &Cause, market: Market) -> Option<Settlement> {
        match cause {
            Cause::Regulation => None,
            Cause::Price { .. } => Some(
                self.price
                    .as_ref()
                    .and_then(|p| p.settlement)
                    .unwrap_or_else(|| Settlement::for_market(market)),
            ),
            Cause::Dispatch { program, .. } => Some(
                self.dispatch
                    .as_ref()
                    .and_then(|d| d.settlement)
                    .unwrap_or_else(|| Settlement::for_program(program)),
            ),
            Cause::Alert { .. } => Some(
                self.emergency
                    .as_ref()
                    .and_then(|e| e.settlement)
                    .unwrap_or_else(|| Settlement::for_market(market)),
            ),
        }
    }

    /// Checks every setting, naming the first bad one.
    pub fn validate(&self) -> Result<(), GridflexError> {
        let positive = |field: &str, p: Power| {
            if p.as_watts() > 0.0 {
                Ok(())
            } else {
                Err(GridflexError::invalid(
                    field,
                    format!("must be positive, got {p}"),
                ))
            }
        };
        if self.markets.is_empty() {
            return Err(GridflexError::invalid(
                "program.markets",
                "must name at least one market",
            ));
        }
        positive("program.enrolled_reduction", self.enrolled_reduction)?;
        positive("program.restore_ramp_per_s", self.restore_ramp_per_s)?;
        if self.max_event <= TimeDelta::zero() {
            return Err(GridflexError::invalid(
                "program.max_event_s",
                "must be positive",
            ));
        }
        if let Some(p) = &self.price {
            positive("program.price.facility_cap", p.facility_cap)?;
            if p.release_below > p.strike {
                return Err(GridflexError::invalid(
                    "program.price.release_below",
                    format!("{} is above the strike {}", p.release_below, p.strike),
                ));
            }
            if !self.markets.contains(&p.run.market()) {
                return Err(GridflexError::invalid(
                    "program.price.run",
                    format!(
                        "{:?} is a {} market run, not one of the site's markets",
                        p.run,
                        p.run.market()
                    ),
                ));
            }
        }
        if let Some(d) = &self.dispatch
            && let Some(p) = d
                .programs
                .iter()
                .find(|p| !self.markets.contains(&p.market()))
        {
            return Err(GridflexError::invalid(
                "program.dispatch.programs",
                format!(
                    "{p:?} is a {} program, not one of the site's markets",
                    p.market()
                ),
            ));
        }
        if let Some(e) = &self.emergency {
            if e.caps.is_empty() {
                return Err(GridflexError::invalid(
                    "program.emergency.caps",
                    "must not be empty",
                ));
            }
            for c in &e.caps {
                positive("program.emergency.caps.facility_cap", c.facility_cap)?;
            }
        }
        if let Some(r) = &self.regulation {
            // RegA and RegD are PJM's regulation signals.
            if !self.markets.contains(&Market::Pjm) {
                return Err(GridflexError::invalid(
                    "program.regulation",
                    "RegA/RegD regulation needs PJM among the site's markets",
                ));
            }
            positive("program.regulation.capability", r.capability)?;
            if r.capability > r.base_point {
                return Err(GridflexError::invalid(
                    "program.regulation.capability",
                    format!("{} exceeds the base point {}", r.capability, r.base_point),
                ));
            }
            if r.hold <= TimeDelta::zero() {
                return Err(GridflexError::invalid(
                    "program.regulation.hold_s",
                    "must be positive",
                ));
            }
        }
        Ok(())
    }
}

/// Why a curtailment was decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Cause {
    /// A price at or above the strike (or inside the hysteresis band while active).
    Price {
        /// The node.
        node: PricingNodeId,
        /// The market run.
        run: MarketRun,
        /// The LMP that triggered it.
        lmp: Price,
    },
    /// A dispatch instruction.
    Dispatch {
        /// The event id.
        id: String,
        /// The program.
        program: Program,
    },
    /// An emergency alert.
    Alert {
        /// The alert.
        kind: AlertKind,
        /// Its level.
        level: AlertLevel,
    },
    /// A regulation set-point.
    Regulation,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Price { node, run, lmp } => write!(f, "price {lmp} at {node} ({run})"),
            Cause::Dispatch { id, program } => write!(f, "dispatch {id} ({program})"),
            Cause::Alert { kind, .. } => write!(f, "alert {kind}"),
            Cause::Regulation => f.write_str("regulation"),
        }
    }
}

/// A curtailment the rules call for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curtailment {
    /// Why.
    pub cause: Cause,
    /// The target, as the planner takes it.
    pub target: Target,
    /// When: from the start of the obligation to its (always finite) end.
    pub window: Interval,
    /// How fast the target must be reached after the window starts.
    #[serde(rename = "response_time_s", with = "gridflex_core::duration_s::delta")]
    pub response_time: TimeDelta,
}

impl Curtailment {
    /// The response time as a std duration (the planner's unit).
    pub fn response_duration(&self) -> Duration {
        self.response_time.to_std().unwrap_or_default()
    }
}

/// The kind of a signal, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SignalKind {
    /// A price.
    Price,
    /// A demand-response dispatch.
    Dispatch,
    /// An emergency or conservation alert.
    Alert,
    /// A regulation set-point.
    Regulation,
    /// A kind of signal this version of gridflex has no rules for.
    Other,
}

impl SignalKind {
    /// The kind of `signal`.
    pub fn of(signal: &GridSignal) -> Self {
        match signal {
            GridSignal::Price(_) => Self::Price,
            GridSignal::Dispatch(_) => Self::Dispatch,
            GridSignal::Alert(_) => Self::Alert,
            GridSignal::Regulation(_) => Self::Regulation,
            #[allow(unreachable_patterns)]
            _ => Self::Other,
        }
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Price => "price",
            Self::Dispatch => "dispatch",
            Self::Alert => "alert",
            Self::Regulation => "regulation",
            Self::Other => "unknown",
        })
    }
}

/// Why a signal was refused. Refused signals are logged, never executed.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// The signal is for another market.
    #[error("signal is for {got}, the site is in {}", names(expected))]
    WrongMarket {
        /// The site's markets.
        expected: Vec<Market>,
        /// The signal's.
        got: Market,
    },
    /// No rule covers this kind of signal.
    #[error("no {signal} rule is configured")]
    NoRule {
        /// The kind of signal.
        signal: SignalKind,
    },
    /// A dispatch under a program the site is not enrolled in.
    #[error("not enrolled in program {program:?}")]
    NotEnrolled {
        /// The program.
        program: Program,
    },
    /// A regulation signal of another kind than the one the site is enrolled in.
    #[error("enrolled in {enrolled:?} regulation, the signal is {got:?}")]
    WrongRegulation {
        /// The enrolled kind.
        enrolled: RegulationKind,
        /// The signal's kind.
        got: RegulationKind,
    },
    /// The target asks for more than the enrolled capacity.
    #[error("target reduction {requested} exceeds the enrolled {enrolled}")]
    BeyondEnrolled {
        /// The reduction asked for.
        requested: Power,
        /// The enrolled capacity.
        enrolled: Power,
    },
    /// The window ended before the signal could be acted on.
    #[error("window ended at {end}, now is {now}")]
    WindowInPast {
        /// Window end.
        end: DateTime<Utc>,
        /// Time of evaluation.
        now: DateTime<Utc>,
    },
    /// The window starts too close to the end of representable time for its end (the
    /// start plus `max_event`) to exist.
    #[error("window starting at {start} cannot end within representable time")]
    WindowOutOfRange {
        /// Window start.
        start: DateTime<Utc>,
    },
    /// A dispatch target form the rules cannot carry out.
    #[error("unsupported dispatch target {target:?}")]
    UnsupportedTarget {
        /// What was asked.
        target: DispatchTarget,
    },
    /// A regulation signal whose set-point (`base - capability x signal`) is not a
    /// valid power.
    #[error("regulation signal {signal} gives no valid set-point")]
    NoSetPoint {
        /// The signal, -1 to 1.
        signal: f64,
    },
    /// A planner target form this version of the rules cannot check against the
    /// enrolled capacity.
    #[error("unsupported target {target:?}")]
    UnsupportedPlannerTarget {
        /// The target.
        target: Target,
    },
}

fn names(markets: &[Market]) -> String {
    markets
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a signal needed no action.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum IgnoreReason {
    /// A price of another node or market run than the one the rule follows.
    #[error("price for {node} {run:?} is not the followed node and run")]
    NotFollowed {
        /// The price's node.
        node: PricingNodeId,
        /// The price's run.
        run: MarketRun,
    },
    /// A price below the strike (and below the release level while active).
    #[error("LMP {lmp} is below the strike {strike}")]
    BelowStrike {
        /// The price.
        lmp: Price,
        /// The rule's strike.
        strike: Price,
    },
    /// An alert at a level for which no facility cap is agreed.
    #[error("no cap is agreed for {level:?}")]
    NoCapForLevel {
        /// The alert's level.
        level: AlertLevel,
    },
    /// A regulation set-point while a curtailment event holds the fleet.
    #[error("regulation is suspended while curtailment event {event_id} is active")]
    RegulationSuspended {
        /// The curtailment event.
        event_id: u64,
    },
}

/// The outcome of evaluating one signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Decision {
    /// Curtail as described.
    Curtail(Curtailment),
    /// Nothing to do (for example a price below the strike).
    Ignore {
        /// Why.
        reason: IgnoreReason,
    },
    /// The signal is refused.
    Refuse(Refusal),
}

/// Applies [`ProgramRules`] to signals.
#[derive(Debug, Clone)]
pub struct ProgramEngine {
    rules: ProgramRules,
    /// End of the active price curtailment, if any.
    price_until: Option<DateTime<Utc>>,
}

impl ProgramEngine {
    /// Validates the rules and starts with no active curtailment.
    pub fn new(rules: ProgramRules) -> Result<Self, GridflexError> {
        rules.validate()?;
        Ok(Self {
            rules,
            price_until: None,
        })
    }

    /// The rules in force.
    pub fn rules(&self) -> &ProgramRules {
        &self.rules
    }

    /// Evaluates one signal at `now`, with the facility drawing `facility_power`.
    pub fn evaluate(
        &mut self,
        signal: &GridSignal,
        now: DateTime<Utc>,
        facility_power: Power,
    ) -> Decision {
        if !self.rules.markets.contains(&signal.market()) {
            return Decision::Refuse(Refusal::WrongMarket {
                expected: self.rules.markets.clone(),
                got: signal.market(),
            });
        }
        match signal {
            GridSignal::Price(p) => self.price(p, now, facility_power),
            GridSignal::Dispatch(d) => self.dispatch(d, now, facility_power),
            GridSignal::Alert(a) => self.alert(a, now, facility_power),
            GridSignal::Regulation(r) => self.regulation(r, now),
            #[allow(unreachable_patterns)]
            _ => Decision::Refuse(Refusal::NoRule {
                signal: SignalKind::Other,
            }),
        }
    }

    fn check_reduction(&self, target: Target, facility_power: Power) -> Result<(), Refusal> {
        let requested = match target {
            Target::ReduceBy(p) => p,
            Target::FacilityCap(cap) => (facility_power - cap).max(Power::ZERO),
            _ => return Err(Refusal::UnsupportedPlannerTarget { target }),
        };
        if requested > self.rules.enrolled_reduction {
            return Err(Refusal::BeyondEnrolled {
                requested,
                enrolled: self.rules.enrolled_reduction,
            });
        }
        Ok(())
    }

    /// The window a curtailment may hold: from `start` (not before `now`) to `end`, and
    /// never longer than `max_event`, whether the signal gave an end or not (an
    /// explicit end far ahead is cut to `max_event`, so nothing runs on stale input).
    fn window(
        &self,
        start: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Interval, Refusal> {
        if let Some(end) = end
            && end <= now
        {
            return Err(Refusal::WindowInPast { end, now });
        }
        let start = start.max(now);
        let latest = start
            .checked_add_signed(self.rules.max_event)
            .ok_or(Refusal::WindowOutOfRange { start })?;
        let end = end.map_or(latest, |e| e.min(latest));
        Interval::new(start, end).map_err(|_| Refusal::WindowInPast { end, now })
    }

    fn decide(
        &self,
        cause: Cause,
        target: Target,
        window: Interval,
        response_time: TimeDelta,
        facility_power: Power,
    ) -> Decision {
        match self.check_reduction(target, facility_power) {
            Ok(()) => Decision::Curtail(Curtailment {
                cause,
                target,
                window,
                response_time,
            }),
            Err(r) => Decision::Refuse(r),
        }
    }

    fn price(&mut self, p: &PricePoint, now: DateTime<Utc>, facility_power: Power) -> Decision {
        let Some(rule) = &self.rules.price else {
            return Decision::Refuse(Refusal::NoRule {
                signal: SignalKind::Price,
            });
        };
        if p.node != rule.node || p.run != rule.run {
            return Decision::Ignore {
                reason: IgnoreReason::NotFollowed {
                    node: p.node.clone(),
                    run: p.run,
                },
            };
        }
        // A price for the interval that starts as the curtailment ends still continues it.
        let active = self.price_until.is_some_and(|until| until >= now);
        let triggers = p.lmp >= rule.strike || (active && p.lmp >= rule.release_below);
        if !triggers {
            return Decision::Ignore {
                reason: IgnoreReason::BelowStrike {
                    lmp: p.lmp,
                    strike: rule.strike,
                },
            };
        }
        let start = p.interval.start().max(now);
        // The minimum hold counts from the start of a curtailment; while one is active a
        // qualifying interval only extends it to that interval's end.
        let end = match self.price_until.filter(|_| active) {
            Some(until) => p.interval.end().max(until),
            None => match start.checked_add_signed(rule.min_hold) {
                Some(hold_end) => p.interval.end().max(hold_end),
                None => return Decision::Refuse(Refusal::WindowOutOfRange { start }),
            },
        };
        let window = match self.window(start, Some(end), now) {
            Ok(w) => w,
            Err(r) => return Decision::Refuse(r),
        };
        let cause = Cause::Price {
            node: p.node.clone(),
            run: p.run,
            lmp: p.lmp,
        };
        let decision = self.decide(
            cause,
            Target::FacilityCap(rule.facility_cap),
            window,
            rule.response_time,
            facility_power,
        );
        if matches!(decision, Decision::Curtail(_)) {
            self.price_until = Some(window.end());
        }
        decision
    }

    fn dispatch(&self, d: &DispatchEvent, now: DateTime<Utc>, facility_power: Power) -> Decision {
        let Some(rule) = &self.rules.dispatch else {
            return Decision::Refuse(Refusal::NoRule {
                signal: SignalKind::Dispatch,
            });
        };
        if !rule.programs.iter().any(|p| same_program(p, &d.program)) {
            return Decision::Refuse(Refusal::NotEnrolled {
                program: d.program.clone(),
            });
        }
        let target = match d.target {
            DispatchTarget::ReduceBy { power } => Target::ReduceBy(power),
            DispatchTarget::CapAt { power } => Target::FacilityCap(power),
            other => return Decision::Refuse(Refusal::UnsupportedTarget { target: other }),
        };
        let window = match self.window(d.window.start(), d.window.end(), now) {
            Ok(w) => w,
            Err(r) => return Decision::Refuse(r),
        };
        let cause = Cause::Dispatch {
            id: d.id.clone(),
            program: d.program.clone(),
        };
        self.decide(cause, target, window, d.response_time, facility_power)
    }

    fn alert(&self, a: &GridAlert, now: DateTime<Utc>, facility_power: Power) -> Decision {
        let Some(rule) = &self.rules.emergency else {
            return Decision::Refuse(Refusal::NoRule {
                signal: SignalKind::Alert,
            });
        };
        let level = a.level();
        let Some(entry) = rule
            .caps
            .iter()
            .filter(|c| c.level <= level)
            .max_by_key(|c| c.level)
        else {
            return Decision::Ignore {
                reason: IgnoreReason::NoCapForLevel { level },
            };
        };
        let window = match self.window(a.window.start(), a.window.end(), now) {
            Ok(w) => w,
            Err(r) => return Decision::Refuse(r),
        };
        let cause = Cause::Alert {
            kind: a.kind,
            level,
        };
        self.decide(
            cause,
            Target::FacilityCap(entry.facility_cap),
            window,
            rule.response_time,
            facility_power,
        )
    }

    fn regulation(&self, r: &RegulationSample, now: DateTime<Utc>) -> Decision {
        let Some(rule) = &self.rules.regulation else {
            return Decision::Refuse(Refusal::NoRule {
                signal: SignalKind::Regulation,
            });
        };
        if r.kind != rule.kind {
            return Decision::Refuse(Refusal::WrongRegulation {
                enrolled: rule.kind,
                got: r.kind,
            });
        }
        let Some(end) = r.at.checked_add_signed(rule.hold) else {
            return Decision::Refuse(Refusal::WindowOutOfRange { start: r.at });
        };
        let window = match self.window(r.at, Some(end), now) {
            Ok(w) => w,
            Err(refusal) => return Decision::Refuse(refusal),
        };
        // The regulation swing is enrolled as capability, not as curtailment, so the
        // enrolled-reduction check does not apply; validate() bounds the set-point.
        let Some(setpoint) = rule.setpoint(r.signal.value()) else {
            return Decision::Refuse(Refusal::NoSetPoint {
                signal: r.signal.value(),
            });
        };
        let setpoint = setpoint.max(Power::ZERO);
        Decision::Curtail(Curtailment {
            cause: Cause::Regulation,
            target: Target::FacilityCap(setpoint),
            window,
            response_time: TimeDelta::seconds(2),
        })
    }
}

/// Enrolment matches by program kind; load-management programs match whatever their
/// lead time (the event carries the lead time it was called with).
fn same_program(enrolled: &Program, called: &Program) -> bool {
    match (enrolled, called) {
        (Program::Custom { .. }, Program::Custom { .. }) => enrolled == called,
        _ => std::mem::discriminant(enrolled) == std::mem::discriminant(called),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use gridflex_core::price;
    use gridflex_signals::{EventWindow, RegulationSignal};

    use super::*;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 8, 14, 20, 0, 0).unwrap() + TimeDelta::minutes(min)
    }

    fn node() -> PricingNodeId {
        PricingNodeId::new("N1").unwrap()
    }

    fn engine() -> ProgramEngine {
        let mut rules = ProgramRules::new(Market::Caiso, power!(300 kW));
        rules.markets.push(Market::Pjm);
        let mut price = PriceRule::new(
            node(),
            MarketRun::CaisoRtm,
            price!(300 per MWh),
            power!(500 kW),
        );
        price.release_below = price!(200 per MWh);
        rules.price = Some(price);
        rules.dispatch = Some(DispatchRule::new(vec![Program::CaisoPdr]));
        rules.regulation = Some(RegulationRule::new(
            RegulationKind::RegD,
            power!(600 kW),
            power!(100 kW),
        ));
        ProgramEngine::new(rules).unwrap()
    }

    fn price(min: i64, lmp: f64) -> GridSignal {
        let i = Interval::new(t(min), t(min + 5)).unwrap();
        GridSignal::Price(PricePoint::new(
            MarketRun::CaisoRtm,
            node(),
            i,
            Price::per_megawatt_hour(lmp).unwrap(),
        ))
    }

    fn end(d: &Decision) -> DateTime<Utc> {
        match d {
            Decision::Curtail(c) => c.window.end(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn price_hold_counts_from_the_start_and_the_band_extends() {
        let mut e = engine();
        let p = power!(700 kW);
        // Start: the 15-minute minimum hold.
        assert_eq!(end(&e.evaluate(&price(0, 950.0), t(0), p)), t(15));
        // A later high price inside the hold does not restart the hold.
        assert_eq!(end(&e.evaluate(&price(5, 400.0), t(5), p)), t(15));
        // A price in the band (200..300) at the end extends by its interval.
        assert_eq!(end(&e.evaluate(&price(15, 250.0), t(15), p)), t(20));
        // Below the release: nothing more.
        assert!(matches!(
            e.evaluate(&price(20, 150.0), t(20), p),
            Decision::Ignore { .. }
        ));
        // A band price with no active curtailment does not start one.
        assert!(matches!(
            e.evaluate(&price(60, 250.0), t(60), p),
            Decision::Ignore { .. }
        ));
    }

    #[test]
    fn refusals_name_their_reason() {
        let mut e = engine();
        let pjm = GridSignal::Dispatch(
            DispatchEvent::new(
                "x",
                Program::PjmEconomic,
                t(0),
                EventWindow::new(t(0), Some(t(60))).unwrap(),
                DispatchTarget::ReduceBy {
                    power: power!(10 kW),
                },
                None,
            )
            .unwrap(),
        );
        assert!(matches!(
            e.evaluate(&pjm, t(0), power!(700 kW)),
            Decision::Refuse(Refusal::NotEnrolled { .. })
        ));
        let mut caiso_only =
            ProgramEngine::new(ProgramRules::new(Market::Caiso, power!(300 kW))).unwrap();
        assert!(matches!(
            caiso_only.evaluate(&pjm, t(0), power!(700 kW)),
            Decision::Refuse(Refusal::WrongMarket { .. })
        ));
        let past = GridSignal::Dispatch(
            DispatchEvent::new(
                "y",
                Program::CaisoPdr,
                t(0),
                EventWindow::new(t(0), Some(t(30))).unwrap(),
                DispatchTarget::ReduceBy {
                    power: power!(10 kW),
                },
                None,
            )
            .unwrap(),
        );
        assert!(matches!(
            e.evaluate(&past, t(45), power!(700 kW)),
            Decision::Refuse(Refusal::WindowInPast { .. })
        ));
        // A cap 400 kW under the present 700 kW asks for more than the 300 kW enrolled.
        let deep = GridSignal::Dispatch(
            DispatchEvent::new(
                "z",
                Program::CaisoPdr,
                t(0),
                EventWindow::new(t(0), Some(t(30))).unwrap(),
                DispatchTarget::CapAt {
                    power: power!(300 kW),
                },
                None,
            )
            .unwrap(),
        );
        let d = e.evaluate(&deep, t(0), power!(700 kW));
        assert_eq!(
            d,
            Decision::Refuse(Refusal::BeyondEnrolled {
                requested: power!(400 kW),
                enrolled: power!(300 kW)
            })
        );
        assert_eq!(
            Refusal::BeyondEnrolled {
                requested: power!(400 kW),
                enrolled: power!(300 kW)
            }
            .to_string(),
            "target reduction 400 kW exceeds the enrolled 300 kW"
        );
    }

    #[test]
    fn windows_near_the_end_of_time_are_refused_and_far_ends_are_cut_to_max_event() {
        let mut e = engine();
        let max_event = e.rules().max_event;
        let end_of_time = DateTime::<Utc>::MAX_UTC;
        let near_end = end_of_time - TimeDelta::seconds(1);
        let dispatch = |start, end| {
            GridSignal::Dispatch(
                DispatchEvent::new(
                    "far",
                    Program::CaisoPdr,
                    start,
                    EventWindow::new(start, end).unwrap(),
                    DispatchTarget::ReduceBy {
                        power: power!(10 kW),
                    },
                    None,
                )
                .unwrap(),
            )
        };
        // Open window at the end of time: start + max_event does not exist.
        assert_eq!(
            e.evaluate(&dispatch(near_end, None), t(0), power!(700 kW)),
            Decision::Refuse(Refusal::WindowOutOfRange { start: near_end })
        );
        // An explicit end there (the sum must not be computed when an end is given).
        assert!(matches!(
            e.evaluate(&dispatch(near_end, Some(end_of_time)), t(0), power!(700 kW)),
            Decision::Refuse(Refusal::WindowOutOfRange { .. })
        ));
        let reg = GridSignal::Regulation(RegulationSample::new(
            near_end,
            RegulationKind::RegD,
            RegulationSignal::new(0.5).unwrap(),
        ));
        assert!(matches!(
            e.evaluate(&reg, t(0), power!(700 kW)),
            Decision::Refuse(Refusal::WindowOutOfRange { .. })
        ));
        // A dispatch from now to the year 2200 holds for max_event, not 175 years.
        let far = Utc.with_ymd_and_hms(2200, 1, 1, 0, 0, 0).unwrap();
        let Decision::Curtail(c) = e.evaluate(&dispatch(t(0), Some(far)), t(0), power!(700 kW))
        else {
            panic!("not curtailed");
        };
        assert_eq!(c.window.duration(), max_event);
    }

    #[test]
    fn regulation_set_point_and_hold() {
        let mut e = engine();
        let s = GridSignal::Regulation(RegulationSample::new(
            t(0),
            RegulationKind::RegD,
            RegulationSignal::new(0.5).unwrap(),
        ));
        let Decision::Curtail(c) = e.evaluate(&s, t(0), power!(600 kW)) else {
            panic!()
        };
        assert_eq!(c.target, Target::FacilityCap(power!(550 kW)));
        assert_eq!(c.window.duration(), TimeDelta::seconds(4));
        let rega = GridSignal::Regulation(RegulationSample::new(
            t(0),
            RegulationKind::RegA,
            RegulationSignal::new(0.5).unwrap(),
        ));
        assert!(matches!(
            e.evaluate(&rega, t(0), power!(600 kW)),
            Decision::Refuse(Refusal::WrongRegulation {
                enrolled: RegulationKind::RegD,
                got: RegulationKind::RegA
            })
        ));
    }

    #[test]
    fn validation_names_the_setting() {
        let mut rules = ProgramRules::new(Market::Pjm, power!(300 kW));
        rules.regulation = Some(RegulationRule::new(
            RegulationKind::RegD,
            power!(50 kW),
            power!(100 kW),
        ));
        let err = ProgramEngine::new(rules).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid program.regulation.capability"),
            "{err}"
        );
        let mut rules = ProgramRules::new(Market::Caiso, power!(300 kW));
        rules.dispatch = Some(DispatchRule::new(vec![Program::PjmEconomic]));
        assert!(
            ProgramEngine::new(rules)
                .unwrap_err()
                .to_string()
                .contains("program.dispatch.programs")
        );
        let json = serde_json::to_string(&ProgramRules::new(Market::Pjm, power!(1 kW))).unwrap();
        let back: ProgramRules = serde_json::from_str(&json).unwrap();
        assert_eq!(back.max_event, TimeDelta::hours(4));
    }
}
