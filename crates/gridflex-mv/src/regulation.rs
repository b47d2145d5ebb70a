//! PJM regulation performance score, mileage and credits (markets.md §d; PJM Manual 12
//! §4.5 and Manual 28 §4, `[K]`).
//!
//! Signal and response are sampled every 10 s (the last sample at or before each
//! instant is held). For each 5-minute window:
//!
//! - accuracy = the highest correlation between the signal and the response shifted by
//!   a delay of 0, 10, ..., 300 s (negative correlations count as 0);
//! - delay = `|(d* - 5 min) / 5 min|`, d* the delay giving that correlation;
//! - precision = `1 - mean(|R - S|) / A`, A the hour's mean of `|S|` (floored at 0);
//! - composite = the mean of the three.
//!
//! A window is scored only when the data after it is long enough for the whole delay
//! search (the window plus `max_delay`): a window near the end of the data, whose
//! search would be cut short and could miss the true delay, is left out and counted in
//! [`RegulationScore::truncated_windows`]. The signal must lie in [-1, 1] (PJM sends it
//! normalised, `markets.md` §d); a value outside is refused, never scored. A record
//! whose 10-s grid would exceed [`MAX_SCORING_POINTS`] is refused.
//!
//! The hourly score is the mean of the hour's window scores; [`Qualification`] holds
//! the rolling 100-hour historic score and the 0.75 / 0.40 thresholds. Mileage is the sum of the
//! absolute moves of the (normalised) signal. Credits: capability = MW x RMCCP x
//! score; performance = MW x mileage ratio x RMPCP x score, per hour.
//!
//! ```
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use gridflex_core::Power;
//! use gridflex_mv::regulation::{regulation_score, RegulationConfig};
//! use gridflex_mv::response::Sample;
//!
//! let t0 = Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap();
//! let signal: Vec<Sample<f64>> = (0..1800)
//!     .map(|k| Sample { at: t0 + TimeDelta::seconds(2 * k), value: (k as f64 / 40.0).sin() })
//!     .collect();
//! // A resource assigned 2 MW that follows the signal exactly.
//! let response: Vec<Sample<Power>> = signal
//!     .iter()
//!     .map(|s| Sample { at: s.at, value: Power::megawatts(2.0 * s.value).unwrap() })
//!     .collect();
//! let score = regulation_score(&signal, &response, &RegulationConfig::new(Power::megawatts(2.0)?))?;
//! assert!((score.composite - 1.0).abs() < 1e-9);
//! assert_eq!(score.hours.len(), 1);
//! # Ok::<(), gridflex_mv::MvError>(())
//! ```

use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::{Money, Power, Price};
use serde::{Deserialize, Serialize};

use crate::MvError;
use crate::response::{Sample, check_sorted};

/// The most 10-s scoring points a call may imply (signal and response overlap divided
/// by the sample step): 1 million, about 115 days at the default step.
pub const MAX_SCORING_POINTS: u64 = 1_000_000;

/// Settings of [`regulation_score`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegulationConfig {
    /// The assigned regulation capability: the signal's +/-1 in power.
    pub regulation: Power,
    /// Scoring sample spacing (default 10 s).
    pub sample_step: TimeDelta,
    /// Scoring window (default 5 min).
    pub window: TimeDelta,
    /// Longest delay searched for the accuracy score, and the delay that scores 0
    /// (default 5 min).
    pub max_delay: TimeDelta,
}

impl RegulationConfig {
    /// The PJM defaults for a resource assigned `regulation`.
    pub fn new(regulation: Power) -> Self {
        Self {
            regulation,
            sample_step: TimeDelta::seconds(10),
            window: TimeDelta::minutes(5),
            max_delay: TimeDelta::minutes(5),
        }
    }

