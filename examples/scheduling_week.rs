//! A simulated week of deferrable work on CAISO-shaped prices (negative middays,
//! evening peaks): the scheduling loop against running each job as it comes.
//!
//! ```sh
//! cargo run --release --example scheduling_week            # 7 days, 48 jobs
//! cargo run --release --example scheduling_week -- --days 3 --jobs 20 --seed 7
//! ```
//!
//! Jobs of 8 simulated H100s (5.6 kW running) arrive through the week, each needing 1
//! to 6 hours of running within 14 to 30 hours of its arrival; the site has room for 4
//! of them at once. Prices are synthetic with the shape of recorded SP15 day-ahead
//! prices (`gridflex::simulated::caiso_shaped_prices`), not recorded data. The hardware
//! is sampled every minute: the site limit is checked on the simulated GPUs' true
//! power. Exits 1 if a deadline is missed or the limit is exceeded.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex::core::{JobId, Money, Power, WorkloadKind};
use gridflex::hal::WorkloadState;
use gridflex::hal::sim::{SimFleet, SimGpuSpec, SimJob, WorkloadProfile};
use gridflex::planner::{DeferrableWork, SiteWork};
use gridflex::prelude::{Clock, TokioClock};
use gridflex::scheduling::{DeferrableJob, Scheduler, SchedulerConfig};
use gridflex::simulated::caiso_shaped_prices;

type Error = Box<dyn std::error::Error>;

const GPUS: usize = 8;
const AT_ONCE: usize = 4;

struct Args {
    days: usize,
    jobs: usize,
    seed: u64,
}

