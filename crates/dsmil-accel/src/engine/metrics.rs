//! The engine's figures for `/metrics`: jobs, failures, bytes and busy time per operation kind,
//! the scale in force, the queue, thermal throttling.

use async_trait::async_trait;
use dsmil_core::ports::{MetricSet, MetricsSource};

use super::Engine;

#[async_trait]
impl MetricsSource for Engine {
    async fn collect(&self, out: &mut MetricSet) {
        for (kind, c) in self.counters() {
            let l = [("operation", kind)];
            out.counter(
                "dsmil_accel_operations_total",
                "Accelerator jobs run.",
                &l,
                c.ops as f64,
            );
            out.counter(
                "dsmil_accel_failures_total",
                "Accelerator jobs that failed.",
                &l,
                c.failures as f64,
            );
            out.counter(
                "dsmil_accel_bytes_total",
                "Bytes (or elements) processed.",
                &l,
                c.bytes as f64,
            );
            out.counter(
                "dsmil_accel_busy_seconds_total",
                "Time spent running jobs.",
                &l,
                c.busy_nanos as f64 / 1e9,
            );
        }
        out.gauge(
            "dsmil_accel_scale",
            "Accelerator concurrency scale (0-1).",
            &[],
            self.scale(),
        );
        out.gauge(
            "dsmil_accel_queued",
            "Accelerator jobs waiting.",
            &[],
            self.queued() as f64,
        );
        out.gauge(
            "dsmil_accel_thermal_throttled",
            "Whether the accelerator is thermally throttled.",
            &[],
            f64::from(u8::from(self.thermal_throttled())),
        );
    }
}