    fn validate(&self) -> Result<(i64, usize, usize), MvError> {
        let bad = |name, value: String, reason| MvError::InvalidParameter {
            name,
            value,
            reason,
        };
        if self.regulation <= Power::ZERO {
            return Err(bad(
                "regulation",
                self.regulation.to_string(),
                "must be positive",
            ));
        }
        let step = self.sample_step.num_milliseconds();
        if step <= 0 {
            return Err(bad(
                "sample_step",
                self.sample_step.to_string(),
                "must be at least 1 ms",
            ));
        }
        let whole = |name, d: TimeDelta| {
            let ms = d.num_milliseconds();
            if ms <= 0 || ms % step != 0 {
                Err(bad(
                    name,
                    d.to_string(),
                    "must be a positive multiple of sample_step",
                ))
            } else {
                Ok((ms / step) as usize)
            }
        };
        let per_window = whole("window", self.window)?;
        let max_shift = whole("max_delay", self.max_delay)?;
        if per_window < 2 {
            return Err(bad(
                "window",
                self.window.to_string(),
                "must hold at least two samples",
            ));
        }
        Ok((step, per_window, max_shift))
    }
}

/// The score of one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowScore {
    /// Window start.
    pub start: DateTime<Utc>,
    /// Accuracy (best correlation, at least 0).
    pub accuracy: f64,
    /// Delay score.
    pub delay: f64,
    /// Precision score.
    pub precision: f64,
    /// Mean of the three.
    pub composite: f64,
    /// The delay that gave the best correlation.
    pub best_delay: TimeDelta,
}

/// The scores of one hour: means of its windows, and its mileage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HourScore {
    /// Start of the hour (UTC).
    pub start: DateTime<Utc>,
    /// Windows scored in the hour.
    pub windows: usize,
    /// Mean accuracy.
    pub accuracy: f64,
    /// Mean delay score.
    pub delay: f64,
    /// Mean precision.
    pub precision: f64,
    /// Mean composite: the hourly performance score.
    pub composite: f64,
    /// Sum of absolute moves of the normalised signal within the hour.
    pub mileage: f64,
    /// Time covered by the scored windows.
    pub scored: TimeDelta,
}

/// The outcome of [`regulation_score`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegulationScore {
    /// Every scored window.
    pub windows: Vec<WindowScore>,
    /// Every hour with a scored window.
    pub hours: Vec<HourScore>,
    /// Mean accuracy over all windows.
    pub accuracy: f64,
    /// Mean delay score.
    pub delay: f64,
    /// Mean precision.
    pub precision: f64,
    /// Mean composite.
    pub composite: f64,
    /// Total mileage of the normalised signal over the scored hours.
    pub mileage: f64,
    /// Whole windows at the end of the data that were left out because the data after
    /// them is shorter than `max_delay`, so their delay search could not run in full.
    pub truncated_windows: usize,
}

/// Capability and performance credits of one hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegulationCredits {
    /// MW x RMCCP x score x hours scored.
    pub capability: Money,
    /// MW x mileage ratio x RMPCP x score x hours scored.
    pub performance: Money,
}

impl HourScore {
    /// The hour's credits given the clearing prices (in $/MW per hour of service, which
    /// is $/MWh) and the mileage ratio (RegD mileage / RegA mileage; 1 for RegA).
    /// Credits scale with the part of the hour that was scored. A mileage ratio that
    /// is not finite, or credits beyond what [`Money`] holds, are an error.
    pub fn credits(
        &self,
        regulation: Power,
        capability_price: Price,
        performance_price: Price,
        mileage_ratio: f64,
    ) -> Result<RegulationCredits, MvError> {
        let mwh = regulation * self.scored;
        let scaled = |m: Money, f: f64| Money::usd(m.as_usd() * f);
        Ok(RegulationCredits {
            capability: scaled(mwh * capability_price, self.composite)?,
            performance: scaled(mwh * performance_price, mileage_ratio * self.composite)?,
        })
    }
}

/// PJM qualification thresholds (M12 §4.5, `[K]`: "verify counts/thresholds in current
/// M12"), as settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Qualification {
    /// Score a qualification test must reach (default 0.75).
    pub test_pass: f64,
    /// Rolling historic score below which qualification is lost (default 0.40).
    pub historic_min: f64,
    /// Hours in the rolling historic score (default 100).
    pub history_hours: usize,
}

impl Default for Qualification {
    fn default() -> Self {
        Self {
            test_pass: 0.75,
            historic_min: 0.40,
            history_hours: 100,
        }
    }
}

impl Qualification {
    /// Whether a qualification test's score passes.
    pub fn passes_test(&self, test: &RegulationScore) -> bool {
        test.composite >= self.test_pass
    }

