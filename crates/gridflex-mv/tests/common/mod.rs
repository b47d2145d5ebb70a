//! Builders shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc};
use gridflex_core::{Interval, IntervalSeries, MarketZone, OperatingDay, Power};
use gridflex_mv::Meter;

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A meter from local midnight of `first` for `days` local days, `step_min` minutes a
/// value, the value in kW given by `load(local date, local clock time)`.
pub fn meter(
    zone: MarketZone,
    first: NaiveDate,
    days: u64,
    step_min: i64,
    mut load: impl FnMut(NaiveDate, NaiveTime) -> Option<f64>,
) -> Meter {
    let start = OperatingDay::new(zone, first).unwrap().interval().start();
    let end = OperatingDay::new(zone, first + chrono::Days::new(days))
        .unwrap()
        .interval()
        .start();
    let step = TimeDelta::minutes(step_min);
    let mut values = Vec::new();
    let mut t = start;
    while t < end {
        let local = zone.to_local(t);
        values.push(load(local.date(), local.time()).map(|kw| Power::kilowatts(kw).unwrap()));
        t += step;
    }
    Meter::new(IntervalSeries::new(start, step, values).unwrap(), zone).unwrap()
}

/// The UTC event window from local `h0:00` to `h1:00` on `d` (earliest occurrence).
pub fn event(zone: MarketZone, d: NaiveDate, h0: u32, h1: u32) -> Interval {
    let at = |h: u32| -> DateTime<Utc> {
        zone.to_utc(d.and_hms_opt(h, 0, 0).unwrap())
            .unwrap()
            .earlier()
    };
    Interval::new(at(h0), at(h1)).unwrap()
}

pub fn kw(p: Power) -> f64 {
    (p.as_kilowatts() * 1e9).round() / 1e9
}

pub fn hour(t: NaiveTime) -> u32 {
    t.hour()
}
