//! The planner's rules on the shared throughput curve.
//!
//! [`ThroughputCurve`] and [`WorkloadKind`] live in `gridflex-core` (one vocabulary for
//! the planner and the simulator). The planner needs more of a curve than the core
//! checks: x in `(0, 1]` ending at `(1, 1)` (a job at its uncapped draw keeps all its
//! throughput) and concave, which is what makes its greedy allocation exact
//! (`docs/planner.md`, "Method"). [`validate_curve`] checks that; [`concave_curve`]
//! builds a curve and checks it in one step.

use gridflex_core::workload::CURVE_TOL;
pub use gridflex_core::workload::{ThroughputCurve, WorkloadKind};

use crate::PlannerError;

/// Builds a curve from points and checks the planner's rules (see [`validate_curve`]).
///
/// ```
/// use gridflex_planner::concave_curve;
/// let c = concave_curve(vec![(0.5, 0.7), (1.0, 1.0)])?;
/// assert!((c.throughput_at(0.75) - 0.85).abs() < 1e-12);
/// assert!(concave_curve(vec![(0.5, 0.2), (0.75, 0.3), (1.0, 1.0)]).is_err()); // not concave
/// # Ok::<(), gridflex_planner::PlannerError>(())
/// ```
pub fn concave_curve(points: Vec<(f64, f64)>) -> Result<ThroughputCurve, PlannerError> {
    let curve = ThroughputCurve::new(points).map_err(|e| match e {
        gridflex_core::CoreError::InvalidCurve {
            point: Some(i),
            reason,
        } => PlannerError::invalid(format!("points[{i}]"), reason),
        gridflex_core::CoreError::InvalidCurve {
            point: None,
            reason,
        } => PlannerError::invalid("points", reason),
        other => PlannerError::invalid("points", other.to_string()),
    })?;
    validate_curve(&curve)?;
    Ok(curve)
}

/// The planner's rules on top of the core's: every x in `(0, 1]`, the last point
/// exactly `(1, 1)`, slopes non-increasing (concave). Errors name the point.
pub fn validate_curve(curve: &ThroughputCurve) -> Result<(), PlannerError> {
    let points = curve.points();
    let bad = |i: usize, reason: String| Err(PlannerError::invalid(format!("points[{i}]"), reason));
    for (i, &(x, _)) in points.iter().enumerate() {
        if !(x > 0.0 && x <= 1.0) {
            return bad(i, format!("power fraction must be in (0, 1], got {x}"));
        }
    }
    let last = points.len().saturating_sub(1);
    if points.get(last) != Some(&(1.0, 1.0)) {
        return bad(
            last,
            format!("the last point must be (1, 1), got {:?}", points.get(last)),
        );
    }
    let mut prev_slope = f64::INFINITY;
    for i in 1..points.len() {
        let (a, b) = (points[i - 1], points[i]);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_meet_the_planner_rules() {
        for k in WorkloadKind::ALL {
            assert!(validate_curve(&k.default_curve()).is_ok(), "{k:?}");
        }
    }

    #[test]
    fn rejects_bad_curves_naming_the_point() {
        let e = concave_curve(vec![(0.5, 0.5), (0.9, 1.0)]).unwrap_err();
        assert_eq!(e.field(), Some("points[1]"));
        let e = concave_curve(vec![(0.0, 0.0), (1.0, 1.0)]).unwrap_err();
        assert_eq!(e.field(), Some("points[0]"));
        let e = concave_curve(vec![(0.5, 0.9), (0.6, 0.8), (1.0, 1.0)]).unwrap_err();
        assert_eq!(e.field(), Some("points[1]"));
        let e = concave_curve(vec![(1.0, 1.0)]).unwrap_err();
        assert_eq!(e.field(), Some("points"));
        assert!(concave_curve(vec![(0.5, f64::NAN), (1.0, 1.0)]).is_err());
        let e = concave_curve(vec![(0.5, 0.2), (0.75, 0.3), (1.0, 1.0)]).unwrap_err();
        assert_eq!(e.field(), Some("points[2]"));
    }
}
