//! The curtailment request and the planner's options (lever response profiles).

use std::time::Duration;

use chrono::{DateTime, Utc};
use gridflex_core::{Interval, Power};
use serde::{Deserialize, Serialize};

use crate::{PlannerError, RampRate};

/// What facility power must come down to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Target {
    /// Metered facility power at or under this value (JSON `{"facility_cap": watts}`).
    FacilityCap(Power),
    /// Facility power lowered by this much from the snapshot's predicted power
    /// (JSON `{"reduce_by": watts}`).
    ReduceBy(Power),
}

/// A request to curtail: target, window, response time and restore ramp.
///
/// ```
/// use std::time::Duration;
/// use chrono::{TimeZone, Utc};
/// use gridflex_core::{Interval, Power};
/// use gridflex_planner::{CurtailmentRequest, RampRate, Target};
/// let start = Utc.with_ymd_and_hms(2025, 8, 14, 18, 0, 0).unwrap();
/// let window = Interval::new(start, start + chrono::TimeDelta::hours(2))?;
/// let req = CurtailmentRequest::new(
///     Target::ReduceBy(Power::kilowatts(300.0)?),
///     window,
///     Duration::from_millis(20),
///     RampRate::per_second(Power::kilowatts(100.0)?)?,
/// )?;
/// assert_eq!(req.window(), window);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurtailmentRequest {
    target: Target,
    window: Interval,
    #[serde(rename = "response_time_s", with = "gridflex_core::duration_s::std")]
    response_time: Duration,
    restore_ramp: RampRate,
}

impl CurtailmentRequest {
    /// Validates: the target power must not be negative.
    pub fn new(
        target: Target,
        window: Interval,
        response_time: Duration,
        restore_ramp: RampRate,
    ) -> Result<Self, PlannerError> {
        let (field, p) = match target {
            Target::FacilityCap(p) => ("target.facility_cap", p),
            Target::ReduceBy(p) => ("target.reduce_by", p),
        };
        if p.is_negative() {
            return Err(PlannerError::invalid(
                field,
                format!("must not be negative, got {p}"),
            ));
        }
        Ok(Self {
            target,
            window,
            response_time,
            restore_ramp,
        })
    }

    /// The target.
    pub fn target(&self) -> Target {
        self.target
    }
    /// The curtailment window; the plan's offsets count from its start.
    pub fn window(&self) -> Interval {
        self.window
    }
    /// How soon after the start the target must be met.
    pub fn response_time(&self) -> Duration {
        self.response_time
    }
    /// The fastest facility power may rise during the restore.
    pub fn restore_ramp(&self) -> RampRate {
        self.restore_ramp
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    target: Target,
    window: RawWindow,
    #[serde(rename = "response_time_s", with = "gridflex_core::duration_s::std")]
    response_time: Duration,
    restore_ramp: Power,
}

impl<'de> Deserialize<'de> for CurtailmentRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = RawRequest::deserialize(d)?;
        let window =
            Interval::new(r.window.start, r.window.end).map_err(|source| PlannerError::Core {
                field: "window".into(),
                source,
            });
        let ramp = RampRate::per_second(r.restore_ramp).map_err(|e| e.within("restore_ramp"));
        window
            .and_then(|w| Ok((w, ramp?)))
            .and_then(|(w, ramp)| CurtailmentRequest::new(r.target, w, r.response_time, ramp))
            .map_err(serde::de::Error::custom)
    }
}

