//! CAISO and PJM grid-signal models, operator-format parsers and signal sources for gridflex.
//!
//! This crate is being built; see the project README for its status.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
