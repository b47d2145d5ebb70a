//! Reading planner JSON, including files written by earlier versions.
//!
//! This version writes every duration as seconds in a field named `*_s` (the
//! convention of every JSON format gridflex reads or writes, `docs/core.md`). gridflex
//! 0.1 wrote the planner's durations in milliseconds (`max_pause_ms`, `offset_ms`,
//! `response_time_ms`, ...); [`from_str`] still reads those files: each such field is
//! taken as its `*_s` counterpart divided by 1,000, unless the `*_s` field is there too.
//!
//! ```
//! use gridflex_planner::{json, CurtailmentRequest};
//! let old = r#"{"target":{"facility_cap":500000},"window":{"start":"2025-08-14T20:00:00Z","end":"2025-08-14T20:30:00Z"},
//!     "response_time_ms":20,"restore_ramp":50000}"#;
//! let request: CurtailmentRequest = json::from_str(old)?;
//! assert_eq!(request.response_time(), std::time::Duration::from_millis(20));
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The millisecond fields of gridflex 0.1's planner JSON.
const LEGACY_MS: [&str; 9] = [
    "max_pause_ms",
    "offset_ms",
    "restore_start_ms",
    "remaining_ms",
    "response_time_ms",
    "pause_half_ms",
    "pause_settle_ms",
    "cap_settle_ms",
    "resume_overshoot_ms",
];

/// Parses planner JSON (a fleet, a request, options, a plan, or a document holding
/// them), reading the millisecond fields of earlier versions as seconds.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    let mut value: Value = serde_json::from_str(text)?;
    upgrade(&mut value);
    serde_json::from_value(value)
}

/// Rewrites every legacy millisecond field of `value` (at any depth) as its seconds
/// field, in place. A field that is not a number is renamed as it is, so the error
/// names the field this version reads.
pub fn upgrade(value: &mut Value) {
    match value {
        Value::Object(map) => {
            rename(map);
            map.values_mut().for_each(upgrade);
        }
        Value::Array(items) => items.iter_mut().for_each(upgrade),
        _ => {}
    }
}

fn rename(map: &mut Map<String, Value>) {
    for old in LEGACY_MS {
        let new = format!("{}_s", &old[..old.len() - 3]);
        if map.contains_key(&new) {
            continue;
        }
        if let Some(v) = map.remove(old) {
            let seconds = match v.as_f64() {
                Some(ms) => serde_json::Number::from_f64(ms / 1e3).map_or(v, Value::Number),
                None => v,
            };
            map.insert(new, seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millisecond_fields_become_seconds_at_any_depth_unless_both_are_there() {
        let mut v: Value = serde_json::json!({
            "jobs": [{"class": {"flexible": {"floor": 0.5, "max_pause_ms": 600000}}}],
            "response_time_ms": 20, "response_time_s": 1,
            "offset_ms": "oops"
        });
        upgrade(&mut v);
        assert_eq!(v["jobs"][0]["class"]["flexible"]["max_pause_s"], 600.0);
        assert_eq!(v["response_time_s"], 1);
        assert_eq!(
            v["response_time_ms"], 20,
            "left alone: the seconds field is there"
        );
        assert_eq!(v["offset_s"], "oops");
    }
}
