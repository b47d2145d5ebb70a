//! The node's config file (TOML): where to listen, which devices and jobs, the token,
//! where state is kept, and the lease bounds. See `docs/agent.md` for the reference.
//!
//! ```
//! use gridflex_agent::AgentConfig;
//! let cfg = AgentConfig::from_toml_str(r#"
//!     node = "node-07"
//!     listen = "127.0.0.1:7471"
//!     state_dir = "/var/lib/gridflex-agent"
//!     [auth]
//!     token = "0123456789abcdef0123456789abcdef"
//!     [devices]
//!     backend = "sim"
//!     count = 8
//!     [[jobs]]
//!     id = "train"
//!     gpus = [0, 1, 2, 3]
//! "#, "inline".as_ref())?;
//! assert_eq!(cfg.lease.default_ms, 30_000);
//! assert!(gridflex_agent::AgentConfig::from_toml_str("node = \"\"", "x".as_ref()).is_err());
//! # Ok::<(), gridflex_agent::AgentError>(())
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use gridflex_core::WorkloadKind;
use serde::Deserialize;

use crate::AgentError;

/// The shortest token accepted, in bytes.
pub const MIN_TOKEN_LEN: usize = 32;

/// One node's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The node's name, as the orchestrator and the logs show it.
    pub node: String,
    /// The address to listen on (`0.0.0.0:7471`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// Where the lease state is kept (`state.json` in it), written before every change.
    pub state_dir: PathBuf,
    /// Credentials.
    pub auth: AuthConfig,
    /// Lease bounds.
    #[serde(default)]
    pub lease: LeaseConfig,
    /// The node's devices.
    pub devices: DevicesConfig,
    /// The jobs the agent may pause.
    #[serde(default)]
    pub jobs: Vec<JobConfig>,
    /// The most client connections served at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_max_connections() -> usize {
    16
}

/// Credentials: a shared secret per agent, inline or in a file (first line, trimmed).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The token itself (at least [`MIN_TOKEN_LEN`] bytes).
    pub token: Option<String>,
    /// A file holding the token (readable by the agent only).
    pub token_file: Option<PathBuf>,
}

/// Lease bounds, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseConfig {
    /// Granted when a batch names no lease.
    #[serde(default = "default_lease_ms")]
    pub default_ms: u64,
    /// The longest lease granted (longer requests are cut to it).
    #[serde(default = "max_lease_ms")]
    pub max_ms: u64,
}

fn default_lease_ms() -> u64 {
    30_000
}
fn max_lease_ms() -> u64 {
    300_000
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            default_ms: default_lease_ms(),
            max_ms: max_lease_ms(),
        }
    }
}

/// Which devices the node has.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum DevicesConfig {
    /// Simulated H100s on the wall clock (tests, demos).
    Sim {
        /// How many GPUs.
        count: usize,
    },
    /// NVIDIA GPUs through NVML (feature `nvml`; root for limits).
    Nvml {
        /// Only these UUIDs (every GPU when absent).
        #[serde(default)]
        uuids: Option<Vec<String>>,
    },
}

/// One job the agent may pause.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// The job id (as the orchestrator's inventory names it).
    pub id: String,
    /// Its processes (paused with SIGSTOP, resumed with SIGCONT).
    #[serde(default)]
    pub pids: Vec<u32>,
    /// Simulated backend only: the GPU indices a simulated job runs on.
    #[serde(default)]
    pub gpus: Vec<usize>,
    /// Simulated backend only: the simulated workload (default `matmul`).
    #[serde(default)]
    pub kind: Option<WorkloadKind>,
}

impl AgentConfig {
    /// Reads and validates a config file.
    pub fn load(file: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(file).map_err(|e| AgentError::ConfigRead {
            file: file.to_owned(),
            detail: e.to_string(),
        })?;
        Self::from_toml_str(&text, file)
    }

