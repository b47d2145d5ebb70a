//! The fleet settlement gives, bit for bit, the figures of one `Baseline::compute` at a
//! time, errors included, on meters with gaps, daylight-saving days, low-usage days,
//! holidays and excluded event days, for every named method and edited variants.

mod common;

use std::num::NonZeroUsize;

use chrono::{Datelike, Days, NaiveDate, TimeDelta, Timelike};
use common::{date, event, meter};
use gridflex_core::{Energy, Interval, MarketZone};
use gridflex_mv::fleet::{
    FleetEvent, FleetFigures, FleetGrid, FleetMeter, settle_grid, settle_with,
};
use gridflex_mv::{
    Adjustment, Baseline, BaselineResult, BaselineRule, Calendar, GapPolicy, LowUsageReference,
    Method, MvError,
};
use proptest::prelude::*;

/// The figures of a full result, summed interval by interval as a user would.
fn reference(r: &BaselineResult) -> FleetFigures {
    let reduction = r.reduction();
    let (mut baseline, mut metered) = (Energy::ZERO, Energy::ZERO);
    for i in &r.intervals {
        baseline += i.adjusted_baseline * i.interval.duration();
        metered += i.actual * i.interval.duration();
    }
    FleetFigures {
        baseline_energy: baseline,
        metered_energy: metered,
        reduction_energy: reduction.settled_energy,
        mean_reduction: reduction.mean_settled,
        selected_days: r.selected_days.as_slice().into(),
    }
}

/// Every named method, and variants that take the other branches: days with gaps
/// skipped, the refreshed low-usage average, capped additive and uncapped
/// multiplicative adjustments, a middle selection with low-usage exclusion, a rule
/// whose first days another rule read in part.
fn baselines() -> Vec<Baseline> {
    let mut all: Vec<Baseline> = Method::ALL.iter().map(|m| m.baseline()).collect();
    all.extend(
        Method::ALL
            .iter()
            .map(|m| m.baseline().with_gap_policy(GapPolicy::SkipDay)),
    );
    let mut refreshed = Baseline::pjm_cbl().with_gap_policy(GapPolicy::SkipDay);
    let mut middle = Baseline::ercot_middle_8_of_10();
    if let BaselineRule::DayMatching { days, .. } = &mut refreshed.rule {
        for d in [
            &mut days.weekday,
            &mut days.saturday,
            &mut days.sunday_holiday,
        ] {
            d.low_usage_reference = LowUsageReference::Refreshed;
        }
    }
    if let BaselineRule::DayMatching { days, .. } = &mut middle.rule {
        days.weekday.low_usage_threshold = Some(0.5);
    }
    all.push(refreshed);
    all.push(middle);
    all.push(Baseline::pjm_cbl().with_adjustment(Adjustment::additive(2.0, 0.5, Some(0.1))));
    // The same located event, ten days all kept: its first five were read for the CBL.
    all.push(Baseline::caiso_10in10().with_adjustment(Adjustment::additive(2.0, 0.5, Some(0.1))));
    all.push(Baseline::caiso_10in10().with_adjustment(Adjustment::multiplicative(1.0, 0.0, None)));
    all.push(Method::Custom.baseline());
    all
}

#[derive(Debug, Clone)]
struct Case {
    zone: MarketZone,
    first: NaiveDate,
    days: u64,
    step_min: i64,
    seeds: Vec<u64>,
    gaps: Vec<(usize, usize)>,
    low_days: Vec<u64>,
    event_days: Vec<u64>,
    holidays: Vec<u64>,
    events: Vec<(u64, u32, u32, u32)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (
            prop_oneof![Just(MarketZone::Caiso), Just(MarketZone::Pjm)],
            // Around the spring and fall changes of 2025 (9 March, 2 November).
            prop_oneof![
                Just(date(2025, 1, 20)),
                Just(date(2025, 9, 10)),
                Just(date(2025, 5, 1))
            ],
            50u64..62,
            prop_oneof![Just(15i64), Just(60), Just(5)],
            proptest::collection::vec(any::<u64>(), 1..4),
        ),
        (
            proptest::collection::vec((0usize..6000, 1usize..30), 0..4),
            proptest::collection::vec(0u64..60, 0..4),
            proptest::collection::vec(0u64..60, 0..4),
            proptest::collection::vec(0u64..60, 0..3),
            // Event day back from the end, start hour, length in hours, minute offset.
            proptest::collection::vec((1u64..25, 0u32..23, 1u32..5, 0u32..4), 1..4),
        ),
    )
        .prop_map(
            |(
                (zone, first, days, step_min, seeds),
                (gaps, low_days, event_days, holidays, events),
            )| Case {
                zone,
                first,
                days,
                step_min,
                seeds,
                gaps,
                low_days,
                event_days,
                holidays,
                events,
            },
        )
}

