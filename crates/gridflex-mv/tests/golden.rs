//! Golden cases derived from the rules in markets.md §a-§e, with the arithmetic written
//! out. Loads are flat per day unless a case needs a shape, so the sums stay readable.

mod common;

use chrono::{Datelike, NaiveTime, TimeDelta, Timelike};
use common::{date, event, kw, meter};
use gridflex_core::{IntervalSeries, MarketZone, Power, Price};
use gridflex_mv::baseline::{AdjustmentValue, DayOutcome, DropReason};
use gridflex_mv::settlement::{PaymentRule, energy_credits};
use gridflex_mv::{
    Adjustment, AdjustmentKind, Baseline, Calendar, DayType, GapPolicy, MvError, SettlementRule,
};

const CAISO: MarketZone = MarketZone::Caiso;
const PJM: MarketZone = MarketZone::Pjm;

/// CAISO weekday days: 90 kW on even dates, 110 kW on odd dates; weekends and holidays
/// 500 kW (they must never leak into a weekday baseline); the event day (Tue 2025-07-15)
/// has `pre` kW before 13:00 and `during` kW from 13:00.
fn caiso_meter(pre: f64, during: f64) -> gridflex_mv::Meter {
    let cal = Calendar::new(CAISO);
    meter(CAISO, date(2025, 6, 1), 45, 60, move |d, t| {
        Some(if d == date(2025, 7, 15) {
            if t.hour() < 13 { pre } else { during }
        } else if cal.day_type(d) != DayType::Weekday {
            500.0
        } else if d.day() % 2 == 0 {
            90.0
        } else {
            110.0
        })
    })
}

#[test]
fn caiso_10in10_cap_binds_up() {
    // Event Tue 2025-07-15 14:00-16:00 PDT.
    // Ten most recent non-holiday weekdays: 7/14, 7/11, 7/10, 7/9, 7/8, 7/7, 7/3, 7/2,
    // 7/1, 6/30 (Fri 7/4 is a NERC holiday). Even dates 14, 10, 8, 2, 30 -> 90 kW;
    // odd 11, 9, 7, 3, 1 -> 110 kW. B = (5 x 90 + 5 x 110) / 10 = 100 kW.
    // Load-point window [10:00, 13:00): actual 150 kW, baseline 100 kW;
    // LPA = 150 / 100 = 1.5, capped to 1 + 0.20 = 1.2 -> adjusted 120 kW.
    let m = caiso_meter(150.0, 80.0);
    let cal = Calendar::new(CAISO);
    let r = Baseline::caiso_10in10()
        .compute(&m, &cal, event(CAISO, date(2025, 7, 15), 14, 16))
        .unwrap();
    let expected_days: Vec<_> = [
        (7, 14),
        (7, 11),
        (7, 10),
        (7, 9),
        (7, 8),
        (7, 7),
        (7, 3),
        (7, 2),
        (7, 1),
        (6, 30),
    ]
    .iter()
    .map(|(mo, d)| date(2025, *mo, *d))
    .collect();
    assert_eq!(r.selected_days, expected_days);
    let july4 = r.days.iter().find(|d| d.date == date(2025, 7, 4)).unwrap();
    assert_eq!(july4.day_type, DayType::Holiday);
    assert_eq!(july4.outcome, DayOutcome::Dropped(DropReason::NotInPool));
    assert_eq!(r.adjustment.kind, AdjustmentKind::Multiplicative);
    assert_eq!(r.adjustment.uncapped, AdjustmentValue::Factor(1.5));
    assert_eq!(r.adjustment.value, AdjustmentValue::Factor(1.2));
    assert!(r.adjustment.capped);
    assert_eq!(r.intervals.len(), 2);
    for i in &r.intervals {
        assert_eq!(kw(i.baseline), 100.0);
        assert_eq!(kw(i.adjusted_baseline), 120.0);
        assert_eq!(kw(i.actual), 80.0);
    }
    // Reduction 120 - 80 = 40 kW for 2 h = 80 kWh.
    let red = r.reduction();
    assert!((red.settled_energy.as_kilowatt_hours() - 80.0).abs() < 1e-9);
    // With the 0.40 cap the factor is 1.4: 140 - 80 = 60 kW, 120 kWh.
    let r40 = Baseline::caiso_10in10()
        .with_adjustment(Adjustment::multiplicative(3.0, 1.0, Some(0.40)))
        .compute(&m, &cal, event(CAISO, date(2025, 7, 15), 14, 16))
        .unwrap();
    assert_eq!(kw(r40.intervals[0].adjusted_baseline), 140.0);
    assert!((r40.reduction().settled_energy.as_kilowatt_hours() - 120.0).abs() < 1e-9);
}

