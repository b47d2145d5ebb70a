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
