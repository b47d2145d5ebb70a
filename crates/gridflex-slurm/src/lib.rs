//! Slurm as gridflex's workload engine: the jobs of a Slurm cluster, with their GPUs and
//! service classes, paused and resumed with `scontrol suspend`/`resume`.
//!
//! | item | what |
//! | --- | --- |
//! | [`SlurmCluster`] | inventory, suspend/resume (hold/release for pending jobs) with an ownership [`ledger`], recovery |
//! | [`SlurmJobControl`] | one job as the hal's [`WorkloadControl`](gridflex_hal::WorkloadControl) |
//! | [`Inventory`], [`InventoryDiff`], [`JobSync`] | live jobs, what changed, refreshes with back-off |
//! | [`policy`] | site rules (partition, QOS, account, user, comment tag, GRES) -> [`SlaClass`] |
//! | [`DeviceMap`] | Slurm GPU (node, index) -> gridflex `DeviceId` |
//! | [`squeue`], [`hostlist`], [`gres`] | readers for Slurm 22.05's `squeue --json` (v0.0.38) |
//! | [`SlurmCli`] | runs `squeue`/`scontrol` with timeouts, typed errors |
//!
//! Inventory reads `squeue --json` (one call, the whole queue; the model is checked),
//! not slurmrestd: slurmrestd needs JWT setup and a daemon, and has no suspend/resume
//! endpoint, so scontrol is needed anyway (`docs/slurm.md`).
//!
//! ```
//! use chrono::Utc;
//! use gridflex_slurm::{DeviceMap, Inventory, Policy, SlaClass};
//!
//! let policy: Policy = serde_json::from_str(r#"{"rules":[
//!   {"match":{"comment_tag":"gridflex:flexible"},"class":"flexible","floor":0.5,"max_pause_s":600}]}"#)?;
//! let json = br#"{"meta":{"plugin":{"type":"openapi/v0.0.38"}},"errors":[],"jobs":[
//!   {"job_id":1,"job_state":"RUNNING","nodes":"gpu01","gres_detail":["gpu:2(IDX:0-1)"],
//!    "comment":"gridflex:flexible"},
//!   {"job_id":2,"job_state":"RUNNING","nodes":"gpu01","gres_detail":["gpu:1(IDX:2)"]}]}"#;
//! let inventory = Inventory::from_squeue_json(json, &policy, &DeviceMap::default(), Utc::now(), None)?;
//! let train = inventory.get(1).ok_or("job 1")?;
//! assert_eq!(train.devices[1].as_str(), "gpu01/gpu1");
//! assert!(train.class.may_pause());
//! assert_eq!(inventory.get(2).ok_or("job 2")?.class, SlaClass::UNMATCHED); // never curtailed
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
mod cluster;
pub mod devices;
mod error;
pub mod gres;
pub mod hostlist;
pub mod inventory;
pub mod job;
pub mod ledger;
pub mod policy;
pub mod squeue;

pub use cli::SlurmCli;
pub use cluster::{Backoff, JobSync, Paused, Recovery, Resumed, SlurmCluster, SlurmJobControl};
pub use devices::DeviceMap;
pub use error::SlurmError;
pub use inventory::{Inventory, InventoryDiff, InventoryJob};
pub use job::{GpuRef, JobState, SlurmJob};
pub use policy::{Policy, SlaClass};
