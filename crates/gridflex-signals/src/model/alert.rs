//! [`GridAlert`]: an operator's emergency or conservation alert.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EventWindow, Market};
use crate::SignalError;

/// Severity on the NERC Energy Emergency Alert scale, with a conservation level below it.
///
/// Ordered: `Conservation < Watch < Eea1 < Eea2 < Eea3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AlertLevel {
    /// A voluntary conservation call (CAISO Flex Alert).
    Conservation,
    /// A deficiency is expected (EEA Watch).
    Watch,
    /// EEA 1: all resources in use or committed.
    Eea1,
    /// EEA 2: emergency energy requested, emergency demand response activated.
    Eea2,
    /// EEA 3: reserves below minimum, rotating outages imminent or in progress.
    Eea3,
}

/// What the operator announced (reference `markets.md` §e).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKind {
    /// CAISO Flex Alert: voluntary conservation, typically 4-9 pm.
    FlexAlert,
    /// Energy Emergency Alert Watch (CAISO; may be issued a day ahead).
    EeaWatch,
    /// Energy Emergency Alert level 1.
    Eea1,
    /// Energy Emergency Alert level 2.
    Eea2,
    /// Energy Emergency Alert level 3.
    Eea3,
    /// PJM Maximum Generation Emergency Alert (issued with EEA 1).
    PjmMaxGenEmergencyAlert,
    /// PJM Emergency Mandatory Load Management Reduction Action (issued with EEA 2).
    PjmEmergencyLoadManagementReduction,
    /// PJM Voltage Reduction Action (issued with EEA 2).
    PjmVoltageReduction,
    /// PJM Deploy All Resources Action (issued with EEA 2).
    PjmDeployAllResources,
    /// PJM Manual Load Dump Action (issued with EEA 3).
    PjmManualLoadDump,
}

impl AlertKind {
    /// The EEA-scale level the alert stands for. The PJM procedures map as reference
    /// `markets.md` §e states (PJM Manual 13, tagged `[S]`).
    pub const fn level(self) -> AlertLevel {
        match self {
            AlertKind::FlexAlert => AlertLevel::Conservation,
            AlertKind::EeaWatch => AlertLevel::Watch,
            AlertKind::Eea1 | AlertKind::PjmMaxGenEmergencyAlert => AlertLevel::Eea1,
            AlertKind::Eea2
            | AlertKind::PjmEmergencyLoadManagementReduction
            | AlertKind::PjmVoltageReduction
            | AlertKind::PjmDeployAllResources => AlertLevel::Eea2,
            AlertKind::Eea3 | AlertKind::PjmManualLoadDump => AlertLevel::Eea3,
        }
    }

    /// The market the alert kind exists in, or `None` when both use it (EEA levels).
    pub const fn only_market(self) -> Option<Market> {
        match self {
            AlertKind::FlexAlert | AlertKind::EeaWatch => Some(Market::Caiso),
            AlertKind::Eea1 | AlertKind::Eea2 | AlertKind::Eea3 => None,
            _ => Some(Market::Pjm),
        }
    }
}

/// An operator alert with the time it covers.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use gridflex_signals::{AlertKind, AlertLevel, EventWindow, GridAlert, Market};
///
/// let at = Utc.with_ymd_and_hms(2022, 9, 6, 23, 0, 0).unwrap();
/// let alert = GridAlert::new(Market::Pjm, AlertKind::PjmVoltageReduction, at, EventWindow::new(at, None)?)?;
/// assert_eq!(alert.level(), AlertLevel::Eea2);
/// assert!(GridAlert::new(Market::Pjm, AlertKind::FlexAlert, at, EventWindow::new(at, None)?).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "AlertWire")]
#[non_exhaustive]
pub struct GridAlert {
    /// The issuing market.
    pub market: Market,
    /// What was announced.
    pub kind: AlertKind,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it applies (the end may be open until cancelled).
    pub window: EventWindow,
}

#[derive(Deserialize)]
struct AlertWire {
    market: Market,
    kind: AlertKind,
    issued_at: DateTime<Utc>,
    window: EventWindow,
}

impl TryFrom<AlertWire> for GridAlert {
    type Error = SignalError;
    fn try_from(w: AlertWire) -> Result<Self, SignalError> {
        GridAlert::new(w.market, w.kind, w.issued_at, w.window)
    }
}

impl GridAlert {
    /// Builds an alert; fails when the kind does not exist in the market.
    pub fn new(
        market: Market,
        kind: AlertKind,
        issued_at: DateTime<Utc>,
        window: EventWindow,
    ) -> Result<Self, SignalError> {
        if let Some(m) = kind.only_market()
            && m != market
        {
            return Err(SignalError::invalid(
                "grid alert",
                format!("{kind:?} is a {m} alert, not {market}"),
            ));
        }
        Ok(Self {
            market,
            kind,
            issued_at,
            window,
        })
    }

    /// The alert's level on the EEA scale.
    pub fn level(&self) -> AlertLevel {
        self.kind.level()
    }
}

impl std::fmt::Display for AlertKind {
    /// The alert's name as the operator announces it, for example `EEA 2`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AlertKind::FlexAlert => "Flex Alert",
            AlertKind::EeaWatch => "EEA Watch",
            AlertKind::Eea1 => "EEA 1",
            AlertKind::Eea2 => "EEA 2",
            AlertKind::Eea3 => "EEA 3",
            AlertKind::PjmMaxGenEmergencyAlert => "PJM Maximum Generation Emergency Alert",
            AlertKind::PjmEmergencyLoadManagementReduction => {
                "PJM Emergency Load Management Reduction Action"
            }
            AlertKind::PjmVoltageReduction => "PJM Voltage Reduction",
            AlertKind::PjmDeployAllResources => "PJM Deploy All Resources Action",
            AlertKind::PjmManualLoadDump => "PJM Manual Load Dump",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn levels_are_ordered_and_pjm_procedures_map() {
        assert!(AlertLevel::Conservation < AlertLevel::Watch);
        assert!(AlertLevel::Eea2 < AlertLevel::Eea3);
        assert_eq!(AlertKind::PjmMaxGenEmergencyAlert.level(), AlertLevel::Eea1);
        assert_eq!(AlertKind::PjmManualLoadDump.level(), AlertLevel::Eea3);
        assert_eq!(AlertKind::FlexAlert.level(), AlertLevel::Conservation);
    }

    #[test]
    fn json_validates_market() {
        let at = Utc.with_ymd_and_hms(2022, 9, 6, 23, 0, 0).unwrap();
        let a = GridAlert::new(
            Market::Caiso,
            AlertKind::Eea3,
            at,
            EventWindow::new(at, None).unwrap(),
        )
        .unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<GridAlert>(&json).unwrap(), a);
        let bad = json.replace("eea3", "pjm_manual_load_dump");
        assert!(serde_json::from_str::<GridAlert>(&bad).is_err());
    }
}
