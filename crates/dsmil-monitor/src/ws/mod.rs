//! The WebSocket side of the monitor: the [`Hub`] that fans bus events out to clients, the
//! [`protocol`], and three ways in — [`upgrade`], the handshake over an HTTP server's request
//! (dsmild's `/ws`); [`Hub::serve_upgraded`] for a connection an HTTP server already upgraded;
//! and [`Hub::serve_tcp`] for embedders without an HTTP server.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use dsmil_core::EventBus;
//! use dsmil_monitor::ws::{Hub, HubConfig};
//!
//! let bus = EventBus::new(1024);
//! let hub = Hub::new(HubConfig::default());
//! hub.pump(&bus);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! hub.serve_tcp(listener, Some("secret-token".into())).await;
//! # Ok(()) }
//! ```

mod connection;
mod hub;
pub mod protocol;
mod upgrade;

pub use connection::Ended;
pub use hub::{AlertSource, Hub, HubConfig, HubStats};
pub use upgrade::{UpgradeRefused, upgrade};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// The tungstenite settings that enforce the hub's limits (message and frame size) and keep
/// an idle connection small: clients send little, so the read buffer is 4 KiB, and messages
/// are written as they come (the hub flushes each one anyway) instead of through a 128 KiB
/// write buffer.
pub fn websocket_config(config: &HubConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes))
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455), for HTTP servers
/// that perform the upgrade themselves.
pub fn accept_key(client_key: &[u8]) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(client_key)
}

/// Compares two tokens in constant time.
pub fn token_matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token a request carries: `Authorization: Bearer …` or `?token=…`.
pub fn request_token<'a>(
    authorization: Option<&'a str>,
    query: Option<&'a str>,
) -> Option<&'a str> {
    if let Some(t) = authorization.and_then(|h| h.strip_prefix("Bearer ")) {
        return Some(t.trim());
    }
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

impl Hub {
    /// Serves a connection an HTTP server has already upgraded (after checking the token).
    pub async fn serve_upgraded<S>(&self, io: S) -> Ended
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let config = websocket_config(self.config());
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        self.serve(ws).await
    }

    /// Accepts WebSocket connections on `listener` until shutdown; with `token`, a handshake
    /// without it (header or `?token=`) is refused with 401.
    // The handshake callback's error type (an HTTP response) is tungstenite's, not ours.
    #[allow(clippy::result_large_err)]
    pub async fn serve_tcp(&self, listener: tokio::net::TcpListener, token: Option<String>) {
        let mut stop = self.inner.shutdown.subscribe();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.changed() => return,
            };
            let Ok((stream, peer)) = accepted else {
                continue;
            };
            let hub = self.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                    let Some(expected) = &token else {
                        return Ok(resp);
                    };
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok());
                    match request_token(auth, req.uri().query()) {
                        Some(given) if token_matches(expected, given) => Ok(resp),
                        _ => {
                            let mut refused = ErrorResponse::new(Some(
                                "a valid API token is required (Authorization: Bearer or ?token=)"
                                    .into(),
                            ));
                            *refused.status_mut() = StatusCode::UNAUTHORIZED;
                            Err(refused)
                        }
                    }
                };
                let config = websocket_config(hub.config());
                match tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config))
                    .await
                {
                    Ok(ws) => {
                        hub.serve(ws).await;
                    }
                    Err(e) => tracing::debug!(%peer, error = %e, "WebSocket handshake refused"),
                }
            });
        }
    }
}
