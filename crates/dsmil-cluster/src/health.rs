//! The cluster's health as this node sees it, published on its bus every lease
//! ([`Event::Cluster`]): the nodes lost (no heartbeat for three leases) and the agents a node
//! hosted that no live node hosts now. The monitor's alert engine raises `cluster_nodes_lost`
//! and `cluster_agents_unhosted` alerts on it. A node that left cleanly removed its heartbeat:
//! it is not lost, and its agents are not counted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dsmil_core::events::ClusterHealth;
use dsmil_core::{AgentId, Event, EventBus};
use tokio::task::JoinHandle;

use crate::membership::Membership;

/// The cluster's health from `membership` now.
pub fn health(membership: &Membership) -> ClusterHealth {
    let members = membership.members();
    let lost_nodes: Vec<String> = members
        .iter()
        .filter(|(_, live)| !live)
        .map(|(m, _)| m.info.node_id.clone())
        .collect();
    let hosted: BTreeSet<AgentId> = membership.agents().into_iter().collect();
    let announced: BTreeSet<AgentId> = members
        .iter()
        .flat_map(|(m, _)| m.info.agents.iter().map(|a| a.agent_id.clone()))
        .collect();
    ClusterHealth {
        timestamp: Utc::now(),
        nodes: u32::try_from(members.len()).unwrap_or(u32::MAX),
        lost_nodes,
        unhosted_agents: announced.difference(&hosted).cloned().collect(),
    }
}

/// Publishes [`health`] on `bus` every `every`.
pub fn spawn(membership: Arc<Membership>, bus: EventBus, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let h = health(&membership);
            if !h.lost_nodes.is_empty() || !h.unhosted_agents.is_empty() {
                tracing::debug!(lost = ?h.lost_nodes, unhosted = ?h.unhosted_agents, "cluster health");
            }
            bus.publish(Event::Cluster(h));
        }
    })
}
