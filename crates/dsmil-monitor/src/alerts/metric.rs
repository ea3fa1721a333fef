//! The metrics alerts watch, their threshold ladders, wording and recommended actions.

use std::fmt;

use chrono::{DateTime, Utc};
use dsmil_core::{AlertLevel, MetricType, PerformanceAlert};

use crate::config::AlertThresholds;
use serde::{Deserialize, Serialize};

/// A metric the alert engine watches. Serialises as its metric name (`cpu_usage_percent`, …),
/// which is also the `metric_name` of its alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertMetric {
    /// CPU busy share, %.
    CpuUsagePercent,
    /// Memory in use, %.
    MemoryUsagePercent,
    /// Disk space in use on the data directory's filesystem, %.
    DiskUsagePercent,
    /// Hottest sensor, °C (only watched when there is at least one sensor).
    ThermalMaxCelsius,
    /// Share of agent tasks that failed over the rate window, 0–1.
    AgentFailureRate,
    /// Mean agent task duration over the rate window, ms.
    AgentResponseTimeMs,
    /// Security events per minute over the rate window.
    SecurityEventsPerMinute,
    /// Cluster nodes whose heartbeat has been missing for three leases.
    ClusterNodesLost,
    /// Agents a node hosted that no live node hosts now.
    ClusterAgentsUnhosted,
}

impl AlertMetric {
    /// Every metric, in declaration order.
    pub const ALL: [AlertMetric; 9] = [
        AlertMetric::CpuUsagePercent,
        AlertMetric::MemoryUsagePercent,
        AlertMetric::DiskUsagePercent,
        AlertMetric::ThermalMaxCelsius,
        AlertMetric::AgentFailureRate,
        AlertMetric::AgentResponseTimeMs,
        AlertMetric::SecurityEventsPerMinute,
        AlertMetric::ClusterNodesLost,
        AlertMetric::ClusterAgentsUnhosted,
    ];

