//! Meter Before / Meter After (CAISO PDR providing spinning and non-spinning reserve,
//! markets.md §a `[K]`): the load of the last full interval before the dispatch
//! instruction is the baseline of every event interval.

use chrono::{DateTime, Utc};
use gridflex_core::Interval;

use super::matching::{Frame, frame};
use super::{Adjustment, Baseline, BaselineRule, Method};
use crate::MvError;
use crate::calendar::Calendar;
use crate::meter::{Column, GapPolicy, Meter};
use crate::reduction::SettlementRule;

impl Baseline {
    /// Meter Before / Meter After with the instruction at the event start. Needs
    /// interval data of 5 minutes or finer in practice; negative reductions settle at zero
    /// as for other CAISO PDR measurements.
    pub fn meter_before_meter_after() -> Self {
        Self {
            method: Method::Mbma,
            rule: BaselineRule::MeterBefore { instruction: None },
            gap_policy: GapPolicy::Error,
            settlement: SettlementRule::FloorAtZero,
        }
    }
}

/// The located event and the load of the last full interval before the instruction.
pub(super) fn level<C: Column>(
    meter: &Meter,
    values: C,
    calendar: &Calendar,
    event: Interval,
    instruction: Option<DateTime<Utc>>,
) -> Result<(Frame, f64), MvError> {
    let frame = frame(meter, calendar, event, &Adjustment::none(), None)?;
    let at = instruction.unwrap_or(event.start());
    if at > event.start() {
        return Err(MvError::InvalidEvent {
            event,
            reason: "the dispatch instruction is after the event start",
        });
    }
    let step_ms = meter.step_s() * 1000;
    let k = (at - meter.start()).num_milliseconds().div_euclid(step_ms) - 1;
    let before = usize::try_from(k).map_err(|_| MvError::OutsideData {
        what: "interval before the instruction",
        interval: meter.interval_at(at.checked_sub_signed(meter.step()).unwrap_or(at)),
        start: meter.start(),
        end: meter.end(),
    })?;
    Ok((
        frame,
        meter.watts(values, before, "interval before the instruction")?,
    ))
}
