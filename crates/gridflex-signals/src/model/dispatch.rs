//! [`DispatchEvent`]: an instruction to reduce load under a demand-response program.

use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::{Interval, Power};
use serde::{Deserialize, Serialize};

use super::Market;
use crate::SignalError;

/// Notification lead time of PJM (pre-)emergency load management.
///
/// Reference `markets.md` §e: 30 minutes is the default; 60 and 120 minutes are the
/// other registered options (PJM Manuals 11 and 18, tagged `[K]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LeadTime {
    /// 30 minutes (the default option).
    #[default]
    #[serde(rename = "30min")]
    Minutes30,
    /// 60 minutes.
    #[serde(rename = "60min")]
    Minutes60,
    /// 120 minutes.
    #[serde(rename = "120min")]
    Minutes120,
}

impl LeadTime {
    /// The lead time as a duration.
    pub fn duration(self) -> TimeDelta {
        match self {
            LeadTime::Minutes30 => TimeDelta::minutes(30),
            LeadTime::Minutes60 => TimeDelta::minutes(60),
            LeadTime::Minutes120 => TimeDelta::minutes(120),
        }
    }
}

/// The demand-response program an event is dispatched under (reference `markets.md` §e).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Program {
    /// CAISO Proxy Demand Resource: bids into the day-ahead and real-time markets.
    CaisoPdr,
    /// CAISO Reliability Demand Response Resource: dispatched in emergencies.
    CaisoRdrr,
    /// PJM pre-emergency load management (capacity demand response).
    PjmPreEmergencyLoadManagement {
        /// The registered notification lead time.
        lead_time: LeadTime,
    },
    /// PJM emergency load management (capacity demand response).
    PjmEmergencyLoadManagement {
        /// The registered notification lead time.
        lead_time: LeadTime,
    },
    /// PJM synchronized reserve: full reduction within 10 minutes, events of at most 30 minutes.
    PjmSynchronizedReserve,
    /// PJM economic demand response (energy market, paid LMP above the net-benefits threshold).
    PjmEconomic,
    /// A program gridflex has no model for, named by the integrator.
    Custom {
        /// The program's name.
        name: String,
        /// The market it belongs to.
        market: Market,
    },
}

impl Program {
    /// The market the program belongs to.
    pub fn market(&self) -> Market {
        match self {
            Program::CaisoPdr | Program::CaisoRdrr => Market::Caiso,
            Program::PjmPreEmergencyLoadManagement { .. }
            | Program::PjmEmergencyLoadManagement { .. }
            | Program::PjmSynchronizedReserve
            | Program::PjmEconomic => Market::Pjm,
            Program::Custom { market, .. } => *market,
        }
    }

    /// The response time the program itself requires, where it fixes one: the lead
    /// time for PJM load management, 10 minutes for PJM synchronized reserve.
    pub fn required_response_time(&self) -> Option<TimeDelta> {
        match self {
            Program::PjmPreEmergencyLoadManagement { lead_time }
            | Program::PjmEmergencyLoadManagement { lead_time } => Some(lead_time.duration()),
            Program::PjmSynchronizedReserve => Some(TimeDelta::minutes(10)),
            _ => None,
        }
    }
}

/// The time an event covers; the end may be open (until a release instruction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "WindowWire")]
pub struct EventWindow {
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct WindowWire {
    start: DateTime<Utc>,
    #[serde(default)]
    end: Option<DateTime<Utc>>,
}

impl TryFrom<WindowWire> for EventWindow {
    type Error = SignalError;
    fn try_from(w: WindowWire) -> Result<Self, SignalError> {
        EventWindow::new(w.start, w.end)
    }
}

impl EventWindow {
    /// A window from `start` to `end` (open when `None`); the end must be after the start.
    pub fn new(start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Result<Self, SignalError> {
        if let Some(end) = end
            && end <= start
        {
            return Err(SignalError::invalid(
                "event window",
                format!("end {end} is not after start {start}"),
            ));
        }
        Ok(Self { start, end })
    }

    /// A closed window from an interval.
    pub fn closed(interval: Interval) -> Self {
        Self {
            start: interval.start(),
            end: Some(interval.end()),
        }
    }

    /// Start.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// End, or `None` while open.
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.end
    }

