//! The typed event bus: every layer publishes what happens; the monitor (and anyone else)
//! subscribes.
//!
//! The bus is a bounded broadcast channel. Publishing never blocks; a subscriber that falls
//! more than `capacity` events behind loses the oldest ones and is told how many it missed, so
//! one slow reader can never stall the publishers or the other readers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::broadcast;
use utoipa::ToSchema;

use crate::accel::KernelPath;
use crate::device::DeviceId;
use crate::ids::{TaskId, WorkflowId};
use crate::monitoring::{AgentActivity, MetricType, PerformanceAlert, SecurityEvent, SystemHealth};
use crate::tpm::{TpmOperation, TpmResultCode};
use crate::workflow::WorkflowState;

/// A workflow or task changed state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowEvent {
    /// When.
    pub timestamp: DateTime<Utc>,
    /// Which workflow.
    pub workflow_id: WorkflowId,
    /// The task concerned, when the event is about one task.
    pub task_id: Option<TaskId>,
    /// The workflow's state after the change.
    pub state: WorkflowState,
    /// What happened, in words.
    pub detail: String,
}

/// A TPM operation finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TpmEvent {
    /// When it finished.
    pub timestamp: DateTime<Utc>,
    /// Which operation.
    pub operation: TpmOperation,
    /// Its result.
    pub result: TpmResultCode,
    /// How long it took.
    pub execution_time_us: u64,
}

/// Something was done (or refused) on a DSMIL device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeviceEvent {
    /// When.
    pub timestamp: DateTime<Utc>,
    /// Which device.
    pub device: DeviceId,
    /// `attest`, `provision_key`, `seal_config`, `write`, …
    pub action: String,
    /// Whether it was allowed (writes to quarantined devices are not).
    pub allowed: bool,
}

/// An accelerator kernel reported its throughput.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccelEvent {
    /// When.
    pub timestamp: DateTime<Utc>,
    /// Kernel name (`sha256_x16`, `top_k_cosine`, …).
    pub kernel: String,
    /// The path it ran on.
    pub path: KernelPath,
    /// Bytes (or elements) processed per second of busy time, over the work since the
    /// previous event of the same kernel.
    pub throughput_per_second: f64,
    /// The scaling factor in effect.
    pub scale: f64,
}

/// The cluster as one node sees it, every lease: what cluster alerts are raised on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterHealth {
    /// When.
    pub timestamp: DateTime<Utc>,
    /// Nodes seen (live or lost).
    pub nodes: u32,
    /// Nodes whose heartbeat has been missing for three leases.
    pub lost_nodes: Vec<String>,
    /// Agents a node hosted that no live node hosts now (tasks for them cannot run).
    pub unhosted_agents: Vec<crate::ids::AgentId>,
}

/// Everything that can travel on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// A system health sample.
    SystemHealth(SystemHealth),
    /// An agent started, finished or failed a task.
    AgentActivity(AgentActivity),
    /// A workflow changed state.
    Workflow(WorkflowEvent),
    /// A security or audit event.
    Security(SecurityEvent),
    /// A TPM operation finished.
    Tpm(TpmEvent),
    /// A DSMIL device action.
    Device(DeviceEvent),
    /// Accelerator throughput.
    Accel(AccelEvent),
    /// A threshold alert was raised or resolved.
    Alert(PerformanceAlert),
    /// The cluster's membership (each node's own view; not relayed, not a WebSocket metric).
    Cluster(ClusterHealth),
}

impl Event {
    /// When it happened (the payload's own `timestamp`).
    pub fn timestamp(&self) -> DateTime<Utc> {
        match self {
            Event::SystemHealth(e) => e.timestamp,
            Event::AgentActivity(e) => e.timestamp,
            Event::Workflow(e) => e.timestamp,
            Event::Security(e) => e.timestamp,
            Event::Tpm(e) => e.timestamp,
            Event::Device(e) => e.timestamp,
            Event::Accel(e) => e.timestamp,
            Event::Alert(e) => e.timestamp,
            Event::Cluster(e) => e.timestamp,
        }
    }

    /// The metric family clients subscribe to for this event.
    pub fn metric_type(&self) -> MetricType {
        match self {
            Event::SystemHealth(_) => MetricType::SystemHealth,
            Event::AgentActivity(_) => MetricType::AgentActivity,
            Event::Workflow(_) => MetricType::WorkflowCoordination,
            Event::Security(_) => MetricType::SecurityEvent,
            Event::Tpm(_) => MetricType::TpmEvent,
            Event::Device(_) => MetricType::DsmilDevice,
            Event::Accel(_) => MetricType::Avx512Performance,
            Event::Alert(a) => a.metric_type,
            Event::Cluster(_) => MetricType::SystemHealth,
        }
    }
}

/// An event as delivered: with the bus-wide sequence number it was published under and, for
/// an event relayed from another node of a cluster, that node's id.
/// The event is shared (`Arc`) so fan-out to many subscribers does not copy it.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// Increases by one per published event; gaps tell a subscriber what it missed.
    pub sequence: u64,
    /// The event.
    pub event: Arc<Event>,
    /// The node it happened on when that is another node (relayed by the cluster); `None` for
    /// an event of this process. Subscribers that act on events (alert rules, breaker
    /// transitions) skip relayed ones: their own node acts on them.
    pub origin: Option<Arc<str>>,
}

