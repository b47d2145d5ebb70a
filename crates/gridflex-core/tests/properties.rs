//! Property tests for gridflex-core: unit round-trips, local <-> UTC on every DST
//! transition day 2000-2040 in every market zone, and energy-conserving resampling.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Utc};
use gridflex_core::{
    CoreError, Energy, IntervalSeries, LocalMapping, MarketZone, Money, OperatingDay, Power, Price,
};
use proptest::prelude::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #[test]
    fn power_conversions_round_trip(w in -1e12f64..1e12) {
        let p = Power::watts(w).unwrap();
        prop_assert!(close(Power::kilowatts(p.as_kilowatts()).unwrap().as_watts(), w));
        prop_assert!(close(Power::megawatts(p.as_megawatts()).unwrap().as_watts(), w));
    }

    #[test]
    fn energy_conversions_round_trip(j in -1e15f64..1e15) {
        let e = Energy::joules(j).unwrap();
        prop_assert!(close(Energy::watt_hours(e.as_watt_hours()).unwrap().as_joules(), j));
        prop_assert!(close(Energy::kilowatt_hours(e.as_kilowatt_hours()).unwrap().as_joules(), j));
        prop_assert!(close(Energy::megawatt_hours(e.as_megawatt_hours()).unwrap().as_joules(), j));
    }

    #[test]
    fn serde_round_trips(w in -1e9f64..1e9, usd in -1e9f64..1e9, lmp in -2000f64..20000.0) {
        let p = Power::watts(w).unwrap();
        prop_assert_eq!(serde_json::from_str::<Power>(&serde_json::to_string(&p).unwrap()).unwrap(), p);
        let m = Money::usd(usd).unwrap();
        prop_assert_eq!(serde_json::from_str::<Money>(&serde_json::to_string(&m).unwrap()).unwrap(), m);
        let pr = Price::per_megawatt_hour(lmp).unwrap();
        prop_assert_eq!(serde_json::from_str::<Price>(&serde_json::to_string(&pr).unwrap()).unwrap(), pr);
    }

    #[test]
    fn power_times_time_over_time_is_power(kw in -1e6f64..1e6, secs in 1i64..1_000_000) {
        let p = Power::kilowatts(kw).unwrap();
        let d = TimeDelta::seconds(secs);
        let back = ((p * d) / d).unwrap();
        prop_assert!(close(back.as_watts(), p.as_watts()));
    }

    #[test]
    fn arithmetic_is_never_silently_zero(a in -1e18f64..1e18, b in -1e18f64..1e18, f in proptest::num::f64::ANY) {
        let (pa, pb) = (Power::watts(a).unwrap(), Power::watts(b).unwrap());
        let sum = pa + pb;
        // A saturated sum keeps its sign and magnitude order; it never collapses to zero.
        if (a + b).abs() > 1.0 {
            prop_assert!(sum != Power::ZERO);
            prop_assert_eq!(sum.is_negative(), a + b < 0.0);
        }
        match pa.checked_mul(f) {
            Some(q) => prop_assert!((a * f).is_finite() && close(q.as_watts(), a * f)),
            None => prop_assert!(!(a * f).is_finite() || (a * f).abs() > 1e18),
        }
    }

    #[test]
    fn any_instant_round_trips_through_local_time(secs in 0i64..4_102_444_800, zone in 0usize..4) {
        let zone = MarketZone::ALL[zone];
        let t = Utc.timestamp_opt(secs, 0).unwrap();
        let local = zone.to_local(t);
        let mapping = zone.to_utc(local).unwrap();
        prop_assert!(mapping.earlier() == t || mapping.later() == t);
        let day = OperatingDay::containing(zone, t).unwrap();
        prop_assert!(day.interval().contains(t));
    }

    #[test]
    fn resampling_conserves_energy(
        values in prop::collection::vec(0f64..2_000.0, 1..40),
        factor in prop::sample::select(vec![2usize, 3, 4, 6, 12]),
    ) {
        // Pad to a whole number of coarse buckets; start on an hour so buckets align.
        let n = values.len().div_ceil(factor) * factor;
        let mut kw = values.clone();
        kw.resize(n, 1.0);
        let start = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
        let step = TimeDelta::minutes(5);
        let fine = IntervalSeries::from_values(start, step, kw.iter().map(|v| Power::kilowatts(*v).unwrap())).unwrap();
        let coarse = fine.resample(step * factor as i32).unwrap();
        prop_assert!(close(coarse.energy().unwrap().as_joules(), fine.energy().unwrap().as_joules()));
        // Energy series sum, and splitting back conserves too.
        let e = fine.to_energy();
        let e_coarse = e.resample(step * factor as i32).unwrap();
        prop_assert!(close(e_coarse.total().unwrap().as_joules(), e.total().unwrap().as_joules()));
        let back = e_coarse.resample(step).unwrap();
        prop_assert!(close(back.total().unwrap().as_joules(), e.total().unwrap().as_joules()));
        let p_back = coarse.resample(step).unwrap();
        prop_assert!(close(p_back.energy().unwrap().as_joules(), fine.energy().unwrap().as_joules()));
    }
}

