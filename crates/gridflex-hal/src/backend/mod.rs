//! Backends: the simulator (always), the process pauser (unix) and NVML (feature `nvml`).

#[cfg(unix)]
pub mod process;
pub mod sim;
