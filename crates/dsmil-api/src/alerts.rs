//! `GET /api/alerts`: active alerts, recent changes, automatic responses, counters, event rates
//! and the thresholds in force.

use chrono::{DateTime, Utc};
use dsmil_core::{AlertLevel, PerformanceAlert};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /api/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alerts {
    /// Alerts active now.
    pub active: Vec<ActiveAlert>,
    /// Recent changes, oldest first (bounded).
    pub history: Vec<AlertTransition>,
    /// Automatic responses in force.
    pub responses: ResponseStatus,
    /// Counters since start.
    pub counters: AlertCounters,
    /// Event rates over the sliding window.
    pub rates: EventRates,
    /// The thresholds in force (`[alerts]`).
    pub thresholds: Thresholds,
}

/// An alert that is active now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActiveAlert {
    /// The alert at its current level.
    pub alert: PerformanceAlert,
    /// When it was first raised.
    pub raised_at: DateTime<Utc>,
    /// The latest value of its metric.
    pub latest_value: f64,
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertChange {
    /// A new alert.
    Raised,
    /// It went to a higher level.
    Escalated,
    /// It went to a lower level.
    DeEscalated,
    /// It cleared.
    Resolved,
}

/// One change of one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertTransition {
    /// What happened.
    pub change: AlertChange,
    /// The level before (none for a new alert).
    pub previous_level: Option<AlertLevel>,
    /// The alert after the change.
    pub alert: PerformanceAlert,
}

/// Automatic responses in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResponseStatus {
    /// Agent concurrency and accelerator scale reduced for temperature.
    pub thermal_throttled: bool,
    /// Non-critical workflows paused for CPU.
    pub non_critical_paused: bool,
    /// The emergency stop is in force.
    pub emergency_active: bool,
    /// Why the emergency stop was taken.
    pub emergency_reason: Option<String>,
}

/// Alerts raised, by level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LevelCounts {
    /// At info level.
    pub info: u64,
    /// At warning level.
    pub warning: u64,
    /// At critical level.
    pub critical: u64,
    /// At emergency level.
    pub emergency: u64,
}

/// What the alert engine has done since start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertCounters {
    /// Alerts raised, by level.
    pub raised: LevelCounts,
    /// Escalations.
    pub escalated: u64,
    /// De-escalations.
    pub de_escalated: u64,
    /// Resolutions.
    pub resolved: u64,
    /// Automatic responses taken.
    pub automatic_responses: u64,
    /// Automatic responses reversed.
    pub reversals: u64,
    /// Emergency stops.
    pub emergencies: u64,
    /// Responses whose port call failed.
    pub port_errors: u64,
}

/// Event rates over the sliding window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventRates {
    /// The window, seconds.
    pub window_seconds: f64,
    /// Agent tasks that completed.
    pub agent_completions: u64,
    /// Agent tasks that failed.
    pub agent_failures: u64,
    /// Failures over outcomes (none without outcomes).
    pub agent_failure_rate: Option<f64>,
    /// Timed outcomes.
    pub agent_response_samples: u64,
    /// Mean response time, ms.
    pub agent_response_time_mean_ms: Option<f64>,
    /// 95th percentile response time, ms.
    pub agent_response_time_p95_ms: Option<f64>,
    /// Security events.
    pub security_events: u64,
    /// Security events per minute.
    pub security_events_per_minute: f64,
}

/// A warning/critical pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Levels {
    /// Warning at or above.
    pub warning: f64,
    /// Critical at or above.
    pub critical: f64,
}

/// Temperature thresholds, °C.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ThermalLevels {
    /// Warning at or above.
    pub warning: f64,
    /// Critical at or above.
    pub critical: f64,
    /// Emergency at or above.
    pub emergency: f64,
}

/// The thresholds in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Thresholds {
    /// CPU usage, %.
    pub cpu_percent: Levels,
    /// Memory usage, %.
    pub memory_percent: Levels,
    /// Disk usage, %.
    pub disk_percent: Levels,
    /// Temperature, °C.
    pub thermal_celsius: ThermalLevels,
    /// Agent failure rate, 0–1.
    pub agent_failure_rate: Levels,
    /// Agent response time, ms.
    pub agent_response_time_ms: Levels,
    /// Security events per minute.
    pub security_events_per_minute: Levels,
    /// Lost cluster nodes (in a cluster).
    pub cluster_nodes_lost: Levels,
    /// Agents without a live host (in a cluster).
    pub cluster_agents_unhosted: Levels,
    /// Seconds a condition must hold before its alert fires.
    pub for_seconds: u64,
    /// How far below a threshold a value must fall to resolve, as a fraction of it.
    pub hysteresis_fraction: f64,
}
