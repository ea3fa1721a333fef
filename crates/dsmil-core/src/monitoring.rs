//! Monitoring vocabulary (seed layer 5): alert levels, metric types, the metric records the
//! dashboard streams, alerts, and alert thresholds with the seed's defaults.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::{AgentId, WorkflowId};
use crate::workflow::{Metadata, ResourceUsage};

/// Severity of an alert or security event, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    /// For information.
    Info,
    /// Needs attention.
    Warning,
    /// Needs action now; automatic responses run.
    Critical,
    /// The system protects itself (emergency stop).
    Emergency,
}

/// Kinds of metric the monitor collects and clients subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    /// CPU, memory, disk, network, thermal, load.
    SystemHealth,
    /// Agent task starts, completions, failures.
    AgentActivity,
    /// Security and audit events.
    SecurityEvent,
    /// DSMIL device events.
    DsmilDevice,
    /// TPM operations.
    TpmEvent,
    /// Accelerator throughput and scaling.
    Avx512Performance,
    /// Workflow state changes.
    WorkflowCoordination,
}

impl MetricType {
    /// Every metric type, in declaration order.
    pub const ALL: [MetricType; 7] = [
        MetricType::SystemHealth,
        MetricType::AgentActivity,
        MetricType::SecurityEvent,
        MetricType::DsmilDevice,
        MetricType::TpmEvent,
        MetricType::Avx512Performance,
        MetricType::WorkflowCoordination,
    ];
}

/// Temperatures summarised over every sensor found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct ThermalState {
    /// Hottest sensor, °C.
    pub max_temp: f64,
    /// Mean over sensors, °C.
    pub avg_temp: f64,
    /// Coolest sensor, °C.
    pub min_temp: f64,
    /// How many sensors were read (0: none found, the temperatures are meaningless).
    pub sensor_count: u32,
}

/// One system health sample (seed `SystemHealthMetrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemHealth {
    /// When it was taken.
    pub timestamp: DateTime<Utc>,
    /// CPU busy share over the last interval, 0–100.
    pub cpu_usage_percent: f64,
    /// Memory in use, 0–100.
    pub memory_usage_percent: f64,
    /// Disk space in use on the data dir's filesystem, 0–100.
    pub disk_usage_percent: f64,
    /// Bytes sent on all interfaces since boot.
    pub network_io_bytes_sent: u64,
    /// Bytes received on all interfaces since boot.
    pub network_io_bytes_recv: u64,
    /// Temperatures.
    pub thermal_state: ThermalState,
    /// 1, 5 and 15 minute load averages.
    pub load_average: [f64; 3],
    /// Seconds since boot.
    pub uptime_seconds: u64,
}

/// What an agent did (seed `AgentActivityMetrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityType {
    /// A task started on the agent.
    TaskStart,
    /// A task finished successfully.
    TaskComplete,
    /// A task failed (after its retries).
    TaskFail,
}

/// One agent activity record (seed `AgentActivityMetrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentActivity {
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// The agent.
    pub agent_id: AgentId,
    /// The workflow the task belongs to.
    pub workflow_id: WorkflowId,
    /// Start, completion or failure.
    pub activity_type: ActivityType,
    /// Duration, for completions and failures.
    pub duration_ms: Option<u64>,
    /// Whether the task succeeded.
    pub success: bool,
    /// Failure reason.
    pub error_message: Option<String>,
    /// Resources used.
    #[serde(default)]
    pub resource_usage: ResourceUsage,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: Metadata,
}

/// A security or audit event (seed `SecurityEventMetrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityEvent {
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// What happened: `tpm_operation`, `dsmil_access`, `intrusion_detected`, `quarantine_violation`, …
    pub event_type: String,
    /// How severe it is.
    pub severity: AlertLevel,
    /// Which component reported it (`tpm`, `coord`, `monitor`, …).
    pub source_component: String,
    /// Human-readable description (never secrets).
    pub description: String,
    /// Hex signature of the audit entry, once signed.
    #[serde(default)]
    pub tpm_signature: Option<String>,
    /// Affected resources (device ids, agent ids, files).
    #[serde(default)]
    pub affected_resources: Vec<String>,
    /// What was done in response.
    #[serde(default)]
    pub response_actions: Vec<String>,
}

