//! A conformance kit for backends: checks that a [`PowerDevice`], a
//! [`PowerSampleStream`] or a [`WorkloadControl`] keeps the promises the orchestrator
//! relies on, from a backend's own tests.
//!
//! Like the test suites interface crates give implementers, each check drives the
//! backend through the trait only and returns the first broken promise as a [`Broken`]
//! error whose message names it. Checks change the device (limits, pauses) and put it
//! back as found, so run them on a device that nothing else is using. Time-dependent
//! promises (telemetry that never goes back, sample spacing) need time to pass: the
//! caller says how, with an `advance` closure (`tokio::time::sleep` on real hardware or
//! in paused tokio time, a manual clock's `advance` for a simulator).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use gridflex_core::ManualClock;
//! use gridflex_hal::conformance;
//! use gridflex_hal::sim::{SimGpu, SimGpuSpec};
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let clock = ManualClock::default();
//! let gpu = SimGpu::new(0, Arc::new(clock.clone()), SimGpuSpec::h100_sxm())?;
//! let advance = |d: Duration| {
//!     clock.advance(d);
//!     std::future::ready(())
//! };
//! conformance::power_device(&gpu, advance).await?;
//! conformance::sample_stream(&gpu, Duration::from_millis(20), advance).await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::future::Future;
use std::time::Duration;

use gridflex_core::Power;

use crate::{ErrorKind, PowerDevice, PowerSampleStream, WorkloadControl, WorkloadState};

/// A promise of the backend traits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Promise {
    /// `info()`: `limits.min <= limit_at_discovery <= limits.max`, and `id()` is `info().id`.
    ConsistentInfo,
    /// A limit below the range is refused with kind `OutOfRange` and changes nothing.
    RefusesBelowRange,
    /// A limit above the range is refused with kind `OutOfRange` and changes nothing.
    RefusesAboveRange,
    /// A limit in range is accepted, `requested` is the limit asked for, and `enforced`
    /// is at most the limit asked for.
    AppliesLimitsInRange,
    /// Telemetry that reports the requested limit reports the one last set.
    TelemetryShowsTheLimit,
    /// `restore_power_limit` puts back the limit in force at discovery.
    RestoresTheDiscoveryLimit,
    /// Telemetry time and the energy counter never go back.
    TelemetryMonotonic,
    /// `power_samples_since(t)` returns samples strictly after `t`, oldest first.
    SamplesOrdered,
    /// Samples are spaced about the stream's period (within half of it on average).
    SampleSpacing,
    /// `job()` names the job, the same on every call.
    StableJobId,
    /// After `pause`, `status` is `Paused`; pausing again is a no-op that succeeds.
    PauseIsIdempotent,
    /// After `resume`, `status` is `Running`; resuming again is a no-op that succeeds.
    ResumeIsIdempotent,
    /// The `*_at_once` calls, where the backend answers them, answer and act as the
    /// awaited calls do.
    AtOnceAsAwaited,
}

impl fmt::Display for Promise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ConsistentInfo => "device info is consistent (min <= limit at discovery <= max)",
            Self::RefusesBelowRange => {
                "a limit below the range is refused as out_of_range and changes nothing"
            }
            Self::RefusesAboveRange => {
                "a limit above the range is refused as out_of_range and changes nothing"
            }
            Self::AppliesLimitsInRange => {
                "a limit in range is applied and reported enforced at or below it"
            }
            Self::TelemetryShowsTheLimit => "telemetry reports the limit last set",
            Self::RestoresTheDiscoveryLimit => {
                "restore_power_limit puts back the limit in force at discovery"
            }
            Self::TelemetryMonotonic => "telemetry time and energy never go back",
            Self::SamplesOrdered => "samples come strictly after `since`, oldest first",
            Self::SampleSpacing => "samples are spaced about the stream's period",
            Self::StableJobId => "job() names the job, the same on every call",
            Self::PauseIsIdempotent => "pause leaves the job paused, and pausing twice succeeds",
            Self::ResumeIsIdempotent => {
                "resume leaves the job running, and resuming twice succeeds"
            }
            Self::AtOnceAsAwaited => "the *_at_once calls answer and act as the awaited ones",
        })
    }
}

