//! The M&V calendar of one market zone: day types, NERC holidays and excluded days.
//!
//! Day-matching baselines compare an event day with "like" days: weekdays with
//! weekdays, weekends and holidays with weekends and holidays, and they leave out
//! holidays and prior event days (markets.md §a, §b, §c). [`Calendar`] answers those
//! questions for one zone.
//!
//! Holidays are the NERC off-peak holidays, built in: New Year's Day, Memorial Day
//! (last Monday of May), Independence Day, Labor Day (first Monday of September),
//! Thanksgiving (fourth Thursday of November) and Christmas Day; a holiday falling on a
//! Sunday is observed on the Monday after (both days count), one falling on a Saturday
//! is not moved. The list is a setting: add or remove dates, or switch the built-in
//! list off, for a program whose holiday list differs.
//!
//! ```
//! use chrono::NaiveDate;
//! use gridflex_core::MarketZone;
//! use gridflex_mv::calendar::{Calendar, DayType};
//!
//! let d = |m, day| NaiveDate::from_ymd_opt(2025, m, day).unwrap();
//! let mut cal = Calendar::new(MarketZone::Pjm);
//! assert_eq!(cal.day_type(d(7, 4)), DayType::Holiday);
//! assert_eq!(cal.day_type(d(7, 5)), DayType::Saturday);
//! cal.add_event_day(d(7, 8));
//! assert!(cal.is_event_day(d(7, 8)));
//! ```

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, Weekday};
use gridflex_core::MarketZone;
use serde::{Deserialize, Serialize};

/// The kind of a day for matching purposes. A holiday is a holiday whatever its weekday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayType {
    /// Monday to Friday, not a holiday.
    Weekday,
    /// Saturday, not a holiday.
    Saturday,
    /// Sunday, not a holiday.
    Sunday,
    /// A holiday of the calendar.
    Holiday,
}

impl DayType {
    /// Lower-case name, as used in reports.
    pub const fn name(self) -> &'static str {
        match self {
            DayType::Weekday => "weekday",
            DayType::Saturday => "saturday",
            DayType::Sunday => "sunday",
            DayType::Holiday => "holiday",
        }
    }

    /// True for Saturdays, Sundays and holidays.
    pub const fn is_weekend_or_holiday(self) -> bool {
        !matches!(self, DayType::Weekday)
    }
}

/// A set of [`DayType`]s: the pool a day-matching rule draws its days from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DayTypes {
    /// Weekdays.
    pub weekday: bool,
    /// Saturdays.
    pub saturday: bool,
    /// Sundays.
    pub sunday: bool,
    /// Holidays.
    pub holiday: bool,
}

impl DayTypes {
    /// Non-holiday weekdays.
    pub const WEEKDAYS: Self = Self {
        weekday: true,
        saturday: false,
        sunday: false,
        holiday: false,
    };
    /// Saturdays, Sundays and holidays.
    pub const WEEKEND_AND_HOLIDAYS: Self = Self {
        weekday: false,
        saturday: true,
        sunday: true,
        holiday: true,
    };
    /// Saturdays only.
    pub const SATURDAYS: Self = Self {
        weekday: false,
        saturday: true,
        sunday: false,
        holiday: false,
    };
    /// Sundays and holidays.
    pub const SUNDAYS_AND_HOLIDAYS: Self = Self {
        weekday: false,
        saturday: false,
        sunday: true,
        holiday: true,
    };

    /// Whether `t` is in the set.
    pub const fn contains(self, t: DayType) -> bool {
        match t {
            DayType::Weekday => self.weekday,
            DayType::Saturday => self.saturday,
            DayType::Sunday => self.sunday,
            DayType::Holiday => self.holiday,
        }
    }

    /// A short name for error messages.
    pub const fn name(self) -> &'static str {
        match (self.weekday, self.saturday, self.sunday, self.holiday) {
            (true, false, false, false) => "weekday",
            (false, true, true, true) => "weekend/holiday",
            (false, true, false, false) => "saturday",
            (false, false, true, true) => "sunday/holiday",
            _ => "like",
        }
    }
}

