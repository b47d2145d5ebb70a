//! The workload vocabulary every crate shares: [`WorkloadKind`] and
//! [`ThroughputCurve`], how much of a job's work survives a power cap.
//!
//! A curve maps x, the power a job is allowed as a fraction of its uncapped draw, to
//! y, the fraction of its uncapped throughput it keeps. The planner reads x as a cap
//! over the job's uncapped per-GPU draw; the simulator reads it as the cap over the
//! workload's uncapped draw, `min(demand, device maximum limit)`: the same axis. Both
//! evaluate it with the one interpolation here, [`interpolate`].
//!
//! The defaults per kind come from `reference/gpu-power.md` section 4, table A (A100
//! LLM sweep, mean column) and its suggested shift per workload (pretraining about
//! -0.08 at half power, inference and fine-tuning about +0.08), tapered so every default
//! is concave, which the planner's greedy allocation needs (`docs/planner.md`).
//!
//! ```
//! use gridflex_core::workload::{ThroughputCurve, WorkloadKind};
//! let c = ThroughputCurve::new(vec![(0.5, 0.7), (1.0, 1.0)])?;
//! assert!((c.throughput_at(0.75) - 0.85).abs() < 1e-12);
//! let d = WorkloadKind::Pretraining.default_curve();
//! assert!((d.throughput_at(0.5) - 0.63).abs() < 1e-12);
//! assert_eq!(serde_json::to_string(&d)?, "\"pretraining\"");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::CoreError;

/// The most points a curve may have (a bound on memory for curves read from input).
pub const MAX_CURVE_POINTS: usize = 64;

/// Slack allowed when checking that throughput does not fall, for curves typed in decimal.
pub const CURVE_TOL: f64 = 1e-9;

/// The kind of work a job runs: picks its default throughput curve and, on a simulated
/// GPU, its default uncapped draw. Serde names: `"generic"`, `"pretraining"`,
/// `"fine_tuning"`, `"inference"`, `"matmul"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WorkloadKind {
    /// Mixed LLM work (generic training): the mean column of the A100 sweep, 0.71 at
    /// half power.
    Generic,
    /// Pretraining: the most cap-sensitive (0.63 at half power).
    Pretraining,
    /// Fine-tuning: flatter (0.79 at half power).
    FineTuning,
    /// Inference: as fine-tuning (0.79 at half power), with a lower uncapped draw.
    Inference,
    /// The calibration load (a bf16 8192x8192 matmul loop): draws more than the 700 W
    /// cap; the pretraining curve.
    Matmul,
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

impl WorkloadKind {
    /// Every kind.
    pub const ALL: [WorkloadKind; 5] = [
        Self::Generic,
        Self::Pretraining,
        Self::FineTuning,
        Self::Inference,
        Self::Matmul,
    ];

    /// The default throughput curve of this kind.
    pub fn default_curve(self) -> ThroughputCurve {
        let points: &[(f64, f64)] = match self {
            Self::Generic => &GENERIC,
            Self::Pretraining | Self::Matmul => &PRETRAINING,
            Self::FineTuning | Self::Inference => &INFERENCE,
        };
        ThroughputCurve {
            points: points.to_vec(),
            kind: Some(self),
        }
    }

    /// The default uncapped draw as a fraction of a GPU's maximum power limit.
    ///
    /// Training kinds: 0.86 to 0.97 x TDP (gpu-power.md 4.A, A100 drawn power at an
    /// unbinding cap); inference 600 W of 700 (ML.ENERGY v3 H100 decode at batch 128,
    /// gpu-power.md 4.C); matmul above the cap (calibration: it runs into the 700 W cap,
    /// resuming at 720 to 760 W).
    pub fn default_demand_fraction(self) -> f64 {
        match self {
            Self::Generic => 0.92,
            Self::Pretraining => 0.97,
            Self::FineTuning => 0.86,
            Self::Inference => 600.0 / 700.0,
            Self::Matmul => 760.0 / 700.0,
        }
    }
}