impl SecurityEvent {
    /// A new event stamped now, with no signature, resources or responses yet.
    pub fn new(
        event_type: impl Into<String>,
        severity: AlertLevel,
        source_component: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            timestamp: Utc::now(),
            event_type: event_type.into(),
            severity,
            source_component: source_component.into(),
            description: description.into(),
            tpm_signature: None,
            affected_resources: Vec::new(),
            response_actions: Vec::new(),
        }
    }
}

/// A threshold alert (seed `PerformanceAlert`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceAlert {
    /// Stable id of the alert while it is active.
    pub alert_id: String,
    /// When it was raised.
    pub timestamp: DateTime<Utc>,
    /// Its level.
    pub alert_level: AlertLevel,
    /// The metric family.
    pub metric_type: MetricType,
    /// The metric (`cpu_usage_percent`, …).
    pub metric_name: String,
    /// The value that crossed the threshold.
    pub current_value: f64,
    /// The threshold crossed.
    pub threshold_value: f64,
    /// What happened.
    pub description: String,
    /// What an operator should do.
    #[serde(default)]
    pub recommended_actions: Vec<String>,
    /// Whether the condition cleared by itself.
    #[serde(default)]
    pub auto_resolved: bool,
}

/// Warning/critical pair for one metric where higher is worse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    /// Value at or above which a warning is raised.
    pub warning: f64,
    /// Value at or above which a critical alert is raised.
    pub critical: f64,
}

impl Levels {
    /// The level `value` reaches, if any.
    pub fn classify(&self, value: f64) -> Option<AlertLevel> {
        if value >= self.critical {
            Some(AlertLevel::Critical)
        } else if value >= self.warning {
            Some(AlertLevel::Warning)
        } else {
            None
        }
    }
}

/// Thermal thresholds, °C: warning, critical and emergency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThermalLevels {
    /// Warning at or above, °C. Default: 85.
    pub warning: f64,
    /// Critical at or above, °C. Default: 95.
    pub critical: f64,
    /// Emergency at or above, °C. Default: 100.
    pub emergency: f64,
}

impl ThermalLevels {
    /// The level `celsius` reaches, if any.
    pub fn classify(&self, celsius: f64) -> Option<AlertLevel> {
        if celsius >= self.emergency {
            Some(AlertLevel::Emergency)
        } else if celsius >= self.critical {
            Some(AlertLevel::Critical)
        } else if celsius >= self.warning {
            Some(AlertLevel::Warning)
        } else {
            None
        }
    }
}

/// Alert thresholds with the seed's defaults (`AlertThresholds`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertThresholds {
    /// CPU usage, %. Default: 80 / 95.
    pub cpu_percent: Levels,
    /// Memory usage, %. Default: 85 / 95.
    pub memory_percent: Levels,
    /// Disk usage, %. Default: 80 / 90.
    pub disk_percent: Levels,
    /// Temperature, °C. Default: 85 / 95 / 100.
    pub thermal_celsius: ThermalLevels,
    /// Agent failure rate, 0–1. Default: 0.10 / 0.25.
    pub agent_failure_rate: Levels,
    /// Agent response time, ms. Default: 5000 / 10000.
    pub agent_response_time_ms: Levels,
    /// Security events per minute. Default: 10 / 50.
    pub security_events_per_minute: Levels,
    /// How long a condition must hold before its alert fires, seconds. Default: 0 (at once).
    pub for_seconds: u64,
    /// How far below a threshold a value must fall before the alert resolves, as a fraction of
    /// the threshold. Default: 0.05 (5 %).
    pub hysteresis_fraction: f64,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            cpu_percent: Levels {
                warning: 80.0,
                critical: 95.0,
            },
            memory_percent: Levels {
                warning: 85.0,
                critical: 95.0,
            },
            disk_percent: Levels {
                warning: 80.0,
                critical: 90.0,
            },
            thermal_celsius: ThermalLevels {
                warning: 85.0,
                critical: 95.0,
                emergency: 100.0,
            },
            agent_failure_rate: Levels {
                warning: 0.10,
                critical: 0.25,
            },
            agent_response_time_ms: Levels {
                warning: 5000.0,
                critical: 10000.0,
            },
            security_events_per_minute: Levels {
                warning: 10.0,
                critical: 50.0,
            },
            for_seconds: 0,
            hysteresis_fraction: 0.05,
        }
    }
}