impl Published {
    /// Whether the event happened in this process (not relayed from another node).
    pub fn is_local(&self) -> bool {
        self.origin.is_none()
    }
}

/// Why a subscriber could not receive.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecvError {
    /// The subscriber fell behind and `0` events were dropped for it; it can keep receiving.
    #[error("subscriber lagged behind and missed {0} events")]
    Lagged(u64),
    /// Every publisher is gone.
    #[error("event bus closed")]
    Closed,
}

/// The bus. Cheap to clone; all clones share one channel.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Published>,
    sequence: Arc<AtomicU64>,
}

/// Default number of events a subscriber may fall behind before it loses some.
pub const DEFAULT_BUS_CAPACITY: usize = 4096;

impl EventBus {
    /// A bus holding up to `capacity` undelivered events per subscriber (at least 1).
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            sender,
            sequence: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Publishes `event`; returns how many subscribers will see it (0 is not an error).
    pub fn publish(&self, event: Event) -> usize {
        self.send(event, None)
    }

    /// Publishes `event` as relayed from node `origin` (see [`Published::origin`]).
    pub fn publish_relayed(&self, origin: Arc<str>, event: Event) -> usize {
        self.send(event, Some(origin))
    }

    fn send(&self, event: Event, origin: Option<Arc<str>>) -> usize {
        // The sequence is taken under the channel's ordering: concurrent publishers may deliver
        // in a different order than their sequence numbers, but numbers are never reused.
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        self.sender
            .send(Published {
                sequence,
                event: Arc::new(event),
                origin,
            })
            .unwrap_or(0)
    }

    /// A new subscriber that sees every event published from now on.
    pub fn subscribe(&self) -> Subscriber {
        Subscriber {
            receiver: self.sender.subscribe(),
        }
    }

    /// Current number of subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.sender.receiver_count()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(DEFAULT_BUS_CAPACITY)
    }
}

/// One subscription to an [`EventBus`].
#[derive(Debug)]
pub struct Subscriber {
    receiver: broadcast::Receiver<Published>,
}

impl Subscriber {
    /// Waits for the next event.
    pub async fn recv(&mut self) -> Result<Published, RecvError> {
        self.receiver.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => RecvError::Lagged(n),
            broadcast::error::RecvError::Closed => RecvError::Closed,
        })
    }

    /// The next event if one is waiting, without blocking.
    pub fn try_recv(&mut self) -> Result<Option<Published>, RecvError> {
        match self.receiver.try_recv() {
            Ok(p) => Ok(Some(p)),
            Err(broadcast::error::TryRecvError::Empty) => Ok(None),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(broadcast::error::TryRecvError::Closed) => Err(RecvError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::AlertLevel;

    fn security(n: u32) -> Event {
        Event::Security(SecurityEvent::new(
            "test",
            AlertLevel::Info,
            "core",
            format!("{n}"),
        ))
    }

    #[tokio::test]
    async fn subscribers_see_events_in_order_with_sequences() {
        let bus = EventBus::new(16);
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        assert_eq!(bus.publish(security(1)), 2);
        bus.publish(security(2));
        for sub in [&mut a, &mut b] {
            let first = sub.recv().await.unwrap();
            let second = sub.recv().await.unwrap();
            assert_eq!(second.sequence, first.sequence + 1);
            assert_eq!(first.event.metric_type(), MetricType::SecurityEvent);
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_without_blocking_publishers() {
        let bus = EventBus::new(4);
        let mut slow = bus.subscribe();
        for n in 0..10 {
            bus.publish(security(n));
        }
        assert_eq!(slow.recv().await, Err(RecvError::Lagged(6)));
        let next = slow.recv().await.unwrap();
        assert_eq!(next.sequence, 6);
    }

    #[tokio::test]
    async fn relayed_events_carry_their_node() {
        let bus = EventBus::new(4);
        let mut sub = bus.subscribe();
        bus.publish(security(1));
        bus.publish_relayed("b".into(), security(2));
        assert!(sub.recv().await.unwrap().is_local());
        let relayed = sub.recv().await.unwrap();
        assert_eq!(relayed.origin.as_deref(), Some("b"));
        assert!(!relayed.is_local());
    }

    #[tokio::test]
    async fn publishing_without_subscribers_is_fine_and_closing_is_reported() {
        let bus = EventBus::new(4);
        assert_eq!(bus.publish(security(0)), 0);
        let mut sub = bus.subscribe();
        assert_eq!(sub.try_recv(), Ok(None));
        drop(bus);
        assert_eq!(sub.recv().await, Err(RecvError::Closed));
    }

    #[test]
    fn events_serialize_with_a_type_tag_and_round_trip() {
        let event = security(7);
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "security");
        assert_eq!(json["data"]["description"], "7");
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
}
