//! The HTTP listener: hyper's HTTP/1 connection driver with a timer and a connection cap, in
//! place of `axum::serve` (which runs hyper without a timer, so slow and idle clients were never
//! cut off, and accepts until the process runs out of file descriptors).
//!
//! - **Header and idle timeout**: a client must finish each request's headers within
//!   [`Limits::header_timeout`], counted from the connection's start and, on a kept-alive
//!   connection, from the end of the previous response; so a slowloris client and an idle
//!   kept-alive socket are both closed after it.
//! - **Connection cap**: at most [`Limits::max_connections`] HTTP connections at once. A new
//!   connection beyond it closes the connection idle the longest (no request in progress); when
//!   every connection is busy it is answered `503` with `Retry-After` and closed. Upgraded
//!   WebSocket connections leave the count: the hub's `max_clients` caps them.
//! - **File descriptors**: [`raise_fd_limit`] lifts the soft `RLIMIT_NOFILE` to the hard limit
//!   at start (systemd's soft default is 1,024), and the default cap stays below it.
//!
//! Each request carries `ConnectInfo<SocketAddr>` (the peer) as `axum::serve` gives it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// File descriptors kept free of connections below the soft limit: the stores, the journal,
/// the audit log, agents' pipes and outgoing connections need them.
pub const FD_RESERVE: u64 = 256;

/// Fewest connections the cap may allow.
pub const MIN_CONNECTIONS: usize = 8;

/// How the listener treats its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest a client may take to send a request's headers, and longest a kept-alive
    /// connection may sit idle.
    pub header_timeout: Duration,
    /// Most HTTP connections open at once.
    pub max_connections: usize,
}

/// Lifts the soft open-file limit to the hard limit; returns the soft limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(io::Error::from)?;
        tracing::info!(
            from = soft,
            to = hard,
            "raised the open-file limit to the hard limit"
        );
    }
    Ok(getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(io::Error::from)?
        .0)
}

/// The default connection cap under a soft open-file limit of `fd_limit`.
pub fn default_max_connections(fd_limit: u64) -> usize {
    let room = fd_limit.saturating_sub(FD_RESERVE);
    usize::try_from(room)
        .unwrap_or(usize::MAX)
        .max(MIN_CONNECTIONS)
}

/// A connection as the cap sees it (shared between the registry and the connection's task).
#[derive(Clone)]
struct Entry {
    /// Milliseconds since the listener started at the last byte read or written.
    last_active: Arc<AtomicU64>,
    /// Requests being answered on it now.
    in_flight: Arc<AtomicUsize>,
    /// Told to close the connection gracefully (finishing a request in progress).
    shed: Arc<Notify>,
}

/// The open connections, by number.
#[derive(Default)]
struct Registry {
    next: u64,
    open: HashMap<u64, Entry>,
}

impl Registry {
    /// The idle connection with the oldest activity, if any.
    fn oldest_idle(&self) -> Option<u64> {
        self.open
            .iter()
            .filter(|(_, e)| e.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, e)| e.last_active.load(Ordering::Relaxed))
            .map(|(id, _)| *id)
    }
}

fn lock(registry: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    registry
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A TCP stream that records when bytes last moved.
struct Tracked {
    stream: TcpStream,
    epoch: Instant,
    last_active: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Counts a request in flight until dropped (the response is ready, or the request was
/// abandoned).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn begin(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The body answered to a connection over the cap when none can be shed.
const BUSY_BODY: &str =
    r#"{"error":{"code":"too_many_connections","message":"every connection is busy; retry"}}"#;

/// The whole answer to a connection over the cap when none can be shed.
fn busy_response() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{BUSY_BODY}",
        BUSY_BODY.len()
    )
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the open connections
/// finish their requests (idle ones close at once) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let epoch = Instant::now();
    let registry = Arc::new(Mutex::new(Registry::default()));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // A peer that reset before accept() is nobody's problem; running out of file
                // descriptors is, and waiting a moment lets connections close.
                if !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let admitted = admit(&registry, limits.max_connections, epoch);
        let Some((id, entry)) = admitted else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let conn = Connection {
            stream: Tracked {
                stream,
                epoch,
                last_active: entry.last_active,
            },
            peer,
            in_flight: entry.in_flight,
            shed: entry.shed,
            drain: drain_rx.clone(),
        };
        let router = router.clone();
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            conn.run(router, limits.header_timeout).await;
            lock(&registry).open.remove(&id);
        });
    }
    // Every connection task holds a receiver: the send reaches them all, and once the last
    // task has ended (and this loop's own receiver is gone) the channel is closed.
    drop(drain_rx);
    let _ = drain_tx.send(true);
    drain_tx.closed().await;
}