fn fleet_of(c: &Case) -> Vec<FleetMeter> {
    fleet_with_gaps(c, |k| k == 0)
}

/// The case's meters, with its gaps on the meters `gappy` picks.
fn fleet_with_gaps(c: &Case, gappy: impl Fn(usize) -> bool) -> Vec<FleetMeter> {
    c.seeds
        .iter()
        .enumerate()
        .map(|(k, &seed)| {
            let mut x = seed | 1;
            let mut i = 0usize;
            let m = meter(c.zone, c.first, c.days, c.step_min, |d, t| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                i += 1;
                if gappy(k) && c.gaps.iter().any(|&(at, n)| (at..at + n).contains(&i)) {
                    return None;
                }
                let day = (d - c.first).num_days() as u64;
                let low = if c.low_days.contains(&day) { 0.05 } else { 1.0 };
                let noise = (x >> 40) as f64 / (1u64 << 24) as f64;
                Some(low * (300.0 + 20.0 * f64::from(t.hour()) + 100.0 * noise))
            });
            FleetMeter::new(format!("m{k}"), m)
        })
        .collect()
}

fn events_of(c: &Case) -> Vec<FleetEvent> {
    c.events
        .iter()
        .map(|&(back, h0, len, minutes)| {
            let d = c.first + Days::new(c.days - back);
            // 02:00 does not exist on the spring-forward day: no window starts or ends
            // there.
            let skip = |h: u32| if h == 2 { 3 } else { h };
            let h0 = skip(h0);
            let whole = event(c.zone, d, h0, skip((h0 + len).min(23)).max(h0 + 1));
            // Shifted by a few minutes: off the grid for 15- and 60-minute data.
            let shift = TimeDelta::minutes(i64::from(minutes) * 5);
            let window = Interval::new(whole.start() + shift, whole.end() + shift).unwrap_or(whole);
            FleetEvent::new(format!("{d} {h0}"), window)
        })
        .collect()
}

/// The case's calendar: its excluded event days and holidays.
fn calendar_of(c: &Case) -> Calendar {
    let mut cal = Calendar::new(c.zone);
    cal.add_event_days(c.event_days.iter().map(|&d| c.first + Days::new(d)));
    for &h in &c.holidays {
        cal.add_holiday(c.first + Days::new(h));
    }
    cal
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn the_fleet_gives_each_baseline_bit_for_bit(c in case()) {
        let meters = fleet_of(&c);
        let events = events_of(&c);
        let cal = calendar_of(&c);
        let baselines = baselines();
        let rows = settle_with(&meters, &cal, &events, &baselines, NonZeroUsize::MIN);
        prop_assert_eq!(rows.len(), meters.len() * events.len() * baselines.len());
        let mut k = 0;
        for (m, fm) in meters.iter().enumerate() {
            for (e, ev) in events.iter().enumerate() {
                for b in &baselines {
                    let row = &rows[k];
                    k += 1;
                    prop_assert_eq!((row.meter, row.event, row.method), (m, e, b.method));
                    let direct: Result<FleetFigures, MvError> =
                        b.compute(&fm.meter, &cal, ev.window).map(|r| reference(&r));
                    prop_assert_eq!(&row.figures, &direct, "{:?} {:?}", b.method, ev.window);
                }
            }
        }

        let threaded = settle_with(&meters, &cal, &events, &baselines, NonZeroUsize::new(2).unwrap());
        prop_assert_eq!(threaded, rows);
    }
}

