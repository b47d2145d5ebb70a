//! [`SimGpu`]: one simulated GPU on a [`SimClock`].
//!
//! The model (parameters in [`SimGpuSpec`], sources in `docs/hal.md`):
//!
//! - **Power targets.** No context: `idle_no_context`; context idle or workload paused:
//!   `idle_with_context`; running: `min(demand, cap)`, reduced by a clock lock, and
//!   multiplied by `resume_overshoot` for `resume_overshoot_window` after a resume or start.
//! - **Workload response.** A workload change acts after `response_dead_time`, then the
//!   power follows its target first-order with `response_time_constant`.
//! - **Cap response.** The physical cap follows the requested limit first-order with
//!   `cap_time_constant`; the enforced limit reported by telemetry changes at once (as
//!   NVML's does).
//! - **Telemetry.** Every `telemetry_period` the instant power, the average over
//!   `average_window` and the energy counter are latched; reads between updates return
//!   the latched values. Every `sample_period` a sample enters a ring of `sample_ring_len`.
//! - **Throughput.** `curve(cap / uncapped draw)` while running (the uncapped draw is the
//!   workload's demand, at most the maximum limit) (times the clock ratio under a
//!   binding clock lock), zero otherwise; integrated into [`SimGpu::work_done`].
//!
//! The state advances lazily to the clock's time whenever the GPU is read or commanded
//! (a limit request is only recorded with its instant): in 1 ms steps (exact
//! exponential updates) after a workload change, 10 ms steps while only the cap
//! settles, and one jump once everything has settled, so an idle hour costs one step.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gridflex_core::clock::SharedClock;
use gridflex_core::{DeviceId, Energy, Power};

use super::profile::throughput_at_cap;
use super::time::SimTime;
use super::{SimGpuSpec, WorkloadProfile};
use crate::{
    ClockRange, DeviceInfo, EnergyReading, ErrorKind, HalError, LimitChange, Megahertz, Percent,
    PowerDevice, PowerSample, PowerSampleStream, SmClockLock, Telemetry,
};

/// Integration step after a workload change (dead time 7 ms, time constant 14 ms).
const STEP_NS: u64 = 1_000_000;
/// Integration step while only the cap settles (time constant 100 ms).
const COARSE_STEP_NS: u64 = 10_000_000;
/// Power and cap differences below this (watts) count as settled.
const SETTLED_W: f64 = 1e-2;
/// Pending changes kept; a further change first catches up with the clock.
const MAX_PENDING: usize = 8;
/// Exponent of dynamic power in the clock ratio under a clock lock (*assumption*: P ~ f V^2 with V ~ f).
const CLOCK_POWER_EXPONENT: i32 = 3;

/// What a simulated GPU is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SimActivity {
    /// No CUDA context (the driver idles deepest).
    NoContext,
    /// A context is loaded but nothing runs.
    Idle,
    /// A workload runs.
    Running,
    /// A workload is paused (SIGSTOP); its context stays in GPU memory.
    Paused,
}

/// A change that takes effect at a later instant than the integration has reached.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// The power starts following a new activity (after the dead time).
    Activity {
        activity: SimActivity,
        overshoot: bool,
    },
    /// A new power-limit request (recorded lazily, so commanding costs no integration).
    Limit(f64),
}

/// An unused slot of the pending queue.
const NO_CHANGE: Pending = Pending {
    at: u64::MAX,
    change: Change::Limit(0.0),
};

#[derive(Debug, Clone, Copy)]
struct Pending {
    at: u64,
    change: Change,
}

/// Precomputed parameters in the integration's units (seconds, watts, nanoseconds).
#[derive(Debug)]
struct Params {
    idle0: f64,
    idle1: f64,
    max_limit: f64,
    dead_ns: u64,
    tau_p: f64,
    /// Ten power time constants: how long fine steps last after a workload change.
    fine_ns: u64,
    overshoot: f64,
    overshoot_ns: u64,
    tau_cap: f64,
    tick_ns: u64,
    tick_s: f64,
    buckets: usize,
    sample_ns: u64,
    clk_max: f64,
    clk_min: f64,
    clk_idle: f64,
    clk_loaded: f64,
    noise: Option<(u64, f64)>,
}

/// What a command touches comes first (`repr(C)` keeps the order): a fleet of simulated
/// GPUs is commanded a thousand at a time, mostly from memory that is not in cache, so
/// every line a command reads costs.
#[derive(Debug)]
#[repr(C)]
struct State {
    t: u64,
    requested: f64,
    /// The activity the power follows (commands act after the dead time).
    physical: SimActivity,
    commanded: SimActivity,
    /// Commands recorded for tests and audits, when enabled (bounded by its capacity).
    history: Option<Box<History>>,
    pending: PendingQueue,
    power: f64,
    cap: f64,
    workload: Option<WorkloadProfile>,
    demand: f64,
    overshoot_until: u64,
    /// Fine integration steps until this instant (after a workload change).
    fine_until: u64,
    lock: Option<(f64, f64)>,
    energy: f64,
    work: f64,
    // telemetry latch
    next_tick: u64,
    tick_index: u64,
    energy_at_tick: f64,
    bucket_pos: usize,
    snap_at: u64,
    snap_inst: f64,
    snap_avg: f64,
    // sample ring
    next_sample: u64,
    sample_index: u64,
    ring: Box<[(u64, f64)]>,
    ring_head: usize,
    ring_len: usize,
    buckets: [f64; 64],
}

