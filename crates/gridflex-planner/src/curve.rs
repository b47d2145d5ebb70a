//! Throughput-versus-power curves: how much of a job's work survives a power cap.
//!
//! A curve maps the fraction of a job's uncapped per-GPU draw it is allowed (x) to the
//! fraction of its uncapped throughput it keeps (y). It is piecewise linear through
//! validated points, ends at `(1, 1)`, never decreases and is concave, which is what
//! makes the planner's greedy allocation exact (`docs/planner.md`, "Method").
//!
//! The defaults per [`WorkloadKind`] come from `reference/gpu-power.md` section 4,
//! table A (A100 LLM sweep, mean column) and its suggested shift per workload
//! (pretraining about -0.08 at half power, inference and fine-tuning about +0.08).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::PlannerError;

/// A workload kind with a default throughput curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WorkloadKind {
    /// Mixed LLM work: the mean column of the A100 sweep.
    Generic,
    /// Pretraining: the most cap-sensitive (about 0.63 at half power).
    Pretraining,
    /// Fine-tuning: flatter (about 0.79 at half power).
    FineTuning,
    /// Inference: as fine-tuning (about 0.79 at half power).
    Inference,
}

/// Generic: `reference/gpu-power.md` section 4 A, mean column, and the "suggested
/// SimGpu defaults" line of the same section.
const GENERIC: [(f64, f64); 6] = [
    (0.25, 0.21),
    (0.5, 0.71),
    (0.625, 0.83),
    (0.75, 0.90),
    (0.875, 0.95),
    (1.0, 1.0),
];
/// Pretraining: -0.08 at 0.5 as section 4 suggests, tapered toward both ends so the
/// curve stays concave (the raw min column is not concave near 1.0).
const PRETRAINING: [(f64, f64); 6] = [
    (0.25, 0.19),
    (0.5, 0.63),
    (0.625, 0.78),
    (0.75, 0.87),
    (0.875, 0.94),
    (1.0, 1.0),
];
/// Inference and fine-tuning: +0.08 at 0.5, toward the max column of table A.
const INFERENCE: [(f64, f64); 6] = [
    (0.25, 0.23),
    (0.5, 0.79),
    (0.625, 0.88),
    (0.75, 0.93),
    (0.875, 0.97),
    (1.0, 1.0),
];

/// Slack allowed in the concavity and monotonicity checks, for curves typed in decimal.
const CURVE_TOL: f64 = 1e-9;

/// A concave, non-decreasing, piecewise-linear throughput curve ending at `(1, 1)`.
///
/// ```
/// use gridflex_planner::{ThroughputCurve, WorkloadKind};
/// let c = ThroughputCurve::new(vec![(0.5, 0.7), (1.0, 1.0)])?;
/// assert!((c.throughput_at(0.75) - 0.85).abs() < 1e-12);
/// assert!(ThroughputCurve::new(vec![(0.5, 0.2), (0.75, 0.3), (1.0, 1.0)]).is_err()); // not concave
/// let d = ThroughputCurve::default_for(WorkloadKind::Pretraining);
/// assert!((d.throughput_at(0.5) - 0.63).abs() < 1e-12);
/// # Ok::<(), gridflex_planner::PlannerError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ThroughputCurve {
    points: Vec<(f64, f64)>,
    kind: Option<WorkloadKind>,
}

impl ThroughputCurve {
    /// Validates points `(power fraction, throughput fraction)`: at least two, x strictly
    /// increasing in `(0, 1]` and ending at exactly 1, y in `[0, 1]`, ending at 1,
    /// non-decreasing, with non-increasing slopes (concave).
    pub fn new(points: Vec<(f64, f64)>) -> Result<Self, PlannerError> {
        validate(&points)?;
        Ok(Self { points, kind: None })
    }

    /// The default curve for a workload kind (`reference/gpu-power.md` section 4).
    pub fn default_for(kind: WorkloadKind) -> Self {
        let pts: &[(f64, f64)] = match kind {
            WorkloadKind::Generic => &GENERIC,
            WorkloadKind::Pretraining => &PRETRAINING,
            WorkloadKind::FineTuning | WorkloadKind::Inference => &INFERENCE,
        };
        Self {
            points: pts.to_vec(),
            kind: Some(kind),
        }
    }

    /// The points, lowest power first.
    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    /// The workload kind this default curve came from, if it is a default.
    pub fn kind(&self) -> Option<WorkloadKind> {
        self.kind
    }

    /// The smallest power fraction the curve describes; the planner never caps below it.
    pub fn min_fraction(&self) -> f64 {
        self.points.first().map_or(1.0, |p| p.0)
    }

    /// Throughput fraction at power fraction `x`, clamped to the curve's domain.
    pub fn throughput_at(&self, x: f64) -> f64 {
        let pts = &self.points;
        let Some(&(x0, y0)) = pts.first() else {
            return 1.0;
        };
        if x <= x0 {
            return y0;
        }
        for w in pts.windows(2) {
            let (a, b) = (w[0], w[1]);
            if x <= b.0 {
                return a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0);
            }
        }
        1.0
    }

    /// The smallest power fraction whose throughput reaches `y` (the inverse of the curve
    /// on its increasing part); `y` at or below the first point gives the first x.
    pub fn fraction_for(&self, y: f64) -> f64 {
        let pts = &self.points;
        let Some(&(x0, y0)) = pts.first() else {
            return 1.0;
        };
        if y <= y0 {
            return x0;
        }
        for w in pts.windows(2) {
            let (a, b) = (w[0], w[1]);
            if y <= b.1 && b.1 > a.1 {
                return a.0 + (b.0 - a.0) * (y - a.1) / (b.1 - a.1);
            }
        }
        1.0
    }
}

