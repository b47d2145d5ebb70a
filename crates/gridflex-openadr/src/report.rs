//! Reports for settlement: per meter interval, the metered usage, the baseline and the
//! change against it, from a plain [`ReportInput`] the caller fills (the facade from
//! its recorded meter and `gridflex-mv`; this crate computes nothing itself).
//!
//! Payload types (OpenADR 3.1 report types, all in `KW`, reading type `MEAN`, one
//! value per interval): `USAGE` (metered), `BASELINE` (the program's baseline method),
//! `DELTA_USAGE` (usage minus baseline: negative when load was reduced; the delivered
//! reduction is its negation). When the event's `reportDescriptors` name payload types,
//! only those of the three are sent; when it names none, all three are.

use chrono::{DateTime, Utc};
use gridflex_core::{Interval, Power};

use crate::OpenAdrError;
use crate::duration::format_duration;
use crate::wire::{
    self, IntervalPeriod, Report, ReportDescriptor, ReportPayloadDescriptor, ReportResource,
    ValuesMap,
};

/// One meter interval of a report.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ReportInterval {
    /// The interval.
    pub interval: Interval,
    /// Mean metered power over it.
    pub usage: Power,
    /// The baseline for it, when one was computed.
    pub baseline: Option<Power>,
}

impl ReportInterval {
    /// An interval's figures.
    pub fn new(interval: Interval, usage: Power, baseline: Option<Power>) -> Self {
        Self {
            interval,
            usage,
            baseline,
        }
    }

    /// The delivered reduction: baseline minus usage, when a baseline is known.
    pub fn delivered(&self) -> Option<Power> {
        self.baseline.map(|b| b - self.usage)
    }
}

/// What to report on one event: a plain struct the caller fills.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReportInput {
    /// The OpenADR event id.
    pub event_id: String,
    /// Its program's id, when known.
    pub program_id: Option<String>,
    /// The resource the figures are for (for example the facility's meter name).
    pub resource_name: String,
    /// A name for the report (for example `"gridflex-final"`).
    pub report_name: Option<String>,
    /// The intervals, in time order, not overlapping.
    pub intervals: Vec<ReportInterval>,
}

impl ReportInput {
    /// An input with no program id and no report name.
    pub fn new(
        event_id: impl Into<String>,
        resource_name: impl Into<String>,
        intervals: Vec<ReportInterval>,
    ) -> Self {
        Self {
            event_id: event_id.into(),
            program_id: None,
            resource_name: resource_name.into(),
            report_name: None,
            intervals,
        }
    }

    /// The OpenADR report, as the VEN `client_name`, with the payload types the event
    /// asked for in `requested` (see the module docs).
    pub fn to_report(
        &self,
        client_name: &str,
        requested: Option<&[ReportDescriptor]>,
    ) -> Result<Report, OpenAdrError> {
        let err = |reason: String| OpenAdrError::Report {
            event_id: self.event_id.clone(),
            reason,
        };
        if self.intervals.is_empty() {
            return Err(err("no intervals".into()));
        }
        if self.resource_name.is_empty() || self.resource_name.len() > 128 {
            return Err(err("resource name must be 1 to 128 characters".into()));
        }
        let mut last: Option<DateTime<Utc>> = None;
        for i in &self.intervals {
            if last.is_some_and(|end| i.interval.start() < end) {
                return Err(err(format!(
                    "interval starting {} overlaps or precedes the one before",
                    i.interval.start()
                )));
            }
            last = Some(i.interval.end());
        }
        let wanted = |kind: &str| {
            requested.is_none_or(|r| r.is_empty() || r.iter().any(|d| d.payload_type == kind))
        };
        let kinds: Vec<&str> = ["USAGE", "BASELINE", "DELTA_USAGE"]
            .into_iter()
            .filter(|k| wanted(k))
            .collect();
        if kinds.is_empty() {
            return Err(err(
                "the event asks for no report type gridflex provides (USAGE, BASELINE, DELTA_USAGE)"
                    .into(),
            ));
        }
        let intervals = self
            .intervals
            .iter()
            .enumerate()
            .map(|(k, i)| {
                let payloads = kinds
                    .iter()
                    .filter_map(|kind| {
                        let v = match *kind {
                            "USAGE" => Some(i.usage),
                            "BASELINE" => i.baseline,
                            _ => i.baseline.map(|b| i.usage - b),
                        };
                        v.map(|p| ValuesMap::numbers(*kind, [p.as_kilowatts()]))
                    })
                    .collect();
                wire::Interval {
                    id: k as i64,
                    interval_period: Some(IntervalPeriod::new(
                        i.interval.start(),
                        Some(format_duration(i.interval.duration())),
                    )),
                    payloads,
                }
            })
            .collect();
        Ok(Report {
            id: None,
            object_type: "REPORT".into(),
            program_id: self.program_id.clone(),
            event_id: self.event_id.clone(),
            client_name: client_name.to_owned(),
            report_name: self.report_name.clone(),
            payload_descriptors: kinds
                .iter()
                .map(|k| ReportPayloadDescriptor::new(k, "MEAN", "KW"))
                .collect(),
            resources: vec![ReportResource {
                resource_name: self.resource_name.clone(),
                intervals,
            }],
        })
    }
}