/// Changes not yet in effect, in time order (equal times in arrival order): a ring of
/// `MAX_PENDING` slots, so taking the earliest and adding the latest (what commands do)
/// move nothing.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct PendingQueue {
    head: u8,
    len: u8,
    slots: [Pending; MAX_PENDING],
}

impl PendingQueue {
    const EMPTY: Self = Self {
        head: 0,
        len: 0,
        slots: [NO_CHANGE; MAX_PENDING],
    };

    fn len(&self) -> usize {
        usize::from(self.len)
    }

    fn is_full(&self) -> bool {
        self.len() == MAX_PENDING
    }

    fn slot(&self, i: usize) -> usize {
        (usize::from(self.head) + i) % MAX_PENDING
    }

    /// The earliest change.
    fn first(&self) -> Option<Pending> {
        (self.len > 0).then(|| self.slots[usize::from(self.head)])
    }

    /// Removes the earliest change.
    fn pop(&mut self) -> Option<Pending> {
        let first = self.first()?;
        self.head = ((usize::from(self.head) + 1) % MAX_PENDING) as u8;
        self.len -= 1;
        Some(first)
    }

    /// Inserts after every change at or before `p.at` (the queue must not be full).
    fn insert(&mut self, p: Pending) {
        let mut i = self.len();
        while i > 0 && self.slots[self.slot(i - 1)].at > p.at {
            self.slots[self.slot(i)] = self.slots[self.slot(i - 1)];
            i -= 1;
        }
        self.slots[self.slot(i)] = p;
        self.len += 1;
    }
}

/// A bounded record of commands, oldest dropped first.
#[derive(Debug)]
struct History {
    capacity: usize,
    entries: std::collections::VecDeque<(u64, SimCommand)>,
}

/// A command a simulated GPU received, as its command history records it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum SimCommand {
    /// A new power-limit request.
    Limit(Power),
    /// A new commanded activity (start, pause, resume, stop).
    Activity(SimActivity),
}

/// One simulated GPU. Cheap to command (no allocation, one uncontended lock), safe to
/// share behind an `Arc`, deterministic for a given sequence of calls and clock advances.
///
/// ```
/// use std::time::Duration;
/// use gridflex_core::Power;
/// use std::sync::Arc;
/// use gridflex_core::ManualClock;
/// use gridflex_hal::sim::{SimGpu, SimGpuSpec, WorkloadKind, WorkloadProfile};
///
/// let clock = ManualClock::default();
/// let gpu = SimGpu::new(0, Arc::new(clock.clone()), SimGpuSpec::h100_sxm())?;
/// gpu.start_workload(WorkloadProfile::of(WorkloadKind::Matmul))?;
/// clock.advance(Duration::from_secs(2));
/// assert!((gpu.true_power().as_watts() - 700.0).abs() < 1.0); // runs into the 700 W cap
/// gpu.set_power_limit_now(Power::watts(350.0)?)?;
/// clock.advance(Duration::from_secs(1));
/// assert!((gpu.true_power().as_watts() - 350.0).abs() < 1.0);
/// assert!(gpu.throughput() < 0.7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// What a command reads comes first and the whole is cache-line aligned (`repr(C)`
/// keeps the order): the fault flag, the limit range, the clock and the state's hot
/// part share the first lines.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct SimGpu {
    fault: AtomicU8,
    /// `info.limits` as a command checks it: the minimum and maximum in watts.
    range_w: (f64, f64),
    clock: SimTime,
    state: Mutex<State>,
    p: Params,
    info: DeviceInfo,
    clock_range: ClockRange,
}