/// A non-decreasing piecewise-linear throughput curve through validated points.
///
/// Below the first point and above the last, [`throughput_at`](Self::throughput_at)
/// holds the end values; a consumer that needs another behaviour there (the simulator
/// going to zero throughput at zero power) adapts it at its edge. Stricter rules (the
/// planner's concavity and ending at `(1, 1)`) are checked by the crate that needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct ThroughputCurve {
    points: Vec<(f64, f64)>,
    kind: Option<WorkloadKind>,
}

impl ThroughputCurve {
    /// Validates points `(power fraction, throughput fraction)`: 2 to
    /// [`MAX_CURVE_POINTS`] of them, x finite in `[0, 2]` and strictly increasing, y in
    /// `[0, 1]` and non-decreasing. Errors name the point (`points[1]`).
    pub fn new(points: Vec<(f64, f64)>) -> Result<Self, CoreError> {
        let bad =
            |point: Option<usize>, reason: String| Err(CoreError::InvalidCurve { point, reason });
        if points.len() < 2 || points.len() > MAX_CURVE_POINTS {
            return bad(
                None,
                format!(
                    "a curve needs 2 to {MAX_CURVE_POINTS} points, got {}",
                    points.len()
                ),
            );
        }
        for (i, &(x, y)) in points.iter().enumerate() {
            if !(x.is_finite() && (0.0..=2.0).contains(&x)) {
                return bad(
                    Some(i),
                    format!("power fraction must be in [0, 2], got {x}"),
                );
            }
            if !(y.is_finite() && (0.0..=1.0).contains(&y)) {
                return bad(
                    Some(i),
                    format!("throughput fraction must be in [0, 1], got {y}"),
                );
            }
            if i > 0 {
                let (px, py) = points[i - 1];
                if x <= px {
                    return bad(
                        Some(i),
                        format!("power fractions must increase, {x} <= {px}"),
                    );
                }
                if y < py - CURVE_TOL {
                    return bad(Some(i), format!("throughput must not decrease, {y} < {py}"));
                }
            }
        }
        Ok(Self { points, kind: None })
    }

    /// The points, lowest power first.
    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    /// The workload kind this curve is the default of, if it is a default.
    pub fn kind(&self) -> Option<WorkloadKind> {
        self.kind
    }

    /// The smallest power fraction the curve describes.
    pub fn min_fraction(&self) -> f64 {
        self.points.first().map_or(1.0, |p| p.0)
    }

    /// Throughput fraction at power fraction `x`, the end values held outside the
    /// curve's domain (see [`interpolate`]).
    pub fn throughput_at(&self, x: f64) -> f64 {
        interpolate(&self.points, x)
    }

    /// The smallest power fraction whose throughput reaches `y` (the inverse of the curve
    /// on its increasing part); `y` at or below the first point gives the first x, above
    /// the last the last x.
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
        pts.last().map_or(1.0, |p| p.0)
    }
}

impl Default for ThroughputCurve {
    /// The generic curve.
    fn default() -> Self {
        WorkloadKind::Generic.default_curve()
    }
}

