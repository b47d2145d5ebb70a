//! Curtail the jobs of a running Slurm cluster on a CAISO price spike: jobs are
//! suspended and resumed through Slurm (`scontrol`), GPU power comes from simulated
//! H100s that stand in for the jobs' GPUs (one per Slurm GPU, named `{node}/gpu{index}`).
//!
//! ```sh
//! # on a Slurm 22.05 cluster, as root or SlurmUser (suspend needs it):
//! cargo run --release --features slurm --example slurm -- --submit-demo-jobs
//! ```
//!
//! Steps: finish restores a previous run left (the ledger); read the queue; classify the
//! jobs under the site policy (built in, or `--policy FILE`, JSON as in docs/slurm.md);
//! run the orchestrator in real time through a price spike of `--spike-seconds`; print
//! each suspend/resume as Slurm saw it; check that nothing gridflex suspended is left
//! suspended. Exits 1 when Slurm cannot be reached or a check fails, 2 on bad arguments.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::TimeDelta;
use gridflex::clock::SharedClock;
use gridflex::hal::sim::{SimGpu, SimGpuSpec, SimJob, WorkloadProfile};
use gridflex::hal::{HalError, WorkloadState};
use gridflex::prelude::*;
use gridflex::slurm::{
    DeviceMap, JobState, Policy, SlaClass, SlurmCli, SlurmCluster, SlurmJobControl,
};

type Error = Box<dyn std::error::Error>;

const USAGE: &str =
    "usage: slurm [--submit-demo-jobs] [--spike-seconds N] [--policy FILE] [--ledger FILE]
  --submit-demo-jobs  sbatch three demo jobs (flexible, deferrable, critical) and cancel them after
  --spike-seconds N   length of the price spike, 5..=600 (default 20)
  --policy FILE       site policy, JSON (default: comment tag gridflex:flexible -> flexible,
                      partition batch -> deferrable by its time limit, others critical)
  --ledger FILE       ownership ledger (default: $TMPDIR/gridflex-slurm-example-ledger.json)";

const DEFAULT_POLICY: &str = r#"{"rules":[
  {"match":{"comment_tag":"gridflex:flexible"},"class":"flexible","floor":0.5,"max_pause_s":600},
  {"match":{"partition":"batch"},"class":"deferrable","deadline":{"from":"time_limit","margin_s":300}}]}"#;

struct Args {
    demo: bool,
    spike: u64,
    policy: Option<PathBuf>,
    ledger: PathBuf,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        demo: false,
        spike: 20,
        policy: None,
        ledger: std::env::temp_dir().join("gridflex-slurm-example-ledger.json"),
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--help" | "-h" => return Ok(None),
            "--submit-demo-jobs" => a.demo = true,
            "--spike-seconds" => {
                let v = it.next().ok_or("--spike-seconds needs a value")?;
                a.spike = v
                    .parse()
                    .map_err(|_| format!("--spike-seconds: {v:?} is not a whole number"))?;
                if !(5..=600).contains(&a.spike) {
                    return Err(format!("--spike-seconds: {} is outside 5..=600", a.spike));
                }
            }
            "--policy" => a.policy = Some(it.next().ok_or("--policy needs a file")?.into()),
            "--ledger" => a.ledger = it.next().ok_or("--ledger needs a file")?.into(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(a))
}

/// A Slurm job and the simulated GPUs standing in for its GPUs: pausing the job
/// suspends it in Slurm and stops the simulated GPUs' work, so the simulated power
/// follows what the job does.
struct SlurmAndSim {
    slurm: SlurmJobControl,
    sim: SimJob,
    t0: Instant,
}

#[async_trait]
impl WorkloadControl for SlurmAndSim {
    fn job(&self) -> &JobId {
        self.slurm.job()
    }

    async fn pause(&self) -> Result<(), HalError> {
        self.slurm.pause().await?;
        println!(
            "  {:>7.3} s  {} suspended (scontrol suspend {})",
            self.t0.elapsed().as_secs_f64(),
            self.job(),
            self.slurm.slurm_id()
        );
        self.sim.pause().await
    }

    async fn resume(&self) -> Result<(), HalError> {
        self.slurm.resume().await?;
        println!(
            "  {:>7.3} s  {} resumed",
            self.t0.elapsed().as_secs_f64(),
            self.job()
        );
        self.sim.resume().await
    }

    async fn status(&self) -> Result<WorkloadState, HalError> {
        self.slurm.status().await
    }
}

