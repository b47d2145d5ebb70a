//! JSON inputs and outputs: the sample input plans cleanly, errors name the field, and
//! random or mutated input never panics.

mod common;

use common::check_invariants;
use gridflex_planner::*;
use proptest::prelude::*;
use serde_json::{Value, json};

const EXAMPLE: &str = include_str!("fixtures/example_input.json");

fn parts(v: &Value) -> (Result<Fleet, String>, Result<CurtailmentRequest, String>) {
    (
        serde_json::from_value(v["fleet"].clone()).map_err(|e| e.to_string()),
        serde_json::from_value(v["request"].clone()).map_err(|e| e.to_string()),
    )
}

/// The sample input as gridflex 0.1 wrote it (millisecond fields) reads as the same
/// fleet and request as this version's seconds.
#[test]
fn millisecond_files_of_earlier_versions_still_read() {
    let mut legacy: Value = serde_json::from_str(EXAMPLE).unwrap();
    let mut ms = 0;
    fn to_ms(v: &mut Value, ms: &mut usize) {
        match v {
            Value::Object(map) => {
                let keys: Vec<String> = map
                    .keys()
                    .filter(|k| k.ends_with("_s") && *k != "restore_ramp_per_s")
                    .cloned()
                    .collect();
                for k in keys {
                    if let Some(x) = map.remove(&k).and_then(|x| x.as_f64()) {
                        map.insert(format!("{}_ms", &k[..k.len() - 2]), json!(x * 1e3));
                        *ms += 1;
                    }
                }
                map.values_mut().for_each(|v| to_ms(v, ms));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| to_ms(v, ms)),
            _ => {}
        }
    }
    to_ms(&mut legacy, &mut ms);
    assert!(ms >= 3, "the sample has duration fields ({ms})");
    let text = serde_json::to_string(&legacy).unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_ok());
    let old: Value = gridflex_planner::json::from_str(&text).unwrap();
    let new: Value = serde_json::from_str(EXAMPLE).unwrap();
    assert_eq!(parts(&old).0, parts(&new).0);
    assert_eq!(parts(&old).1, parts(&new).1);
}

#[test]
fn example_input_plans_and_round_trips() {
    let v: Value = serde_json::from_str(EXAMPLE).unwrap();
    let (fleet, req) = parts(&v);
    let (fleet, req) = (fleet.unwrap(), req.unwrap());
    let plan = plan(&fleet, &req, &PlannerOptions::default()).unwrap();
    check_invariants(&fleet, &req, &plan);
    assert!(plan.shortfall.is_none());
    assert!(plan.response_shortfall.is_none());
    assert!(
        plan.stages.len() > 1,
        "the 50 ms response needs a fast stage"
    );
    let text = serde_json::to_string(&plan).unwrap();
    let back: Plan = serde_json::from_str(&text).unwrap();
    assert_eq!(back, plan);
    // Fleet and request round-trip too.
    let f2: Fleet = serde_json::from_str(&serde_json::to_string(&fleet).unwrap()).unwrap();
    assert_eq!(f2, fleet);
    let r2: CurtailmentRequest =
        serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
    assert_eq!(r2, req);
}

/// An edit of the sample input.
type Mutation = Box<dyn Fn(&mut Value)>;

#[test]
fn errors_name_the_field() {
    let base: Value = serde_json::from_str(EXAMPLE).unwrap();
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "gpus",
            Box::new(|v| v["fleet"]["jobs"][1]["gpus"] = json!(0)),
            "jobs[1].gpus",
        ),
        (
            "floor",
            Box::new(|v| v["fleet"]["jobs"][0]["class"]["floor"] = json!(2.0)),
            "jobs[0].class.floor",
        ),
        (
            "cap",
            Box::new(|v| v["fleet"]["jobs"][2]["cap_range"]["min"] = json!(900.0)),
            "jobs[2].cap_range.min",
        ),
        (
            "draw",
            Box::new(|v| v["fleet"]["jobs"][3]["draw_per_gpu"] = json!(750.0)),
            "jobs[3].draw_per_gpu",
        ),
        (
            "weight",
            Box::new(|v| v["fleet"]["jobs"][4]["weight"] = json!(-1.0)),
            "jobs[4].weight",
        ),
        (
            "curve",
            Box::new(|v| {
                v["fleet"]["jobs"][0]["curve"] = json!([[0.5, 0.2], [0.7, 0.3], [1.0, 1.0]])
            }),
            "curve.points[2]",
        ),
        (
            "duplicate",
            Box::new(|v| v["fleet"]["jobs"][1]["id"] = json!("chat-serving")),
            "jobs[1].id",
        ),
        (
            "multiplier",
            Box::new(|v| v["fleet"]["facility"]["multiplier"] = json!(0.5)),
            "facility.multiplier",
        ),
        (
            "unknown",
            Box::new(|v| v["fleet"]["jobs"][0]["colour"] = json!("red")),
            "colour",
        ),
        (
            "window",
            Box::new(|v| v["request"]["window"]["end"] = v["request"]["window"]["start"].clone()),
            "window",
        ),
        (
            "ramp",
            Box::new(|v| v["request"]["restore_ramp"] = json!(0.0)),
            "restore_ramp",
        ),
        (
            "target",
            Box::new(|v| v["request"]["target"] = json!({"reduce_by": -5.0})),
            "target.reduce_by",
        ),
    ];
    for (name, mutate, field) in cases {
        let mut v = base.clone();
        mutate(&mut v);
        let (fleet, req) = parts(&v);
        let err = match (fleet, req) {
            (Err(e), _) | (_, Err(e)) => e,
            _ => panic!("{name}: accepted"),
        };
        assert!(err.contains(field), "{name}: {err:?} does not name {field}");
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = serde_json::from_str::<Fleet>(&text);
        let _ = serde_json::from_str::<CurtailmentRequest>(&text);
        let _ = serde_json::from_str::<Plan>(&text);
    }

    /// Mutated sample input either fails to parse or plans with every invariant kept.
    #[test]
    fn mutated_input_never_panics(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6)) {
        let mut bytes = EXAMPLE.as_bytes().to_vec();
        for (at, byte, op) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, b"0123456789.-e"[usize::from(byte) % 13]),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(v) = serde_json::from_str::<Value>(&text)
            && let (Ok(fleet), Ok(req)) = parts(&v) {
                let plan = plan(&fleet, &req, &PlannerOptions::default()).unwrap();
                check_invariants(&fleet, &req, &plan);
            }
    }
}
