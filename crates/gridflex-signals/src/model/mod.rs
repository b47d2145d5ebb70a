//! The grid-signal models: prices, dispatch events, alerts, regulation samples, and
//! [`GridSignal`], the enum over them with its stable JSON-lines form.

mod alert;
mod dispatch;
mod market;
mod price;
mod regulation;
mod signal;

pub use alert::{AlertKind, AlertLevel, GridAlert};
pub use dispatch::{DispatchEvent, DispatchTarget, EventWindow, LeadTime, Program};
pub use market::{Market, MarketRun};
pub use price::{PricePoint, check_length};
pub use regulation::{RegulationKind, RegulationSample, RegulationSignal};
pub use signal::{GridSignal, read_json_lines, write_json_lines};

/// Serde helper: a `TimeDelta` as whole seconds.
pub(crate) mod seconds {
    use chrono::TimeDelta;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeDelta, D::Error> {
        let secs = i64::deserialize(d)?;
        TimeDelta::try_seconds(secs)
            .ok_or_else(|| serde::de::Error::custom(format!("{secs} s is out of range")))
    }
}
