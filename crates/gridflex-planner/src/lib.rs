//! SLA-aware curtailment planning for GPU fleets: pure, synchronous, deterministic.
//!
//! This crate is being built; see the project README for its status.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
