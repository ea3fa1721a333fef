//! The TPM layer's figures for `/metrics`: operations by result, errors by kind, a latency
//! histogram per operation, whether keys are hardware-rooted; and the audit log's size.

use async_trait::async_trait;
use dsmil_core::ports::{MetricSet, MetricsSource};

use crate::audit::AuditLog;
use crate::tpm::Tpm;

/// Bucket bounds of the latency histograms, seconds.
pub const LATENCY_BOUNDS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0,
];

#[async_trait]
impl MetricsSource for Tpm {
    async fn collect(&self, out: &mut MetricSet) {
        let caps = self.capabilities();
        out.gauge(
            "dsmil_tpm_hardware_rooted",
            "1 when keys live in a hardware TPM, 0 for the software TPM and swtpm.",
            &[("backend", &caps.backend)],
            f64::from(u8::from(caps.hardware_rooted)),
        );
        let c = self.perf_snapshot().counters;
        for (result, v) in [
            ("success", c.successful_operations),
            ("failure", c.failed_operations),
        ] {
            out.counter(
                "dsmil_tpm_operations_total",
                "TPM operations by result.",
                &[("result", result)],
                v as f64,
            );
        }
        for (kind, v) in [
            ("timeout", c.timeout_errors),
            ("hardware", c.hardware_errors),
            ("policy_violation", c.policy_violations),
            ("auth_failure", c.authentication_failures),
        ] {
            out.counter(
                "dsmil_tpm_errors_total",
                "TPM errors by kind.",
                &[("kind", kind)],
                v as f64,
            );
        }
        for (op, h) in self.perf().histograms() {
            let name = serde_json::to_value(op)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let buckets = LATENCY_BOUNDS
                .iter()
                .map(|s| (*s, h.count_at_most_us((s * 1e6) as u64)))
                .collect();
            out.histogram(
                "dsmil_tpm_operation_duration_seconds",
                "TPM operation latency.",
                &[("operation", &name)],
                buckets,
                h.sum_us() as f64 / 1e6,
                h.count(),
            );
        }
    }
}

#[async_trait]
impl MetricsSource for AuditLog {
    async fn collect(&self, out: &mut MetricSet) {
        out.gauge(
            "dsmil_audit_entries",
            "Entries in the audit log.",
            &[],
            self.len() as f64,
        );
        out.gauge(
            "dsmil_audit_signed_entries",
            "Entries covered by a signed checkpoint.",
            &[],
            self.signed() as f64,
        );
    }
}