#[test]
fn caiso_10in10_cap_binds_down_and_negative_intervals_floor_at_zero() {
    // Window actual 50 kW vs baseline 100 kW: LPA 0.5, capped to 0.8 -> 80 kW.
    // Event load 95 kW: raw reduction 80 - 95 = -15 kW per hour, settled 0 (CAISO DREM).
    let m = caiso_meter(50.0, 95.0);
    let r = Baseline::caiso_10in10()
        .compute(
            &m,
            &Calendar::new(CAISO),
            event(CAISO, date(2025, 7, 15), 14, 16),
        )
        .unwrap();
    assert_eq!(r.adjustment.uncapped, AdjustmentValue::Factor(0.5));
    assert_eq!(r.adjustment.value, AdjustmentValue::Factor(0.8));
    assert!(r.adjustment.capped);
    assert_eq!(kw(r.intervals[0].adjusted_baseline), 80.0);
    let red = r.reduction();
    assert_eq!(red.rule, SettlementRule::FloorAtZero);
    assert!((red.raw_energy.as_kilowatt_hours() + 30.0).abs() < 1e-9);
    assert_eq!(red.settled_energy.as_kilowatt_hours(), 0.0);
    assert!(
        red.intervals
            .iter()
            .all(|i| kw(i.raw) == -15.0 && i.settled == Power::ZERO)
    );
}

#[test]
fn caiso_holiday_event_uses_4in4_of_weekend_and_holidays() {
    // Event on Friday 2025-07-04 (Independence Day) 14:00-16:00 PDT: 4-in-4 over
    // weekend days and holidays: 6/29 (Sun), 6/28 (Sat), 6/22 (Sun), 6/21 (Sat).
    // Weekend load = 150 + 2 x day-of-month: 208, 206, 194, 192 -> mean 200 kW.
    // The holiday itself: 200 kW before the event (factor 200/200 = 1), 150 kW during.
    let cal = Calendar::new(CAISO);
    let m = meter(CAISO, date(2025, 6, 1), 34, 60, |d, t| {
        Some(if d == date(2025, 7, 4) {
            if t.hour() < 14 { 200.0 } else { 150.0 }
        } else if cal.day_type(d).is_weekend_or_holiday() {
            150.0 + 2.0 * f64::from(d.day())
        } else {
            1000.0
        })
    });
    let r = Baseline::caiso_10in10()
        .compute(&m, &cal, event(CAISO, date(2025, 7, 4), 14, 16))
        .unwrap();
    assert_eq!(r.day_type, DayType::Holiday);
    assert_eq!(
        r.selected_days,
        [
            date(2025, 6, 29),
            date(2025, 6, 28),
            date(2025, 6, 22),
            date(2025, 6, 21)
        ]
    );
    assert_eq!(kw(r.intervals[0].baseline), 200.0);
    assert_eq!(r.adjustment.value, AdjustmentValue::Factor(1.0));
    assert!(!r.adjustment.capped);
    // 200 - 150 = 50 kW x 2 h = 100 kWh.
    assert!((r.reduction().settled_energy.as_kilowatt_hours() - 100.0).abs() < 1e-9);
}

