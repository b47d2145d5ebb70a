//! 45 simulated days with a history store and a restart in the middle: every event
//! after the restart settles with the program's baseline on the stored meter, with the
//! numbers `gridflex-mv` gives on the same data, and event days and holidays are left
//! out of the baseline days.
#![cfg(feature = "sqlite")]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use gridflex::OrchestratorOptions;
use gridflex::mv::baseline::Method;
use gridflex::mv::{Calendar, Meter};
use gridflex::prelude::*;
use gridflex::program::Settlement;
use gridflex::report::settlement_calendar;
use gridflex::signals::{DispatchEvent, DispatchTarget, EventWindow, Program, SignalError};
use gridflex::simulated::{JobPlan, SimulatedFacility};
use gridflex::store::{Channel, DetailKind, HistoryStore, SqliteOptions, SqliteStore};

fn kw(v: f64) -> Power {
    Power::kilowatts(v).unwrap()
}

/// Local midnight, Monday 2025-06-02, in California (PDT, UTC-7).
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 2, 7, 0, 0).unwrap()
}

/// 14:00 local on day `d`.
fn afternoon(d: i64) -> DateTime<Utc> {
    start() + TimeDelta::days(d) + TimeDelta::hours(14)
}

/// Signals released at their instants; then silence (never the end of the source, so
/// only the shutdown future stops a run).
struct Script {
    items: VecDeque<(DateTime<Utc>, GridSignal)>,
    clock: TokioClock,
}

#[async_trait]
impl SignalSource for Script {
    async fn next_signal(&mut self) -> Result<Option<GridSignal>, SignalError> {
        match self.items.pop_front() {
            Some((at, s)) => {
                self.clock.sleep_until(at).await;
                Ok(Some(s))
            }
            None => std::future::pending().await,
        }
    }
}

fn dispatch(d: i64) -> (DateTime<Utc>, GridSignal) {
    let from = afternoon(d);
    let issued = from - TimeDelta::hours(2);
    let signal = GridSignal::Dispatch(
        DispatchEvent::new(
            format!("E{d}"),
            Program::CaisoPdr,
            issued,
            EventWindow::new(from, Some(from + TimeDelta::hours(2))).unwrap(),
            DispatchTarget::CapAt { power: kw(2.2) },
            None,
        )
        .unwrap(),
    );
    (issued, signal)
}

/// An orchestrator on `clock` (one clock for the whole test: a clock made after the
/// downtime would start from the simulator's last reading and hide the gap).
fn orchestrator(
    f: &SimulatedFacility,
    clock: &TokioClock,
    store: Arc<dyn HistoryStore>,
) -> Orchestrator<TokioClock> {
    let mut rules = ProgramRules::new(Market::Caiso, kw(5.0));
    rules.dispatch = Some(DispatchRule::new(vec![Program::CaisoPdr]));
    let mut options = OrchestratorOptions::default();
    // A coarse sweep keeps 45 days fast in a debug build; the meter keeps its 5 minutes.
    options.telemetry_step = TimeDelta::seconds(60);
    f.orchestrator(clock.clone())
        .facility(FacilityModel::new(kw(0.5), 1.2).unwrap())
        .rules(rules)
        .options(options)
        .history(store)
        .build()
        .unwrap()
}

