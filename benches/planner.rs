//! gridflex-planner benches: plans for 1,000 / 10,000 / 100,000 GPUs in jobs of 8 to 512
//! GPUs, and the design's 10,000 GPUs in 2,000 jobs; a 25 % cut (caps mostly) and a
//! 45 % cut (pauses needed). Pause-heavy fleets (every job pausable, high floors, so
//! the pause choice is the whole problem): 100 jobs, and 1,000 jobs on 100,000 GPUs.
//! Each bench prints the plan's certified optimality gap bound (loss minus lower
//! bound, relative to kept throughput) once before timing.
use std::hint::black_box;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gridflex_core::{Interval, JobId, Power};
use gridflex_planner::{
    CapRange, CurtailmentRequest, FacilityModel, Fleet, JobClass, JobSpec, PlannerOptions,
    RampRate, Target, WorkloadKind, plan,
};

/// A small deterministic generator (64-bit LCG), so every run plans the same fleet.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn unit(&mut self) -> f64 {
        self.next() as f64 / f64::from(1u32 << 31)
    }
}

fn w(v: f64) -> Power {
    Power::watts(v).unwrap_or_else(|e| panic!("{e}"))
}

/// The workload kinds the bench fleets mix.
const KINDS: [WorkloadKind; 4] = [
    WorkloadKind::Generic,
    WorkloadKind::Pretraining,
    WorkloadKind::FineTuning,
    WorkloadKind::Inference,
];

/// The start of every bench request.
fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 8, 14, 18, 0, 0)
        .single()
        .unwrap_or_default()
}

/// `gpus` GPUs in jobs whose sizes are drawn from `sizes`.
fn fleet(gpus: u32, sizes: &[u32], seed: u64) -> Fleet {
    let mut rng = Lcg(seed);
    let start = start();
    let kinds = KINDS;
    let mut specs = Vec::new();
    let mut left = gpus;
    while left > 0 {
        let size = sizes[(rng.next() % sizes.len() as u64) as usize].min(left);
        left -= size;
        let i = specs.len();
        let class = match rng.next() % 3 {
            0 => JobClass::Critical {
                floor: 0.8 + 0.15 * rng.unit(),
            },
            1 => JobClass::Flexible {
                floor: 0.4 + 0.3 * rng.unit(),
                max_pause: Duration::from_secs(if rng.next().is_multiple_of(2) {
                    600
                } else {
                    4 * 3600
                }),
            },
            _ => JobClass::Deferrable {
                deadline: start + TimeDelta::hours(1 + (rng.next() % 8) as i64),
            },
        };
        specs.push(JobSpec {
            id: JobId::new(format!("job-{i}")).unwrap_or_else(|e| panic!("{e}")),
            gpus: size,
            draw_per_gpu: w(400.0 + 300.0 * rng.unit()),
            cap_range: CapRange {
                min: w(200.0),
                max: w(700.0),
            },
            paused_draw_per_gpu: w(120.0 + 25.0 * rng.unit()),
            curve: kinds[(rng.next() % 4) as usize].default_curve(),
            weight: 0.5 + 2.5 * rng.unit(),
            class,
        });
    }
    let facility = FacilityModel::new(w(50_000.0 + 20.0 * f64::from(gpus)), 1.3)
        .unwrap_or_else(|e| panic!("{e}"));
    Fleet::from_specs(specs, facility).unwrap_or_else(|e| panic!("{e}"))
}

/// `jobs` jobs of 1 to `2 * gpus / jobs` GPUs, every one pausable for the window (a
/// long pause limit or a late deadline) with a throughput floor of 0.6-0.9 (so a cap
/// saves little and pausing is the main lever). `uniform`: every job alike but its
/// size (700 W, 130 W paused, generic curve, weight 1, floor 0.8), so every pause
/// loses the same per watt and the pause choice is a subset sum: the hard case.
fn pause_heavy_fleet(jobs: u32, gpus: u32, seed: u64, uniform: bool) -> Fleet {
    let mut rng = Lcg(seed);
    let start = start();
    let kinds = KINDS;
    let mean = f64::from(gpus) / f64::from(jobs);
    let specs = (0..jobs)
        .map(|i| {
            let floor = if uniform { 0.8 } else { 0.6 + 0.3 * rng.unit() };
            let class = if uniform || rng.next().is_multiple_of(2) {
                JobClass::Flexible {
                    floor,
                    max_pause: Duration::from_secs(4 * 3600),
                }
            } else {
                JobClass::Deferrable {
                    deadline: start + TimeDelta::hours(3 + (rng.next() % 6) as i64),
                }
            };
            let mut spec = JobSpec {
                id: JobId::new(format!("job-{i}")).unwrap_or_else(|e| panic!("{e}")),
                gpus: 1 + (2.0 * mean * rng.unit()) as u32,
                draw_per_gpu: w(400.0 + 300.0 * rng.unit()),
                cap_range: CapRange {
                    min: w(200.0),
                    max: w(700.0),
                },
                paused_draw_per_gpu: w(120.0 + 25.0 * rng.unit()),
                curve: kinds[(rng.next() % 4) as usize].default_curve(),
                weight: 0.5 + 2.5 * rng.unit(),
                class,
            };
            if uniform {
                spec.draw_per_gpu = w(700.0);
                spec.paused_draw_per_gpu = w(130.0);
                spec.curve = WorkloadKind::Generic.default_curve();
                spec.weight = 1.0;
            }
            spec
        })
        .collect();
    let facility = FacilityModel::new(w(50_000.0 + 20.0 * f64::from(gpus)), 1.3)
        .unwrap_or_else(|e| panic!("{e}"));
    Fleet::from_specs(specs, facility).unwrap_or_else(|e| panic!("{e}"))
}

