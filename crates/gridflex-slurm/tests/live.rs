//! Against a real Slurm 22.05 cluster (started by `.ci/peers/slurm.sh`, one node
//! `localhost` with 8 fake GPUs): inventory, suspend/resume seen from `/proc`,
//! ownership, jobs ending mid-curtailment, a gridflex restart, slurmctld going away.
//!
//! Skips when `GRIDFLEX_TEST_SLURM` is unset; fails when it is set and Slurm misbehaves.
//! The tests share one cluster, so they take a lock and run one at a time; every wait
//! is a bounded poll.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use gridflex_hal::{ErrorKind, WorkloadControl, WorkloadState};
use gridflex_slurm::{
    Backoff, DeviceMap, JobState, JobSync, Paused, Policy, Resumed, SlaClass, SlurmCli,
    SlurmCluster, SlurmError,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn enabled() -> bool {
    if std::env::var_os("GRIDFLEX_TEST_SLURM").is_none() {
        eprintln!(
            "skipping: needs a Slurm cluster; set GRIDFLEX_TEST_SLURM (started by .ci/run through .ci/peers/slurm.sh)"
        );
        return false;
    }
    true
}

fn policy() -> Policy {
    let p: Result<Policy, _> = serde_json::from_str(
        r#"{"rules":[
        {"match":{"partition":"batch"},"class":"deferrable","deadline":{"from":"time_limit","margin_s":60}},
        {"match":{"comment_tag":"gridflex:flexible"},"class":"flexible","floor":0.5,"max_pause_s":600},
        {"match":{"comment_tag":"gridflex:pinned"},"class":"pinned"}]}"#,
    );
    p.unwrap_or_else(|e| panic!("test policy: {e}"))
}

/// A scratch directory and ledger for one test.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("gridflex-slurm-live-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        // slurmd runs the job as root here, but keep the directory open to anyone.
        let _ = Command::new("chmod").arg("0777").arg(&dir).status();
        Self { dir }
    }

    fn ledger(&self) -> PathBuf {
        self.dir.join("ledger.json")
    }

    fn cluster(&self) -> Result<std::sync::Arc<SlurmCluster>, SlurmError> {
        SlurmCluster::open(
            SlurmCli::new(),
            policy(),
            DeviceMap::default(),
            self.ledger(),
        )
    }
}

/// Jobs submitted by one test; cancelled when it ends, whatever happens.
struct Jobs {
    ids: Vec<u32>,
    scratch: PathBuf,
}

impl Drop for Jobs {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = Command::new("scancel")
                .arg(id.to_string())
                .env_remove("SLURM_JWT")
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

impl Jobs {
    fn new(scratch: &Scratch) -> Self {
        Self {
            ids: Vec::new(),
            scratch: scratch.dir.clone(),
        }
    }

