//! The hub: every connected client, the latest value of each metric type, and the pump that
//! turns bus events into messages. Fan-out never waits for a client: each client has a bounded
//! queue, and a client whose queue is full is disconnected with a clear close reason instead of
//! slowing the others.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use dsmil_core::monitoring::{MetricType, PerformanceAlert};
use dsmil_core::{EventBus, Subscriber, events::RecvError};
use serde::Serialize;
use tokio::sync::{Notify, mpsc, watch};

use super::protocol::{self, Audience};
use crate::config::WebSocketLimits;

/// Hub settings: the `[websocket]` limits as durations (tests use sub-second timings). The
/// defaults are [`WebSocketLimits`]'s.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Messages a client may have waiting before it is disconnected as too slow.
    pub queue_depth: usize,
    /// Largest message (and frame) a client may send, bytes.
    pub max_message_bytes: usize,
    /// How often the server pings each client.
    pub ping_interval: Duration,
    /// A client that has not answered a ping for this long is closed.
    pub pong_timeout: Duration,
    /// A write to a client that takes longer than this ends the connection.
    pub write_timeout: Duration,
    /// Most clients at once; more are refused.
    pub max_clients: usize,
}

impl Default for HubConfig {
    /// The `[websocket]` defaults.
    fn default() -> Self {
        Self::from(&WebSocketLimits::default())
    }
}

impl From<&WebSocketLimits> for HubConfig {
    /// The hub configured from a daemon's `[websocket]` limits.
    fn from(limits: &WebSocketLimits) -> Self {
        Self {
            queue_depth: limits.queue_depth,
            max_message_bytes: limits.max_message_bytes,
            ping_interval: limits.ping_interval(),
            pong_timeout: limits.pong_timeout(),
            write_timeout: limits.write_timeout(),
            max_clients: limits.max_clients,
        }
    }
}

/// Counters for `/api/status` and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub refused: AtomicU64,
    pub slow_disconnects: AtomicU64,
    pub messages: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub lagged_events: AtomicU64,
}

/// What the hub has done, for status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HubStats {
    /// Clients connected now.
    pub clients: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Connections refused (too many clients).
    pub refused_total: u64,
    /// Clients disconnected because their queue filled.
    pub slow_disconnects_total: u64,
    /// Messages written to clients.
    pub messages_total: u64,
    /// Client messages answered with `error`.
    pub protocol_errors_total: u64,
    /// Bus events the hub missed because it fell behind.
    pub lagged_events_total: u64,
}

/// One connected client as the pump sees it.
pub(crate) struct ClientSlot {
    pub queue: mpsc::Sender<Arc<str>>,
    /// Bit `i` set: subscribed to `MetricType::ALL[i]`.
    pub mask: Arc<AtomicU32>,
    pub overflowed: Arc<AtomicBool>,
    pub kick: Arc<Notify>,
}

/// The node an event happened on: `None` for this node.
pub(crate) type Origin = Option<Arc<str>>;

/// An active alert: its node and its id.
pub(crate) type AlertKey = (Origin, String);

pub(crate) struct HubInner {
    pub config: HubConfig,
    pub clients: RwLock<HashMap<u64, ClientSlot>>,
    /// Latest message per metric type and node (`None`: this node), marked as a snapshot.
    pub snapshot: RwLock<BTreeMap<(MetricType, Origin), Arc<str>>>,
    /// The latest `alert` message of every active alert, by node (`None`: this node) and
    /// alert id (resolved ones leave).
    pub active_alerts: RwLock<BTreeMap<AlertKey, Arc<str>>>,
    /// This node's id in a cluster ([`Hub::set_node`]): messages of its own events name it.
    pub node: OnceLock<Arc<str>>,
    pub next_id: AtomicU64,
    pub counters: Counters,
    pub shutdown: watch::Sender<bool>,
    /// Where the active alerts are re-read after the pump fell behind the bus.
    pub alert_source: OnceLock<AlertSource>,
}

/// The alerts active now, from their owner (the alert engine's
/// [`AlertsView`](crate::alerts::AlertsView)); see [`Hub::set_alert_source`].
pub type AlertSource = Arc<dyn Fn() -> Vec<PerformanceAlert> + Send + Sync>;

/// The WebSocket hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("stats", &self.stats()).finish()
    }
}

/// The bit of a metric type in a subscription mask.
pub(crate) fn bit(t: MetricType) -> u32 {
    let i = MetricType::ALL.iter().position(|m| *m == t).unwrap_or(0);
    1 << i
}

/// The mask of a subscription.
pub(crate) fn mask_of(types: &[MetricType]) -> u32 {
    types.iter().fold(0, |m, t| m | bit(*t))
}

/// The types in a mask, in declaration order.
pub(crate) fn types_of(mask: u32) -> Vec<MetricType> {
    MetricType::ALL
        .iter()
        .copied()
        .filter(|t| mask & bit(*t) != 0)
        .collect()
}

