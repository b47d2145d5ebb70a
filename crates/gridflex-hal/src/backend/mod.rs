//! Backends: the simulator (always), the process pauser (unix) and NVML (feature `nvml`).

pub mod sim;
