//! Backends: the simulator (always), the process pauser (unix) and NVML (feature `nvml`).

#[cfg(any(feature = "nvml", test))]
pub mod nvml;
#[cfg(unix)]
pub mod process;
pub mod sim;
