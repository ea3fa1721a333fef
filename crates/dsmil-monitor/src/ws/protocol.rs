//! The WebSocket protocol in the seed's message shapes (its `WebSocketManager` and
//! dashboard), as JSON text frames. A client written to the seed works unchanged; the
//! project's additions are extra top-level fields such a client ignores.
//!
//! Client → server: `{"type":"subscribe","metric_types":[…]}` (replaces the subscription;
//! unknown types are ignored, as the seed does, and named in the answer's `warnings`),
//! `{"type":"ping"}` (any extra fields are echoed back in `pong`).
//!
//! Server → client:
//! - `connection_established` with `data.{server_time, available_metric_types,
//!   subscription_status}` (`all_metrics`, or `custom` when the connection asked for fewer);
//!   added: `client_id`, `subscribed_types`, `node`;
//! - a metric as `{"type": <metric type>, "data": …, "timestamp": …}` — `system_health`,
//!   `agent_activity`, … — sent to the connection's subscribers of that type; added:
//!   `event_seq` (the event bus's sequence, so a reconnecting client sees what it missed),
//!   `snapshot` (the latest value replayed at connect or subscribe), `node`;
//! - `alert` (`data`: the alert, `timestamp`) and `emergency` (`data.{message,
//!   active_critical_alerts, recommended_action}`, `timestamp`; added: `security_event`, the
//!   audited event) to every client whatever its subscription;
//! - `subscription_updated` with `data.subscribed_types` (added: `warnings`), `pong` with
//!   `timestamp`, `error` with `message` (added: `code`).
//!
//! Every server message also carries `seq` (per connection, from 1, no gaps). In a cluster,
//! metrics, alerts and emergencies name the `node` the event happened on (events of every node
//! are relayed to every node), and `connection_established` the node answering. Right after
//! `connection_established` come the active alerts and the latest value of each subscribed
//! metric type, marked `"snapshot": true`.

use chrono::Utc;
use dsmil_core::monitoring::MetricType;
use dsmil_core::{Event, Published};
use serde_json::{Value, json};

/// Why a client message was refused; the `error` message carries `code` and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    /// Machine-readable code: `invalid_json`, `unknown_type`, `invalid_message`,
    /// `unknown_metric_type`, `binary_not_supported`.
    pub code: &'static str,
    /// What was wrong, for people.
    pub message: String,
}

/// A message a client may send.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// Replace the subscription with these metric types (empty: alerts and emergencies only).
    Subscribe {
        /// The known types asked for, each once.
        types: Vec<MetricType>,
        /// The names that are not metric types (ignored, as the seed ignores them).
        ignored: Vec<String>,
    },
    /// Liveness check; the payload's other fields are echoed.
    Ping(serde_json::Map<String, Value>),
}

/// The snake_case name of a metric type.
pub fn metric_name(t: MetricType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Every metric type's name.
pub fn metric_names() -> Vec<String> {
    names(&MetricType::ALL)
}

/// The names of `types`.
fn names(types: &[MetricType]) -> Vec<String> {
    types.iter().map(|t| metric_name(*t)).collect()
}

/// Parses one text frame from a client.
pub fn parse_client(text: &str) -> Result<ClientMessage, ProtocolError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ProtocolError {
        code: "invalid_json",
        message: format!("Invalid JSON message: {e}"),
    })?;
    let Some(obj) = value.as_object() else {
        return Err(ProtocolError {
            code: "invalid_message",
            message: "a message is a JSON object with a \"type\"".into(),
        });
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("subscribe") => {
            // As the seed: a missing list is an empty one, other fields are ignored.
            let names = match obj.get("metric_types") {
                None => &Vec::new(),
                Some(Value::Array(names)) => names,
                Some(_) => {
                    return Err(ProtocolError {
                        code: "invalid_message",
                        message: "subscribe's \"metric_types\" is a list of metric type names"
                            .into(),
                    });
                }
            };
            let (mut types, mut ignored) = (Vec::new(), Vec::new());
            for name in names {
                let parsed = name
                    .as_str()
                    .and_then(|n| serde_json::from_value::<MetricType>(Value::from(n)).ok());
                match parsed {
                    Some(t) if !types.contains(&t) => types.push(t),
                    Some(_) => {}
                    None => ignored.push(match name.as_str() {
                        Some(n) => n.to_owned(),
                        None => name.to_string(),
                    }),
                }
            }
            Ok(ClientMessage::Subscribe { types, ignored })
        }
        Some("ping") => {
            let mut echo = obj.clone();
            echo.remove("type");
            Ok(ClientMessage::Ping(echo))
        }
        Some(other) => Err(ProtocolError {
            code: "unknown_type",
            message: format!("unknown message type {other:?}; expected subscribe or ping"),
        }),
        None => Err(ProtocolError {
            code: "invalid_message",
            message: "the message has no \"type\"".into(),
        }),
    }
}