fn request(fleet: &Fleet, cut: f64) -> CurtailmentRequest {
    let start = Utc
        .with_ymd_and_hms(2025, 8, 14, 18, 0, 0)
        .single()
        .unwrap_or_default();
    let now = fleet
        .current_facility_power()
        .unwrap_or_else(|| panic!("the bench fleet's power is valid"));
    let scaled = |f: f64| {
        now.checked_mul(f)
            .unwrap_or_else(|| panic!("scaled power {f}"))
    };
    CurtailmentRequest::new(
        Target::ReduceBy(scaled(cut)),
        Interval::new(start, start + TimeDelta::hours(2)).unwrap_or_else(|e| panic!("{e}")),
        Duration::from_millis(50),
        RampRate::per_second(scaled(0.05)).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn plans(c: &mut Criterion) {
    let sizes = [8, 16, 32, 64, 128, 256, 512];
    let mut group = c.benchmark_group("plan");
    let small: &[u32] = &[1, 2, 3, 4, 5, 6, 7, 8, 9];
    let cases: [(&str, u32, &[u32], f64); 6] = [
        ("1k GPUs, jobs of 8-512, 25 % cut", 1_000, &sizes, 0.25),
        ("10k GPUs, jobs of 8-512, 25 % cut", 10_000, &sizes, 0.25),
        ("100k GPUs, jobs of 8-512, 25 % cut", 100_000, &sizes, 0.25),
        ("10k GPUs, 2,000 jobs of 1-9, 25 % cut", 10_000, small, 0.25),
        ("100k GPUs, jobs of 8-512, 45 % cut", 100_000, &sizes, 0.45),
        ("10k GPUs, 2,000 jobs of 1-9, 45 % cut", 10_000, small, 0.45),
    ];
    // Cuts chosen where the LP's own pause choice is not optimal, so the search runs.
    let heavy: [(&str, u32, u32, u64, bool, f64); 4] = [
        (
            "pause-heavy: 100 jobs, 55 % cut",
            100,
            10_000,
            42,
            false,
            0.55,
        ),
        (
            "pause-heavy: 1,000 jobs, 100k GPUs, 64 % cut",
            1_000,
            100_000,
            42,
            false,
            0.64,
        ),
        (
            "pause-heavy, uniform: 100 jobs, 55 % cut",
            100,
            10_000,
            2,
            true,
            0.55,
        ),
        (
            "pause-heavy, uniform: 1,000 jobs, 100k GPUs, 60 % cut",
            1_000,
            100_000,
            2,
            true,
            0.6,
        ),
    ];
    let fleets = cases
        .into_iter()
        .map(|(name, gpus, sizes, cut)| (name, fleet(gpus, sizes, 42), cut))
        .chain(
            heavy
                .into_iter()
                .map(|(name, jobs, gpus, seed, uniform, cut)| {
                    (name, pause_heavy_fleet(jobs, gpus, seed, uniform), cut)
                }),
        );
    let options = PlannerOptions::default();
    for (name, fleet, cut) in fleets {
        let req = request(&fleet, cut);
        let p = plan(&fleet, &req, &options).unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "{name}: {} jobs, {} stages + {} restore stages, method {:?}, shortfall {:?}, \
             loss {:.4} of {:.1}, LP bound {:.4}, gap bound {:.2e} of optimum kept",
            fleet.jobs().len(),
            p.stages.len(),
            p.restore.len(),
            p.objective.method,
            p.shortfall,
            p.objective.weighted_throughput_lost,
            p.objective.weighted_throughput_total,
            p.objective.lower_bound,
            p.objective.gap_bound()
        );
        group.bench_with_input(
            BenchmarkId::from_parameter(name),
            &(fleet, req),
            |b, (f, r)| b.iter(|| plan(black_box(f), black_box(r), &options)),
        );
    }
    group.finish();
}

criterion_group!(benches, plans);
criterion_main!(benches);
