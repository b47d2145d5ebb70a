//! An OpenADR 3.1 VEN for gridflex: enrol a site with a VTN (virtual top node), turn
//! its events into gridflex [`GridSignal`](gridflex_signals::GridSignal)s, and post
//! the reports the VTN settles on.
//!
//! - [`VenClient`]: OAuth2 client credentials (token renewed before expiry and on
//!   401), the VEN object, programs, events, reports; `https://` with rustls, plain
//!   `http://` only to loopback unless explicitly allowed.
//! - [`VenSource`]: a [`SignalSource`](gridflex_signals::source::SignalSource) that
//!   polls the VTN, compares `modificationDateTime`s, and yields dispatches and prices
//!   ([`mapping`] says how each payload type maps, [`book`] how changes, deletions and
//!   outages are handled).
//! - [`ReportInput`]: usage, baseline and delivered reduction per interval, filled by
//!   the caller from its meter and `gridflex-mv`, posted with
//!   [`VenClient::report_event`].
//! - [`Secret`] and [`Credentials`]: read from the environment or a file; `Debug`
//!   prints `***`.
//!
//! The wire types are this crate's own serde models of the OpenADR 3.1 subset used
//! ([`wire`]): the `openleadr-client` crate pulls 219 crates (158 that gridflex does not
//! already build, among them sqlx, axum, reqwest and aws-lc-sys), where this crate adds
//! none beyond `ureq`, which gridflex-signals' `http` feature already uses.
//!
//! ```
//! use std::time::Duration;
//! use gridflex_openadr::{Credentials, Mapping, Secret, SimpleLevel, VenClient, VenConfig, VenSource, VtnEndpoint};
//! use gridflex_core::clock::TokioClock;
//! use gridflex_signals::{DispatchTarget, Market};
//! use gridflex_core::Power;
//!
//! let client = VenClient::new(VtnEndpoint::new(
//!     "http://127.0.0.1:3000",
//!     Credentials::new("ven-client", Secret::new("from-a-file-in-real-life")),
//! ))?;
//! let mut mapping = Mapping::new(Market::Caiso);
//! mapping.simple_levels.push(SimpleLevel::new(1, DispatchTarget::ReduceBy { power: Power::kilowatts(200.0)? }));
//! let mut config = VenConfig::new("site-a", mapping);
//! config.poll_interval = Duration::from_secs(2);
//! let source = VenSource::new(client, config, TokioClock::real())?;
//! // orchestrator.run(source, ctrl_c()).await? runs it like any other source.
//! # let _ = source;
//! // Plain http to another host is refused:
//! let remote = VtnEndpoint::new("http://vtn.example.com", Credentials::new("c", Secret::new("s")));
//! assert!(VenClient::new(remote).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod book;
mod client;
pub mod duration;
mod error;
pub mod mapping;
mod report;
mod secret;
mod source;
pub mod wire;

pub use client::{VenClient, VtnEndpoint};
pub use error::OpenAdrError;
pub use mapping::{Mapping, PriceBinding, SimpleLevel};
pub use report::{ReportInput, ReportInterval};
pub use secret::{Credentials, Secret};
pub use source::{VenConfig, VenLog, VenNote, VenSource};
