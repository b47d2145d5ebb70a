//! Event -> signals: how an OpenADR event becomes gridflex [`DispatchEvent`]s and
//! [`PricePoint`]s, and what is ignored (with the reason).
//!
//! - `IMPORT_CAPACITY_LIMIT` -> a dispatch that caps the facility
//!   ([`DispatchTarget::CapAt`]), in the units of the event's payload descriptor (`KW`
//!   when none; `W` and `MW` also read).
//! - `SIMPLE` level 1-3 -> a dispatch with the target the program defines for that
//!   level ([`Mapping::simple_levels`]); level 0 is normal operation (no dispatch).
//! - `PRICE` -> a [`PricePoint`] at the node and market run the VTN's prices stand for
//!   ([`Mapping::price`]), in $/MWh (`KWH` units, the OpenADR default, are scaled by
//!   1000); only US dollars, and only intervals of the run's length.
//! - anything else is ignored with a note: never guessed.
//!
//! Each interval becomes its own dispatch, with the id `{eventID}/{intervalID}` and the
//! program `Custom { name: programName, market }`, issued at the event's modification
//! time. The event's `priority` is not carried: gridflex serves concurrent obligations
//! strictest first (the orchestrator's rule), whatever their priority.

use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::{Interval, Power, Price, PricingNodeId};
use gridflex_signals::{
    DispatchEvent, DispatchTarget, EventWindow, Market, MarketRun, PricePoint, Program,
};
use serde::{Deserialize, Serialize};

use crate::duration::{OadrDuration, parse_duration};
use crate::wire::{Event, EventPayloadDescriptor};

/// The reduction a program defines for one `SIMPLE` level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SimpleLevel {
    /// The level (1, 2 or 3).
    pub level: u32,
    /// What the site does at that level.
    pub target: DispatchTarget,
}

impl SimpleLevel {
    /// A level and its target.
    pub fn new(level: u32, target: DispatchTarget) -> Self {
        Self { level, target }
    }
}

/// The pricing node and market run a VTN's `PRICE` payloads stand for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PriceBinding {
    /// The node.
    pub node: PricingNodeId,
    /// The run (its interval length is what `PRICE` intervals must have).
    pub run: MarketRun,
}

impl PriceBinding {
    /// A binding.
    pub fn new(node: PricingNodeId, run: MarketRun) -> Self {
        Self { node, run }
    }
}

/// How events map onto gridflex signals: plain configuration of the enrolment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Mapping {
    /// The market the site (and its program rules) belongs to.
    pub market: Market,
    /// The response time of dispatches (OpenADR events carry none; default 60 s).
    #[serde(rename = "response_time_s", with = "seconds")]
    pub response_time: TimeDelta,
    /// The reduction of each `SIMPLE` level; a level without an entry is ignored
    /// with a note.
    pub simple_levels: Vec<SimpleLevel>,
    /// What `PRICE` payloads stand for; `None`: they are ignored with a note.
    pub price: Option<PriceBinding>,
}

mod seconds {
    use chrono::TimeDelta;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeDelta, D::Error> {
        let v = u32::deserialize(d)?;
        Ok(TimeDelta::seconds(i64::from(v)))
    }
}

impl Mapping {
    /// A mapping for `market` with a 60-second response time, no `SIMPLE` levels and no
    /// price binding.
    pub fn new(market: Market) -> Self {
        Self {
            market,
            response_time: TimeDelta::seconds(60),
            simple_levels: Vec::new(),
            price: None,
        }
    }
}

/// What one event maps to.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Mapped {
    /// Dispatches, one per interval with a capacity limit or a non-zero `SIMPLE` level.
    pub dispatches: Vec<DispatchEvent>,
    /// Prices, one per `PRICE` interval.
    pub prices: Vec<PricePoint>,
    /// What was ignored, and why.
    pub ignored: Vec<String>,
}

