//! The OpenADR 3.1 objects the VEN reads and writes, as typed serde models of the
//! subset it uses (field names as in the OpenADR 3.1.0 schema, camelCase, `ID`
//! suffixes upper case). Fields the VEN does not use are ignored on read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A program (`objectType: PROGRAM`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Program {
    /// The VTN's id.
    pub id: String,
    /// The program's name (unique on the VTN).
    pub program_name: String,
    /// Targets of the program, if any.
    #[serde(default)]
    pub targets: Vec<String>,
}

/// A period: start and optional duration (ISO 8601, see [`crate::duration`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct IntervalPeriod {
    /// Start.
    pub start: DateTime<Utc>,
    /// Duration; absent means zero length for a report interval and "the event's"
    /// for an event interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// A random delay the VEN should add to the start (ignored: gridflex starts on time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub randomize_start: Option<String>,
}

impl IntervalPeriod {
    /// A period from a start and a duration.
    pub fn new(start: DateTime<Utc>, duration: Option<String>) -> Self {
        Self {
            start,
            duration,
            randomize_start: None,
        }
    }
}

/// One payload of an interval: a type and its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ValuesMap {
    /// The payload type, for example `IMPORT_CAPACITY_LIMIT`, `SIMPLE`, `PRICE`, `USAGE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The values (numbers, integers, strings, booleans or points).
    pub values: Vec<serde_json::Value>,
}

impl ValuesMap {
    /// A payload of numbers.
    pub fn numbers(kind: impl Into<String>, values: impl IntoIterator<Item = f64>) -> Self {
        Self {
            kind: kind.into(),
            values: values.into_iter().map(serde_json::Value::from).collect(),
        }
    }
}

/// One interval of an event or report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Interval {
    /// Id, unique within its object.
    pub id: i64,
    /// Its own period, overriding the parent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_period: Option<IntervalPeriod>,
    /// Payloads.
    pub payloads: Vec<ValuesMap>,
}

/// Context for the values of one payload type of an event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct EventPayloadDescriptor {
    /// The payload type it describes.
    pub payload_type: String,
    /// Units (for example `KW`, `KWH`).
    #[serde(default)]
    pub units: Option<String>,
    /// Currency (ISO 4217, for example `USD`).
    #[serde(default)]
    pub currency: Option<String>,
}

/// A report the event asks the VEN for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReportDescriptor {
    /// The report payload type (for example `USAGE`, `BASELINE`, `DELTA_USAGE`).
    pub payload_type: String,
    /// Reading type, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading_type: Option<String>,
    /// Units, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
}

/// An event (`objectType: EVENT`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Event {
    /// The VTN's id.
    pub id: String,
    /// When it was created.
    pub created_date_time: DateTime<Utc>,
    /// When it was last modified (the VTN has no ETag: a VEN compares this).
    pub modification_date_time: DateTime<Utc>,
    /// Its program.
    #[serde(rename = "programID")]
    pub program_id: String,
    /// Its name.
    #[serde(default)]
    pub event_name: Option<String>,
    /// Priority, 0 highest; absent is the lowest.
    #[serde(default)]
    pub priority: Option<u32>,
    /// Targets; empty means every VEN of the program.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Reports the event asks for.
    #[serde(default)]
    pub report_descriptors: Option<Vec<ReportDescriptor>>,
    /// Units and currency of its payloads.
    #[serde(default)]
    pub payload_descriptors: Option<Vec<EventPayloadDescriptor>>,
    /// Default period of its intervals.
    #[serde(default)]
    pub interval_period: Option<IntervalPeriod>,
    /// Its intervals.
    #[serde(default)]
    pub intervals: Vec<Interval>,
}

/// A VEN object (`objectType: VEN`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Ven {
    /// The VTN's id.
    pub id: String,
    /// The VEN's name.
    pub ven_name: String,
    /// Targets business logic assigned to it.
    #[serde(default)]
    pub targets: Vec<String>,
}

/// A VEN's request to create its VEN object.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VenVenRequest<'a> {
    pub(crate) object_type: &'static str,
    pub(crate) ven_name: &'a str,
}

/// Context for the values of one report payload type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReportPayloadDescriptor {
    /// Always `REPORT_PAYLOAD_DESCRIPTOR`.
    #[serde(default = "report_payload_descriptor")]
    pub object_type: String,
    /// The payload type.
    pub payload_type: String,
    /// Reading type (`DIRECT_READ`, `MEAN`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading_type: Option<String>,
    /// Units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
}

fn report_payload_descriptor() -> String {
    "REPORT_PAYLOAD_DESCRIPTOR".into()
}

impl ReportPayloadDescriptor {
    /// A descriptor.
    pub fn new(payload_type: &str, reading_type: &str, units: &str) -> Self {
        Self {
            object_type: report_payload_descriptor(),
            payload_type: payload_type.into(),
            reading_type: Some(reading_type.into()),
            units: Some(units.into()),
        }
    }
}

/// The data of one resource in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReportResource {
    /// The resource's name.
    pub resource_name: String,
    /// Intervals with their own periods.
    pub intervals: Vec<Interval>,
}

/// A report as posted (`objectType: REPORT`), and as read back (with `id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Report {
    /// The VTN's id (absent when posting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Always `REPORT`.
    pub object_type: String,
    /// The program.
    #[serde(rename = "programID", default, skip_serializing_if = "Option::is_none")]
    pub program_id: Option<String>,
    /// The event it reports on.
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// The VEN's name.
    pub client_name: String,
    /// A name for the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_name: Option<String>,
    /// Descriptors of the payloads.
    #[serde(default)]
    pub payload_descriptors: Vec<ReportPayloadDescriptor>,
    /// Data per resource.
    pub resources: Vec<ReportResource>,
}

/// An OAuth2 token response.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
}

/// An RFC 7807 problem.
#[derive(Debug, Deserialize)]
pub(crate) struct Problem {
    #[serde(default)]
    pub(crate) title: Option<String>,
    #[serde(default)]
    pub(crate) detail: Option<String>,
}
