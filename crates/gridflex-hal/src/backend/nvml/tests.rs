//! The NVML backend's logic against a fake NVML (no GPU or driver needed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::TimeZone;

use super::api::{NvmlApi, NvmlDeviceApi, RawError, RawKind};
use super::*;

#[derive(Debug, Clone)]
struct FakeState {
    uuid: String,
    min_mw: u32,
    max_mw: u32,
    default_mw: u32,
    limit_mw: u32,
    /// An out-of-band limit (Redfish, thermal): the enforced limit is the lower of the two.
    oob_mw: u32,
    /// The driver keeps whole watts.
    whole_watts: bool,
    /// The driver accepts writes but ignores them.
    ignore_writes: bool,
    locked: Option<(u32, u32)>,
    fail: HashMap<&'static str, RawError>,
    calls: Vec<&'static str>,
}

impl FakeState {
    fn h100(uuid: &str) -> Self {
        Self {
            uuid: uuid.to_owned(),
            min_mw: 200_000,
            max_mw: 700_000,
            default_mw: 700_000,
            limit_mw: 650_000, // an operator had set 650 W before discovery
            oob_mw: u32::MAX,
            whole_watts: false,
            ignore_writes: false,
            locked: None,
            fail: HashMap::new(),
            calls: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct FakeDevice(Arc<Mutex<FakeState>>);

impl FakeDevice {
    fn call<T>(
        &self,
        name: &'static str,
        f: impl FnOnce(&mut FakeState) -> T,
    ) -> Result<T, RawError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(name);
        if let Some(e) = s.fail.get(name) {
            return Err(e.clone());
        }
        Ok(f(&mut s))
    }
}

impl NvmlDeviceApi for FakeDevice {
    fn uuid(&self) -> Result<String, RawError> {
        self.call("uuid", |s| s.uuid.clone())
    }
    fn name(&self) -> Result<String, RawError> {
        self.call("name", |_| "NVIDIA H100 80GB HBM3".to_owned())
    }
    fn limit_constraints_mw(&self) -> Result<(u32, u32), RawError> {
        self.call("constraints", |s| (s.min_mw, s.max_mw))
    }
    fn default_limit_mw(&self) -> Result<u32, RawError> {
        self.call("default", |s| s.default_mw)
    }
    fn limit_mw(&self) -> Result<u32, RawError> {
        self.call("limit", |s| s.limit_mw)
    }
    fn enforced_limit_mw(&self) -> Result<u32, RawError> {
        self.call("enforced", |s| s.limit_mw.min(s.oob_mw))
    }
    fn power_average_mw(&self) -> Result<u32, RawError> {
        self.call("power_average", |_| 697_300)
    }
    fn power_instant_mw(&self) -> Result<u32, RawError> {
        self.call("power_instant", |_| 841_517)
    }
    fn energy_mj(&self) -> Result<u64, RawError> {
        self.call("energy", |_| 12_224_952)
    }
    fn sm_clock_mhz(&self) -> Result<u32, RawError> {
        self.call("sm_clock", |_| 1410)
    }
    fn sm_clock_bounds_mhz(&self) -> Result<(u32, u32), RawError> {
        self.call("clock_bounds", |_| (345, 1980))
    }
    fn utilization_pct(&self) -> Result<u32, RawError> {
        self.call("utilization", |_| 100)
    }
    fn power_cap_binding(&self) -> Result<bool, RawError> {
        self.call("cap_binding", |_| true)
    }
    fn set_limit_mw(&mut self, limit_mw: u32) -> Result<(), RawError> {
        self.call("set_limit", |s| {
            if !s.ignore_writes {
                s.limit_mw = if s.whole_watts {
                    limit_mw / 1000 * 1000
                } else {
                    limit_mw
                };
            }
        })
    }
    fn lock_sm_clocks_mhz(&mut self, min: u32, max: u32) -> Result<(), RawError> {
        self.call("lock_clocks", |s| s.locked = Some((min, max)))
    }
    fn reset_sm_clocks(&mut self) -> Result<(), RawError> {
        self.call("reset_clocks", |s| s.locked = None)
    }
    fn power_samples(&self, since_us: u64) -> Result<Vec<(u64, u32)>, RawError> {
        let base = 1_764_115_200_000_000u64; // 2025-11-26T00:00:00Z in us
        self.call("samples", |_| {
            (0..5u64)
                .map(|i| (base + i * 20_000, 700_000 - (i as u32) * 100_000))
                .filter(|&(t, _)| t > since_us)
                .collect()
        })
    }
}

struct FakeNvml {
    devices: Vec<FakeDevice>,
    fail_open: HashMap<u32, RawError>,
}

impl NvmlApi for FakeNvml {
    fn device_count(&self) -> Result<u32, RawError> {
        Ok(u32::try_from(self.devices.len() + self.fail_open.len()).unwrap())
    }
    fn device(&self, index: u32) -> Result<Box<dyn NvmlDeviceApi>, RawError> {
        if let Some(e) = self.fail_open.get(&index) {
            return Err(e.clone());
        }
        let i = usize::try_from(index).unwrap();
        Ok(Box::new(self.devices[i].clone()))
    }
}

fn w(x: f64) -> Power {
    Power::watts(x).unwrap()
}

fn one_gpu() -> (Arc<Mutex<FakeState>>, NvmlGpu) {
    let state = Arc::new(Mutex::new(FakeState::h100("GPU-aaaa")));
    let gpu = NvmlGpu::discover(Box::new(FakeDevice(state.clone()))).unwrap();
    state.lock().unwrap().calls.clear();
    (state, gpu)
}

#[test]
fn discovery_records_range_default_and_preexisting_limit() {
    let (_, gpu) = one_gpu();
    let info = gpu.info();
    assert_eq!(info.id.as_str(), "GPU-aaaa");
    assert_eq!(info.uuid, "GPU-aaaa");
    assert_eq!(info.model, "NVIDIA H100 80GB HBM3");
    assert_eq!(info.limits.min(), w(200.0));
    assert_eq!(info.limits.max(), w(700.0));
    assert_eq!(info.limits.default_limit(), w(700.0));
    assert_eq!(info.limit_at_discovery, w(650.0));
    assert_eq!(
        gpu.sm_clock_range(),
        ClockRange {
            min: Megahertz(345),
            max: Megahertz(1980)
        }
    );
}

#[test]
fn discovery_reports_unopenable_devices_and_keys_by_uuid() {
    let a = FakeDevice(Arc::new(Mutex::new(FakeState::h100("GPU-a"))));
    let b = FakeDevice(Arc::new(Mutex::new(FakeState::h100("GPU-b"))));
    let mut fail_open = HashMap::new();
    fail_open.insert(
        2,
        RawError::new(RawKind::NoPermission, "Insufficient Permissions"),
    );
    let sys = NvmlSystem::with_api(Box::new(FakeNvml {
        devices: vec![a, b],
        fail_open,
    }));
    let d = sys.discover().unwrap();
    assert_eq!(d.gpus.len(), 2);
    assert_eq!(d.skipped.len(), 1);
    assert_eq!(d.skipped[0].0, 2);
    assert_eq!(d.skipped[0].1.kind(), ErrorKind::NoPermission);
    assert_eq!(sys.gpu_by_uuid("GPU-b").unwrap().info().uuid, "GPU-b");
    assert_eq!(
        sys.gpu_by_uuid("GPU-zzz").unwrap_err().kind(),
        ErrorKind::DeviceLost
    );
}

#[test]
fn discovery_refuses_an_inconsistent_range() {
    let mut s = FakeState::h100("GPU-x");
    s.default_mw = 800_000; // default above max
    let e = NvmlGpu::discover(Box::new(FakeDevice(Arc::new(Mutex::new(s))))).unwrap_err();
    assert!(e.to_string().contains("power limits"), "{e}");
}

#[test]
fn telemetry_converts_units_and_skips_the_energy_counter() {
    let (state, gpu) = one_gpu();
    let t = gpu.telemetry_now().unwrap();
    assert_eq!(t.power_average, Some(w(697.3)));
    assert_eq!(t.power_instant, Some(w(841.517)));
    assert_eq!(t.requested_limit, Some(w(650.0)));
    assert_eq!(t.enforced_limit, Some(w(650.0)));
    assert_eq!(t.sm_clock, Some(Megahertz(1410)));
    assert_eq!(t.utilization.map(Percent::get), Some(100));
    assert_eq!(t.cap_binding, Some(true));
    assert_eq!(t.energy, None); // not read yet
    assert!(
        !state.lock().unwrap().calls.contains(&"energy"),
        "energy counter on the fast path"
    );

    let e = gpu.refresh_energy().unwrap();
    assert!((e.total.as_joules() - 12_224.952).abs() < 1e-9);
    let t = gpu.telemetry_now().unwrap();
    assert_eq!(t.energy, Some(e));
    assert_eq!(
        state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| **c == "energy")
            .count(),
        1
    );
}

#[test]
fn unsupported_readings_are_none_and_lost_devices_are_errors() {
    let (state, gpu) = one_gpu();
    state.lock().unwrap().fail.insert(
        "utilization",
        RawError::new(RawKind::NotSupported, "Not Supported (MIG)"),
    );
    let t = gpu.telemetry_now().unwrap();
    assert_eq!(t.utilization, None);
    assert!(t.power_average.is_some());
    state
        .lock()
        .unwrap()
        .fail
        .insert("power_average", RawError::new(RawKind::Lost, "GPU is lost"));
    let e = gpu.telemetry_now().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DeviceLost);
    assert!(e.to_string().contains("GPU-aaaa"));
}