/// The dispatch id of an event's interval.
pub fn dispatch_id(event_id: &str, interval_id: i64) -> String {
    format!("{event_id}/{interval_id}")
}

/// The OpenADR event id a dispatch id (`{eventID}/{intervalID}`) comes from.
///
/// ```
/// assert_eq!(gridflex_openadr::mapping::event_id_of("42/0"), Some("42"));
/// assert_eq!(gridflex_openadr::mapping::event_id_of("plain"), None);
/// ```
pub fn event_id_of(dispatch_id: &str) -> Option<&str> {
    dispatch_id.rsplit_once('/').map(|(e, _)| e)
}

/// The window of each interval: its own period, or the event's, the k-th interval
/// without its own period starting k event durations after the event's start.
fn windows(event: &Event) -> Vec<Result<(i64, EventWindow), String>> {
    let base = event.interval_period.as_ref();
    event
        .intervals
        .iter()
        .enumerate()
        .map(|(k, i)| {
            let period = i.interval_period.as_ref();
            let start_of = |p: Option<&crate::wire::IntervalPeriod>| p.map(|p| p.start);
            let duration_text = period
                .and_then(|p| p.duration.clone())
                .or_else(|| base.and_then(|b| b.duration.clone()));
            let duration = match duration_text.as_deref().map(parse_duration) {
                None => None,
                Some(Ok(OadrDuration::Infinite)) => None,
                Some(Ok(OadrDuration::Finite(d))) => Some(d),
                Some(Err(e)) => return Err(format!("interval {}: {e}", i.id)),
            };
            let start = match (start_of(period), start_of(base)) {
                (Some(s), _) => s,
                (None, Some(s)) => {
                    let step = duration.unwrap_or_default();
                    i32::try_from(k)
                        .ok()
                        .and_then(|k| step.checked_mul(k))
                        .and_then(|off| s.checked_add_signed(off))
                        .ok_or_else(|| format!("interval {}: start out of range", i.id))?
                }
                (None, None) => return Err(format!("interval {}: no interval period", i.id)),
            };
            let end = match duration {
                Some(d) => Some(
                    start
                        .checked_add_signed(d)
                        .ok_or_else(|| format!("interval {}: end out of range", i.id))?,
                ),
                None => None,
            };
            let window =
                EventWindow::new(start, end).map_err(|e| format!("interval {}: {e}", i.id))?;
            Ok((i.id, window))
        })
        .collect()
}

fn descriptor<'a>(event: &'a Event, kind: &str) -> Option<&'a EventPayloadDescriptor> {
    event
        .payload_descriptors
        .iter()
        .flatten()
        .find(|d| d.payload_type == kind)
}

/// The single numeric value of a payload.
fn single_number(values: &[serde_json::Value]) -> Result<f64, String> {
    match values {
        [v] => v
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("value {v} is not a number")),
        _ => Err(format!("expected one value, got {}", values.len())),
    }
}

fn power_in(value: f64, units: Option<&str>) -> Result<Power, String> {
    let p = match units.map(str::to_ascii_uppercase).as_deref() {
        None | Some("KW") => Power::kilowatts(value),
        Some("W") => Power::watts(value),
        Some("MW") => Power::megawatts(value),
        Some(other) => return Err(format!("units {other:?} are not a power")),
    };
    p.map_err(|e| e.to_string())
}

