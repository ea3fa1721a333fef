//! The servers' HTTP monitoring endpoints, read with a plain HTTP/1.0 GET over std's
//! `TcpStream` (loopback only, no secrets): `/healthz` for health, `/jsz` for the JetStream meta
//! group, and whatever else a caller asks for (`/varz`, `/routez`).

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use super::error::NatsServerError;

/// How long one monitoring request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Responses larger than this are cut off (monitoring answers are a few KiB).
const MAX_RESPONSE: u64 = 4 << 20;

/// `GET http://127.0.0.1:<port><path>`: the status code and body.
pub(crate) fn get(port: u16, path: &str) -> Result<(u16, String), NatsServerError> {
    let fail = |reason: String| NatsServerError::Monitor {
        port,
        path: path.to_owned(),
        reason,
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)
        .map_err(|e| fail(format!("connecting: {e}")))?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(REQUEST_TIMEOUT)))
        .map_err(|e| fail(format!("setting timeouts: {e}")))?;
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| fail(format!("sending the request: {e}")))?;
    let mut response = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut response)
        .map_err(|e| fail(format!("reading the response: {e}")))?;
    parse_response(&response).ok_or_else(|| {
        fail(format!(
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&response[..response.len().min(200)])
        ))
    })
}

/// Status code and body of a raw HTTP/1.x response.
fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status_line = head.lines().next()?;
    let mut words = status_line.split_whitespace();
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = words.next()?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// `GET <path>` answered with 200 and a JSON body, parsed.
pub(crate) fn get_json(port: u16, path: &str) -> Result<Value, NatsServerError> {
    let (code, body) = get(port, path)?;
    let fail = |reason: String| NatsServerError::Monitor {
        port,
        path: path.to_owned(),
        reason,
    };
    if code != 200 {
        return Err(fail(format!("HTTP {code}: {}", body.trim())));
    }
    serde_json::from_str(&body).map_err(|e| fail(format!("invalid JSON ({e}): {}", body.trim())))
}

/// Checks `/healthz` (JetStream fully current: meta group and every stream and consumer this
/// server holds) or, with `js_enabled_only`, `/healthz?js-enabled-only=true` (JetStream is on).
pub fn check_health(http_port: u16, js_enabled_only: bool) -> Result<(), NatsServerError> {
    let path = if js_enabled_only {
        "/healthz?js-enabled-only=true"
    } else {
        "/healthz"
    };
    let value = get_json(http_port, path)?;
    match value.get("status").and_then(Value::as_str) {
        Some("ok") => Ok(()),
        _ => Err(NatsServerError::Monitor {
            port: http_port,
            path: path.to_owned(),
            reason: format!("not healthy: {value}"),
        }),
    }
}

/// What `/jsz` says about the JetStream meta group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetaView {
    /// The meta leader's server name, when there is one.
    pub leader: Option<String>,
    /// Peers this server sees as current (meaningful on the leader).
    pub current_peers: Vec<String>,
}

/// Reads the meta group from `/jsz`; `None` when the server runs JetStream standalone.
pub(crate) fn meta_view(http_port: u16) -> Result<Option<MetaView>, NatsServerError> {
    Ok(parse_meta(&get_json(http_port, "/jsz")?))
}

fn parse_meta(jsz: &Value) -> Option<MetaView> {
    let meta = jsz.get("meta_cluster")?;
    let leader = meta
        .get("leader")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    let current_peers = meta
        .get("replicas")
        .and_then(Value::as_array)
        .map(|replicas| {
            replicas
                .iter()
                .filter(|r| r.get("current").and_then(Value::as_bool) == Some(true))
                .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Some(MetaView {
        leader,
        current_peers,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn responses_give_status_and_body() {
        let raw = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"status\":\"ok\"}";
        assert_eq!(
            parse_response(raw),
            Some((200, "{\"status\":\"ok\"}".to_owned()))
        );
        let raw = b"HTTP/1.1 503 Service Unavailable\r\n\r\n{}";
        assert_eq!(parse_response(raw), Some((503, "{}".to_owned())));
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
        assert_eq!(parse_response(b"HTTP/1.0 200 OK\r\n"), None);
        assert_eq!(parse_response(b""), None);
    }

    #[test]
    fn meta_group_is_read_from_jsz() {
        let jsz = json!({"meta_cluster": {
            "name": "t", "leader": "n1", "cluster_size": 3,
            "replicas": [
                {"name": "n0", "current": true},
                {"name": "n2", "current": false}
            ]
        }});
        assert_eq!(
            parse_meta(&jsz),
            Some(MetaView {
                leader: Some("n1".to_owned()),
                current_peers: vec!["n0".to_owned()],
            })
        );
        let leaderless = json!({"meta_cluster": {"name": "t", "leader": ""}});
        assert_eq!(
            parse_meta(&leaderless),
            Some(MetaView {
                leader: None,
                current_peers: vec![],
            })
        );
        assert_eq!(parse_meta(&json!({"config": {}})), None);
    }
}
