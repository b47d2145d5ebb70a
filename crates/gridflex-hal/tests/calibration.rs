//! Replays the H100 calibration experiment (`calibration/README.md`, copied with its CSVs
//! to `tests/fixtures/`) on the simulator and checks the figures it must reproduce.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use gridflex_core::{Clock, ManualClock};
use gridflex_core::{JobId, Power};
use gridflex_hal::sim::{SimActivity, SimGpu, SimGpuSpec, SimJob, WorkloadKind, WorkloadProfile};
use gridflex_hal::{PowerDevice, PowerSampleStream, WorkloadControl, WorkloadState};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SAMPLES: &str = include_str!("fixtures/h100_nvml_100ms_samples.csv");
const EVENTS: &str = include_str!("fixtures/h100_nvml_100ms_events.csv");

/// One row of the 2 ms poll: time (s), averaged power (W), instant power (W), energy (J).
struct Row {
    t: f64,
    avg: f64,
    inst: f64,
    energy: f64,
}

fn rows() -> Vec<Row> {
    SAMPLES
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<f64> = l.split(',').filter_map(|x| x.parse().ok()).collect();
            (f.len() == 5).then(|| Row {
                t: f[0],
                avg: f[1] / 1e3,
                inst: f[2] / 1e3,
                energy: f[3] / 1e3,
            })
        })
        .collect()
}

