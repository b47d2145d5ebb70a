//! A vendor's own power backend, checked by the conformance kit and driven by the
//! orchestrator, with `gridflex` (and tokio) as the only dependencies.
//!
//! ```sh
//! cargo run --release --example custom_backend
//! ```
//!
//! `AcmeGpu` stands for an accelerator reached through its vendor's API; here the
//! "hardware" is a number in memory that draws 90 % of its limit. The backend is the
//! 40 lines between the markers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gridflex::async_trait;
use gridflex::chrono::{TimeDelta, Utc};
use gridflex::hal::{DeviceInfo, HalError, LimitChange, PowerLimits, Telemetry, conformance};
use gridflex::prelude::*;
use gridflex::program::DispatchRule;
use gridflex::signals::{DispatchEvent, DispatchTarget, EventWindow, Program};

// --- the backend -------------------------------------------------------------------
struct AcmeGpu {
    info: DeviceInfo,
    limit: Mutex<Power>,
}

impl AcmeGpu {
    fn new(i: usize) -> Result<Self, Box<dyn std::error::Error>> {
        let limits = PowerLimits::new(power!(150 W), power!(600 W), power!(600 W))?;
        let id = DeviceId::new(format!("acme-{i}"))?;
        let info = DeviceInfo::new(id, "Acme X600", limits, power!(600 W))?;
        Ok(Self {
            info,
            limit: Mutex::new(power!(600 W)),
        })
    }
}

#[async_trait]
impl PowerDevice for AcmeGpu {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    async fn telemetry(&self) -> Result<Telemetry, HalError> {
        let limit = *self.limit.lock().unwrap_or_else(|e| e.into_inner());
        let draw = limit.checked_mul(0.9).unwrap_or(limit);
        Ok(Telemetry::at(Utc::now())
            .with_power(draw)
            .with_limits(limit, limit))
    }

    async fn set_power_limit(&self, limit: Power) -> Result<LimitChange, HalError> {
        let limit = self.info.check_limit(limit)?; // the trait's out-of-range rule
        *self.limit.lock().unwrap_or_else(|e| e.into_inner()) = limit;
        Ok(LimitChange {
            requested: limit,
            enforced: limit,
        })
    }
}
// --- end of the backend ------------------------------------------------------------

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The conformance kit: the promises the orchestrator relies on.
    let gpus: Vec<Arc<AcmeGpu>> = (0..8)
        .map(|i| AcmeGpu::new(i).map(Arc::new))
        .collect::<Result<_, _>>()?;
    conformance::power_device(gpus[0].as_ref(), tokio::time::sleep).await?;
    println!("conformance: acme-0 keeps every PowerDevice promise");

    // 2. Driven by the orchestrator: one inference job on the 8 GPUs, a CAISO dispatch.
    let devices: Vec<DeviceId> = gpus.iter().map(|g| g.info.id.clone()).collect();
    let job = JobEntry::new(
        JobId::new("inference")?,
        devices,
        JobClass::Critical { floor: 0.5 },
        WorkloadKind::Inference,
    );
    let rules = ProgramRules::new(Market::Caiso, power!(2 kW))
        .with_dispatch(DispatchRule::new(vec![Program::CaisoPdr]));
    let mut orchestrator = Orchestrator::builder(TokioClock::real())
        .devices(gpus.iter().map(|g| DeviceHandle::new(g.clone())))
        .job(job, None) // no pause lever: capped only
        .facility(FacilityModel::new(power!(1 kW), 1.2)?)
        .rules(rules)
        .build()?;
    orchestrator.sweep().await;
    let now = orchestrator.clock().now();
    let window = EventWindow::new(now, Some(now + TimeDelta::minutes(30)))?;
    let dispatch = DispatchEvent::new(
        "ACME-1",
        Program::CaisoPdr,
        now,
        window,
        DispatchTarget::CapAt {
            power: power!(5 kW),
        },
        None,
    )?;
    let handled = orchestrator
        .handle_signal(GridSignal::Dispatch(dispatch))
        .await;
    let capped = gpus
        .iter()
        .map(|g| *g.limit.lock().unwrap_or_else(|e| e.into_inner()))
        .fold(power!(600 W), Power::min);
    println!("dispatch to 5 kW: {handled:?}; lowest GPU limit now {capped:.0}");
    let left = orchestrator
        .shutdown(gridflex::audit::StopReason::Requested)
        .await;
    let back = gpus
        .iter()
        .all(|g| *g.limit.lock().unwrap_or_else(|e| e.into_inner()) == power!(600 W));
    println!(
        "shut down: every GPU back at 600 W: {back}, jobs left curtailed: {}",
        left.len()
    );
    tokio::time::sleep(Duration::ZERO).await;
    if !(back && left.is_empty() && capped < power!(600 W)) {
        return Err("the backend was not driven and given back as expected".into());
    }
    Ok(())
}