#[test]
fn pjm_low_usage_day_refilled_and_negative_saa() {
    // Event Wed 2025-07-16 13:00-15:00 EDT. Weekdays back from 7/15: 7/15, 7/14, 7/11,
    // 7/10 (a prior event day: dropped), 7/9, 7/8, then 7/7 (7/4 is a holiday).
    // Flat daily loads: 7/15 100, 7/14 120, 7/11 20, 7/9 110, 7/8 90, 7/7 130 kW.
    // First window: 100, 120, 20, 110, 90 -> mean 88; 25 % of 88 = 22 > 20, so 7/11
    // is a low-usage day (ratio 20/88) and 7/7 refills the window: 100, 120, 110, 90,
    // 130 (130 is above 22, the first window's threshold, and above 27.5, the refreshed
    // window's). High 4 of 5 drops 7/8 (90, rank 5).
    // CBL = (100 + 120 + 110 + 130) / 4 = 115 kW.
    // SAA window [09:00, 12:00): actual 95 kW -> SAA = 95 - 115 = -20 kW; AdjCBL 95 kW.
    // Event load 60 kW -> reduction 35 kW x 2 h = 70 kWh.
    let load = |d: chrono::NaiveDate| match (d.month(), d.day()) {
        (7, 15) => 100.0,
        (7, 14) => 120.0,
        (7, 11) => 20.0,
        (7, 10) => 300.0,
        (7, 9) => 110.0,
        (7, 8) => 90.0,
        (7, 7) => 130.0,
        _ => 400.0,
    };
    let m = meter(PJM, date(2025, 6, 20), 27, 60, move |d, t| {
        Some(if d == date(2025, 7, 16) {
            if t.hour() < 13 { 95.0 } else { 60.0 }
        } else {
            load(d)
        })
    });
    let mut cal = Calendar::new(PJM);
    cal.add_event_day(date(2025, 7, 10));
    let r = Baseline::pjm_cbl()
        .compute(&m, &cal, event(PJM, date(2025, 7, 16), 13, 15))
        .unwrap();
    assert_eq!(
        r.selected_days,
        [
            date(2025, 7, 15),
            date(2025, 7, 14),
            date(2025, 7, 9),
            date(2025, 7, 7)
        ]
    );
    let outcome = |d| r.days.iter().find(|x| x.date == d).unwrap().outcome;
    assert_eq!(
        outcome(date(2025, 7, 10)),
        DayOutcome::Dropped(DropReason::EventDay)
    );
    assert_eq!(
        outcome(date(2025, 7, 11)),
        DayOutcome::Dropped(DropReason::LowUsage { ratio: 20.0 / 88.0 })
    );
    assert_eq!(
        outcome(date(2025, 7, 8)),
        DayOutcome::Dropped(DropReason::NotSelected { rank: 5 })
    );
    // The window filled at 7/7, so older days were never examined.
    assert!(r.days.iter().all(|x| x.date >= date(2025, 7, 7)));
    assert_eq!(kw(r.intervals[0].baseline), 115.0);
    assert_eq!(r.adjustment.kind, AdjustmentKind::Additive);
    assert_eq!(
        r.adjustment.value,
        AdjustmentValue::Offset(Power::kilowatts(-20.0).unwrap())
    );
    assert!(!r.adjustment.capped);
    assert_eq!(kw(r.intervals[1].adjusted_baseline), 95.0);
    assert!((r.reduction().settled_energy.as_kilowatt_hours() - 70.0).abs() < 1e-9);
}

