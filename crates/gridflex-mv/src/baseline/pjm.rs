//! PJM Customer Baseline Load (markets.md §b; PJM Manual 11 §10.3, OA Schedule 1
//! §3.3A.2, all `[K]`) and the Same Day (3+2) alternative (`[V]`, added to M11 in 2025).

use chrono::TimeDelta;

use super::{Adjustment, Baseline, BaselineRule, DayMatching, DayRules, Method, Selection};
use crate::calendar::DayTypes;
use crate::meter::GapPolicy;
use crate::reduction::SettlementRule;

impl Adjustment {
    /// The Symmetric Additive Adjustment: actual minus CBL averaged over the 3 hours ending
    /// 1 hour before the event, added to every event interval; no cap.
    pub fn pjm_saa() -> Self {
        Adjustment::additive(3.0, 1.0, None)
    }
}

impl Baseline {
    /// PJM CBL: weekday events use High 4 of 5 (the 5 most recent non-holiday weekdays
    /// within 45 days, excluding event days and days whose event-window load is below
    /// 25 % of the window average, each replaced by the next older day; keep the 4
    /// highest); Saturday events High 2 of 3 Saturdays; Sunday and holiday events High 2
    /// of 3 Sundays/holidays. Symmetric Additive Adjustment [`Adjustment::pjm_saa`]. Reductions net
    /// (negative intervals count) `[K]`. Fewer days than the window needs is an error
    /// (`min_days` = window size), a setting.
    pub fn pjm_cbl() -> Self {
        let weekday = DayMatching {
            pool: DayTypes::WEEKDAYS,
            count: 5,
            select: Selection::Highest(4),
            lookback_days: 45,
            min_days: 5,
            low_usage_threshold: Some(0.25),
            low_usage_reference: super::LowUsageReference::InitialWindow,
        };
        Self {
            method: Method::PjmCbl,
            rule: BaselineRule::DayMatching {
                days: DayRules::with_high_2_of_3_weekends(weekday),
                adjustment: Adjustment::pjm_saa(),
            },
            gap_policy: GapPolicy::Error,
            settlement: SettlementRule::Net,
        }
    }

    /// PJM Same Day (3+2): the mean load of the 3 hours before the event after skipping
    /// the hour just before it, and of the 2 hours after the event after skipping the
    /// hour just after it (event HE13-17 uses HE9-11 and HE19-20).
    pub fn pjm_same_day() -> Self {
        Self {
            method: Method::PjmSameDay,
            rule: BaselineRule::SameDay {
                before: TimeDelta::hours(3),
                before_gap: TimeDelta::hours(1),
                after: TimeDelta::hours(2),
                after_gap: TimeDelta::hours(1),
            },
            gap_policy: GapPolicy::Error,
            settlement: SettlementRule::Net,
        }
    }
}