    /// The window as an interval, when closed.
    pub fn interval(&self) -> Option<Interval> {
        self.end.and_then(|e| Interval::new(self.start, e).ok())
    }

    /// Whether `t` lies inside the window.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        t >= self.start && self.end.is_none_or(|e| t < e)
    }
}

/// What the site is asked to do during an event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DispatchTarget {
    /// Reduce consumption by this much below the baseline.
    ReduceBy {
        /// The reduction (watts in JSON).
        power: Power,
    },
    /// Keep consumption at or below this level.
    CapAt {
        /// The cap (watts in JSON).
        power: Power,
    },
    /// A program-defined level (for example an OpenADR SIMPLE level 0-3).
    Level {
        /// The level.
        level: u32,
    },
}

/// A demand-response dispatch instruction.
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex_core::Power;
/// use gridflex_signals::{DispatchEvent, DispatchTarget, EventWindow, LeadTime, Program};
///
/// let issued = Utc.with_ymd_and_hms(2025, 7, 29, 19, 0, 0).unwrap();
/// let event = DispatchEvent::new(
///     "pjm-lm-2025-07-29",
///     Program::PjmEmergencyLoadManagement { lead_time: LeadTime::Minutes60 },
///     issued,
///     EventWindow::new(issued + TimeDelta::hours(1), None)?,
///     DispatchTarget::ReduceBy { power: Power::megawatts(2.0)? },
///     None,
/// )?;
/// // The response time defaults to the program's lead time.
/// assert_eq!(event.response_time, TimeDelta::minutes(60));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DispatchWire")]
#[non_exhaustive]
pub struct DispatchEvent {
    /// The event's id as the operator or aggregator gives it.
    pub id: String,
    /// The market (always `program.market()`).
    pub market: Market,
    /// The program.
    pub program: Program,
    /// When the instruction was issued.
    pub issued_at: DateTime<Utc>,
    /// When the reduction applies.
    pub window: EventWindow,
    /// What to achieve.
    pub target: DispatchTarget,
    /// How long after `issued_at` the full response is due (`response_time_s`: seconds,
    /// fractional allowed; files with whole seconds read as before).
    #[serde(with = "gridflex_core::duration_s::delta", rename = "response_time_s")]
    pub response_time: TimeDelta,
}

#[derive(Deserialize)]
struct DispatchWire {
    id: String,
    market: Market,
    program: Program,
    issued_at: DateTime<Utc>,
    window: EventWindow,
    target: DispatchTarget,
    #[serde(with = "gridflex_core::duration_s::delta", rename = "response_time_s")]
    response_time: TimeDelta,
}

impl TryFrom<DispatchWire> for DispatchEvent {
    type Error = SignalError;
    fn try_from(w: DispatchWire) -> Result<Self, SignalError> {
        if w.program.market() != w.market {
            return Err(SignalError::invalid(
                "dispatch event",
                format!("program of {} in a {} event", w.program.market(), w.market),
            ));
        }
        DispatchEvent::new(
            w.id,
            w.program,
            w.issued_at,
            w.window,
            w.target,
            Some(w.response_time),
        )
    }
}

