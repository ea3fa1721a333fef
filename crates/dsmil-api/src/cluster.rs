//! `GET /api/cluster`: the cluster as the answering node sees it — its nodes, whether each is
//! live, what each hosts, which workflows each owns.

use chrono::{DateTime, Utc};
use dsmil_core::{AgentId, WorkflowId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The cluster view. On one host (`clustered` false) every other field is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    /// Whether this dsmild runs as a node of a cluster (`[cluster]` is configured).
    pub clustered: bool,
    /// The cluster's name (its subject and stream prefix).
    pub cluster: Option<String>,
    /// The answering node's id.
    pub node_id: Option<String>,
    /// Copies kept of the journal and the task queue.
    pub replicas: Option<usize>,
    /// The NATS server the answering node is connected to.
    pub server: Option<String>,
    /// Every node seen, the answering one included.
    pub nodes: Vec<ClusterMember>,
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterMember {
    /// Its id.
    pub node_id: String,
    /// Whether its heartbeat is current (received within three leases).
    pub live: bool,
    /// Milliseconds since its last heartbeat arrived at the answering node.
    pub last_seen_ms: u64,
    /// Its DSMIL version.
    pub version: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The agents it hosts.
    pub agents: Vec<HostedAgent>,
    /// The unfinished workflows it owns (runs and journals), as the answering node last saw
    /// their leases.
    pub workflows: Vec<WorkflowId>,
}

/// An agent a node hosts, with its load there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostedAgent {
    /// The agent.
    pub agent_id: AgentId,
    /// Tasks it may run at once on that node.
    pub capacity: usize,
    /// Tasks it runs there now.
    pub in_flight: usize,
    /// Its circuit breaker there: `closed`, `open` or `half_open`.
    pub breaker: String,
}