/// Linear interpolation through points sorted by x; below the first x the first y,
/// above the last x the last y (a NaN `x` gives the first y). With no points, 1.
///
/// ```
/// use gridflex_core::workload::interpolate;
/// let pts = [(1.0, 10.0), (3.0, 30.0)];
/// assert_eq!(interpolate(&pts, 2.0), 20.0);
/// assert_eq!(interpolate(&pts, 0.0), 10.0);
/// assert_eq!(interpolate(&pts, 9.0), 30.0);
/// ```
pub fn interpolate(points: &[(f64, f64)], x: f64) -> f64 {
    let Some(&(x0, y0)) = points.first() else {
        return 1.0;
    };
    if x.is_nan() || x <= x0 {
        return y0;
    }
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        if x <= b.0 {
            return a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0);
        }
    }
    points.last().map_or(1.0, |p| p.1)
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
            RawCurve::Kind(k) => Ok(k.default_curve()),
            RawCurve::Points(p) => ThroughputCurve::new(p).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_reference_table() {
        for k in WorkloadKind::ALL {
            let c = k.default_curve();
            assert!(ThroughputCurve::new(c.points().to_vec()).is_ok(), "{k:?}");
            assert_eq!(c.kind(), Some(k));
        }
        let at_half = |k: WorkloadKind| k.default_curve().throughput_at(0.5);
        assert!((at_half(WorkloadKind::Generic) - 0.71).abs() < 1e-12);
        assert!((at_half(WorkloadKind::Pretraining) - 0.63).abs() < 1e-12);
        assert!((at_half(WorkloadKind::Inference) - 0.79).abs() < 1e-12);
        // Inference is flatter than generic work everywhere below full power.
        for i in 0..=20 {
            let x = f64::from(i) / 20.0;
            assert!(
                WorkloadKind::Inference.default_curve().throughput_at(x)
                    >= WorkloadKind::Generic.default_curve().throughput_at(x)
            );
        }
    }

    #[test]
    fn interpolation_and_inverse() {
        let c = ThroughputCurve::default();
        assert!((c.throughput_at(0.5) - 0.71).abs() < 1e-12);
        assert!((c.throughput_at(0.5625) - 0.77).abs() < 1e-12);
        assert_eq!(c.throughput_at(0.1), 0.21);
        assert_eq!(c.throughput_at(1.0), 1.0);
        assert_eq!(c.throughput_at(1.5), 1.0);
        for y in [0.21, 0.3, 0.71, 0.8, 0.95, 1.0] {
            let x = c.fraction_for(y);
            assert!((c.throughput_at(x) - y).abs() < 1e-12, "{y}");
        }
    }

    #[test]
    fn rejects_bad_points_naming_them() {
        let point = |pts: Vec<(f64, f64)>| match ThroughputCurve::new(pts) {
            Err(CoreError::InvalidCurve { point, .. }) => point,
            other => panic!("{other:?}"),
        };
        assert_eq!(point(vec![(0.5, 0.5)]), None);
        assert_eq!(point(vec![(0.5, 0.5), (0.5, 0.6)]), Some(1));
        assert_eq!(point(vec![(0.0, 0.0), (1.0, 1.5)]), Some(1));
        assert_eq!(point(vec![(f64::NAN, 0.0), (1.0, 1.0)]), Some(0));
        assert_eq!(point(vec![(0.5, 0.9), (1.0, 0.8)]), Some(1));
        assert_eq!(point(vec![(0.0, 0.0); MAX_CURVE_POINTS + 1]), None);
    }

    #[test]
    fn serde_round_trip() {
        let c = WorkloadKind::Inference.default_curve();
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(s, "\"inference\"");
        assert_eq!(serde_json::from_str::<ThroughputCurve>(&s).unwrap(), c);
        let p: ThroughputCurve = serde_json::from_str("[[0.5,0.8],[1,1]]").unwrap();
        assert_eq!(p.points(), &[(0.5, 0.8), (1.0, 1.0)]);
        assert!(serde_json::from_str::<ThroughputCurve>("[[0.5,0.9],[0.7,0.3]]").is_err());
        for k in WorkloadKind::ALL {
            let s = serde_json::to_string(&k).unwrap();
            assert_eq!(serde_json::from_str::<WorkloadKind>(&s).unwrap(), k);
        }
    }

    proptest::proptest! {
        #[test]
        fn monotone_and_bounded(a in -1.0f64..3.0, b in -1.0f64..3.0) {
            for k in WorkloadKind::ALL {
                let c = k.default_curve();
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                proptest::prop_assert!(c.throughput_at(lo) <= c.throughput_at(hi));
                proptest::prop_assert!((0.0..=1.0).contains(&c.throughput_at(a)));
            }
        }
    }
}
