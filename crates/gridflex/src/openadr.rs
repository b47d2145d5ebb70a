//! The OpenADR 3.1 VEN ([`gridflex_openadr`], re-exported whole), and the one piece that
//! needs this crate: filling a [`ReportInput`] from an ended event's
//! [`EventReport`](crate::report::EventReport) and the recorded meter, with the baseline of `gridflex-mv` (MBMA,
//! the method the orchestrator's own delivery figures use).

pub use gridflex_openadr::*;

use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::{Interval, IntervalSeries, MarketZone, Power};
use gridflex_mv::{Baseline, Calendar, Meter};

use crate::GridflexError;
use crate::program::Cause;

/// The report input of an event that came from an OpenADR dispatch (its cause is a
/// dispatch with the id `{eventID}/{intervalID}`; pass an [`EventReport`](crate::report::EventReport)'s `cause` and
/// `window`): per meter interval over the event window (rounded out to
/// the meter's grid), the metered usage and the MBMA baseline computed by
/// `gridflex-mv` on `meter`. `None` when the event did not come from OpenADR.
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex::core::{Interval, IntervalSeries, MarketZone, Power};
/// use gridflex::openadr::report_input;
/// use gridflex::program::Cause;
/// use gridflex::signals::{Market, Program};
///
/// let t0 = Utc.with_ymd_and_hms(2026, 7, 1, 18, 0, 0).unwrap();
/// let kw = |v: f64| Power::kilowatts(v).unwrap();
/// // 10 kW metered, 6 kW during the event from 18:10 to 18:20.
/// let values = (0..6).map(|k| Some(if k >= 2 && k < 4 { kw(6.0) } else { kw(10.0) })).collect();
/// let meter = IntervalSeries::new(t0, TimeDelta::minutes(5), values)?;
/// let cause = Cause::Dispatch {
///     id: "evt-1/0".into(),
///     program: Program::Custom { name: "peak".into(), market: Market::Caiso },
/// };
/// let window = Interval::new(t0 + TimeDelta::minutes(10), t0 + TimeDelta::minutes(20))?;
/// let input = report_input(&cause, window, &meter, MarketZone::Caiso, "site-meter")?.unwrap();
/// assert_eq!(input.event_id, "evt-1");
/// assert_eq!(input.intervals.len(), 2);
/// assert_eq!(input.intervals[0].delivered(), Some(kw(4.0)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn report_input(
    cause: &Cause,
    window: Interval,
    meter: &IntervalSeries<Power>,
    zone: MarketZone,
    resource_name: &str,
) -> Result<Option<ReportInput>, GridflexError> {
    let Cause::Dispatch { id, .. } = cause else {
        return Ok(None);
    };
    let Some(event_id) = mapping::event_id_of(id) else {
        return Ok(None);
    };
    let step = meter.step();
    let origin = meter.start();
    let snap = |t: DateTime<Utc>, up: bool| {
        let step_ns = step.num_nanoseconds().unwrap_or(1).max(1);
        let off = (t - origin).num_nanoseconds().unwrap_or(0);
        let k = off.div_euclid(step_ns) + i64::from(up && off.rem_euclid(step_ns) != 0);
        origin + TimeDelta::nanoseconds(k * step_ns)
    };
    let window = Interval::new(snap(window.start(), false), snap(window.end(), true))?;
    let result = Baseline::meter_before_meter_after().compute(
        &Meter::new(meter.clone(), zone)?,
        &Calendar::new(zone),
        window,
    )?;
    let intervals = result
        .intervals
        .iter()
        .map(|i| ReportInterval::new(i.interval, i.actual, Some(i.baseline)))
        .collect();
    let mut input = ReportInput::new(event_id, resource_name, intervals);
    input.report_name = Some("gridflex MBMA".into());
    Ok(Some(input))
}