impl Default for ThroughputCurve {
    fn default() -> Self {
        Self::default_for(WorkloadKind::Generic)
    }
}

fn validate(points: &[(f64, f64)]) -> Result<(), PlannerError> {
    let bad = |i: usize, reason: String| Err(PlannerError::invalid(format!("points[{i}]"), reason));
    if points.len() < 2 {
        return Err(PlannerError::invalid(
            "points",
            format!("a curve needs at least 2 points, got {}", points.len()),
        ));
    }
    for (i, &(x, y)) in points.iter().enumerate() {
        if !(x.is_finite() && x > 0.0 && x <= 1.0) {
            return bad(i, format!("power fraction must be in (0, 1], got {x}"));
        }
        if !(y.is_finite() && (0.0..=1.0).contains(&y)) {
            return bad(i, format!("throughput fraction must be in [0, 1], got {y}"));
        }
    }
    let last = points.len() - 1;
    if points[last] != (1.0, 1.0) {
        return bad(
            last,
            format!("the last point must be (1, 1), got {:?}", points[last]),
        );
    }
    let mut prev_slope = f64::INFINITY;
    for i in 1..points.len() {
        let (a, b) = (points[i - 1], points[i]);
        if b.0 <= a.0 {
            return bad(
                i,
                format!("power fractions must increase, {} <= {}", b.0, a.0),
            );
        }
        if b.1 < a.1 - CURVE_TOL {
            return bad(
                i,
                format!("throughput must not decrease, {} < {}", b.1, a.1),
            );
        }
        let slope = (b.1 - a.1) / (b.0 - a.0);
        if slope > prev_slope + CURVE_TOL {
            return bad(
                i,
                format!(
                    "curve must be concave: slope {slope:.6} after slope {prev_slope:.6} increases"
                ),
            );
        }
        prev_slope = slope;
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RawCurve {
    Kind(WorkloadKind),
    Points(Vec<(f64, f64)>),
}

/// A default curve is written as its kind name (`"pretraining"`), any other as its
/// list of `[x, y]` points.
impl Serialize for ThroughputCurve {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.kind {
            Some(k) => k.serialize(s),
            None => self.points.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ThroughputCurve {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match RawCurve::deserialize(d)? {
            RawCurve::Kind(k) => Ok(Self::default_for(k)),
            RawCurve::Points(p) => {
                ThroughputCurve::new(p).map_err(|e| serde::de::Error::custom(e.within("curve")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        for k in [
            WorkloadKind::Generic,
            WorkloadKind::Pretraining,
            WorkloadKind::FineTuning,
            WorkloadKind::Inference,
        ] {
            let c = ThroughputCurve::default_for(k);
            assert!(validate(c.points()).is_ok(), "{k:?}");
        }
    }

    #[test]
    fn interpolation_and_inverse() {
        let c = ThroughputCurve::default();
        assert!((c.throughput_at(0.5) - 0.71).abs() < 1e-12);
        assert!((c.throughput_at(0.5625) - 0.77).abs() < 1e-12);
        assert_eq!(c.throughput_at(0.1), 0.21);
        assert_eq!(c.throughput_at(1.0), 1.0);
        for y in [0.21, 0.3, 0.71, 0.8, 0.95, 1.0] {
            let x = c.fraction_for(y);
            assert!((c.throughput_at(x) - y).abs() < 1e-12, "{y}");
        }
    }

    #[test]
    fn rejects_bad_curves_naming_the_point() {
        let e = ThroughputCurve::new(vec![(0.5, 0.5), (0.9, 1.0)]).unwrap_err();
        assert_eq!(e.field(), Some("points[1]"));
        let e = ThroughputCurve::new(vec![(0.0, 0.0), (1.0, 1.0)]).unwrap_err();
        assert_eq!(e.field(), Some("points[0]"));
        let e = ThroughputCurve::new(vec![(0.5, 0.9), (0.6, 0.8), (1.0, 1.0)]).unwrap_err();
        assert_eq!(e.field(), Some("points[1]"));
        let e = ThroughputCurve::new(vec![(1.0, 1.0)]).unwrap_err();
        assert_eq!(e.field(), Some("points"));
        assert!(ThroughputCurve::new(vec![(0.5, f64::NAN), (1.0, 1.0)]).is_err());
    }

    #[test]
    fn serde_round_trip() {
        let c = ThroughputCurve::default_for(WorkloadKind::Inference);
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(s, "\"inference\"");
        assert_eq!(serde_json::from_str::<ThroughputCurve>(&s).unwrap(), c);
        let p: ThroughputCurve = serde_json::from_str("[[0.5,0.8],[1,1]]").unwrap();
        assert_eq!(p.points(), &[(0.5, 0.8), (1.0, 1.0)]);
        assert!(serde_json::from_str::<ThroughputCurve>("[[0.5,0.2],[0.7,0.3],[1,1]]").is_err());
    }
}
