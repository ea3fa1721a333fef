//! The monitor's configuration: alert thresholds (`[alerts]`, the seed's defaults), the automatic
//! responses (`[responses]`), the WebSocket limits (`[websocket]`) and the health sampling
//! interval — each field documented with its default, each section validated with errors that
//! name the field.

use std::time::Duration;

use dsmil_core::AlertLevel;
use dsmil_core::validate::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Everything the monitor is configured with, as the top-level keys and sections of dsmild's
/// configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// How often system health is sampled, milliseconds (100–3,600,000). Default: 2000.
    pub health_interval_ms: u64,
    /// Alert thresholds. Default: the seed's values.
    pub alerts: AlertThresholds,
    /// Automatic responses to critical alerts. Default: on, with the seed's factors.
    pub responses: ResponsePolicy,
    /// Limits of the live WebSocket stream. Default: the limits below.
    pub websocket: WebSocketLimits,
    /// A second listener for a local Prometheus. Default: off.
    pub metrics: MetricsEndpoint,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            health_interval_ms: 2000,
            alerts: AlertThresholds::default(),
            responses: ResponsePolicy::default(),
            websocket: WebSocketLimits::default(),
            metrics: MetricsEndpoint::default(),
        }
    }
}

/// The `[metrics]` table: an address that serves `/metrics` (only that) without the API token,
/// for a Prometheus on the same host or network segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsEndpoint {
    /// Address (IP:port) serving `GET /metrics` with no token, e.g. `127.0.0.1:9477`. Anyone
    /// who can reach it reads the metrics, so keep it on loopback or a trusted network.
    /// Default: none (off; `/metrics` on the API address needs the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "127.0.0.1:9477")]
    pub listen: Option<std::net::SocketAddr>,
}

impl MonitorConfig {
    /// The health sampling interval.
    pub fn health_interval(&self) -> Duration {
        Duration::from_millis(self.health_interval_ms)
    }

    /// Checks every section; the error names the field from the top (`alerts.cpu_percent.warning`).
    pub fn validate(&self) -> Result<(), FieldError> {
        if !(100..=3_600_000).contains(&self.health_interval_ms) {
            return Err(FieldError::new(
                "health_interval_ms",
                format!(
                    "is {}; expected 100 to 3600000 milliseconds",
                    self.health_interval_ms
                ),
            ));
        }
        if self.metrics.listen.is_some_and(|a| a.port() == 0) {
            return Err(FieldError::new(
                "metrics.listen",
                "port 0 is not allowed; choose a fixed port",
            ));
        }
        self.alerts.validate().map_err(|e| e.within("alerts."))?;
        self.responses
            .validate()
            .map_err(|e| e.within("responses."))?;
        self.websocket
            .validate()
            .map_err(|e| e.within("websocket."))?;
        Ok(())
    }
}

/// Warning/critical pair for one metric where higher is worse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
    /// Nodes of the cluster whose heartbeat has been missing for three leases (only in a
    /// cluster). Default: 1 / 2.
    pub cluster_nodes_lost: Levels,
    /// Agents some node hosted that no live node hosts now (only in a cluster). Default: 1 / 3.
    pub cluster_agents_unhosted: Levels,
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
            cluster_nodes_lost: Levels {
                warning: 1.0,
                critical: 2.0,
            },
            cluster_agents_unhosted: Levels {
                warning: 1.0,
                critical: 3.0,
            },
            for_seconds: 0,
            hysteresis_fraction: 0.05,
        }
    }
}

impl AlertThresholds {
    /// Checks every pair is finite, non-negative and ordered (warning < critical < emergency),
    /// percentages stay within 0–100 and rates within 0–1.
    pub fn validate(&self) -> Result<(), FieldError> {
        let err = |field: &str, reason: String| FieldError::new(field, reason);
        let pairs: [(&str, &Levels, f64); 9] = [
            ("cluster_nodes_lost", &self.cluster_nodes_lost, f64::MAX),
            (
                "cluster_agents_unhosted",
                &self.cluster_agents_unhosted,
                f64::MAX,
            ),
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
    /// Checks the factors are within (0, 1] and the emergency count is at least 1.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (name, v) in [
            (
                "thermal_concurrency_factor",
                self.thermal_concurrency_factor,
            ),
            ("thermal_scale", self.thermal_scale),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 1.0) {
                return Err(FieldError::new(
                    name,
                    format!("is {v}; expected a number above 0 up to 1"),
                ));
            }
        }
        if self.emergency_min_critical == 0 {
            return Err(FieldError::new(
                "emergency_min_critical",
                "is 0; expected at least 1",
            ));
        }
        Ok(())
    }
}

/// Limits of the live WebSocket stream (`[websocket]` in dsmild's configuration): how many
/// clients, how far one may fall behind, how large a message it may send, and the keep-alive
/// timings. The defaults suit a dashboard on a LAN; the bounds keep one client from costing
/// more than `queue_depth` messages of memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
    /// How often each client is pinged.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_seconds)
    }

    /// How long a client may leave a ping unanswered.
    pub fn pong_timeout(&self) -> Duration {
        Duration::from_secs(self.pong_timeout_seconds)
    }

    /// How long one write may block.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    /// Checks every limit is in its range and the pong timeout outlasts the ping interval.
    pub fn validate(&self) -> Result<(), FieldError> {
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
                return Err(FieldError::new(
                    name,
                    format!("is {value}; expected {min} to {max}"),
                ));
            }
        }
        if self.pong_timeout_seconds <= self.ping_interval_seconds {
            return Err(FieldError::new(
                "pong_timeout_seconds",
                format!(
                    "is {}, which is not above ping_interval_seconds ({}): every client would \
                     be closed before it could answer",
                    self.pong_timeout_seconds, self.ping_interval_seconds
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds_and_valid() {
        let t = AlertThresholds::default();
        t.validate().unwrap();
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
        let e = t.validate().unwrap_err().within("alerts.");
        assert_eq!(e.field, "alerts.memory_percent.warning");
        let mut t = AlertThresholds::default();
        t.agent_failure_rate.critical = 2.0;
        assert_eq!(
            t.validate().unwrap_err().field,
            "agent_failure_rate.critical"
        );
        let mut t = AlertThresholds::default();
        t.thermal_celsius.emergency = 90.0;
        assert_eq!(t.validate().unwrap_err().field, "thermal_celsius.emergency");
    }
}