    /// Parses and validates config text; `file` names it in errors.
    pub fn from_toml_str(text: &str, file: &Path) -> Result<Self, AgentError> {
        let cfg: Self = toml::from_str(text).map_err(|e| AgentError::ConfigParse {
            file: file.to_owned(),
            detail: e.to_string().trim_end().to_owned(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what the types cannot: names, bounds, token presence and the job list.
    pub fn validate(&self) -> Result<(), AgentError> {
        let field = |field: &str, reason: String| AgentError::ConfigField {
            field: field.to_owned(),
            reason,
        };
        if self.node.trim().is_empty() {
            return Err(field("node", "must not be empty".into()));
        }
        match (&self.auth.token, &self.auth.token_file) {
            (Some(_), Some(_)) => {
                return Err(field(
                    "auth",
                    "give `token` or `token_file`, not both".into(),
                ));
            }
            (None, None) => {
                return Err(field("auth", "needs `token` or `token_file`".into()));
            }
            (Some(t), None) if t.len() < MIN_TOKEN_LEN => {
                return Err(field(
                    "auth.token",
                    format!("{} bytes is too short (at least {MIN_TOKEN_LEN})", t.len()),
                ));
            }
            _ => {}
        }
        let l = self.lease;
        if l.default_ms == 0 {
            return Err(field("lease.default_ms", "must be above 0".into()));
        }
        if l.max_ms < l.default_ms {
            return Err(field(
                "lease.max_ms",
                format!("{} is below lease.default_ms {}", l.max_ms, l.default_ms),
            ));
        }
        if self.max_connections == 0 {
            return Err(field("max_connections", "must be above 0".into()));
        }
        let count = match self.devices {
            DevicesConfig::Sim { count } => {
                if count == 0 || count > 1024 {
                    return Err(field(
                        "devices.count",
                        format!("{count} is outside 1 ..= 1024"),
                    ));
                }
                Some(count)
            }
            DevicesConfig::Nvml { .. } => None,
        };
        let mut ids = BTreeSet::new();
        let mut used_gpus = BTreeSet::new();
        for (i, j) in self.jobs.iter().enumerate() {
            let at = |f: &str| format!("jobs[{i}].{f}");
            if j.id.trim().is_empty() {
                return Err(field(&at("id"), "must not be empty".into()));
            }
            if !ids.insert(j.id.as_str()) {
                return Err(field(&at("id"), format!("`{}` is listed twice", j.id)));
            }
            match count {
                Some(n) => {
                    if !j.pids.is_empty() {
                        return Err(field(
                            &at("pids"),
                            "the sim backend runs simulated jobs: give `gpus`".into(),
                        ));
                    }
                    if j.gpus.is_empty() {
                        return Err(field(&at("gpus"), "must name at least one GPU".into()));
                    }
                    for &g in &j.gpus {
                        if g >= n {
                            return Err(field(
                                &at("gpus"),
                                format!("GPU {g} is outside 0 ..= {}", n - 1),
                            ));
                        }
                        if !used_gpus.insert(g) {
                            return Err(field(
                                &at("gpus"),
                                format!("GPU {g} already runs another job"),
                            ));
                        }
                    }
                }
                None => {
                    if !j.gpus.is_empty() || j.kind.is_some() {
                        return Err(field(
                            &at("gpus"),
                            "`gpus` and `kind` are for the sim backend; give `pids`".into(),
                        ));
                    }
                    if j.pids.is_empty() {
                        return Err(field(&at("pids"), "must name at least one process".into()));
                    }
                }
            }
        }
        Ok(())
    }

    /// The token's bytes: inline, or the first line of `token_file` (trimmed).
    pub fn token(&self) -> Result<Vec<u8>, AgentError> {
        let token = match (&self.auth.token, &self.auth.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => {
                let text = std::fs::read_to_string(f).map_err(|e| AgentError::ConfigField {
                    field: "auth.token_file".into(),
                    reason: format!("cannot read {}: {e}", f.display()),
                })?;
                text.lines().next().unwrap_or("").trim().to_owned()
            }
            (None, None) => String::new(),
        };
        if token.len() < MIN_TOKEN_LEN {
            return Err(AgentError::ConfigField {
                field: "auth".into(),
                reason: format!(
                    "the token is {} bytes, at least {MIN_TOKEN_LEN} needed",
                    token.len()
                ),
            });
        }
        Ok(token.into_bytes())
    }

    /// The state file: `state.json` in [`AgentConfig::state_dir`].
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OK: &str = r#"
node = "n1"
listen = "127.0.0.1:0"
state_dir = "/tmp/x"
[auth]
token = "0123456789abcdef0123456789abcdef"
[lease]
default_ms = 1000
max_ms = 5000
[devices]
backend = "sim"
count = 4
[[jobs]]
id = "a"
gpus = [0, 1]
[[jobs]]
id = "b"
gpus = [2]
kind = "inference"
"#;

    fn err(text: &str) -> String {
        match AgentConfig::from_toml_str(text, Path::new("node.toml")) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_good_config_loads() -> Result<(), AgentError> {
        let c = AgentConfig::from_toml_str(OK, Path::new("node.toml"))?;
        assert_eq!(c.lease.max_ms, 5000);
        assert_eq!(c.jobs[1].kind, Some(WorkloadKind::Inference));
        assert_eq!(c.token()?.len(), 32);
        Ok(())
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err(&OK.replace("count = 4", "count = 0")).contains("devices.count"));
        assert!(err(&OK.replace("gpus = [2]", "gpus = [7]")).contains("jobs[1].gpus"));
        assert!(err(&OK.replace("gpus = [2]", "gpus = [1]")).contains("already runs"));
        assert!(err(&OK.replace("max_ms = 5000", "max_ms = 10")).contains("lease.max_ms"));
        assert!(err(&OK.replace("0123456789abcdef0123", "")).contains("auth.token"));
        assert!(err(&OK.replace("id = \"b\"", "id = \"a\"")).contains("jobs[1].id"));
        let e = err(&OK.replace("count = 4", "count = 4\ncolour = 3"));
        assert!(e.contains("node.toml") && e.contains("colour"), "{e}");
        let e = err(&OK.replace("listen = \"127.0.0.1:0\"", "listen = \"nowhere\""));
        assert!(e.contains("listen"), "{e}");
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = AgentConfig::from_toml_str(&text, Path::new("p.toml"));
        }

        #[test]
        fn any_lease_pair_is_accepted_iff_ordered(d in 0u64..10_000, m in 0u64..10_000) {
            let text = OK.replace("default_ms = 1000", &format!("default_ms = {d}"))
                .replace("max_ms = 5000", &format!("max_ms = {m}"));
            let ok = AgentConfig::from_toml_str(&text, Path::new("p.toml")).is_ok();
            prop_assert_eq!(ok, d > 0 && m >= d);
        }
    }
}