impl crate::VenClient {
    /// Posts a report on an event as the VEN `ven_name`: reads the event first for its
    /// program and the report types it asks for, then posts; returns the report as
    /// the VTN stored it.
    pub async fn report_event(
        &self,
        ven_name: &str,
        input: &ReportInput,
    ) -> Result<Report, OpenAdrError> {
        let event: wire::Event = self
            .get(&format!(
                "/events/{}",
                crate::client::encode(&input.event_id)
            ))
            .await?;
        let mut input = input.clone();
        input.program_id.get_or_insert(event.program_id);
        let report = input.to_report(ven_name, event.report_descriptors.as_deref())?;
        self.post_report(&report).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    fn input() -> ReportInput {
        let t0 = Utc.with_ymd_and_hms(2026, 7, 1, 18, 0, 0).unwrap();
        let iv = |k: i64| {
            Interval::starting_at(t0 + TimeDelta::minutes(5 * k), TimeDelta::minutes(5)).unwrap()
        };
        let kw = |v: f64| Power::kilowatts(v).unwrap();
        ReportInput::new(
            "ev-1",
            "facility",
            vec![
                ReportInterval::new(iv(0), kw(8.0), Some(kw(10.0))),
                ReportInterval::new(iv(1), kw(7.5), None),
            ],
        )
    }

    #[test]
    fn report_carries_usage_baseline_and_delta() {
        let r = input().to_report("ven-a", None).unwrap();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["eventID"], "ev-1");
        assert_eq!(json["objectType"], "REPORT");
        let i0 = &json["resources"][0]["intervals"][0];
        assert_eq!(i0["intervalPeriod"]["duration"], "PT300S");
        assert_eq!(i0["payloads"][0]["type"], "USAGE");
        assert_eq!(i0["payloads"][0]["values"][0], 8.0);
        assert_eq!(i0["payloads"][1]["values"][0], 10.0);
        assert_eq!(i0["payloads"][2]["type"], "DELTA_USAGE");
        assert_eq!(i0["payloads"][2]["values"][0], -2.0);
        // No baseline: only usage.
        let i1 = &json["resources"][0]["intervals"][1];
        assert_eq!(i1["payloads"].as_array().unwrap().len(), 1);
        assert_eq!(
            input().intervals[0].delivered(),
            Some(Power::kilowatts(2.0).unwrap())
        );
    }

    #[test]
    fn requested_descriptors_select_payloads_and_bad_inputs_are_refused() {
        let usage_only = [ReportDescriptor {
            payload_type: "USAGE".into(),
            reading_type: None,
            units: None,
        }];
        let r = input().to_report("v", Some(&usage_only)).unwrap();
        assert_eq!(r.payload_descriptors.len(), 1);
        let other = [ReportDescriptor {
            payload_type: "STORAGE_CHARGE_LEVEL".into(),
            reading_type: None,
            units: None,
        }];
        assert!(input().to_report("v", Some(&other)).is_err());
        let mut overlapping = input();
        overlapping.intervals.swap(0, 1);
        assert!(overlapping.to_report("v", None).is_err());
        let mut empty = input();
        empty.intervals.clear();
        assert!(empty.to_report("v", None).is_err());
    }
}
