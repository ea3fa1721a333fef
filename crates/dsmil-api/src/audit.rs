//! `GET /api/audit/proof/{seq}`: an entry's inclusion proof in the latest signed tree head
//! (RFC 9162), which `dsmilctl audit prove` checks locally; `GET /api/audit/consistency`: the
//! consistency proof between two tree sizes (what witnesses ask for); `GET
//! /api/audit/witnesses`: every node's latest head and who witnessed it.

use chrono::{DateTime, Utc};
pub use dsmil_core::ports::{ConsistencyProof, SignedTreeHead};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The proof that one entry is in a signed tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's line, exactly as written.
    pub entry: String,
    /// Its leaf hash, hex.
    pub leaf: String,
    /// The size of the signed tree.
    pub tree_size: u64,
    /// The tree's root, hex.
    pub root: String,
    /// Sibling hashes from the leaf up, hex.
    pub proof: Vec<String>,
}

/// `GET /api/audit/consistency?from=N&to=M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The older tree size (entries).
    pub from: u64,
    /// The newer tree size; at most the latest signed tree head's. Default: that size.
    #[serde(default)]
    pub to: Option<u64>,
}

/// Every node's audit log as the cluster witnesses it (`GET /api/audit/witnesses`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WitnessView {
    /// Whether this dsmild runs in a cluster (on one host no one witnesses its log).
    pub clustered: bool,
    /// Each node's log, by node id.
    pub nodes: Vec<WitnessedLog>,
}

/// One node's audit log and its witnesses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WitnessedLog {
    /// The node.
    pub node_id: String,
    /// Its latest signed tree head, if it published one.
    pub head: Option<SignedTreeHead>,
    /// What each other node holds of it.
    pub witnesses: Vec<WitnessRecord>,
}

/// What one witness holds of one node's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WitnessRecord {
    /// The witness.
    pub witness: String,
    /// Entries of the last head it accepted (signature, key and consistency checked).
    pub accepted_size: Option<u64>,
    /// Its root, hex.
    pub accepted_root: Option<String>,
    /// When.
    pub accepted_at: Option<DateTime<Utc>>,
    /// Entries of the last head it countersigned in its own audit log.
    pub cosigned_size: Option<u64>,
    /// When.
    pub cosigned_at: Option<DateTime<Utc>>,
    /// The witness's audit entry that countersigns it.
    pub audit_sequence: Option<u64>,
    /// Why the node's latest head was not accepted (a log cut back or forked, another key, a
    /// bad signature); absent while it checks out.
    pub problem: Option<String>,
    /// When the problem was found.
    pub problem_at: Option<DateTime<Utc>>,
}
