//! One client connection: greeting and snapshot, then its queue, its requests, server pings —
//! until it leaves, falls behind, stops answering, or the server shuts down.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::hub::{ClientSlot, Hub, mask_of, types_of};
use super::protocol::{self, ClientMessage, ProtocolError};

/// Why a connection ended (logged; also the close frame's reason where one is sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The client closed or vanished.
    ClientLeft,
    /// Its queue filled.
    TooSlow,
    /// It did not answer pings.
    NoPong,
    /// It sent a message above the limit.
    TooBig,
    /// The server is shutting down.
    Shutdown,
    /// Too many clients.
    Refused,
    /// Writing to it failed or took too long.
    WriteFailed,
}

/// How long a close frame may take to go out.
const SHORT: Duration = Duration::from_secs(2);
/// How long a client dropped as too slow has to read up to its close frame.
const SLOW_CLOSE: Duration = Duration::from_secs(10);

struct Conn<S> {
    ws: WebSocketStream<S>,
    seq: u64,
    hub: Hub,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Conn<S> {
    async fn send_text(&mut self, body: &str) -> Result<(), Ended> {
        self.seq += 1;
        let text = protocol::with_seq(self.seq, body);
        // Most writes finish at once: arm the write timeout only for one that does not.
        let mut send = std::pin::pin!(self.ws.send(Message::text(text)));
        let first = std::future::poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await;
        let result = match first {
            Poll::Ready(r) => Ok(r),
            Poll::Pending => tokio::time::timeout(self.hub.inner.config.write_timeout, send).await,
        };
        match result {
            Ok(Ok(())) => {
                self.hub
                    .inner
                    .counters
                    .messages
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(_)) => Err(Ended::WriteFailed),
            // It is not reading: as good as a full queue.
            Err(_) => Err(Ended::TooSlow),
        }
    }

    async fn send_json(&mut self, value: &serde_json::Value) -> Result<(), Ended> {
        self.send_text(&value.to_string()).await
    }

    /// Sends a close frame, giving a backed-up client `patience` to read up to it.
    async fn close(mut self, code: CloseCode, reason: &str, patience: Duration) {
        let frame = CloseFrame {
            code,
            reason: reason.to_owned().into(),
        };
        let _ = tokio::time::timeout(patience, self.ws.send(Message::Close(Some(frame)))).await;
    }
}

impl Hub {
    /// Serves one WebSocket connection whose handshake is done (the caller checked the
    /// token). Returns when the connection ends.
    pub async fn serve<S>(&self, ws: WebSocketStream<S>) -> Ended
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut conn = Conn {
            ws,
            seq: 0,
            hub: self.clone(),
        };
        let config = self.inner.config.clone();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue, mut rx) = mpsc::channel(config.queue_depth.max(1));
        let all = mask_of(&dsmil_core::monitoring::MetricType::ALL);
        let mask = Arc::new(AtomicU32::new(all));
        let overflowed = Arc::new(AtomicBool::new(false));
        let kick = Arc::new(Notify::new());
        let admitted = {
            let mut clients = self
                .inner
                .clients
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let room = clients.len() < config.max_clients;
            if room {
                clients.insert(
                    id,
                    ClientSlot {
                        queue,
                        mask: mask.clone(),
                        overflowed: overflowed.clone(),
                        kick: kick.clone(),
                    },
                );
            }
            room
        };
        if !admitted {
            self.inner.counters.refused.fetch_add(1, Ordering::Relaxed);
            conn.close(CloseCode::Again, "too many clients; try again later", SHORT)
                .await;
            return Ended::Refused;
        }
        self.inner
            .counters
            .connections
            .fetch_add(1, Ordering::Relaxed);
        let mut ended = self
            .run(&mut conn, id, &mut rx, &mask, &overflowed, &kick)
            .await;
        if ended == Ended::WriteFailed && overflowed.load(Ordering::Acquire) {
            // Stuck writing because it stopped reading: the same as falling behind.
            ended = Ended::TooSlow;
        }
        self.inner
            .clients
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        tracing::debug!(client = id, reason = ?ended, "WebSocket client gone");
        match &ended {
            Ended::TooSlow => {
                self.inner
                    .counters
                    .slow_disconnects
                    .fetch_add(1, Ordering::Relaxed);
                let reason = format!(
                    "client too slow: more than {} messages waiting or a write blocked for {} ms",
                    config.queue_depth,
                    config.write_timeout.as_millis()
                );
                // It may still be reading what was queued: the reason comes after that.
                conn.close(CloseCode::Policy, &reason, SLOW_CLOSE).await;
            }
            Ended::NoPong => {
                let reason = format!("no pong for {} s", config.pong_timeout.as_secs());
                conn.close(CloseCode::Away, &reason, SHORT).await;
            }
            Ended::TooBig => {
                let reason = format!("message larger than {} bytes", config.max_message_bytes);
                conn.close(CloseCode::Size, &reason, SHORT).await;
            }
            Ended::Shutdown => {
                conn.close(CloseCode::Away, "server shutting down", SHORT)
                    .await;
            }
            Ended::ClientLeft | Ended::Refused | Ended::WriteFailed => {}
        }
        ended
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &self,
        conn: &mut Conn<S>,
        id: u64,
        rx: &mut mpsc::Receiver<Arc<str>>,
        mask: &AtomicU32,
        overflowed: &AtomicBool,
        kick: &Notify,
    ) -> Ended {
        let config = self.inner.config.clone();
        let mut stop = self.inner.shutdown.subscribe();
        if *stop.borrow() {
            return Ended::Shutdown;
        }
        let current = types_of(mask.load(Ordering::Relaxed));
        if let Err(e) = conn
            .send_json(&protocol::established(id, &current, self.node().as_deref()))
            .await
        {
            return e;
        }
        let mut snapshot = self.active_alerts();
        snapshot.extend(self.snapshot_for(mask.load(Ordering::Relaxed)));
        for m in snapshot {
            if let Err(e) = conn.send_text(&m).await {
                return e;
            }
        }
        let mut ping =
            tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
        let mut last_pong = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => return Ended::Shutdown,
                () = kick.notified() => {
                    if overflowed.load(Ordering::Acquire) {
                        return Ended::TooSlow;
                    }
                }
                incoming = conn.ws.next() => {
                    let reply = match incoming {
                        None | Some(Ok(Message::Close(_))) => return Ended::ClientLeft,
                        Some(Err(WsError::Capacity(_))) => return Ended::TooBig,
                        Some(Err(_)) => return Ended::ClientLeft,
                        Some(Ok(Message::Pong(_))) => {
                            last_pong = Instant::now();
                            continue;
                        }
                        // tungstenite answers pings itself.
                        Some(Ok(Message::Ping(_) | Message::Frame(_))) => continue,
                        Some(Ok(Message::Binary(_))) => Err(ProtocolError {
                            code: "binary_not_supported",
                            message: "binary frames are not part of the protocol; send JSON text".into(),
                        }),
                        Some(Ok(Message::Text(text))) => protocol::parse_client(&text),
                    };
                    let sent = match reply {
                        Ok(ClientMessage::Ping(echo)) => conn.send_json(&protocol::pong(echo)).await,
                        Ok(ClientMessage::Subscribe { types, ignored }) => {
                            let new = mask_of(&types);
                            let old = mask.swap(new, Ordering::AcqRel);
                            match conn
                                .send_json(&protocol::subscription_updated(&types, &ignored))
                                .await
                            {
                                Ok(()) => {
                                    let mut result = Ok(());
                                    for m in self.snapshot_for(new & !old) {
                                        result = conn.send_text(&m).await;
                                        if result.is_err() {
                                            break;
                                        }
                                    }
                                    result
                                }
                                Err(e) => Err(e),
                            }
                        }
                        Err(e) => {
                            self.inner.counters.protocol_errors.fetch_add(1, Ordering::Relaxed);
                            conn.send_json(&protocol::error(&e)).await
                        }
                    };
                    if let Err(e) = sent {
                        return e;
                    }
                }
                message = rx.recv() => {
                    let Some(message) = message else { return Ended::ClientLeft };
                    if let Err(e) = conn.send_text(&message).await {
                        return e;
                    }
                }
                _ = ping.tick() => {
                    if last_pong.elapsed() > config.pong_timeout {
                        return Ended::NoPong;
                    }
                    let sent = tokio::time::timeout(
                        config.write_timeout,
                        conn.ws.send(Message::Ping(Vec::new().into())),
                    )
                    .await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return Ended::WriteFailed;
                    }
                }
            }
        }
    }
}
