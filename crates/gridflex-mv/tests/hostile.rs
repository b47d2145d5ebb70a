//! Small inputs that imply huge work, values outside their range, and data that ends
//! too early: each is a typed error or a documented exclusion, never a panic, an abort
//! or gigabytes of memory. The big inputs are generated here, never committed.

use std::fmt::Write;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex_core::Power;
use gridflex_mv::MvError;
use gridflex_mv::input::{MAX_SERIES_INTERVALS, parse_meter_csv, parse_price_csv};
use gridflex_mv::regulation::{MAX_SCORING_POINTS, RegulationConfig, regulation_score};
use gridflex_mv::response::Sample;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap()
}

#[test]
fn meter_rows_jumping_ten_million_intervals_are_refused_not_allocated() {
    // 43 lines: header, then rows 10 million 5-minute intervals apart. The per-row gap
    // check passes every row, but together they imply 420 million intervals.
    let mut csv = String::from("interval_start,kw\n");
    let mut t = Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).unwrap();
    writeln!(csv, "{},1", t.to_rfc3339()).unwrap();
    writeln!(csv, "{},1", (t + TimeDelta::minutes(5)).to_rfc3339()).unwrap();
    t += TimeDelta::minutes(5);
    for _ in 0..40 {
        t += TimeDelta::minutes(5) * 10_000_000;
        if t.timestamp() > 253_402_300_000 {
            break;
        }
        writeln!(csv, "{},1", t.to_rfc3339()).unwrap();
    }
    let err = parse_meter_csv(&csv).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("line 4, field interval_start"), "{text}");
    assert!(
        text.contains(&format!("limit of {MAX_SERIES_INTERVALS}")),
        "{text}"
    );
    // The price file takes the same path.
    let prices = csv.replace("interval_start,kw", "interval_start,lmp");
    assert!(parse_price_csv(&prices).is_err());
}

#[test]
fn meter_file_just_under_the_limit_still_parses() {
    // Two rows spanning MAX_SERIES_INTERVALS - 1 intervals: the series is allocated
    // (64 MB at most) and the gap is missing data.
    let end = t0() + TimeDelta::minutes(5) * (MAX_SERIES_INTERVALS as i32 - 1);
    let csv = format!(
        "interval_start,kw\n{},1\n{},2\n{},3\n",
        t0().to_rfc3339(),
        (t0() + TimeDelta::minutes(5)).to_rfc3339(),
        end.to_rfc3339()
    );
    let s = parse_meter_csv(&csv).unwrap();
    assert_eq!(s.len(), MAX_SERIES_INTERVALS);
}

fn three_samples(years: i64) -> (Vec<Sample<f64>>, Vec<Sample<Power>>) {
    let times = [
        t0(),
        t0() + TimeDelta::days(365 * years / 2),
        t0() + TimeDelta::days(365 * years),
    ];
    let signal = times.iter().map(|&at| Sample { at, value: 0.5 }).collect();
    let response = times
        .iter()
        .map(|&at| Sample {
            at,
            value: Power::megawatts(0.5).unwrap(),
        })
        .collect();
    (signal, response)
}

#[test]
fn regulation_over_decades_is_refused_fast() {
    for years in [30, 95] {
        let (s, r) = three_samples(years);
        let err = regulation_score(
            &s,
            &r,
            &RegulationConfig::new(Power::megawatts(1.0).unwrap()),
        )
        .unwrap_err();
        assert!(
            matches!(err, MvError::TooLarge { limit, .. } if limit == MAX_SCORING_POINTS),
            "{err}"
        );
    }
}

#[test]
fn regulation_signal_outside_unit_range_is_refused() {
    for bad in [5.0, 1e308, -1.0000001, f64::NAN] {
        let signal: Vec<Sample<f64>> = (0..400)
            .map(|k| Sample {
                at: t0() + TimeDelta::seconds(2 * k),
                value: if k == 7 { bad } else { 0.25 },
            })
            .collect();
        let response: Vec<Sample<Power>> = signal
            .iter()
            .map(|s| Sample {
                at: s.at,
                value: Power::megawatts(0.25).unwrap(),
            })
            .collect();
        let err = regulation_score(
            &signal,
            &response,
            &RegulationConfig::new(Power::megawatts(1.0).unwrap()),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                MvError::SampleOutOfRange {
                    what: "signal",
                    index: 7,
                    ..
                }
            ),
            "{bad}: {err}"
        );
    }
}

#[test]
fn regulation_windows_without_a_full_delay_search_are_left_out() {
    // A 2 MW sine, the response 60 s late, 2 hours of 2-s data. Every scored window
    // must find the true delay of 60 s (accuracy 1, delay score 0.8); a window in the
    // last 5 minutes of the overlap, whose 0-300 s search would be cut short, is left
    // out and counted, not scored with a truncated search.
    let signal: Vec<Sample<f64>> = (0..3600)
        .map(|k| Sample {
            at: t0() + TimeDelta::seconds(2 * k),
            value: (k as f64 / 23.0).sin(),
        })
        .collect();
    let response: Vec<Sample<Power>> = signal
        .iter()
        .map(|s| Sample {
            at: s.at + TimeDelta::seconds(60),
            value: Power::megawatts(2.0 * s.value).unwrap(),
        })
        .collect();
    let score = regulation_score(
        &signal,
        &response,
        &RegulationConfig::new(Power::megawatts(2.0).unwrap()),
    )
    .unwrap();
    for w in &score.windows {
        assert_eq!(w.best_delay, TimeDelta::seconds(60), "window {}", w.start);
        assert!((w.delay - 0.8).abs() < 1e-12);
    }
    // The overlap [t0 + 60 s, t0 + 7198 s] holds the 10-s points t0 + 60 + 10 k,
    // k = 0..713 (n = 714). Whole windows start at t0 + 300 s, ..., t0 + 6900 s (23).
    // A window at point k0 needs k0 + 30 + 30 <= 714 points for its search: the one at
    // 6600 s (k0 = 654) has them, the one at 6900 s (k0 = 684) does not.
    assert_eq!(score.windows.len(), 22);
    assert_eq!(score.truncated_windows, 1);
}
