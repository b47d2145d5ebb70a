//! Every valid signal survives its JSON-lines form; invalid values cannot be read.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex_core::{Interval, Power, Price, PricingNodeId};
use gridflex_signals::{
    AlertKind, DispatchEvent, DispatchTarget, EventWindow, GridAlert, GridSignal, LeadTime, Market,
    MarketRun, PricePoint, Program, RegulationKind, RegulationSample, RegulationSignal,
    read_json_lines, write_json_lines,
};
use proptest::prelude::*;

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..2_000_000_000).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

fn price_signal() -> impl Strategy<Value = GridSignal> {
    (
        prop::sample::select(MarketRun::ALL.to_vec()),
        "[A-Za-z0-9_.-]{1,20}",
        instant(),
        -1e4f64..1e5,
        prop::option::of(-1e3f64..1e3),
        prop::option::of(-1e3f64..1e3),
        prop::option::of(-1e3f64..1e3),
    )
        .prop_map(|(run, node, start, lmp, e, c, l)| {
            let p = |v: f64| Price::per_megawatt_hour(v).unwrap();
            GridSignal::Price(
                PricePoint::new(
                    run,
                    PricingNodeId::new(node).unwrap(),
                    Interval::starting_at(start, run.nominal_length()).unwrap(),
                    p(lmp),
                )
                .with_energy(e.map(p))
                .with_congestion(c.map(p))
                .with_loss(l.map(p)),
            )
        })
}

fn program() -> impl Strategy<Value = Program> {
    let lead = prop::sample::select(vec![
        LeadTime::Minutes30,
        LeadTime::Minutes60,
        LeadTime::Minutes120,
    ]);
    prop_oneof![
        Just(Program::CaisoPdr),
        Just(Program::CaisoRdrr),
        lead.clone()
            .prop_map(|lead_time| Program::PjmPreEmergencyLoadManagement { lead_time }),
        lead.prop_map(|lead_time| Program::PjmEmergencyLoadManagement { lead_time }),
        Just(Program::PjmSynchronizedReserve),
        Just(Program::PjmEconomic),
        ("[a-z-]{1,12}", prop::bool::ANY).prop_map(|(name, caiso)| Program::Custom {
            name,
            market: if caiso { Market::Caiso } else { Market::Pjm },
        }),
    ]
}

fn dispatch_signal() -> impl Strategy<Value = GridSignal> {
    (
        "[A-Za-z0-9-]{1,16}",
        program(),
        instant(),
        0i64..86_400,
        prop::option::of(1i64..86_400),
        prop_oneof![
            (0.0f64..1e8).prop_map(|w| DispatchTarget::ReduceBy {
                power: Power::watts(w).unwrap()
            }),
            (0.0f64..1e8).prop_map(|w| DispatchTarget::CapAt {
                power: Power::watts(w).unwrap()
            }),
            (0u32..4).prop_map(|level| DispatchTarget::Level { level }),
        ],
        prop::option::of(0i64..7200),
    )
        .prop_map(|(id, program, issued, delay, len, target, response)| {
            let start = issued + TimeDelta::seconds(delay);
            let window =
                EventWindow::new(start, len.map(|l| start + TimeDelta::seconds(l))).unwrap();
            GridSignal::Dispatch(
                DispatchEvent::new(
                    id,
                    program,
                    issued,
                    window,
                    target,
                    response.map(TimeDelta::seconds),
                )
                .unwrap(),
            )
        })
}

fn alert_signal() -> impl Strategy<Value = GridSignal> {
    (
        prop::sample::select(vec![
            (Market::Caiso, AlertKind::FlexAlert),
            (Market::Caiso, AlertKind::EeaWatch),
            (Market::Caiso, AlertKind::Eea2),
            (Market::Pjm, AlertKind::Eea1),
            (Market::Pjm, AlertKind::PjmMaxGenEmergencyAlert),
            (Market::Pjm, AlertKind::PjmVoltageReduction),
            (Market::Pjm, AlertKind::PjmManualLoadDump),
        ]),
        instant(),
        prop::option::of(1i64..86_400),
    )
        .prop_map(|((market, kind), at, len)| {
            let window = EventWindow::new(at, len.map(|l| at + TimeDelta::seconds(l))).unwrap();
            GridSignal::Alert(GridAlert::new(market, kind, at, window).unwrap())
        })
}

fn regulation_signal() -> impl Strategy<Value = GridSignal> {
    (instant(), prop::bool::ANY, -1.0f64..=1.0).prop_map(|(at, a, v)| {
        let kind = if a {
            RegulationKind::RegA
        } else {
            RegulationKind::RegD
        };
        GridSignal::Regulation(RegulationSample::new(
            at,
            kind,
            RegulationSignal::new(v).unwrap(),
        ))
    })
}

fn signal() -> impl Strategy<Value = GridSignal> {
    prop_oneof![
        price_signal(),
        dispatch_signal(),
        alert_signal(),
        regulation_signal()
    ]
}

proptest! {
    #[test]
    fn json_lines_round_trip(signals in prop::collection::vec(signal(), 0..20)) {
        let mut buf = Vec::new();
        write_json_lines(&mut buf, &signals).unwrap();
        let back: Vec<GridSignal> = read_json_lines(buf.as_slice()).map(|(s, _)| s.unwrap()).collect();
        prop_assert_eq!(back, signals);
    }

    #[test]
    fn out_of_range_regulation_never_reads(v in prop_oneof![1.0000001f64..1e9, -1e9f64..-1.0000001]) {
        let line = format!(r#"{{"type":"regulation","at":"2025-01-01T00:00:00Z","kind":"RegA","signal":{v}}}"#);
        prop_assert!(GridSignal::from_json_line(&line).is_err());
    }

    #[test]
    fn windows_ending_before_they_start_never_read(len in -86_400i64..=0) {
        let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let end = (start + TimeDelta::seconds(len)).to_rfc3339();
        let line = format!(
            r#"{{"type":"alert","market":"PJM","kind":"eea1","issued_at":"2025-01-01T00:00:00Z","window":{{"start":"2025-01-01T00:00:00Z","end":"{end}"}}}}"#
        );
        prop_assert!(GridSignal::from_json_line(&line).is_err());
    }

    #[test]
    fn random_text_never_panics_the_json_reader(text in "[ -~\n]{0,400}") {
        for (s, _) in read_json_lines(text.as_bytes()) {
            let _ = s;
        }
    }
}