/// Maps one event of the program called `program_name`.
pub fn map_event(event: &Event, program_name: &str, mapping: &Mapping) -> Mapped {
    let mut out = Mapped::default();
    let program = Program::Custom {
        name: program_name.to_owned(),
        market: mapping.market,
    };
    let issued: DateTime<Utc> = event.modification_date_time;
    for (interval, window) in event.intervals.iter().zip(windows(event)) {
        let window = match window {
            Ok((_, w)) => w,
            Err(e) => {
                out.ignored.push(format!("event {}: {e}", event.id));
                continue;
            }
        };
        let id = dispatch_id(&event.id, interval.id);
        for payload in &interval.payloads {
            let at = format!(
                "event {} interval {} {}",
                event.id, interval.id, payload.kind
            );
            let units = descriptor(event, &payload.kind).and_then(|d| d.units.as_deref());
            let result: Result<(), String> = match payload.kind.as_str() {
                "IMPORT_CAPACITY_LIMIT" => single_number(&payload.values)
                    .and_then(|v| power_in(v, units))
                    .and_then(|power| {
                        DispatchEvent::new(
                            id.clone(),
                            program.clone(),
                            issued,
                            window,
                            DispatchTarget::CapAt { power },
                            Some(mapping.response_time),
                        )
                        .map_err(|e| e.to_string())
                    })
                    .map(|d| out.dispatches.push(d)),
                "SIMPLE" => single_number(&payload.values).and_then(|v| {
                    if v.fract() != 0.0 || !(0.0..=3.0).contains(&v) {
                        return Err(format!("level {v} is not 0, 1, 2 or 3"));
                    }
                    let level = v as u32;
                    if level == 0 {
                        return Ok(());
                    }
                    let Some(entry) = mapping.simple_levels.iter().find(|l| l.level == level)
                    else {
                        return Err(format!("no reduction is configured for level {level}"));
                    };
                    DispatchEvent::new(
                        id.clone(),
                        program.clone(),
                        issued,
                        window,
                        entry.target,
                        Some(mapping.response_time),
                    )
                    .map(|d| out.dispatches.push(d))
                    .map_err(|e| e.to_string())
                }),
                "PRICE" => {
                    map_price(event, window, &payload.values, mapping).map(|p| out.prices.push(p))
                }
                other => Err(format!("payload type {other} is not one gridflex acts on")),
            };
            if let Err(reason) = result {
                out.ignored.push(format!("{at}: ignored: {reason}"));
            }
        }
    }
    out
}

