//! Markets and their market runs, named as the operators name them.

use std::fmt;

use chrono::TimeDelta;
use gridflex_core::MarketZone;
use serde::{Deserialize, Serialize};

/// An electricity market (independent system operator) whose signals gridflex reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Market {
    /// California ISO.
    #[serde(rename = "CAISO")]
    Caiso,
    /// PJM Interconnection.
    #[serde(rename = "PJM")]
    Pjm,
}

impl Market {
    /// The operator's short name, `"CAISO"` or `"PJM"` (also the JSON form).
    pub const fn name(self) -> &'static str {
        match self {
            Market::Caiso => "CAISO",
            Market::Pjm => "PJM",
        }
    }

    /// The market's prevailing local time zone.
    pub const fn zone(self) -> MarketZone {
        match self {
            Market::Caiso => MarketZone::Caiso,
            Market::Pjm => MarketZone::Pjm,
        }
    }
}

impl fmt::Display for Market {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A market run: which market process produced a price, with the operator's name for it.
///
/// CAISO names follow the OASIS `MARKET_RUN_ID` values; PJM names follow the Data
/// Miner 2 feeds (`da_hrl_lmps`, `rt_hrl_lmps`, `rt_fivemin_hrl_lmps`), reference
/// `markets.md` §f.
///
/// ```
/// use gridflex_signals::{Market, MarketRun};
/// assert_eq!(MarketRun::CaisoRtpd.name(), "RTPD");
/// assert_eq!(MarketRun::CaisoRtpd.market(), Market::Caiso);
/// assert_eq!(MarketRun::PjmRealTimeFiveMinute.nominal_length().num_minutes(), 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MarketRun {
    /// CAISO day-ahead market, hourly (`DAM`, report `PRC_LMP`).
    #[serde(rename = "DAM")]
    CaisoDam,
    /// CAISO fifteen-minute market (real-time pre-dispatch, `RTPD`, report `PRC_RTPD_LMP`).
    #[serde(rename = "RTPD")]
    CaisoRtpd,
    /// CAISO five-minute real-time dispatch (`RTM`, report `PRC_INTVL_LMP`).
    #[serde(rename = "RTM")]
    CaisoRtm,
    /// CAISO hour-ahead scheduling process (`HASP`, report `PRC_HASP_LMP`), 15-minute.
    #[serde(rename = "HASP")]
    CaisoHasp,
    /// PJM day-ahead hourly LMPs (`da_hrl_lmps`).
    #[serde(rename = "PJM_DA_HOURLY")]
    PjmDayAheadHourly,
    /// PJM real-time hourly (integrated) LMPs (`rt_hrl_lmps`).
    #[serde(rename = "PJM_RT_HOURLY")]
    PjmRealTimeHourly,
    /// PJM real-time five-minute LMPs (`rt_fivemin_hrl_lmps`).
    #[serde(rename = "PJM_RT_5MIN")]
    PjmRealTimeFiveMinute,
}

impl MarketRun {
    /// Every run, for iteration.
    pub const ALL: [MarketRun; 7] = [
        MarketRun::CaisoDam,
        MarketRun::CaisoRtpd,
        MarketRun::CaisoRtm,
        MarketRun::CaisoHasp,
        MarketRun::PjmDayAheadHourly,
        MarketRun::PjmRealTimeHourly,
        MarketRun::PjmRealTimeFiveMinute,
    ];

    /// The market the run belongs to.
    pub const fn market(self) -> Market {
        match self {
            MarketRun::CaisoDam
            | MarketRun::CaisoRtpd
            | MarketRun::CaisoRtm
            | MarketRun::CaisoHasp => Market::Caiso,
            MarketRun::PjmDayAheadHourly
            | MarketRun::PjmRealTimeHourly
            | MarketRun::PjmRealTimeFiveMinute => Market::Pjm,
        }
    }

