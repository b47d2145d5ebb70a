//! PJM CBL settings whose reading of the manual is a choice: the low-usage test's
//! reference average, and the Symmetric Additive Adjustment window with a dispatch
//! notification (PJM M11 §10.3, OA Schedule 1 §3.3A.2.1, `[K]`; markets.md §b).

mod common;

use chrono::{Datelike, TimeDelta, Timelike};
use common::{date, event, kw, meter};
use gridflex_core::MarketZone;
use gridflex_mv::baseline::{DayOutcome, DropReason};
use gridflex_mv::{Baseline, BaselineRule, Calendar, LowUsageReference, MvError};

const PJM: MarketZone = MarketZone::Pjm;

fn with_reference(reference: LowUsageReference) -> Baseline {
    let mut b = Baseline::pjm_cbl();
    if let BaselineRule::DayMatching { days, .. } = &mut b.rule {
        days.weekday.low_usage_reference = reference;
    }
    b
}

#[test]
fn low_usage_replacements_tested_against_the_first_window_or_the_refreshed_one() {
    // Event Wed 2025-07-16 13:00-15:00 EDT. Weekdays back from 7/15: 7/15, 7/14, 7/11,
    // 7/10, 7/9, then 7/8, 7/7, (7/4 is a NERC holiday) 7/3. Flat daily loads:
    // 7/15 100, 7/14 100, 7/11 100, 7/10 0, 7/9 0, 7/8 16, 7/7 40, 7/3 90 kW.
    // First window: 100, 100, 100, 0, 0 -> mean 60, threshold 15: 7/10 and 7/9 are low;
    // 7/8 and 7/7 refill it.
    // - First window's average (default): 16 >= 15, so the window is 100, 100, 100, 16,
    //   40; High 4 of 5 -> (100 + 100 + 100 + 40) / 4 = 85 kW.
    // - Refreshed: 100, 100, 100, 16, 40 -> mean 71.2, threshold 17.8: 7/8 is low, 7/3
    //   refills: 100, 100, 100, 40, 90 -> mean 86, threshold 21.5, none low; High 4 of
    //   5 -> (100 + 100 + 100 + 90) / 4 = 97.5 kW.
    let load = |d: chrono::NaiveDate| match (d.month(), d.day()) {
        (7, 15) | (7, 14) | (7, 11) => 100.0,
        (7, 10) | (7, 9) => 0.0,
        (7, 8) => 16.0,
        (7, 7) => 40.0,
        (7, 3) => 90.0,
        _ => 400.0,
    };
    let m = meter(PJM, date(2025, 6, 20), 27, 60, move |d, t| {
        Some(if d == date(2025, 7, 16) {
            if t.hour() < 13 { 95.0 } else { 60.0 }
        } else {
            load(d)
        })
    });
    let cal = Calendar::new(PJM);
    let ev = event(PJM, date(2025, 7, 16), 13, 15);
    let first = with_reference(LowUsageReference::InitialWindow)
        .compute(&m, &cal, ev)
        .unwrap();
    assert_eq!(kw(first.intervals[0].baseline), 85.0);
    let default = Baseline::pjm_cbl().compute(&m, &cal, ev).unwrap();
    assert_eq!(
        default.intervals, first.intervals,
        "the default is the first window"
    );
    let outcome =
        |r: &gridflex_mv::BaselineResult, d| r.days.iter().find(|x| x.date == d).map(|x| x.outcome);
    assert_eq!(
        outcome(&first, date(2025, 7, 8)),
        Some(DayOutcome::Dropped(DropReason::NotSelected { rank: 5 }))
    );
    let refreshed = with_reference(LowUsageReference::Refreshed)
        .compute(&m, &cal, ev)
        .unwrap();
    assert_eq!(kw(refreshed.intervals[0].baseline), 97.5);
    assert!(matches!(
        outcome(&refreshed, date(2025, 7, 8)),
        Some(DayOutcome::Dropped(DropReason::LowUsage { .. }))
    ));
}

#[test]
fn saa_window_ends_before_an_earlier_notification() {
    // Event Wed 2025-07-16 14:00-16:00 EDT; every other day a flat 100 kW, so the CBL
    // is 100 kW in every hour. On the event day the site runs at 100 kW until 10:00,
    // 300 kW from 10:00 to 14:00, 50 kW in the event.
    // - No notification: SAA window [10:00, 13:00): 300 - 100 = +200 -> AdjCBL 300.
    // - Notified at 10:30: the window ends 1 h before 10:00 (the notification's hour):
    //   [06:00, 09:00): 100 - 100 = 0 -> AdjCBL 100.
    let m = meter(PJM, date(2025, 6, 20), 27, 60, |d, t| {
        Some(if d == date(2025, 7, 16) {
            match t.hour() {
                h if h < 10 => 100.0,
                h if h < 14 => 300.0,
                _ => 50.0,
            }
        } else {
            100.0
        })
    });
    let cal = Calendar::new(PJM);
    let ev = event(PJM, date(2025, 7, 16), 14, 16);
    let b = Baseline::pjm_cbl();
    let plain = b.compute(&m, &cal, ev).unwrap();
    assert_eq!(kw(plain.intervals[0].adjusted_baseline), 300.0);
    let notice = ev.start() - TimeDelta::minutes(210);
    let notified = b.compute_notified(&m, &cal, ev, Some(notice)).unwrap();
    assert_eq!(kw(notified.intervals[0].adjusted_baseline), 100.0);
    let w = notified.adjustment.window.unwrap();
    assert_eq!(w.start(), ev.start() - TimeDelta::hours(8));
    assert_eq!(w.end(), ev.start() - TimeDelta::hours(5));
    // A notification at or after the event start changes nothing.
    let late = b.compute_notified(&m, &cal, ev, Some(ev.start())).unwrap();
    assert_eq!(late.intervals, plain.intervals);
    // Notified so early that the window would start before the event's local day.
    let err = b
        .compute_notified(&m, &cal, ev, Some(ev.start() - TimeDelta::hours(12)))
        .unwrap_err();
    assert!(matches!(err, MvError::InvalidEvent { .. }), "{err}");
}