/// Registers a new connection, shedding the longest-idle one when at the cap; `None` when at
/// the cap with every connection busy.
fn admit(
    registry: &Mutex<Registry>,
    max_connections: usize,
    epoch: Instant,
) -> Option<(u64, Entry)> {
    let mut reg = lock(registry);
    if reg.open.len() >= max_connections {
        let victim = reg.oldest_idle()?;
        if let Some(old) = reg.open.remove(&victim) {
            tracing::debug!(
                connection = victim,
                "connection cap reached: closing the longest-idle connection"
            );
            old.shed.notify_one();
        }
    }
    let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
    let entry = Entry {
        last_active: Arc::new(AtomicU64::new(now)),
        in_flight: Arc::new(AtomicUsize::new(0)),
        shed: Arc::new(Notify::new()),
    };
    let id = reg.next;
    reg.next += 1;
    reg.open.insert(id, entry.clone());
    Some((id, entry))
}

/// Answers a connection over the cap `503` and closes it.
async fn refuse(mut stream: TcpStream) {
    tracing::warn!("connection cap reached and every connection busy: refusing a connection");
    let answer = async {
        stream.write_all(busy_response().as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

/// One accepted connection and what can end it.
struct Connection {
    stream: Tracked,
    peer: SocketAddr,
    in_flight: Arc<AtomicUsize>,
    shed: Arc<Notify>,
    drain: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, router: Router, header_timeout: Duration) {
        let peer = self.peer;
        let in_flight = Arc::clone(&self.in_flight);
        let tower = TowerToHyperService::new(router);
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let guard = InFlight::begin(&in_flight);
            let call = hyper::service::Service::call(&tower, req);
            async move {
                let response = call.await;
                drop(guard);
                response.map_err(|never: Infallible| match never {})
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(true);
        let conn = builder
            .serve_connection(TokioIo::new(self.stream), service)
            .with_upgrades();
        let mut conn = std::pin::pin!(conn);
        let mut closing = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        // Timeouts, resets and malformed requests end connections every day.
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = self.shed.notified(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                changed = self.drain.changed(), if !closing => {
                    if changed.is_err() || *self.drain.borrow() {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_room_below_the_fd_limit() {
        assert_eq!(default_max_connections(1024), 768);
        assert_eq!(default_max_connections(524_288), 524_032);
        assert_eq!(default_max_connections(100), MIN_CONNECTIONS);
    }

    #[test]
    fn the_busy_answer_is_well_formed() {
        let text = busy_response();
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).expect("json body");
        assert_eq!(json["error"]["code"], "too_many_connections");
    }

    #[test]
    fn the_oldest_idle_connection_is_shed_first() {
        let registry = Mutex::new(Registry::default());
        let epoch = Instant::now();
        let (a, first) = admit(&registry, 3, epoch).expect("room");
        let (b, second) = admit(&registry, 3, epoch).expect("room");
        let (_, third) = admit(&registry, 3, epoch).expect("room");
        first.last_active.store(10, Ordering::Relaxed);
        second.last_active.store(5, Ordering::Relaxed);
        third.last_active.store(1, Ordering::Relaxed);
        // The third is the oldest but busy; the second is the oldest idle one.
        let _busy = InFlight::begin(&third.in_flight);
        let (_, _fourth) = admit(&registry, 3, epoch).expect("one shed");
        let open = &lock(&registry).open;
        assert!(open.contains_key(&a) && !open.contains_key(&b));
        assert_eq!(open.len(), 3);
    }

    /// Shutdown returns once the open connections are done: an idle one closes at once.
    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_returns() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let limits = Limits {
            header_timeout: Duration::from_secs(30),
            max_connections: 16,
        };
        let server = tokio::spawn(serve(listener, Router::new(), limits, async move {
            let _ = stop_rx.await;
        }));
        let mut idle = TcpStream::connect(addr).await.expect("connect");
        idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("request");
        let mut answer = [0u8; 256];
        let n = tokio::io::AsyncReadExt::read(&mut idle, &mut answer)
            .await
            .expect("answer");
        assert!(answer[..n].starts_with(b"HTTP/1.1 404"));
        let _ = stop_tx.send(());
        // A hang guard, not a speed check: before the fix this never returned.
        tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .expect("serve returned after shutdown")
            .expect("serve task");
        let mut rest = Vec::new();
        let read = tokio::io::AsyncReadExt::read_to_end(&mut idle, &mut rest).await;
        assert!(
            matches!(read, Ok(0)) || read.is_err(),
            "the idle connection was closed"
        );
    }

    #[test]
    fn a_full_house_of_busy_connections_refuses() {
        let registry = Mutex::new(Registry::default());
        let epoch = Instant::now();
        let (_, only) = admit(&registry, 1, epoch).expect("room");
        let _busy = InFlight::begin(&only.in_flight);
        assert!(admit(&registry, 1, epoch).is_none());
    }
}