impl DispatchEvent {
    /// Builds and validates an event. `response_time` defaults to the program's
    /// required response time, or to the time from issue to window start when the
    /// program fixes none. The id must be non-empty, targets must be non-negative
    /// power, and the response time must not be negative.
    pub fn new(
        id: impl Into<String>,
        program: Program,
        issued_at: DateTime<Utc>,
        window: EventWindow,
        target: DispatchTarget,
        response_time: Option<TimeDelta>,
    ) -> Result<Self, SignalError> {
        let id = id.into();
        if id.trim().is_empty() {
            return Err(SignalError::invalid("dispatch event", "empty id"));
        }
        if let DispatchTarget::ReduceBy { power } | DispatchTarget::CapAt { power } = target
            && power.is_negative()
        {
            return Err(SignalError::invalid(
                "dispatch event",
                format!("event {id}: negative target power {power}"),
            ));
        }
        let response_time = response_time
            .or_else(|| program.required_response_time())
            .unwrap_or_else(|| (window.start() - issued_at).max(TimeDelta::zero()));
        if response_time < TimeDelta::zero() {
            return Err(SignalError::invalid(
                "dispatch event",
                format!("event {id}: negative response time"),
            ));
        }
        Ok(Self {
            id,
            market: program.market(),
            program,
            issued_at,
            window,
            target,
            response_time,
        })
    }

    /// The instant the full response is due (the latest representable instant if the
    /// response time runs past it).
    pub fn respond_by(&self) -> DateTime<Utc> {
        self.issued_at
            .checked_add_signed(self.response_time)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl std::fmt::Display for Program {
    /// The program as operators write it, for example `PJM emergency load management
    /// (30-minute lead time)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lead = |l: &LeadTime| l.duration().num_minutes();
        match self {
            Program::CaisoPdr => f.write_str("CAISO PDR"),
            Program::CaisoRdrr => f.write_str("CAISO RDRR"),
            Program::PjmPreEmergencyLoadManagement { lead_time } => write!(
                f,
                "PJM pre-emergency load management ({}-minute lead time)",
                lead(lead_time)
            ),
            Program::PjmEmergencyLoadManagement { lead_time } => write!(
                f,
                "PJM emergency load management ({}-minute lead time)",
                lead(lead_time)
            ),
            Program::PjmSynchronizedReserve => f.write_str("PJM synchronized reserve"),
            Program::PjmEconomic => f.write_str("PJM economic load response"),
            Program::Custom { name, market } => write!(f, "{market} {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 7, 29, h, 0, 0).unwrap()
    }

    #[test]
    fn window_rejects_end_before_start_and_open_end_contains_later() {
        assert!(EventWindow::new(t(5), Some(t(4))).is_err());
        assert!(EventWindow::new(t(5), Some(t(5))).is_err());
        let open = EventWindow::new(t(5), None).unwrap();
        assert!(open.contains(t(23)));
        assert!(!open.contains(t(4)));
        assert_eq!(open.interval(), None);
    }

    #[test]
    fn sync_reserve_needs_ten_minutes_and_json_round_trips() {
        let e = DispatchEvent::new(
            "sr-1",
            Program::PjmSynchronizedReserve,
            t(12),
            EventWindow::new(t(12), Some(t(13))).unwrap(),
            DispatchTarget::CapAt {
                power: Power::kilowatts(500.0).unwrap(),
            },
            None,
        )
        .unwrap();
        assert_eq!(e.response_time, TimeDelta::minutes(10));
        assert_eq!(e.respond_by(), t(12) + TimeDelta::minutes(10));
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"response_time_s\":600"), "{json}");
        assert_eq!(serde_json::from_str::<DispatchEvent>(&json).unwrap(), e);
        let wrong = json.replace("\"market\":\"PJM\"", "\"market\":\"CAISO\"");
        assert!(serde_json::from_str::<DispatchEvent>(&wrong).is_err());
    }

    #[test]
    fn custom_program_response_defaults_to_notice() {
        let e = DispatchEvent::new(
            "c-1",
            Program::Custom {
                name: "utility-peak".into(),
                market: Market::Caiso,
            },
            t(10),
            EventWindow::new(t(12), None).unwrap(),
            DispatchTarget::Level { level: 2 },
            None,
        )
        .unwrap();
        assert_eq!(e.response_time, TimeDelta::hours(2));
        assert_eq!(e.market, Market::Caiso);
        assert!(
            DispatchEvent::new(
                " ",
                Program::CaisoPdr,
                t(10),
                EventWindow::new(t(12), None).unwrap(),
                DispatchTarget::Level { level: 1 },
                None
            )
            .is_err()
        );
    }
}
