//! gridflex quickstart: a simulated 1,024-GPU facility lives through one day of grid
//! signals in virtual time, then prints what it did and what the market would credit.
//!
//! ```sh
//! cargo run --release --example quickstart            # writes to out/quickstart/
//! cargo run --release --example quickstart -- --out DIR
//! ```
//!
//! The day (UTC): an hour of PJM RegD regulation, a PJM emergency load-management
//! dispatch with its 30-minute lead time, a CAISO real-time price spike answered within
//! 20 ms, and a CAISO EEA 2 alert. The facility is 128 nodes of 8 simulated H100s
//! (calibrated on a real H100): critical inference, flexible training and deferrable
//! batch jobs. Before the day, the site's own meter history (30 days of 15-minute
//! utility data, generated here at the facility's level with a daily shape) is imported
//! into a SQLite history store, so every event settles with its program's baseline:
//! CAISO 10-in-10 with its load-point adjustment, PJM's CBL with its Symmetric Additive
//! Adjustment. Outputs: a timeline and per-event M&V on stdout (method, baseline days,
//! adjustment), the signals as JSON lines, the audit log, the history store, an SVG chart
//! of facility power against baseline and target, and per event a CSV of its intervals
//! and an SVG of its settlement with the response zoomed. Then the day's deferrable batch work,
//! on its own simulated nodes, is scheduled by price (CAISO-shaped day-ahead prices, a
//! site limit, the day's events as obligations) and its per-day report printed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex::audit::{AuditEvent, AuditRecord, read_audit_file};
use gridflex::history::backfill_csv;
use gridflex::orchestrator::ctrl_c;
use gridflex::prelude::*;
use gridflex::program::{Cause, Decision};
use gridflex::report::EventReport;
use gridflex::signals::{
    AlertKind, AlertLevel, DispatchEvent, DispatchTarget, EventWindow, GridAlert, LeadTime,
    Program, RegulationKind, RegulationSample, RegulationSignal, write_json_lines,
};
use gridflex::simulated::{JobPlan, SimulatedFacility};
use gridflex::store::{HistoryStore, SqliteOptions, SqliteStore};

type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::from(2)
        }
    }
}

fn day() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 8, 14, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

