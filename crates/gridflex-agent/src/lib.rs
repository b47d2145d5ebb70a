//! The gridflex node agent: one per node, it owns the node's GPUs (NVML, or the
//! simulator) and its workload control (pausing processes), serves a small versioned
//! protocol to the orchestrator, and keeps a **lease**: when the orchestrator stops
//! renewing (it died, or the network split), the agent restores every device to the
//! limit it had before gridflex touched it and resumes what it paused, on its own.
//!
//! | item | what |
//! | --- | --- |
//! | [`AgentConfig`] | the node's TOML config, validated field by field |
//! | [`Node`] | the node's devices and jobs |
//! | [`Agent`], [`RunningAgent`] | the server: batches, leases, restores; [`check`] for `--check` |
//! | [`Holdings`], [`StateFile`] | what gridflex holds on the node, on disk before every change |
//! | [`AgentClient`] | the orchestrator's connection: batching, renewals, lapse reports |
//! | [`RemoteDevice`], [`RemoteSampledDevice`], [`RemoteWorkload`] | the hal traits over the network (with the 20 ms sample stream where the device keeps one) |
//! | [`protocol`] | the wire format (length-prefixed JSON, HMAC challenge, authenticated frames) |
//!
//! The binary `gridflex-agent --config FILE` runs an agent; `--check` validates the
//! config and opens its devices without serving. See `docs/agent.md` for the protocol
//! choice, the config reference, lease timing and deployment recipes.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use gridflex_agent::{Agent, AgentClient, AgentOptions, ClientOptions, LeaseConfig, Node};
//! use gridflex_core::{Power, TokioClock};
//! use gridflex_hal::PowerDevice;
//! use gridflex_hal::sim::{SimFleet, SimGpuSpec};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let fleet = SimFleet::new(Arc::new(TokioClock::real()), 1, &SimGpuSpec::h100_sxm())?;
//! let dir = tempfile::tempdir()?;
//! let token = b"0123456789abcdef0123456789abcdef".to_vec();
//! let lease = LeaseConfig { default_ms: 200, max_ms: 200 };
//! let options = AgentOptions { token: token.clone(), lease,
//!     state_file: dir.path().join("state.json"), max_connections: 4 };
//! let agent = Agent::start(Node::new("n1", fleet.devices(), vec![])?, options).await?;
//! let running = agent.spawn("127.0.0.1:0".parse()?).await?;
//! let client = AgentClient::connect(running.local_addr(), token,
//!     ClientOptions::with_lease(Duration::from_millis(200))).await?;
//! client.devices()[0].set_power_limit(Power::watts(350.0)?).await?;
//! drop(client); // the orchestrator goes away: nobody renews
//! tokio::time::sleep(Duration::from_millis(400)).await;
//! let gpu = fleet.gpu(0).ok_or("no gpu")?;
//! assert_eq!(gpu.requested_limit(), Power::watts(700.0)?); // restored on its own
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod client;
mod config;
mod error;
mod lease;
mod node;
pub mod protocol;
mod server;

pub use client::{
    AgentClient, ClientOptions, RemoteDevice, RemoteSampledDevice, RemoteWorkload, device_ids,
};
pub use config::{AgentConfig, AuthConfig, DevicesConfig, JobConfig, LeaseConfig, MIN_TOKEN_LEN};
pub use error::AgentError;
pub use lease::{Holdings, StateFile};
pub use node::{Node, NodeJob};
pub use server::{Agent, AgentOptions, RunningAgent, check};