    /// The rolling historic score: the mean composite of the last `history_hours`
    /// hours (oldest first in `hours`); `None` when there is no hour.
    pub fn historic_score(&self, hours: &[HourScore]) -> Option<f64> {
        let n = self.history_hours.max(1).min(hours.len());
        let last = &hours[hours.len() - n..];
        (!last.is_empty()).then(|| last.iter().map(|h| h.composite).sum::<f64>() / n as f64)
    }

    /// Whether the historic score keeps the resource qualified; `None` when there is no
    /// hour to judge.
    pub fn keeps_qualification(&self, hours: &[HourScore]) -> Option<bool> {
        self.historic_score(hours).map(|s| s >= self.historic_min)
    }
}

fn ms_to_time(ms: i64) -> Result<DateTime<Utc>, MvError> {
    DateTime::<Utc>::from_timestamp_millis(ms).ok_or(MvError::InvalidParameter {
        name: "sample time",
        value: ms.to_string(),
        reason: "out of range",
    })
}

/// The last value at or before each grid instant.
fn hold<T: Copy>(
    samples: &[Sample<T>],
    t0_ms: i64,
    step_ms: i64,
    n: usize,
    f: impl Fn(T) -> f64,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    let mut j = 0;
    for k in 0..n {
        let t = t0_ms + k as i64 * step_ms;
        while j + 1 < samples.len() && samples[j + 1].at.timestamp_millis() <= t {
            j += 1;
        }
        out.push(f(samples[j].value));
    }
    out
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    // A flat signal followed by a flat response tracks perfectly; one flat series
    // against a moving one does not correlate at all.
    let tiny = 1e-18;
    match (saa <= tiny, sbb <= tiny) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => (sab / (saa * sbb).sqrt()).clamp(-1.0, 1.0),
    }
}