    /// The run's name as written in JSON: the OASIS `MARKET_RUN_ID` for CAISO,
    /// `PJM_DA_HOURLY`, `PJM_RT_HOURLY`, `PJM_RT_5MIN` for PJM.
    pub const fn name(self) -> &'static str {
        match self {
            MarketRun::CaisoDam => "DAM",
            MarketRun::CaisoRtpd => "RTPD",
            MarketRun::CaisoRtm => "RTM",
            MarketRun::CaisoHasp => "HASP",
            MarketRun::PjmDayAheadHourly => "PJM_DA_HOURLY",
            MarketRun::PjmRealTimeHourly => "PJM_RT_HOURLY",
            MarketRun::PjmRealTimeFiveMinute => "PJM_RT_5MIN",
        }
    }

    /// The length of one pricing interval of the run.
    pub fn nominal_length(self) -> TimeDelta {
        match self {
            MarketRun::CaisoDam | MarketRun::PjmDayAheadHourly | MarketRun::PjmRealTimeHourly => {
                TimeDelta::hours(1)
            }
            MarketRun::CaisoRtpd | MarketRun::CaisoHasp => TimeDelta::minutes(15),
            MarketRun::CaisoRtm | MarketRun::PjmRealTimeFiveMinute => TimeDelta::minutes(5),
        }
    }

    /// The CAISO run for an OASIS `MARKET_RUN_ID` (`DAM`, `RTPD`, `RTM`, `HASP`).
    pub fn from_caiso_id(id: &str) -> Option<MarketRun> {
        match id.trim() {
            "DAM" => Some(MarketRun::CaisoDam),
            "RTPD" => Some(MarketRun::CaisoRtpd),
            "RTM" => Some(MarketRun::CaisoRtm),
            "HASP" => Some(MarketRun::CaisoHasp),
            _ => None,
        }
    }

    /// The CAISO run an OASIS report name stands for (`PRC_LMP` -> DAM,
    /// `PRC_RTPD_LMP` -> RTPD, `PRC_INTVL_LMP` -> RTM, `PRC_HASP_LMP` -> HASP).
    pub fn from_caiso_report(report: &str) -> Option<MarketRun> {
        match report.trim() {
            "PRC_LMP" => Some(MarketRun::CaisoDam),
            "PRC_RTPD_LMP" => Some(MarketRun::CaisoRtpd),
            "PRC_INTVL_LMP" => Some(MarketRun::CaisoRtm),
            "PRC_HASP_LMP" => Some(MarketRun::CaisoHasp),
            _ => None,
        }
    }

    /// The PJM run of a Data Miner 2 feed name (also accepts the unverified variants).
    pub fn from_pjm_feed(feed: &str) -> Option<MarketRun> {
        match feed.trim() {
            "da_hrl_lmps" => Some(MarketRun::PjmDayAheadHourly),
            "rt_hrl_lmps" | "rt_unverified_hrl_lmps" => Some(MarketRun::PjmRealTimeHourly),
            "rt_fivemin_hrl_lmps" | "rt_unverified_fivemin_lmps" => {
                Some(MarketRun::PjmRealTimeFiveMinute)
            }
            _ => None,
        }
    }
}

impl fmt::Display for MarketRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_json() {
        for run in MarketRun::ALL {
            let json = serde_json::to_string(&run).unwrap();
            assert_eq!(json, format!("\"{}\"", run.name()));
            assert_eq!(serde_json::from_str::<MarketRun>(&json).unwrap(), run);
        }
        assert_eq!(serde_json::to_string(&Market::Pjm).unwrap(), "\"PJM\"");
    }

    #[test]
    fn operator_names_map_to_runs() {
        assert_eq!(
            MarketRun::from_caiso_report("PRC_INTVL_LMP"),
            Some(MarketRun::CaisoRtm)
        );
        assert_eq!(MarketRun::from_caiso_id("RTPD"), Some(MarketRun::CaisoRtpd));
        assert_eq!(
            MarketRun::from_pjm_feed("rt_fivemin_hrl_lmps"),
            Some(MarketRun::PjmRealTimeFiveMinute)
        );
        assert_eq!(MarketRun::from_caiso_id("XYZ"), None);
        assert_eq!(MarketRun::CaisoHasp.market(), Market::Caiso);
    }
}
