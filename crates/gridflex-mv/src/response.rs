//! Response time from high-rate power samples around an instruction.
//!
//! A site's power record usually holds many instructions one after another (pause,
//! resume, cap, ...), so each is measured within its own segment: from the previous
//! instruction (or the start of the record) to the next one (or the end). The
//! pre-instruction level is the median of the steady period just before the
//! instruction (by default the last quarter of the samples between the previous
//! instruction and this one), the post level the median of the settle window at the
//! end of the segment (by default the last quarter of the samples between this
//! instruction and the next): never a sample from before the previous instruction or
//! past the next one (medians, so a spike or a dropped reading does not move them).
//! [`response_times`] measures every instruction of a record; [`response_time`] one. The time to 50 % and to 90 % of the step
//! is reported twice: interpolated linearly between the two samples around the mark,
//! and as the time of the first sample past the mark. The median sample spacing is
//! reported with them: no figure is finer than the spacing allows.
//!
//! ```
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use gridflex_core::Power;
//! use gridflex_mv::response::{response_time, ResponseConfig, Sample};
//!
//! let at = Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap();
//! // 20 ms samples: 700 W before the instruction, 120 W from 40 ms after it.
//! let samples: Vec<Sample<Power>> = (-10..40)
//!     .map(|k| Sample {
//!         at: at + TimeDelta::milliseconds(20 * k),
//!         value: Power::watts(if k < 2 { 700.0 } else { 120.0 }).unwrap(),
//!     })
//!     .collect();
//! let r = response_time(&samples, at, &ResponseConfig::default())?;
//! assert_eq!(r.from.as_watts(), 700.0);
//! assert_eq!(r.to.as_watts(), 120.0);
//! // The 50 % mark (410 W) lies between the samples at 20 ms (700 W) and 40 ms (120 W).
//! assert_eq!(r.t50.first_sample, TimeDelta::milliseconds(40));
//! assert_eq!(r.t50.interpolated, TimeDelta::milliseconds(30));
//! assert_eq!(r.sample_period, TimeDelta::milliseconds(20));
//! # Ok::<(), gridflex_mv::MvError>(())
//! ```

use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::Power;
use serde::{Deserialize, Serialize};

use crate::MvError;

/// One timed sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample<T> {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// The value.
    pub value: T,
}

/// Adds several meters' samples up on a common time grid of `bin` (for example every
/// GPU's 20 ms power stream into one facility trace). Each sample falls in the bin
/// holding its instant (bins start at multiples of `bin` since the Unix epoch, and a
/// stream's first sample in a bin is the one that counts); a bin is kept only when every
/// stream reported in it, so a missing device never reads as a drop in power. Sums are
/// stamped at the bin's start, in time order. A `bin` of zero or less is taken as 1 ns.
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex_core::Power;
/// use gridflex_mv::response::{Sample, sum_on_grid};
///
/// let t0 = Utc.with_ymd_and_hms(2025, 8, 1, 0, 0, 0).unwrap();
/// let s = |ms, w| Sample { at: t0 + TimeDelta::milliseconds(ms), value: Power::watts(w).unwrap() };
/// let a = vec![s(0, 700.0), s(21, 650.0), s(40, 600.0)];
/// let b = vec![s(3, 700.0), s(25, 640.0)]; // nothing in the third bin
/// let sum = sum_on_grid([a, b], TimeDelta::milliseconds(20));
/// assert_eq!(sum.len(), 2);
/// assert_eq!(sum[1].at, t0 + TimeDelta::milliseconds(20));
/// assert_eq!(sum[1].value, Power::watts(1290.0).unwrap());
/// ```
pub fn sum_on_grid<I, S>(streams: I, bin: TimeDelta) -> Vec<Sample<Power>>
where
    I: IntoIterator<Item = S>,
    S: IntoIterator<Item = Sample<Power>>,
{
    let bin_ns = bin.num_nanoseconds().unwrap_or(i64::MAX).max(1);
    let mut bins: std::collections::BTreeMap<i64, (Power, usize)> = Default::default();
    let mut n = 0usize;
    let mut seen = std::collections::HashSet::new();
    for stream in streams {
        n += 1;
        seen.clear();
        for s in stream {
            let Some(ns) = s.at.timestamp_nanos_opt() else {
                continue;
            };
            let k = ns.div_euclid(bin_ns);
            // The stream's first sample in a bin counts; later ones in the same bin do not.
            if seen.insert(k) {
                let e = bins.entry(k).or_insert((Power::ZERO, 0));
                e.0 += s.value;
                e.1 += 1;
            }
        }
    }
    bins.into_iter()
        .filter(|(_, (_, c))| *c == n)
        .map(|(k, (p, _))| Sample {
            at: DateTime::from_timestamp_nanos(k.saturating_mul(bin_ns)),
            value: p,
        })
        .collect()
}