fn args() -> Result<Args, Error> {
    let mut a = Args {
        days: 7,
        jobs: 48,
        seed: 21,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<u64, Error> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            v.parse::<u64>()
                .map_err(|e| format!("{name} {v:?}: {e}").into())
        };
        match arg.as_str() {
            "--days" => a.days = value("--days")? as usize,
            "--jobs" => a.jobs = value("--jobs")? as usize,
            "--seed" => a.seed = value("--seed")?,
            "-h" | "--help" => {
                println!("usage: scheduling_week [--days N (1-28)] [--jobs N (1-200)] [--seed N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    if !(1..=28).contains(&a.days) || !(1..=200).contains(&a.jobs) {
        return Err("--days must be 1 to 28 and --jobs 1 to 200".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    match args().and_then(|a| run(&a)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("scheduling_week: {e}");
            ExitCode::from(2)
        }
    }
}

/// (arrival, hours of work, hours to deadline) per job, seeded.
fn arrivals(a: &Args, start: DateTime<Utc>) -> Vec<(DateTime<Utc>, f64, f64)> {
    let mut x = a.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((x >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let end = start + TimeDelta::days(a.days as i64);
    let span_min = (a.days as f64 * 24.0 - 8.0) * 60.0;
    let mut out: Vec<_> = (0..a.jobs)
        .map(|_| {
            // Arrivals on whole minutes; deadlines on whole 5 minutes.
            let arrival = start + TimeDelta::minutes((next() * span_min) as i64);
            let work = 1.0 + 5.0 * next();
            let due = 14.0 + 16.0 * next();
            let deadline = (arrival + TimeDelta::minutes((due * 60.0) as i64)).min(end);
            let room_h = (deadline - arrival).num_minutes() as f64 / 60.0;
            (arrival, work.min(room_h * 0.5), room_h)
        })
        .collect();
    out.sort_by_key(|a| a.0);
    out
}

fn run(a: &Args) -> Result<bool, Error> {
    let start = Utc
        .with_ymd_and_hms(2025, 4, 14, 0, 0, 0)
        .single()
        .ok_or("start")?;
    let end = start + TimeDelta::days(a.days as i64);
    let step = TimeDelta::minutes(5);
    let prices = caiso_shaped_prices(start, a.days, step, a.seed)?;
    let jobs = arrivals(a, start);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    let wall = Instant::now();
    let job_power = Power::watts(GPUS as f64 * 700.0)?;
    let (reports, max_running, max_watts, limit) = runtime.block_on(async {
        let clock = TokioClock::starting_at(start);
        let fleet = SimFleet::new(
            Arc::new(clock.clone()),
            jobs.len() * GPUS,
            &SimGpuSpec::h100_sxm(),
        )?;
        // Every GPU's context-idle draw is the site's other load; room for 4 jobs on top.
        let other = Power::watts(fleet.len() as f64 * 125.0)?;
        let limit = other + job_power.times(AT_ONCE);
        let mut config = SchedulerConfig::new(limit, other);
        config.absorb_below = Some(gridflex::core::Price::ZERO);
        let scheduler = Scheduler::new(clock.clone(), config, prices.clone())?;
        let (handle, task) = scheduler.spawn();
        let sims: Vec<Arc<SimJob>> = Vec::new();
        let sims = Arc::new(std::sync::Mutex::new(sims));
        let driver = {
            let (clock, handle, sims, fleet_gpus) = (
                clock.clone(),
                handle.clone(),
                sims.clone(),
                fleet.iter().cloned().collect::<Vec<_>>(),
            );
            let jobs = jobs.clone();
            async move {
                for (k, &(arrival, work_h, _)) in jobs.iter().enumerate() {
                    clock.sleep_until(arrival).await;
                    let id = JobId::new(format!("batch-{k:02}"))?;
                    let gpus = fleet_gpus[k * GPUS..(k + 1) * GPUS].to_vec();
                    let sim = Arc::new(SimJob::start(
                        id.clone(),
                        gpus,
                        WorkloadProfile::of(WorkloadKind::FineTuning),
                    )?);
                    // Held from its first moment: the scheduler runs it when the plan says.
                    sim.pause_now()?;
                    sims.lock().map_err(|_| "lock")?.push(sim.clone());
                    let deadline = jobs[k].0 + TimeDelta::minutes((jobs[k].2 * 60.0) as i64);
                    handle
                        .add_job(DeferrableJob::new(
                            SiteWork::from(DeferrableWork {
                                id,
                                power: job_power,
                                remaining: Duration::from_secs_f64(work_h * 3600.0).min(
                                    Duration::from_secs(
                                        ((deadline - arrival).num_seconds() as u64) / 2,
                                    ),
                                ),
                                deadline,
                            }),
                            sim,
                        ))
                        .await?;
                }
                Ok::<_, Error>(())
            }
        };
        let watch = async {
            let (mut max_running, mut max_watts) = (0usize, 0.0f64);
            tokio::time::sleep(Duration::from_secs(30)).await;
            while clock.now() < end {
                let running = sims
                    .lock()
                    .map_err(|_| "lock")?
                    .iter()
                    .filter(|s| s.status_now() == WorkloadState::Running)
                    .count();
                max_running = max_running.max(running);
                max_watts = max_watts.max(fleet.true_power_total().as_watts());
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok::<_, Error>((max_running, max_watts))
        };
        let (driven, watched) = tokio::join!(driver, watch);
        driven?;
        let (max_running, max_watts) = watched?;
        let reports = handle.report().await?;
        if std::env::var_os("DEBUG_WEEK").is_some() {
            eprintln!("{:#?}", handle.status().await?);
        }
        handle.shutdown().await?;
        task.await??;
        Ok::<_, Error>((reports, max_running, max_watts, limit))
    })?;

    println!(
        "gridflex scheduling week: {} jobs of {GPUS} simulated H100s over {} days of CAISO-shaped \
         5-minute prices (seed {}), room for {AT_ONCE} at once; {:.1} s of wall time\n",
        jobs.len(),
        a.days,
        a.seed,
        wall.elapsed().as_secs_f64()
    );
    for r in &reports {
        println!("{r}");
    }
    let sum =
        |f: &dyn Fn(&gridflex::scheduling::DayReport) -> f64| reports.iter().map(f).sum::<f64>();
    let cost = sum(&|r| r.cost.as_usd());
    let base = sum(&|r| r.cost_as_they_come.as_usd());
    let kwh = sum(&|r| r.energy.as_kilowatt_hours());
    let absorbed = sum(&|r| r.absorbed.as_kilowatt_hours());
    let absorbed_base = sum(&|r| r.absorbed_as_they_come.as_kilowatt_hours());
    let value = sum(&|r| r.absorbed_value.as_usd());
    let met: usize = reports.iter().map(|r| r.deadlines_met).sum();
    let missed: usize = reports.iter().map(|r| r.deadlines_missed).sum();
    println!(
        "\nweek: {kwh:.0} kWh of deferrable work for {} against {} as they come: saved {} ({:.0} %)",
        Money::usd(cost)?,
        Money::usd(base)?,
        Money::usd(base - cost)?,
        if base.abs() > 1e-9 {
            100.0 * (base - cost) / base.abs()
        } else {
            0.0
        }
    );
    println!(
        "absorbed at negative prices: {absorbed:.0} kWh worth {} (as they come: {absorbed_base:.0} kWh)",
        Money::usd(value)?
    );
    println!("deadlines met {met} of {}, missed {missed}", jobs.len());
    let limit_kept = max_running <= AT_ONCE && max_watts <= limit.as_watts() + 1e-6;
    println!(
        "site limit kept at every minute on the simulated hardware: {limit_kept} (at most {max_running} \
         jobs running, peak {:.1} kW of {:.1} kW)",
        max_watts / 1e3,
        limit.as_kilowatts()
    );
    Ok(limit_kept && missed == 0 && met == jobs.len())
}
