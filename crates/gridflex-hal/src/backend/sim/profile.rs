//! What a simulated GPU runs: [`WorkloadProfile`], and how the simulator reads a
//! throughput curve outside its points.
//!
//! The kinds and curves are the shared ones of `gridflex-core` ([`WorkloadKind`],
//! [`ThroughputCurve`]), on the same axis as the planner's: the cap as a fraction of
//! the workload's uncapped draw (its demand, at most the device's maximum limit). The
//! default curves are the planner's (`reference/gpu-power.md` section 4.A).

use gridflex_core::Power;
pub use gridflex_core::workload::{ThroughputCurve, WorkloadKind};

/// The simulator's reading of a curve at cap fraction `x`: the curve inside its
/// points; from its first point straight down to zero throughput at zero power (a GPU
/// with no power does no work; the curves start at a quarter of the draw); the last
/// value above its last point (a cap above the draw binds nothing). NaN gives zero.
pub(crate) fn throughput_at_cap(curve: &ThroughputCurve, x: f64) -> f64 {
    let (x0, y0) = curve.points().first().copied().unwrap_or((0.0, 0.0));
    if x.is_nan() || x <= 0.0 {
        0.0
    } else if x < x0 {
        y0 * x / x0
    } else {
        curve.throughput_at(x)
    }
}

/// A workload on a simulated GPU: its kind, uncapped draw and throughput curve.
#[derive(Debug, Clone, PartialEq)]
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
    fn the_adapter_goes_to_zero_below_the_curve_and_holds_above() {
        let c = WorkloadKind::Generic.default_curve();
        assert_eq!(throughput_at_cap(&c, 0.0), 0.0);
        assert!((throughput_at_cap(&c, 0.125) - 0.105).abs() < 1e-12);
        assert!((throughput_at_cap(&c, 0.5) - 0.71).abs() < 1e-12);
        assert_eq!(throughput_at_cap(&c, 1.5), 1.0);
        assert_eq!(throughput_at_cap(&c, f64::NAN), 0.0);
    }

    proptest! {
        #[test]
        fn monotone_and_bounded(a in -1.0f64..3.0, b in -1.0f64..3.0) {
            for k in WorkloadKind::ALL {
                let c = k.default_curve();
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                prop_assert!(throughput_at_cap(&c, lo) <= throughput_at_cap(&c, hi));
                prop_assert!((0.0..=1.0).contains(&throughput_at_cap(&c, a)));
            }
        }
    }
}