#[test]
fn set_validates_before_touching_hardware() {
    let (state, gpu) = one_gpu();
    for bad in [199.999, 700.001, 0.0, -5.0] {
        let e = gpu.set_power_limit_now(w(bad)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange);
    }
    let s = state.lock().unwrap();
    assert!(s.calls.is_empty(), "NVML was called: {:?}", s.calls);
    assert_eq!(s.limit_mw, 650_000);
}

#[test]
fn set_writes_milliwatts_and_reports_requested_and_enforced() {
    let (state, gpu) = one_gpu();
    let c = gpu.set_power_limit_now(w(412.3456)).unwrap();
    assert_eq!(state.lock().unwrap().limit_mw, 412_346);
    assert_eq!(c.requested, w(412.346));
    assert_eq!(c.enforced, w(412.346));
    assert_eq!(
        state.lock().unwrap().calls,
        vec!["set_limit", "limit", "enforced"]
    );
    // The edges of the range are accepted.
    assert_eq!(
        gpu.set_power_limit_now(w(200.0)).unwrap().enforced,
        w(200.0)
    );
    assert_eq!(
        gpu.set_power_limit_now(w(700.0)).unwrap().enforced,
        w(700.0)
    );
}

#[test]
fn enforced_may_undercut_requested() {
    let (state, gpu) = one_gpu();
    state.lock().unwrap().oob_mw = 500_000; // a Redfish limit of 500 W
    let c = gpu.set_power_limit_now(w(600.0)).unwrap();
    assert_eq!(c.requested, w(600.0));
    assert_eq!(c.enforced, w(500.0));
}