/// Settings of [`response_time`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResponseConfig {
    /// The pre-instruction level uses the samples in this window before the
    /// instruction (never before the previous instruction); `None` (default) uses the
    /// last quarter of the samples since the previous instruction or the record start.
    pub pre_window: Option<TimeDelta>,
    /// The post level uses the samples in this window at the end of the instruction's
    /// segment (the next instruction, or the end of the record); `None` (default) uses
    /// the last quarter of the samples in the segment after the instruction.
    pub post_window: Option<TimeDelta>,
    /// The smallest step between the levels that counts as a response (default 0 W:
    /// any change).
    pub min_step: Power,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        Self {
            pre_window: None,
            post_window: None,
            min_step: Power::ZERO,
        }
    }
}

/// When a fraction of the step was reached, measured from the instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crossing {
    /// Linearly interpolated between the last sample short of the mark and the first
    /// past it (never before the instruction).
    pub interpolated: TimeDelta,
    /// The time of the first sample at or past the mark.
    pub first_sample: TimeDelta,
}

/// The outcome of [`response_time`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResponseTime {
    /// Level before the instruction.
    pub from: Power,
    /// Level after the response settled.
    pub to: Power,
    /// Time to 50 % of the step.
    pub t50: Crossing,
    /// Time to 90 % of the step.
    pub t90: Crossing,
    /// Median spacing of the samples: the resolution of the figures above.
    pub sample_period: TimeDelta,
    /// Largest spacing between two consecutive samples.
    pub max_sample_gap: TimeDelta,
    /// Samples behind the pre level.
    pub pre_samples: usize,
    /// Samples behind the post level.
    pub post_samples: usize,
}