fn event(name: &str) -> f64 {
    EVENTS
        .lines()
        .find_map(|l| {
            let (t, n) = l.split_once(',')?;
            (n == name).then(|| t.parse().ok())?
        })
        .unwrap_or(f64::NAN)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn step_fraction(before: f64, after: f64, now: f64) -> f64 {
    (before - now) / (before - after)
}

fn setup() -> Result<(ManualClock, Arc<SimGpu>), Box<dyn std::error::Error>> {
    let clock = ManualClock::default();
    let gpu = Arc::new(SimGpu::new(
        0,
        Arc::new(clock.clone()),
        SimGpuSpec::h100_sxm(),
    )?);
    Ok((clock, gpu))
}

#[tokio::test]
async fn device_facts_and_levels() -> TestResult {
    let (clock, gpu) = setup()?;
    let info = gpu.info();
    assert_eq!(info.limits.min(), Power::watts(200.0)?);
    assert_eq!(info.limits.max(), Power::watts(700.0)?);
    assert_eq!(info.limits.default_limit(), Power::watts(700.0)?);
    assert_eq!(info.limit_at_discovery, Power::watts(700.0)?);

    clock.advance(secs(5.0));
    let t = gpu.telemetry().await?;
    let idle = t.power_average.map(Power::as_watts).unwrap_or(0.0);
    assert!((idle - 84.0).abs() < 2.0, "idle without a context: {idle}");

    gpu.create_context()?;
    clock.advance(secs(2.0));
    let t = gpu.telemetry().await?;
    let ctx = t.power_average.map(Power::as_watts).unwrap_or(0.0);
    assert!((120.0..=145.0).contains(&ctx), "idle with a context: {ctx}");

    let job = SimJob::start(
        JobId::new("matmul")?,
        vec![gpu.clone()],
        WorkloadProfile::of(WorkloadKind::Matmul),
    )?;
    clock.advance(secs(3.0));
    let t = gpu.telemetry().await?;
    let load = t.power_average.map(Power::as_watts).unwrap_or(0.0);
    assert!(
        (load - 700.0).abs() < 7.0,
        "matmul at the 700 W cap: {load}"
    );
    assert_eq!(t.cap_binding, Some(true));
    let clk = t.sm_clock.map(|m| m.get()).unwrap_or(0);
    assert!(
        (1365..=1410).contains(&clk),
        "SM clock under the cap: {clk}"
    );

    job.pause().await?;
    clock.advance(secs(2.0));
    assert_eq!(job.status().await?, WorkloadState::Paused);
    let paused = gpu
        .telemetry()
        .await?
        .power_average
        .map(Power::as_watts)
        .unwrap_or(0.0);
    assert!((120.0..=145.0).contains(&paused), "paused: {paused}");
    assert!(paused / load < 0.25, "pause cuts more than 75 %");
    Ok(())
}

#[tokio::test]
async fn pause_step_timing_and_resume_overshoot() -> TestResult {
    let (clock, gpu) = setup()?;
    let job = SimJob::start(
        JobId::new("matmul")?,
        vec![gpu.clone()],
        WorkloadProfile::of(WorkloadKind::Matmul),
    )?;
    // Pause at an instant off the 20 ms sample grid, as in the experiment.
    clock.advance(secs(event("sigstop") - event("load_start")));
    let before = gpu.true_power().as_watts();
    let settled = SimGpuSpec::h100_sxm().idle_with_context.as_watts();
    let t0 = clock.now();
    job.pause().await?;
    clock.advance(secs(0.017));
    let f17 = step_fraction(before, settled, gpu.true_power().as_watts());
    clock.advance(secs(0.023));
    let f40 = step_fraction(before, settled, gpu.true_power().as_watts());
    assert!(f17 >= 0.5, "half the step within 17 ms: {f17}");
    assert!(f40 >= 0.9, "90 % of the step within 40 ms: {f40}");
    assert!(
        f17 < 0.6 && f40 < 0.95,
        "not faster than measured: {f17}, {f40}"
    );

    // The 20 ms sample ring: the first sample at least 17 ms after the pause shows half the step.
    clock.advance(secs(0.2));
    let samples = gpu.power_samples_since(Some(t0)).await?;
    let gaps: Vec<_> = samples.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps.iter().all(|g| *g == TimeDelta::milliseconds(20)),
        "20 ms ring"
    );
    let first = samples
        .iter()
        .find(|s| s.at - t0 >= TimeDelta::milliseconds(17))
        .map(|s| s.power.as_watts())
        .unwrap_or(f64::NAN);
    assert!(
        step_fraction(before, settled, first) >= 0.5,
        "first sample: {first}"
    );

    // Resume: overshoot to about 1.3x for about 50 ms, then settle at the cap.
    clock.advance(secs(2.0));
    job.resume().await?;
    let mut trace = Vec::new();
    for _ in 0..300 {
        clock.advance(Duration::from_millis(1));
        trace.push(gpu.true_power().as_watts());
    }
    let final_w = trace[trace.len() - 1];
    let peak = trace.iter().copied().fold(0.0, f64::max);
    let above = trace.iter().filter(|&&w| w > 1.1 * final_w).count();
    assert!(
        (final_w - 700.0).abs() < 1.0,
        "settles at the cap: {final_w}"
    );
    assert!(
        (1.25..=1.35).contains(&(peak / final_w)),
        "overshoot {}",
        peak / final_w
    );
    assert!((40..=60).contains(&above), "{above} ms above 1.1x");
    let rise = step_fraction(settled, final_w, trace[16]);
    assert!(
        rise >= 0.5,
        "resume reaches half the step within 17 ms: {rise}"
    );
    Ok(())
}

#[tokio::test]
async fn kill_returns_to_idle_without_context() -> TestResult {
    let (clock, gpu) = setup()?;
    gpu.start_workload(WorkloadProfile::of(WorkloadKind::Matmul))?;
    clock.advance(secs(2.0));
    gpu.stop_workload()?;
    assert_eq!(gpu.activity(), SimActivity::NoContext);
    clock.advance(secs(0.070));
    let f = step_fraction(700.0, 84.0, gpu.true_power().as_watts());
    assert!(f >= 0.9, "90 % of the kill step within 70 ms: {f}");
    clock.advance(secs(1.0));
    assert!((gpu.true_power().as_watts() - 84.0).abs() < 0.01);
    Ok(())
}