/// Every local date in `year` whose day is not 24 hours long.
fn transition_days(zone: MarketZone, year: i32) -> Vec<OperatingDay> {
    let mut out = Vec::new();
    let mut d = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
    while d.year() == year {
        let day = OperatingDay::new(zone, d).unwrap();
        if day.hours() != 24 {
            out.push(day);
        }
        d = d.succ_opt().unwrap();
    }
    out
}

/// Exhaustive over 2000-2040: both directions for every 5-minute interval (UTC side)
/// and every 5-minute local wall-clock time (local side) of every DST transition day.
#[test]
fn local_utc_round_trip_on_every_transition_day_2000_2040() {
    let mut checked = 0usize;
    for zone in MarketZone::ALL {
        for year in 2000..=2040 {
            let days = transition_days(zone, year);
            assert_eq!(
                days.len(),
                2,
                "{zone} {year}: expected one short and one long day"
            );
            let hours: Vec<i64> = days.iter().map(OperatingDay::hours).collect();
            assert_eq!(hours, vec![23, 25], "{zone} {year}");
            for day in days {
                let intervals = day.intervals(TimeDelta::minutes(5)).unwrap();
                assert_eq!(intervals.len() as i64, day.hours() * 12);
                for iv in &intervals {
                    // UTC -> local -> UTC gives back the same instant, as one of the choices.
                    let local = zone.to_local(iv.start());
                    let mapping = zone.to_utc(local).unwrap();
                    assert!(mapping.earlier() == iv.start() || mapping.later() == iv.start());
                    assert_eq!(zone.operating_date(iv.start()), day.date());
                    checked += 1;
                }
                // Local -> UTC -> local for every wall-clock time of the local date.
                let midnight = day.date().and_hms_opt(0, 0, 0).unwrap();
                let mut skipped = 0;
                let mut doubled = 0;
                for k in 0..288 {
                    let local = midnight + TimeDelta::minutes(5 * k);
                    match zone.to_utc(local) {
                        Ok(LocalMapping::Unique(t)) => assert_eq!(zone.to_local(t), local),
                        Ok(LocalMapping::Ambiguous { earlier, later }) => {
                            assert_eq!(later - earlier, TimeDelta::hours(1));
                            assert_eq!(zone.to_local(earlier), local);
                            assert_eq!(zone.to_local(later), local);
                            doubled += 1;
                        }
                        Err(CoreError::NonexistentLocalTime { local: l, .. }) => {
                            assert_eq!(l, local);
                            skipped += 1;
                        }
                        Err(e) => panic!("unexpected error {e}"),
                    }
                    checked += 1;
                }
                // The short day skips one hour of wall-clock times; the long day repeats one.
                if day.hours() == 23 {
                    assert_eq!((skipped, doubled), (12, 0), "{zone} {}", day.date());
                } else {
                    assert_eq!((skipped, doubled), (0, 12), "{zone} {}", day.date());
                }
            }
        }
    }
    assert!(checked > 150_000);
}

#[test]
fn day_boundaries_are_local_midnights() {
    let day = OperatingDay::new(
        MarketZone::Caiso,
        NaiveDate::from_ymd_opt(2024, 11, 3).unwrap(),
    )
    .unwrap();
    let expect_start: DateTime<Utc> = Utc.with_ymd_and_hms(2024, 11, 3, 7, 0, 0).unwrap();
    assert_eq!(day.interval().start(), expect_start);
    assert_eq!(
        day.interval().end(),
        Utc.with_ymd_and_hms(2024, 11, 4, 8, 0, 0).unwrap()
    );
}
