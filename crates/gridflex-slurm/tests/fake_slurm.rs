//! `SlurmCli` and `SlurmCluster` against stand-in `squeue`/`scontrol` scripts that
//! print what Slurm 22.05 prints in situations a healthy test cluster cannot produce on
//! demand: a hung controller, a lost controller, an unknown job, huge output. Runs
//! everywhere (no Slurm needed); the real cluster is exercised by `tests/live.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gridflex_hal::{ErrorKind, WorkloadControl};
use gridflex_slurm::{DeviceMap, Policy, Resumed, SlurmCli, SlurmCluster, SlurmError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(name: &str) -> Result<Dir, std::io::Error> {
    let d = std::env::temp_dir().join(format!("gridflex-fake-slurm-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(Dir(d))
}

fn script(dir: &Path, name: &str, body: &str) -> Result<PathBuf, std::io::Error> {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    Ok(p)
}

#[tokio::test]
async fn a_hung_command_times_out_and_a_missing_one_is_named() -> TestResult {
    let d = dir("hung")?;
    let slow = script(&d.0, "squeue", "sleep 30")?;
    let cli = SlurmCli::new()
        .with_programs(&slow, &slow)
        .with_timeout(Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    let e = cli
        .squeue_json()
        .await
        .err()
        .ok_or("a hung squeue succeeded")?;
    assert!(matches!(e, SlurmError::Timeout { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(t0.elapsed() < Duration::from_secs(10));

    let cli = SlurmCli::new().with_programs(d.0.join("absent"), d.0.join("absent"));
    let e = cli
        .suspend(3)
        .await
        .err()
        .ok_or("a missing scontrol succeeded")?;
    assert!(
        matches!(&e, SlurmError::Spawn { program, .. } if program.ends_with("absent")),
        "{e}"
    );
    Ok(())
}

#[tokio::test]
async fn a_lost_controller_is_transient_and_an_unknown_job_is_gone() -> TestResult {
    let d = dir("lost")?;
    // "Unexpected message received" is what 22.05 prints both for a lost controller and
    // for an unknown job; the follow-up `show job` tells them apart.
    let lost = script(
        &d.0,
        "scontrol-lost",
        r#"case "$1" in
  suspend|resume) echo "Unexpected message received for job $2" >&2; exit 1;;
  *) echo "slurm_load_jobs error: Unable to contact slurm controller (connect failure)" >&2; exit 1;;
esac"#,
    )?;
    let cli = SlurmCli::new().with_programs(&lost, &lost);
    let e = cli.suspend(5).await.err().ok_or("suspend succeeded")?;
    assert!(matches!(e, SlurmError::ControllerUnreachable { .. }), "{e}");

    let unknown = script(
        &d.0,
        "scontrol-unknown",
        r#"case "$1" in
  suspend|resume) echo "Unexpected message received for job $2" >&2; exit 1;;
  *) echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1;;
esac"#,
    )?;
    let cli = SlurmCli::new().with_programs(&unknown, &unknown);
    let e = cli.resume(5).await.err().ok_or("resume succeeded")?;
    assert!(matches!(e, SlurmError::JobGone { job: 5 }), "{e}");
    assert_eq!(cli.job_state(5).await?, None);

    // squeue exits 0 with an error list while slurmctld is down.
    let down = script(
        &d.0,
        "squeue-down",
        r#"cat <<'J'
{"meta":{"plugin":{"type":"openapi\/v0.0.38"}},"errors":[{"description":"Failed while looking for jobs",
 "error_number":-1,"error":"Unspecified error","source":"slurm_load_jobs"}],"jobs":[]}
J"#,
    )?;
    let cluster = SlurmCluster::open(
        SlurmCli::new().with_programs(&down, &lost),
        Policy::default(),
        DeviceMap::default(),
        d.0.join("ledger.json"),
    )?;
    let e = cluster
        .inventory(None)
        .await
        .err()
        .ok_or("inventory succeeded")?;
    assert!(matches!(e, SlurmError::ControllerUnreachable { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Transient);
    Ok(())
}

#[tokio::test]
async fn ownership_holds_when_scontrol_fails() -> TestResult {
    let d = dir("own")?;
    let log = d.0.join("calls");
    // A running job whose suspend the controller never answers.
    let body = format!(
        r#"echo "$@" >> {log}
case "$1" in
  -o) echo "JobId=$4 JobName=x JobState=RUNNING Reason=None";;
  suspend) sleep 30;;
  resume) echo "Job is not suspended for job $2" >&2; exit 1;;
esac"#,
        log = log.display()
    );
    let scontrol = script(&d.0, "scontrol", &body)?;
    let ledger = d.0.join("ledger.json");
    let cluster = SlurmCluster::open(
        SlurmCli::new()
            .with_programs("squeue", &scontrol)
            .with_timeout(Duration::from_millis(300)),
        Policy::default(),
        DeviceMap::default(),
        &ledger,
    )?;
    let e = cluster
        .control(8)?
        .pause()
        .await
        .err()
        .ok_or("pause succeeded")?;
    assert_eq!(e.kind(), ErrorKind::Transient);
    // The suspend may have happened: the job stays gridflex's until settled.
    assert_eq!(cluster.owned(), [8]);
    // A resume finds it running: settled, forgotten.
    assert_eq!(cluster.resume(8).await?, Resumed::AlreadyRunning);
    assert!(cluster.owned().is_empty());
    // A job gridflex did not suspend: resume does not even call scontrol.
    let before = std::fs::read_to_string(&log)?.lines().count();
    assert_eq!(cluster.resume(9).await?, Resumed::NotOurs);
    assert_eq!(std::fs::read_to_string(&log)?.lines().count(), before);

    // A refused suspend (no permission) leaves no ledger entry.
    let denied = script(
        &d.0,
        "scontrol-denied",
        r#"case "$1" in
  -o) echo "JobId=$4 JobState=RUNNING";;
  *) echo "Access/permission denied for job $2" >&2; exit 1;;
esac"#,
    )?;
    let cluster = SlurmCluster::open(
        SlurmCli::new().with_programs("squeue", &denied),
        Policy::default(),
        DeviceMap::default(),
        d.0.join("ledger2.json"),
    )?;
    let e = cluster
        .control(4)?
        .pause()
        .await
        .err()
        .ok_or("pause succeeded")?;
    assert_eq!(e.kind(), ErrorKind::NoPermission, "{e}");
    assert!(cluster.owned().is_empty());
    Ok(())
}

#[tokio::test]
async fn output_beyond_the_bound_is_refused() -> TestResult {
    let d = dir("big")?;
    // A command that would print without end: reading stops one byte past the bound.
    let big = script(&d.0, "squeue", "cat /dev/zero")?;
    let cli = SlurmCli::new()
        .with_programs(&big, &big)
        .with_timeout(Duration::from_secs(30))
        .with_max_output(1 << 20);
    let e = cli
        .squeue_json()
        .await
        .err()
        .ok_or("endless output accepted")?;
    assert!(
        matches!(&e, SlurmError::CommandFailed { detail, .. } if detail.contains("bytes of output")),
        "{e}"
    );
    Ok(())
}