fn out_dir() -> Result<PathBuf, Error> {
    let mut args = std::env::args().skip(1);
    let mut out = PathBuf::from("out/quickstart");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = PathBuf::from(args.next().ok_or("--out needs a directory")?),
            "-h" | "--help" => {
                println!("usage: quickstart [--out DIR]   (default out/quickstart)");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    Ok(out)
}

/// 128 nodes of 8 GPUs: 32 inference services of one node each (critical), 4 training
/// runs of 16 nodes (flexible), 16 batch jobs of 2 nodes (deferrable).
fn jobs() -> Vec<JobPlan> {
    let mut plans = Vec::new();
    for i in 0..32 {
        plans.push(JobPlan::new(
            format!("infer-{i:02}"),
            8,
            JobClass::Critical { floor: 0.85 },
            WorkloadKind::Inference,
        ));
    }
    for i in 0..4 {
        let class = JobClass::Flexible {
            floor: 0.6,
            max_pause: Duration::from_secs(15 * 60),
        };
        plans.push(JobPlan::new(
            format!("train-{i}"),
            128,
            class,
            WorkloadKind::Pretraining,
        ));
    }
    for i in 0..16 {
        let class = JobClass::Deferrable {
            deadline: day() + TimeDelta::hours(30),
        };
        plans.push(JobPlan::new(
            format!("batch-{i:02}"),
            16,
            class,
            WorkloadKind::FineTuning,
        ));
    }
    plans
}

fn rules(node: &PricingNodeId) -> Result<ProgramRules, Error> {
    let mut rules = ProgramRules::new(Market::Caiso, power!(450 kW));
    rules.markets.push(Market::Pjm);
    let mut price = PriceRule::new(
        node.clone(),
        MarketRun::CaisoRtm,
        price!(300 per MWh),
        power!(560 kW),
    );
    price.release_below = price!(200 per MWh);
    price.response_time = TimeDelta::milliseconds(20);
    rules.price = Some(price);
    rules.dispatch = Some(DispatchRule::new(vec![
        Program::PjmEmergencyLoadManagement {
            lead_time: LeadTime::Minutes30,
        },
    ]));
    rules.emergency = Some(EmergencyRule::new(vec![LevelCap::new(
        AlertLevel::Eea2,
        power!(500 kW),
    )]));
    rules.regulation = Some(RegulationRule::new(
        RegulationKind::RegD,
        power!(720 kW),
        power!(120 kW),
    ));
    Ok(rules)
}

/// The day's signals, in time order.
fn signals(node: &PricingNodeId) -> Result<Vec<GridSignal>, Error> {
    let mut out = Vec::new();
    // 01:00-02:00 PJM RegD: a fast, energy-neutral signal every 2 s.
    let reg_start = day() + TimeDelta::hours(1);
    for k in 0..1800 {
        let t = f64::from(k) * 2.0;
        let v = 0.7 * (t / 97.0).sin() + 0.25 * (t / 23.0).sin();
        let s = RegulationSignal::new(v.clamp(-1.0, 1.0))?;
        out.push(GridSignal::Regulation(RegulationSample::new(
            reg_start + TimeDelta::seconds(2 * i64::from(k)),
            RegulationKind::RegD,
            s,
        )));
    }
    // 14:00 PJM emergency load management, 30-minute lead time: reduce by 200 kW, 14:30-15:30.
    let issued = day() + TimeDelta::hours(14);
    let window = EventWindow::new(
        issued + TimeDelta::minutes(30),
        Some(issued + TimeDelta::minutes(90)),
    )?;
    out.push(GridSignal::Dispatch(DispatchEvent::new(
        "PJM-ELM-20250814-1",
        Program::PjmEmergencyLoadManagement {
            lead_time: LeadTime::Minutes30,
        },
        issued,
        window,
        DispatchTarget::ReduceBy {
            power: power!(200 kW),
        },
        None,
    )?));
    // 19:00-21:00 CAISO RTM five-minute prices with a spike at 20:00 (13:00 PDT).
    for k in 0..24 {
        let start = day() + TimeDelta::hours(19) + TimeDelta::minutes(5 * k);
        let lmp = match k {
            12 => 950.0,
            13 => 1210.0,
            14 => 640.0,
            15 => 260.0, // inside the hysteresis band: the curtailment holds
            _ => 45.0 + 3.0 * k as f64,
        };
        let i = Interval::new(start, start + TimeDelta::minutes(5))?;
        out.push(GridSignal::Price(PricePoint::new(
            MarketRun::CaisoRtm,
            node.clone(),
            i,
            Price::per_megawatt_hour(lmp)?,
        )));
    }
    // 23:00 CAISO EEA 2 until 23:45.
    let at = day() + TimeDelta::hours(23);
    out.push(GridSignal::Alert(GridAlert::new(
        Market::Caiso,
        AlertKind::Eea2,
        at,
        EventWindow::new(at, Some(at + TimeDelta::minutes(45)))?,
    )?));
    out.sort_by_key(GridSignal::time);
    Ok(out)
}

fn run() -> Result<(), Error> {
    let out = out_dir()?;
    let node = PricingNodeId::new("TH_SP15_GEN-APND")?;
    let signals = signals(&node)?;
    let mut f = std::fs::File::create(out.join("signals.jsonl"))?;
    write_json_lines(&mut f, &signals)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    let wall = Instant::now();
    let audit_path = out.join("audit.jsonl");
    let _ = std::fs::remove_file(&audit_path);
    let history_path = out.join("history.db");
    for f in ["history.db", "history.db-wal", "history.db-shm"] {
        let _ = std::fs::remove_file(out.join(f));
    }
    let store = std::sync::Arc::new(SqliteStore::open(&history_path, SqliteOptions::default())?);
    let facility_model = FacilityModel::new(power!(60 kW), 1.25)?;
    let (reports, meter, backfilled) = runtime.block_on(async {
        let facility = SimulatedFacility::build(day(), &jobs())?;
        let clock = facility.clock();
        // The utility's interval data for the 30 days before, at the facility's own
        // uncurtailed level, imported as the history baselines are computed from.
        // A minute for the simulated jobs to reach their running draw, then one reading.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let _ = clock.now();
        let mut it = Power::ZERO;
        for gpu in facility.fleet().iter() {
            let t = gpu.telemetry().await?;
            it += t.power_average.or(t.power_instant).unwrap_or(Power::ZERO);
        }
        let level = facility_model
            .facility_power(it)
            .ok_or_else(|| std::io::Error::other("facility power out of range"))?;
        println!("facility draw before the day: {:.0}", level);
        let csv = utility_history(level);
        std::fs::write(out.join("utility_history.csv"), &csv)?;
        let backfilled = backfill_csv(&*store, &csv)?;
        let mut options = OrchestratorOptions::default();
        options.telemetry_step = TimeDelta::seconds(30);
        options.meter_step = TimeDelta::minutes(1);
        options.regulation_prices = Some((price!(25 per MWh), price!(4 per MWh), 2.9));
        let mut orchestrator = facility
            .orchestrator(clock.clone())
            .facility(facility_model)
            .rules(rules(&node)?)
            .options(options)
            .audit(AuditLog::append_to_file(&audit_path)?)
            .history(store.clone())
            .build()?;
        // The replay ends after the last signal; the day (and its metering) goes on
        // until midnight, when `stop` ends the run.
        let source = OpenUntilStopped(ReplaySource::from_signals(signals.clone(), clock.clone())?);
        let end_of_day = {
            let clock = clock.clone();
            async move { clock.sleep_until(day() + TimeDelta::days(1)).await }
        };
        let stop = async {
            tokio::select! {
                () = end_of_day => {}
                () = ctrl_c() => {}
            }
        };
        orchestrator.run(source, stop).await?;
        if !orchestrator.curtailed_jobs().is_empty() {
            return Err(format!("jobs left curtailed: {:?}", orchestrator.curtailed_jobs()).into());
        }
        // The meter held includes the imported history: keep the day for the outputs.
        let meter = match orchestrator.meter()? {
            Some(m) => {
                let the_day = Interval::new(day(), m.end().min(day() + TimeDelta::days(1)))?;
                Some(m.slice(the_day)?)
            }
            None => None,
        };
        Ok::<_, Error>((orchestrator.reports().to_vec(), meter, backfilled))
    })?;
    let elapsed = wall.elapsed();
    let scheduled = runtime.block_on(schedule_batch(&signals))?;

    let records = read_audit_file(&audit_path)?.into_complete()?;
    println!(
        "gridflex quickstart: 1,024 simulated H100s (128 nodes) through 2025-08-14 in {:.1} s of wall time",
        elapsed.as_secs_f64()
    );
    println!(
        "history: {backfilled} intervals of utility meter data imported into {}\n",
        history_path.display()
    );
    print_timeline(&records);
    println!();
    for r in &reports {
        print_report(r);
    }
    println!(
        "\ndeferrable batch scheduled by price: 16 batch jobs of 16 simulated H100s, 6 h of work \
         each, due 2025-08-15 06:00, room for 6 at once, CAISO-shaped day-ahead prices, held \
         through the day's events:"
    );
    for r in &scheduled {
        println!("  {r}");
    }
    let saved: f64 = scheduled.iter().map(|r| r.saved.as_usd()).sum();
    let absorbed: f64 = scheduled
        .iter()
        .map(|r| r.absorbed.as_kilowatt_hours())
        .sum();
    let met: usize = scheduled.iter().map(|r| r.deadlines_met).sum();
    let missed: usize = scheduled.iter().map(|r| r.deadlines_missed).sum();
    println!(
        "  batch total: saved {} against running as they came, {absorbed:.1} kWh absorbed at \
         negative prices, deadlines met {met} of 16, missed {missed}",
        Money::usd(saved)?
    );
    let svg = out.join("facility.svg");
    let meter_csv = out.join("meter.csv");
    if let Some(meter) = &meter {
        chart(&svg, meter, &reports)?;
        write_meter_csv(&meter_csv, meter)?;
    }
    // Per event: its settlement per interval (CSV) and its chart (SVG), the response
    // zoomed from the capture kept in the history store.
    for r in &reports {
        if let Some(csv) = r.intervals_csv() {
            std::fs::write(out.join(format!("event-{}.csv", r.event_id)), csv)?;
            let capture: Vec<_> = store
                .capture(r.event_id)?
                .into_iter()
                .map(|c| gridflex::mv::response::Sample {
                    at: c.at,
                    value: c.power,
                })
                .collect();
            std::fs::write(
                out.join(format!("event-{}.svg", r.event_id)),
                r.svg(meter.as_ref(), &capture),
            )?;
        }
    }
    println!(
        "\nwrote {} ({} records), {}, {}, {}, {} and event-N.csv/.svg per event",
        audit_path.display(),
        records.len(),
        history_path.display(),
        svg.display(),
        meter_csv.display(),
        out.join("signals.jsonl").display()
    );
    println!(
        "try: cargo run --example mv -- baseline --method mbma --meter {} --event-start 2025-08-14T20:00:00Z --event-end 2025-08-14T20:20:00Z",
        meter_csv.display()
    );
    Ok(())
}

/// The day's deferrable batch work on its own simulated nodes (the facility's M&V
/// above is left as it was), scheduled by the scheduling loop against CAISO-shaped
/// prices, with the day's event windows as obligations: per-day reports.
async fn schedule_batch(
    signals: &[GridSignal],
) -> Result<Vec<gridflex::scheduling::DayReport>, Error> {
    use gridflex::hal::sim::{SimFleet, SimGpuSpec, SimJob, WorkloadProfile};
    use gridflex::planner::{DeferrableWork, SiteWork};
    use gridflex::scheduling::{DeferrableJob, ObligationBoard, Scheduler, SchedulerConfig};
    const JOBS: usize = 16;
    const GPUS: usize = 16;
    let clock = TokioClock::starting_at(day());
    let fleet = SimFleet::new(
        std::sync::Arc::new(clock.clone()),
        JOBS * GPUS,
        &SimGpuSpec::h100_sxm(),
    )?;
    let board = ObligationBoard::new();
    for s in signals {
        let window = match s {
            GridSignal::Dispatch(d) => d.window.interval(),
            GridSignal::Alert(a) => a.window.interval(),
            _ => None,
        };
        if let Some(window) = window {
            board.add(window);
        }
    }
    // The regulation hour and the price spike (prices above the strike) hold work too.
    board.add(Interval::new(
        day() + TimeDelta::hours(1),
        day() + TimeDelta::hours(2),
    )?);
    board.add(Interval::new(
        day() + TimeDelta::hours(20),
        day() + TimeDelta::minutes(20 * 60 + 20),
    )?);
    let job_power = Power::watts(GPUS as f64 * 700.0)?;
    let other = Power::watts(fleet.len() as f64 * 125.0)?;
    let prices = gridflex::simulated::caiso_shaped_prices(day(), 2, TimeDelta::minutes(5), 814)?;
    let mut scheduler = Scheduler::new(
        clock.clone(),
        SchedulerConfig::new(other + job_power.times(6), other),
        prices,
    )?
    .obligations(std::sync::Arc::new(board));
    for k in 0..JOBS {
        let id = JobId::new(format!("batch-{k:02}"))?;
        let gpus = fleet.iter().skip(k * GPUS).take(GPUS).cloned().collect();
        let sim = SimJob::start(
            id.clone(),
            gpus,
            WorkloadProfile::of(WorkloadKind::FineTuning),
        )?;
        let work = SiteWork::from(DeferrableWork {
            id,
            power: job_power,
            remaining: Duration::from_secs(6 * 3600),
            deadline: day() + TimeDelta::hours(30),
        });
        scheduler.add_job(DeferrableJob::new(work, std::sync::Arc::new(sim)))?;
    }
    let (handle, task) = scheduler.spawn();
    clock.sleep_until(day() + TimeDelta::hours(30)).await;
    let reports = handle.report().await?;
    handle.shutdown().await?;
    task.await??;
    Ok(reports)
}

/// A source that stays open (silent) after its inner source has ended, so the run lasts
/// until its shutdown future.
struct OpenUntilStopped<S>(S);

#[async_trait::async_trait]
impl<S: SignalSource> SignalSource for OpenUntilStopped<S> {
    async fn next_signal(&mut self) -> Result<Option<GridSignal>, gridflex::signals::SignalError> {
        match self.0.next_signal().await? {
            Some(signal) => Ok(Some(signal)),
            None => std::future::pending().await,
        }
    }
}

fn duration(d: TimeDelta) -> String {
    match d.num_milliseconds() {
        ms if ms < 1_000 => format!("{ms} ms"),
        ms if ms < 120_000 => format!("{} s", ms / 1_000),
        ms => format!("{} min", ms / 60_000),
    }
}

fn hhmm(t: DateTime<Utc>) -> String {
    t.format("%H:%M:%S%.3f").to_string()
}

/// A readable timeline from the audit log: regulation set-points and ignored prices
/// are summarised rather than listed one by one.
fn print_timeline(records: &[AuditRecord]) {
    let mut set_points = 0usize;
    let mut ignored = 0usize;
    for r in records {
        match &r.event {
            AuditEvent::Decision {
                decision: Decision::Curtail(c),
                event_id,
            } => {
                if matches!(c.cause, Cause::Regulation) {
                    set_points += 1;
                    if set_points > 1 {
                        continue;
                    }
                }
                let event = event_id.map_or("(scheduled)".into(), |e| format!("event {e}"));
                println!(
                    "{}  {event}: {} -> {}, {} to {} (respond within {})",
                    hhmm(r.at),
                    c.cause,
                    c.target,
                    hhmm(c.window.start()),
                    hhmm(c.window.end()),
                    duration(c.response_time)
                );
            }
            AuditEvent::Decision {
                decision: Decision::Ignore { .. },
                ..
            } => ignored += 1,
            AuditEvent::Refused { refusal } => println!("{}  refused: {refusal}", hhmm(r.at)),
            AuditEvent::Plan { event_id, plan } if set_points <= 1 => println!(
                "{}  event {event_id}: plan to {:.0} from {:.0}, {} stage(s), {} restore step(s){}",
                hhmm(r.at),
                plan.predicted_power,
                plan.baseline,
                plan.stages.len(),
                plan.restore.len(),
                plan.shortfall
                    .map_or(String::new(), |s| format!(", SHORT by {s:.0}"))
            ),
            AuditEvent::Restore { event_id, reason } => {
                if set_points > 1 {
                    println!(
                        "          ... {} more regulation set-points",
                        set_points - 1
                    );
                    set_points = 0;
                }
                println!("{}  event {event_id}: restore ({reason})", hhmm(r.at));
            }
            AuditEvent::PlanFailed { event_id, error } => {
                println!("{}  event {event_id}: no plan: {error}", hhmm(r.at))
            }
            AuditEvent::TelemetryFailed { device, error, .. } => {
                println!("{}  telemetry of {device}: {error}", hhmm(r.at))
            }
            AuditEvent::RestoreIncomplete { jobs, .. } => {
                println!("{}  NOT RESTORED: {} job(s)", hhmm(r.at), jobs.len())
            }
            _ => {}
        }
    }
    println!("({ignored} signals needed no action: prices below the strike)");
}

fn print_report(r: &EventReport) {
    println!("{r}");
}

/// 30 days of 15-minute utility interval data ending at the day's start, as the `mv`
/// tool reads it: the facility's level with a small daily cycle (peaking at 15:00 UTC)
/// and a deterministic ripple.
fn utility_history(level: Power) -> String {
    use std::fmt::Write as _;
    let mut csv = String::from("interval_start,kw\n");
    let first = day() - TimeDelta::days(30);
    for k in 0..30 * 96 {
        let t = first + TimeDelta::minutes(15 * k);
        let hour = gridflex::core::units::seconds_f64(t - first) / 3600.0;
        let shape = 0.015 * ((hour - 15.0) / 24.0 * std::f64::consts::TAU).cos();
        let ripple = 0.004 * ((k * 7919 % 101) as f64 / 50.0 - 1.0);
        let _ = writeln!(
            csv,
            "{},{:.3}",
            t.to_rfc3339(),
            level.as_kilowatts() * (1.0 + shape + ripple)
        );
    }
    csv
}

/// The recorded facility meter as `interval_start,kw` (the `mv` example's input).
fn write_meter_csv(path: &std::path::Path, meter: &IntervalSeries<Power>) -> Result<(), Error> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "interval_start,kw")?;
    for (interval, value) in meter.iter() {
        let kw = value.map_or(String::new(), |p| format!("{:.3}", p.as_kilowatts()));
        writeln!(f, "{},{kw}", interval.start().to_rfc3339())?;
    }
    f.flush()?;
    Ok(())
}

