//! Golden cases for response time and the regulation score, with the arithmetic shown.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex_core::{Power, Price};
use gridflex_mv::MvError;
use gridflex_mv::regulation::{RegulationConfig, regulation_score};
use gridflex_mv::response::{ResponseConfig, Sample, response_time};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 7, 1, 12, 0, 0).unwrap()
}

fn w(v: f64) -> Power {
    Power::watts(v).unwrap()
}

#[test]
fn response_time_interpolated_and_first_sample() {
    // 20 ms samples; instruction at t0. 700 W before (with one 900 W spike that the
    // median ignores), then a ramp: 20 ms 700, 40 ms 500, 60 ms 300, 80 ms on 100 W.
    // Step 700 -> 100 = -600 W. 50 % mark = 400 W: between 40 ms (500) and 60 ms (300):
    // 40 + 20 x (500 - 400) / (500 - 300) = 50 ms; first sample past: 60 ms.
    // 90 % mark = 160 W: between 60 ms (300) and 80 ms (100): 60 + 20 x 140/200 = 74 ms;
    // first sample past: 80 ms.
    let samples: Vec<Sample<Power>> = (-20..100)
        .map(|k| {
            let v = match k {
                -5 => 900.0,
                k if k <= 1 => 700.0,
                2 => 500.0,
                3 => 300.0,
                _ => 100.0,
            };
            Sample {
                at: t0() + TimeDelta::milliseconds(20 * k),
                value: w(v),
            }
        })
        .collect();
    let r = response_time(&samples, t0(), &ResponseConfig::default()).unwrap();
    assert_eq!(r.from, w(700.0));
    assert_eq!(r.to, w(100.0));
    assert_eq!(r.t50.interpolated, TimeDelta::milliseconds(50));
    assert_eq!(r.t50.first_sample, TimeDelta::milliseconds(60));
    assert_eq!(r.t90.interpolated, TimeDelta::milliseconds(74));
    assert_eq!(r.t90.first_sample, TimeDelta::milliseconds(80));
    assert_eq!(r.sample_period, TimeDelta::milliseconds(20));
    // The pre level is the steady period just before: the last quarter of the 20
    // samples before the instruction (-100 .. -20 ms, the 900 W spike among them).
    assert_eq!(r.pre_samples, 5);
    // A rising step works the same way (restore after curtailment).
    let up: Vec<Sample<Power>> = samples
        .iter()
        .map(|s| Sample {
            at: s.at,
            value: w(800.0) - s.value,
        })
        .collect();
    let r = response_time(&up, t0(), &ResponseConfig::default()).unwrap();
    assert_eq!(r.t50.interpolated, TimeDelta::milliseconds(50));
}

#[test]
fn response_time_errors() {
    let flat: Vec<Sample<Power>> = (-5..5)
        .map(|k| Sample {
            at: t0() + TimeDelta::seconds(k),
            value: w(300.0),
        })
        .collect();
    assert!(matches!(
        response_time(&flat, t0(), &ResponseConfig::default()),
        Err(MvError::NoStep { .. })
    ));
    assert!(matches!(
        response_time(&flat[5..], t0(), &ResponseConfig::default()),
        Err(MvError::NotEnoughSamples { .. })
    ));
    let mut unsorted = flat.clone();
    unsorted.swap(2, 3);
    assert!(matches!(
        response_time(&unsorted, t0(), &ResponseConfig::default()),
        Err(MvError::UnsortedSamples { index: 3, .. })
    ));
}

/// A RegD-like signal: two sines, sampled every 2 s for `secs` seconds.
fn signal(secs: i64) -> Vec<Sample<f64>> {
    (0..secs / 2)
        .map(|k| {
            let x = k as f64 * 2.0;
            Sample {
                at: t0() + TimeDelta::seconds(2 * k),
                value: 0.6 * (x / 37.0).sin() + 0.3 * (x / 11.0).cos(),
            }
        })
        .collect()
}

#[test]
fn regulation_delayed_response_scores_delay() {
    // The response follows the 2 MW signal exactly but 60 s late. Per 5-min window the
    // best correlation is at delay 60 s: accuracy 1, delay |(60 - 300)/300| = 0.8.
    let sig = signal(7200);
    let resp: Vec<Sample<Power>> = sig
        .iter()
        .map(|s| Sample {
            at: s.at + TimeDelta::seconds(60),
            value: Power::megawatts(2.0 * s.value).unwrap(),
        })
        .collect();
    let cfg = RegulationConfig::new(Power::megawatts(2.0).unwrap());
    let score = regulation_score(&sig, &resp, &cfg).unwrap();
    // Windows lie where both series overlap: [t0 + 60 s, t0 + 7198 s] -> whole 5-min
    // windows from t0 + 300 s while the shifted response exists up to 5 min ahead.
    let first = &score.windows[0];
    assert_eq!(first.best_delay, TimeDelta::seconds(60));
    assert!((first.accuracy - 1.0).abs() < 1e-9);
    assert!((first.delay - 0.8).abs() < 1e-12);
    assert!(first.precision < 1.0);
    assert_eq!(score.hours.len(), 2);
    assert!(score.mileage > 0.0);
}

