//! Monitoring vocabulary (seed layer 5) that crosses layers: alert levels, metric types, and
//! the records every layer publishes and the dashboard streams (health samples, agent
//! activity, security events, alerts). Thresholds and responses are `dsmil-monitor`'s.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{AgentId, WorkflowId};
use crate::workflow::{Metadata, ResourceUsage};

/// Severity of an alert or security event, in increasing order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
    #[schema(value_type = Object)]
    pub metadata: Metadata,
}

/// A security or audit event (seed `SecurityEventMetrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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

#[cfg(test)]
mod tests {
    use super::*;

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