/// A broken promise: which, on what, and what was seen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{subject} broke the promise that {promise}: {seen}")]
pub struct Broken {
    /// The promise.
    pub promise: Promise,
    /// The device or job id.
    pub subject: String,
    /// What the check saw.
    pub seen: String,
}

fn broken(promise: Promise, subject: &impl fmt::Display, seen: impl Into<String>) -> Broken {
    Broken {
        promise,
        subject: subject.to_string(),
        seen: seen.into(),
    }
}

/// Checks a power device: its info, the out-of-range refusals and their error kind, a
/// limit in range and its telemetry, the restore, and telemetry that never goes back
/// (`advance` lets 2 s pass between readings). The device is restored at the end, also
/// when a promise is broken.
pub async fn power_device<D, F, Fut>(device: &D, advance: F) -> Result<(), Broken>
where
    D: PowerDevice + ?Sized,
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = ()>,
{
    let result = check_device(device, advance).await;
    let restored = device.restore_power_limit().await;
    match (result, restored) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(broken(
            Promise::RestoresTheDiscoveryLimit,
            device.id(),
            format!("the final restore failed: {e}"),
        )),
        (Ok(()), Ok(_)) => Ok(()),
    }
}

async fn check_device<D, F, Fut>(device: &D, mut advance: F) -> Result<(), Broken>
where
    D: PowerDevice + ?Sized,
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = ()>,
{
    let info = device.info();
    let id = &info.id;
    let limits = info.limits;
    if device.id() != id || !limits.contains(info.limit_at_discovery) {
        return Err(broken(
            Promise::ConsistentInfo,
            id,
            format!(
                "limits {} ..= {}, limit at discovery {}",
                limits.min(),
                limits.max(),
                info.limit_at_discovery
            ),
        ));
    }
    let before = telemetry(device, Promise::TelemetryMonotonic).await?;
    // Half the floor and one and a half times the top: outside any range (both
    // products of valid limits are valid).
    let below = limits.min().checked_mul(0.5).unwrap_or(Power::ZERO);
    let above = limits
        .max()
        .checked_mul(1.5)
        .unwrap_or(limits.max() + limits.max());
    for (promise, limit) in [
        (Promise::RefusesBelowRange, below),
        (Promise::RefusesAboveRange, above),
    ] {
        match device.set_power_limit(limit).await {
            Ok(c) => {
                return Err(broken(
                    promise,
                    id,
                    format!("{limit} was accepted (enforced {})", c.enforced),
                ));
            }
            Err(e) if e.kind() != ErrorKind::OutOfRange => {
                return Err(broken(
                    promise,
                    id,
                    format!("refused with kind {:?}, not out_of_range: {e}", e.kind()),
                ));
            }
            Err(_) => {}
        }
        let after = telemetry(device, promise).await?;
        if let (Some(a), Some(b)) = (before.requested_limit, after.requested_limit)
            && a != b
        {
            return Err(broken(
                promise,
                id,
                format!("the requested limit moved from {a} to {b}"),
            ));
        }
    }
    // Halfway between the floor and the limit at discovery: a limit every device takes.
    let span = info.limit_at_discovery - limits.min();
    let mid = limits.min() + span.checked_div(2.0).unwrap_or(Power::ZERO);
    let change = device.set_power_limit(mid).await.map_err(|e| {
        broken(
            Promise::AppliesLimitsInRange,
            id,
            format!("{mid} was refused: {e}"),
        )
    })?;
    if change.requested != mid || change.enforced > mid + gridflex_core::power!(0.5 W) {
        return Err(broken(
            Promise::AppliesLimitsInRange,
            id,
            format!(
                "asked {mid}, reported requested {} and enforced {}",
                change.requested, change.enforced
            ),
        ));
    }
    let t = telemetry(device, Promise::TelemetryShowsTheLimit).await?;
    if let Some(r) = t.requested_limit
        && r != mid
    {
        return Err(broken(
            Promise::TelemetryShowsTheLimit,
            id,
            format!("set {mid}, telemetry says {r}"),
        ));
    }
    advance(Duration::from_secs(2)).await;
    let later = telemetry(device, Promise::TelemetryMonotonic).await?;
    if later.at < before.at {
        return Err(broken(
            Promise::TelemetryMonotonic,
            id,
            format!("a reading at {} after one at {}", later.at, before.at),
        ));
    }
    if let (Some(a), Some(b)) = (before.energy, later.energy)
        && (b.total < a.total || b.at < a.at)
    {
        return Err(broken(
            Promise::TelemetryMonotonic,
            id,
            format!(
                "energy {} at {} after {} at {}",
                b.total, b.at, a.total, a.at
            ),
        ));
    }
    let back = device.restore_power_limit().await.map_err(|e| {
        broken(
            Promise::RestoresTheDiscoveryLimit,
            id,
            format!("refused: {e}"),
        )
    })?;
    let t = telemetry(device, Promise::RestoresTheDiscoveryLimit).await?;
    let shown = t.requested_limit.unwrap_or(back.requested);
    if back.requested != info.limit_at_discovery || shown != info.limit_at_discovery {
        return Err(broken(
            Promise::RestoresTheDiscoveryLimit,
            id,
            format!(
                "discovered at {}, restored to {} (telemetry {shown})",
                info.limit_at_discovery, back.requested
            ),
        ));
    }
    // Where the backend answers at once, it answers as the awaited calls did.
    let at_once = Promise::AtOnceAsAwaited;
    if let Some(r) = device.set_power_limit_at_once(above)
        && !matches!(&r, Err(e) if e.kind() == ErrorKind::OutOfRange)
    {
        return Err(broken(at_once, id, format!("{above} at once: {r:?}")));
    }
    for (name, want) in [("set", mid), ("restore", info.limit_at_discovery)] {
        // One call at a time: each is checked before the next acts.
        let answer = if name == "set" {
            device.set_power_limit_at_once(mid)
        } else {
            device.restore_power_limit_at_once()
        };
        let Some(r) = answer else {
            continue;
        };
        match r {
            Ok(c) if c.requested == want => {
                advance(Duration::from_secs(2)).await;
                let t = telemetry(device, at_once).await?;
                let shown = t.requested_limit.unwrap_or(want);
                if shown != want {
                    return Err(broken(
                        at_once,
                        id,
                        format!("{name} {want} at once, telemetry shows {shown}"),
                    ));
                }
            }
            other => {
                return Err(broken(
                    at_once,
                    id,
                    format!("{name} {want} at once: {other:?}"),
                ));
            }
        }
    }
    Ok(())
}

