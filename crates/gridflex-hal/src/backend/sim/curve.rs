//! Throughput as a function of the power cap, per workload kind: [`ThroughputCurve`],
//! [`WorkloadKind`] and [`WorkloadProfile`].
//!
//! Defaults come from `reference/gpu-power.md` section 4.A (Emerald AI `dvfs_sweep.csv`,
//! A100-SXM 400 W, five LLM workloads): the cap is expressed as a fraction of the
//! workload's uncapped draw (at most the device's maximum limit), the throughput as a
//! fraction of uncapped throughput.

use gridflex_core::Power;

use crate::HalError;

const MAX_POINTS: usize = 8;

/// A monotone piecewise-linear map from cap fraction (cap / uncapped draw) to throughput
/// fraction. Below the first point and above the last the end values hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThroughputCurve {
    points: [(f64, f64); MAX_POINTS],
    len: usize,
}

impl ThroughputCurve {
    /// Builds a curve from 2 to 8 `(cap_fraction, throughput_fraction)` points with
    /// strictly increasing cap fractions in `0 ..= 2` and non-decreasing throughput
    /// fractions in `0 ..= 1`.
    ///
    /// ```
    /// use gridflex_hal::sim::ThroughputCurve;
    /// let c = ThroughputCurve::new(&[(0.0, 0.0), (0.5, 0.71), (1.0, 1.0)])?;
    /// assert!((c.at(0.75) - 0.855).abs() < 1e-12);
    /// assert!(ThroughputCurve::new(&[(0.5, 0.9), (1.0, 0.8)]).is_err()); // decreasing
    /// # Ok::<(), gridflex_hal::HalError>(())
    /// ```
    pub fn new(points: &[(f64, f64)]) -> Result<Self, HalError> {
        let bad = |reason: String| HalError::InvalidConfig {
            field: "throughput curve",
            reason,
        };
        if points.len() < 2 || points.len() > MAX_POINTS {
            return Err(bad(format!(
                "needs 2 to {MAX_POINTS} points, got {}",
                points.len()
            )));
        }
        for (i, &(x, y)) in points.iter().enumerate() {
            if !(0.0..=2.0).contains(&x) || !(0.0..=1.0).contains(&y) {
                return Err(bad(format!(
                    "point {i} ({x}, {y}) is outside cap 0..=2, throughput 0..=1"
                )));
            }
            if i > 0 {
                let (px, py) = points[i - 1];
                if x <= px || y < py {
                    return Err(bad(format!(
                        "point {i} ({x}, {y}) does not follow ({px}, {py}): caps must increase and throughput must not fall"
                    )));
                }
            }
        }
        let mut arr = [(0.0, 0.0); MAX_POINTS];
        arr[..points.len()].copy_from_slice(points);
        Ok(Self {
            points: arr,
            len: points.len(),
        })
    }

    /// The throughput fraction at a cap fraction.
    pub fn at(&self, cap_fraction: f64) -> f64 {
        let pts = &self.points[..self.len];
        let (first, last) = (pts[0], pts[self.len - 1]);
        if cap_fraction.is_nan() || cap_fraction <= first.0 {
            return first.1;
        }
        if cap_fraction >= last.0 {
            return last.1;
        }
        for w in pts.windows(2) {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            if cap_fraction <= x1 {
                return y0 + (y1 - y0) * (cap_fraction - x0) / (x1 - x0);
            }
        }
        last.1
    }

    /// The points.
    pub fn points(&self) -> &[(f64, f64)] {
        &self.points[..self.len]
    }

    const fn fixed(points: [(f64, f64); 7]) -> Self {
        let mut arr = [(0.0, 0.0); MAX_POINTS];
        let mut i = 0;
        while i < 7 {
            arr[i] = points[i];
            i += 1;
        }
        Self {
            points: arr,
            len: 7,
        }
    }
}

/// Mean over the five LLM workloads (gpu-power.md 4.A, "mean" column): 0.71 at half power.
const LLM_MEAN: ThroughputCurve = ThroughputCurve::fixed([
    (0.0, 0.0),
    (0.25, 0.21),
    (0.5, 0.71),
    (0.625, 0.83),
    (0.75, 0.90),
    (0.875, 0.95),
    (1.0, 1.0),
]);
/// Most cap-sensitive (4.A "min" column; the pretraining jobs, 0.62 to 0.64 at half power).
const LLM_PRETRAIN: ThroughputCurve = ThroughputCurve::fixed([
    (0.0, 0.0),
    (0.25, 0.17),
    (0.5, 0.62),
    (0.625, 0.78),
    (0.75, 0.86),
    (0.875, 0.91),
    (1.0, 1.0),
]);
/// Flattest (4.A "max" column; fine-tuning and inference, 0.78 to 0.81 at half power).
const LLM_FLAT: ThroughputCurve = ThroughputCurve::fixed([
    (0.0, 0.0),
    (0.25, 0.24),
    (0.5, 0.81),
    (0.625, 0.90),
    (0.75, 0.95),
    (0.875, 0.98),
    (1.0, 1.0),
]);

