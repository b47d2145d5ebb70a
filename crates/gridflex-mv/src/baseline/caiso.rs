//! CAISO day-matching baselines (markets.md §a; CAISO Tariff §4.13.4, BPM for Demand
//! Response §10; BAWG 2017). Parameters tagged `[K]` there are settings here.

use super::{Adjustment, Baseline, BaselineRule, DayMatching, DayRules, Method, Selection};
use crate::calendar::DayTypes;
use crate::meter::GapPolicy;
use crate::reduction::SettlementRule;

impl Adjustment {
    /// The CAISO load-point adjustment: multiplicative over the 3 hours ending 1 hour
    /// before the event (`[t0 - 4 h, t0 - 1 h)`), factor capped to `[0.8, 1.2]`. The 20 %
    /// cap is `[V]`; the window is `[K]`. ESDER-2 options are believed to allow 40 %.
    pub fn caiso_load_point() -> Self {
        Adjustment::multiplicative(3.0, 1.0, Some(0.20))
    }
}

impl Baseline {
    /// CAISO 10-in-10 for weekday events: the 10 most recent non-holiday, non-event
    /// weekdays within 45 calendar days, averaged; for weekend or holiday events
    /// "4-in-4": the 4 most recent non-event weekend days or holidays. Reduced counts
    /// down to 5 (weekday) and 2 (weekend) days are accepted `[K]`. Load-point
    /// adjustment [`Adjustment::caiso_load_point`]; negative interval reductions settle at zero.
    pub fn caiso_10in10() -> Self {
        let weekday = DayMatching {
            pool: DayTypes::WEEKDAYS,
            count: 10,
            select: Selection::All,
            lookback_days: 45,
            min_days: 5,
            low_usage_threshold: None,
            low_usage_reference: super::LowUsageReference::InitialWindow,
        };
        let weekend = DayMatching {
            pool: DayTypes::WEEKEND_AND_HOLIDAYS,
            count: 4,
            min_days: 2,
            ..weekday
        };
        Self {
            method: Method::Caiso10in10,
            rule: BaselineRule::DayMatching {
                days: DayRules {
                    weekday,
                    saturday: weekend,
                    sunday_holiday: weekend,
                },
                adjustment: Adjustment::caiso_load_point(),
            },
            gap_policy: GapPolicy::Error,
            settlement: SettlementRule::FloorAtZero,
        }
    }

    /// CAISO residential 5-in-10 `[K]`: the 5 highest (by event-window load) of the 10
    /// most recent eligible weekdays; for weekend or holiday events the 3 highest of the
    /// 5 most recent weekend days or holidays (PG&E's published shape, `[V]` for PG&E).
    /// Load-point adjustment with the 20 % cap by default; set the cap to 0.40 for the
    /// ESDER-2 variant believed to apply (unverified).
    pub fn caiso_5in10() -> Self {
        let weekday = DayMatching {
            pool: DayTypes::WEEKDAYS,
            count: 10,
            select: Selection::Highest(5),
            lookback_days: 45,
            min_days: 5,
            low_usage_threshold: None,
            low_usage_reference: super::LowUsageReference::InitialWindow,
        };
        let weekend = DayMatching {
            pool: DayTypes::WEEKEND_AND_HOLIDAYS,
            count: 5,
            select: Selection::Highest(3),
            min_days: 3,
            ..weekday
        };
        Self {
            method: Method::Caiso5in10,
            rule: BaselineRule::DayMatching {
                days: DayRules {
                    weekday,
                    saturday: weekend,
                    sunday_holiday: weekend,
                },
                adjustment: Adjustment::caiso_load_point(),
            },
            gap_policy: GapPolicy::Error,
            settlement: SettlementRule::FloorAtZero,
        }
    }
}
