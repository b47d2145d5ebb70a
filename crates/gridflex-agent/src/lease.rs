//! What gridflex holds on a node, kept on local disk: for every device it capped, the
//! limit the device had before, and every job it paused.
//!
//! The file is written before the agent acts (write to a temporary file in the same
//! directory, fsync, rename over the old one, fsync the directory), so whatever the
//! moment a process dies, the file names at least everything it had changed: a
//! restarted agent reads it and restores. The lease's deadline is not kept: a restarted
//! agent restores at once whatever its predecessor held (the predecessor's client saw
//! its connection drop and treats those commands as failed).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use gridflex_core::{DeviceId, JobId, Power};
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// The state file's format version.
const STATE_VERSION: u32 = 1;

/// What gridflex holds on the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Holdings {
    /// The format version.
    #[serde(default)]
    pub version: u32,
    /// Each capped device and the limit it had before gridflex first touched it.
    pub devices: BTreeMap<DeviceId, Power>,
    /// Each job gridflex paused (or tried to).
    pub paused: BTreeSet<JobId>,
}

impl Holdings {
    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty() && self.paused.is_empty()
    }
}

/// The state file of one agent.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state kept at `path` (its directory is created on first write).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the holdings; empty when there is no file yet.
    pub fn load(&self) -> Result<Holdings, AgentError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Holdings::default()),
            Err(e) => return Err(self.error(format!("cannot read: {e}"))),
        };
        let h: Holdings = serde_json::from_slice(&text)
            .map_err(|e| self.error(format!("not a gridflex-agent state file: {e}")))?;
        if h.version != STATE_VERSION {
            return Err(self.error(format!(
                "format version {} (this agent reads {STATE_VERSION})",
                h.version
            )));
        }
        Ok(h)
    }

    /// Writes the holdings atomically (temporary file, fsync, rename, fsync directory).
    pub fn store(&self, holdings: &Holdings) -> Result<(), AgentError> {
        let mut h = holdings.clone();
        h.version = STATE_VERSION;
        let body = serde_json::to_vec_pretty(&h).map_err(|e| self.error(e.to_string()))?;
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| self.error(format!("creating its directory: {e}")))?;
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // The rename is durable once the directory is.
            #[cfg(unix)]
            std::fs::File::open(dir)?.sync_all()?;
            Ok(())
        };
        write().map_err(|e| self.error(format!("cannot write: {e}")))
    }

    fn error(&self, detail: String) -> AgentError {
        AgentError::State {
            file: self.path.clone(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdings_round_trip_and_a_missing_file_is_empty() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let f = StateFile::new(dir.path().join("sub").join("state.json"));
        assert_eq!(f.load()?, Holdings::default());
        let mut h = Holdings::default();
        h.devices
            .insert(DeviceId::new("GPU-1")?, Power::watts(650.0)?);
        h.paused.insert(JobId::new("train")?);
        f.store(&h)?;
        let back = f.load()?;
        assert_eq!(back.devices, h.devices);
        assert_eq!(back.paused, h.paused);
        assert_eq!(back.version, STATE_VERSION);
        std::fs::write(f.path(), b"{ not json")?;
        assert!(matches!(f.load(), Err(AgentError::State { .. })));
        Ok(())
    }
}