#[test]
fn pjm_sunday_holiday_high_2_of_3() {
    // Event on Friday 2025-07-04 (holiday) 14:00-16:00 EDT: the 3 most recent Sundays
    // or holidays are 6/29, 6/22, 6/15 (Memorial Day 5/26 is older). Loads
    // 150 + 2 x day: 208, 194, 180 -> High 2 of 3 = (208 + 194) / 2 = 201 kW.
    let cal = Calendar::new(PJM);
    let m = meter(PJM, date(2025, 5, 20), 46, 60, |d, t| {
        Some(if d == date(2025, 7, 4) {
            if t.hour() < 14 { 201.0 } else { 101.0 }
        } else {
            150.0 + 2.0 * f64::from(d.day())
        })
    });
    let r = Baseline::pjm_cbl()
        .compute(&m, &cal, event(PJM, date(2025, 7, 4), 14, 16))
        .unwrap();
    assert_eq!(r.selected_days, [date(2025, 6, 29), date(2025, 6, 22)]);
    assert_eq!(kw(r.intervals[0].baseline), 201.0);
    // SAA = 201 - 201 = 0; reduction 100 kW x 2 h.
    assert_eq!(r.adjustment.value, AdjustmentValue::Offset(Power::ZERO));
    assert!((r.reduction().settled_energy.as_kilowatt_hours() - 200.0).abs() < 1e-9);
    // A Saturday event uses Saturdays only: 7/5 -> 6/28, 6/21, 6/14: 206, 192, 178.
    let m2 = meter(PJM, date(2025, 5, 20), 47, 60, |d, _| {
        Some(150.0 + 2.0 * f64::from(d.day()))
    });
    let r2 = Baseline::pjm_cbl()
        .with_adjustment(Adjustment::none())
        .compute(&m2, &cal, event(PJM, date(2025, 7, 5), 14, 16))
        .unwrap();
    assert_eq!(r2.day_type, DayType::Saturday);
    assert_eq!(r2.selected_days, [date(2025, 6, 28), date(2025, 6, 21)]);
    assert_eq!(kw(r2.intervals[0].baseline), 199.0); // (206 + 192) / 2
}

/// Load = 100 + local clock hour: any slip of the clock mapping on a DST day shows.
fn clock_load(_: chrono::NaiveDate, t: NaiveTime) -> Option<f64> {
    Some(100.0 + f64::from(t.hour()))
}

#[test]
fn dst_days_match_by_local_clock() {
    let cal = Calendar::new(CAISO);
    // Fall back: Sunday 2024-11-03 has 25 hours. 4-in-4 over 11/2, 10/27, 10/26, 10/20.
    let m = meter(CAISO, date(2024, 10, 1), 40, 15, clock_load);
    let r = Baseline::caiso_10in10()
        .compute(&m, &cal, event(CAISO, date(2024, 11, 3), 14, 16))
        .unwrap();
    assert_eq!(
        r.selected_days,
        [
            date(2024, 11, 2),
            date(2024, 10, 27),
            date(2024, 10, 26),
            date(2024, 10, 20)
        ]
    );
    // 8 quarter hours: 14:00-14:45 -> 114 kW, 15:00-15:45 -> 115 kW; window factor
    // (110 + 111 + 112) / (110 + 111 + 112) = 1.
    assert_eq!(r.intervals.len(), 8);
    assert_eq!(kw(r.intervals[0].baseline), 114.0);
    assert_eq!(kw(r.intervals[7].baseline), 115.0);
    assert_eq!(r.adjustment.value, AdjustmentValue::Factor(1.0));
    assert_eq!(r.reduction().raw_energy.as_kilowatt_hours(), 0.0);
    // The Monday after (PST) matches weekdays before the change (PDT) by clock time.
    let r = Baseline::caiso_10in10()
        .compute(&m, &cal, event(CAISO, date(2024, 11, 4), 14, 16))
        .unwrap();
    assert_eq!(kw(r.intervals[0].baseline), 114.0);
    // Spring forward: Sunday 2024-03-10 has 23 hours; 4-in-4 over 3/9, 3/3, 3/2, 2/25.
    let m = meter(CAISO, date(2024, 2, 1), 45, 5, clock_load);
    let r = Baseline::caiso_10in10()
        .compute(&m, &cal, event(CAISO, date(2024, 3, 10), 14, 16))
        .unwrap();
    assert_eq!(r.selected_days.len(), 4);
    assert_eq!(r.intervals.len(), 24);
    assert_eq!(kw(r.intervals[0].baseline), 114.0);
    assert_eq!(kw(r.intervals[23].baseline), 115.0);
    // An event in the skipped hour's clock range on a normal day cannot use the spring
    // day: 02:00-03:00 on Sat 3/16 draws weekend days, and 3/10 is reported as no data.
    let r = Baseline::caiso_10in10()
        .compute(&m, &cal, event(CAISO, date(2024, 3, 16), 4, 5))
        .unwrap();
    assert!(!r.selected_days.contains(&date(2024, 3, 10)));
    let spring = r.days.iter().find(|d| d.date == date(2024, 3, 10)).unwrap();
    assert_eq!(spring.outcome, DayOutcome::Dropped(DropReason::NoData));
}

