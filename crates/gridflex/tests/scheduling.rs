//! The scheduling loop against the simulated hardware, in tokio's paused time: what
//! is checked is what the simulated GPUs do (paused or running, their true power),
//! not what the scheduler believes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex::clock::{Clock, TokioClock};
use gridflex::core::{Interval, IntervalSeries, JobId, Power, Price, WorkloadKind};
use gridflex::hal::WorkloadState;
use gridflex::hal::sim::{SimFleet, SimGpuSpec, SimJob, WorkloadProfile};
use gridflex::planner::{DeferrableWork, SiteLimit, SiteWork, shift_within_limit};
use gridflex::scheduling::{DeferrableJob, ObligationBoard, Scheduler, SchedulerConfig};
use proptest::prelude::*;

const GPUS_PER_JOB: usize = 2;
/// A running GPU draws at most its 700 W limit, a paused one 125 W.
const RUN_W: f64 = 700.0;
const IDLE_W: f64 = 125.0;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 8, 14, 0, 0, 0).unwrap()
}

struct Site {
    clock: TokioClock,
    fleet: SimFleet,
    jobs: Vec<Arc<SimJob>>,
}

/// `n` jobs of two simulated H100s each, all started (running) at t0.
fn site(n: usize) -> Site {
    let clock = TokioClock::starting_at(t0());
    let fleet = SimFleet::new(
        Arc::new(clock.clone()),
        n * GPUS_PER_JOB,
        &SimGpuSpec::h100_sxm(),
    )
    .unwrap();
    let jobs = (0..n)
        .map(|j| {
            let gpus = (0..GPUS_PER_JOB).map(|g| fleet.gpu(j * GPUS_PER_JOB + g).unwrap().clone());
            Arc::new(
                SimJob::start(
                    JobId::new(format!("job-{j}")).unwrap(),
                    gpus.collect(),
                    WorkloadProfile::of(WorkloadKind::Matmul),
                )
                .unwrap(),
            )
        })
        .collect();
    Site { clock, fleet, jobs }
}

/// Planning power of one job: its GPUs at their limit, over their paused draw (which
/// the other load already counts).
fn job_power() -> Power {
    Power::watts(GPUS_PER_JOB as f64 * RUN_W).unwrap()
}

fn config(site: &Site, running_at_once: usize) -> SchedulerConfig {
    let other = Power::watts(site.fleet.len() as f64 * IDLE_W).unwrap();
    let limit = other + job_power().times(running_at_once);
    let mut c = SchedulerConfig::new(limit, other);
    c.absorb_below = None;
    c
}

fn work(j: usize, minutes: u64, deadline: DateTime<Utc>) -> SiteWork {
    SiteWork::from(DeferrableWork {
        id: JobId::new(format!("job-{j}")).unwrap(),
        power: job_power(),
        remaining: Duration::from_secs(minutes * 60),
        deadline,
    })
}

