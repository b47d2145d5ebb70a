//! Measurement and verification for demand response: customer baselines, delivered reduction, response time, regulation scores, settlement.
//!
//! This crate is being built; see the project README for its status.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
