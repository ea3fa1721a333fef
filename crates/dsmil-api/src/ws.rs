//! `GET /ws`: the live stream, as JSON text frames in the seed's message shapes — a client
//! written to the seed's `WebSocketManager` works unchanged — with the project's additions as
//! extra top-level fields (`seq`, `event_seq`, `snapshot`, `code`, `node`, `warnings`,
//! `client_id`, `subscribed_types`, `security_event`).
//!
//! Every server message carries `seq` (per connection, from 1, without gaps, so a client sees
//! what it missed). Right after `connection_established` come the active alerts and the latest
//! value of each subscribed metric type, marked `"snapshot": true`. A metric's message is
//! typed by its metric type (`{"type":"system_health","data":…,"timestamp":…}`). Alerts and
//! emergencies go to every client whatever its subscription; metrics to the clients subscribed
//! to their type. In a cluster every node relays its events to every node, and each message
//! names the `node` it came from.

use chrono::{DateTime, Utc};
use dsmil_core::events::{AccelEvent, DeviceEvent, TpmEvent, WorkflowEvent};
use dsmil_core::monitoring::{
    AgentActivity, MetricType, PerformanceAlert, SecurityEvent, SystemHealth,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `connection_established.data`, as the seed sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Established {
    /// The server's clock.
    pub server_time: DateTime<Utc>,
    /// Every metric type a client may subscribe to.
    pub available_metric_types: Vec<MetricType>,
    /// `all_metrics` (the default subscription), or `custom`.
    pub subscription_status: String,
}

/// `subscription_updated.data`, as the seed sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Subscribed {
    /// The types this connection receives now.
    pub subscribed_types: Vec<MetricType>,
}

/// `emergency.data`, as the seed sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmergencyNotice {
    /// What happened.
    pub message: String,
    /// Critical alerts active when the response ran.
    pub active_critical_alerts: u64,
    /// What an operator should do.
    pub recommended_action: String,
}

