//! [`SlurmCli`]: runs `squeue` and `scontrol` and reads their answers.
//!
//! Every call runs under a timeout (killed when it lapses), with `SLURM_JWT` removed
//! from the child's environment (with it set, 22.05's scontrol acts but exits 1) and
//! with its output read up to a bound. Failures become typed [`SlurmError`]s from the
//! messages Slurm 22.05 prints (`shared/reference/integration-peers.md`, section 3).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::SlurmError;
use crate::job::JobState;

/// The default bound on one command's standard output (a `squeue --json` of 10,000
/// jobs is about 33 MB).
pub const MAX_OUTPUT: u64 = 512 << 20;

/// Runs Slurm's command-line tools.
///
/// ```no_run
/// use gridflex_slurm::cli::SlurmCli;
/// # async fn demo() -> Result<(), gridflex_slurm::SlurmError> {
/// let cli = SlurmCli::new();
/// let json = cli.squeue_json().await?;       // the whole queue
/// cli.suspend(42).await?;                     // scontrol suspend 42
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SlurmCli {
    squeue: PathBuf,
    scontrol: PathBuf,
    timeout: Duration,
    max_output: u64,
}

impl Default for SlurmCli {
    fn default() -> Self {
        Self::new()
    }
}

struct Output {
    ok: bool,
    status: String,
    stdout: Vec<u8>,
    stderr: String,
}

impl SlurmCli {
    /// `squeue` and `scontrol` from `PATH`, 15 s per call (scontrol retries an
    /// unreachable controller for about 9 s before it gives up).
    pub fn new() -> Self {
        Self {
            squeue: "squeue".into(),
            scontrol: "scontrol".into(),
            timeout: Duration::from_secs(15),
            max_output: MAX_OUTPUT,
        }
    }

    /// Uses these programs instead (a wrapper, a path outside `PATH`).
    pub fn with_programs(
        mut self,
        squeue: impl Into<PathBuf>,
        scontrol: impl Into<PathBuf>,
    ) -> Self {
        self.squeue = squeue.into();
        self.scontrol = scontrol.into();
        self
    }

    /// Each call's time limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most bytes of standard output read from one command (default [`MAX_OUTPUT`]);
    /// more is an error, never a longer read.
    pub fn with_max_output(mut self, bytes: u64) -> Self {
        self.max_output = bytes;
        self
    }