/// Scores a regulation response against the signal.
///
/// `signal` is normalised to [-1, 1] (a value outside is
/// [`MvError::SampleOutOfRange`]); `response` is the resource's regulation output
/// (deviation from its base point). Only whole windows covered by both, with the full
/// delay search after them, are scored; see [`RegulationScore::truncated_windows`].
pub fn regulation_score(
    signal: &[Sample<f64>],
    response: &[Sample<Power>],
    config: &RegulationConfig,
) -> Result<RegulationScore, MvError> {
    let (step_ms, per_window, max_shift) = config.validate()?;
    check_sorted("signal", signal)?;
    check_sorted("response", response)?;
    if let Some((index, s)) = signal
        .iter()
        .enumerate()
        .find(|(_, s)| !(-1.0..=1.0).contains(&s.value))
    {
        return Err(MvError::SampleOutOfRange {
            what: "signal",
            index,
            at: s.at,
            value: s.value,
            range: "[-1, 1]",
        });
    }
    let (Some(s0), Some(s1), Some(r0), Some(r1)) = (
        signal.first(),
        signal.last(),
        response.first(),
        response.last(),
    ) else {
        return Err(MvError::NotEnoughSamples {
            what: "signal and response",
            found: signal.len().min(response.len()),
            needed: 2,
        });
    };
    let first_ms = s0.at.max(r0.at).timestamp_millis();
    let last_ms = s1.at.min(r1.at).timestamp_millis();
    // The first grid instant at or after both series start.
    let t0 = (first_ms + step_ms - 1).div_euclid(step_ms) * step_ms;
    if last_ms < t0 {
        return Err(MvError::NotEnoughSamples {
            what: "overlapping signal and response",
            found: 0,
            needed: per_window,
        });
    }
    let points = ((last_ms - t0) / step_ms) as u64 + 1;
    if points > MAX_SCORING_POINTS {
        return Err(MvError::TooLarge {
            what: "scoring points implied by the overlap of signal and response",
            found: points,
            limit: MAX_SCORING_POINTS,
        });
    }
    let n = points as usize;
    let mw = config.regulation.as_megawatts();
    let s = hold(signal, t0, step_ms, n, |v: f64| v * mw);
    let r = hold(response, t0, step_ms, n, Power::as_megawatts);

    let window_ms = step_ms * per_window as i64;
    let hour_ms = 3_600_000;
    let mut windows = Vec::new();
    let mut hours: Vec<HourScore> = Vec::new();
    // Mean |S| per hour over the grid points of the hour.
    let mut hour_abs: (i64, f64) = (i64::MIN, 0.0);
    let mut truncated_windows = 0;
    let mut w_start = t0.div_euclid(window_ms) * window_ms;
    if w_start < t0 {
        w_start += window_ms;
    }
    while w_start + window_ms - step_ms <= last_ms {
        let k0 = ((w_start - t0) / step_ms) as usize;
        if k0 + max_shift + per_window > n {
            // The delay search would be cut short: leave the window out.
            truncated_windows += 1;
            w_start += window_ms;
            continue;
        }
        let hour = w_start.div_euclid(hour_ms) * hour_ms;
        if hour_abs.0 != hour {
            let ceil = |ms: i64| ((ms + step_ms - 1).div_euclid(step_ms)).max(0) as usize;
            let a = ceil(hour.max(t0) - t0);
            let b = ceil(hour + hour_ms - t0).min(n);
            let sum: f64 = s[a..b].iter().map(|v| v.abs()).sum();
            hour_abs = (hour, sum / (b - a).max(1) as f64);
        }
        let sw = &s[k0..k0 + per_window];
        let mut best = (f64::NEG_INFINITY, 0usize);
        for d in 0..=max_shift {
            let c = correlation(sw, &r[k0 + d..k0 + d + per_window]);
            if c > best.0 {
                best = (c, d);
            }
        }
        let accuracy = best.0.max(0.0);
        let delay = ((best.1 as f64 - max_shift as f64) / max_shift as f64).abs();
        let mean_err = sw
            .iter()
            .zip(&r[k0..k0 + per_window])
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / per_window as f64;
        let precision = if hour_abs.1 > 0.0 {
            (1.0 - mean_err / hour_abs.1).clamp(0.0, 1.0)
        } else if mean_err == 0.0 {
            1.0
        } else {
            0.0
        };
        let score = WindowScore {
            start: ms_to_time(w_start)?,
            accuracy,
            delay,
            precision,
            composite: (accuracy + delay + precision) / 3.0,
            best_delay: TimeDelta::milliseconds(best.1 as i64 * step_ms),
        };
        windows.push(score);
        let hour_start = ms_to_time(hour)?;
        match hours.last_mut() {
            Some(h) if h.start == hour_start => h.windows += 1,
            _ => hours.push(HourScore {
                start: hour_start,
                windows: 1,
                accuracy: 0.0,
                delay: 0.0,
                precision: 0.0,
                composite: 0.0,
                mileage: 0.0,
                scored: TimeDelta::zero(),
            }),
        }
        if let Some(h) = hours.last_mut() {
            h.accuracy += accuracy;
            h.delay += delay;
            h.precision += precision;
            h.composite += score.composite;
            h.scored += TimeDelta::milliseconds(window_ms);
        }
        w_start += window_ms;
    }
    if windows.is_empty() {
        return Err(MvError::NotEnoughSamples {
            what: "10-s points in a whole scoring window and its delay search",
            found: n,
            needed: per_window + max_shift,
        });
    }
    let mut mileage = 0.0;
    for h in &mut hours {
        let k = h.windows as f64;
        h.accuracy /= k;
        h.delay /= k;
        h.precision /= k;
        h.composite /= k;
        let a = h.start;
        let b = a
            .checked_add_signed(TimeDelta::hours(1))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let from = signal.partition_point(|x| x.at < a).max(1);
        let to = signal.partition_point(|x| x.at < b);
        h.mileage = (from..to)
            .map(|i| (signal[i].value - signal[i - 1].value).abs())
            .sum();
        mileage += h.mileage;
    }
    let k = windows.len() as f64;
    let mean = |f: fn(&WindowScore) -> f64| windows.iter().map(f).sum::<f64>() / k;
    Ok(RegulationScore {
        accuracy: mean(|w| w.accuracy),
        delay: mean(|w| w.delay),
        precision: mean(|w| w.precision),
        composite: mean(|w| w.composite),
        mileage,
        hours,
        windows,
        truncated_windows,
    })
}
