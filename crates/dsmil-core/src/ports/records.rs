//! Records across hosts: how the learning layer hands the records it stored to the other nodes
//! of a cluster ([`RecordsRelay`], provided by the cluster) and how records stored elsewhere
//! reach this node's store ([`RecordsImport`], provided by learning). Used only when each node
//! keeps its own embedded store; nodes sharing a PostgreSQL store share their records already.

use async_trait::async_trait;

use super::PortError;
use crate::learning::AgentPerformance;

/// Carries the records this node stored to every other node.
pub trait RecordsRelay: Send + Sync {
    /// Records just stored here, complete (`record_id`, `timestamp`, `embedding` and any
    /// signature filled in). Must not block the caller: a relay queues them (bounded) and
    /// counts what it had to drop.
    fn relay(&self, records: Vec<AgentPerformance>);
}

/// Stores records another node stored, as they are.
#[async_trait]
pub trait RecordsImport: Send + Sync {
    /// Stores `records` keeping their ids, times, embeddings and signatures; a record whose
    /// `record_id` is stored already is skipped. Returns how many were new. Imported records
    /// are not relayed again.
    async fn import(&self, records: Vec<AgentPerformance>) -> Result<u64, PortError>;
}
