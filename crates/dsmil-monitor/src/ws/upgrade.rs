//! The WebSocket handshake over an HTTP server's request (RFC 6455 §4.2): checks the upgrade
//! headers, answers `101 Switching Protocols` with the accept key, and hands the upgraded
//! connection to the hub once the HTTP server has sent that answer.
//!
//! The caller has already authorised the request (the daemon checks its token first).

use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::{Hub, accept_key};

/// Why a request could not be upgraded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeRefused {
    /// Not a WebSocket upgrade request (no `Upgrade: websocket`, no key, or a version other
    /// than 13).
    #[error("/ws speaks WebSocket (version 13): send an Upgrade: websocket request")]
    NotWebSocket,
}

/// Answers a WebSocket upgrade request: the `101` response to send, while a task waits for the
/// upgraded connection and serves it on `hub`.
pub fn upgrade<B: Send + 'static>(
    hub: &Hub,
    request: Request<B>,
) -> Result<Response<()>, UpgradeRefused> {
    let headers = request.headers();
    let is_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version_13 = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let key = match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if is_upgrade && version_13 => key.as_bytes().to_vec(),
        _ => return Err(UpgradeRefused::NotWebSocket),
    };
    let accept = accept_key(&key);
    let on_upgrade = hyper::upgrade::on(request);
    let hub = hub.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ended = hub.serve_upgraded(TokioIo::new(upgraded)).await;
                tracing::debug!(?ended, "WebSocket connection ended");
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok(response)
}