fn sbatch(args: &[&str]) -> Result<u32, Error> {
    let out = Command::new("sbatch")
        .args(["--parsable", "-o", "/dev/null", "--chdir", "/tmp"])
        .args(args)
        .args(["--wrap", "while true; do sleep 0.5; done"])
        .env_remove("SLURM_JWT")
        .output()?;
    if !out.status.success() {
        return Err(format!("sbatch: {}", String::from_utf8_lossy(&out.stderr).trim()).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .parse()?)
}

/// The planner's class (and the facade's `pinned` flag) for a Slurm job's class.
fn class_of(class: &SlaClass) -> (JobClass, bool) {
    match class {
        SlaClass::Critical { floor } => (JobClass::Critical { floor: *floor }, false),
        SlaClass::Flexible { floor, max_pause } => (
            JobClass::Flexible {
                floor: *floor,
                max_pause: *max_pause,
            },
            false,
        ),
        SlaClass::Deferrable { deadline } => (
            JobClass::Deferrable {
                deadline: *deadline,
            },
            false,
        ),
        // Pinned, and any class this example does not know: never touched.
        _ => (JobClass::Critical { floor: 1.0 }, true),
    }
}

async fn run(args: Args) -> Result<bool, Error> {
    let policy: Policy = match &args.policy {
        Some(f) => {
            serde_json::from_slice(&std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?)?
        }
        None => serde_json::from_str(DEFAULT_POLICY)?,
    };
    let cluster = SlurmCluster::open(SlurmCli::new(), policy, DeviceMap::default(), &args.ledger)?;
    let left = cluster.recover().await;
    if !(left.resumed.is_empty() && left.settled.is_empty()) {
        println!(
            "ledger: resumed {:?} and settled {:?} left by an earlier run",
            left.resumed, left.settled
        );
    }

    let mut demo = Vec::new();
    if args.demo {
        demo.push(sbatch(&[
            "--gres=gpu:2",
            "--comment=gridflex:flexible",
            "-J",
            "demo-train",
        ])?);
        demo.push(sbatch(&[
            "--gres=gpu:2",
            "-p",
            "batch",
            "-t",
            "60",
            "-J",
            "demo-batch",
        ])?);
        demo.push(sbatch(&["--gres=gpu:1", "-J", "demo-inference"])?);
    }
    let result = curtail(&cluster, &args, &demo).await;
    for id in &demo {
        let _ = Command::new("scancel")
            .arg(id.to_string())
            .env_remove("SLURM_JWT")
            .status();
    }
    result
}

async fn curtail(cluster: &Arc<SlurmCluster>, args: &Args, demo: &[u32]) -> Result<bool, Error> {
    // Wait (bounded) for the demo jobs to start.
    let t0 = Instant::now();
    let inventory = loop {
        let inv = cluster.inventory(None).await?;
        let started = demo.iter().all(|id| {
            inv.get(*id)
                .is_some_and(|j| j.job.state == JobState::Running)
        });
        if started || t0.elapsed() > Duration::from_secs(30) {
            break inv;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let running: Vec<_> = inventory
        .jobs()
        .filter(|j| j.job.state == JobState::Running && !j.devices.is_empty())
        .collect();
    println!(
        "Slurm: {} live jobs, {} running with GPUs",
        inventory.len(),
        running.len()
    );
    if running.is_empty() {
        println!("nothing to curtail (submit GPU jobs, or pass --submit-demo-jobs)");
        return Ok(true);
    }

    // The simulated GPUs read the orchestrator's own clock (real time here).
    let clock = TokioClock::real();
    let sim_clock: SharedClock = Arc::new(clock.clone());
    let spec = SimGpuSpec::h100_sxm();
    let mut builder =
        Orchestrator::builder(clock.clone()).facility(FacilityModel::new(Power::ZERO, 1.0)?);
    let mut watts_before = 0.0;
    let t_start = Instant::now();
    for job in &running {
        let gpus = job
            .devices
            .iter()
            .map(|d| SimGpu::with_uuid(d.as_str(), sim_clock.clone(), spec.clone()).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let sim = SimJob::start(
            job.id.clone(),
            gpus.clone(),
            WorkloadProfile::of(WorkloadKind::Matmul),
        )?;
        watts_before += spec.initial_limit.as_watts() * gpus.len() as f64;
        let (class, pinned) = class_of(&job.class);
        let mut entry = JobEntry::new(
            job.id.clone(),
            job.devices.clone(),
            class,
            WorkloadKind::Pretraining,
        );
        entry.pinned = pinned;
        println!(
            "  {:<10} {:<14} {:<9} gpus {:<40} class {:?}",
            job.id,
            job.job.name,
            job.job.partition,
            job.devices
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(","),
            job.class
        );
        builder = builder.devices(gpus.iter().cloned().map(DeviceHandle::with_samples));
        let control = SlurmAndSim {
            slurm: cluster.control(job.job.id)?,
            sim,
            t0: t_start,
        };
        builder = builder.job(entry, Some(Arc::new(control)));
    }

    let node = PricingNodeId::new("TH_SP15_GEN-APND")?;
    let mut rules = ProgramRules::new(
        Market::Caiso,
        Power::kilowatts(watts_before / 1000.0 * 2.0)?,
    );
    let mut rule = PriceRule::new(
        node.clone(),
        MarketRun::CaisoRtm,
        Price::per_megawatt_hour(300.0)?,
        Power::kilowatts(watts_before / 1000.0 * 0.4)?,
    );
    rule.min_hold = TimeDelta::seconds(1);
    rules.price = Some(rule);
    let mut options = OrchestratorOptions::default();
    options.telemetry_step = TimeDelta::seconds(1);
    options.meter_step = TimeDelta::seconds(1);
    let mut orchestrator = builder.rules(rules).options(options).build()?;

    let start = clock.now() + TimeDelta::seconds(2);
    let spike = PricePoint::new(
        MarketRun::CaisoRtm,
        node,
        Interval::new(start, start + TimeDelta::seconds(args.spike as i64))?,
        Price::per_megawatt_hour(1200.0)?,
    );
    println!(
        "price spike: $1,200/MWh for {} s from t = 2 s; facility cap {:.1} kW (uncurtailed {:.1} kW)",
        args.spike,
        watts_before / 1000.0 * 0.4,
        watts_before / 1000.0
    );
    let source = ReplaySource::from_signals(vec![GridSignal::Price(spike)], clock.clone())?;

    // Half-way through the spike, ask Slurm which jobs are suspended.
    let probe_cluster = cluster.clone();
    let probe_at = Duration::from_secs(2 + args.spike / 2);
    let probe = tokio::spawn(async move {
        tokio::time::sleep(probe_at).await;
        probe_cluster.inventory(None).await.map(|inv| {
            inv.jobs()
                .filter(|j| j.job.state == JobState::Suspended)
                .map(|j| j.job.id)
                .collect::<Vec<_>>()
        })
    });
    let summary = orchestrator.run(source, std::future::pending()).await?;
    let suspended_mid = probe.await??;
    println!("mid-spike, Slurm reports suspended: {suspended_mid:?}");
    println!(
        "events: {}; run took {:.1} s",
        summary.events,
        t_start.elapsed().as_secs_f64()
    );
    for report in orchestrator.reports() {
        println!(
            "event report: predicted facility power {} (cap {:.1} kW)",
            report.predicted,
            watts_before / 1000.0 * 0.4
        );
    }

    // Checks from Slurm itself: every job gridflex suspended runs again, the ledger is empty.
    let after = cluster.inventory(None).await?;
    let mut ok = true;
    for job in &running {
        let by_gridflex = suspended_mid.contains(&job.job.id) && job.job.state == JobState::Running;
        if by_gridflex
            && after
                .get(job.job.id)
                .is_some_and(|j| j.job.state == JobState::Suspended)
        {
            println!("FAIL: {} is still suspended", job.id);
            ok = false;
        }
        if suspended_mid.contains(&job.job.id) && !job.class.may_pause() {
            println!("FAIL: {} ({:?}) was suspended", job.id, job.class);
            ok = false;
        }
    }
    if !cluster.owned().is_empty() {
        println!("FAIL: the ledger still names {:?}", cluster.owned());
        ok = false;
    }
    if demo.len() == 3 && !suspended_mid.iter().any(|id| demo[..2].contains(id)) {
        println!("FAIL: no pausable demo job was suspended during the spike");
        ok = false;
    }
    println!(
        "{}",
        if ok {
            "all jobs gridflex suspended are running again"
        } else {
            "checks failed"
        }
    );
    Ok(ok)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            let mut out = std::io::stdout();
            return if writeln!(out, "{USAGE}").is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
        Err(e) => {
            eprintln!("slurm: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("slurm: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("slurm: {e}");
            ExitCode::FAILURE
        }
    }
}
