//! `GET /ws`: the live stream, as JSON text frames.
//!
//! Every server message carries `seq` (per connection, from 1, without gaps, so a client sees
//! what it missed). Right after `connection_established` come the active alerts and the latest
//! value of each subscribed metric type, marked `"snapshot": true`. Alerts and emergencies go
//! to every client whatever its subscription; metrics to the clients subscribed to their type.
//! In a cluster every node relays its events to every node, and each message names the `node`
//! it came from.

use chrono::{DateTime, Utc};
use dsmil_core::events::{AccelEvent, DeviceEvent, TpmEvent, WorkflowEvent};
use dsmil_core::monitoring::{
    AgentActivity, MetricType, PerformanceAlert, SecurityEvent, SystemHealth,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The first message of every connection.
    ConnectionEstablished {
        /// Position in this connection's stream, from 1.
        seq: u64,
        /// This connection's id.
        client_id: u64,
        /// The server's clock.
        server_time: DateTime<Utc>,
        /// Every metric type a client may subscribe to.
        metric_types: Vec<MetricType>,
        /// The types this connection receives (all, until it subscribes).
        subscribed: Vec<MetricType>,
        /// In a cluster, the node answering (absent on one host).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
    /// The answer to `subscribe`.
    SubscriptionUpdated {
        /// Position in the stream.
        seq: u64,
        /// The types this connection receives now.
        subscribed: Vec<MetricType>,
    },
    /// The answer to `ping`, echoing the ping's other fields.
    Pong {
        /// Position in the stream.
        seq: u64,
        /// The server's clock.
        server_time: DateTime<Utc>,
        /// The ping's fields besides `type`, echoed.
        #[serde(flatten)]
        #[schema(value_type = Object)]
        echo: serde_json::Map<String, serde_json::Value>,
    },
    /// A client message the server could not take; the connection stays open.
    Error {
        /// Position in the stream.
        seq: u64,
        /// `invalid_json`, `unknown_type`, `invalid_message`, `unknown_metric_type`,
        /// `binary_not_supported`.
        code: String,
        /// What was wrong.
        message: String,
    },
    /// A sample or event of one metric type.
    Metric {
        /// Position in the stream.
        seq: u64,
        /// The event bus's sequence number of the event.
        event_seq: u64,
        /// Whether this is the latest value replayed at connect or subscribe.
        #[serde(default)]
        snapshot: bool,
        /// The metric type and its data.
        #[serde(flatten)]
        metric: Metric,
        /// In a cluster, the node the event happened on (absent on one host).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
    /// An alert was raised, changed level or resolved (`data.auto_resolved`).
    Alert {
        /// Position in the stream.
        seq: u64,
        /// The event bus's sequence number (absent for alerts replayed at connect).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_seq: Option<u64>,
        /// Whether this is an active alert replayed at connect.
        #[serde(default)]
        snapshot: bool,
        /// The alert.
        data: PerformanceAlert,
        /// In a cluster, the node that raised it (absent on one host).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
    /// The emergency response ran (critical alerts piled up).
    Emergency {
        /// Position in the stream.
        seq: u64,
        /// The event bus's sequence number.
        event_seq: u64,
        /// The security event recording it.
        data: SecurityEvent,
        /// In a cluster, the node it ran on (absent on one host).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
}

/// The data of a metric message, tagged by its type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "metric_type", content = "data", rename_all = "snake_case")]
pub enum Metric {
    /// A system health sample.
    SystemHealth(SystemHealth),
    /// An agent's task started, completed or failed.
    AgentActivity(AgentActivity),
    /// A security or audit event.
    SecurityEvent(SecurityEvent),
    /// Something was done (or refused) on a DSMIL device.
    DsmilDevice(DeviceEvent),
    /// A TPM operation finished.
    TpmEvent(TpmEvent),
    /// Accelerator throughput.
    Avx512Performance(AccelEvent),
    /// A workflow or task changed state.
    WorkflowCoordination(WorkflowEvent),
}

impl Metric {
    /// The metric type of this data.
    pub fn metric_type(&self) -> MetricType {
        match self {
            Metric::SystemHealth(_) => MetricType::SystemHealth,
            Metric::AgentActivity(_) => MetricType::AgentActivity,
            Metric::SecurityEvent(_) => MetricType::SecurityEvent,
            Metric::DsmilDevice(_) => MetricType::DsmilDevice,
            Metric::TpmEvent(_) => MetricType::TpmEvent,
            Metric::Avx512Performance(_) => MetricType::Avx512Performance,
            Metric::WorkflowCoordination(_) => MetricType::WorkflowCoordination,
        }
    }
}

impl ServerMessage {
    /// The message's position in its connection's stream.
    pub fn seq(&self) -> u64 {
        match self {
            ServerMessage::ConnectionEstablished { seq, .. }
            | ServerMessage::SubscriptionUpdated { seq, .. }
            | ServerMessage::Pong { seq, .. }
            | ServerMessage::Error { seq, .. }
            | ServerMessage::Metric { seq, .. }
            | ServerMessage::Alert { seq, .. }
            | ServerMessage::Emergency { seq, .. } => *seq,
        }
    }
}

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Replace the subscription with these metric types (empty: alerts and emergencies only).
    Subscribe {
        /// The types to receive.
        metric_types: Vec<MetricType>,
    },
    /// Liveness check; its other fields are echoed in the `pong`.
    Ping {
        /// Fields to echo.
        #[serde(flatten)]
        #[schema(value_type = Object)]
        echo: serde_json::Map<String, serde_json::Value>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_messages_carry_their_type_beside_the_data() {
        let text = r#"{"seq":7,"type":"metric","metric_type":"workflow_coordination","event_seq":20,"snapshot":true,
            "data":{"detail":"workflow failed","state":"failed","task_id":null,
                    "timestamp":"2026-12-02T14:23:57.416512829Z","workflow_id":"cab3c2c4-e23f-4c63-b8d7-6a1ad7eb4682"}}"#;
        let m: ServerMessage = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        let ServerMessage::Metric {
            seq,
            metric,
            snapshot,
            ..
        } = &m
        else {
            panic!("{m:?}")
        };
        assert_eq!((*seq, *snapshot), (7, true));
        assert_eq!(metric.metric_type(), MetricType::WorkflowCoordination);
        let back: ServerMessage =
            serde_json::from_value(serde_json::to_value(&m).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, m);
    }

    #[test]
    fn pings_echo_their_fields() {
        let ping: ClientMessage =
            serde_json::from_str(r#"{"type":"ping","t":5}"#).unwrap_or_else(|e| panic!("{e}"));
        let ClientMessage::Ping { echo } = ping else {
            panic!()
        };
        assert_eq!(echo["t"], 5);
    }
}
