//! NYISO Average Day CBL (markets.md §c; NYISO EDRP Manual and ICAP Manual §4.12, `[K]`).

use super::{Adjustment, Baseline, BaselineRule, DayMatching, DayRules, Method, Selection};
use crate::calendar::DayTypes;
use crate::meter::GapPolicy;
use crate::reduction::SettlementRule;

impl Adjustment {
    /// The NYISO in-day adjustment: multiplicative over the 2 hours beginning 4 hours
    /// before the event (`[t0 - 4 h, t0 - 2 h)`), bounded to `[0.8, 1.2]`.
    pub fn nyiso_in_day() -> Self {
        Adjustment::multiplicative(2.0, 2.0, Some(0.20))
    }
}

impl Baseline {
    /// NYISO CBL: the 5 highest of the 10 most recent eligible weekdays (event days,
    /// holidays and days below 25 % of the window average excluded and refilled), or for
    /// weekend events the 2 highest of the 3 most recent like days (Saturdays, or
    /// Sundays/holidays), with the in-day adjustment [`Adjustment::nyiso_in_day`]. The 45-day lookback
    /// is a setting (no NYISO figure was confirmed).
    pub fn nyiso_cbl() -> Self {
        let weekday = DayMatching {
            pool: DayTypes::WEEKDAYS,
            count: 10,
            select: Selection::Highest(5),
            lookback_days: 45,
            min_days: 10,
            low_usage_threshold: Some(0.25),
            low_usage_reference: super::LowUsageReference::InitialWindow,
        };
        Self {
            method: Method::NyisoCbl,
            rule: BaselineRule::DayMatching {
                days: DayRules::with_high_2_of_3_weekends(weekday),
                adjustment: Adjustment::nyiso_in_day(),
            },
            gap_policy: GapPolicy::Error,
            settlement: SettlementRule::Net,
        }
    }
}
