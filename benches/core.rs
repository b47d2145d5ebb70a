//! gridflex-core benches: resampling a year of 5-minute meter data.
use std::hint::black_box;

use chrono::{TimeDelta, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use gridflex_core::{IntervalSeries, Power};

fn year_of_five_minute_data() -> IntervalSeries<Power> {
    let start = Utc
        .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let n = 365 * 24 * 12;
    let values = (0..n).map(|i| Power::kilowatts(500.0 + f64::from(i % 288)).ok());
    IntervalSeries::new(start, TimeDelta::minutes(5), values.collect())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn resample(c: &mut Criterion) {
    let series = year_of_five_minute_data();
    c.bench_function("resample 1 year 5-min -> hourly (105,120 values)", |b| {
        b.iter(|| black_box(&series).resample(TimeDelta::hours(1)))
    });
    c.bench_function("energy of 1 year 5-min", |b| {
        b.iter(|| black_box(&series).energy())
    });
    let start = series.start() + TimeDelta::days(200);
    c.bench_function("lookup by instant", |b| {
        b.iter(|| black_box(&series).at(black_box(start)))
    });
}

criterion_group!(benches, resample);
criterion_main!(benches);