    /// The metric name used in alerts and on the wire.
    pub fn name(self) -> &'static str {
        match self {
            AlertMetric::CpuUsagePercent => "cpu_usage_percent",
            AlertMetric::MemoryUsagePercent => "memory_usage_percent",
            AlertMetric::DiskUsagePercent => "disk_usage_percent",
            AlertMetric::ThermalMaxCelsius => "thermal_max_celsius",
            AlertMetric::AgentFailureRate => "agent_failure_rate",
            AlertMetric::AgentResponseTimeMs => "agent_response_time_ms",
            AlertMetric::SecurityEventsPerMinute => "security_events_per_minute",
            AlertMetric::ClusterNodesLost => "cluster_nodes_lost",
            AlertMetric::ClusterAgentsUnhosted => "cluster_agents_unhosted",
        }
    }

    /// The metric family its alerts belong to (what WebSocket clients subscribe to).
    pub fn metric_type(self) -> MetricType {
        match self {
            AlertMetric::CpuUsagePercent
            | AlertMetric::MemoryUsagePercent
            | AlertMetric::DiskUsagePercent
            | AlertMetric::ThermalMaxCelsius
            | AlertMetric::ClusterNodesLost => MetricType::SystemHealth,
            AlertMetric::AgentFailureRate
            | AlertMetric::AgentResponseTimeMs
            | AlertMetric::ClusterAgentsUnhosted => MetricType::AgentActivity,
            AlertMetric::SecurityEventsPerMinute => MetricType::SecurityEvent,
        }
    }

    /// Its thresholds, lowest level first.
    pub(crate) fn ladder(self, t: &AlertThresholds) -> Ladder {
        let levels = match self {
            AlertMetric::CpuUsagePercent => t.cpu_percent,
            AlertMetric::MemoryUsagePercent => t.memory_percent,
            AlertMetric::DiskUsagePercent => t.disk_percent,
            AlertMetric::AgentFailureRate => t.agent_failure_rate,
            AlertMetric::AgentResponseTimeMs => t.agent_response_time_ms,
            AlertMetric::SecurityEventsPerMinute => t.security_events_per_minute,
            AlertMetric::ClusterNodesLost => t.cluster_nodes_lost,
            AlertMetric::ClusterAgentsUnhosted => t.cluster_agents_unhosted,
            AlertMetric::ThermalMaxCelsius => {
                let th = t.thermal_celsius;
                return Ladder {
                    steps: [
                        (AlertLevel::Warning, th.warning),
                        (AlertLevel::Critical, th.critical),
                        (AlertLevel::Emergency, th.emergency),
                    ],
                    len: 3,
                };
            }
        };
        Ladder {
            steps: [
                (AlertLevel::Warning, levels.warning),
                (AlertLevel::Critical, levels.critical),
                (AlertLevel::Emergency, f64::INFINITY),
            ],
            len: 2,
        }
    }

    fn label(self) -> &'static str {
        match self {
            AlertMetric::CpuUsagePercent => "CPU usage",
            AlertMetric::MemoryUsagePercent => "Memory usage",
            AlertMetric::DiskUsagePercent => "Disk usage",
            AlertMetric::ThermalMaxCelsius => "Temperature",
            AlertMetric::AgentFailureRate => "Agent failure rate",
            AlertMetric::AgentResponseTimeMs => "Agent response time",
            AlertMetric::SecurityEventsPerMinute => "Security event rate",
            AlertMetric::ClusterNodesLost => "Lost cluster nodes",
            AlertMetric::ClusterAgentsUnhosted => "Agents without a live host",
        }
    }

    /// `value` in the metric's unit, for descriptions.
    pub(crate) fn format_value(self, value: f64) -> String {
        match self {
            AlertMetric::CpuUsagePercent
            | AlertMetric::MemoryUsagePercent
            | AlertMetric::DiskUsagePercent => format!("{value:.1} %"),
            AlertMetric::ThermalMaxCelsius => format!("{value:.1} °C"),
            AlertMetric::AgentFailureRate => format!("{:.1} %", value * 100.0),
            AlertMetric::AgentResponseTimeMs => format!("{value:.0} ms"),
            AlertMetric::SecurityEventsPerMinute => format!("{value:.1} events/min"),
            AlertMetric::ClusterNodesLost => format!("{value:.0} nodes"),
            AlertMetric::ClusterAgentsUnhosted => format!("{value:.0} agents"),
        }
    }

    /// The sentence describing a value at or above `threshold` for `level`.
    pub(crate) fn describe_crossing(self, value: f64, level: AlertLevel, threshold: f64) -> String {
        format!(
            "{} is {}, at or above the {} threshold of {}",
            self.label(),
            self.format_value(value),
            level_name(level),
            self.format_value(threshold)
        )
    }

    /// The sentence describing a value that fell below `level`'s resolve point.
    pub(crate) fn describe_fall(
        self,
        value: f64,
        level: AlertLevel,
        threshold: f64,
        resolve_point: f64,
    ) -> String {
        format!(
            "{} is {}, below {} (the {} threshold of {} less hysteresis)",
            self.label(),
            self.format_value(value),
            self.format_value(resolve_point),
            level_name(level),
            self.format_value(threshold)
        )
    }

    /// An active alert on this metric at `level` (threshold `threshold`, value `value`), with
    /// the level's recommended actions.
    pub(crate) fn alert(
        self,
        alert_id: String,
        timestamp: DateTime<Utc>,
        level: AlertLevel,
        value: f64,
        threshold: f64,
        description: String,
    ) -> PerformanceAlert {
        PerformanceAlert {
            alert_id,
            timestamp,
            alert_level: level,
            metric_type: self.metric_type(),
            metric_name: self.name().to_owned(),
            current_value: value,
            threshold_value: threshold,
            description,
            recommended_actions: self.recommended_actions(level),
            auto_resolved: false,
        }
    }

    /// What an operator should do about an alert on this metric at `level`. At critical and
    /// above the automatic responses the engine takes are named too.
    pub(crate) fn recommended_actions(self, level: AlertLevel) -> Vec<String> {
        let severe = level >= AlertLevel::Critical;
        let mut actions: Vec<&str> = match self {
            AlertMetric::CpuUsagePercent => vec![
                "Identify the agents and workflows using the most CPU",
                "Reduce agent concurrency or defer non-critical workflows",
                "Check for runaway processes",
            ],
            AlertMetric::MemoryUsagePercent => vec![
                "Identify agents with growing memory use (possible leaks)",
                "Reduce the number of concurrent workflows",
                "Restart agents holding large amounts of memory",
            ],
            AlertMetric::DiskUsagePercent => vec![
                "Free space in the data directory (old logs, artefacts, exports)",
                "Compact or archive the audit log and the workflow journal",
                "Add storage before the disk fills: a full disk stops audit logging",
            ],
            AlertMetric::ThermalMaxCelsius => vec![
                "Check cooling: fans, airflow, dust, ambient temperature",
                "Reduce sustained accelerator (AVX-512) load",
            ],
            AlertMetric::AgentFailureRate => vec![
                "Inspect the failing agents' errors in the workflow journal",
                "Check the agents' dependencies (services, credentials, disk)",
                "Check for open circuit breakers",
            ],
            AlertMetric::AgentResponseTimeMs => vec![
                "Check agent queue depth and concurrency limits",
                "Look for slow dependencies of the agents",
                "Check CPU, memory and thermal alerts for a common cause",
            ],
            AlertMetric::SecurityEventsPerMinute => vec![
                "Review recent security events in the audit log",
                "Check for intrusion attempts or quarantine violations",
                "Consider locking device configuration until the cause is known",
            ],
            AlertMetric::ClusterNodesLost => vec![
                "See which nodes are lost: `dsmilctl cluster status`",
                "Check the lost hosts, their dsmild and their network path to NATS",
                "Their workflows are taken over by the live nodes; their agents' tasks wait for a host",
            ],
            AlertMetric::ClusterAgentsUnhosted => vec![
                "See which agents no live node hosts: `dsmilctl cluster status`",
                "Restart a node that hosts them, or declare them on another node",
                "Tasks for them fail after three leases without a host",
            ],
        };
        if severe {
            match self {
                AlertMetric::ThermalMaxCelsius => actions.insert(
                    0,
                    "Automatic response: agent concurrency halved and accelerator scale reduced",
                ),
                AlertMetric::CpuUsagePercent => {
                    actions.insert(0, "Automatic response: non-critical workflows paused")
                }
                _ => {}
            }
        }
        actions.into_iter().map(str::to_owned).collect()
    }
}

impl fmt::Display for AlertMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The lower-case name of a level (`warning`, …).
pub(crate) fn level_name(level: AlertLevel) -> &'static str {
    match level {
        AlertLevel::Info => "info",
        AlertLevel::Warning => "warning",
        AlertLevel::Critical => "critical",
        AlertLevel::Emergency => "emergency",
    }
}

/// A metric's thresholds, lowest level first (two or three steps).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ladder {
    steps: [(AlertLevel, f64); 3],
    len: usize,
}

impl Ladder {
    /// The (level, threshold) steps, lowest first.
    pub(crate) fn steps(&self) -> &[(AlertLevel, f64)] {
        self.steps.get(..self.len).unwrap_or(&self.steps)
    }

    /// The highest level whose threshold `value` reaches.
    pub(crate) fn classify(&self, value: f64) -> Option<(AlertLevel, f64)> {
        self.steps()
            .iter()
            .rev()
            .find(|(_, t)| value >= *t)
            .copied()
    }
}