/// A threshold setting that makes no sense.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{field}: {reason}")]
pub struct ThresholdError {
    /// Path of the field, e.g. `alerts.cpu_percent.critical`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl AlertThresholds {
    /// Checks every pair is finite, non-negative and ordered (warning < critical < emergency),
    /// percentages stay within 0–100 and rates within 0–1. `prefix` is prepended to field paths.
    pub fn validate(&self, prefix: &str) -> Result<(), ThresholdError> {
        let err = |field: &str, reason: String| ThresholdError {
            field: format!("{prefix}{field}"),
            reason,
        };
        let pairs: [(&str, &Levels, f64); 7] = [
            ("cpu_percent", &self.cpu_percent, 100.0),
            ("memory_percent", &self.memory_percent, 100.0),
            ("disk_percent", &self.disk_percent, 100.0),
            ("agent_failure_rate", &self.agent_failure_rate, 1.0),
            (
                "agent_response_time_ms",
                &self.agent_response_time_ms,
                f64::MAX,
            ),
            (
                "security_events_per_minute",
                &self.security_events_per_minute,
                f64::MAX,
            ),
            (
                "thermal_celsius",
                &Levels {
                    warning: self.thermal_celsius.warning,
                    critical: self.thermal_celsius.critical,
                },
                200.0,
            ),
        ];
        for (name, levels, max) in pairs {
            for (which, v) in [("warning", levels.warning), ("critical", levels.critical)] {
                if !v.is_finite() || v < 0.0 || v > max {
                    return Err(err(
                        &format!("{name}.{which}"),
                        format!("is {v}; expected a number from 0 to {max}"),
                    ));
                }
            }
            if levels.warning >= levels.critical {
                return Err(err(
                    &format!("{name}.warning"),
                    format!(
                        "is {}, which is not below critical ({})",
                        levels.warning, levels.critical
                    ),
                ));
            }
        }
        let t = self.thermal_celsius;
        if !t.emergency.is_finite() || t.emergency <= t.critical {
            return Err(err(
                "thermal_celsius.emergency",
                format!(
                    "is {}; expected a number above critical ({})",
                    t.emergency, t.critical
                ),
            ));
        }
        if !(0.0..0.5).contains(&self.hysteresis_fraction) {
            return Err(err(
                "hysteresis_fraction",
                format!("is {}; expected 0 <= value < 0.5", self.hysteresis_fraction),
            ));
        }
        Ok(())
    }
}

/// What the alert engine does on its own under pressure (seed `_handle_critical_alert`;
/// `[responses]` in dsmild's configuration): temperature critical or worse reduces agent
/// concurrency and the accelerator scale, CPU critical pauses non-critical workflows, and
/// enough critical alerts (or one at emergency level) trigger the emergency stop. Every
/// response is reversed when its condition ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponsePolicy {
    /// Whether automatic responses run at all (alerts are raised either way). Default: yes.
    pub enabled: bool,
    /// Agent concurrency factor while temperature is critical or worse. Default: 0.5.
    pub thermal_concurrency_factor: f64,
    /// Accelerator scale while temperature is critical or worse (never raised: a scale
    /// already below it is left alone). Default: 0.7.
    pub thermal_scale: f64,
    /// How many simultaneously active critical-or-worse alerts trigger the emergency stop.
    /// Default: 3.
    pub emergency_min_critical: usize,
    /// Whether a single alert at emergency level (temperature at or above its emergency
    /// threshold) triggers the emergency stop too, as `AlertLevel::Emergency` promises.
    /// Default: yes.
    pub emergency_on_emergency_level: bool,
}

impl Default for ResponsePolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            thermal_concurrency_factor: 0.5,
            thermal_scale: 0.7,
            emergency_min_critical: 3,
            emergency_on_emergency_level: true,
        }
    }
}

impl ResponsePolicy {
    /// Checks the factors are within (0, 1] and the emergency count is at least 1. `prefix`
    /// is prepended to field paths.
    pub fn validate(&self, prefix: &str) -> Result<(), ThresholdError> {
        for (name, v) in [
            (
                "thermal_concurrency_factor",
                self.thermal_concurrency_factor,
            ),
            ("thermal_scale", self.thermal_scale),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 1.0) {
                return Err(ThresholdError {
                    field: format!("{prefix}{name}"),
                    reason: format!("is {v}; expected a number above 0 up to 1"),
                });
            }
        }
        if self.emergency_min_critical == 0 {
            return Err(ThresholdError {
                field: format!("{prefix}emergency_min_critical"),
                reason: "is 0; expected at least 1".into(),
            });
        }
        Ok(())
    }
}

