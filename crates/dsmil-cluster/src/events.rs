//! Every node's bus events on every node: a node publishes its own events to
//! `<p>.events.<node>.<kind>` (core NATS: live, not stored) and publishes the other nodes'
//! events on its bus as relayed ([`EventBus::publish_relayed`]), so any node's WebSocket and
//! dashboard show the whole cluster, each message naming its `node`.
//!
//! - Never blocking the local bus: the relay is an ordinary bus subscriber; if it falls behind
//!   it loses events (counted), like any subscriber.
//! - Rate-bounded: each kind of event has a token bucket of `events_per_second` (burst one
//!   second's worth); an event over it is dropped and counted. Alerts and emergencies (security
//!   events) are not bounded: they are few, and must reach every dashboard.
//! - Relayed events are not relayed again, and a node's rules do not act on them (the alert
//!   engine judges its own node's events only).
//! - Alerts are state, not only events: each node keeps its active alerts in the KV bucket
//!   `<p>-alerts` (key: the node; rewritten when they change and every [`ALERTS_REFRESH`],
//!   expiring after [`ALERTS_MAX_AGE`], so a dead node's alerts leave), and a node that starts
//!   publishes the other nodes' active alerts on its bus first — its dashboards show alerts
//!   raised before it joined.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::kv::{self, Store};
use async_nats::jetstream::stream::StorageType;
use dsmil_core::events::RecvError;
use dsmil_core::monitoring::PerformanceAlert;
use dsmil_core::{Event, EventBus};
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::ClusterError;
use crate::names::Names;
use crate::publish::{DEFAULT_DEADLINE, open_bucket};

/// How often a node rewrites its active alerts in `<p>-alerts`.
pub const ALERTS_REFRESH: Duration = Duration::from_secs(10);
/// How long a node's active alerts stay in `<p>-alerts` without being rewritten.
pub const ALERTS_MAX_AGE: Duration = Duration::from_secs(60);

/// What the relay has done, for status and metrics.
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Events of this node published to the cluster.
    pub sent: AtomicU64,
    /// Events of this node dropped over the rate bound.
    pub over_rate: AtomicU64,
    /// Events of this node the relay missed because it fell behind the bus.
    pub lagged: AtomicU64,
    /// Events of other nodes published on this node's bus.
    pub received: AtomicU64,
}

/// A snapshot of [`RelayCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RelayStats {
    /// Events of this node published to the cluster.
    pub sent: u64,
    /// Events of this node dropped over the rate bound.
    pub over_rate: u64,
    /// Events the relay missed because it fell behind the bus.
    pub lagged: u64,
    /// Events of other nodes published on this node's bus.
    pub received: u64,
}

/// A token bucket: `rate` per second, holding at most one second's worth.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, rate: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The name of an event's kind, as a subject token (`system_health`, `alert`, …).
pub fn kind(event: &Event) -> &'static str {
    match event {
        Event::SystemHealth(_) => "system_health",
        Event::AgentActivity(_) => "agent_activity",
        Event::Workflow(_) => "workflow",
        Event::Security(_) => "security",
        Event::Tpm(_) => "tpm",
        Event::Device(_) => "device",
        Event::Accel(_) => "accel",
        Event::Alert(_) => "alert",
        Event::Cluster(_) => "cluster",
    }
}

/// Whether an event of this kind is relayed whatever the rate.
fn unbounded(event: &Event) -> bool {
    matches!(event, Event::Alert(_) | Event::Security(_))
}

/// The running relay of one node.
pub struct EventRelay {
    counters: Arc<RelayCounters>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for EventRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRelay")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl EventRelay {
    /// Relays node `node`'s events on `bus` to the cluster, at most `per_second` of each kind,
    /// and the other nodes' events onto `bus` (the alerts bucket kept in `replicas` copies).
    pub async fn start(
        client: Client,
        names: &Names,
        node: &str,
        bus: &EventBus,
        per_second: u32,
        replicas: usize,
    ) -> Result<Self, ClusterError> {
        let counters = Arc::new(RelayCounters::default());
        let alerts = alerts_bucket(&client, names, replicas).await?;
        let all = names.events_all();
        let incoming = client
            .subscribe(all.clone())
            .await
            .map_err(ClusterError::js(format!("subscribe to {all}")))?;
        // Subscribed first: an alert raised from now on arrives as an event.
        replay_alerts(&alerts, node, bus).await;
        let receiver = tokio::spawn(receive(
            incoming,
            format!("{}.events.{node}.", names.prefix()),
            bus.clone(),
            Arc::clone(&counters),
        ));
        let sender = tokio::spawn(send(
            Sender {
                client,
                names: names.clone(),
                node: node.to_owned(),
                rate: f64::from(per_second.max(1)),
                counters: Arc::clone(&counters),
                alerts,
            },
            bus.subscribe(),
        ));
        Ok(Self {
            counters,
            tasks: vec![sender, receiver],
        })
    }

    /// What the relay has done.
    pub fn stats(&self) -> RelayStats {
        let c = &self.counters;
        RelayStats {
            sent: c.sent.load(Ordering::Relaxed),
            over_rate: c.over_rate.load(Ordering::Relaxed),
            lagged: c.lagged.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
        }
    }