fn record(s: &mut State, at: u64, command: SimCommand) {
    if let Some(h) = s.history.as_mut() {
        if h.entries.len() == h.capacity {
            h.entries.pop_front();
        }
        h.entries.push_back((at, command));
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 * 1e-9
}

fn watts(w: f64) -> Power {
    Power::watts(w).unwrap_or(Power::ZERO)
}

/// splitmix64: a counter-based generator, so noise depends only on (seed, stream, index).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An approximately standard-normal number (Irwin-Hall of four uniforms, rescaled).
fn normal(seed: u64, stream: u64, index: u64) -> f64 {
    let mut h = mix(seed ^ mix(stream ^ mix(index)));
    let mut sum = 0.0;
    for _ in 0..4 {
        h = mix(h);
        sum += (h >> 11) as f64 / (1u64 << 53) as f64;
    }
    (sum - 2.0) * 3f64.sqrt()
}

const TICK_STREAM: u64 = 1;
const SAMPLE_STREAM: u64 = 2;

impl SimGpu {
    /// A simulated GPU numbered `index` (its UUID is derived from the index), discovered
    /// now on `clock`, idle without a context.
    pub fn new(index: usize, clock: SharedClock, spec: SimGpuSpec) -> Result<Self, HalError> {
        let uuid = format!("GPU-00000000-0000-4000-8000-{index:012x}");
        Self::with_uuid(uuid, clock, spec)
    }

    /// A simulated GPU with a given UUID (which is also its [`DeviceId`]).
    pub fn with_uuid(
        uuid: impl Into<String>,
        clock: SharedClock,
        spec: SimGpuSpec,
    ) -> Result<Self, HalError> {
        spec.validate()?;
        let uuid = uuid.into();
        let id = DeviceId::new(uuid.clone())?;
        let tick_ns = u64::try_from(spec.telemetry_period.as_nanos()).unwrap_or(u64::MAX);
        let buckets =
            usize::try_from(spec.average_window.as_nanos() / spec.telemetry_period.as_nanos())
                .unwrap_or(64);
        let p = Params {
            idle0: spec.idle_no_context.as_watts(),
            idle1: spec.idle_with_context.as_watts(),
            max_limit: spec.limits.max().as_watts(),
            dead_ns: u64::try_from(spec.response_dead_time.as_nanos()).unwrap_or(u64::MAX),
            tau_p: spec.response_time_constant.as_secs_f64(),
            fine_ns: u64::try_from(spec.response_time_constant.as_nanos().saturating_mul(10))
                .unwrap_or(u64::MAX),
            overshoot: spec.resume_overshoot,
            overshoot_ns: u64::try_from(spec.resume_overshoot_window.as_nanos())
                .unwrap_or(u64::MAX),
            tau_cap: spec.cap_time_constant.as_secs_f64(),
            tick_ns,
            tick_s: secs(tick_ns),
            buckets,
            sample_ns: u64::try_from(spec.sample_period.as_nanos()).unwrap_or(u64::MAX),
            clk_max: f64::from(spec.max_sm_clock.get()),
            clk_min: f64::from(spec.min_sm_clock.get()),
            clk_idle: f64::from(spec.idle_sm_clock.get()),
            clk_loaded: f64::from(spec.loaded_sm_clock.get()),
            noise: spec.noise.map(|n| (n.seed, n.sigma.as_watts())),
        };
        let clock = SimTime::new(clock);
        let t = clock.nanos();
        let limit = spec.initial_limit.as_watts();
        let state = State {
            t,
            power: p.idle0,
            requested: limit,
            cap: limit,
            physical: SimActivity::NoContext,
            commanded: SimActivity::NoContext,
            workload: None,
            demand: 0.0,
            pending: PendingQueue::EMPTY,
            overshoot_until: 0,
            fine_until: 0,
            lock: None,
            energy: 0.0,
            work: 0.0,
            next_tick: (t / p.tick_ns + 1).saturating_mul(p.tick_ns),
            tick_index: 0,
            energy_at_tick: 0.0,
            // As if idle for a whole window before discovery, so the average starts sane.
            buckets: [p.idle0 * p.tick_s; 64],
            bucket_pos: 0,
            snap_at: t,
            snap_inst: p.idle0,
            snap_avg: p.idle0,
            next_sample: (t / p.sample_ns + 1).saturating_mul(p.sample_ns),
            sample_index: 0,
            ring: vec![(0, 0.0); spec.sample_ring_len].into_boxed_slice(),
            ring_head: 0,
            ring_len: 0,
            history: None,
        };
        let info = DeviceInfo {
            id,
            uuid,
            model: spec.model.clone(),
            limits: spec.limits,
            limit_at_discovery: spec.initial_limit,
        };
        Ok(Self {
            range_w: (info.limits.min().as_watts(), info.limits.max().as_watts()),
            info,
            clock,
            clock_range: ClockRange {
                min: spec.min_sm_clock,
                max: spec.max_sm_clock,
            },
            p,
            state: Mutex::new(state),
            fault: AtomicU8::new(0),
        })
    }

    /// The clock this GPU reads.
    pub fn clock(&self) -> &SharedClock {
        self.clock.clock()
    }

    /// Makes every later trait call (and `*_now` command) fail with an error of `kind`
    /// until cleared with `None`: for testing how callers handle lost devices, missing
    /// permission or transient failures.
    pub fn inject_fault(&self, kind: Option<ErrorKind>) {
        let code = match kind {
            None => 0,
            Some(ErrorKind::NoPermission) => 1,
            Some(ErrorKind::OutOfRange) => 2,
            Some(ErrorKind::DeviceLost) => 3,
            Some(ErrorKind::Transient) => 4,
            Some(_) => 5,
        };
        self.fault.store(code, Ordering::Relaxed);
    }

    fn check_fault(&self, operation: &'static str) -> Result<(), HalError> {
        let kind = match self.fault.load(Ordering::Relaxed) {
            0 => return Ok(()),
            1 => {
                return Err(HalError::NoPermission {
                    device: self.info.id.clone(),
                    operation,
                });
            }
            3 => {
                return Err(HalError::DeviceLost {
                    device: self.info.id.clone(),
                });
            }
            2 => ErrorKind::OutOfRange,
            4 => ErrorKind::Transient,
            _ => ErrorKind::Other,
        };
        Err(HalError::Device {
            device: self.info.id.clone(),
            operation,
            kind,
            detail: "injected fault".to_owned(),
        })
    }

    fn lock_raw(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters more than stopping would, so a poisoned lock is used as is.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        let mut s = self.lock_raw();
        let now = self.clock.nanos();
        self.advance(&mut s, now);
        s
    }

    /// Sets the power limit without going through the async trait: validates, applies,
    /// and returns what is in force. No allocation unless it fails.
    pub fn set_power_limit_now(&self, limit: Power) -> Result<LimitChange, HalError> {
        self.check_fault("set the power limit")?;
        let w = limit.as_watts();
        if !(self.range_w.0..=self.range_w.1).contains(&w) {
            return Err(HalError::LimitOutOfRange {
                device: self.info.id.clone(),
                requested: limit,
                min: self.info.limits.min(),
                max: self.info.limits.max(),
            });
        }
        let now = self.clock.nanos();
        let mut s = self.lock_raw();
        record(&mut s, now, SimCommand::Limit(limit));
        if s.t >= now || s.pending.is_full() {
            self.advance(&mut s, now);
            s.requested = w;
        } else {
            // Record the request at its instant; the integration catches up on the next read.
            self.insert_pending(
                &mut s,
                Pending {
                    at: now,
                    change: Change::Limit(w),
                },
            );
        }
        drop(s);
        Ok(LimitChange {
            requested: limit,
            enforced: limit,
        })
    }

    /// Reads telemetry without going through the async trait. No allocation unless it fails.
    pub fn telemetry_now(&self) -> Result<Telemetry, HalError> {
        self.check_fault("read telemetry")?;
        let s = self.lock_state();
        let now = s.t;
        let running = s.commanded == SimActivity::Running;
        let clock = self.sm_clock(&s);
        let cap_binding = running && s.demand > s.cap && !self.lock_binds(&s);
        Ok(Telemetry {
            at: self.clock.at_nanos(now),
            power_instant: Power::watts(s.snap_inst).ok(),
            power_average: Power::watts(s.snap_avg).ok(),
            energy: Energy::joules(s.energy_at_tick)
                .ok()
                .map(|total| EnergyReading {
                    total,
                    at: self.clock.at_nanos(s.snap_at),
                }),
            requested_limit: Power::watts(s.requested).ok(),
            enforced_limit: Power::watts(s.requested).ok(),
            sm_clock: Some(Megahertz(clock.round() as u32)),
            utilization: Some(Percent::new_clamped(if running { 100 } else { 0 })),
            cap_binding: Some(cap_binding),
        })
    }

    /// The physical power now (what a perfect meter would read), not the latched telemetry.
    pub fn true_power(&self) -> Power {
        watts(self.lock_state().power)
    }

    /// The exact energy used since creation (the telemetry counter lags it by up to one period).
    pub fn true_energy(&self) -> Energy {
        Energy::joules(self.lock_state().energy).unwrap_or(Energy::ZERO)
    }

    /// The throughput now, as a fraction of uncapped throughput (0 when nothing runs).
    pub fn throughput(&self) -> f64 {
        let s = self.lock_state();
        self.throughput_of(&s, s.cap)
    }

    /// Work done since creation, in seconds of uncapped throughput.
    pub fn work_done(&self) -> f64 {
        self.lock_state().work
    }

    /// Starts recording every command this GPU receives (power-limit requests and
    /// workload activity changes), keeping the newest `capacity` (oldest dropped first).
    /// Off by default, so commanding costs nothing extra; tests turn it on to check what
    /// the hardware was told, and when, from the device's own side.
    pub fn record_history(&self, capacity: usize) {
        let mut s = self.lock_raw();
        s.history = Some(Box::new(History {
            capacity: capacity.max(1),
            entries: std::collections::VecDeque::with_capacity(capacity.clamp(1, 4096)),
        }));
    }

    /// The recorded commands with their instants, oldest first (empty unless
    /// [`SimGpu::record_history`] was called).
    pub fn history(&self) -> Vec<(DateTime<Utc>, SimCommand)> {
        let s = self.lock_raw();
        s.history.as_ref().map_or_else(Vec::new, |h| {
            h.entries
                .iter()
                .map(|&(at, c)| (self.clock.at_nanos(at), c))
                .collect()
        })
    }

    /// The activity last commanded (a pause shows at once; power follows after the dead time).
    pub fn activity(&self) -> SimActivity {
        self.lock_state().commanded
    }

    /// The current power-limit request.
    pub fn requested_limit(&self) -> Power {
        watts(self.lock_state().requested)
    }

    /// Loads a CUDA context (no context -> idle with context). A no-op otherwise.
    pub fn create_context(&self) -> Result<(), HalError> {
        self.check_fault("create a context")?;
        let mut s = self.lock_state();
        if s.commanded == SimActivity::NoContext {
            self.command(&mut s, SimActivity::Idle, false);
        }
        Ok(())
    }

    /// Starts (or replaces) the workload; it runs at once, with the start overshoot.
    pub fn start_workload(&self, profile: WorkloadProfile) -> Result<(), HalError> {
        self.check_fault("start a workload")?;
        let demand = match profile.demand {
            Some(d) if d.is_negative() => {
                return Err(HalError::InvalidConfig {
                    field: "workload demand",
                    reason: format!("must not be negative, got {d}"),
                });
            }
            Some(d) => d.as_watts(),
            None => profile.kind.default_demand_fraction() * self.p.max_limit,
        };
        let mut s = self.lock_state();
        s.workload = Some(profile);
        s.demand = demand;
        self.command(&mut s, SimActivity::Running, true);
        Ok(())
    }

    /// A reading of this GPU's clock for [`SimGpu::set_activity_at`] (nanoseconds since
    /// the Unix epoch, as the clock answers them).
    pub(crate) fn clock_reading(&self) -> i64 {
        self.clock.clock().now_nanos()
    }

    /// True when `other` reads the same clock (a reading of one serves both).
    pub(crate) fn shares_clock(&self, other: &SimGpu) -> bool {
        Arc::ptr_eq(self.clock.clock(), other.clock.clock())
    }

    /// Pauses (`goal` paused) or resumes (`goal` running) the workload as of `reading`
    /// (a [`SimGpu::clock_reading`] of this GPU's clock), exactly as
    /// [`SimGpu::pause_workload`] and [`SimGpu::resume_workload`] do at that instant,
    /// under one lock. Returns whether the commanded activity changed.
    pub(crate) fn set_activity_at(
        &self,
        reading: i64,
        goal: SimActivity,
    ) -> Result<bool, HalError> {
        let operation = if goal == SimActivity::Paused {
            "pause the workload"
        } else {
            "resume the workload"
        };
        self.check_fault(operation)?;
        let mut s = self.lock_raw();
        self.advance(&mut s, self.clock.nanos_at(reading));
        match (s.commanded, goal) {
            (SimActivity::Running, SimActivity::Paused) => {
                self.command(&mut s, SimActivity::Paused, false)
            }
            (SimActivity::Paused, SimActivity::Running) => {
                self.command(&mut s, SimActivity::Running, true)
            }
            (SimActivity::Running, SimActivity::Running)
            | (SimActivity::Paused, SimActivity::Paused) => return Ok(false),
            _ => return Err(self.no_workload(operation)),
        }
        Ok(true)
    }

    /// Pauses the running workload (SIGSTOP). A no-op when already paused.
    pub fn pause_workload(&self) -> Result<(), HalError> {
        self.set_activity_at(self.clock_reading(), SimActivity::Paused)
            .map(|_| ())
    }

    /// Resumes a paused workload (SIGCONT), with the resume overshoot. A no-op when running.
    pub fn resume_workload(&self) -> Result<(), HalError> {
        self.set_activity_at(self.clock_reading(), SimActivity::Running)
            .map(|_| ())
    }

    /// Ends the workload and its context (the process exits or is killed).
    pub fn stop_workload(&self) -> Result<(), HalError> {
        self.check_fault("stop the workload")?;
        let mut s = self.lock_state();
        s.workload = None;
        if s.commanded != SimActivity::NoContext {
            self.command(&mut s, SimActivity::NoContext, false);
        }
        Ok(())
    }

    fn no_workload(&self, operation: &'static str) -> HalError {
        HalError::Device {
            device: self.info.id.clone(),
            operation,
            kind: ErrorKind::Other,
            detail: "no workload is running or paused".to_owned(),
        }
    }

    /// Locks the SM clock range without the async trait.
    pub fn lock_sm_clocks_now(&self, range: ClockRange) -> Result<(), HalError> {
        self.check_fault("lock SM clocks")?;
        let reason = if range.min > range.max {
            Some("min is above max")
        } else if range.min < self.clock_range.min || range.max > self.clock_range.max {
            Some("outside the supported clocks")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(HalError::ClockOutOfRange {
                device: self.info.id.clone(),
                min_mhz: range.min.get(),
                max_mhz: range.max.get(),
                reason,
            });
        }
        let mut s = self.lock_state();
        s.lock = Some((f64::from(range.min.get()), f64::from(range.max.get())));
        Ok(())
    }

    /// Releases a clock lock without the async trait.
    pub fn unlock_sm_clocks_now(&self) -> Result<(), HalError> {
        self.check_fault("unlock SM clocks")?;
        self.lock_state().lock = None;
        Ok(())
    }

    /// The buffered high-rate samples strictly after `since`, oldest first.
    pub fn power_samples_now(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<PowerSample>, HalError> {
        self.check_fault("read power samples")?;
        let after = match since {
            None => None,
            // Before the epoch: everything is after it.
            Some(t) => self.clock.nanos_of(t),
        };
        let s = self.lock_state();
        let cap = s.ring.len();
        let start = (s.ring_head + cap - s.ring_len) % cap;
        let mut out = Vec::with_capacity(s.ring_len);
        for i in 0..s.ring_len {
            let (at, w) = s.ring[(start + i) % cap];
            if after.is_none_or(|a| at > a) {
                out.push(PowerSample {
                    at: self.clock.at_nanos(at),
                    power: watts(w),
                });
            }
        }
        Ok(out)
    }

    // ---- model ----

    fn command(&self, s: &mut State, activity: SimActivity, overshoot: bool) {
        s.commanded = activity;
        record(s, s.t, SimCommand::Activity(activity));
        let at = s.t.saturating_add(self.p.dead_ns);
        self.insert_pending(
            s,
            Pending {
                at,
                change: Change::Activity {
                    activity,
                    overshoot,
                },
            },
        );
    }

    /// Inserts in time order (after equal times). When full, the oldest change is applied
    /// at once so the newest is never lost.
    fn insert_pending(&self, s: &mut State, p: Pending) {
        if s.pending.is_full()
            && let Some(oldest) = s.pending.pop()
        {
            self.apply(s, oldest.change);
        }
        s.pending.insert(p);
    }

    fn apply(&self, s: &mut State, change: Change) {
        match change {
            Change::Limit(w) => s.requested = w,
            Change::Activity {
                activity,
                overshoot,
            } => {
                s.physical = activity;
                s.overshoot_until = if overshoot && activity == SimActivity::Running {
                    s.t.saturating_add(self.p.overshoot_ns)
                } else {
                    0
                };
                s.fine_until =
                    s.t.saturating_add(self.p.overshoot_ns)
                        .saturating_add(self.p.fine_ns);
            }
        }
    }

    /// The natural SM clock of a running workload under `cap` (an approximation: the
    /// calibration's 1400 MHz at a binding 700 W cap, scaled by the throughput curve and by
    /// the cube root of the cap headroom when the cap does not bind).
    fn natural_clock(&self, s: &State, cap: f64) -> f64 {
        let thr = s.workload.as_ref().map_or(1.0, |w| {
            throughput_at_cap(&w.curve, self.cap_fraction(s, cap))
        });
        let busy = s.demand.min(cap).max(1e-9);
        let headroom = (cap / busy).max(1.0).cbrt();
        (self.p.clk_loaded * thr * headroom).clamp(self.p.clk_min, self.p.clk_max)
    }

    /// The cap as a fraction of what the workload draws at the GPU's maximum limit: the
    /// x-axis of its throughput curve. A cap at or above that draw binds nothing, so it
    /// keeps full throughput (the planner reads its curves on the same axis: cap over
    /// uncapped per-GPU draw).
    fn cap_fraction(&self, s: &State, cap: f64) -> f64 {
        let uncapped = s.demand.min(self.p.max_limit);
        if uncapped <= 0.0 { 1.0 } else { cap / uncapped }
    }

    fn lock_ratio(&self, s: &State, cap: f64) -> f64 {
        match s.lock {
            Some((_, max)) => {
                let f = self.natural_clock(s, cap);
                if max < f { max / f } else { 1.0 }
            }
            None => 1.0,
        }
    }

    fn lock_binds(&self, s: &State) -> bool {
        self.lock_ratio(s, s.cap) < 1.0
    }

    fn sm_clock(&self, s: &State) -> f64 {
        match s.commanded {
            SimActivity::NoContext => self.p.clk_idle,
            SimActivity::Idle | SimActivity::Paused => self.p.clk_max,
            SimActivity::Running => self.natural_clock(s, s.cap) * self.lock_ratio(s, s.cap),
        }
    }

    fn target(&self, s: &State, cap: f64) -> f64 {
        match s.physical {
            SimActivity::NoContext => self.p.idle0,
            SimActivity::Idle | SimActivity::Paused => self.p.idle1,
            SimActivity::Running => {
                let mut busy = s.demand.min(cap);
                let r = self.lock_ratio(s, cap);
                if r < 1.0 {
                    busy = self.p.idle1 + (busy - self.p.idle1) * r.powi(CLOCK_POWER_EXPONENT);
                }
                if s.t < s.overshoot_until {
                    busy * self.p.overshoot
                } else {
                    busy
                }
            }
        }
    }

    fn throughput_of(&self, s: &State, cap: f64) -> f64 {
        match (s.commanded, &s.workload) {
            (SimActivity::Running, Some(w)) => {
                throughput_at_cap(&w.curve, self.cap_fraction(s, cap)) * self.lock_ratio(s, cap)
            }
            _ => 0.0,
        }
    }

    fn noisy(&self, stream: u64, index: u64, w: f64) -> f64 {
        match self.p.noise {
            Some((seed, sigma)) if sigma > 0.0 => {
                (w + sigma * normal(seed, stream, index)).max(0.0)
            }
            _ => w,
        }
    }

    fn push_sample(&self, s: &mut State, at: u64, w: f64) {
        let v = self.noisy(SAMPLE_STREAM, s.sample_index, w);
        s.sample_index += 1;
        let cap = s.ring.len();
        let head = s.ring_head;
        s.ring[head] = (at, v);
        s.ring_head = (head + 1) % cap;
        s.ring_len = (s.ring_len + 1).min(cap);
    }

    fn push_bucket(&self, s: &mut State, joules: f64) {
        let pos = s.bucket_pos;
        s.buckets[pos] = joules;
        s.bucket_pos = (pos + 1) % self.p.buckets;
    }

    fn latch(&self, s: &mut State, at: u64, inst: f64, energy: f64) {
        s.snap_at = at;
        s.snap_inst = self.noisy(TICK_STREAM, s.tick_index, inst);
        s.tick_index += 1;
        let sum: f64 = s.buckets[..self.p.buckets].iter().sum();
        s.snap_avg = self.noisy(
            TICK_STREAM ^ 0xA5A5,
            s.tick_index,
            sum / (self.p.tick_s * self.p.buckets as f64),
        );
        s.energy_at_tick = energy;
    }

    fn settled(&self, s: &State) -> bool {
        s.pending.first().is_none()
            && s.overshoot_until <= s.t
            && (s.cap - s.requested).abs() < SETTLED_W
            && (s.power - self.target(s, s.requested)).abs() < SETTLED_W
    }

    fn advance(&self, s: &mut State, now: u64) {
        while s.t < now {
            if self.settled(s) {
                s.cap = s.requested;
                s.power = self.target(s, s.cap);
                self.jump(s, now);
                return;
            }
            let step = if s.t < s.fine_until {
                STEP_NS
            } else {
                COARSE_STEP_NS
            };
            let grid = (s.t / step + 1).saturating_mul(step);
            let mut next = now.min(s.next_tick).min(s.next_sample).min(grid);
            if let Some(p) = s.pending.first() {
                next = next.min(p.at.max(s.t));
            }
            if s.overshoot_until > s.t {
                next = next.min(s.overshoot_until);
            }
            if next > s.t {
                self.step(s, next);
            }
            self.events(s);
        }
    }

    /// Integrates over `[s.t, next]` with the target held at its mid-step value.
    fn step(&self, s: &mut State, next: u64) {
        let dt = secs(next - s.t);
        let cap_new = s.requested + (s.cap - s.requested) * (-dt / self.p.tau_cap).exp();
        let cap_mid = 0.5 * (s.cap + cap_new);
        let target = self.target(s, cap_mid);
        let decay = (-dt / self.p.tau_p).exp();
        // Exact integral of a first-order approach to a constant target.
        s.energy += target * dt + (s.power - target) * self.p.tau_p * (1.0 - decay);
        s.work += self.throughput_of(s, cap_mid) * dt;
        s.power = target + (s.power - target) * decay;
        s.cap = if (cap_new - s.requested).abs() < SETTLED_W {
            s.requested
        } else {
            cap_new
        };
        s.t = next;
    }

    fn events(&self, s: &mut State) {
        while let Some(p) = s.pending.first() {
            if p.at > s.t {
                break;
            }
            s.pending.pop();
            self.apply(s, p.change);
        }
        if s.t == s.next_sample {
            let (t, w) = (s.t, s.power);
            self.push_sample(s, t, w);
            s.next_sample = s.next_sample.saturating_add(self.p.sample_ns);
        }
        if s.t == s.next_tick {
            let bucket = s.energy - s.energy_at_tick;
            self.push_bucket(s, bucket);
            let (t, w, e) = (s.t, s.power, s.energy);
            self.latch(s, t, w, e);
            s.next_tick = s.next_tick.saturating_add(self.p.tick_ns);
        }
    }

    /// Jumps from `s.t` to `now` at constant power (everything settled).
    fn jump(&self, s: &mut State, now: u64) {
        let w = s.power;
        if s.next_sample <= now {
            let n = (now - s.next_sample) / self.p.sample_ns + 1;
            let keep = n.min(s.ring.len() as u64);
            // Samples that would be overwritten are skipped, but their noise indices advance.
            s.sample_index += n - keep;
            let first_kept = s.next_sample + (n - keep) * self.p.sample_ns;
            for i in 0..keep {
                self.push_sample(s, first_kept + i * self.p.sample_ns, w);
            }
            s.next_sample = s.next_sample.saturating_add(n * self.p.sample_ns);
        }
        if s.next_tick <= now {
            let n = (now - s.next_tick) / self.p.tick_ns + 1;
            let first_energy = s.energy + w * secs(s.next_tick - s.t);
            let bucket = first_energy - s.energy_at_tick;
            self.push_bucket(s, bucket);
            let rest = (n - 1).min(self.p.buckets as u64);
            for _ in 0..rest {
                self.push_bucket(s, w * self.p.tick_s);
            }
            let last = s.next_tick + (n - 1) * self.p.tick_ns;
            s.tick_index += n - 1;
            let e_last = s.energy + w * secs(last - s.t);
            self.latch(s, last, w, e_last);
            s.next_tick = last.saturating_add(self.p.tick_ns);
        }
        let dt = secs(now - s.t);
        s.energy += w * dt;
        s.work += self.throughput_of(s, s.cap) * dt;
        s.t = now;
    }
}

#[async_trait]
impl PowerDevice for SimGpu {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    async fn telemetry(&self) -> Result<Telemetry, HalError> {
        self.telemetry_now()
    }

    async fn set_power_limit(&self, limit: Power) -> Result<LimitChange, HalError> {
        self.set_power_limit_now(limit)
    }

    fn set_power_limit_at_once(&self, limit: Power) -> Option<Result<LimitChange, HalError>> {
        Some(self.set_power_limit_now(limit))
    }

    fn restore_power_limit_at_once(&self) -> Option<Result<LimitChange, HalError>> {
        Some(self.set_power_limit_now(self.info.limit_at_discovery))
    }
}

#[async_trait]
impl SmClockLock for SimGpu {
    fn sm_clock_range(&self) -> ClockRange {
        self.clock_range
    }

    async fn lock_sm_clocks(&self, range: ClockRange) -> Result<(), HalError> {
        self.lock_sm_clocks_now(range)
    }

    async fn unlock_sm_clocks(&self) -> Result<(), HalError> {
        self.unlock_sm_clocks_now()
    }
}

#[async_trait]
impl PowerSampleStream for SimGpu {
    async fn power_samples_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<PowerSample>, HalError> {
        self.power_samples_now(since)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use gridflex_core::ManualClock;

    use super::*;
    use crate::sim::WorkloadKind;

    proptest::proptest! {
        /// The pending ring keeps changes in time order, equal times in arrival order,
        /// through wrap-around: the same as a sorted list would.
        #[test]
        fn pending_queue_orders_like_a_sorted_list(
            ops in proptest::collection::vec(proptest::option::of(0u64..6), 0..64),
        ) {
            let mut queue = PendingQueue::EMPTY;
            let mut model: Vec<(u64, f64)> = Vec::new();
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Some(at) if !queue.is_full() => {
                        let change = Change::Limit(n as f64);
                        queue.insert(Pending { at, change });
                        let pos = model.partition_point(|&(t, _)| t <= at);
                        model.insert(pos, (at, n as f64));
                    }
                    _ => {
                        let got = queue.pop().map(|p| match p.change {
                            Change::Limit(w) => (p.at, w),
                            Change::Activity { .. } => (p.at, -1.0),
                        });
                        let want = (!model.is_empty()).then(|| model.remove(0));
                        proptest::prop_assert_eq!(got, want);
                    }
                }
                proptest::prop_assert_eq!(queue.len(), model.len());
            }
        }
    }

    fn gpu() -> (ManualClock, SimGpu) {
        let clock = ManualClock::default();
        let g = SimGpu::new(3, Arc::new(clock.clone()), SimGpuSpec::h100_sxm()).unwrap();
        (clock, g)
    }

    #[test]
    fn idle_levels_and_energy() {
        let (clock, g) = gpu();
        clock.advance(Duration::from_secs(3600));
        assert!((g.true_power().as_watts() - 84.0).abs() < 1e-9);
        assert!((g.true_energy().as_joules() - 84.0 * 3600.0).abs() < 1e-6);
        let t = g.telemetry_now().unwrap();
        assert!((t.power_average.unwrap().as_watts() - 84.0).abs() < 1e-9);
        g.create_context().unwrap();
        clock.advance(Duration::from_secs(1));
        assert!((g.true_power().as_watts() - 125.0).abs() < 1e-6);
        assert_eq!(g.activity(), SimActivity::Idle);
    }

    #[test]
    fn out_of_range_changes_nothing() {
        let (_, g) = gpu();
        let e = g
            .set_power_limit_now(Power::watts(150.0).unwrap())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange);
        assert_eq!(g.requested_limit().as_watts(), 700.0);
    }

    #[test]
    fn cap_settles_first_order() {
        let (clock, g) = gpu();
        g.start_workload(WorkloadProfile::of(WorkloadKind::Matmul))
            .unwrap();
        clock.advance(Duration::from_secs(2));
        g.set_power_limit_now(Power::watts(400.0).unwrap()).unwrap();
        // One time constant: 63 % of the way (plus the 14 ms power lag).
        clock.advance(Duration::from_millis(100));
        let p = g.true_power().as_watts();
        let expected = 400.0 + 300.0 * (-1.0f64).exp();
        assert!((p - expected).abs() < 25.0, "{p} vs {expected}");
        clock.advance(Duration::from_secs(2));
        assert!((g.true_power().as_watts() - 400.0).abs() < 0.01);
        let t = g.telemetry_now().unwrap();
        assert_eq!(t.cap_binding, Some(true));
        assert_eq!(t.enforced_limit, Some(Power::watts(400.0).unwrap()));
    }

    #[test]
    fn faults_are_injected_and_cleared() {
        let (_, g) = gpu();
        g.inject_fault(Some(ErrorKind::DeviceLost));
        assert_eq!(g.telemetry_now().unwrap_err().kind(), ErrorKind::DeviceLost);
        g.inject_fault(Some(ErrorKind::NoPermission));
        assert_eq!(
            g.set_power_limit_now(Power::watts(300.0).unwrap())
                .unwrap_err()
                .kind(),
            ErrorKind::NoPermission
        );
        g.inject_fault(Some(ErrorKind::Transient));
        assert_eq!(g.create_context().unwrap_err().kind(), ErrorKind::Transient);
        g.inject_fault(None);
        assert!(g.telemetry_now().is_ok());
    }

    #[test]
    fn clock_lock_reduces_power_and_throughput() {
        let (clock, g) = gpu();
        g.start_workload(WorkloadProfile::of(WorkloadKind::Matmul))
            .unwrap();
        clock.advance(Duration::from_secs(1));
        let thr0 = g.throughput();
        let bad = ClockRange {
            min: Megahertz(1500),
            max: Megahertz(1000),
        };
        assert_eq!(
            g.lock_sm_clocks_now(bad).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        let too_high = ClockRange {
            min: Megahertz(1000),
            max: Megahertz(2500),
        };
        assert!(g.lock_sm_clocks_now(too_high).is_err());
        g.lock_sm_clocks_now(ClockRange {
            min: Megahertz(345),
            max: Megahertz(1050),
        })
        .unwrap();
        clock.advance(Duration::from_secs(1));
        let p = g.true_power().as_watts();
        assert!(p < 450.0 && p > 125.0, "{p}");
        assert!(g.throughput() < thr0 * 0.8);
        assert_eq!(g.telemetry_now().unwrap().sm_clock, Some(Megahertz(1050)));
        g.unlock_sm_clocks_now().unwrap();
        clock.advance(Duration::from_secs(1));
        assert!((g.true_power().as_watts() - 700.0).abs() < 0.01);
    }

    #[test]
    fn pause_requires_a_workload() {
        let (_, g) = gpu();
        assert!(g.pause_workload().is_err());
        assert!(g.resume_workload().is_err());
        g.start_workload(WorkloadProfile::of(WorkloadKind::Inference))
            .unwrap();
        g.pause_workload().unwrap();
        g.pause_workload().unwrap();
        assert_eq!(g.activity(), SimActivity::Paused);
        g.stop_workload().unwrap();
        assert_eq!(g.activity(), SimActivity::NoContext);
    }

    #[test]
    fn rapid_commands_keep_the_latest() {
        let (clock, g) = gpu();
        g.start_workload(WorkloadProfile::of(WorkloadKind::Matmul))
            .unwrap();
        for _ in 0..5 {
            g.pause_workload().unwrap();
            g.resume_workload().unwrap();
        }
        g.pause_workload().unwrap();
        clock.advance(Duration::from_secs(1));
        assert!((g.true_power().as_watts() - 125.0).abs() < 0.01);
    }

    #[test]
    fn noise_is_seeded_and_query_pattern_independent() {
        let spec = SimGpuSpec::h100_sxm().with_noise(7, Power::watts(10.0).unwrap());
        let run = |steps: u32| {
            let clock = ManualClock::default();
            let g = SimGpu::new(0, Arc::new(clock.clone()), spec.clone()).unwrap();
            for _ in 0..steps {
                clock.advance(Duration::from_secs(60) / steps);
                let _ = g.telemetry_now();
            }
            let t = g.telemetry_now().unwrap();
            (t.power_instant.unwrap(), g.power_samples_now(None).unwrap())
        };
        let (a, sa) = run(1);
        let (b, sb) = run(48);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        assert_ne!(a.as_watts(), 84.0);
        let clock = ManualClock::default();
        let other = SimGpu::new(
            0,
            Arc::new(clock.clone()),
            SimGpuSpec::h100_sxm().with_noise(8, Power::watts(10.0).unwrap()),
        )
        .unwrap();
        clock.advance(Duration::from_secs(60));
        assert_ne!(other.telemetry_now().unwrap().power_instant.unwrap(), a);
    }
}
