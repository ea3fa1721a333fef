//! The monitor's own figures for `/metrics`: WebSocket clients and messages, bus events by
//! kind, alerts by level and what they triggered, health samples and the latest sample.

use async_trait::async_trait;
use dsmil_core::AlertLevel;
use dsmil_core::ports::{MetricSet, MetricsSource};

use crate::alerts::AlertsView;
use crate::collect::CollectorHandle;
use crate::ws::Hub;

#[async_trait]
impl MetricsSource for Hub {
    async fn collect(&self, out: &mut MetricSet) {
        let s = self.stats();
        out.gauge(
            "dsmil_ws_clients",
            "WebSocket clients connected.",
            &[],
            s.clients as f64,
        );
        for (name, help, v) in [
            (
                "dsmil_ws_connections_total",
                "WebSocket connections accepted.",
                s.connections_total,
            ),
            (
                "dsmil_ws_slow_disconnects_total",
                "Clients dropped for falling behind.",
                s.slow_disconnects_total,
            ),
            (
                "dsmil_ws_messages_total",
                "Messages sent to WebSocket clients.",
                s.messages_total,
            ),
            (
                "dsmil_ws_protocol_errors_total",
                "Client messages answered with an error.",
                s.protocol_errors_total,
            ),
        ] {
            out.counter(name, help, &[], v as f64);
        }
    }
}

#[async_trait]
impl MetricsSource for AlertsView {
    async fn collect(&self, out: &mut MetricSet) {
        for (kind, n) in self.event_counters().by_kind() {
            out.counter(
                "dsmil_events_total",
                "Bus events seen by the monitor, by kind.",
                &[("kind", kind)],
                n as f64,
            );
        }
        let snap = self.snapshot();
        for (level, name) in [
            (AlertLevel::Warning, "warning"),
            (AlertLevel::Critical, "critical"),
            (AlertLevel::Emergency, "emergency"),
        ] {
            let active = snap
                .active
                .iter()
                .filter(|a| a.alert.alert_level == level)
                .count();
            out.gauge(
                "dsmil_alerts_active",
                "Active alerts by level.",
                &[("level", name)],
                active as f64,
            );
        }
        let c = &snap.counters;
        out.counter(
            "dsmil_alerts_resolved_total",
            "Alerts that resolved.",
            &[],
            c.resolved as f64,
        );
        out.counter(
            "dsmil_automatic_responses_total",
            "Automatic responses taken.",
            &[],
            c.automatic_responses as f64,
        );
        out.counter(
            "dsmil_emergencies_total",
            "Emergency responses.",
            &[],
            c.emergencies as f64,
        );
    }
}

#[async_trait]
impl MetricsSource for CollectorHandle {
    async fn collect(&self, out: &mut MetricSet) {
        let s = self.status();
        out.counter(
            "dsmil_health_samples_total",
            "System health samples taken.",
            &[],
            s.samples as f64,
        );
        out.counter(
            "dsmil_health_sample_failures_total",
            "System health samples that failed.",
            &[],
            s.failures as f64,
        );
        let Some(h) = s.last_sample else { return };
        for (name, help, v) in [
            (
                "dsmil_cpu_usage_ratio",
                "CPU busy, 0-1.",
                h.cpu_usage_percent / 100.0,
            ),
            (
                "dsmil_memory_usage_ratio",
                "Memory in use, 0-1.",
                h.memory_usage_percent / 100.0,
            ),
            (
                "dsmil_disk_usage_ratio",
                "Disk in use on the data dir's filesystem, 0-1.",
                h.disk_usage_percent / 100.0,
            ),
            (
                "dsmil_load_average",
                "1-minute load average.",
                h.load_average[0],
            ),
        ] {
            out.gauge(name, help, &[], v);
        }
        if h.thermal_state.sensor_count > 0 {
            out.gauge(
                "dsmil_temperature_max_celsius",
                "Hottest sensor, °C.",
                &[],
                h.thermal_state.max_temp,
            );
        }
    }
}