    /// Stops relaying.
    pub fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for EventRelay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How often the sender reports what it dropped.
const DROP_REPORT: Duration = Duration::from_secs(10);

/// The sending half's fixed parts.
struct Sender {
    client: Client,
    names: Names,
    node: String,
    rate: f64,
    counters: Arc<RelayCounters>,
    alerts: Store,
}

async fn alerts_bucket(
    client: &Client,
    names: &Names,
    replicas: usize,
) -> Result<Store, ClusterError> {
    let js = async_nats::jetstream::new(client.clone());
    let name = names.alerts_bucket();
    let config = kv::Config {
        bucket: name.clone(),
        description: "DSMIL active alerts of each node".to_owned(),
        history: 1,
        max_age: ALERTS_MAX_AGE,
        storage: StorageType::Memory,
        num_replicas: replicas,
        ..Default::default()
    };
    open_bucket(&js, config, DEFAULT_DEADLINE).await
}

/// Publishes the other nodes' active alerts on `bus`, as relayed from them.
async fn replay_alerts(alerts: &Store, node: &str, bus: &EventBus) {
    let Ok(mut keys) = alerts.keys().await else {
        return;
    };
    while let Some(Ok(key)) = keys.next().await {
        if key == node {
            continue;
        }
        let Ok(Some(value)) = alerts.get(&key).await else {
            continue;
        };
        let Ok(active) = serde_json::from_slice::<Vec<PerformanceAlert>>(&value) else {
            continue;
        };
        let origin: Arc<str> = Arc::from(key.as_str());
        for alert in active {
            bus.publish_relayed(Arc::clone(&origin), Event::Alert(alert));
        }
    }
}

impl Sender {
    /// Rewrites this node's active alerts in the bucket.
    async fn store_alerts(&self, active: &BTreeMap<String, PerformanceAlert>) {
        let list: Vec<&PerformanceAlert> = active.values().collect();
        let Ok(value) = serde_json::to_vec(&list) else {
            return;
        };
        if let Err(err) = self.alerts.put(&self.node, value.into()).await {
            tracing::debug!(error = %err, "cannot store this node's active alerts");
        }
    }
}

async fn send(sender: Sender, mut events: dsmil_core::Subscriber) {
    let Sender {
        client,
        names,
        node,
        rate,
        counters,
        ..
    } = &sender;
    let mut buckets: HashMap<&'static str, Bucket> = HashMap::new();
    let mut active: BTreeMap<String, PerformanceAlert> = BTreeMap::new();
    let mut refresh = tokio::time::interval(ALERTS_REFRESH);
    let mut reported = Instant::now();
    let mut dropped_since = 0u64;
    loop {
        let received = tokio::select! {
            r = events.recv() => r,
            _ = refresh.tick() => {
                sender.store_alerts(&active).await;
                continue;
            }
        };
        let published = match received {
            Ok(p) => p,
            Err(RecvError::Lagged(n)) => {
                counters.lagged.fetch_add(n, Ordering::Relaxed);
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        // Each node judges the cluster's health itself: its view is not relayed.
        if !published.is_local() || matches!(*published.event, Event::Cluster(_)) {
            continue;
        }
        let event = &*published.event;
        if let Event::Alert(alert) = event {
            if alert.auto_resolved {
                active.remove(&alert.alert_id);
            } else {
                active.insert(alert.alert_id.clone(), alert.clone());
            }
            sender.store_alerts(&active).await;
        }
        let kind = kind(event);
        let now = Instant::now();
        if !unbounded(event) {
            let bucket = buckets.entry(kind).or_insert(Bucket {
                tokens: *rate,
                at: now,
            });
            if !bucket.take(*rate, now) {
                counters.over_rate.fetch_add(1, Ordering::Relaxed);
                dropped_since += 1;
                if reported.elapsed() >= DROP_REPORT {
                    tracing::info!(
                        dropped = dropped_since,
                        "events over cluster.events_per_second were not relayed"
                    );
                    reported = Instant::now();
                    dropped_since = 0;
                }
                continue;
            }
        }
        let Ok(payload) = serde_json::to_vec(event) else {
            continue;
        };
        match client
            .publish(names.events_subject(node, kind), payload.into())
            .await
        {
            Ok(()) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => tracing::debug!(error = %err, "cannot relay an event"),
        }
    }
}

async fn receive(
    mut incoming: async_nats::Subscriber,
    own: String,
    bus: EventBus,
    counters: Arc<RelayCounters>,
) {
    let mut origins: HashMap<String, Arc<str>> = HashMap::new();
    while let Some(message) = incoming.next().await {
        let subject = message.subject.as_str();
        if subject.starts_with(&own) {
            continue;
        }
        // `<p>.events.<node>.<kind>`: the node is the second token from the end.
        let mut tokens = subject.rsplit('.');
        let (Some(_kind), Some(node)) = (tokens.next(), tokens.next()) else {
            continue;
        };
        let event: Event = match serde_json::from_slice(&message.payload) {
            Ok(e) => e,
            Err(err) => {
                tracing::debug!(subject, error = %err, "dropping an undecodable relayed event");
                continue;
            }
        };
        let origin = origins
            .entry(node.to_owned())
            .or_insert_with(|| Arc::from(node))
            .clone();
        bus.publish_relayed(origin, event);
        counters.received.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_passes_its_rate_and_refills() {
        let start = Instant::now();
        let mut b = Bucket {
            tokens: 3.0,
            at: start,
        };
        let passed = (0..10).filter(|_| b.take(3.0, start)).count();
        assert_eq!(passed, 3);
        assert!(b.take(3.0, start + Duration::from_millis(400)));
        assert!(!b.take(3.0, start + Duration::from_millis(400)));
        // Never more than a second's worth after a long pause.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| b.take(3.0, later)).count(), 3);
    }
}