#[test]
fn nyiso_highest_5_of_10_and_in_day_bounds() {
    // Weekdays before Thu 2025-07-17: 7/16, 15, 14, 11, 10, 9, 8, 7, 3, 2 (7/4 holiday).
    // Loads 101..110 kW from oldest (7/2) to newest (7/16); highest 5 = 106..110,
    // CBL = 108 kW. Window [t0-4h, t0-2h) = [10:00, 12:00): actual 140 kW ->
    // 140/108 = 1.296 -> bounded to 1.2 -> 129.6 kW.
    let order = [
        (7, 2),
        (7, 3),
        (7, 7),
        (7, 8),
        (7, 9),
        (7, 10),
        (7, 11),
        (7, 14),
        (7, 15),
        (7, 16),
    ];
    let m = meter(MarketZone::Nyiso, date(2025, 6, 25), 23, 60, move |d, t| {
        if d == date(2025, 7, 17) {
            return Some(if t.hour() < 14 { 140.0 } else { 100.0 });
        }
        let k = order
            .iter()
            .position(|(mo, da)| d.month() == *mo && d.day() == *da);
        Some(k.map_or(1000.0, |k| 101.0 + k as f64))
    });
    let r = Baseline::nyiso_cbl()
        .compute(
            &m,
            &Calendar::new(MarketZone::Nyiso),
            event(MarketZone::Nyiso, date(2025, 7, 17), 14, 16),
        )
        .unwrap();
    assert_eq!(r.selected_days.len(), 5);
    assert_eq!(kw(r.intervals[0].baseline), 108.0);
    assert_eq!(r.adjustment.value, AdjustmentValue::Factor(1.2));
    assert!(r.adjustment.capped);
    assert!((kw(r.intervals[0].adjusted_baseline) - 129.6).abs() < 1e-9);
    let w = r.adjustment.window.unwrap();
    assert_eq!(w.duration(), TimeDelta::hours(2));
    assert_eq!(r.event.start() - w.start(), TimeDelta::hours(4));
}

#[test]
fn ercot_middle_8_of_10() {
    // Same ten days and loads 101..110: drop 110 and 101, mean of 102..109 = 105.5 kW.
    let order = [
        (7, 2),
        (7, 3),
        (7, 7),
        (7, 8),
        (7, 9),
        (7, 10),
        (7, 11),
        (7, 14),
        (7, 15),
        (7, 16),
    ];
    let m = meter(MarketZone::Ercot, date(2025, 6, 25), 23, 60, move |d, _| {
        let k = order
            .iter()
            .position(|(mo, da)| d.month() == *mo && d.day() == *da);
        Some(k.map_or(105.5, |k| 101.0 + k as f64))
    });
    let r = Baseline::ercot_middle_8_of_10()
        .compute(
            &m,
            &Calendar::new(MarketZone::Ercot),
            event(MarketZone::Ercot, date(2025, 7, 17), 14, 16),
        )
        .unwrap();
    assert_eq!(r.selected_days.len(), 8);
    assert!(!r.selected_days.contains(&date(2025, 7, 16)));
    assert!(!r.selected_days.contains(&date(2025, 7, 2)));
    assert_eq!(kw(r.intervals[0].baseline), 105.5);
    // Event day 105.5 kW all day: additive adjustment 0.
    assert_eq!(r.adjustment.value, AdjustmentValue::Offset(Power::ZERO));
}