#[test]
fn readback_tolerates_whole_watts_but_not_ignored_writes() {
    let (state, gpu) = one_gpu();
    state.lock().unwrap().whole_watts = true;
    let c = gpu.set_power_limit_now(w(412.7)).unwrap();
    assert_eq!(c.requested, w(412.0));
    state.lock().unwrap().ignore_writes = true;
    let e = gpu.set_power_limit_now(w(300.0)).unwrap_err();
    assert!(matches!(e, HalError::LimitNotApplied { .. }), "{e}");
    assert!(e.to_string().contains("300 W"), "{e}");
}

#[test]
fn nvml_errors_map_to_portable_kinds() {
    let cases = [
        (RawKind::NoPermission, ErrorKind::NoPermission),
        (RawKind::InvalidArg, ErrorKind::OutOfRange),
        (RawKind::Lost, ErrorKind::DeviceLost),
        (RawKind::Transient, ErrorKind::Transient),
        (RawKind::NotSupported, ErrorKind::Other),
        (RawKind::Other, ErrorKind::Other),
        (RawKind::DriverMissing, ErrorKind::DeviceLost),
    ];
    for (raw, kind) in cases {
        let (state, gpu) = one_gpu();
        state
            .lock()
            .unwrap()
            .fail
            .insert("set_limit", RawError::new(raw, "boom"));
        let e = gpu.set_power_limit_now(w(300.0)).unwrap_err();
        assert_eq!(e.kind(), kind, "{raw:?}: {e}");
        assert_eq!(state.lock().unwrap().limit_mw, 650_000);
    }
    let e = to_hal(
        None,
        "initialise NVML",
        RawError::new(
            RawKind::DriverMissing,
            "libnvidia-ml.so.1: cannot open shared object file",
        ),
    );
    assert!(
        e.to_string()
            .starts_with("NVIDIA driver library (libnvidia-ml.so.1) not found"),
        "{e}"
    );
    let e = to_hal(
        None,
        "count devices",
        RawError::new(RawKind::Transient, "Timeout"),
    );
    assert_eq!(e.kind(), ErrorKind::Transient);
}

