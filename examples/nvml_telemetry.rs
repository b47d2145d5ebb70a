//! Lists the NVIDIA GPUs with their power limits and prints telemetry at a chosen rate
//! for a chosen time. Read-only: it never changes a setting.
//!
//! ```text
//! cargo run -p gridflex-hal --features nvml --example nvml_telemetry -- [--rate-hz 50] [--seconds 2]
//! ```
//!
//! At the end it prints, per GPU, the read latency of one telemetry call (p50/p99), of
//! the energy counter, and how often the averaged and instant power changed. Without
//! an NVIDIA driver it prints the error and exits with status 1.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use gridflex_hal::nvml::{NvmlGpu, NvmlSystem};
use gridflex_hal::{HalError, PowerDevice, Telemetry};

struct Args {
    rate_hz: f64,
    seconds: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        rate_hz: 10.0,
        seconds: 2.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = |it: &mut dyn Iterator<Item = String>| -> Result<f64, String> {
            let v = it.next().ok_or(format!("{flag} needs a value"))?;
            let x: f64 = v
                .parse()
                .map_err(|_| format!("{flag}: not a number: {v}"))?;
            if x.is_finite() && x > 0.0 {
                Ok(x)
            } else {
                Err(format!("{flag} must be positive, got {v}"))
            }
        };
        match flag.as_str() {
            "--rate-hz" => args.rate_hz = value(&mut it)?.min(10_000.0),
            "--seconds" => args.seconds = value(&mut it)?.min(3_600.0),
            "-h" | "--help" => {
                return Err("usage: nvml_telemetry [--rate-hz HZ] [--seconds S]".into());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn fmt_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.1}"))
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Median time between changes of a reading, from (elapsed, value) pairs.
fn update_period(trace: &[(Duration, Option<f64>)]) -> Option<Duration> {
    let changes: Vec<Duration> = trace
        .windows(2)
        .filter(|w| w[0].1 != w[1].1)
        .map(|w| w[1].0)
        .collect();
    let mut gaps: Vec<Duration> = changes.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    gaps.get(gaps.len() / 2).copied()
}

struct Stats {
    latencies: Vec<Duration>,
    avg: Vec<(Duration, Option<f64>)>,
    inst: Vec<(Duration, Option<f64>)>,
}

fn print_line(gpu: &NvmlGpu, t: &Telemetry, elapsed: Duration) {
    println!(
        "{:>8.3}s {}  avg {} W  inst {} W  limit {}/{} W  sm {}  util {}  cap-binding {}",
        elapsed.as_secs_f64(),
        gpu.info().uuid,
        fmt_opt(t.power_average.map(|p| p.as_watts())),
        fmt_opt(t.power_instant.map(|p| p.as_watts())),
        fmt_opt(t.requested_limit.map(|p| p.as_watts())),
        fmt_opt(t.enforced_limit.map(|p| p.as_watts())),
        t.sm_clock.map_or("n/a".to_owned(), |c| c.to_string()),
        t.utilization.map_or("n/a".to_owned(), |u| u.to_string()),
        t.cap_binding.map_or("n/a".to_owned(), |b| b.to_string()),
    );
}

fn run(args: &Args) -> Result<(), HalError> {
    let system = NvmlSystem::init()?;
    let discovery = system.discover()?;
    println!("{} GPU(s) found", discovery.gpus.len());
    for (index, why) in &discovery.skipped {
        println!("device {index}: skipped: {why}");
    }
    for gpu in &discovery.gpus {
        let i = gpu.info();
        println!(
            "{}  {}  limits min {} / max {} / default {}  in force at discovery {}",
            i.uuid,
            i.model,
            i.limits.min(),
            i.limits.max(),
            i.limits.default_limit(),
            i.limit_at_discovery
        );
    }
    let mut energy_latency = Vec::new();
    for gpu in &discovery.gpus {
        let t0 = Instant::now();
        match gpu.refresh_energy() {
            Ok(e) => {
                energy_latency.push(t0.elapsed());
                println!(
                    "{}  energy counter {:.1} kJ",
                    gpu.info().uuid,
                    e.total.as_joules() / 1e3
                );
            }
            Err(e) => println!("{}  energy counter: {e}", gpu.info().uuid),
        }
    }

    let period = Duration::from_secs_f64(1.0 / args.rate_hz);
    let total = Duration::from_secs_f64(args.seconds);
    let mut stats: Vec<Stats> = discovery
        .gpus
        .iter()
        .map(|_| Stats {
            latencies: Vec::new(),
            avg: Vec::new(),
            inst: Vec::new(),
        })
        .collect();
    let start = Instant::now();
    let mut next = start;
    while start.elapsed() < total {
        for (gpu, s) in discovery.gpus.iter().zip(&mut stats) {
            let t0 = Instant::now();
            let t = gpu.telemetry_now()?;
            s.latencies.push(t0.elapsed());
            let elapsed = start.elapsed();
            s.avg.push((elapsed, t.power_average.map(|p| p.as_watts())));
            s.inst
                .push((elapsed, t.power_instant.map(|p| p.as_watts())));
            print_line(gpu, &t, elapsed);
        }
        next += period;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }

    for (gpu, s) in discovery.gpus.iter().zip(&mut stats) {
        s.latencies.sort();
        println!(
            "{}  telemetry read p50 {:?} p99 {:?} over {} reads; averaged power changes every {:?}, instant every {:?}",
            gpu.info().uuid,
            percentile(&s.latencies, 0.5),
            percentile(&s.latencies, 0.99),
            s.latencies.len(),
            update_period(&s.avg),
            update_period(&s.inst),
        );
    }
    if !energy_latency.is_empty() {
        energy_latency.sort();
        println!(
            "energy counter read p50 {:?}",
            percentile(&energy_latency, 0.5)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