/// The kind of work a simulated GPU runs; picks the default curve and uncapped draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WorkloadKind {
    /// Generic LLM training: the mean curve (0.71 at half power).
    LlmTraining,
    /// LLM pretraining: the most cap-sensitive curve (0.62 at half power).
    LlmPretraining,
    /// LLM fine-tuning: the flat curve (0.81 at half power).
    LlmFineTuning,
    /// LLM inference: the flat curve (0.81 at half power), lower uncapped draw.
    LlmInference,
    /// The calibration load (bf16 8192x8192 matmul loop): draws more than the 700 W cap.
    Matmul,
}

impl WorkloadKind {
    /// The default throughput curve of this kind.
    pub fn default_curve(self) -> ThroughputCurve {
        match self {
            Self::LlmTraining => LLM_MEAN,
            Self::LlmPretraining | Self::Matmul => LLM_PRETRAIN,
            Self::LlmFineTuning | Self::LlmInference => LLM_FLAT,
        }
    }

    /// The default uncapped draw as a fraction of the maximum limit.
    ///
    /// Training kinds: 0.86 to 0.97 x TDP (gpu-power.md 4.A, A100 drawn power at an
    /// unbinding cap); inference 600 W of 700 (ML.ENERGY v3 H100 decode at batch 128,
    /// gpu-power.md 4.C); matmul above the cap (calibration: it runs into the 700 W cap,
    /// resuming at 720 to 760 W).
    pub fn default_demand_fraction(self) -> f64 {
        match self {
            Self::LlmTraining => 0.92,
            Self::LlmPretraining => 0.97,
            Self::LlmFineTuning => 0.86,
            Self::LlmInference => 600.0 / 700.0,
            Self::Matmul => 760.0 / 700.0,
        }
    }
}

/// A workload on a simulated GPU: its kind, uncapped draw and throughput curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadProfile {
    /// The kind (a label; the curve and demand below are what the simulator uses).
    pub kind: WorkloadKind,
    /// Power the workload would draw with no cap binding. `None` uses the kind's default
    /// fraction of the GPU's maximum limit.
    pub demand: Option<Power>,
    /// Throughput as a function of the cap fraction.
    pub curve: ThroughputCurve,
}

impl WorkloadProfile {
    /// The defaults of a kind.
    pub fn of(kind: WorkloadKind) -> Self {
        Self {
            kind,
            demand: None,
            curve: kind.default_curve(),
        }
    }

    /// With an explicit uncapped draw.
    pub fn with_demand(mut self, demand: Power) -> Self {
        self.demand = Some(demand);
        self
    }

    /// With an explicit curve.
    pub fn with_curve(mut self, curve: ThroughputCurve) -> Self {
        self.curve = curve;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_match_the_reference_table() {
        assert!((WorkloadKind::LlmTraining.default_curve().at(0.5) - 0.71).abs() < 1e-12);
        assert!((WorkloadKind::LlmPretraining.default_curve().at(0.5) - 0.62).abs() < 1e-12);
        assert!((WorkloadKind::LlmInference.default_curve().at(0.5) - 0.81).abs() < 1e-12);
        // Inference is flatter than training everywhere below full power.
        for i in 0..=20 {
            let x = f64::from(i) / 20.0;
            let inf = WorkloadKind::LlmInference.default_curve().at(x);
            let tr = WorkloadKind::LlmTraining.default_curve().at(x);
            assert!(inf >= tr, "at {x}: {inf} < {tr}");
        }
        // The const curves satisfy the constructor's rules.
        for k in [
            WorkloadKind::LlmTraining,
            WorkloadKind::LlmPretraining,
            WorkloadKind::LlmInference,
        ] {
            assert!(ThroughputCurve::new(k.default_curve().points()).is_ok());
        }
    }

    #[test]
    fn rejects_bad_points() {
        assert!(ThroughputCurve::new(&[(0.5, 0.5)]).is_err());
        assert!(ThroughputCurve::new(&[(0.5, 0.5), (0.5, 0.6)]).is_err());
        assert!(ThroughputCurve::new(&[(0.0, 0.0), (1.0, 1.5)]).is_err());
        assert!(ThroughputCurve::new(&[(f64::NAN, 0.0), (1.0, 1.0)]).is_err());
        assert!(ThroughputCurve::new(&[(0.0, 0.0); 9]).is_err());
    }

    proptest! {
        #[test]
        fn monotone_and_bounded(a in -1.0f64..3.0, b in -1.0f64..3.0) {
            let c = WorkloadKind::LlmTraining.default_curve();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(c.at(lo) <= c.at(hi));
            prop_assert!((0.0..=1.0).contains(&c.at(a)));
        }
    }
}