async fn telemetry<D: PowerDevice + ?Sized>(
    device: &D,
    promise: Promise,
) -> Result<crate::Telemetry, Broken> {
    device
        .telemetry()
        .await
        .map_err(|e| broken(promise, device.id(), format!("telemetry failed: {e}")))
}

/// Checks a sample stream: samples strictly after `since`, oldest first, spaced about
/// `period` on average (`advance` lets 25 periods pass).
pub async fn sample_stream<D, F, Fut>(
    device: &D,
    period: Duration,
    mut advance: F,
) -> Result<(), Broken>
where
    D: PowerSampleStream + ?Sized,
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = ()>,
{
    let id = device.id();
    let read = |since| async move {
        device
            .power_samples_since(since)
            .await
            .map_err(|e| broken(Promise::SamplesOrdered, id, format!("read failed: {e}")))
    };
    advance(period * 25).await;
    let first = read(None).await?;
    let Some(mark) = first.last().map(|s| s.at) else {
        return Err(broken(
            Promise::SampleSpacing,
            id,
            format!("no sample after {} periods", 25),
        ));
    };
    advance(period * 25).await;
    let next = read(Some(mark)).await?;
    for pair in first.windows(2).chain(next.windows(2)) {
        if pair[1].at <= pair[0].at {
            return Err(broken(
                Promise::SamplesOrdered,
                id,
                format!("a sample at {} after one at {}", pair[1].at, pair[0].at),
            ));
        }
    }
    if let Some(s) = next.iter().find(|s| s.at <= mark) {
        return Err(broken(
            Promise::SamplesOrdered,
            id,
            format!("asked for samples after {mark}, got one at {}", s.at),
        ));
    }
    let (Some(a), Some(b)) = (next.first(), next.last()) else {
        return Err(broken(
            Promise::SampleSpacing,
            id,
            "no new sample after 25 more periods",
        ));
    };
    let gaps = next.len().saturating_sub(1).max(1) as f64;
    let mean = (b.at - a.at).to_std().unwrap_or_default().as_secs_f64() / gaps;
    let want = period.as_secs_f64();
    if next.len() < 2 || (mean - want).abs() > want / 2.0 {
        return Err(broken(
            Promise::SampleSpacing,
            id,
            format!(
                "{} samples, {:.1} ms apart on average, period {:.1} ms",
                next.len(),
                mean * 1e3,
                want * 1e3
            ),
        ));
    }
    Ok(())
}