#[test]
fn regulation_precision_and_credits() {
    // Signal constant +0.5 of 4 MW (S = 2 MW) for one hour; response 1.5 MW.
    // Accuracy: both flat -> 1 (by definition here); delay: best at 0 -> 1;
    // precision = 1 - |1.5 - 2| / mean|S| = 1 - 0.5/2 = 0.75; composite = 2.75/3.
    let sig: Vec<Sample<f64>> = (0..=1800)
        .map(|k| Sample {
            at: t0() + TimeDelta::seconds(2 * k),
            value: 0.5,
        })
        .collect();
    let resp: Vec<Sample<Power>> = sig
        .iter()
        .map(|s| Sample {
            at: s.at,
            value: Power::megawatts(1.5).unwrap(),
        })
        .collect();
    let reg = Power::megawatts(4.0).unwrap();
    let score = regulation_score(&sig, &resp, &RegulationConfig::new(reg)).unwrap();
    // 12 whole windows in the hour; the last has no 5 minutes of data after it for
    // its delay search, so it is left out (and counted).
    assert_eq!(score.windows.len(), 11);
    assert_eq!(score.truncated_windows, 1);
    let h = score.hours[0];
    assert!((h.precision - 0.75).abs() < 1e-12);
    assert!((h.composite - 2.75 / 3.0).abs() < 1e-12);
    assert_eq!(h.mileage, 0.0);
    // Credits for the 55 scored minutes: capability 4 MW x 11/12 h x $10/MWh x
    // 0.91667 = $33.61; performance 4 x 11/12 h x ratio 2.0 x $3 x 0.91667 = $20.17.
    let c = h
        .credits(
            reg,
            Price::per_megawatt_hour(10.0).unwrap(),
            Price::per_megawatt_hour(3.0).unwrap(),
            2.0,
        )
        .unwrap();
    assert!((c.capability.as_usd() - 40.0 * 11.0 / 12.0 * 2.75 / 3.0).abs() < 1e-9);
    assert!((c.performance.as_usd() - 24.0 * 11.0 / 12.0 * 2.75 / 3.0).abs() < 1e-9);
}

#[test]
fn mileage_is_sum_of_absolute_moves() {
    // Signal 0, 1, -1, 0.5 ... repeating every 2 s: moves 1 + 2 + 1.5 + 0.5 = 5 per cycle.
    let pattern = [0.0, 1.0, -1.0, 0.5];
    let sig: Vec<Sample<f64>> = (0..1800)
        .map(|k| Sample {
            at: t0() + TimeDelta::seconds(2 * k),
            value: pattern[k as usize % 4],
        })
        .collect();
    let resp: Vec<Sample<Power>> = sig
        .iter()
        .map(|s| Sample {
            at: s.at,
            value: Power::megawatts(s.value).unwrap(),
        })
        .collect();
    let score = regulation_score(
        &sig,
        &resp,
        &RegulationConfig::new(Power::megawatts(1.0).unwrap()),
    )
    .unwrap();
    // 1799 moves in the hour: 449 full cycles (449 x 5 = 2245) plus 0->1, 1->-1, -1->0.5
    // = 1 + 2 + 1.5 = 4.5: 2249.5.
    assert!((score.mileage - 2249.5).abs() < 1e-9);
}

#[test]
fn qualification_thresholds_and_historic_score() {
    use gridflex_mv::regulation::{HourScore, Qualification};
    // 150 hours: the first 50 score 0.9, the last 100 score 0.3 then 0.5 alternately.
    // Historic (last 100) = (50 x 0.3 + 50 x 0.5) / 100 = 0.4. One more hour at 0.1
    // pushes out hour 50 (0.3): (50 x 0.5 + 49 x 0.3 + 0.1) / 100 = 0.398 < 0.40.
    let hour = |k: i64, c: f64| HourScore {
        start: t0() + TimeDelta::hours(k),
        windows: 12,
        accuracy: c,
        delay: c,
        precision: c,
        composite: c,
        mileage: 0.0,
        scored: TimeDelta::hours(1),
    };
    let mut hours: Vec<HourScore> = (0..50).map(|k| hour(k, 0.9)).collect();
    hours.extend((50..150).map(|k| hour(k, if k % 2 == 0 { 0.3 } else { 0.5 })));
    let q = Qualification::default();
    let h = q.historic_score(&hours).unwrap();
    assert!((h - 0.4).abs() < 1e-12);
    // The first 50 hours alone (all 0.9) keep it.
    assert!(q.keeps_qualification(&hours[..50]).unwrap());
    hours.push(hour(150, 0.1));
    assert!((q.historic_score(&hours).unwrap() - 0.398).abs() < 1e-12);
    assert!(!q.keeps_qualification(&hours).unwrap());
    assert_eq!(q.historic_score(&[]), None);
}
