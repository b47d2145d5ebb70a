//! [`SimGpuSpec`]: the parameters of a simulated GPU, with H100-SXM defaults taken from
//! `calibration/README.md` (measured) and `reference/gpu-power.md` (literature).
//!
//! Every default says where it comes from; the ones marked *assumption* were not
//! measured and are the knobs to revisit when better data arrives.

use std::time::Duration;

use gridflex_core::{Power, power};

use crate::{HalError, Megahertz, PowerLimits};

/// Optional seeded noise on the reported power (telemetry and samples), never on the
/// physical power, energy or throughput.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimNoise {
    /// Seed; the same seed gives the same noise for the same readings.
    pub seed: u64,
    /// Standard deviation of the additive noise.
    pub sigma: Power,
}

/// Parameters of a simulated GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct SimGpuSpec {
    /// Model name reported in [`DeviceInfo`](crate::DeviceInfo).
    pub model: String,
    /// Limit range and default. H100 SXM: 200 / 700 / 700 W (calibration, NVML).
    pub limits: PowerLimits,
    /// The limit in force when the GPU is "discovered" (what restore goes back to).
    /// Default: the default limit (the calibration GPU had 700 W enforced).
    pub initial_limit: Power,
    /// Idle power with no CUDA context: 84 W (calibration).
    pub idle_no_context: Power,
    /// Idle power with a context loaded, and power of a paused (SIGSTOP) process: 125 W
    /// (calibration: 120 to 145 W; the pause step ended at 122 to 125 W).
    pub idle_with_context: Power,
    /// Highest SM clock: 1980 MHz (calibration).
    pub max_sm_clock: Megahertz,
    /// Lowest SM clock a lock may ask for: 345 MHz (*assumption*: H100 lowest supported graphics clock).
    pub min_sm_clock: Megahertz,
    /// SM clock with no context: 885 MHz (calibration idle).
    pub idle_sm_clock: Megahertz,
    /// SM clock of a cap-bound compute load at the maximum limit: 1400 MHz (calibration:
    /// 1365 to 1410 MHz at the 700 W cap).
    pub loaded_sm_clock: Megahertz,
    /// Delay between a workload change (pause, resume, start, stop) and the first power
    /// change: 7.0 ms. With [`SimGpuSpec::response_time_constant`] it puts half of a pause
    /// step at 16.8 ms and 90 % at 39.7 ms (measured: 17 ms and 40 ms; calibration, "Process-level curtailment").
    pub response_dead_time: Duration,
    /// First-order time constant of the power after a workload change: 14.2 ms (fitted, see above).
    pub response_time_constant: Duration,
    /// Power overshoot after a resume or start, as a factor of the settled power: 1.3
    /// (calibration: resume overshoots to 930 W, 1.3x, for about 50 ms; load start shows
    /// 840 W peaks).
    pub resume_overshoot: f64,
    /// How long the overshoot target holds: 60 ms, which keeps power above 1.1x for
    /// about 50 ms with the response above (calibration).
    pub resume_overshoot_window: Duration,
    /// First-order time constant with which the physical cap follows a new limit: 100 ms
    /// (*assumption*: the calibration changed no limit; GridPilot measured 97 ms
    /// trigger-to-target on V100, gpu-power.md section 2).
    pub cap_time_constant: Duration,
    /// Update period of the instant and averaged power and of the energy counter: 100 ms (calibration).
    pub telemetry_period: Duration,
    /// Window of the averaged power: 1 s (nvml.h: `power_usage` is a 1 s average on
    /// Hopper; the calibration's pause step takes 1 s to pass through it). A multiple of
    /// the telemetry period, at most 64 periods.
    pub average_window: Duration,
    /// Period of the high-rate sample ring: 20 ms (calibration: about 20 ms, 7 to 45 ms apart).
    pub sample_period: Duration,
    /// Samples the ring keeps: 120 (calibration: nvidia-smi shows about 120 over 2.4 s).
    pub sample_ring_len: usize,
    /// Optional seeded noise on reported power; `None` by default.
    pub noise: Option<SimNoise>,
}