/// A case with up to 19 meters (two full blocks of eight and a part), gaps on every
/// third one.
fn wide_case() -> impl Strategy<Value = Case> {
    (case(), proptest::collection::vec(any::<u64>(), 1..20)).prop_map(|(mut c, seeds)| {
        c.seeds = seeds;
        c
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The grid's settlement gives the rows of the meter-by-meter one (itself checked
    /// bit for bit against `Baseline::compute` above), errors included, whatever the
    /// threads; and the grid gives its meters back.
    #[test]
    fn the_grid_gives_the_fleet_rows(c in wide_case()) {
        let meters = fleet_with_gaps(&c, |k| k % 3 == 0);
        let events = events_of(&c);
        let cal = calendar_of(&c);
        let baselines = baselines();
        let grid = FleetGrid::from_meters(&meters).unwrap();
        prop_assert_eq!(grid.len(), meters.len());
        for (k, m) in meters.iter().enumerate() {
            prop_assert_eq!(grid.meter(k), Some(m.meter.clone()));
        }
        prop_assert!(grid.meter(meters.len()).is_none());
        // Built a meter at a time from columns of watts: the same meters.
        let first = &meters[0].meter;
        let mut pushed = FleetGrid::new(c.zone, first.start(), first.step(), first.len()).unwrap();
        for m in &meters {
            let watts: Vec<f64> = m.meter.to_series().unwrap().values().iter()
                .map(|v| v.map_or(f64::NAN, |p| p.as_watts()))
                .collect();
            pushed.push(m.id.clone(), &watts).unwrap();
        }
        for k in 0..=meters.len() {
            prop_assert_eq!(pushed.meter(k), grid.meter(k));
        }
        prop_assert!(pushed.ids().eq(grid.ids()));
        let rows = settle_with(&meters, &cal, &events, &baselines, NonZeroUsize::MIN);
        for threads in [1, 2, 3] {
            let on_grid = settle_grid(&grid, &cal, &events, &baselines, NonZeroUsize::new(threads).unwrap());
            prop_assert_eq!(&on_grid, &rows, "{} threads", threads);
        }
    }
}

#[test]
fn a_grid_takes_only_meters_on_its_grid() {
    let c = date(2025, 5, 1);
    let on = |days, step| {
        FleetMeter::new(
            "m",
            meter(MarketZone::Pjm, c, days, step, |_, _| Some(100.0)),
        )
    };
    let mut grid = FleetGrid::from_meters(&[on(40, 60)]).unwrap();
    for other in [on(41, 60), on(40, 15)] {
        let err = grid.push_meter(&other).unwrap_err();
        assert!(
            matches!(err, MvError::InvalidParameter { name: "meter", .. }),
            "{err}"
        );
    }
    let n = grid.intervals();
    assert!(grid.push("short", &vec![1.0; n - 1]).is_err());
    let mut bad = vec![1.0; n];
    bad[7] = f64::INFINITY;
    let err = grid.push("bad", &bad).unwrap_err();
    assert!(err.to_string().contains("index 7"), "{err}");
    assert_eq!(grid.len(), 1, "nothing of a refused meter is kept");
    assert!(FleetGrid::from_meters(&[]).is_err());
    // A length past the meter files' limit is refused before anything is allocated.
    let huge = FleetGrid::new(MarketZone::Pjm, grid.start(), grid.step(), usize::MAX);
    assert!(matches!(huge, Err(MvError::TooLarge { .. })), "{huge:?}");
}

#[test]
fn a_calendar_of_another_zone_is_refused_row_by_row() {
    let c = date(2025, 5, 1);
    let m = meter(MarketZone::Pjm, c, 40, 60, |_, _| Some(100.0));
    let ev = FleetEvent::new("e", event(MarketZone::Pjm, date(2025, 6, 5), 14, 16));
    let rows = settle_with(
        &[FleetMeter::new("m", m.clone())],
        &Calendar::new(MarketZone::Caiso),
        std::slice::from_ref(&ev),
        &[Baseline::pjm_cbl()],
        NonZeroUsize::MIN,
    );
    assert!(matches!(
        rows[0].figures,
        Err(MvError::InvalidParameter {
            name: "calendar zone",
            ..
        })
    ));
    let grid = FleetGrid::from_meters(&[FleetMeter::new("m", m)]).unwrap();
    let on_grid = settle_grid(
        &grid,
        &Calendar::new(MarketZone::Caiso),
        &[ev],
        &[Baseline::pjm_cbl(), Baseline::pjm_same_day()],
        NonZeroUsize::MIN,
    );
    assert_eq!(on_grid.len(), 2);
    assert!(on_grid.iter().all(|r| matches!(
        r.figures,
        Err(MvError::InvalidParameter {
            name: "calendar zone",
            ..
        })
    )));
}

/// Loads near the bound a power can hold (1e18 W), whose energies and sums saturate,
/// loads of -0 and of both signs: the grid's lanes, summed side by side, give the rows
/// of one meter at a time, bit for bit.
#[test]
fn the_grid_saturates_as_the_quantities_do() {
    let c = date(2025, 5, 1);
    let loads = [
        9e14, -9e14, 5e14, -0.0, 0.0, 120.0, 3e12, -1e3, 7e14, 2.5e14,
    ];
    let mut meters: Vec<_> = loads
        .iter()
        .enumerate()
        .map(|(k, &kw)| {
            let m = meter(MarketZone::Pjm, c, 40, 15, move |d, t| {
                let wobble = f64::from((d.ordinal() + t.hour()) % 7) / 50.0;
                Some(if kw == 0.0 { kw } else { kw * (0.9 + wobble) })
            });
            FleetMeter::new(format!("m{k}"), m)
        })
        .collect();
    let spike = date(2025, 6, 5);
    // Near the bound and of one sign, then of the other, only during the event: the
    // metered energy's sum saturates on the way and comes back (a plain sum would
    // end near zero); the baseline stays small.
    let during = meter(MarketZone::Pjm, c, 40, 15, |d, t| {
        Some(match (d == spike, t.hour()) {
            (true, 14..16) => 9.9e14,
            (true, 16..18) => -9.9e14,
            _ => 100.0,
        })
    });
    // The same shape on every other day: the baseline's sum saturates and comes back.
    let baseline = meter(MarketZone::Pjm, c, 40, 15, |d, t| {
        Some(match (d == spike, t.hour()) {
            (false, 14..16) => 9.9e14,
            (false, 16..18) => -9.9e14,
            _ => 100.0,
        })
    });
    // Baseline days high in the event hours and half that before; the event day high
    // before: an uncapped factor near 2 takes the baseline past what a power can hold
    // (an error, for that lane only).
    let factor = meter(MarketZone::Pjm, c, 40, 15, |d, t| {
        let h = t.hour();
        Some(match (d == spike, h) {
            (true, 10..13) => 9e14,
            (true, _) => 100.0,
            (false, 14..18) => 9e14,
            (false, _) => 4.6e14,
        })
    });
    meters.push(FleetMeter::new("during", during));
    meters.push(FleetMeter::new("baseline", baseline));
    meters.push(FleetMeter::new("factor", factor));
    let events: Vec<_> = [3u32, 5, 6]
        .iter()
        .map(|&d| {
            FleetEvent::new(
                format!("e{d}"),
                event(MarketZone::Pjm, date(2025, 6, d), 14, 18),
            )
        })
        .collect();
    let cal = Calendar::new(MarketZone::Pjm);
    let baselines = baselines();
    let rows = settle_with(&meters, &cal, &events, &baselines, NonZeroUsize::MIN);
    let grid = FleetGrid::from_meters(&meters).unwrap();
    let on_grid = settle_grid(&grid, &cal, &events, &baselines, NonZeroUsize::MIN);
    assert_eq!(on_grid, rows);
    // The bound is reached: some energies saturate.
    let max = rows
        .iter()
        .filter_map(|r| r.figures.as_ref().ok())
        .map(|f| f.baseline_energy.as_joules().abs())
        .fold(0.0, f64::max);
    assert_eq!(max, gridflex_core::MAX_MAGNITUDE);
    let refused = rows
        .iter()
        .filter(|r| r.meter == meters.len() - 1)
        .any(|r| matches!(r.figures, Err(MvError::Core(_))));
    assert!(refused, "the factor takes a baseline past the bound");
}