/// Checks a workload control on a running job: a stable id, pause (twice) leaves it
/// paused, resume (twice) leaves it running. A backend whose status follows its
/// commands with a delay (a process the kernel has not stopped yet, a scheduler) is
/// given `settle(wanted)` between a command and a status that does not show it yet, at
/// most 100 times: make it wait for the change (`waitpid` for a process, a short sleep
/// or a virtual-time advance for others). The job is resumed at the end, also when a
/// promise is broken.
pub async fn workload_control<W, F, Fut>(control: &W, settle: F) -> Result<(), Broken>
where
    W: WorkloadControl + ?Sized,
    F: FnMut(WorkloadState) -> Fut,
    Fut: Future<Output = ()>,
{
    let result = check_control(control, settle).await;
    let resumed = control.resume().await;
    match (result, resumed) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(broken(
            Promise::ResumeIsIdempotent,
            control.job(),
            format!("the final resume failed: {e}"),
        )),
        (Ok(()), Ok(())) => Ok(()),
    }
}

async fn check_control<W, F, Fut>(control: &W, mut settle: F) -> Result<(), Broken>
where
    W: WorkloadControl + ?Sized,
    F: FnMut(WorkloadState) -> Fut,
    Fut: Future<Output = ()>,
{
    let id = control.job().clone();
    for (promise, pause, want) in [
        (Promise::PauseIsIdempotent, true, WorkloadState::Paused),
        (Promise::ResumeIsIdempotent, false, WorkloadState::Running),
    ] {
        for attempt in ["first", "second"] {
            let r = if pause {
                control.pause().await
            } else {
                control.resume().await
            };
            if let Err(e) = r {
                return Err(broken(
                    promise,
                    &id,
                    format!("the {attempt} call failed: {e}"),
                ));
            }
            reaches(
                control,
                &mut settle,
                want,
                promise,
                &format!("the {attempt} call"),
            )
            .await?;
        }
        if control.job() != &id {
            return Err(broken(
                Promise::StableJobId,
                &id,
                format!("now says {}", control.job()),
            ));
        }
    }
    // Where the backend answers at once, it acts as the awaited calls did.
    for (pause, want) in [
        (true, WorkloadState::Paused),
        (false, WorkloadState::Running),
    ] {
        let answer = if pause {
            control.pause_at_once()
        } else {
            control.resume_at_once()
        };
        let Some(r) = answer else {
            continue;
        };
        let promise = Promise::AtOnceAsAwaited;
        r.map_err(|e| broken(promise, &id, format!("{want:?} at once failed: {e}")))?;
        reaches(
            control,
            &mut settle,
            want,
            promise,
            &format!("asking {want:?} at once"),
        )
        .await?;
    }
    Ok(())
}

/// Reads `control`'s status until it is `want` (up to 100 reads, `settle` between);
/// otherwise `promise` is broken with the last status seen, after `what`.
async fn reaches<W, F, Fut>(
    control: &W,
    settle: &mut F,
    want: WorkloadState,
    promise: Promise,
    what: &str,
) -> Result<(), Broken>
where
    W: WorkloadControl + ?Sized,
    F: FnMut(WorkloadState) -> Fut,
    Fut: Future<Output = ()>,
{
    let id = control.job();
    let mut seen = String::new();
    for _ in 0..100 {
        let s = control
            .status()
            .await
            .map_err(|e| broken(promise, id, format!("status failed: {e}")))?;
        if s == want {
            return Ok(());
        }
        seen = format!("{s:?}");
        settle(want).await;
    }
    Err(broken(promise, id, format!("status {seen} after {what}")))
}
