//! [`Ledger`]: the jobs gridflex has suspended (or held), kept on disk.
//!
//! gridflex resumes only jobs it suspended and releases only jobs it held; a job an
//! operator suspended or held stays as the operator left it. The ledger is written
//! (atomically: a temporary file, fsync, rename, fsync of the directory) *before*
//! `scontrol suspend` (or `hold`) runs, so a crash at any point
//! leaves no suspension of gridflex's that the ledger does not name, and a new process
//! can finish the restores ([`SlurmCluster::recover`](crate::SlurmCluster::recover)).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::SlurmError;

const FORMAT: &str = "gridflex-slurm-ledger/1";

/// The most entries a ledger file may hold when read (a guard against a hostile file).
pub const MAX_ENTRIES: usize = 1_000_000;

/// What gridflex did to a job, so the restore does the opposite.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `scontrol suspend` a running job (undone by `resume`).
    #[default]
    Suspend,
    /// `scontrol hold` a pending job, so it does not start (undone by `release`).
    Hold,
}

/// One job gridflex suspended or held (or is about to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Slurm's job id.
    pub job: u32,
    /// What was done.
    #[serde(default)]
    pub action: Action,
    /// When gridflex decided to do it.
    pub suspended_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct File {
    format: String,
    suspended: Vec<LedgerEntry>,
}

/// The ownership ledger: which jobs gridflex suspended.
///
/// ```
/// use chrono::Utc;
/// use gridflex_slurm::ledger::{Action, Ledger};
/// let path = std::env::temp_dir().join(format!("gridflex-ledger-doc-{}.json", std::process::id()));
/// let mut ledger = Ledger::open(&path)?;
/// ledger.record(42, Action::Suspend, Utc::now())?;
/// assert!(Ledger::open(&path)?.contains(42));   // on disk at once
/// ledger.forget(42)?;
/// assert!(Ledger::open(&path)?.is_empty());
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), gridflex_slurm::SlurmError>(())
/// ```
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    entries: BTreeMap<u32, LedgerEntry>,
}

impl Ledger {
    /// Opens the ledger at `path`; a missing file is an empty ledger. A file that
    /// cannot be read is an error: forgetting what gridflex suspended is not an option.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SlurmError> {
        let path = path.as_ref().to_path_buf();
        let err = |detail: String| SlurmError::Ledger {
            path: path.clone(),
            detail,
        };
        let entries = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: File = serde_json::from_slice(&bytes)
                    .map_err(|e| err(format!("line {} column {}: {e}", e.line(), e.column())))?;
                if file.format != FORMAT {
                    return Err(err(format!(
                        "format {:?}, expected {FORMAT:?}",
                        file.format
                    )));
                }
                if file.suspended.len() > MAX_ENTRIES {
                    return Err(err(format!("more than {MAX_ENTRIES} entries")));
                }
                file.suspended.into_iter().map(|e| (e.job, e)).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(Self { path, entries })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether gridflex suspended or held job `job`.
    pub fn contains(&self, job: u32) -> bool {
        self.entries.contains_key(&job)
    }

    /// What gridflex did to job `job`, if anything.
    pub fn action(&self, job: u32) -> Option<Action> {
        self.entries.get(&job).map(|e| e.action)
    }

    /// Whether the ledger names no job.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The jobs, by id.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &LedgerEntry> {
        self.entries.values()
    }

    /// Records that gridflex suspends or holds `job`; on disk before it returns. On a
    /// write error the ledger is unchanged (in memory and on disk). A job already
    /// recorded keeps its first entry.
    pub fn record(
        &mut self,
        job: u32,
        action: Action,
        at: DateTime<Utc>,
    ) -> Result<(), SlurmError> {
        if self.entries.contains_key(&job) {
            return Ok(());
        }
        self.entries.insert(
            job,
            LedgerEntry {
                job,
                action,
                suspended_at: at,
            },
        );
        self.save().inspect_err(|_| {
            self.entries.remove(&job);
        })
    }

    /// Records that `job` is no longer gridflex's to resume.
    pub fn forget(&mut self, job: u32) -> Result<(), SlurmError> {
        let Some(entry) = self.entries.remove(&job) else {
            return Ok(());
        };
        self.save().inspect_err(|_| {
            self.entries.insert(job, entry);
        })
    }

    fn save(&self) -> Result<(), SlurmError> {
        let err = |what: &str, e: std::io::Error| SlurmError::Ledger {
            path: self.path.clone(),
            detail: format!("{what}: {e}"),
        };
        let file = File {
            format: FORMAT.into(),
            suspended: self.entries.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| SlurmError::Ledger {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut f = std::fs::File::create(&tmp).map_err(|e| err("create", e))?;
        f.write_all(&bytes).map_err(|e| err("write", e))?;
        f.sync_all().map_err(|e| err("sync", e))?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err("rename", e)
        })?;
        // The rename is durable only once the directory is synced.
        if let Ok(d) = std::fs::File::open(&dir) {
            d.sync_all().map_err(|e| err("sync directory", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "gridflex-slurm-ledger-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&dir);
        dir
    }

    #[test]
    fn survives_reopening_and_refuses_bad_files() -> Result<(), SlurmError> {
        let dir = temp("reopen");
        let path = dir.join("ledger.json");
        let mut l = Ledger::open(&path)?;
        assert!(l.is_empty());
        l.record(7, Action::Suspend, Utc::now())?;
        l.record(9, Action::Hold, Utc::now())?;
        l.record(7, Action::Hold, Utc::now())?;
        let l2 = Ledger::open(&path)?;
        assert_eq!(l2.entries().map(|e| e.job).collect::<Vec<_>>(), [7, 9]);
        assert_eq!(
            (l2.action(7), l2.action(9), l2.action(8)),
            (Some(Action::Suspend), Some(Action::Hold), None)
        );
        l.forget(7)?;
        l.forget(8)?;
        assert_eq!(Ledger::open(&path)?.entries().len(), 1);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0), 1);

        std::fs::write(&path, b"{not json").map_err(|e| SlurmError::Ledger {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        assert!(matches!(
            Ledger::open(&path),
            Err(SlurmError::Ledger { .. })
        ));
        std::fs::write(&path, br#"{"format":"other/9","suspended":[]}"#).map_err(|e| {
            SlurmError::Ledger {
                path: path.clone(),
                detail: e.to_string(),
            }
        })?;
        assert!(Ledger::open(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn a_failed_write_changes_nothing() -> Result<(), SlurmError> {
        let dir = temp("fail");
        let path = dir.join("missing-dir").join("ledger.json");
        let mut l = Ledger::open(&path)?;
        assert!(l.record(3, Action::Suspend, Utc::now()).is_err());
        assert!(!l.contains(3));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn a_hostile_file_is_an_error_or_a_ledger_never_a_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let dir = temp("hostile");
            let path = dir.join("ledger.json");
            std::fs::write(&path, &bytes).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let _ = Ledger::open(&path);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
