//! Who is cut first: under the class order (the default) a critical job is curtailed
//! only once deferrable and flexible work is at its limits; under plain weights the
//! optimum may cap it first. Read from the simulated hardware.

mod common;

use std::time::Duration;

use common::*;
use gridflex::audit::AuditLog;
use gridflex::hal::sim::SimActivity;
use gridflex::orchestrator::Priority;
use gridflex::prelude::*;
use gridflex::simulated::SimulatedFacility;

/// Per job of the safety facility: the lowest requested limit over its GPUs as a
/// fraction of the discovery limit (0 when paused).
fn levels(f: &SimulatedFacility) -> Vec<f64> {
    f.jobs()
        .iter()
        .map(|(_, job)| {
            job.gpus()
                .iter()
                .map(|g| {
                    if g.activity() == SimActivity::Paused {
                        0.0
                    } else {
                        g.requested_limit() / g.info().limit_at_discovery
                    }
                })
                .fold(1.0, f64::min)
        })
        .collect()
}

async fn cut(priority: Priority, cap_kw: f64) -> Vec<f64> {
    let f = facility();
    let clock = f.clock();
    let mut options = OrchestratorOptions::default();
    options.priority = priority;
    let mut o = f
        .orchestrator(clock.clone())
        .facility(FacilityModel::new(kw(1.0), 1.0).unwrap())
        .rules(rules())
        .audit(AuditLog::discard())
        .options(options)
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(300)).await;
    o.sweep().await;
    let now = clock.now();
    let handled = o
        .handle_signal(dispatch(
            "d",
            now,
            now + chrono::TimeDelta::hours(1),
            cap_kw,
        ))
        .await;
    assert!(matches!(handled, Handled::Actuated { .. }), "{handled:?}");
    tokio::time::sleep(Duration::from_secs(120)).await;
    o.run_due().await;
    let _ = clock.now();
    levels(&f)
}

#[tokio::test(start_paused = true)]
async fn critical_work_is_cut_last_under_the_class_order() {
    for cap in [24.0, 22.0, 20.0] {
        let by_weight = cut(Priority::Weights, cap).await;
        let by_class = cut(Priority::ClassOrder, cap).await;
        // The optimum for the weights alone caps the critical job (its curve is flat
        // near the top: it loses least per watt given) ...
        assert!(by_weight[SERVE] < 1.0, "cap {cap} kW: {by_weight:?}");
        // ... the class order leaves it alone and cuts deferrable work first.
        assert_eq!(by_class[SERVE], 1.0, "cap {cap} kW: {by_class:?}");
        assert!(
            by_class[BATCH] <= by_class[TRAIN],
            "cap {cap} kW: {by_class:?}"
        );
    }
}