/// Defines [`ServerMessage`] with one variant per metric type — each `{"type": <metric type>,
/// "data", "timestamp", "event_seq", "snapshot", "node"}` — beside the protocol's other
/// messages, and [`Metric`], the data of any of them; the metric types are listed once, below.
macro_rules! server_messages {
    ($($(#[$doc:meta])* $variant:ident($data:ty)),* $(,)?) => {
        /// A message from the server.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum ServerMessage {
            /// The first message of every connection.
            ConnectionEstablished {
                /// Position in this connection's stream, from 1.
                seq: u64,
                /// The seed's greeting.
                data: Established,
                /// This connection's id.
                client_id: u64,
                /// The types this connection receives (all, until it subscribes).
                subscribed_types: Vec<MetricType>,
                /// In a cluster, the node answering (absent on one host).
                #[serde(default, skip_serializing_if = "Option::is_none")]
                node: Option<String>,
            },
            /// The answer to `subscribe`.
            SubscriptionUpdated {
                /// Position in the stream.
                seq: u64,
                /// The types this connection receives now.
                data: Subscribed,
                /// The names asked for that are not metric types (ignored).
                #[serde(default, skip_serializing_if = "Vec::is_empty")]
                warnings: Vec<String>,
            },
            /// The answer to `ping`, echoing the ping's other fields.
            Pong {
                /// Position in the stream.
                seq: u64,
                /// The server's clock.
                timestamp: DateTime<Utc>,
                /// The ping's fields besides `type`, echoed.
                #[serde(flatten)]
                #[schema(value_type = Object)]
                echo: serde_json::Map<String, serde_json::Value>,
            },
            /// A client message the server could not take; the connection stays open.
            Error {
                /// Position in the stream.
                seq: u64,
                /// What was wrong.
                message: String,
                /// `invalid_json`, `unknown_type`, `invalid_message`, `binary_not_supported`.
                code: String,
            },
            $(
                $(#[$doc])*
                $variant {
                    /// Position in the stream.
                    seq: u64,
                    /// The event bus's sequence number of the event.
                    event_seq: u64,
                    /// Whether this is the latest value replayed at connect or subscribe.
                    #[serde(default)]
                    snapshot: bool,
                    /// The sample or event.
                    data: $data,
                    /// When it happened.
                    timestamp: DateTime<Utc>,
                    /// In a cluster, the node the event happened on (absent on one host).
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    node: Option<String>,
                },
            )*
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
                /// When it was raised.
                timestamp: DateTime<Utc>,
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
                /// The seed's notice.
                data: EmergencyNotice,
                /// When the response ran.
                timestamp: DateTime<Utc>,
                /// The audited security event recording it.
                security_event: SecurityEvent,
                /// In a cluster, the node it ran on (absent on one host).
                #[serde(default, skip_serializing_if = "Option::is_none")]
                node: Option<String>,
            },
        }

        /// A metric's data, by its type: what [`ServerMessage::metric`] gives for a metric
        /// message.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Metric {
            $($(#[$doc])* $variant($data),)*
        }

        impl Metric {
            /// The metric type of this data.
            pub fn metric_type(&self) -> MetricType {
                match self {
                    $(Metric::$variant(_) => MetricType::$variant,)*
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
                    | ServerMessage::Alert { seq, .. }
                    | ServerMessage::Emergency { seq, .. } => *seq,
                    $(ServerMessage::$variant { seq, .. } => *seq,)*
                }
            }

            /// For a metric message, its header and its data by type; `None` for the others.
            pub fn metric(&self) -> Option<(MetricHeader, Metric)> {
                match self {
                    $(ServerMessage::$variant { seq, event_seq, snapshot, data, timestamp, node } => {
                        Some((
                            MetricHeader {
                                seq: *seq,
                                event_seq: *event_seq,
                                snapshot: *snapshot,
                                timestamp: *timestamp,
                                node: node.clone(),
                            },
                            Metric::$variant(data.clone()),
                        ))
                    })*
                    _ => None,
                }
            }
        }
    };
}

server_messages! {
    /// A system health sample (`system_health`).
    SystemHealth(SystemHealth),
    /// An agent's task started, completed or failed (`agent_activity`).
    AgentActivity(AgentActivity),
    /// A security or audit event (`security_event`).
    SecurityEvent(SecurityEvent),
    /// Something was done (or refused) on a DSMIL device (`dsmil_device`).
    DsmilDevice(DeviceEvent),
    /// A TPM operation finished (`tpm_event`).
    TpmEvent(TpmEvent),
    /// Accelerator throughput (`avx512_performance`).
    Avx512Performance(AccelEvent),
    /// A workflow or task changed state (`workflow_coordination`).
    WorkflowCoordination(WorkflowEvent),
}

/// The fields every metric message has besides its data.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricHeader {
    /// Position in the stream.
    pub seq: u64,
    /// The event bus's sequence number.
    pub event_seq: u64,
    /// Whether it is a snapshot replayed at connect or subscribe.
    pub snapshot: bool,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// In a cluster, the node it happened on.
    pub node: Option<String>,
}

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Replace the subscription with these metric types (empty: alerts and emergencies only).
    /// The server, as the seed's, also takes unknown names: it ignores them and says so in
    /// `subscription_updated.warnings`.
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
    fn metric_messages_are_typed_by_their_metric_type() {
        let text = r#"{"seq":7,"type":"workflow_coordination","event_seq":20,"snapshot":true,
            "timestamp":"2026-12-02T14:23:57.416512829Z",
            "data":{"detail":"workflow failed","state":"failed","task_id":null,
                    "timestamp":"2026-12-02T14:23:57.416512829Z","workflow_id":"cab3c2c4-e23f-4c63-b8d7-6a1ad7eb4682"}}"#;
        let m: ServerMessage = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        let Some((header, metric)) = m.metric() else {
            panic!("{m:?}")
        };
        assert_eq!((header.seq, header.snapshot, m.seq()), (7, true, 7));
        assert_eq!(metric.metric_type(), MetricType::WorkflowCoordination);
        let back: ServerMessage =
            serde_json::from_value(serde_json::to_value(&m).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, m);
    }

    #[test]
    fn the_seeds_greeting_decodes() {
        let text = r#"{"seq":1,"type":"connection_established","client_id":1,
            "data":{"server_time":"2026-12-02T14:23:57Z","available_metric_types":["system_health"],
                    "subscription_status":"all_metrics"},"subscribed_types":["system_health"]}"#;
        let m: ServerMessage = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(&m, ServerMessage::ConnectionEstablished { data, .. } if data.subscription_status == "all_metrics")
        );
        assert_eq!(m.seq(), 1);
        assert!(m.metric().is_none());
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
