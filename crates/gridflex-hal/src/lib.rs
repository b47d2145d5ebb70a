//! Hardware abstraction for gridflex: power-device and workload traits, a calibrated simulated GPU, and an NVML backend.
//!
//! This crate is being built; see the project README for its status.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