async fn run_until(
    o: &mut Orchestrator<TokioClock>,
    clock: &TokioClock,
    items: Vec<(DateTime<Utc>, GridSignal)>,
    until: DateTime<Utc>,
) {
    let source = Script {
        items: items.into(),
        clock: clock.clone(),
    };
    let stop_clock = clock.clone();
    o.run(source, async move { stop_clock.sleep_until(until).await })
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn forty_five_days_with_a_restart_settle_every_later_event_with_the_program_baseline() {
    let dir = std::env::temp_dir().join(format!("gridflex-history-45d-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("history.db");
    let f = SimulatedFacility::build(
        start(),
        &[
            JobPlan::new(
                "serve",
                2,
                JobClass::Critical { floor: 0.85 },
                WorkloadKind::Inference,
            ),
            JobPlan::new(
                "train",
                2,
                JobClass::Flexible {
                    floor: 0.5,
                    max_pause: Duration::from_secs(600),
                },
                WorkloadKind::Pretraining,
            ),
        ],
    )
    .unwrap();
    let clock = f.clock();
    // Weekday events: days 3 (Thursday of week 1: too little history yet), 10, 17,
    // 24 and 31, 38 (after the restart on day 22). Friday 2025-07-04 is a holiday.
    let before: Vec<_> = [3, 10, 17].into_iter().map(dispatch).collect();
    let after: Vec<_> = [24, 31, 38].into_iter().map(dispatch).collect();
    // The restart: stopped at 14:30 local on Tuesday, day 22, back 20 minutes later.
    let restart = afternoon(22) + TimeDelta::minutes(30);
    let end = start() + TimeDelta::days(45);

    let first_ids;
    {
        let store: Arc<dyn HistoryStore> =
            Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let mut o = orchestrator(&f, &clock, store);
        run_until(&mut o, &clock, before, restart).await;
        let reports = o.reports().to_vec();
        assert_eq!(reports.len(), 3, "{reports:#?}");
        let first = reports[0].delivery.as_ref().unwrap();
        // Day 3 has three weekdays before it: 10-in-10 needs five, so MBMA stands in,
        // and the report says why.
        assert_eq!(first.method, Method::Mbma);
        let fallback = first.fallback.as_ref().unwrap();
        assert_eq!(fallback.program_method, Method::Caiso10in10);
        assert!(!fallback.reason.is_empty());
        for r in &reports[1..] {
            let d = r.delivery.as_ref().unwrap();
            assert_eq!(d.method, Method::Caiso10in10, "{r:#?}");
            assert!(d.fallback.is_none());
        }
        first_ids = reports.iter().map(|r| r.event_id).collect::<Vec<_>>();
    } // the orchestrator and its store are gone: a restart.
    tokio::time::sleep(Duration::from_secs(20 * 60)).await;

    let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let mut o = orchestrator(&f, &clock, store.clone());
    run_until(&mut o, &clock, after, end).await;
    drop(o);
    let reports: Vec<EventReport> = (1..=6)
        .filter_map(|id| store.report(id).unwrap())
        .map(|r| serde_json::from_str(&r.json).unwrap())
        .collect();
    assert_eq!(reports.len(), 6, "every report is in the store");
    let later = &reports[3..];
    // Ids continue across the restart.
    assert_eq!(first_ids, [1, 2, 3]);
    assert_eq!(
        later.iter().map(|r| r.event_id).collect::<Vec<_>>(),
        [4, 5, 6]
    );

    // gridflex-mv on the stored meter, with the stored events as event days.
    let whole = Interval::new(start(), end).unwrap();
    let series = store
        .meter_series(&Channel::Facility, whole, TimeDelta::minutes(5))
        .unwrap();
    let meter = Meter::new(series, MarketZone::Caiso).unwrap();
    let windows: Vec<Interval> = store
        .events(whole)
        .unwrap()
        .iter()
        .map(|e| e.window)
        .collect();
    assert_eq!(windows.len(), 6);
    let calendar: Calendar = settlement_calendar(MarketZone::Caiso, &windows);
    let baseline = Settlement::for_program(&Program::CaisoPdr).baseline;
    let event_days: Vec<NaiveDate> = windows
        .iter()
        .map(|w| MarketZone::Caiso.operating_date(w.start()))
        .collect();
    let holiday = NaiveDate::from_ymd_opt(2025, 7, 4).unwrap();
    for r in later {
        let d = r.delivery.as_ref().unwrap();
        assert_eq!(d.method, Method::Caiso10in10, "{r:#?}");
        assert!(d.fallback.is_none(), "{:?}", d.fallback);
        let event = Interval::new(
            d.intervals.first().unwrap().interval.start(),
            d.intervals.last().unwrap().interval.end(),
        )
        .unwrap();
        assert_eq!(event.duration(), TimeDelta::hours(2));
        // Settled from the dispatch's arrival, two hours before its window.
        assert_eq!(d.notified, Some(event.start() - TimeDelta::hours(2)));
        let expected = baseline
            .compute_notified(&meter, &calendar, event, d.notified)
            .unwrap();
        assert_eq!(d.selected_days, expected.selected_days);
        assert_eq!(d.selected_days.len(), 10);
        assert_eq!(d.intervals, expected.intervals);
        assert_eq!(d.delivered, expected.reduction().mean_settled);
        // No baseline day is an event day or the holiday.
        assert!(
            d.selected_days
                .iter()
                .all(|day| !event_days.contains(day) && *day != holiday)
        );
        // The cap held: a real reduction was delivered.
        assert!(d.delivered.as_kilowatts() > 0.1, "{d:#?}");
    }
    // The restart day has a gap in the event hours (the 20 minutes down): it is
    // dropped for missing data and replaced by an older day, never averaged as zero.
    let day22 = MarketZone::Caiso.operating_date(restart);
    let first_later = later[0].delivery.as_ref().unwrap();
    assert!(!first_later.selected_days.contains(&day22));
    let event = first_later.intervals[0].interval;
    let expected = baseline
        .compute_notified(
            &meter,
            &calendar,
            Interval::new(event.start(), event.start() + TimeDelta::hours(2)).unwrap(),
            first_later.notified,
        )
        .unwrap();
    let d22 = expected.days.iter().find(|d| d.date == day22).unwrap();
    assert!(
        matches!(
            d22.outcome,
            gridflex::mv::baseline::DayOutcome::Dropped(
                gridflex::mv::baseline::DropReason::MissingData { .. }
            )
        ),
        "{d22:?}"
    );

    // Each event's decision, plan and outcome are in the store, as audit JSON.
    for r in later {
        let details = store.details(r.event_id).unwrap();
        let kinds: Vec<DetailKind> = details.iter().map(|d| d.kind).collect();
        for kind in [DetailKind::Signal, DetailKind::Plan, DetailKind::Outcome] {
            assert!(kinds.contains(&kind), "event {}: {kinds:?}", r.event_id);
        }
        for d in &details {
            let _: serde_json::Value = serde_json::from_str(&d.json).unwrap();
        }
    }

    // The report's outputs: CSV per interval, an SVG chart with the zoomed response
    // from the stored capture.
    let r = &later[1];
    let csv = r.intervals_csv().unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 1 + 24);
    assert_eq!(
        rows[0],
        "interval_start,interval_end,baseline_kw,adjusted_baseline_kw,metered_kw,reduction_kw"
    );
    for (row, i) in rows[1..]
        .iter()
        .zip(&r.delivery.as_ref().unwrap().intervals)
    {
        let cols: Vec<f64> = row.split(',').skip(2).map(|c| c.parse().unwrap()).collect();
        assert!((cols[1] - i.adjusted_baseline.as_kilowatts()).abs() < 1e-3);
        assert!((cols[3] - (cols[1] - cols[2])).abs() < 2e-3);
    }
    let capture: Vec<gridflex::mv::response::Sample<Power>> = store
        .capture(r.event_id)
        .unwrap()
        .into_iter()
        .map(|c| gridflex::mv::response::Sample {
            at: c.at,
            value: c.power,
        })
        .collect();
    assert!(capture.len() > 10, "the response capture is stored");
    let stored_meter = store
        .meter_series(&Channel::Facility, whole, TimeDelta::minutes(5))
        .unwrap();
    let svg = r.svg(Some(&stored_meter), &capture);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("caiso-10in10"));
    assert_eq!(
        svg.matches("<polyline").count(),
        5,
        "metered, baseline, target; capture, target"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A store whose writes block until released: a stalled disk.
struct Stalled {
    gate: std::sync::Mutex<()>,
    inner: gridflex::store::MemoryStore,
}

impl HistoryStore for Stalled {
    fn write(&self, r: &[gridflex::store::Record]) -> Result<(), gridflex::store::StoreError> {
        drop(self.gate.lock().unwrap());
        self.inner.write(r)
    }
    fn meter(
        &self,
        c: &Channel,
        r: Interval,
    ) -> Result<Vec<gridflex::store::MeterReading>, gridflex::store::StoreError> {
        self.inner.meter(c, r)
    }
    fn meter_end(&self, c: &Channel) -> Result<Option<DateTime<Utc>>, gridflex::store::StoreError> {
        self.inner.meter_end(c)
    }
    fn events(
        &self,
        r: Interval,
    ) -> Result<Vec<gridflex::store::EventSpan>, gridflex::store::StoreError> {
        self.inner.events(r)
    }
    fn details(
        &self,
        id: u64,
    ) -> Result<Vec<gridflex::store::EventDetail>, gridflex::store::StoreError> {
        self.inner.details(id)
    }
    fn capture(
        &self,
        id: u64,
    ) -> Result<Vec<gridflex::store::CaptureSample>, gridflex::store::StoreError> {
        self.inner.capture(id)
    }
    fn report(
        &self,
        id: u64,
    ) -> Result<Option<gridflex::store::StoredReport>, gridflex::store::StoreError> {
        self.inner.report(id)
    }
    fn last_event_id(&self) -> Result<Option<u64>, gridflex::store::StoreError> {
        self.inner.last_event_id()
    }
    fn prune(
        &self,
        now: DateTime<Utc>,
        r: &gridflex::store::Retention,
    ) -> Result<gridflex::store::Pruned, gridflex::store::StoreError> {
        self.inner.prune(now, r)
    }
}

#[tokio::test(start_paused = true)]
async fn a_stalled_store_never_stops_the_orchestrator_and_every_dropped_record_is_audited() {
    let f = SimulatedFacility::build(
        start(),
        &[JobPlan::new(
            "serve",
            2,
            JobClass::Critical { floor: 0.5 },
            WorkloadKind::Inference,
        )],
    )
    .unwrap();
    let clock = f.clock();
    let store = Arc::new(Stalled {
        gate: std::sync::Mutex::new(()),
        inner: gridflex::store::MemoryStore::default(),
    });
    let gate = store.gate.lock().unwrap();
    let mut rules = ProgramRules::new(Market::Caiso, kw(5.0));
    rules.dispatch = Some(DispatchRule::new(vec![Program::CaisoPdr]));
    let mut options = OrchestratorOptions::default();
    options.telemetry_step = TimeDelta::seconds(60);
    options.history.writer.queue = 2;
    let (audit, memory) = AuditLog::memory();
    let mut o = f
        .orchestrator(clock.clone())
        .facility(FacilityModel::new(kw(0.5), 1.2).unwrap())
        .rules(rules)
        .options(options)
        .audit(audit)
        .history(store.clone())
        .build()
        .unwrap();
    // 18 hours with one event (14:00-16:00 local), while the store accepts nothing
    // until the 17th hour.
    let items = vec![dispatch(0)];
    let stop = {
        let clock = clock.clone();
        async move { clock.sleep_until(start() + TimeDelta::hours(18)).await }
    };
    let source = Script {
        items: items.into(),
        clock: clock.clone(),
    };
    // Release the disk just before the end, so shutdown's flush can finish.
    let release = {
        let clock = clock.clone();
        async move {
            clock.sleep_until(start() + TimeDelta::hours(17)).await;
            drop(gate);
        }
    };
    let (summary, ()) = tokio::join!(o.run(source, stop), release);
    summary.unwrap();
    assert_eq!(o.reports().len(), 1, "the event was reported from memory");
    assert!(o.reports()[0].delivery.is_some());
    o.flush_audit().unwrap();
    let failed = memory
        .records()
        .unwrap()
        .iter()
        .filter(|r| matches!(r.event, AuditEvent::HistoryFailed { .. }))
        .count();
    assert!(failed > 100, "each refused record is audited: {failed}");
}