impl SimGpuSpec {
    /// An H100 SXM 80 GB calibrated to `calibration/README.md`.
    pub fn h100_sxm() -> Self {
        Self {
            model: "NVIDIA H100 80GB HBM3 (simulated)".to_owned(),
            limits: PowerLimits::unchecked(power!(200 W), power!(700 W), power!(700 W)),
            initial_limit: power!(700 W),
            idle_no_context: power!(84 W),
            idle_with_context: power!(125 W),
            max_sm_clock: Megahertz(1980),
            min_sm_clock: Megahertz(345),
            idle_sm_clock: Megahertz(885),
            loaded_sm_clock: Megahertz(1400),
            response_dead_time: Duration::from_micros(7_000),
            response_time_constant: Duration::from_micros(14_200),
            resume_overshoot: 1.3,
            resume_overshoot_window: Duration::from_millis(60),
            cap_time_constant: Duration::from_millis(100),
            telemetry_period: Duration::from_millis(100),
            average_window: Duration::from_secs(1),
            sample_period: Duration::from_millis(20),
            sample_ring_len: 120,
            noise: None,
        }
    }

    /// The same spec with seeded noise of standard deviation `sigma` on reported power.
    pub fn with_noise(mut self, seed: u64, sigma: Power) -> Self {
        self.noise = Some(SimNoise { seed, sigma });
        self
    }

    /// Checks the parameters; [`SimGpu::new`](super::SimGpu::new) calls this.
    pub fn validate(&self) -> Result<(), HalError> {
        let bad =
            |field: &'static str, reason: String| Err(HalError::InvalidConfig { field, reason });
        if !self.limits.contains(self.initial_limit) {
            return bad(
                "initial_limit",
                format!("{} is outside the limit range", self.initial_limit),
            );
        }
        if self.idle_no_context.is_negative() || self.idle_with_context.is_negative() {
            return bad("idle power", "must not be negative".into());
        }
        if !(self.min_sm_clock <= self.idle_sm_clock
            && self.min_sm_clock <= self.loaded_sm_clock
            && self.loaded_sm_clock <= self.max_sm_clock
            && self.idle_sm_clock <= self.max_sm_clock
            && self.min_sm_clock.get() > 0)
        {
            return bad("sm clocks", "need 0 < min <= idle, loaded <= max".into());
        }
        if !(self.resume_overshoot.is_finite() && (1.0..=3.0).contains(&self.resume_overshoot)) {
            return bad(
                "resume_overshoot",
                format!("must be in 1 ..= 3, got {}", self.resume_overshoot),
            );
        }
        for (field, d) in [
            ("response_time_constant", self.response_time_constant),
            ("cap_time_constant", self.cap_time_constant),
            ("telemetry_period", self.telemetry_period),
            ("sample_period", self.sample_period),
        ] {
            if d.is_zero() {
                return bad(field, "must be positive".into());
            }
        }
        let period = self.telemetry_period.as_nanos();
        let window = self.average_window.as_nanos();
        if window == 0 || !window.is_multiple_of(period) || window / period > 64 {
            return bad(
                "average_window",
                "must be 1 to 64 whole telemetry periods".into(),
            );
        }
        if !(1..=65_536).contains(&self.sample_ring_len) {
            return bad(
                "sample_ring_len",
                format!("must be 1 ..= 65536, got {}", self.sample_ring_len),
            );
        }
        if let Some(n) = self.noise
            && n.sigma.is_negative()
        {
            return bad("noise", "sigma must not be negative".into());
        }
        Ok(())
    }
}

impl Default for SimGpuSpec {
    /// [`SimGpuSpec::h100_sxm`].
    fn default() -> Self {
        Self::h100_sxm()
    }
}
