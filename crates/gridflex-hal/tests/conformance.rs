//! The conformance kit against every backend in the tree (the NVML backend runs it over
//! its fake NVML in its unit tests), and against deliberately broken backends, which
//! must fail it with a message naming the broken promise.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex_core::ManualClock;
use gridflex_core::{DeviceId, JobId, Power};
use gridflex_hal::conformance::{self, Promise};
use gridflex_hal::sim::{SimFleet, SimGpuSpec, SimJob, WorkloadKind, WorkloadProfile};
use gridflex_hal::{
    DeviceInfo, HalError, LimitChange, PowerDevice, PowerLimits, Telemetry, WorkloadState,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn w(v: f64) -> Power {
    Power::watts(v).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn the_simulator_keeps_every_promise() -> TestResult {
    let clock = ManualClock::default();
    let fleet = SimFleet::new(
        std::sync::Arc::new(clock.clone()),
        2,
        &SimGpuSpec::h100_sxm(),
    )?;
    let job = SimJob::start(
        JobId::new("train")?,
        fleet.iter().cloned().collect(),
        WorkloadProfile::of(WorkloadKind::Generic),
    )?;
    let advance = |d: Duration| {
        clock.advance(d);
        std::future::ready(())
    };
    for gpu in fleet.iter() {
        conformance::power_device(gpu.as_ref(), advance).await?;
        conformance::sample_stream(gpu.as_ref(), Duration::from_millis(20), advance).await?;
    }
    conformance::workload_control(&job, |_| {
        clock.advance(Duration::from_millis(10));
        std::future::ready(())
    })
    .await?;
    Ok(())
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_process_backend_keeps_every_promise() -> TestResult {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    use nix::unistd::Pid;
    let mut child = std::process::Command::new("sleep").arg("60").spawn()?;
    let pid = child.id();
    let group = gridflex_hal::process::ProcessGroup::new(JobId::new("sleeper")?, [pid])?;
    // Waits for the kernel to report the change (no sleeping, no polling).
    let settle = |want: WorkloadState| {
        let flag = if want == WorkloadState::Paused {
            WaitPidFlag::WUNTRACED
        } else {
            WaitPidFlag::WCONTINUED
        };
        let _ = waitpid(
            Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX)),
            Some(flag),
        );
        std::future::ready(())
    };
    let result = conformance::workload_control(&group, settle).await;
    let _ = child.kill();
    let _ = child.wait();
    result?;
    Ok(())
}

/// A device with a configurable flaw.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flaw {
    None,
    AcceptsAnything,
    WrongErrorKind,
    RestoresTheFactoryDefault,
    ClockGoesBack,
}

struct Toy {
    info: DeviceInfo,
    flaw: Flaw,
    limit: Mutex<Power>,
    reads: Mutex<i64>,
}

impl Toy {
    fn new(flaw: Flaw) -> Self {
        let limits =
            PowerLimits::new(w(100.0), w(400.0), w(400.0)).unwrap_or_else(|e| panic!("{e}"));
        let info = DeviceInfo::new(
            DeviceId::new("toy-0").unwrap_or_else(|e| panic!("{e}")),
            "Toy",
            limits,
            w(300.0),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self {
            info,
            flaw,
            limit: Mutex::new(w(300.0)),
            reads: Mutex::new(0),
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
    }
}

#[async_trait]
impl PowerDevice for Toy {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    async fn telemetry(&self) -> Result<Telemetry, HalError> {
        let mut n = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        let secs = if self.flaw == Flaw::ClockGoesBack {
            -*n
        } else {
            *n
        };
        let limit = *self.limit.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Telemetry::at(Self::t0() + TimeDelta::seconds(secs))
            .with_power(limit.checked_mul(0.9).unwrap_or(limit))
            .with_limits(limit, limit))
    }

    async fn set_power_limit(&self, limit: Power) -> Result<LimitChange, HalError> {
        let limit = match self.flaw {
            Flaw::AcceptsAnything => limit,
            Flaw::WrongErrorKind if !self.info.limits.contains(limit) => {
                return Err(HalError::Device {
                    device: self.info.id.clone(),
                    operation: "set power limit",
                    kind: gridflex_hal::ErrorKind::Other,
                    detail: "nope".into(),
                });
            }
            _ => self.info.check_limit(limit)?,
        };
        *self.limit.lock().unwrap_or_else(|e| e.into_inner()) = limit;
        Ok(LimitChange {
            requested: limit,
            enforced: limit,
        })
    }

    async fn restore_power_limit(&self) -> Result<LimitChange, HalError> {
        let to = if self.flaw == Flaw::RestoresTheFactoryDefault {
            self.info.limits.default_limit()
        } else {
            self.info.limit_at_discovery
        };
        self.set_power_limit(to).await
    }
}

#[tokio::test]
async fn a_broken_backend_fails_naming_the_promise_it_broke() {
    let none = |_| std::future::ready(());
    assert_eq!(
        conformance::power_device(&Toy::new(Flaw::None), none).await,
        Ok(())
    );
    for (flaw, promise) in [
        (Flaw::AcceptsAnything, Promise::RefusesBelowRange),
        (Flaw::WrongErrorKind, Promise::RefusesBelowRange),
        (
            Flaw::RestoresTheFactoryDefault,
            Promise::RestoresTheDiscoveryLimit,
        ),
        (Flaw::ClockGoesBack, Promise::TelemetryMonotonic),
    ] {
        let e = conformance::power_device(&Toy::new(flaw), none)
            .await
            .expect_err("the flaw is caught");
        assert_eq!(e.promise, promise, "{flaw:?}: {e}");
        let message = e.to_string();
        assert!(
            message.starts_with("toy-0 broke the promise that ")
                && message.contains(&promise.to_string()),
            "{message}"
        );
    }
}