fn prices(step: TimeDelta, values: &[f64]) -> IntervalSeries<Price> {
    IntervalSeries::from_values(
        t0(),
        step,
        values.iter().map(|&p| Price::per_megawatt_hour(p).unwrap()),
    )
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Samples the hardware every `every` (offset by half of it, away from transitions)
/// until `until`: per sample, the running jobs and the fleet's true power.
async fn watch(
    site: &Site,
    every: Duration,
    until: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, Vec<bool>, f64)> {
    let mut out = Vec::new();
    tokio::time::sleep(every / 2).await;
    while site.clock.now() < until {
        let running = site
            .jobs
            .iter()
            .map(|j| j.status_now() == WorkloadState::Running)
            .collect();
        out.push((
            site.clock.now(),
            running,
            site.fleet.true_power_total().as_watts(),
        ));
        tokio::time::sleep(every).await;
    }
    out
}

/// Adds `n` jobs of `minutes` of work each, due at 4 h, runs the scheduler to 4 h while
/// watching the simulated fleet every minute, checks the limit held at every sample and
/// that exactly `running` jobs ran through hour `hour` (`what` names the failure), and
/// returns the first day's report after shutting the loop down.
async fn four_hours_with(
    site: &Site,
    mut s: Scheduler<TokioClock>,
    n: usize,
    minutes: u64,
    limit: f64,
    (hour, running, what): (i64, usize, &str),
) -> gridflex::scheduling::DayReport {
    for j in 0..n {
        s.add_job(DeferrableJob::new(
            work(j, minutes, t0() + TimeDelta::hours(4)),
            site.jobs[j].clone(),
        ))
        .unwrap();
    }
    let (handle, task) = s.spawn();
    let samples = watch(site, Duration::from_secs(60), t0() + TimeDelta::hours(4)).await;
    for (at, on, watts) in &samples {
        assert!(*watts <= limit + 1e-6, "{at}: {watts} W over {limit} W");
        if (*at - t0()).num_hours() == hour {
            assert_eq!(on.iter().filter(|r| **r).count(), running, "{at}: {what}");
        }
    }
    let day = handle.report().await.unwrap().swap_remove(0);
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
    day
}

#[test]
fn runs_in_the_cheapest_hours_within_the_limit() {
    runtime().block_on(async {
        let site = site(3);
        let cfg = config(&site, 2);
        let limit = cfg.limit.as_watts();
        // Six hours; the two cheapest are 2 and 4, then 5.
        let p = prices(TimeDelta::hours(1), &[90.0, 80.0, 10.0, 70.0, 12.0, 20.0]);
        let mut s = Scheduler::new(site.clock.clone(), cfg, p).unwrap();
        for j in 0..3 {
            s.add_job(DeferrableJob::new(
                work(j, 120, t0() + TimeDelta::hours(6)),
                site.jobs[j].clone(),
            ))
            .unwrap();
        }
        let (handle, task) = s.spawn();
        let samples = watch(&site, Duration::from_secs(60), t0() + TimeDelta::hours(6)).await;
        for (at, running, watts) in &samples {
            let n = running.iter().filter(|r| **r).count();
            assert!(n <= 2, "{at}: {n} jobs running");
            assert!(*watts <= limit + 1e-6, "{at}: {watts} W over {limit} W");
            let hour = (*at - t0()).num_hours();
            if [0, 1, 3].contains(&hour) {
                assert_eq!(n, 0, "{at}: ran in a dear hour");
            }
        }
        let status = handle.status().await.unwrap();
        assert_eq!(status.finished.len(), 3, "{status:?}");
        assert!(status.finished.iter().all(|(_, met)| *met));
        let day = &handle.report().await.unwrap()[0];
        assert_eq!((day.deadlines_met, day.deadlines_missed), (3, 0));
        assert!(day.cost < day.cost_as_they_come, "{day}");
        handle.shutdown().await.unwrap();
        task.await.unwrap().unwrap();
        // Given back on shutdown.
        assert!(
            site.jobs
                .iter()
                .all(|j| j.status_now() == WorkloadState::Running)
        );
    });
}

#[test]
fn never_runs_into_an_obligation() {
    runtime().block_on(async {
        let site = site(2);
        let cfg = config(&site, 2);
        let step = TimeDelta::minutes(5);
        // Cheapest at 01:00..02:00, where an obligation is announced at 00:30.
        let values: Vec<f64> = (0..48)
            .map(|k| {
                if (12..24).contains(&k) {
                    5.0
                } else {
                    50.0 + k as f64
                }
            })
            .collect();
        let board = ObligationBoard::new();
        let mut s = Scheduler::new(site.clock.clone(), cfg, prices(step, &values))
            .unwrap()
            .obligations(Arc::new(board.clone()));
        for j in 0..2 {
            s.add_job(DeferrableJob::new(
                work(j, 40, t0() + TimeDelta::hours(4)),
                site.jobs[j].clone(),
            ))
            .unwrap();
        }
        let (handle, task) = s.spawn();
        tokio::time::sleep(Duration::from_secs(30 * 60)).await;
        let window = Interval::new(
            t0() + TimeDelta::minutes(70),
            t0() + TimeDelta::minutes(100),
        )
        .unwrap();
        board.add(window);
        let samples = watch(&site, Duration::from_secs(20), t0() + TimeDelta::hours(4)).await;
        let mut ran_cheap = false;
        for (at, running, _) in &samples {
            if window.contains(*at) {
                assert!(
                    running.iter().all(|r| !r),
                    "{at}: ran during the obligation"
                );
            } else if (t0() + TimeDelta::hours(1)..t0() + TimeDelta::hours(2)).contains(at) {
                ran_cheap |= running.iter().any(|r| *r);
            }
        }
        assert!(
            ran_cheap,
            "never used the cheap hour outside the obligation"
        );
        let status = handle.status().await.unwrap();
        assert!(
            status.finished.iter().all(|(_, met)| *met) && status.finished.len() == 2,
            "{status:?}"
        );
        handle.shutdown().await.unwrap();
        task.await.unwrap().unwrap();
    });
}

#[test]
fn an_obligation_that_starts_now_holds_running_work() {
    runtime().block_on(async {
        let site = site(1);
        let cfg = config(&site, 1);
        let board = ObligationBoard::new();
        let mut s = Scheduler::new(
            site.clock.clone(),
            cfg,
            prices(TimeDelta::hours(1), &[10.0, 90.0, 90.0]),
        )
        .unwrap()
        .obligations(Arc::new(board.clone()));
        s.add_job(DeferrableJob::new(
            work(0, 60, t0() + TimeDelta::hours(3)),
            site.jobs[0].clone(),
        ))
        .unwrap();
        let (handle, task) = s.spawn();
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(site.jobs[0].status_now(), WorkloadState::Running);
        board.add(
            Interval::new(site.clock.now(), site.clock.now() + TimeDelta::minutes(10)).unwrap(),
        );
        // Within one poll (10 s) the job is held.
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(site.jobs[0].status_now(), WorkloadState::Paused);
        assert!(handle.status().await.unwrap().in_obligation);
        // Work left after the window: it runs again (dear hours, but the deadline is hard).
        tokio::time::sleep(Duration::from_secs(3 * 3600 - 611)).await;
        let status = handle.status().await.unwrap();
        assert_eq!(
            status.finished,
            vec![(JobId::new("job-0").unwrap(), true)],
            "{status:?}"
        );
        handle.shutdown().await.unwrap();
        task.await.unwrap().unwrap();
    });
}

#[test]
fn real_time_prices_move_the_work() {
    runtime().block_on(async {
        let site = site(1);
        let cfg = config(&site, 1);
        let mut s = Scheduler::new(
            site.clock.clone(),
            cfg,
            prices(TimeDelta::hours(1), &[50.0, 20.0, 40.0]),
        )
        .unwrap();
        s.add_job(DeferrableJob::new(
            work(0, 60, t0() + TimeDelta::hours(3)),
            site.jobs[0].clone(),
        ))
        .unwrap();
        let (handle, task) = s.spawn();
        tokio::time::sleep(Duration::from_secs(1800)).await;
        assert_eq!(site.jobs[0].status_now(), WorkloadState::Paused);
        // Hour 1 turns dear in real time; hour 2 is now the cheapest.
        let h1 = Interval::starting_at(t0() + TimeDelta::hours(1), TimeDelta::hours(1)).unwrap();
        handle
            .real_time(h1, Price::per_megawatt_hour(300.0).unwrap())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(
            site.jobs[0].status_now(),
            WorkloadState::Paused,
            "ran in the dear hour"
        );
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(site.jobs[0].status_now(), WorkloadState::Running);
        tokio::time::sleep(Duration::from_secs(1801)).await;
        let status = handle.status().await.unwrap();
        assert_eq!(status.finished.len(), 1, "{status:?}");
        handle.shutdown().await.unwrap();
        task.await.unwrap().unwrap();
    });
}

#[test]
fn negative_prices_absorb_within_the_limit() {
    runtime().block_on(async {
        let site = site(3);
        let mut cfg = config(&site, 2);
        cfg.absorb_below = Some(Price::ZERO);
        let limit = cfg.limit.as_watts();
        // Negative in hour 1: jobs with 30 minutes of work in a cheap... the plan puts
        // job-0's half hour in hour 1 anyway; load increase runs the others then too.
        let p = prices(TimeDelta::hours(1), &[40.0, -20.0, 30.0, 30.0]);
        let s = Scheduler::new(site.clock.clone(), cfg, p).unwrap();
        let day =
            &four_hours_with(&site, s, 3, 90, limit, (1, 2, "not absorbing at the limit")).await;
        // Two jobs of 1.4 kW for the whole negative hour.
        assert!(
            (day.absorbed.as_kilowatt_hours() - 2.8).abs() < 1e-6,
            "{day}"
        );
        assert!(
            (day.absorbed_value.as_usd() - 2.8 * 0.02).abs() < 1e-9,
            "{day}"
        );
        assert_eq!(day.deadlines_met, 3, "{day}");
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random 5-minute days: when the planner finds the jobs feasible up front, the
    /// loop meets every deadline; the site limit (true power of the simulated fleet)
    /// and the number of jobs it allows at once are never exceeded.
    #[test]
    fn deadlines_met_and_limit_kept(
        values in prop::collection::vec(-30.0..200.0f64, 24..48),
        jobs in prop::collection::vec((5u64..60, 6usize..48), 1..5),
        at_once in 1usize..3,
    ) {
        runtime().block_on(async {
            let n = jobs.len();
            let site = site(n);
            let cfg = config(&site, at_once);
            let limit = cfg.limit.as_watts();
            let step = TimeDelta::minutes(5);
            let series = prices(step, &values);
            let end = t0() + step * values.len() as i32;
            let works: Vec<SiteWork> = jobs.iter().enumerate().map(|(j, &(min, d))| {
                work(j, min, (t0() + step * d as i32).min(end))
            }).collect();
            let feasible = shift_within_limit(&series, &works, &SiteLimit {
                limit: cfg.limit - cfg.other_load, other_load: None,
            }).is_ok();
            let mut s = Scheduler::new(site.clock.clone(), cfg, series).unwrap();
            for (j, w) in works.iter().enumerate() {
                s.add_job(DeferrableJob::new(w.clone(), site.jobs[j].clone())).unwrap();
            }
            let (handle, task) = s.spawn();
            let samples = watch(&site, Duration::from_secs(30), end).await;
            for (at, running, watts) in &samples {
                prop_assert!(*watts <= limit + 1e-6, "{} W over {} at {}", watts, limit, at);
                prop_assert!(running.iter().filter(|r| **r).count() <= at_once);
            }
            let status = handle.status().await.unwrap();
            if feasible {
                prop_assert_eq!(status.finished.len(), n, "{:?}", status);
                prop_assert!(status.finished.iter().all(|(_, met)| *met), "{:?}", status);
            }
            handle.shutdown().await.unwrap();
            task.await.unwrap().unwrap();
            Ok(())
        })?;
    }
}

#[test]
fn a_consumption_request_brings_work_forward() {
    runtime().block_on(async {
        let site = site(2);
        let mut cfg = config(&site, 1);
        cfg.absorb_below = None;
        let limit = cfg.limit.as_watts();
        let board = ObligationBoard::new();
        // Hour 0 is the dearest: the plan leaves it, the request fills it (one job fits).
        let p = prices(TimeDelta::hours(1), &[90.0, 10.0, 20.0, 30.0]);
        let s = Scheduler::new(site.clock.clone(), cfg, p)
            .unwrap()
            .obligations(Arc::new(board.clone()));
        board.request_consumption(Interval::new(t0(), t0() + TimeDelta::hours(1)).unwrap());
        let day = &four_hours_with(&site, s, 2, 60, limit, (0, 1, "request not answered")).await;
        assert!(
            (day.absorbed_on_request.as_kilowatt_hours() - 1.4).abs() < 1e-6,
            "{day}"
        );
        assert_eq!(day.deadlines_met, 2, "{day}");
    });
}

/// A report asked for at the very instant a job's work runs out counts the job as met,
/// every time (the quickstart's batch counted 10 or 16 of 16 depending on which of the
/// tick and the order tokio polled first).
#[tokio::test(start_paused = true)]
async fn a_report_at_the_instant_work_runs_out_counts_it() {
    for _ in 0..20 {
        let t0 = Utc.with_ymd_and_hms(2025, 8, 14, 0, 0, 0).unwrap();
        let clock = TokioClock::starting_at(t0);
        let fleet = SimFleet::new(Arc::new(clock.clone()), 1, &SimGpuSpec::h100_sxm()).unwrap();
        let job = Arc::new(
            SimJob::start(
                JobId::new("batch").unwrap(),
                fleet.iter().cloned().collect(),
                WorkloadProfile::of(WorkloadKind::Matmul),
            )
            .unwrap(),
        );
        let prices = IntervalSeries::from_values(
            t0,
            TimeDelta::hours(1),
            [20.0, 30.0].map(|p| Price::per_megawatt_hour(p).unwrap()),
        )
        .unwrap();
        let mut scheduler = Scheduler::new(
            clock.clone(),
            SchedulerConfig::new(Power::watts(5000.0).unwrap(), Power::watts(250.0).unwrap()),
            prices,
        )
        .unwrap();
        // One hour of work due at the end of the first hour: it runs to the deadline.
        scheduler
            .add_job(DeferrableJob::new(
                SiteWork::from(DeferrableWork {
                    id: JobId::new("batch").unwrap(),
                    power: Power::watts(700.0).unwrap(),
                    remaining: Duration::from_secs(3600),
                    deadline: t0 + TimeDelta::hours(1),
                }),
                job,
            ))
            .unwrap();
        let (handle, task) = scheduler.spawn();
        clock.sleep_until(t0 + TimeDelta::hours(1)).await;
        let reports = handle.report().await.unwrap();
        assert_eq!(
            reports.iter().map(|r| r.deadlines_met).sum::<usize>(),
            1,
            "{reports:?}"
        );
        handle.shutdown().await.unwrap();
        task.await.unwrap().unwrap();
    }
}
