//! Day-of adjustments: multiplicative (CAISO load-point, NYISO in-day) and additive
//! (PJM Symmetric Additive Adjustment, ERCOT event-day adjustment).

use chrono::TimeDelta;
use gridflex_core::{Interval, Power};
use serde::{Deserialize, Serialize};

use crate::MvError;

/// The form of a day-of adjustment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AdjustmentKind {
    /// No adjustment.
    None,
    /// `f = mean_W(actual) / mean_W(baseline)`, `B' = f * B`.
    Multiplicative,
    /// `a = mean_W(actual) - mean_W(baseline)`, `B' = B + a`.
    Additive,
}

impl AdjustmentKind {
    /// Lower-case name, as in the `mv` tool's JSON.
    pub const fn name(self) -> &'static str {
        match self {
            AdjustmentKind::None => "none",
            AdjustmentKind::Multiplicative => "multiplicative",
            AdjustmentKind::Additive => "additive",
        }
    }
}

/// A day-of adjustment: its form, its window W of `window` length ending `gap` before
/// the event start, and an optional cap.
///
/// For a multiplicative adjustment the cap `c` bounds the factor to `[1 - c, 1 + c]`;
/// for an additive one it bounds the offset to `c` times the window's mean baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Adjustment {
    /// The form.
    pub kind: AdjustmentKind,
    /// Length of the window W (H hours).
    pub window: TimeDelta,
    /// Time between the end of W and the event start (G hours).
    pub gap: TimeDelta,
    /// The cap, as a fraction; `None` for uncapped.
    pub cap: Option<f64>,
}

impl Adjustment {
    /// No adjustment.
    pub const fn none() -> Self {
        Self {
            kind: AdjustmentKind::None,
            window: TimeDelta::zero(),
            gap: TimeDelta::zero(),
            cap: None,
        }
    }

    /// A multiplicative adjustment over `window_hours` hours ending `gap_hours` before
    /// the event, factor bounded to `[1 - cap, 1 + cap]` when a cap is given.
    pub fn multiplicative(window_hours: f64, gap_hours: f64, cap: Option<f64>) -> Self {
        Self {
            kind: AdjustmentKind::Multiplicative,
            window: hours(window_hours),
            gap: hours(gap_hours),
            cap,
        }
    }

    /// An additive adjustment over `window_hours` hours ending `gap_hours` before the
    /// event, bounded to `cap` times the window's mean baseline when a cap is given.
    pub fn additive(window_hours: f64, gap_hours: f64, cap: Option<f64>) -> Self {
        Self {
            kind: AdjustmentKind::Additive,
            window: hours(window_hours),
            gap: hours(gap_hours),
            cap,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), MvError> {
        if self.kind == AdjustmentKind::None {
            return Ok(());
        }
        let bad = |name, value: String, reason| {
            Err(MvError::InvalidParameter {
                name,
                value,
                reason,
            })
        };
        if self.window <= TimeDelta::zero() {
            return bad(
                "adjustment window",
                self.window.to_string(),
                "must be positive",
            );
        }
        if self.gap < TimeDelta::zero() {
            return bad(
                "adjustment gap",
                self.gap.to_string(),
                "must not be negative",
            );
        }
        match self.cap {
            Some(c) if !(c.is_finite() && c >= 0.0) => {
                bad("cap", c.to_string(), "must be a finite number >= 0")
            }
            Some(c) if self.kind == AdjustmentKind::Multiplicative && c >= 1.0 => {
                bad("cap", c.to_string(), "a multiplicative cap must be below 1")
            }
            _ => Ok(()),
        }
    }

    /// Applies the adjustment given the means over its window `window`.
    pub(crate) fn apply(
        &self,
        window: Interval,
        mean_actual_w: f64,
        mean_baseline_w: f64,
    ) -> Result<AppliedAdjustment, MvError> {
        let (value, uncapped) = match self.kind {
            AdjustmentKind::None => (AdjustmentValue::None, AdjustmentValue::None),
            AdjustmentKind::Multiplicative => {
                let raw = if mean_baseline_w == 0.0 && mean_actual_w == 0.0 {
                    1.0
                } else if mean_baseline_w <= 0.0 {
                    return Err(MvError::AdjustmentUndefined {
                        window,
                        reason: "the baseline's mean over the window is not positive, so a ratio is undefined",
                    });
                } else {
                    mean_actual_w / mean_baseline_w
                };
                let f = match self.cap {
                    Some(c) => raw.clamp(1.0 - c, 1.0 + c),
                    None => raw,
                };
                (AdjustmentValue::Factor(f), AdjustmentValue::Factor(raw))
            }
            AdjustmentKind::Additive => {
                let raw = mean_actual_w - mean_baseline_w;
                let a = match self.cap {
                    Some(c) => {
                        let bound = c * mean_baseline_w.abs();
                        raw.clamp(-bound, bound)
                    }
                    None => raw,
                };
                (
                    AdjustmentValue::Offset(Power::watts(a)?),
                    AdjustmentValue::Offset(Power::watts(raw)?),
                )
            }
        };
        Ok(AppliedAdjustment {
            kind: self.kind,
            window: (self.kind != AdjustmentKind::None).then_some(window),
            capped: value != uncapped,
            value,
            uncapped,
        })
    }
}

fn hours(h: f64) -> TimeDelta {
    // Rounded to whole seconds; non-finite or huge input becomes zero and fails validation.
    let s = (h * 3600.0).round();
    if s.is_finite() && s.abs() < 1e12 {
        TimeDelta::seconds(s as i64)
    } else {
        TimeDelta::zero()
    }
}

/// The value of an adjustment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentValue {
    /// No adjustment.
    None,
    /// A multiplicative factor.
    Factor(f64),
    /// An additive offset.
    Offset(Power),
}

impl AdjustmentValue {
    /// Applies the value to a baseline; a factor that scales it beyond what a power
    /// can hold is an error, never zero.
    pub fn apply(self, baseline: Power) -> Result<Power, MvError> {
        Ok(match self {
            AdjustmentValue::None => baseline,
            AdjustmentValue::Factor(f) => Power::watts(baseline.as_watts() * f)?,
            AdjustmentValue::Offset(a) => baseline + a,
        })
    }

    /// The value as a plain number: the factor, the offset in kW, or 0 for none.
    pub fn as_number(self) -> f64 {
        match self {
            AdjustmentValue::None => 0.0,
            AdjustmentValue::Factor(f) => f,
            AdjustmentValue::Offset(a) => a.as_kilowatts(),
        }
    }
}

/// The adjustment a baseline calculation applied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AppliedAdjustment {
    /// The form.
    pub kind: AdjustmentKind,
    /// The window W on the event day, when there is one.
    pub window: Option<Interval>,
    /// The value applied (after the cap).
    pub value: AdjustmentValue,
    /// The value before the cap.
    pub uncapped: AdjustmentValue,
    /// Whether the cap bound (the applied value differs from the uncapped one).
    pub capped: bool,
}

impl AppliedAdjustment {
    /// No adjustment applied.
    pub const NONE: Self = Self {
        kind: AdjustmentKind::None,
        window: None,
        value: AdjustmentValue::None,
        uncapped: AdjustmentValue::None,
        capped: false,
    };
}