#[tokio::test]
async fn restore_goes_back_to_the_discovered_limit_not_the_default() {
    let (state, gpu) = one_gpu();
    gpu.set_power_limit(w(300.0)).await.unwrap();
    let c = gpu.restore_power_limit().await.unwrap();
    assert_eq!(c.requested, w(650.0));
    assert_eq!(state.lock().unwrap().limit_mw, 650_000);
}

#[test]
fn guard_restores_on_drop_and_on_unwind_but_not_when_disarmed() {
    let (state, gpu) = one_gpu();
    let gpu = Arc::new(gpu);
    {
        let _guard = gpu.restore_on_drop();
        gpu.set_power_limit_now(w(250.0)).unwrap();
        assert_eq!(state.lock().unwrap().limit_mw, 250_000);
    }
    assert_eq!(state.lock().unwrap().limit_mw, 650_000);

    let g2 = Arc::clone(&gpu);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _guard = g2.restore_on_drop();
        g2.set_power_limit_now(w(222.0)).unwrap();
        panic!("the caller failed mid-event");
    }));
    assert!(result.is_err());
    assert_eq!(state.lock().unwrap().limit_mw, 650_000);

    let guard = gpu.restore_on_drop();
    gpu.set_power_limit_now(w(444.0)).unwrap();
    guard.disarm();
    assert_eq!(state.lock().unwrap().limit_mw, 444_000);

    let guard = gpu.restore_on_drop();
    assert_eq!(guard.restore().unwrap().requested, w(650.0));
}

#[tokio::test]
async fn clock_lock_validates_then_forwards() {
    let (state, gpu) = one_gpu();
    let bad = ClockRange {
        min: Megahertz(1500),
        max: Megahertz(1400),
    };
    assert_eq!(
        gpu.lock_sm_clocks(bad).await.unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    let high = ClockRange {
        min: Megahertz(1000),
        max: Megahertz(2100),
    };
    assert!(gpu.lock_sm_clocks(high).await.is_err());
    assert!(state.lock().unwrap().calls.is_empty());
    let ok = ClockRange {
        min: Megahertz(1000),
        max: Megahertz(1400),
    };
    gpu.lock_sm_clocks(ok).await.unwrap();
    assert_eq!(state.lock().unwrap().locked, Some((1000, 1400)));
    gpu.unlock_sm_clocks().await.unwrap();
    assert_eq!(state.lock().unwrap().locked, None);
}

#[tokio::test]
async fn samples_convert_and_filter_by_time() {
    let (_, gpu) = one_gpu();
    let all = gpu.power_samples_since(None).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].power, w(700.0));
    assert_eq!(
        all[0].at,
        Utc.with_ymd_and_hms(2025, 11, 26, 0, 0, 0).unwrap()
    );
    let later = gpu.power_samples_since(Some(all[1].at)).await.unwrap();
    assert_eq!(later.len(), 3);
    assert_eq!(later[0].at, all[2].at);
}

#[test]
fn milliwatt_conversion_saturates() {
    assert_eq!(to_milliwatts(w(-1.0)), 0);
    assert_eq!(to_milliwatts(w(1e12)), u32::MAX);
    assert_eq!(to_milliwatts(w(0.0004)), 0);
    assert_eq!(to_milliwatts(w(0.0006)), 1);
}

/// The backend over the fake keeps every promise of the conformance kit (the fake's
/// clock is the wall clock: the kit's 2 s wait is skipped, the readings' order is
/// still checked). Whole-watt drivers included.
#[tokio::test]
async fn keeps_the_conformance_kit_promises() {
    for whole_watts in [false, true] {
        let (state, gpu) = one_gpu();
        state.lock().unwrap().whole_watts = whole_watts;
        crate::conformance::power_device(&gpu, |_| std::future::ready(()))
            .await
            .unwrap();
    }
    // A driver that accepts writes but ignores them is caught, naming the promise.
    let (state, gpu) = one_gpu();
    state.lock().unwrap().ignore_writes = true;
    let e = crate::conformance::power_device(&gpu, |_| std::future::ready(()))
        .await
        .unwrap_err();
    assert_eq!(
        e.promise,
        crate::conformance::Promise::AppliesLimitsInRange,
        "{e}"
    );
}