    async fn run(&self, program: &Path, args: &[&str]) -> Result<Output, SlurmError> {
        let command = command_line(program, args);
        let mut child = Command::new(program)
            .args(args)
            .env_remove("SLURM_JWT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SlurmError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let work = async {
            let (out, err) = tokio::join!(
                read_bounded(stdout, self.max_output),
                read_bounded(stderr, 64 << 10)
            );
            let status = child.wait().await;
            (out, err, status)
        };
        let (out, err, status) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| SlurmError::Timeout {
                command: command.clone(),
                timeout: self.timeout,
            })?;
        let io = |e: std::io::Error| SlurmError::CommandFailed {
            command: command.clone(),
            status: "unknown".into(),
            detail: e.to_string(),
        };
        let stdout = out.map_err(io)?;
        let stderr = err.map_err(io)?;
        let status = status.map_err(io)?;
        if stdout.len() as u64 > self.max_output {
            return Err(SlurmError::CommandFailed {
                command,
                status: status.to_string(),
                detail: format!("more than {} bytes of output", self.max_output),
            });
        }
        let mut stderr = String::from_utf8_lossy(&stderr).trim().to_owned();
        let keep = boundary(&stderr, 4096);
        stderr.truncate(keep);
        Ok(Output {
            ok: status.success(),
            status: status.to_string(),
            stdout,
            stderr,
        })
    }

    /// `squeue --json`: the whole queue (22.05 ignores filters with `--json`).
    pub async fn squeue_json(&self) -> Result<Vec<u8>, SlurmError> {
        let out = self.run(&self.squeue, &["--json"]).await?;
        if !out.ok {
            return Err(classify(command_line(&self.squeue, &["--json"]), &out));
        }
        Ok(out.stdout)
    }

    /// `scontrol suspend <job>`. Suspending a suspended job succeeds (Slurm says rc 0).
    pub async fn suspend(&self, job: u32) -> Result<(), SlurmError> {
        self.act("suspend", job).await
    }

    /// `scontrol resume <job>`. Resuming a running job is [`SlurmError::WrongState`].
    pub async fn resume(&self, job: u32) -> Result<(), SlurmError> {
        self.act("resume", job).await
    }

    /// `scontrol hold <job>`: a pending job stays pending (priority 0). Slurm accepts it
    /// for a running job too, where it does nothing until a requeue.
    pub async fn hold(&self, job: u32) -> Result<(), SlurmError> {
        self.act("hold", job).await
    }

    /// `scontrol release <job>`: undoes a hold (succeeds on a job not held).
    pub async fn release(&self, job: u32) -> Result<(), SlurmError> {
        self.act("release", job).await
    }

    async fn act(&self, verb: &'static str, job: u32) -> Result<(), SlurmError> {
        let id = job.to_string();
        let args = [verb, id.as_str()];
        let out = self.run(&self.scontrol, &args).await?;
        if out.ok {
            return Ok(());
        }
        let e = classify(command_line(&self.scontrol, &args), &out);
        let e = match e {
            SlurmError::WrongState { state, .. } => SlurmError::WrongState {
                job,
                operation: verb,
                state,
            },
            SlurmError::JobGone { .. } => SlurmError::JobGone { job },
            // 22.05 answers "Unexpected message received" both for an unknown job and
            // for an unreachable controller: ask for the job to tell them apart.
            SlurmError::CommandFailed { .. } => match self.job_state(job).await {
                Err(unreachable) => unreachable,
                Ok(None | Some(JobState::Finished(_))) => SlurmError::JobGone { job },
                Ok(Some(_)) => e,
            },
            other => other,
        };
        Err(e)
    }

    /// The job's state (`scontrol -o show job <job>`); `None` when Slurm does not know it.
    pub async fn job_state(&self, job: u32) -> Result<Option<JobState>, SlurmError> {
        Ok(self.job_info(job).await?.map(|(state, _)| state))
    }

    /// The job's state and reason (`JobState=`, `Reason=`, e.g. `JobHeldAdmin`);
    /// `None` when Slurm does not know the job.
    pub async fn job_info(&self, job: u32) -> Result<Option<(JobState, String)>, SlurmError> {
        let id = job.to_string();
        let args = ["-o", "show", "job", id.as_str()];
        let out = self.run(&self.scontrol, &args).await?;
        let command = command_line(&self.scontrol, &args);
        if !out.ok {
            return match classify(command, &out) {
                SlurmError::JobGone { .. } => Ok(None),
                e => Err(e),
            };
        }
        let text = String::from_utf8_lossy(&out.stdout);
        match state_of(&text, job) {
            Some(state) => Ok(Some((
                state,
                field_of(&text, job, "Reason=").unwrap_or_default(),
            ))),
            None => Err(SlurmError::Text {
                command,
                detail: format!("no JobState for job {job} in {:?}", truncate(&text, 200)),
            }),
        }
    }

    /// The process ids of the job's steps on this node (`scontrol listpids <job>`, which
    /// asks the local slurmd); empty when the job has no step here (not yet, or no more).
    pub async fn listpids(&self, job: u32) -> Result<Vec<u32>, SlurmError> {
        let id = job.to_string();
        let args = ["listpids", id.as_str()];
        let out = self.run(&self.scontrol, &args).await?;
        // "no steps" and "does not exist on node": nothing of the job runs here (yet:
        // the second is what a job that has just started says before its step exists).
        if !out.ok
            && !out.stderr.contains("no steps")
            && !out.stderr.contains("does not exist on node")
        {
            return Err(classify(command_line(&self.scontrol, &args), &out));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut pids = Vec::new();
        for line in text.lines().skip(1) {
            let mut fields = line.split_whitespace();
            let (Some(pid), Some(owner)) = (fields.next(), fields.next()) else {
                continue;
            };
            if owner == id
                && let Ok(pid) = pid.parse()
            {
                pids.push(pid);
            }
        }
        Ok(pids)
    }
}