#[test]
fn pjm_same_day_3_plus_2() {
    // Event HE13-HE17 = 12:00-17:00 EDT. Pre window HE9-11 = [08:00, 11:00), post
    // window HE19-20 = [18:00, 20:00). Load = 10 x clock hour: (80 + 90 + 100 + 180 + 190)
    // / 5 = 128 kW.
    let m = meter(PJM, date(2025, 7, 15), 1, 60, |_, t| {
        Some(10.0 * f64::from(t.hour()))
    });
    let r = Baseline::pjm_same_day()
        .compute(
            &m,
            &Calendar::new(PJM),
            event(PJM, date(2025, 7, 15), 12, 17),
        )
        .unwrap();
    assert_eq!(r.intervals.len(), 5);
    assert!(r.intervals.iter().all(|i| kw(i.baseline) == 128.0));
    assert_eq!(r.selected_days, [date(2025, 7, 15)]);
}

#[test]
fn meter_before_meter_after() {
    // 5-minute data: 800 kW until 14:00, the instruction at 13:57:30, then 300 kW.
    // The last full interval before the instruction is 13:50-13:55 (800 kW).
    let m = meter(CAISO, date(2025, 7, 15), 1, 5, |_, t| {
        Some(if t < NaiveTime::from_hms_opt(14, 0, 0).unwrap() {
            800.0
        } else {
            300.0
        })
    });
    let ev = event(CAISO, date(2025, 7, 15), 14, 15);
    let mut b = Baseline::meter_before_meter_after();
    b.rule = gridflex_mv::BaselineRule::MeterBefore {
        instruction: Some(ev.start() - TimeDelta::seconds(150)),
    };
    let r = b.compute(&m, &Calendar::new(CAISO), ev).unwrap();
    assert_eq!(r.intervals.len(), 12);
    assert!(
        r.intervals
            .iter()
            .all(|i| kw(i.baseline) == 800.0 && kw(i.actual) == 300.0)
    );
    // 500 kW for 1 h.
    assert!((r.reduction().settled_energy.as_kilowatt_hours() - 500.0).abs() < 1e-9);
}

#[test]
fn gaps_are_errors_naming_the_interval_unless_skipped() {
    // 7/14 13:00-14:00 PDT missing (inside the event window's clock times).
    let cal = Calendar::new(CAISO);
    let m = meter(CAISO, date(2025, 6, 1), 45, 60, |d, t| {
        (!(d == date(2025, 7, 14) && t.hour() == 14)).then_some(100.0)
    });
    let ev = event(CAISO, date(2025, 7, 15), 14, 16);
    let err = Baseline::caiso_10in10().compute(&m, &cal, ev).unwrap_err();
    let MvError::MissingData { interval, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        interval.start(),
        event(CAISO, date(2025, 7, 14), 14, 15).start()
    );
    assert!(
        err.to_string().contains("2025-07-14T21:00:00+00:00"),
        "{err}"
    );
    let r = Baseline::caiso_10in10()
        .with_gap_policy(GapPolicy::SkipDay)
        .compute(&m, &cal, ev)
        .unwrap();
    assert!(!r.selected_days.contains(&date(2025, 7, 14)));
    assert_eq!(r.selected_days.len(), 10);
    assert!(matches!(
        r.days[0].outcome,
        DayOutcome::Dropped(DropReason::MissingData { .. })
    ));
}

