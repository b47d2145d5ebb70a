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

/// Writes an executable `sh` script. A child process writes it: a file this process
/// had open for writing could be inherited, for an instant, by a process another test
/// forks at the same time, and running the script then fails with "Text file busy"
/// (a fresh-clone CI run saw it).
fn script(dir: &Path, name: &str, body: &str) -> Result<PathBuf, std::io::Error> {
    use std::io::Write;
    let p = dir.join(name);
    let mut writer = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"cat > "$0" && chmod 755 "$0""#)
        .arg(&p)
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = writer.stdin.take() {
        stdin.write_all(format!("#!/bin/sh\n{body}\n").as_bytes())?;
    }
    let status = writer.wait()?;
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "writing {}: {status}",
            p.display()
        )));
    }
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
            // Long enough for every answering call on a loaded machine; the suspend,
            // which never answers, still times out.
            .with_timeout(Duration::from_secs(3)),
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

#[tokio::test]
async fn job_sync_reports_changes_and_backs_off_while_the_controller_is_away() -> TestResult {
    use gridflex_slurm::{Backoff, JobSync, SlaClass};
    let d = dir("sync")?;
    let answer = d.0.join("answer.json");
    // squeue prints whatever the test last wrote to answer.json.
    let squeue = script(&d.0, "squeue", &format!("cat {}", answer.display()))?;
    let doc = |jobs: &str| {
        format!(
            r#"{{"meta":{{"plugin":{{"type":"openapi/v0.0.38"}}}},"errors":[],"jobs":[{jobs}]}}"#
        )
    };
    let job = |id: u32, state: &str, idx: &str| {
        format!(
            r#"{{"job_id":{id},"job_state":"{state}","nodes":"n1","gres_detail":["gpu:1(IDX:{idx})"],"comment":"gridflex:flexible"}}"#
        )
    };
    let policy: Policy = serde_json::from_str(
        r#"{"rules":[{"match":{"comment_tag":"gridflex:flexible"},"class":"flexible","floor":0.5,"max_pause_s":60}]}"#,
    )?;
    let cluster = SlurmCluster::open(
        SlurmCli::new().with_programs(&squeue, "scontrol"),
        policy,
        DeviceMap::default(),
        d.0.join("ledger.json"),
    )?;
    let mut sync = JobSync::new(
        cluster,
        Duration::from_secs(5),
        Backoff::new(Duration::from_millis(100), Duration::from_millis(300)),
    );
    assert!(sync.is_stale());

    std::fs::write(
        &answer,
        doc(&format!(
            "{},{}",
            job(1, "RUNNING", "0"),
            job(2, "RUNNING", "1")
        )),
    )?;
    let diff = sync.refresh().await?;
    assert_eq!(diff.started.len(), 2);
    assert!(!diff.recovered, "the first refresh follows no outage");
    assert!(!sync.is_stale());
    assert_eq!(sync.next_refresh_in(), Duration::from_secs(5));

    // Job 1 suspended, job 2 ended, job 3 started.
    std::fs::write(
        &answer,
        doc(&format!(
            "{},{}",
            job(1, "SUSPENDED", "0"),
            job(3, "RUNNING", "1")
        )),
    )?;
    let diff = sync.refresh().await?;
    assert_eq!(
        diff.ended.iter().map(|j| j.as_str()).collect::<Vec<_>>(),
        ["slurm-2"]
    );
    assert_eq!(
        diff.started.iter().map(|j| j.job.id).collect::<Vec<_>>(),
        [3]
    );
    assert_eq!(
        diff.changed.iter().map(|j| j.job.id).collect::<Vec<_>>(),
        [1]
    );

    // The controller goes away: errors, every job pinned, back-off doubling to its cap.
    std::fs::write(
        &answer,
        r#"{"meta":{"plugin":{"type":"openapi/v0.0.38"}},"errors":[{"description":"Failed while looking for jobs","error":"Unspecified error","source":"slurm_load_jobs"}],"jobs":[]}"#,
    )?;
    let mut waits = Vec::new();
    for _ in 0..3 {
        let e = sync.refresh().await.err().ok_or("refresh succeeded")?;
        assert_eq!(e.kind(), ErrorKind::Transient);
        waits.push(sync.next_refresh_in().as_millis());
    }
    assert_eq!(waits, [100, 200, 300]);
    assert!(sync.is_stale());
    let view = sync.planning_view();
    assert_eq!(view.len(), 2);
    assert!(view.jobs().all(|j| j.class == SlaClass::Pinned));
    // The last good inventory is kept as it was.
    assert!(sync.inventory().jobs().all(|j| j.class.may_pause()));

    // Back: nothing changed meanwhile, so the diff is empty; the back-off resets.
    std::fs::write(
        &answer,
        doc(&format!(
            "{},{}",
            job(1, "SUSPENDED", "0"),
            job(3, "RUNNING", "1")
        )),
    )?;
    // Nothing changed meanwhile, but the diff says every class applies again.
    let diff = sync.refresh().await?;
    assert!(diff.recovered);
    assert!(diff.started.is_empty() && diff.ended.is_empty() && diff.changed.is_empty());
    assert!(sync.refresh().await?.is_empty());
    assert!(!sync.is_stale() && sync.planning_view().jobs().all(|j| j.class.may_pause()));
    assert_eq!(sync.next_refresh_in(), Duration::from_secs(5));
    Ok(())
}