fn map_price(
    event: &Event,
    window: EventWindow,
    values: &[serde_json::Value],
    mapping: &Mapping,
) -> Result<PricePoint, String> {
    let Some(binding) = &mapping.price else {
        return Err("no price binding is configured".into());
    };
    let value = single_number(values)?;
    let d = descriptor(event, "PRICE");
    if let Some(c) = d.and_then(|d| d.currency.as_deref())
        && !c.eq_ignore_ascii_case("USD")
    {
        return Err(format!("currency {c} is not USD"));
    }
    let per_mwh = match d
        .and_then(|d| d.units.as_deref())
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("KWH") => value * 1000.0,
        Some("MWH") => value,
        Some(other) => return Err(format!("units {other:?} are not an energy unit")),
    };
    let interval = window
        .interval()
        .ok_or("an open-ended interval has no price period")?;
    if interval.duration() != binding.run.nominal_length() {
        return Err(format!(
            "interval of {} s, but {} intervals are {} s",
            interval.duration().num_seconds(),
            binding.run,
            binding.run.nominal_length().num_seconds()
        ));
    }
    let lmp = Price::per_megawatt_hour(per_mwh).map_err(|e| e.to_string())?;
    Ok(PricePoint::new(
        binding.run,
        binding.node.clone(),
        Interval::new(interval.start(), interval.end()).map_err(|e| e.to_string())?,
        lmp,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 1, 18, 0, 0).unwrap()
    }

    fn event(json: serde_json::Value) -> Event {
        let mut base = serde_json::json!({
            "id": "7", "createdDateTime": "2026-07-01T17:00:00Z",
            "modificationDateTime": "2026-07-01T17:30:00Z", "programID": "p1",
            "intervalPeriod": {"start": "2026-07-01T18:00:00Z", "duration": "PT1H"},
        });
        for (k, v) in json.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn mapping() -> Mapping {
        let mut m = Mapping::new(Market::Caiso);
        m.simple_levels = vec![
            SimpleLevel::new(
                1,
                DispatchTarget::ReduceBy {
                    power: Power::kilowatts(1.0).unwrap(),
                },
            ),
            SimpleLevel::new(
                3,
                DispatchTarget::CapAt {
                    power: Power::kilowatts(2.0).unwrap(),
                },
            ),
        ];
        m.price = Some(PriceBinding::new(
            PricingNodeId::new("TH_NP15_GEN-APND").unwrap(),
            MarketRun::CaisoDam,
        ));
        m
    }

    #[test]
    fn capacity_limit_becomes_a_cap_per_interval() {
        let e = event(serde_json::json!({
            "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "MW"}],
            "intervals": [
                {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [0.5]}]},
                {"id": 1, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [0.25]}]},
            ]
        }));
        let m = map_event(&e, "peak", &mapping());
        assert!(m.ignored.is_empty(), "{:?}", m.ignored);
        assert_eq!(m.dispatches.len(), 2);
        let d = &m.dispatches[1];
        assert_eq!(d.id, "7/1");
        assert_eq!(
            d.target,
            DispatchTarget::CapAt {
                power: Power::kilowatts(250.0).unwrap()
            }
        );
        assert_eq!(d.window.start(), t0() + TimeDelta::hours(1));
        assert_eq!(d.window.end(), Some(t0() + TimeDelta::hours(2)));
        assert_eq!(
            d.program,
            Program::Custom {
                name: "peak".into(),
                market: Market::Caiso
            }
        );
        assert_eq!(d.response_time, TimeDelta::seconds(60));
    }

    #[test]
    fn simple_levels_use_the_configured_reduction() {
        let level = |v: serde_json::Value| {
            let e = event(serde_json::json!({
                "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [v]}]}]
            }));
            map_event(&e, "p", &mapping())
        };
        assert!(level(0.into()).dispatches.is_empty() && level(0.into()).ignored.is_empty());
        assert_eq!(
            level(1.into()).dispatches[0].target,
            DispatchTarget::ReduceBy {
                power: Power::kilowatts(1.0).unwrap()
            }
        );
        let two = level(2.into());
        assert!(two.dispatches.is_empty());
        assert!(
            two.ignored[0].contains("no reduction is configured for level 2"),
            "{two:?}"
        );
        assert_eq!(level(4.into()).ignored.len(), 1);
        assert_eq!(level(1.5.into()).ignored.len(), 1);
        assert_eq!(level("high".into()).ignored.len(), 1);
    }

    #[test]
    fn price_in_kwh_becomes_per_mwh_and_wrong_lengths_are_ignored() {
        let e = event(serde_json::json!({
            "payloadDescriptors": [{"payloadType": "PRICE", "units": "KWH", "currency": "USD"}],
            "intervals": [
                {"id": 0, "payloads": [{"type": "PRICE", "values": [0.45]}]},
                {"id": 1, "intervalPeriod": {"start": "2026-07-01T19:00:00Z", "duration": "PT5M"},
                 "payloads": [{"type": "PRICE", "values": [0.45]}]},
            ]
        }));
        let m = map_event(&e, "p", &mapping());
        assert_eq!(m.prices.len(), 1);
        assert!((m.prices[0].lmp.as_per_megawatt_hour() - 450.0).abs() < 1e-9);
        assert_eq!(m.ignored.len(), 1, "{:?}", m.ignored);
        assert!(m.ignored[0].contains("interval 1 PRICE"), "{:?}", m.ignored);
    }

    #[test]
    fn unknown_and_malformed_payloads_are_ignored_with_a_reason() {
        let e = event(serde_json::json!({
            "intervals": [
                {"id": 0, "payloads": [
                    {"type": "GHG", "values": [12]},
                    {"type": "IMPORT_CAPACITY_LIMIT", "values": [-5]},
                    {"type": "IMPORT_CAPACITY_LIMIT", "values": []},
                    {"type": "IMPORT_CAPACITY_LIMIT", "values": [{"x": 1}]},
                ]},
                {"id": 1, "intervalPeriod": {"start": "2026-07-01T19:00:00Z", "duration": "P1M"},
                 "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]},
            ]
        }));
        let m = map_event(&e, "p", &mapping());
        assert!(m.dispatches.is_empty(), "{:?}", m.dispatches);
        assert_eq!(m.ignored.len(), 5, "{:?}", m.ignored);
        assert!(m.ignored[0].contains("GHG is not one gridflex acts on"));
    }

    #[test]
    fn open_ended_event_gives_an_open_window() {
        let e = event(serde_json::json!({
            "intervalPeriod": {"start": "2026-07-01T18:00:00Z", "duration": "P9999Y"},
            "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}]
        }));
        let m = map_event(&e, "p", &mapping());
        assert_eq!(m.dispatches[0].window.end(), None);
    }

    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            (-1e6f64..1e6).prop_map(serde_json::Value::from),
            (-5i64..10).prop_map(serde_json::Value::from),
            "\\PC{0,6}".prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            Just(serde_json::json!([1, 2])),
        ]
    }

    fn payload() -> impl Strategy<Value = serde_json::Value> {
        (
            prop_oneof![
                Just("IMPORT_CAPACITY_LIMIT"),
                Just("SIMPLE"),
                Just("PRICE"),
                Just("GHG"),
                Just("")
            ],
            proptest::collection::vec(value(), 0..3),
        )
            .prop_map(|(t, v)| serde_json::json!({"type": t, "values": v}))
    }

    fn duration() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u32..7200).prop_map(|s| format!("PT{s}S")),
            Just("P9999Y".to_owned()),
            Just("P1M".to_owned()),
            Just("PT5M".to_owned()),
            "\\PC{0,8}",
        ]
    }

    proptest! {
        /// Whatever the payloads, mapping never panics, and what comes out is sound:
        /// windows end after they start, caps are non-negative, ids name the interval.
        #[test]
        fn mapping_arbitrary_events_is_total_and_sound(
            payloads in proptest::collection::vec(proptest::collection::vec(payload(), 0..3), 0..4),
            own in proptest::collection::vec(proptest::option::of((0i64..7200, duration())), 0..4),
            event_duration in proptest::option::of(duration()),
        ) {
            let intervals: Vec<serde_json::Value> = payloads.iter().enumerate().map(|(i, p)| {
                let mut iv = serde_json::json!({"id": i, "payloads": p});
                if let Some(Some((off, d))) = own.get(i) {
                    iv["intervalPeriod"] = serde_json::json!({
                        "start": t0() + TimeDelta::seconds(*off), "duration": d});
                }
                iv
            }).collect();
            let mut base = serde_json::json!({"intervals": intervals});
            if let Some(d) = event_duration {
                base["intervalPeriod"] = serde_json::json!({"start": t0(), "duration": d});
            } else {
                base["intervalPeriod"] = serde_json::json!({"start": t0()});
            }
            let e = event(base);
            let m = map_event(&e, "p", &mapping());
            let n_payloads: usize = payloads.iter().map(Vec::len).sum();
            prop_assert!(m.dispatches.len() + m.prices.len() + m.ignored.len() <= n_payloads + payloads.len());
            for d in &m.dispatches {
                prop_assert!(d.id.starts_with("7/"));
                if let Some(end) = d.window.end() {
                    prop_assert!(end > d.window.start());
                }
                if let DispatchTarget::CapAt { power } | DispatchTarget::ReduceBy { power } = d.target {
                    prop_assert!(!power.is_negative());
                }
            }
            for p in &m.prices {
                prop_assert_eq!(p.interval.duration(), MarketRun::CaisoDam.nominal_length());
            }
        }
    }
}
