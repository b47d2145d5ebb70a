//! ERCOT default baseline "Middle 8-of-10 Preceding Like Days" (markets.md §c; ERCOT
//! EILS/ERS Default Baseline Methodologies, `[V]` for the method, `[K]` for the
//! event-day adjustment details).

use super::{Adjustment, Baseline, BaselineRule, DayMatching, DayRules, Method, Selection};
use crate::calendar::DayTypes;
use crate::meter::GapPolicy;
use crate::reduction::SettlementRule;

impl Adjustment {
    /// The ERCOT event-day adjustment as configured by default: additive over the 3 hours
    /// ending 1 hour before the event, uncapped. The source only says "additive, from a
    /// pre-event window ending before dispatch notification" `[K]`, so window and gap are
    /// settings.
    pub fn ercot_event_day() -> Self {
        Adjustment::additive(3.0, 1.0, None)
    }
}

impl Baseline {
    /// ERCOT middle 8 of 10: the 10 most recent like days (non-holiday weekdays, or
    /// weekend days and holidays) within 45 days, drop the highest and the lowest, and
    /// average the other 8; event-day adjustment [`Adjustment::ercot_event_day`].
    pub fn ercot_middle_8_of_10() -> Self {
        let weekday = DayMatching {
            pool: DayTypes::WEEKDAYS,
            count: 10,
            select: Selection::Middle {
                drop_highest: 1,
                drop_lowest: 1,
            },
            lookback_days: 45,
            min_days: 10,
            low_usage_threshold: None,
            low_usage_reference: super::LowUsageReference::InitialWindow,
        };
        let weekend = DayMatching {
            pool: DayTypes::WEEKEND_AND_HOLIDAYS,
            ..weekday
        };
        Self {
            method: Method::ErcotMiddle8of10,
            rule: BaselineRule::DayMatching {
                days: DayRules {
                    weekday,
                    saturday: weekend,
                    sunday_holiday: weekend,
                },
                adjustment: Adjustment::ercot_event_day(),
            },
            gap_policy: GapPolicy::Error,
            settlement: SettlementRule::Net,
        }
    }
}
