//! High-rate capture of the facility's response to an event, for its response time.

use super::*;

#[derive(Debug)]
pub(super) struct Capture {
    pub(super) event_id: u64,
    pub(super) from: DateTime<Utc>,
    pub(super) samples: Vec<Sample<Power>>,
}

impl<C: Clock> Orchestrator<C> {
    pub(super) async fn begin_capture(&mut self, event_id: u64, at: DateTime<Utc>) {
        let streams = self.all_devices.iter().all(|d| d.samples.is_some());
        let mut capture = Capture {
            event_id,
            from: at,
            samples: Vec::new(),
        };
        if !streams {
            // Polling: one sample just before the instruction, then every capture step.
            if let Some(p) = self.instant_facility_power().await {
                capture.samples.push(Sample {
                    at: at - TimeDelta::milliseconds(1),
                    value: p,
                });
            }
            self.schedule(
                at + self.options.capture_step,
                Task::CapturePoll { event_id },
            );
        }
        self.capture = Some(capture);
        self.schedule(at + self.options.capture, Task::CaptureEnd { event_id });
    }

    pub(super) async fn instant_facility_power(&self) -> Option<Power> {
        let reads = join_all(self.all_devices.iter().map(|d| {
            let dev = d.device.clone();
            async move { dev.telemetry().await }
        }))
        .await;
        let mut it = Power::ZERO;
        for r in reads {
            it += r.ok()?.power_instant?;
        }
        self.facility.facility_power(it)
    }

    pub(super) async fn finish_capture(&mut self, event_id: u64) {
        let Some(mut capture) = self.capture.take().filter(|c| c.event_id == event_id) else {
            return;
        };
        if self.all_devices.iter().all(|d| d.samples.is_some()) {
            let since = capture.from - TimeDelta::milliseconds(500);
            let reads = join_all(
                self.all_devices
                    .iter()
                    .filter_map(|d| d.samples.clone())
                    .map(|s| async move { s.power_samples_since(Some(since)).await }),
            )
            .await;
            // Every device's samples on one grid, added up where all of them reported.
            let streams = reads.into_iter().map(|r| {
                r.unwrap_or_default().into_iter().map(|s| Sample {
                    at: s.at,
                    value: s.power,
                })
            });
            capture.samples =
                gridflex_mv::response::sum_on_grid(streams, self.options.capture_step)
                    .into_iter()
                    .filter_map(|s| {
                        Some(Sample {
                            at: s.at,
                            value: self.facility.facility_power(s.value)?,
                        })
                    })
                    .collect();
        }
        capture.samples.sort_by_key(|s| s.at);
        capture.samples.dedup_by_key(|s| s.at);
        self.capture = Some(capture);
    }
}
