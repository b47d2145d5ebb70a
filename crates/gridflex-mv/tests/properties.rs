//! Property tests: invariants every baseline and score must keep, and parsers that
//! never panic on mangled input.

mod common;

use chrono::{Days, TimeDelta, Timelike};
use common::{date, event, meter};
use gridflex_core::{MarketZone, Power};
use gridflex_mv::baseline::AdjustmentValue;
use gridflex_mv::input::{parse_meter_csv, parse_price_csv, parse_samples_csv};
use gridflex_mv::regulation::{RegulationConfig, regulation_score};
use gridflex_mv::response::Sample;
use gridflex_mv::{Adjustment, Baseline, Calendar, Method};
use proptest::prelude::*;

fn zone_of(k: u8) -> MarketZone {
    MarketZone::ALL[k as usize % 4]
}

/// Event day offset (days 46..60 of the data), start hour 12..18, 1..4 hours long.
fn event_params() -> impl Strategy<Value = (u8, u64, u32, u32)> {
    (0u8..4, 46u64..60, 12u32..18, 1u32..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn constant_load_baseline_is_the_constant(
        (z, day, h0, len) in event_params(),
        load in 1.0f64..5000.0,
        m in 0usize..7,
    ) {
        let zone = zone_of(z);
        let first = date(2025, 1, 20); // events 7-20 March: across the spring change
        let meter = meter(zone, first, 62, 60, |_, _| Some(load));
        let d = first + Days::new(day);
        let result = Method::ALL[m]
            .baseline()
            .compute(&meter, &Calendar::new(zone), event(zone, d, h0, h0 + len))
            .unwrap();
        for i in &result.intervals {
            prop_assert!((i.baseline.as_kilowatts() - load).abs() < 1e-9 * load);
            prop_assert!((i.adjusted_baseline.as_kilowatts() - load).abs() < 1e-9 * load);
        }
        // ... and the event day equal to the baseline means zero reduction.
        let red = result.reduction();
        prop_assert!(red.raw_energy.as_kilowatt_hours().abs() < 1e-6 * load);
    }

    #[test]
    fn scaling_the_load_scales_the_baseline(
        (z, day, h0, len) in event_params(),
        seed in proptest::collection::vec(50.0f64..500.0, 24 * 7),
        scale in 0.1f64..10.0,
        m in 0usize..7,
    ) {
        let zone = zone_of(z);
        let first = date(2025, 5, 1);
        // A weekly-repeating hourly shape with a day-of-month wobble.
        let shape = move |d: chrono::NaiveDate, t: chrono::NaiveTime| {
            use chrono::Datelike;
            let k = d.weekday().num_days_from_monday() as usize * 24 + t.hour() as usize;
            seed[k] * (1.0 + 0.01 * f64::from(d.day()))
        };
        let shape2 = shape.clone();
        let a = meter(zone, first, 62, 60, move |d, t| Some(shape(d, t)));
        let b = meter(zone, first, 62, 60, move |d, t| Some(scale * shape2(d, t)));
        let cal = Calendar::new(zone);
        let ev = event(zone, first + Days::new(day), h0, h0 + len);
        let baseline = Method::ALL[m].baseline();
        let ra = baseline.compute(&a, &cal, ev).unwrap();
        let rb = baseline.compute(&b, &cal, ev).unwrap();
        prop_assert_eq!(&ra.selected_days, &rb.selected_days);
        for (x, y) in ra.intervals.iter().zip(&rb.intervals) {
            let tol = 1e-9 * y.baseline.as_watts().abs().max(1.0);
            prop_assert!((x.baseline.as_watts() * scale - y.baseline.as_watts()).abs() < tol);
            prop_assert!(
                (x.adjusted_baseline.as_watts() * scale - y.adjusted_baseline.as_watts()).abs()
                    < 1e-9 * y.adjusted_baseline.as_watts().abs().max(1.0)
            );
        }
    }

    #[test]
    fn adjustment_never_exceeds_its_cap(
        (z, day, h0, len) in event_params(),
        daily in proptest::collection::vec(1.0f64..1000.0, 62),
        cap in 0.0f64..0.9,
        additive in any::<bool>(),
    ) {
        let zone = zone_of(z);
        let first = date(2025, 3, 20);
        let m = meter(zone, first, 62, 15, move |d, _| {
            Some(daily[(d - first).num_days() as usize % 62])
        });
        let adj = if additive {
            Adjustment::additive(3.0, 1.0, Some(cap))
        } else {
            Adjustment::multiplicative(3.0, 1.0, Some(cap))
        };
        let r = Baseline::caiso_10in10()
            .with_adjustment(adj)
            .compute(&m, &Calendar::new(zone), event(zone, first + Days::new(day), h0, h0 + len))
            .unwrap();
        match r.adjustment.value {
            AdjustmentValue::Factor(f) => {
                prop_assert!(f >= 1.0 - cap - 1e-12 && f <= 1.0 + cap + 1e-12);
            }
            AdjustmentValue::Offset(a) => {
                let b = r.intervals[0].baseline.as_watts();
                prop_assert!(a.as_watts().abs() <= cap * b + 1e-9);
            }
            AdjustmentValue::None => prop_assert!(false, "an adjustment was asked for"),
        }
        let raw = match r.adjustment.uncapped {
            AdjustmentValue::Factor(f) => f,
            AdjustmentValue::Offset(a) => a.as_watts(),
            AdjustmentValue::None => 0.0,
        };
        prop_assert_eq!(r.adjustment.capped, r.adjustment.value != r.adjustment.uncapped);
        prop_assert!(raw.is_finite());
    }

    #[test]
    fn perfect_tracking_scores_one(
        amps in proptest::collection::vec(-1.0f64..1.0, 8),
        mw in 0.5f64..50.0,
        minutes in 10i64..90,
    ) {
        let t0 = chrono::DateTime::from_timestamp(1_750_000_000 - 1_750_000_000 % 3600, 0).unwrap();
        let sig: Vec<Sample<f64>> = (0..minutes * 30)
            .map(|k| {
                let x = k as f64;
                let v: f64 = amps
                    .iter()
                    .enumerate()
                    .map(|(j, a)| a * (x / (3.0 + 7.0 * j as f64)).sin())
                    .sum::<f64>() / 8.0;
                Sample { at: t0 + TimeDelta::seconds(2 * k), value: v.clamp(-1.0, 1.0) }
            })
            .collect();
        let resp: Vec<Sample<Power>> = sig
            .iter()
            .map(|s| Sample { at: s.at, value: Power::megawatts(s.value * mw).unwrap() })
            .collect();
        let score = regulation_score(&sig, &resp, &RegulationConfig::new(Power::megawatts(mw).unwrap()))
            .unwrap();
        prop_assert!((score.composite - 1.0).abs() < 1e-9, "{}", score.composite);
        for h in &score.hours {
            prop_assert!((h.composite - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn reduction_is_zero_when_event_day_equals_baseline(
        (z, day, h0, len) in event_params(),
        profile in proptest::collection::vec(10.0f64..900.0, 24),
        m in 0usize..7,
    ) {
        // Every day has the same hourly profile (by local clock hour), so every
        // day-matching baseline equals the event day's load. Same Day and MBMA use flat
        // levels, so for them the profile is flattened around the event.
        let zone = zone_of(z);
        let method = Method::ALL[m];
        let flat = matches!(method, Method::PjmSameDay | Method::Mbma);
        let first = date(2025, 9, 20); // events 5-19 November: after the fall change
        let mm = meter(zone, first, 62, 5, move |_, t| {
            Some(if flat { profile[0] } else { profile[t.hour() as usize] })
        });
        let r = method
            .baseline()
            .compute(&mm, &Calendar::new(zone), event(zone, first + Days::new(day), h0, h0 + len))
            .unwrap();
        let red = r.reduction();
        for i in &red.intervals {
            prop_assert!(i.raw.as_watts().abs() < 1e-6, "{:?}", i);
        }
    }

    #[test]
    fn meter_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_meter_csv(&text);
        let _ = parse_price_csv(&text);
        let _ = parse_samples_csv(&text, "value");
    }

    #[test]
    fn mutated_meter_csv_never_panics(
        pos in 0usize..200,
        byte in any::<u8>(),
        cut in 0usize..220,
    ) {
        let good = "interval_start,kw\n2025-07-01T00:00:00-07:00,10\n2025-07-01T00:05:00-07:00,11\n2025-07-01T00:10:00-07:00,\n2025-07-01T00:15:00-07:00,13.5\n";
        let mut b = good.as_bytes().to_vec();
        let p = pos % b.len();
        b[p] = byte;
        b.truncate(cut.max(1));
        let text = String::from_utf8_lossy(&b);
        if let Err(e) = parse_meter_csv(&text) {
            // Errors name a line and a field.
            let msg = e.to_string();
            prop_assert!(msg.starts_with("line ") || msg.contains("finite") || msg.contains("step"), "{}", msg);
        }
        let samples = good.replace("interval_start,kw", "time,power_w");
        let mut b = samples.into_bytes();
        let p = pos % b.len();
        b[p] = byte;
        let _ = parse_samples_csv(&String::from_utf8_lossy(&b), "power_w");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_gaps_and_events_give_results_or_typed_errors(
        z in 0u8..4,
        holes in proptest::collection::vec(0usize..3000, 0..40),
        day in 0u64..60,
        h0 in 0u32..24,
        len in 1u32..6,
        m in 0usize..7,
        skip in any::<bool>(),
    ) {
        let zone = zone_of(z);
        let first = date(2024, 10, 1); // spans the November fall-back change
        let mut k = 0usize;
        let holes2 = holes.clone();
        let mtr = meter(zone, first, 62, 30, move |_, t| {
            k += 1;
            (!holes2.contains(&k)).then_some(100.0 + f64::from(t.hour()))
        });
        let h1 = (h0 + len).min(23);
        prop_assume!(h1 > h0);
        let ev = event(zone, first + Days::new(day), h0, h1);
        let mut b = Method::ALL[m].baseline();
        if skip {
            b = b.with_gap_policy(gridflex_mv::GapPolicy::SkipDay);
        }
        match b.compute(&mtr, &Calendar::new(zone), ev) {
            Ok(r) => {
                prop_assert_eq!(r.intervals.len() as i64, ev.duration().num_minutes() / 30);
                for i in &r.intervals {
                    prop_assert!(i.adjusted_baseline.as_watts().is_finite());
                }
                if let Some(&newest) = r.selected_days.first() {
                    prop_assert!(newest <= r.event_day);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn regulation_components_stay_in_unit_range(
        sig in proptest::collection::vec(-1.0f64..1.0, 200..600),
        resp in proptest::collection::vec(-3.0f64..3.0, 200..600),
        lag in 0i64..20,
    ) {
        let t0 = chrono::DateTime::from_timestamp(1_750_000_000, 0).unwrap();
        let s: Vec<Sample<f64>> = sig
            .iter()
            .enumerate()
            .map(|(k, v)| Sample { at: t0 + TimeDelta::seconds(2 * k as i64), value: *v })
            .collect();
        let r: Vec<Sample<Power>> = resp
            .iter()
            .enumerate()
            .map(|(k, v)| Sample {
                at: t0 + TimeDelta::seconds(2 * k as i64 + lag),
                value: Power::megawatts(*v).unwrap(),
            })
            .collect();
        if let Ok(score) = regulation_score(&s, &r, &RegulationConfig::new(Power::megawatts(2.0).unwrap())) {
            for w in &score.windows {
                for x in [w.accuracy, w.delay, w.precision, w.composite] {
                    prop_assert!((0.0..=1.0).contains(&x), "{:?}", w);
                }
            }
            prop_assert!(score.mileage >= 0.0);
        }
    }

    #[test]
    fn t50_never_after_t90_for_monotone_steps(
        from in 100.0f64..1000.0,
        drop in 0.05f64..0.95,
        ramp in proptest::collection::vec(0.0f64..1.0, 1..20),
        down in any::<bool>(),
    ) {
        use gridflex_mv::response::{ResponseConfig, response_time};
        let t0 = chrono::DateTime::from_timestamp(1_750_000_000, 0).unwrap();
        let to = if down { from * (1.0 - drop) } else { from * (1.0 + drop) };
        // A monotone ramp: cumulative fractions of the step, normalised to reach 1.
        let total: f64 = ramp.iter().sum::<f64>().max(1e-9);
        let mut acc = 0.0;
        let mut samples: Vec<Sample<Power>> = (0..10)
            .map(|k| Sample { at: t0 - TimeDelta::milliseconds(20 * (10 - k)), value: Power::watts(from).unwrap() })
            .collect();
        for (k, r) in ramp.iter().enumerate() {
            acc += r / total;
            samples.push(Sample {
                at: t0 + TimeDelta::milliseconds(20 * k as i64),
                value: Power::watts(from + (to - from) * acc.min(1.0)).unwrap(),
            });
        }
        for k in 0..20 {
            samples.push(Sample {
                at: t0 + TimeDelta::milliseconds(20 * (ramp.len() + k) as i64),
                value: Power::watts(to).unwrap(),
            });
        }
        let r = response_time(&samples, t0, &ResponseConfig::default()).unwrap();
        prop_assert!(r.t50.interpolated <= r.t90.interpolated);
        prop_assert!(r.t50.first_sample <= r.t90.first_sample);
        prop_assert!(r.t50.interpolated <= r.t50.first_sample);
        prop_assert_eq!(r.sample_period, TimeDelta::milliseconds(20));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any record and any instructions give a result per instruction or a typed error;
    /// each result's levels come from samples inside its own segment.
    #[test]
    fn response_times_never_panic_and_stay_in_their_segment(
        values in proptest::collection::vec(0.0f64..1000.0, 0..120),
        offsets in proptest::collection::vec(-200i64..2600, 0..5),
    ) {
        let t0 = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let samples: Vec<Sample<Power>> = values
            .iter()
            .enumerate()
            .map(|(k, &v)| Sample {
                at: t0 + TimeDelta::milliseconds(20 * k as i64),
                value: Power::watts(v).unwrap(),
            })
            .collect();
        let mut at: Vec<_> = offsets.iter().map(|&o| t0 + TimeDelta::milliseconds(o)).collect();
        at.sort();
        at.dedup();
        if let Ok(rs) = gridflex_mv::response::response_times(
            &samples,
            &at,
            &gridflex_mv::response::ResponseConfig::default(),
        ) {
            prop_assert_eq!(rs.len(), at.len());
            for r in rs {
                prop_assert!(r.pre_samples >= 1 && r.post_samples >= 1);
                prop_assert!(r.t50.first_sample <= r.t90.first_sample);
            }
        }
    }
}