    /// Submits a job that writes its GPU indices to a file and then loops.
    fn submit(&mut self, args: &[&str]) -> Result<u32, Box<dyn std::error::Error>> {
        let script = self.scratch.join("job.sh");
        let body = format!(
            "#!/bin/bash\necho \"$SLURM_JOB_GPUS\" > {}/gpus-$SLURM_JOB_ID\nwhile true; do sleep 0.5; done\n",
            self.scratch.display()
        );
        std::fs::write(&script, body)?;
        let out = Command::new("sbatch")
            .args(["--parsable", "-o", "/dev/null", "--chdir"])
            .arg(&self.scratch)
            .args(args)
            .arg(&script)
            .env_remove("SLURM_JWT")
            .output()?;
        if !out.status.success() {
            return Err(
                format!("sbatch {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into(),
            );
        }
        let id: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .parse()?;
        self.ids.push(id);
        Ok(id)
    }
}

/// Polls `f` every 10 ms until it says yes or `within` passes.
async fn wait_for<F, Fut>(
    what: &str,
    within: Duration,
    mut f: F,
) -> Result<Duration, Box<dyn std::error::Error>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, Box<dyn std::error::Error>>>,
{
    let t0 = Instant::now();
    loop {
        if f().await? {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > within {
            return Err(format!("timed out after {within:?} waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn state(cli: &SlurmCli, job: u32) -> Result<Option<JobState>, Box<dyn std::error::Error>> {
    Ok(cli.job_state(job).await?)
}

async fn wait_state(
    cli: &SlurmCli,
    job: u32,
    want: JobState,
) -> Result<(), Box<dyn std::error::Error>> {
    wait_for(
        &format!("job {job} {want}"),
        Duration::from_secs(30),
        || async { Ok(state(cli, job).await? == Some(want.clone())) },
    )
    .await
    .map(|_| ())
}

/// The kernel's state letters of the job's processes on this node (exited ones left out).
async fn proc_states(
    cli: &SlurmCli,
    job: u32,
) -> Result<BTreeMap<u32, char>, Box<dyn std::error::Error>> {
    let mut out = BTreeMap::new();
    for pid in cli.listpids(job).await? {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(close) = stat.rfind(')')
            && let Some(c) = stat[close + 1..].trim_start().chars().next()
        {
            out.insert(pid, c);
        }
    }
    Ok(out)
}

/// Whether every process of the job is stopped (`T`), and there is at least one.
async fn all_stopped(cli: &SlurmCli, job: u32) -> Result<bool, Box<dyn std::error::Error>> {
    let s = proc_states(cli, job).await?;
    Ok(!s.is_empty() && s.values().all(|&c| c == 'T'))
}

/// Whether no process of the job is stopped, and there is at least one.
async fn none_stopped(cli: &SlurmCli, job: u32) -> Result<bool, Box<dyn std::error::Error>> {
    let s = proc_states(cli, job).await?;
    Ok(!s.is_empty() && s.values().all(|&c| c != 'T'))
}

fn scontrol(args: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let out = Command::new("scontrol")
        .args(args)
        .env_remove("SLURM_JWT")
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "scontrol {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_shows_sbatch_jobs_with_their_gpus_and_classes() -> TestResult {
    if !enabled() {
        return Ok(());
    }
    let _serial = LOCK.lock().await;
    let scratch = Scratch::new("inventory");
    let cluster = scratch.cluster()?;
    let cli = cluster.cli().clone();
    let mut jobs = Jobs::new(&scratch);
    let flex = jobs.submit(&["--gres=gpu:2", "--comment=gridflex:flexible", "-J", "flex"])?;
    let batch = jobs.submit(&["--gres=gpu:1", "-p", "batch", "-t", "30", "-J", "batch"])?;
    let plain = jobs.submit(&["--gres=gpu:1", "-J", "plain"])?;
    let pinned = jobs.submit(&[
        "--gres=gpu:1",
        "--comment=owner=ops gridflex:pinned",
        "-J",
        "pinned",
    ])?;
    let too_big = jobs.submit(&["--gres=gpu:8", "-J", "too-big"])?;
    for id in [flex, batch, plain, pinned] {
        wait_state(&cli, id, JobState::Running).await?;
    }

    let mut times = Vec::new();
    let mut inventory = None;
    for _ in 0..5 {
        let t0 = Instant::now();
        inventory = Some(cluster.inventory(None).await?);
        times.push(t0.elapsed());
    }
    eprintln!(
        "live inventory refresh (squeue --json + parse + classify), median of 5: {:?}",
        median(times)
    );
    let inventory = inventory.ok_or("no inventory")?;

    for id in [flex, batch, plain, pinned] {
        let job = inventory.get(id).ok_or(format!("job {id} missing"))?;
        assert_eq!(job.job.state, JobState::Running);
        // The GPUs the job itself was given (SLURM_JOB_GPUS) are the devices listed.
        let gpus_file = scratch.dir.join(format!("gpus-{id}"));
        wait_for("the job's GPU file", Duration::from_secs(10), || async {
            Ok(gpus_file.exists())
        })
        .await?;
        let inside = std::fs::read_to_string(&gpus_file)?;
        let want: Vec<String> = inside
            .trim()
            .split(',')
            .map(|i| format!("localhost/gpu{i}"))
            .collect();
        let got: Vec<&str> = job.devices.iter().map(|d| d.as_str()).collect();
        assert_eq!(got, want, "job {id}");
    }
    assert!(
        matches!(inventory.get(flex).map(|j| &j.class), Some(SlaClass::Flexible { floor, .. }) if *floor == 0.5)
    );
    let b = inventory.get(batch).ok_or("batch")?;
    let end = b.job.end.ok_or("batch job has no end")?;
    assert_eq!(
        b.class,
        SlaClass::Deferrable {
            deadline: end - chrono::TimeDelta::seconds(60)
        }
    );
    assert_eq!(
        inventory.get(plain).map(|j| &j.class),
        Some(&SlaClass::UNMATCHED)
    );
    assert_eq!(
        inventory.get(pinned).map(|j| &j.class),
        Some(&SlaClass::Pinned)
    );
    let big = inventory.get(too_big).ok_or("pending job missing")?;
    assert_eq!(big.job.state, JobState::Pending);
    assert!(big.devices.is_empty());
    // Five GPUs in use, no GPU given twice.
    let mut all: Vec<_> = inventory
        .jobs()
        .flat_map(|j| j.devices.iter().cloned())
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((n, all.len()), (5, 5));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curtailment_suspends_exactly_the_planned_jobs_and_resumes_only_its_own() -> TestResult {
    if !enabled() {
        return Ok(());
    }
    let _serial = LOCK.lock().await;
    let scratch = Scratch::new("curtail");
    let cluster = scratch.cluster()?;
    let cli = cluster.cli().clone();
    let mut jobs = Jobs::new(&scratch);
    let a = jobs.submit(&["--gres=gpu:2", "--comment=gridflex:flexible"])?;
    let b = jobs.submit(&["--gres=gpu:1", "--comment=gridflex:flexible"])?;
    let critical = jobs.submit(&["--gres=gpu:1"])?;
    let by_hand = jobs.submit(&["--gres=gpu:1", "--comment=gridflex:flexible"])?;
    for id in [a, b, critical, by_hand] {
        wait_state(&cli, id, JobState::Running).await?;
        wait_for("the job's processes", Duration::from_secs(10), || {
            none_stopped(&cli, id)
        })
        .await?;
    }
    // An operator suspends one job themselves.
    scontrol(&["suspend", &by_hand.to_string()])?;
    wait_for(
        "the hand-suspended job stopped",
        Duration::from_secs(10),
        || all_stopped(&cli, by_hand),
    )
    .await?;

    // The plan: pause the flexible jobs (gridflex's own choice from the inventory).
    let inventory = cluster.inventory(None).await?;
    let planned: Vec<u32> = inventory
        .jobs()
        .filter(|j| {
            j.class.may_pause() && j.job.state == JobState::Running && [a, b].contains(&j.job.id)
        })
        .map(|j| j.job.id)
        .collect();
    assert_eq!(planned, [a, b]);
    assert_eq!(
        inventory.get(by_hand).map(|j| &j.job.state),
        Some(&JobState::Suspended)
    );

    let controls: Vec<_> = planned
        .iter()
        .map(|&id| cluster.control(id))
        .collect::<Result<_, _>>()?;
    let mut to_stopped = Vec::new();
    let mut call = Vec::new();
    for round in 0..5 {
        for c in &controls {
            let t0 = Instant::now();
            c.pause().await?;
            call.push(t0.elapsed());
            wait_for(
                "suspended processes in state T",
                Duration::from_secs(10),
                || all_stopped(&cli, c.slurm_id()),
            )
            .await?;
            to_stopped.push(t0.elapsed());
            assert_eq!(c.status().await?, WorkloadState::Paused);
        }
        assert_eq!(cluster.owned(), [a, b]);
        // The others are left alone.
        assert!(none_stopped(&cli, critical).await?, "critical job touched");
        assert!(all_stopped(&cli, by_hand).await?);
        // Slurm holds back a resume within 2 s of the suspend; the test need not.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        for c in &controls {
            c.resume().await?;
            wait_for("resumed processes running", Duration::from_secs(10), || {
                none_stopped(&cli, c.slurm_id())
            })
            .await?;
            assert_eq!(c.status().await?, WorkloadState::Running);
        }
        assert!(
            cluster.owned().is_empty(),
            "round {round}: ledger not empty"
        );
    }
    eprintln!(
        "curtail request -> every process of the job stopped (state T), median of {}: {:?} (min {:?}, max {:?})",
        to_stopped.len(),
        median(to_stopped.clone()),
        to_stopped.iter().min().copied().unwrap_or_default(),
        to_stopped.iter().max().copied().unwrap_or_default()
    );
    eprintln!(
        "of which pause() itself (state check, ledger write, scontrol suspend), median: {:?}",
        median(call)
    );

    // gridflex never resumes the job an operator suspended, even when asked to.
    let hand = cluster.control(by_hand)?;
    assert_eq!(cluster.resume(by_hand).await?, Resumed::NotOurs);
    hand.resume().await?;
    // Nor does pausing it make it gridflex's.
    assert_eq!(cluster.pause(by_hand).await?, Paused::AlreadyByOthers);
    assert!(cluster.recover().await.resumed.is_empty());
    assert_eq!(state(&cli, by_hand).await?, Some(JobState::Suspended));
    assert!(all_stopped(&cli, by_hand).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_end_or_start_mid_event_are_seen_and_nothing_is_left_suspended() -> TestResult {
    if !enabled() {
        return Ok(());
    }
    let _serial = LOCK.lock().await;
    let scratch = Scratch::new("midevent");
    let cluster = scratch.cluster()?;
    let cli = cluster.cli().clone();
    let mut jobs = Jobs::new(&scratch);
    let mut sync = JobSync::new(cluster.clone(), Duration::from_secs(1), Backoff::default());
    let a = jobs.submit(&["--gres=gpu:1", "--comment=gridflex:flexible"])?;
    let b = jobs.submit(&["--gres=gpu:1", "--comment=gridflex:flexible"])?;
    for id in [a, b] {
        wait_state(&cli, id, JobState::Running).await?;
    }
    let first = sync.refresh().await?;
    assert!(
        first.started.iter().any(|j| j.job.id == a) && first.started.iter().any(|j| j.job.id == b)
    );
    assert!(!sync.is_stale());

    // The event: both suspended.
    for id in [a, b] {
        cluster.control(id)?.pause().await?;
    }
    // Mid-event: a ends (cancelled while suspended), c starts.
    Command::new("scancel")
        .arg(a.to_string())
        .env_remove("SLURM_JWT")
        .status()?;
    let c = jobs.submit(&["--gres=gpu:1", "--comment=gridflex:flexible"])?;
    wait_state(&cli, c, JobState::Running).await?;
    wait_for(
        &format!("job {a} to end"),
        Duration::from_secs(30),
        || async {
            Ok(!matches!(
                state(&cli, a).await?,
                Some(JobState::Suspended | JobState::Running | JobState::Completing)
            ))
        },
    )
    .await?;
    let diff = sync.refresh().await?;
    let ended: Vec<_> = diff.ended.iter().map(|j| j.as_str().to_owned()).collect();
    assert!(ended.contains(&format!("slurm-{a}")), "ended: {ended:?}");
    assert!(
        diff.started
            .iter()
            .any(|j| j.job.id == c && j.class.may_pause() && j.devices.len() == 1)
    );
    assert!(
        diff.changed
            .iter()
            .any(|j| j.job.id == b && j.job.state == JobState::Suspended)
    );

    // The event ends: the job that ended is settled, the other resumed; none left.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(cluster.resume(a).await?, Resumed::Ended);
    assert_eq!(cluster.resume(b).await?, Resumed::Resumed);
    wait_for("b running", Duration::from_secs(10), || {
        none_stopped(&cli, b)
    })
    .await?;
    assert!(cluster.owned().is_empty());
    // Pausing a job that has ended is a typed error of kind DeviceLost.
    let e = cluster
        .control(a)?
        .pause()
        .await
        .err()
        .ok_or("pause of an ended job succeeded")?;
    assert_eq!(e.kind(), ErrorKind::DeviceLost);
    assert_eq!(cluster.control(a)?.status().await?, WorkloadState::Exited);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gridflex_resumes_what_it_suspended_and_nothing_else() -> TestResult {
    if !enabled() {
        return Ok(());
    }
    let _serial = LOCK.lock().await;
    let scratch = Scratch::new("restart");
    let cli = SlurmCli::new();
    let mut jobs = Jobs::new(&scratch);
    let ours = jobs.submit(&["--gres=gpu:1", "--comment=gridflex:flexible"])?;
    let theirs = jobs.submit(&["--gres=gpu:1", "--comment=gridflex:flexible"])?;
    for id in [ours, theirs] {
        wait_state(&cli, id, JobState::Running).await?;
    }
    {
        let first = scratch.cluster()?;
        first.control(ours)?.pause().await?;
        scontrol(&["suspend", &theirs.to_string()])?;
        // The first instance goes away without resuming (a crash, a kill).
    }
    wait_for("ours stopped", Duration::from_secs(10), || {
        all_stopped(&cli, ours)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let second = scratch.cluster()?;
    assert_eq!(second.owned(), [ours]);
    let r = second.recover().await;
    assert_eq!(r.resumed, [ours]);
    assert!(r.failed.is_empty());
    wait_for("ours running again", Duration::from_secs(10), || {
        none_stopped(&cli, ours)
    })
    .await?;
    assert_eq!(state(&cli, theirs).await?, Some(JobState::Suspended));
    assert!(second.owned().is_empty());
    assert!(
        scratch.cluster()?.owned().is_empty(),
        "ledger on disk not cleared"
    );
    Ok(())
}

/// Starts slurmctld again when dropped, if it is not running.
struct Revive;

impl Drop for Revive {
    fn drop(&mut self) {
        let running = slurmctld_pid()
            .map(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
            .unwrap_or(false);
        if !running {
            let _ = Command::new("slurmctld")
                .arg("-i")
                .env_remove("SLURM_JWT")
                .status();
        }
    }
}

fn slurmctld_pid() -> Result<i32, Box<dyn std::error::Error>> {
    Ok(std::fs::read_to_string("/run/slurmctld.pid")?
        .trim()
        .parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurmctld_away_mid_event_pins_jobs_and_the_restore_finishes_when_it_returns() -> TestResult
{
    if !enabled() {
        return Ok(());
    }
    let _serial = LOCK.lock().await;
    let scratch = Scratch::new("ctld");
    let cluster = SlurmCluster::open(
        SlurmCli::new().with_timeout(Duration::from_secs(20)),
        policy(),
        DeviceMap::default(),
        scratch.ledger(),
    )?;
    let cli = cluster.cli().clone();
    let mut jobs = Jobs::new(&scratch);
    let a = jobs.submit(&["--gres=gpu:1", "--comment=gridflex:flexible"])?;
    wait_state(&cli, a, JobState::Running).await?;
    let mut sync = JobSync::new(
        cluster.clone(),
        Duration::from_secs(1),
        Backoff::new(Duration::from_millis(200), Duration::from_secs(2)),
    );
    cluster.control(a)?.pause().await?;
    wait_for("a stopped", Duration::from_secs(10), || {
        all_stopped(&cli, a)
    })
    .await?;
    sync.refresh().await?;
    assert_eq!(
        sync.inventory().get(a).map(|j| &j.job.state),
        Some(&JobState::Suspended)
    );

    // slurmctld stops (and is started again if the test fails before it restarts it).
    let _revive = Revive;
    let pid = slurmctld_pid()?;
    Command::new("kill").arg(pid.to_string()).status()?;
    wait_for("slurmctld gone", Duration::from_secs(15), || async {
        Ok(!std::path::Path::new(&format!("/proc/{pid}")).exists())
    })
    .await?;
    let e = sync
        .refresh()
        .await
        .err()
        .ok_or("refresh succeeded without slurmctld")?;
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(sync.is_stale());
    assert!(
        sync.planning_view()
            .jobs()
            .all(|j| j.class == SlaClass::Pinned)
    );
    assert_eq!(sync.next_refresh_in(), Duration::from_millis(200));
    let e = cluster
        .control(a)?
        .resume()
        .await
        .err()
        .ok_or("resume succeeded without slurmctld")?;
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert_eq!(
        cluster.owned(),
        [a],
        "a failed resume must keep the job in the ledger"
    );
    // The job stays stopped (its state lives in slurmd and the processes).
    assert!(all_stopped(&cli, a).await?);

    // slurmctld comes back (reading its saved state) while the restore keeps trying.
    let restart = tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Command::new("slurmctld")
            .arg("-i")
            .env_remove("SLURM_JWT")
            .status()
    });
    let r = cluster
        .restore_all(
            Backoff::new(Duration::from_millis(500), Duration::from_secs(2)),
            Duration::from_secs(90),
        )
        .await;
    assert!(
        restart.await?.map(|s| s.success()).unwrap_or(false),
        "slurmctld did not restart"
    );
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(r.resumed, [a]);
    wait_for("a running again", Duration::from_secs(10), || {
        none_stopped(&cli, a)
    })
    .await?;
    // The next refresh sees the cluster again: a is running, no longer suspended.
    let diff = sync.refresh().await?;
    assert!(!sync.is_stale());
    assert!(
        diff.changed
            .iter()
            .any(|j| j.job.id == a && j.job.state == JobState::Running),
        "{diff:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_job_is_held_through_the_event_and_released_after() -> TestResult {
    if !enabled() {
        return Ok(());
    }
    let _serial = LOCK.lock().await;
    let scratch = Scratch::new("hold");
    let cluster = scratch.cluster()?;
    let cli = cluster.cli().clone();
    let mut jobs = Jobs::new(&scratch);
    let runner = jobs.submit(&["--gres=gpu:1"])?;
    wait_state(&cli, runner, JobState::Running).await?;
    // Both need all 8 GPUs, so they wait while `runner` holds one.
    let waiting = jobs.submit(&["--gres=gpu:8", "-p", "batch", "-t", "30"])?;
    let theirs = jobs.submit(&["--gres=gpu:8", "-p", "batch", "-t", "30"])?;
    wait_state(&cli, waiting, JobState::Pending).await?;
    scontrol(&["hold", &theirs.to_string()])?;

    assert_eq!(cluster.pause(waiting).await?, Paused::Held);
    assert_eq!(cluster.pause(theirs).await?, Paused::AlreadyByOthers);
    assert_eq!(cluster.owned(), [waiting]);
    let reason = cli.job_info(waiting).await?.map(|(_, r)| r);
    assert_eq!(reason.as_deref(), Some("JobHeldAdmin"));

    // The GPUs free up mid-event: the held job does not start.
    Command::new("scancel")
        .arg(runner.to_string())
        .env_remove("SLURM_JWT")
        .status()?;
    wait_for("runner gone", Duration::from_secs(30), || async {
        Ok(!matches!(
            state(&cli, runner).await?,
            Some(JobState::Running | JobState::Completing)
        ))
    })
    .await?;
    scontrol(&["reconfigure"])?; // a scheduling pass now, not at the next timer
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(state(&cli, waiting).await?, Some(JobState::Pending));

    // The event ends: gridflex releases its hold (through recovery, as after a restart),
    // and the job starts; the operator's hold stays.
    let r = scratch.cluster()?.recover().await;
    assert_eq!(r.resumed, [waiting]);
    assert!(r.failed.is_empty());
    wait_state(&cli, waiting, JobState::Running).await?;
    let theirs_now = cli.job_info(theirs).await?;
    assert_eq!(
        theirs_now,
        Some((JobState::Pending, "JobHeldAdmin".to_owned()))
    );
    Ok(())
}