/// Polls the simulator every 2 ms like the calibration script and compares the traces.
#[tokio::test]
async fn replay_matches_the_measured_trace() -> TestResult {
    let (clock, gpu) = setup()?;
    let data = rows();
    assert!(data.len() > 6_000);
    // The measured run loaded the context about 1.4 s before the load, and the first
    // kernels drew power 0.36 s after `load_start` (CUDA start-up); the simulator's
    // workload starts when the power rose.
    let schedule = [
        (7.07, "context"),
        (event("load_start") + 0.363, "start"),
        (event("sigstop"), "pause"),
        (event("sigcont"), "resume"),
    ];
    let mut next = 0;
    let t_start = data[0].t;
    let mut sim = Vec::with_capacity(data.len());
    let mut elapsed = t_start;
    for row in data.iter().filter(|r| r.t < event("duty_0.5")) {
        clock.advance(secs(row.t - elapsed));
        elapsed = row.t;
        while next < schedule.len() && schedule[next].0 <= row.t {
            match schedule[next].1 {
                "context" => gpu.create_context()?,
                "start" => gpu.start_workload(WorkloadProfile::of(WorkloadKind::Matmul))?,
                "pause" => gpu.pause_workload()?,
                _ => gpu.resume_workload()?,
            }
            next += 1;
        }
        let t = gpu.telemetry().await?;
        let watts = |p: Option<Power>| p.map(Power::as_watts).unwrap_or(f64::NAN);
        let energy = t.energy.map(|e| e.total.as_joules()).unwrap_or(f64::NAN);
        sim.push((
            row.t,
            watts(t.power_average),
            watts(t.power_instant),
            energy,
        ));
    }

    // Telemetry changes about every 100 ms, like the device's.
    let changes: Vec<f64> = sim
        .windows(2)
        .filter(|w| w[1].2 != w[0].2 || w[1].3 != w[0].3)
        .map(|w| w[1].0)
        .collect();
    let mut gaps: Vec<f64> = changes.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    let median = gaps[gaps.len() / 2];
    assert!((median - 0.1).abs() < 0.006, "update period {median}");

    // The averaged power follows the measured one through load, pause and resume.
    let compare = |from: f64, to: f64| {
        let pairs: Vec<(f64, f64)> = data
            .iter()
            .zip(&sim)
            .filter(|(r, _)| r.t >= from && r.t < to)
            .map(|(r, s)| (r.avg, s.1))
            .collect();
        pairs.iter().map(|(m, s)| (m - s).abs()).sum::<f64>() / pairs.len() as f64
    };
    let load = compare(10.5, event("sigstop"));
    let pause = compare(event("sigstop"), event("sigcont"));
    let resume = compare(event("sigcont"), event("duty_0.5"));
    assert!(
        load < 15.0,
        "load phase: mean |measured - simulated| = {load} W"
    );
    assert!(
        pause < 30.0,
        "pause step: mean |measured - simulated| = {pause} W"
    );
    assert!(
        resume < 30.0,
        "resume step: mean |measured - simulated| = {resume} W"
    );

    // The energy counter's slope is the mean power (load phase, 2 s).
    let at = |t: f64| {
        sim.iter()
            .find(|s| s.0 >= t)
            .map(|s| s.3)
            .unwrap_or(f64::NAN)
    };
    let slope = (at(12.4) - at(10.4)) / 2.0;
    assert!((slope - 700.0).abs() < 10.0, "energy slope {slope} W");
    let measured = |t: f64| {
        data.iter()
            .find(|r| r.t >= t)
            .map(|r| r.energy)
            .unwrap_or(f64::NAN)
    };
    let measured_slope = (measured(12.4) - measured(10.4)) / 2.0;
    assert!(
        (slope - measured_slope).abs() / measured_slope < 0.03,
        "{slope} vs {measured_slope}"
    );
    // The sim's instant power is noiseless, the device's is not: compare means only.
    let mean_inst = |v: &mut dyn Iterator<Item = f64>| {
        let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
        s / n as f64
    };
    let m = mean_inst(
        &mut data
            .iter()
            .filter(|r| r.t > 10.5 && r.t < 12.5)
            .map(|r| r.inst),
    );
    let s = mean_inst(&mut sim.iter().filter(|r| r.0 > 10.5 && r.0 < 12.5).map(|r| r.2));
    assert!((m - s).abs() / m < 0.03, "mean instant power {m} vs {s}");
    Ok(())
}