/// Limits of the live WebSocket stream (`[websocket]` in dsmild's configuration): how many
/// clients, how far one may fall behind, how large a message it may send, and the keep-alive
/// timings. The defaults suit a dashboard on a LAN; the bounds keep one client from costing
/// more than `queue_depth` messages of memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketLimits {
    /// Most clients at once; more are refused (close 1013). Default: 10,000.
    pub max_clients: usize,
    /// Messages a client may have waiting before it is closed as too slow. Default: 256.
    pub queue_depth: usize,
    /// Largest message a client may send, bytes. Default: 65,536.
    pub max_message_bytes: usize,
    /// How often the server pings each client, seconds. Default: 15.
    pub ping_interval_seconds: u64,
    /// A client silent to pings this long is closed, seconds. Default: 45.
    pub pong_timeout_seconds: u64,
    /// A write blocked this long ends the connection, milliseconds. Default: 5,000.
    pub write_timeout_ms: u64,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        Self {
            max_clients: 10_000,
            queue_depth: 256,
            max_message_bytes: 64 * 1024,
            ping_interval_seconds: 15,
            pong_timeout_seconds: 45,
            write_timeout_ms: 5_000,
        }
    }
}

impl WebSocketLimits {
    /// Checks every limit is in its range and the pong timeout outlasts the ping interval.
    /// `prefix` is prepended to field paths.
    pub fn validate(&self, prefix: &str) -> Result<(), ThresholdError> {
        let ranges: [(&str, u64, u64, u64); 6] = [
            ("max_clients", self.max_clients as u64, 1, 1_000_000),
            ("queue_depth", self.queue_depth as u64, 1, 65_536),
            (
                "max_message_bytes",
                self.max_message_bytes as u64,
                1024,
                16 << 20,
            ),
            ("ping_interval_seconds", self.ping_interval_seconds, 1, 3600),
            ("pong_timeout_seconds", self.pong_timeout_seconds, 2, 10_800),
            ("write_timeout_ms", self.write_timeout_ms, 100, 600_000),
        ];
        for (name, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(ThresholdError {
                    field: format!("{prefix}{name}"),
                    reason: format!("is {value}; expected {min} to {max}"),
                });
            }
        }
        if self.pong_timeout_seconds <= self.ping_interval_seconds {
            return Err(ThresholdError {
                field: format!("{prefix}pong_timeout_seconds"),
                reason: format!(
                    "is {}, which is not above ping_interval_seconds ({}): every client would \
                     be closed before it could answer",
                    self.pong_timeout_seconds, self.ping_interval_seconds
                ),
            });
        }
        Ok(())
    }
}

/// Latest value per metric name, as a flat map (used in status answers and snapshots).
pub type MetricSnapshot = BTreeMap<String, f64>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds_and_valid() {
        let t = AlertThresholds::default();
        t.validate("alerts.").unwrap();
        assert_eq!(t.cpu_percent.classify(80.0), Some(AlertLevel::Warning));
        assert_eq!(t.cpu_percent.classify(95.0), Some(AlertLevel::Critical));
        assert_eq!(t.cpu_percent.classify(79.9), None);
        assert_eq!(
            t.thermal_celsius.classify(100.0),
            Some(AlertLevel::Emergency)
        );
        assert_eq!(
            t.agent_failure_rate.classify(0.25),
            Some(AlertLevel::Critical)
        );
        assert_eq!(t.security_events_per_minute.warning, 10.0);
    }

    #[test]
    fn inverted_or_out_of_range_thresholds_are_named() {
        let mut t = AlertThresholds::default();
        t.memory_percent.warning = 99.0;
        let e = t.validate("alerts.").unwrap_err();
        assert_eq!(e.field, "alerts.memory_percent.warning");
        let mut t = AlertThresholds::default();
        t.agent_failure_rate.critical = 2.0;
        assert_eq!(
            t.validate("").unwrap_err().field,
            "agent_failure_rate.critical"
        );
        let mut t = AlertThresholds::default();
        t.thermal_celsius.emergency = 90.0;
        assert_eq!(
            t.validate("").unwrap_err().field,
            "thermal_celsius.emergency"
        );
    }

    #[test]
    fn levels_order_and_serde_names() {
        assert!(AlertLevel::Emergency > AlertLevel::Critical);
        assert_eq!(
            serde_json::to_string(&MetricType::Avx512Performance).unwrap(),
            "\"avx512_performance\""
        );
        assert_eq!(
            serde_json::from_str::<AlertLevel>("\"warning\"").unwrap(),
            AlertLevel::Warning
        );
    }
}