/// How fast each lever acts (`calibration/README.md`, `reference/gpu-power.md` section 2
/// and 4).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeverProfile {
    /// Time for a pause to reach half of its step: about 17-20 ms measured on an H100.
    #[serde(rename = "pause_half_s", with = "gridflex_core::duration_s::std")]
    pub pause_half: Duration,
    /// Time for a pause to reach 90 % of its step: 40 ms measured on an H100.
    #[serde(rename = "pause_settle_s", with = "gridflex_core::duration_s::std")]
    pub pause_settle: Duration,
    /// Time for a power cap to settle: default 300 ms, three time constants of the
    /// ~100 ms first-order settle suggested in `reference/gpu-power.md` section 4.
    #[serde(rename = "cap_settle_s", with = "gridflex_core::duration_s::std")]
    pub cap_settle: Duration,
    /// Peak draw just after a resume, as a multiple of the running draw: 1.3 measured.
    pub resume_overshoot: f64,
    /// How long the resume overshoot lasts: about 50 ms measured.
    #[serde(rename = "resume_overshoot_s", with = "gridflex_core::duration_s::std")]
    pub resume_overshoot_duration: Duration,
}

impl LeverProfile {
    /// Share of a pause's power step reached `t` seconds after it is issued: linear
    /// through 0 at 0, 0.5 at `pause_half`, 0.9 at `pause_settle` and 1 at
    /// `pause_settle + pause_half` (`calibration/README.md`, process-level curtailment).
    ///
    /// ```
    /// use gridflex_planner::LeverProfile;
    /// let l = LeverProfile::default();
    /// assert_eq!(l.pause_fraction_at(0.020), 0.5);
    /// assert!((l.pause_fraction_at(0.040) - 0.9).abs() < 1e-12);
    /// assert_eq!(l.pause_fraction_at(1.0), 1.0);
    /// ```
    pub fn pause_fraction_at(&self, t: f64) -> f64 {
        let h = self.pause_half.as_secs_f64();
        let s = self.pause_settle.as_secs_f64().max(h);
        let pts = [(0.0, 0.0), (h, 0.5), (s, 0.9), (s + h, 1.0)];
        if t <= 0.0 {
            return 0.0;
        }
        for w in pts.windows(2) {
            let ((t0, f0), (t1, f1)) = (w[0], w[1]);
            if t <= t1 {
                return if t1 > t0 {
                    f0 + (f1 - f0) * (t - t0) / (t1 - t0)
                } else {
                    f1
                };
            }
        }
        1.0
    }
}

impl Default for LeverProfile {
    fn default() -> Self {
        Self {
            pause_half: Duration::from_millis(20),
            pause_settle: Duration::from_millis(40),
            cap_settle: Duration::from_millis(300),
            resume_overshoot: 1.3,
            resume_overshoot_duration: Duration::from_millis(50),
        }
    }
}

/// Planner settings, kept apart from the data of one call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlannerOptions {
    /// Lever response profiles.
    pub levers: LeverProfile,
    /// Up to this many pause candidates, every subset of pauses is tried (exact),
    /// provided subsets x curve segments stays within 2^18; otherwise a branch and
    /// bound over pause decisions is used (exact unless its work limit stops it, and
    /// then with a certified gap). Default 10.
    pub exact_pause_limit: usize,
}

impl Default for PlannerOptions {
    fn default() -> Self {
        Self {
            levers: LeverProfile::default(),
            exact_pause_limit: 10,
        }
    }
}

impl PlannerOptions {
    /// Validates the overshoot factor (finite, in `[1, 5]`) and `exact_pause_limit`
    /// (at most 20, which is a million subsets).
    pub fn validate(&self) -> Result<(), PlannerError> {
        let o = self.levers.resume_overshoot;
        if !(o.is_finite() && (1.0..=5.0).contains(&o)) {
            return Err(PlannerError::invalid(
                "levers.resume_overshoot",
                format!("must be in [1, 5], got {o}"),
            ));
        }
        if self.exact_pause_limit > 20 {
            return Err(PlannerError::invalid(
                "exact_pause_limit",
                format!("must be at most 20, got {}", self.exact_pause_limit),
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for Target {
    /// `facility cap 560 kW` or `reduce by 200 kW`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::FacilityCap(p) => write!(f, "facility cap {p}"),
            Target::ReduceBy(p) => write!(f, "reduce by {p}"),
        }
    }
}