/// The calendar of one market zone: its holidays and the days to exclude from
/// baselines (prior event days, outage days).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    zone: MarketZone,
    nerc_holidays: bool,
    added_holidays: BTreeSet<NaiveDate>,
    removed_holidays: BTreeSet<NaiveDate>,
    excluded: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// A calendar with the built-in NERC holidays and no excluded days.
    pub fn new(zone: MarketZone) -> Self {
        Self {
            zone,
            nerc_holidays: true,
            added_holidays: BTreeSet::new(),
            removed_holidays: BTreeSet::new(),
            excluded: BTreeSet::new(),
        }
    }

    /// The market zone whose local days this calendar describes.
    pub const fn zone(&self) -> MarketZone {
        self.zone
    }

    /// Turns the built-in NERC holiday list on or off (dates added with
    /// [`Calendar::add_holiday`] stay).
    pub fn use_nerc_holidays(&mut self, on: bool) -> &mut Self {
        self.nerc_holidays = on;
        self
    }

    /// Makes `date` a holiday.
    pub fn add_holiday(&mut self, date: NaiveDate) -> &mut Self {
        self.removed_holidays.remove(&date);
        self.added_holidays.insert(date);
        self
    }

    /// Makes `date` an ordinary day even if the built-in list has it.
    pub fn remove_holiday(&mut self, date: NaiveDate) -> &mut Self {
        self.added_holidays.remove(&date);
        self.removed_holidays.insert(date);
        self
    }

    /// Marks `date` as a prior event day (or any day to leave out of baselines, such as
    /// an outage day).
    pub fn add_event_day(&mut self, date: NaiveDate) -> &mut Self {
        self.excluded.insert(date);
        self
    }

    /// Marks several days as excluded.
    pub fn add_event_days(&mut self, dates: impl IntoIterator<Item = NaiveDate>) -> &mut Self {
        self.excluded.extend(dates);
        self
    }

    /// Whether `date` is excluded as a prior event day.
    pub fn is_event_day(&self, date: NaiveDate) -> bool {
        self.excluded.contains(&date)
    }

    /// The excluded days, in date order.
    pub fn event_days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.excluded.iter().copied()
    }

    /// Whether `date` is a holiday of this calendar.
    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        if self.added_holidays.contains(&date) {
            return true;
        }
        if self.removed_holidays.contains(&date) {
            return false;
        }
        self.nerc_holidays && is_nerc_holiday(date)
    }

    /// The day type of `date`.
    pub fn day_type(&self, date: NaiveDate) -> DayType {
        if self.is_holiday(date) {
            return DayType::Holiday;
        }
        match date.weekday() {
            Weekday::Sat => DayType::Saturday,
            Weekday::Sun => DayType::Sunday,
            _ => DayType::Weekday,
        }
    }
}

/// Whether `date` is a NERC off-peak holiday (see the module docs for the list and
/// the Sunday rule).
pub fn is_nerc_holiday(date: NaiveDate) -> bool {
    let (y, m, d) = (date.year(), date.month(), date.day());
    let fixed = |fm: u32, fd: u32| {
        (m == fm && d == fd)
            || NaiveDate::from_ymd_opt(y, fm, fd)
                .is_some_and(|h| h.weekday() == Weekday::Sun && h.succ_opt() == Some(date))
    };
    // New Year's Day observed on Monday 2 January when 1 January is a Sunday.
    if fixed(1, 1) || fixed(7, 4) || fixed(12, 25) {
        return true;
    }
    let wd = date.weekday();
    match m {
        // Last Monday of May.
        5 => wd == Weekday::Mon && d + 7 > 31,
        // First Monday of September.
        9 => wd == Weekday::Mon && d <= 7,
        // Fourth Thursday of November.
        11 => wd == Weekday::Thu && (22..=28).contains(&d),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn nerc_holidays_2025() {
        let all: Vec<NaiveDate> = d(2025, 1, 1)
            .iter_days()
            .take_while(|x| x.year() == 2025)
            .filter(|x| is_nerc_holiday(*x))
            .collect();
        assert_eq!(
            all,
            [
                d(2025, 1, 1),
                d(2025, 5, 26),
                d(2025, 7, 4),
                d(2025, 9, 1),
                d(2025, 11, 27),
                d(2025, 12, 25)
            ]
        );
    }

    #[test]
    fn sunday_holiday_moves_to_monday_saturday_does_not() {
        // 2022-12-25 was a Sunday; 2022-12-26 is observed.
        assert!(is_nerc_holiday(d(2022, 12, 25)));
        assert!(is_nerc_holiday(d(2022, 12, 26)));
        // 2026-07-04 is a Saturday; Friday 3 July is not a holiday.
        assert!(is_nerc_holiday(d(2026, 7, 4)));
        assert!(!is_nerc_holiday(d(2026, 7, 3)));
        // 2023-01-01 was a Sunday.
        assert!(is_nerc_holiday(d(2023, 1, 2)));
    }

    #[test]
    fn overrides() {
        let mut cal = Calendar::new(MarketZone::Caiso);
        cal.remove_holiday(d(2025, 7, 4))
            .add_holiday(d(2025, 3, 31));
        assert_eq!(cal.day_type(d(2025, 7, 4)), DayType::Weekday);
        assert_eq!(cal.day_type(d(2025, 3, 31)), DayType::Holiday);
        cal.use_nerc_holidays(false);
        assert_eq!(cal.day_type(d(2025, 12, 25)), DayType::Weekday);
        assert_eq!(cal.day_type(d(2025, 3, 31)), DayType::Holiday);
    }
}