/// Checks that samples are in strictly increasing time order.
pub(crate) fn check_sorted<T>(what: &'static str, samples: &[Sample<T>]) -> Result<(), MvError> {
    for (index, pair) in samples.windows(2).enumerate() {
        if pair[1].at <= pair[0].at {
            return Err(MvError::UnsortedSamples {
                what,
                index: index + 1,
                at: pair[1].at,
            });
        }
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn earlier(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn delta_secs(s: f64) -> TimeDelta {
    TimeDelta::nanoseconds((s * 1e9).round() as i64)
}

/// Measures the response to an instruction at `at` from samples sorted by time, as
/// the only instruction in the record (see [`response_times`] for several).
pub fn response_time(
    samples: &[Sample<Power>],
    at: DateTime<Utc>,
    config: &ResponseConfig,
) -> Result<ResponseTime, MvError> {
    check_sorted("power", samples)?;
    measure(samples, at, config)
}

/// Measures the response to each of several instructions in one record: instruction
/// `k` is measured on the samples between instruction `k - 1` and instruction `k + 1`
/// (see the module documentation). `instructions` must be strictly increasing.
pub fn response_times(
    samples: &[Sample<Power>],
    instructions: &[DateTime<Utc>],
    config: &ResponseConfig,
) -> Result<Vec<ResponseTime>, MvError> {
    check_sorted("power", samples)?;
    for (index, pair) in instructions.windows(2).enumerate() {
        if pair[1] <= pair[0] {
            return Err(MvError::UnsortedSamples {
                what: "instruction",
                index: index + 1,
                at: pair[1],
            });
        }
    }
    let mut out = Vec::with_capacity(instructions.len());
    for (k, &at) in instructions.iter().enumerate() {
        let lo = match k.checked_sub(1).map(|j| instructions[j]) {
            Some(prev) => samples.partition_point(|s| s.at < prev),
            None => 0,
        };
        let hi = match instructions.get(k + 1) {
            Some(&next) => samples.partition_point(|s| s.at < next),
            None => samples.len(),
        };
        out.push(measure(&samples[lo..hi], at, config)?);
    }
    Ok(out)
}

/// The last quarter (at least one) of `part`.
fn last_quarter<T>(part: &[T]) -> &[T] {
    &part[part.len() - (part.len() / 4).max(1).min(part.len())..]
}

/// Measures one instruction on the samples of its segment (sorted).
fn measure(
    samples: &[Sample<Power>],
    at: DateTime<Utc>,
    config: &ResponseConfig,
) -> Result<ResponseTime, MvError> {
    let first_post = samples.partition_point(|s| s.at < at);
    let pre: &[Sample<Power>] = match config.pre_window {
        None => last_quarter(&samples[..first_post]),
        Some(w) => {
            let from = samples[..first_post].partition_point(|s| s.at < earlier(at, w));
            &samples[from..first_post]
        }
    };
    if pre.is_empty() {
        return Err(MvError::NotEnoughSamples {
            what: "pre-instruction level",
            found: 0,
            needed: 1,
        });
    }
    let after = &samples[first_post..];
    let post: &[Sample<Power>] = match (config.post_window, after.last()) {
        (_, None) => &[],
        (None, Some(_)) => last_quarter(after),
        (Some(w), Some(last)) => {
            let from = after.partition_point(|s| s.at < earlier(last.at, w));
            &after[from..]
        }
    };
    if post.is_empty() {
        return Err(MvError::NotEnoughSamples {
            what: "post-instruction level",
            found: 0,
            needed: 1,
        });
    }
    let from = median(&mut pre.iter().map(|s| s.value.as_watts()).collect::<Vec<_>>());
    let to = median(&mut post.iter().map(|s| s.value.as_watts()).collect::<Vec<_>>());
    let min = config.min_step.as_watts().abs();
    if (to - from).abs() <= min || to == from {
        return Err(MvError::NoStep {
            from_w: from,
            to_w: to,
            min_w: min,
        });
    }
    let crossing = |fraction: f64| -> Result<Crossing, MvError> {
        let dir = (to - from).signum();
        let mark = from + fraction * (to - from);
        let i = (first_post..samples.len())
            .find(|&i| dir * (samples[i].value.as_watts() - mark) >= 0.0)
            .ok_or(MvError::MarkNotReached {
                percent: fraction * 100.0,
                at,
            })?;
        let hit = samples[i];
        let first_sample = hit.at - at;
        let interpolated = match i.checked_sub(1).map(|j| samples[j]) {
            Some(prev) if dir * (prev.value.as_watts() - mark) < 0.0 => {
                let (p0, p1) = (prev.value.as_watts(), hit.value.as_watts());
                let frac = (mark - p0) / (p1 - p0);
                let span = gridflex_core::units::seconds_f64(hit.at - prev.at);
                let t = prev
                    .at
                    .checked_add_signed(delta_secs(frac * span))
                    .unwrap_or(hit.at);
                (t - at).max(TimeDelta::zero())
            }
            _ => first_sample,
        };
        Ok(Crossing {
            interpolated,
            first_sample,
        })
    };
    let t50 = crossing(0.5)?;
    let t90 = crossing(0.9)?;
    let mut gaps: Vec<f64> = samples
        .windows(2)
        .map(|p| gridflex_core::units::seconds_f64(p[1].at - p[0].at))
        .collect();
    let (sample_period, max_sample_gap) = if gaps.is_empty() {
        (TimeDelta::zero(), TimeDelta::zero())
    } else {
        let max = gaps.iter().copied().fold(0.0, f64::max);
        (delta_secs(median(&mut gaps)), delta_secs(max))
    };
    Ok(ResponseTime {
        from: Power::watts(from)?,
        to: Power::watts(to)?,
        t50,
        t90,
        sample_period,
        max_sample_gap,
        pre_samples: pre.len(),
        post_samples: post.len(),
    })
}