/// The job's state from one line of `scontrol -o show job`.
fn state_of(text: &str, job: u32) -> Option<JobState> {
    field_of(text, job, "JobState=").map(|s| JobState::parse(&s))
}

/// The first `key=value` of the job's line (`key` with its `=`); values up to a space.
fn field_of(text: &str, job: u32, key: &str) -> Option<String> {
    let want = format!("JobId={job}");
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(want.as_str()))?;
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(key))
        .map(str::to_owned)
}

fn truncate(s: &str, n: usize) -> &str {
    &s[..boundary(s, n)]
}

/// The largest char boundary of `s` at or below `n`.
fn boundary(s: &str, n: usize) -> usize {
    if n >= s.len() {
        return s.len();
    }
    (0..=n).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

fn command_line(program: &Path, args: &[&str]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// A failed command's error, from what Slurm 22.05 printed.
fn classify(command: String, out: &Output) -> SlurmError {
    let msg = out.stderr.as_str();
    let detail = if msg.is_empty() {
        "no message".to_owned()
    } else {
        msg.to_owned()
    };
    if msg.contains("Access/permission denied") || msg.contains("Invalid user") {
        SlurmError::NoPermission { command, detail }
    } else if [
        "Unable to contact slurm controller",
        "Socket timed out",
        "Connection refused",
        "connect failure",
        "Zero Bytes were transmitted",
    ]
    .iter()
    .any(|m| msg.contains(m))
    {
        SlurmError::ControllerUnreachable { command, detail }
    } else if msg.contains("Invalid job id specified")
        || msg.contains("already completing or completed")
        || msg.contains("Job has already finished")
    {
        SlurmError::JobGone { job: 0 }
    } else if msg.contains("Job is not suspended") {
        SlurmError::WrongState {
            job: 0,
            operation: "resume",
            state: "RUNNING".into(),
        }
    } else if msg.contains("Job is pending execution") {
        SlurmError::WrongState {
            job: 0,
            operation: "suspend",
            state: "PENDING".into(),
        }
    } else {
        SlurmError::CommandFailed {
            command,
            status: out.status.clone(),
            detail,
        }
    }
}

async fn read_bounded<R: AsyncRead + Unpin>(r: Option<R>, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(r) = r {
        // One byte over the limit tells "too long" from "exactly the limit".
        r.take(limit + 1).read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_job_state_lines() {
        let text = "JobId=12 JobName=a JobState=SUSPENDED Reason=None Comment=x JobState=y\n";
        assert_eq!(state_of(text, 12), Some(JobState::Suspended));
        assert_eq!(state_of(text, 1), None);
        assert_eq!(state_of("", 12), None);
        assert_eq!(
            field_of(
                "JobId=3 JobState=PENDING Reason=JobHeldAdmin Dependency=(null)",
                3,
                "Reason="
            )
            .as_deref(),
            Some("JobHeldAdmin")
        );
    }

    #[test]
    fn classifies_what_22_05_prints() {
        let out = |stderr: &str| Output {
            ok: false,
            status: "exit status: 1".into(),
            stdout: vec![],
            stderr: stderr.into(),
        };
        let c = |s| classify("scontrol suspend 1".into(), &out(s));
        assert!(matches!(
            c("Access/permission denied for job 1"),
            SlurmError::NoPermission { .. }
        ));
        assert!(matches!(
            c("slurm_load_jobs error: Unable to contact slurm controller (connect failure)"),
            SlurmError::ControllerUnreachable { .. }
        ));
        assert!(matches!(
            c("Job/step already completing or completed for job 2"),
            SlurmError::JobGone { .. }
        ));
        assert!(matches!(
            c("Job has already finished for job 2"),
            SlurmError::JobGone { .. }
        ));
        assert!(matches!(
            c("slurm_load_jobs error: Invalid job id specified"),
            SlurmError::JobGone { .. }
        ));
        assert!(matches!(
            c("Job is not suspended for job 2"),
            SlurmError::WrongState { .. }
        ));
        assert!(matches!(
            c("Job is pending execution for job 3"),
            SlurmError::WrongState { .. }
        ));
        assert!(matches!(
            c("Unexpected message received for job 99"),
            SlurmError::CommandFailed { .. }
        ));
    }
}
