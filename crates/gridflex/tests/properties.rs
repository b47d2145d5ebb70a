//! Property tests of the program rules on arbitrary signals. The orchestrator's safety
//! promise over arbitrary signal sequences with faults is in `safety_props.rs`.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex::planner::Target;
use gridflex::prelude::*;
use gridflex::program::Refusal;
use gridflex::signals::{
    AlertKind, DispatchEvent, DispatchTarget, EventWindow, GridAlert, LeadTime, Program,
    RegulationKind, RegulationSample, RegulationSignal,
};
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 8, 14, 16, 0, 0).unwrap()
}

fn kw(v: f64) -> Power {
    Power::kilowatts(v).unwrap()
}

fn node() -> PricingNodeId {
    PricingNodeId::new("N").unwrap()
}

fn rules() -> ProgramRules {
    let mut rules = ProgramRules::new(Market::Caiso, power!(20 kW));
    rules.markets.push(Market::Pjm);
    let mut price = PriceRule::new(
        node(),
        MarketRun::CaisoRtm,
        price!(300 per MWh),
        power!(28 kW),
    );
    price.response_time = TimeDelta::milliseconds(20);
    rules.price = Some(price);
    rules.dispatch = Some(DispatchRule::new(vec![
        Program::PjmEmergencyLoadManagement {
            lead_time: LeadTime::Minutes30,
        },
        Program::CaisoPdr,
    ]));
    rules.emergency = Some(EmergencyRule::new(vec![LevelCap::new(
        gridflex::signals::AlertLevel::Eea2,
        power!(26 kW),
    )]));
    rules.regulation = Some(RegulationRule::new(
        RegulationKind::RegD,
        power!(32 kW),
        power!(4 kW),
    ));
    rules.max_event = TimeDelta::minutes(40);
    rules
}

/// One signal at `minute` (0..120) of a kind picked by `kind`, with `x` in [0, 1)
/// shaping its size.
fn signal(kind: u8, minute: i64, x: f64) -> GridSignal {
    let at = t0() + TimeDelta::minutes(minute);
    match kind % 5 {
        0 => {
            let i = Interval::new(at, at + TimeDelta::minutes(5)).unwrap();
            let lmp = Price::per_megawatt_hour(-50.0 + 1500.0 * x).unwrap();
            GridSignal::Price(PricePoint::new(MarketRun::CaisoRtm, node(), i, lmp))
        }
        1 => {
            let end = (x > 0.2).then(|| at + TimeDelta::minutes(1 + (x * 60.0) as i64));
            let window = EventWindow::new(
                at + TimeDelta::minutes((x * 10.0) as i64),
                end.map(|e| e + TimeDelta::minutes(10)),
            )
            .unwrap();
            let target = if x < 0.5 {
                DispatchTarget::ReduceBy {
                    power: kw(40.0 * x),
                }
            } else {
                DispatchTarget::CapAt {
                    power: kw(50.0 * x),
                }
            };
            let program = if x < 0.7 {
                Program::CaisoPdr
            } else {
                Program::PjmEconomic
            };
            GridSignal::Dispatch(
                DispatchEvent::new("D", program, at, window, target, None).unwrap(),
            )
        }
        2 => {
            let kind = if x < 0.5 {
                AlertKind::Eea2
            } else {
                AlertKind::EeaWatch
            };
            let end = (x > 0.3).then(|| at + TimeDelta::minutes(1 + (x * 30.0) as i64));
            GridSignal::Alert(
                GridAlert::new(Market::Caiso, kind, at, EventWindow::new(at, end).unwrap())
                    .unwrap(),
            )
        }
        _ => GridSignal::Regulation(RegulationSample::new(
            at,
            RegulationKind::RegD,
            RegulationSignal::new(2.0 * x - 1.0).unwrap(),
        )),
    }
}

proptest! {
    #[test]
    fn rules_never_produce_an_unsafe_curtailment(
        signals in prop::collection::vec((any::<u8>(), 0i64..120, 0.0f64..1.0), 1..40),
        power in 20.0f64..60.0,
    ) {
        let mut engine = ProgramEngine::new(rules()).unwrap();
        let enrolled = engine.rules().enrolled_reduction;
        let mut sorted: Vec<GridSignal> = signals.iter().map(|&(k, m, x)| signal(k, m, x)).collect();
        sorted.sort_by_key(GridSignal::time);
        for s in &sorted {
            let now = s.time();
            match engine.evaluate(s, now, kw(power)) {
                Decision::Curtail(c) => {
                    prop_assert!(c.window.start() >= now);
                    prop_assert!(c.window.end() > now);
                    prop_assert!(c.window.duration() <= TimeDelta::minutes(60 + 20));
                    prop_assert!(c.response_time >= TimeDelta::zero());
                    match c.target {
                        Target::ReduceBy(r) => prop_assert!(r <= enrolled && !r.is_negative()),
                        Target::FacilityCap(cap) => prop_assert!(!cap.is_negative()),
                        _ => {}
                    }
                }
                Decision::Refuse(Refusal::BeyondEnrolled { requested, .. }) => prop_assert!(requested > enrolled),
                _ => {}
            }
        }
    }
}