/// How a bus event is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Clients subscribed to this metric type.
    Subscribers(MetricType),
    /// Every client.
    Everyone,
}

/// The server messages (without `seq`) an event becomes, each with its audience. Alerts and
/// emergency responses go to everyone; everything else to subscribers of its metric type.
/// In a cluster every message names the `node` the event happened on: the one it was relayed
/// from, or `local` (this node's id) for this node's own.
pub fn event_messages(published: &Published, local: Option<&str>) -> Vec<(Audience, Value)> {
    let mut out = messages_of(published);
    if let Some(node) = published.origin.as_deref().or(local) {
        for (_, message) in &mut out {
            message["node"] = Value::String(node.to_owned());
        }
    }
    out
}

/// What the seed's dashboard recommends when the emergency response runs.
pub const EMERGENCY_RECOMMENDED_ACTION: &str = "System shutdown or manual intervention required";

fn messages_of(published: &Published) -> Vec<(Audience, Value)> {
    let event = &*published.event;
    let mut out = Vec::with_capacity(2);
    match event {
        // Not one of the seed's metric types: the cluster view is `GET /api/cluster`.
        Event::Cluster(_) => {}
        Event::Alert(alert) => out.push((
            Audience::Everyone,
            alert_message(alert, Some(published.sequence), false),
        )),
        other => {
            let t = other.metric_type();
            out.push((
                Audience::Subscribers(t),
                json!({
                    "type": metric_name(t),
                    "data": other_payload(other),
                    "timestamp": other.timestamp(),
                    "event_seq": published.sequence,
                    "snapshot": false,
                }),
            ));
            if let Event::Security(s) = other
                && s.event_type == "emergency_response"
            {
                out.push((
                    Audience::Everyone,
                    json!({
                        "type": "emergency",
                        "data": {
                            "message": s.description,
                            // The response names the critical alerts that triggered it.
                            "active_critical_alerts": s.affected_resources.len(),
                            "recommended_action": EMERGENCY_RECOMMENDED_ACTION,
                        },
                        "timestamp": s.timestamp,
                        "event_seq": published.sequence,
                        "security_event": s,
                    }),
                ));
            }
        }
    }
    out
}

/// An `alert` message: live (with the bus sequence) or replayed at connect (`snapshot`).
pub fn alert_message(
    alert: &dsmil_core::monitoring::PerformanceAlert,
    event_seq: Option<u64>,
    snapshot: bool,
) -> Value {
    let mut message = json!({
        "type": "alert",
        "data": alert,
        "timestamp": alert.timestamp,
        "snapshot": snapshot,
    });
    if let Some(seq) = event_seq {
        message["event_seq"] = Value::from(seq);
    }
    message
}

