//! `/api/emergency`: the emergency stop an operator takes and clears — on this node, or (in a
//! cluster) on every node.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How far a stop reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The answering node.
    Local,
    /// Every node of the cluster.
    Cluster,
}

/// `POST /api/emergency/stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// Why (kept with the stop and in the audit log).
    pub reason: String,
    /// `local` or `cluster`. Default: the node's `[cluster] emergency_scope` (`local` on one
    /// host).
    #[serde(default)]
    pub scope: Option<Scope>,
}

/// The emergency stop as the answering node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmergencyState {
    /// Whether this node refuses new workflows because of an emergency stop.
    pub stopped: bool,
    /// Why.
    pub reason: Option<String>,
    /// The cluster-wide stop in force, in a cluster.
    pub cluster: Option<ClusterStop>,
}

/// A cluster-wide emergency stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterStop {
    /// Why.
    pub reason: String,
    /// The node that stopped the cluster.
    pub from: String,
    /// When.
    pub at: DateTime<Utc>,
}
