//! The WebSocket protocol (seed `WebSocketManager`), as JSON text frames.
//!
//! Client → server: `{"type":"subscribe","metric_types":[…]}` (replaces the subscription),
//! `{"type":"ping"}` (any extra fields are echoed back in `pong`).
//!
//! Server → client, every message with `seq` (per connection, from 1, no gaps):
//! `connection_established` (client id, server time, metric types, the subscription),
//! `subscription_updated`, `pong`, `error` (`code`, `message`), `metric` (`metric_type`,
//! `event_seq` — the event bus's sequence, so a reconnecting client sees what it missed —,
//! `snapshot` when it is the latest value replayed at connect, `data`), `alert` and
//! `emergency` (sent to every client whatever its subscription). In a cluster, `metric`,
//! `alert` and `emergency` name the `node` the event happened on (events of every node are
//! relayed to every node), and `connection_established` the node answering. Right after
//! `connection_established` come the active alerts and the latest value of each subscribed
//! metric type, marked `"snapshot": true`.

use chrono::Utc;
use dsmil_core::monitoring::MetricType;
use dsmil_core::{Event, Published};
use serde::Deserialize;
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
    Subscribe(Vec<MetricType>),
    /// Liveness check; the payload's other fields are echoed.
    Ping(serde_json::Map<String, Value>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeBody {
    #[serde(rename = "type")]
    _type: String,
    metric_types: Vec<String>,
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
    MetricType::ALL.iter().map(|t| metric_name(*t)).collect()
}

fn parse_metric(name: &str) -> Result<MetricType, ProtocolError> {
    serde_json::from_value(Value::String(name.to_owned())).map_err(|_| ProtocolError {
        code: "unknown_metric_type",
        message: format!(
            "{name:?} is not a metric type; expected one of {}",
            metric_names().join(", ")
        ),
    })
}

/// Parses one text frame from a client.
pub fn parse_client(text: &str) -> Result<ClientMessage, ProtocolError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ProtocolError {
        code: "invalid_json",
        message: format!("the message is not JSON: {e}"),
    })?;
    let Some(obj) = value.as_object() else {
        return Err(ProtocolError {
            code: "invalid_message",
            message: "a message is a JSON object with a \"type\"".into(),
        });
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("subscribe") => {
            let body: SubscribeBody =
                serde_json::from_value(value.clone()).map_err(|e| ProtocolError {
                    code: "invalid_message",
                    message: format!("subscribe needs \"metric_types\": [names]: {e}"),
                })?;
            let mut types = Vec::new();
            for name in &body.metric_types {
                let t = parse_metric(name)?;
                if !types.contains(&t) {
                    types.push(t);
                }
            }
            Ok(ClientMessage::Subscribe(types))
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

fn messages_of(published: &Published) -> Vec<(Audience, Value)> {
    let event = &*published.event;
    let mut out = Vec::with_capacity(2);
    match event {
        // Not one of the seed's metric types: the cluster view is `GET /api/cluster`.
        Event::Cluster(_) => {}
        Event::Alert(alert) => out.push((
            Audience::Everyone,
            json!({"type": "alert", "event_seq": published.sequence, "data": alert}),
        )),
        other => {
            let t = other.metric_type();
            out.push((
                Audience::Subscribers(t),
                json!({
                    "type": "metric",
                    "metric_type": metric_name(t),
                    "event_seq": published.sequence,
                    "snapshot": false,
                    "data": other_payload(other),
                }),
            ));
            if let Event::Security(s) = other
                && s.event_type == "emergency_response"
            {
                out.push((
                    Audience::Everyone,
                    json!({"type": "emergency", "event_seq": published.sequence, "data": s}),
                ));
            }
        }
    }
    out
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
    let mut message = json!({
        "type": "connection_established",
        "client_id": client_id,
        "server_time": Utc::now(),
        "metric_types": metric_names(),
        "subscribed": subscription.iter().map(|t| metric_name(*t)).collect::<Vec<_>>(),
    });
    if let Some(node) = node {
        message["node"] = Value::String(node.to_owned());
    }
    message
}

/// `subscription_updated`.
pub fn subscription_updated(subscription: &[MetricType]) -> Value {
    json!({
        "type": "subscription_updated",
        "subscribed": subscription.iter().map(|t| metric_name(*t)).collect::<Vec<_>>(),
    })
}

/// `pong`, echoing the ping's fields.
pub fn pong(echo: serde_json::Map<String, Value>) -> Value {
    let mut obj = echo;
    obj.insert("type".into(), json!("pong"));
    obj.insert("server_time".into(), json!(Utc::now()));
    Value::Object(obj)
}

/// `error`.
pub fn error(e: &ProtocolError) -> Value {
    json!({"type": "error", "code": e.code, "message": e.message})
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
            ClientMessage::Subscribe(vec![MetricType::SystemHealth, MetricType::TpmEvent])
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
            (r#"{"type":"subscribe"}"#, "invalid_message"),
            (
                r#"{"type":"subscribe","metric_types":["cpu"]}"#,
                "unknown_metric_type",
            ),
        ] {
            assert_eq!(parse_client(text).unwrap_err().code, code, "{text}");
        }
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