fn other_payload(event: &Event) -> Value {
    // `Event` serialises as {"type": variant, "data": payload}: send the payload alone.
    match serde_json::to_value(event) {
        Ok(Value::Object(mut map)) => map.remove("data").unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// `connection_established`, naming the answering `node` in a cluster.
pub fn established(client_id: u64, subscription: &[MetricType], node: Option<&str>) -> Value {
    let all = MetricType::ALL.iter().all(|t| subscription.contains(t));
    let mut message = json!({
        "type": "connection_established",
        "data": {
            "server_time": Utc::now(),
            "available_metric_types": metric_names(),
            "subscription_status": if all { "all_metrics" } else { "custom" },
        },
        "client_id": client_id,
        "subscribed_types": names(subscription),
    });
    if let Some(node) = node {
        message["node"] = Value::String(node.to_owned());
    }
    message
}

/// `subscription_updated`: the types now received, and the names ignored.
pub fn subscription_updated(subscription: &[MetricType], ignored: &[String]) -> Value {
    let mut message = json!({
        "type": "subscription_updated",
        "data": {"subscribed_types": names(subscription)},
    });
    if !ignored.is_empty() {
        message["warnings"] = ignored
            .iter()
            .map(|name| format!("{name:?} is not a metric type; ignored"))
            .collect();
    }
    message
}

/// `pong`, echoing the ping's fields.
pub fn pong(echo: serde_json::Map<String, Value>) -> Value {
    let mut obj = echo;
    obj.insert("type".into(), json!("pong"));
    obj.insert("timestamp".into(), json!(Utc::now()));
    Value::Object(obj)
}

/// `error`.
pub fn error(e: &ProtocolError) -> Value {
    json!({"type": "error", "message": e.message, "code": e.code})
}

/// Serialises `message` with `seq` as its first field.
pub fn with_seq(seq: u64, message: &str) -> String {
    match message.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"seq\":{seq}}}"),
        Some(rest) => format!("{{\"seq\":{seq},{rest}"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn client_messages_parse_or_name_the_problem() {
        assert_eq!(
            parse_client(r#"{"type":"subscribe","metric_types":["system_health","system_health","tpm_event"]}"#).unwrap(),
            ClientMessage::Subscribe {
                types: vec![MetricType::SystemHealth, MetricType::TpmEvent],
                ignored: vec![],
            }
        );
        // As the seed: unknown names and extra fields ignored, a missing list is empty.
        assert_eq!(
            parse_client(
                r#"{"type":"subscribe","metric_types":["cpu","alert",7,"tpm_event"],"x":1}"#
            )
            .unwrap(),
            ClientMessage::Subscribe {
                types: vec![MetricType::TpmEvent],
                ignored: vec!["cpu".into(), "alert".into(), "7".into()],
            }
        );
        assert_eq!(
            parse_client(r#"{"type":"subscribe"}"#).unwrap(),
            ClientMessage::Subscribe {
                types: vec![],
                ignored: vec![]
            }
        );
        let ClientMessage::Ping(echo) = parse_client(r#"{"type":"ping","t":5}"#).unwrap() else {
            panic!()
        };
        assert_eq!(echo["t"], 5);
        for (text, code) in [
            ("{nope", "invalid_json"),
            ("[1]", "invalid_message"),
            (r#"{"x":1}"#, "invalid_message"),
            (r#"{"type":"dance"}"#, "unknown_type"),
            (
                r#"{"type":"subscribe","metric_types":"system_health"}"#,
                "invalid_message",
            ),
        ] {
            assert_eq!(parse_client(text).unwrap_err().code, code, "{text}");
        }
    }

    #[test]
    fn server_messages_have_the_seeds_shapes() {
        let hello = established(3, &MetricType::ALL, None);
        assert_eq!(hello["type"], "connection_established");
        assert_eq!(hello["data"]["subscription_status"], "all_metrics");
        assert_eq!(
            hello["data"]["available_metric_types"]
                .as_array()
                .map(Vec::len),
            Some(MetricType::ALL.len())
        );
        assert!(hello["data"]["server_time"].is_string());
        let some = established(4, &[MetricType::TpmEvent], Some("a"));
        assert_eq!(some["data"]["subscription_status"], "custom");
        assert_eq!(some["node"], "a");
        let updated = subscription_updated(&[MetricType::TpmEvent], &["cpu".into()]);
        assert_eq!(updated["data"]["subscribed_types"], json!(["tpm_event"]));
        assert!(updated["warnings"][0].as_str().unwrap().contains("cpu"));
        assert!(subscription_updated(&[], &[]).get("warnings").is_none());
        assert!(pong(serde_json::Map::new())["timestamp"].is_string());
        let e = error(&ProtocolError {
            code: "c",
            message: "m".into(),
        });
        assert_eq!(
            (e["type"].as_str(), e["message"].as_str()),
            (Some("error"), Some("m"))
        );
    }

    #[test]
    fn seq_goes_first() {
        assert_eq!(with_seq(7, r#"{"type":"x"}"#), r#"{"seq":7,"type":"x"}"#);
        assert_eq!(with_seq(1, "{}"), r#"{"seq":1}"#);
        let v: Value = serde_json::from_str(&with_seq(
            3,
            &error(&ProtocolError {
                code: "c",
                message: "m".into(),
            })
            .to_string(),
        ))
        .unwrap();
        assert_eq!(
            (v["seq"].as_u64(), v["code"].as_str()),
            (Some(3), Some("c"))
        );
    }
}