impl Hub {
    /// A hub with no clients; call [`Hub::pump`] to feed it from the bus.
    pub fn new(config: HubConfig) -> Self {
        let (shutdown, _) = watch::channel(false);
        Self {
            inner: Arc::new(HubInner {
                config,
                clients: RwLock::new(HashMap::new()),
                snapshot: RwLock::new(BTreeMap::new()),
                active_alerts: RwLock::new(BTreeMap::new()),
                next_id: AtomicU64::new(1),
                counters: Counters::default(),
                shutdown,
                alert_source: OnceLock::new(),
                node: OnceLock::new(),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Counters.
    pub fn stats(&self) -> HubStats {
        let c = &self.inner.counters;
        HubStats {
            clients: self.client_count() as u64,
            connections_total: c.connections.load(Ordering::Relaxed),
            refused_total: c.refused.load(Ordering::Relaxed),
            slow_disconnects_total: c.slow_disconnects.load(Ordering::Relaxed),
            messages_total: c.messages.load(Ordering::Relaxed),
            protocol_errors_total: c.protocol_errors.load(Ordering::Relaxed),
            lagged_events_total: c.lagged_events.load(Ordering::Relaxed),
        }
    }

    /// Clients connected now.
    pub fn client_count(&self) -> usize {
        self.inner
            .clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Spawns the task that forwards every bus event to the clients (until the bus closes or
    /// [`Hub::shutdown`]). Only events published after this call are seen: an embedder whose
    /// components publish while it is still wiring the hub should subscribe first and use
    /// [`Hub::pump_from`].
    pub fn pump(&self, bus: &EventBus) -> tokio::task::JoinHandle<()> {
        self.pump_from(bus.subscribe())
    }

    /// Like [`Hub::pump`], from a subscription taken earlier, so that events published between
    /// then and now (an alert raised by the first health sample, say) still reach the snapshot
    /// that new clients are sent.
    pub fn pump_from(&self, mut events: Subscriber) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        let mut stop = self.inner.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    r = events.recv() => r,
                    _ = stop.changed() => return,
                };
                match received {
                    Ok(published) => hub.deliver(&published),
                    Err(RecvError::Lagged(n)) => {
                        hub.inner
                            .counters
                            .lagged_events
                            .fetch_add(n, Ordering::Relaxed);
                        tracing::warn!(missed = n, "the WebSocket hub fell behind the event bus");
                        hub.resync_alerts();
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        })
    }

    /// Sends one bus event to the clients it concerns and remembers it as the latest of its
    /// type.
    pub fn deliver(&self, published: &dsmil_core::Published) {
        let local = self.inner.node.get().map(|n| &**n);
        for (audience, mut message) in protocol::event_messages(published, local) {
            let body: Arc<str> = Arc::from(message.to_string());
            if let Audience::Subscribers(t) = audience {
                message["snapshot"] = serde_json::Value::Bool(true);
                self.inner
                    .snapshot
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(
                        (t, published.origin.clone()),
                        Arc::from(message.to_string()),
                    );
            } else if message["type"] == "alert"
                && let Some(id) = message["data"]["alert_id"].as_str().map(str::to_owned)
            {
                let id = (published.origin.clone(), id);
                let mut alerts = self
                    .inner
                    .active_alerts
                    .write()
                    .unwrap_or_else(|p| p.into_inner());
                if message["data"]["auto_resolved"] == true {
                    alerts.remove(&id);
                } else {
                    message["snapshot"] = serde_json::Value::Bool(true);
                    alerts.insert(id, Arc::from(message.to_string()));
                }
            }
            let wanted = match audience {
                Audience::Subscribers(t) => Some(bit(t)),
                Audience::Everyone => None,
            };
            let clients = self.inner.clients.read().unwrap_or_else(|p| p.into_inner());
            for slot in clients.values() {
                if wanted.is_some_and(|b| slot.mask.load(Ordering::Relaxed) & b == 0) {
                    continue;
                }
                if let Err(mpsc::error::TrySendError::Full(_)) = slot.queue.try_send(body.clone())
                    && !slot.overflowed.swap(true, Ordering::AcqRel)
                {
                    slot.kick.notify_one();
                }
            }
        }
    }

    /// Gives the hub the owner of the active alerts. Events the pump misses because it fell
    /// behind the bus may include alerts raised or resolved; after such a gap the hub replaces
    /// the alerts it replays to new clients with the source's. Without a source the list
    /// stays as the events left it. Returns false when a source was already set.
    pub fn set_alert_source(&self, source: AlertSource) -> bool {
        self.inner.alert_source.set(source).is_ok()
    }

    /// Names this node (its cluster `node_id`): messages of its own events carry it as
    /// `node`, as relayed events carry theirs. Returns false when a name was already set.
    pub fn set_node(&self, node: &str) -> bool {
        self.inner.node.set(Arc::from(node)).is_ok()
    }

    /// This node's name, when set.
    pub(crate) fn node(&self) -> Option<Arc<str>> {
        self.inner.node.get().cloned()
    }

    /// Replaces this node's active alerts with the source's, when there is one (other nodes'
    /// alerts stay as their relayed events left them).
    fn resync_alerts(&self) {
        let Some(source) = self.inner.alert_source.get() else {
            return;
        };
        let node = self.node();
        let fresh: Vec<(AlertKey, Arc<str>)> = source()
            .into_iter()
            .map(|alert| {
                let mut message = protocol::alert_message(&alert, None, true);
                if let Some(node) = &node {
                    message["node"] = serde_json::Value::String(node.to_string());
                }
                (
                    (None, alert.alert_id.clone()),
                    Arc::from(message.to_string()),
                )
            })
            .collect();
        tracing::info!(
            active = fresh.len(),
            "active alerts re-read from the alert engine"
        );
        let mut alerts = self
            .inner
            .active_alerts
            .write()
            .unwrap_or_else(|p| p.into_inner());
        alerts.retain(|(origin, _), _| origin.is_some());
        alerts.extend(fresh);
    }

    /// The latest `alert` message of every active alert.
    pub(crate) fn active_alerts(&self) -> Vec<Arc<str>> {
        self.inner
            .active_alerts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The latest message of each type in `mask`.
    pub(crate) fn snapshot_for(&self, mask: u32) -> Vec<Arc<str>> {
        self.inner
            .snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((t, _), _)| mask & bit(*t) != 0)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Closes every connection ("server shutting down", so dashboards reconnect) and stops the
    /// pump.
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
    }
}