#[test]
fn bad_events_are_typed_errors() {
    let cal = Calendar::new(CAISO);
    let m = caiso_meter(100.0, 100.0);
    let ev = event(CAISO, date(2025, 7, 15), 14, 16);
    // Off the hourly grid.
    let off = gridflex_core::Interval::new(ev.start() + TimeDelta::minutes(5), ev.end()).unwrap();
    assert!(matches!(
        Baseline::caiso_10in10().compute(&m, &cal, off),
        Err(MvError::Misaligned { .. })
    ));
    // Crossing local midnight.
    let across = gridflex_core::Interval::new(
        common::event(CAISO, date(2025, 7, 14), 22, 23).start(),
        common::event(CAISO, date(2025, 7, 15), 1, 2).start(),
    )
    .unwrap();
    assert!(matches!(
        Baseline::pjm_same_day().compute(&m, &cal, across),
        Err(MvError::InvalidEvent { .. })
    ));
    // Too little history.
    let short = meter(CAISO, date(2025, 7, 10), 6, 60, |_, _| Some(100.0));
    let err = Baseline::caiso_10in10()
        .compute(&short, &cal, event(CAISO, date(2025, 7, 15), 14, 16))
        .unwrap_err();
    assert!(
        matches!(
            err,
            MvError::InsufficientDays {
                found: 3,
                required: 5,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn energy_credits_with_net_benefits_test() {
    // PJM-style: 2 hourly intervals with settled reductions 100 and 50 kW; LMP 150 and
    // 90 $/MWh; NBT 100 $/MWh: only hour 1 is paid: 0.1 MWh x 150 = $15.
    let m = meter(PJM, date(2025, 7, 15), 1, 60, |_, t| {
        Some(match t.hour() {
            14 => 100.0,
            15 => 150.0,
            _ => 200.0,
        })
    });
    let ev = event(PJM, date(2025, 7, 15), 14, 16);
    let r = Baseline::meter_before_meter_after()
        .compute(&m, &Calendar::new(PJM), ev)
        .unwrap();
    let red = r.reduction_with(SettlementRule::Net);
    let p = |v| Price::per_megawatt_hour(v).unwrap();
    let lmp =
        IntervalSeries::from_values(ev.start(), TimeDelta::hours(1), [p(150.0), p(90.0)]).unwrap();
    let c = energy_credits(&red, &lmp, PaymentRule::NetBenefitsTest(p(100.0))).unwrap();
    assert!((c.total.as_usd() - 15.0).abs() < 1e-9);
    assert!(c.intervals[0].paid && !c.intervals[1].paid);
    // Without the test: 15 + 0.05 x 90 = $19.50.
    let c = energy_credits(&red, &lmp, PaymentRule::AllIntervals).unwrap();
    assert!((c.total.as_usd() - 19.5).abs() < 1e-9);
    // 5-minute prices over hourly meter data are time-averaged: 12 prices 100..=210 step
    // 10 average 155 in hour 1.
    let fine = IntervalSeries::from_values(
        ev.start(),
        TimeDelta::minutes(5),
        (0..24).map(|k| p(100.0 + 10.0 * f64::from(k % 12))),
    )
    .unwrap();
    let c = energy_credits(&red, &fine, PaymentRule::AllIntervals).unwrap();
    assert!((c.intervals[0].lmp.as_per_megawatt_hour() - 155.0).abs() < 1e-9);
    // A price series that stops early is an error naming the interval.
    let short = IntervalSeries::from_values(ev.start(), TimeDelta::hours(1), [p(150.0)]).unwrap();
    assert!(matches!(
        energy_credits(&red, &short, PaymentRule::AllIntervals),
        Err(MvError::MissingPrice { .. })
    ));
    // Performance against 80 kW committed: mean 75 kW, ratio 0.9375, hour 2 short by 30 kWh.
    let perf = red.performance(Power::kilowatts(80.0).unwrap());
    assert!((perf.ratio - 0.9375).abs() < 1e-12);
    assert_eq!(perf.intervals_met, 1);
    assert!((perf.shortfall.as_kilowatt_hours() - 30.0).abs() < 1e-9);
}

#[test]
fn adjustment_kind_switch_keeps_days() {
    let m = caiso_meter(150.0, 80.0);
    let cal = Calendar::new(CAISO);
    let ev = event(CAISO, date(2025, 7, 15), 14, 16);
    let r = Baseline::caiso_10in10()
        .with_adjustment(Adjustment::additive(3.0, 1.0, None))
        .compute(&m, &cal, ev)
        .unwrap();
    // Additive: 150 - 100 = +50 kW -> 150 kW adjusted.
    assert_eq!(kw(r.intervals[0].adjusted_baseline), 150.0);
    // Additive with a 0.2 cap: bounded to 0.2 x 100 = 20 kW.
    let r = Baseline::caiso_10in10()
        .with_adjustment(Adjustment::additive(3.0, 1.0, Some(0.2)))
        .compute(&m, &cal, ev)
        .unwrap();
    assert_eq!(kw(r.intervals[0].adjusted_baseline), 120.0);
    assert!(r.adjustment.capped);
    // No adjustment.
    let r = Baseline::caiso_10in10()
        .with_adjustment(Adjustment::none())
        .compute(&m, &cal, ev)
        .unwrap();
    assert_eq!(kw(r.intervals[0].adjusted_baseline), 100.0);
    assert_eq!(r.adjustment.window, None);
}

#[test]
fn baseline_accuracy_on_non_event_days() {
    use gridflex_mv::accuracy::baseline_accuracy;
    // Weekday loads alternate 90 (even date) / 110 (odd date) kW, flat all day; no
    // adjustment. For a test day, 10-in-10 averages 5 even and 5 odd days whenever the
    // ten prior weekdays split 5/5, giving 100 kW against 90 or 110 kW actual: error
    // +10 or -10 kW on every interval. Test days Tue 7/15 (odd, e = -10) and Wed 7/16
    // (even, e = +10): weekdays before 7/15 are 7/14 .. 6/30 (5 even, 5 odd); before
    // 7/16 they are 7/15 .. 7/1 (7/15, 11, 9, 7, 3, 1 odd = 6; 14, 10, 8, 2 even = 4):
    // B = (6 x 110 + 4 x 90) / 10 = 102 kW, e = 102 - 90 = +12 kW.
    // Over 2 x 4 hourly intervals: e = -10 (x4), +12 (x4); mean A = 100.
    // RMSE = sqrt((4 x 100 + 4 x 144) / 8) = sqrt(122); rRMSE = sqrt(122)/100;
    // CV(RMSE) = sqrt(976 / 7) / 100; NMBE = (-40 + 48) / (8 x 100) = 0.01.
    let cal = Calendar::new(CAISO);
    let m = meter(CAISO, date(2025, 6, 1), 47, 60, |d, _| {
        Some(if d.day() % 2 == 0 { 90.0 } else { 110.0 })
    });
    let b = Baseline::caiso_10in10().with_adjustment(Adjustment::none());
    let h = |x| NaiveTime::from_hms_opt(x, 0, 0).unwrap();
    let report = baseline_accuracy(
        &b,
        &m,
        &cal,
        &[date(2025, 7, 15), date(2025, 7, 16)],
        h(14),
        h(18),
    )
    .unwrap();
    assert_eq!(report.days.len(), 2);
    assert!(report.skipped.is_empty());
    let a = report.metrics;
    assert_eq!(a.n, 8);
    assert!((a.relative_rmse - 122f64.sqrt() / 100.0).abs() < 1e-12);
    assert!((a.cv_rmse - (976.0f64 / 7.0).sqrt() / 100.0).abs() < 1e-12);
    assert!((a.nmbe - 0.01).abs() < 1e-12);
    // An event day in the calendar is skipped, not scored.
    let mut cal2 = cal.clone();
    cal2.add_event_day(date(2025, 7, 16));
    let report = baseline_accuracy(
        &b,
        &m,
        &cal2,
        &[date(2025, 7, 15), date(2025, 7, 16)],
        h(14),
        h(18),
    )
    .unwrap();
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.metrics.n, 4);
}

#[test]
fn result_series_line_up_with_the_event() {
    let m = caiso_meter(150.0, 80.0);
    let ev = event(CAISO, date(2025, 7, 15), 14, 16);
    let r = Baseline::caiso_10in10()
        .compute(&m, &Calendar::new(CAISO), ev)
        .unwrap();
    let b = r.adjusted_baseline_series().unwrap();
    assert_eq!(b.start(), ev.start());
    assert_eq!(b.len(), 2);
    assert_eq!(b.values()[0], Some(Power::kilowatts(120.0).unwrap()));
    let a = r.actual_series().unwrap();
    assert_eq!(a.energy().unwrap().as_kilowatt_hours(), 160.0);
}

#[test]
fn calendar_must_match_the_meter_zone() {
    let m = caiso_meter(100.0, 100.0);
    let err = Baseline::caiso_10in10()
        .compute(
            &m,
            &Calendar::new(PJM),
            event(CAISO, date(2025, 7, 15), 14, 16),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        MvError::InvalidParameter {
            name: "calendar zone",
            ..
        }
    ));
}
