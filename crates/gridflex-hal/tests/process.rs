//! The process backend on real child processes (unix only).
#![cfg(target_os = "linux")]

use std::process::{Child, Command};

use gridflex_core::JobId;
use gridflex_hal::process::ProcessGroup;
use gridflex_hal::{ErrorKind, WorkloadControl, WorkloadState};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A child that would run for a minute; killed and reaped on drop.
struct Sleeper(Child);

impl Sleeper {
    fn spawn() -> Result<Self, std::io::Error> {
        Command::new("sleep").arg("60").spawn().map(Self)
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    fn raw(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.0.id()).unwrap_or(i32::MAX))
    }
    /// Blocks until the kernel reports the child stopped (no sleeping, no polling).
    fn wait_stopped(&self) -> Result<(), nix::Error> {
        match waitpid(self.raw(), Some(WaitPidFlag::WUNTRACED))? {
            WaitStatus::Stopped(_, _) => Ok(()),
            other => panic!("expected a stop, got {other:?}"),
        }
    }
    /// Blocks until the kernel reports the child continued.
    fn wait_continued(&self) -> Result<(), nix::Error> {
        match waitpid(self.raw(), Some(WaitPidFlag::WCONTINUED))? {
            WaitStatus::Continued(_) => Ok(()),
            other => panic!("expected a continue, got {other:?}"),
        }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn pause_and_resume_real_processes() -> TestResult {
    let (a, b) = (Sleeper::spawn()?, Sleeper::spawn()?);
    let group = ProcessGroup::new(JobId::new("sleepers")?, [a.pid(), b.pid()])?;
    assert_eq!(group.status().await?, WorkloadState::Running);

    group.pause().await?;
    a.wait_stopped()?;
    b.wait_stopped()?;
    assert_eq!(group.status().await?, WorkloadState::Paused);
    group.pause().await?; // a second pause is a no-op
    assert_eq!(group.status().await?, WorkloadState::Paused);

    group.resume().await?;
    a.wait_continued()?;
    b.wait_continued()?;
    assert_eq!(group.status().await?, WorkloadState::Running);

    // One member stopped from outside: the job is mixed.
    let only_a = ProcessGroup::new(JobId::new("a")?, [a.pid()])?;
    only_a.pause_now()?;
    a.wait_stopped()?;
    assert_eq!(group.status().await?, WorkloadState::Mixed);
    only_a.resume_now()?;
    a.wait_continued()?;
    Ok(())
}

#[tokio::test]
async fn vanished_process_is_a_typed_error_and_nothing_stays_paused() -> TestResult {
    let alive = Sleeper::spawn()?;
    let mut gone = Command::new("true").spawn()?;
    let gone_pid = gone.id();
    gone.wait()?; // exited and reaped: its pid no longer exists

    let group = ProcessGroup::new(JobId::new("half")?, [alive.pid(), gone_pid])?;
    let err = group.pause().await.err().ok_or("pause should fail")?;
    assert_eq!(err.kind(), ErrorKind::DeviceLost);
    assert!(err.to_string().contains(&gone_pid.to_string()), "{err}");
    // The live process was stopped and then continued again: SIGCONT takes effect when
    // sent, so it is running now.
    let alive_only = ProcessGroup::new(JobId::new("alive")?, [alive.pid()])?;
    assert_eq!(alive_only.status().await?, WorkloadState::Running);

    let dead = ProcessGroup::new(JobId::new("dead")?, [gone_pid])?;
    assert_eq!(dead.status().await?, WorkloadState::Exited);
    assert_eq!(
        dead.resume().await.err().map(|e| e.kind()),
        Some(ErrorKind::DeviceLost)
    );
    Ok(())
}

#[tokio::test]
async fn killed_but_unreaped_process_reads_as_exited() -> TestResult {
    let mut child = Command::new("sleep").arg("60").spawn()?;
    let pid = child.id();
    child.kill()?;
    // Wait for the exit without reaping, so the pid stays a zombie.
    let raw = Pid::from_raw(i32::try_from(pid)?);
    let status = nix::sys::wait::waitid(
        nix::sys::wait::Id::Pid(raw),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
    )?;
    assert!(matches!(status, WaitStatus::Signaled(..)), "{status:?}");
    let group = ProcessGroup::new(JobId::new("zombie")?, [pid])?;
    assert_eq!(group.status().await?, WorkloadState::Exited);
    child.wait()?;
    Ok(())
}