/// Facility power (1-minute means) with each event's target and baseline.
fn chart(
    path: &std::path::Path,
    meter: &IntervalSeries<Power>,
    reports: &[EventReport],
) -> Result<(), Error> {
    use plotters::prelude::*;
    let hours = |t: DateTime<Utc>| gridflex::core::units::seconds_f64(t - day()) / 3600.0;
    let points: Vec<(f64, f64)> = meter
        .iter()
        .filter_map(|(i, v)| Some((hours(i.start()), v?.as_kilowatts())))
        .collect();
    let top = points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (1400, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "gridflex quickstart: facility power, 2025-08-14 (UTC)",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..24f64, 0f64..top)?;
    chart
        .configure_mesh()
        .x_desc("hour (UTC)")
        .y_desc("kW")
        .draw()?;
    chart
        .draw_series(LineSeries::new(points, &BLUE))?
        .label("facility power")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    let (mut target_labelled, mut baseline_labelled) = (false, false);
    for r in reports {
        let (a, b) = (hours(r.window.start()), hours(r.window.end()));
        // A regulation target moves every 2 s; the power trace shows it followed.
        if matches!(r.cause, Cause::Regulation) {
            continue;
        }
        let target = r.target.as_kilowatts();
        let s = chart.draw_series(LineSeries::new(
            vec![(a, target), (b, target)],
            RED.stroke_width(2),
        ))?;
        if !target_labelled {
            s.label("target")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
            target_labelled = true;
        }
        if let Some(d) = &r.delivery {
            let base = d.baseline.as_kilowatts();
            let s = chart.draw_series(LineSeries::new(
                vec![(a, base), (b, base)],
                GREEN.stroke_width(2),
            ))?;
            if !baseline_labelled {
                s.label("baseline (each event's program method)")
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
                baseline_labelled = true;
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
