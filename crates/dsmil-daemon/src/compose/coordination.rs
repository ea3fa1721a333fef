//! Composes the coordination layer: agents from the configuration (their breaker transitions
//! reported to the bus and the audit log), the journal, the learning engine as advisor and
//! performance sink, the event bus — and resumes workflows a crash interrupted.
//!
//! On one host the journal is the SQLite file in the data dir and tasks run on this node's
//! agents. With `[cluster]` the node joins the cluster: the journal is the replicated JetStream
//! stream, tasks run on whichever node hosts their agent, this node's agents serve the tasks of
//! every node's workflows, and — unless the nodes share a PostgreSQL store — every node's
//! performance records reach every node's embedded store through the cluster.

use std::path::Path;
use std::sync::Arc;

use dsmil_cluster::ClusterNode;
use dsmil_coord::executor::LocalExecutor;
use dsmil_coord::journal::Journal;
use dsmil_coord::registry::AgentRegistry;
use dsmil_coord::transitions::report_transitions;
use dsmil_coord::workflow::Coordinator;
use dsmil_core::EventBus;
use dsmil_core::ports::{AuditSink, JournalStore};
use dsmil_learn::LearningEngine;

use crate::config::DaemonConfig;
use crate::error::{Context, Result};

/// File of the workflow journal, in the data dir.
pub const JOURNAL_FILE: &str = "coord.sqlite";

/// The coordination layer as composed.
pub struct Coordination {
    /// The coordinator.
    pub coordinator: Arc<Coordinator>,
    /// Its journal (SQLite, or the cluster's stream).
    pub journal: Arc<dyn JournalStore>,
    /// This node of the cluster, with `[cluster]`.
    pub cluster: Option<Arc<ClusterNode>>,
}

/// Builds the coordinator over its journal (joining the cluster with `[cluster]`) and resumes
/// unfinished workflows in the background.
pub async fn start(
    config: &DaemonConfig,
    data_dir: &Path,
    learning: Arc<LearningEngine>,
    bus: EventBus,
    audit: Arc<dyn AuditSink>,
) -> Result<Coordination> {
    let listener = report_transitions(Some(bus.clone()), Some(Arc::clone(&audit)));
    let mut registry = AgentRegistry::from_config(&config.coord.agents, Some(listener.clone()))
        .context("cannot set up the configured agents")?;
    if config
        .coord
        .builtins
        .enabled(config.cluster.cluster.is_some())
    {
        let added = registry
            .add_builtins(Some(listener))
            .context("cannot register the built-in agents")?;
        if !added.is_empty() {
            let names: Vec<&str> = added.iter().map(|id| id.as_str()).collect();
            tracing::info!(agents = %names.join(", "), "built-in agents registered ([builtins] enabled)");
        }
    }
    let registry = Arc::new(registry);
    let coordinator = Coordinator::new(Arc::clone(&registry))
        .with_advisor(learning.clone())
        .with_sink(learning.clone())
        .with_bus(bus.clone())
        .with_audit(audit);
    if let Some(cluster) = &config.cluster.cluster {
        let executor = Arc::new(LocalExecutor::new(registry));
        let node = Arc::new(
            ClusterNode::start(cluster, executor)
                .await
                .with_context(|| format!("cannot join cluster {:?}", cluster.name))?,
        );
        node.relay_events(&bus)
            .await
            .context("cannot relay events to the cluster")?;
        if config.learn.database_url.is_none() {
            // Each node keeps its own embedded store: records go through the cluster.
            let share = node
                .share_records(learning.clone())
                .await
                .context("cannot share performance records with the cluster")?;
            learning
                .relay_to(share)
                .context("cannot relay performance records to the cluster")?;
        }
        let journal = node.journal();
        let coordinator = Arc::new(
            coordinator
                .with_journal(Arc::clone(&journal))
                .with_dispatcher(node.dispatcher()),
        );
        // Unfinished workflows are resumed by whichever node claims their lease — this one
        // included, for its own after a restart — not by `recover()`.
        node.serve_workflows(Arc::new(dsmil_coord::workflow::Host(Arc::clone(
            &coordinator,
        ))))
        .await
        .context("cannot serve this node's workflows to the cluster")?;
        return Ok(Coordination {
            coordinator,
            journal,
            cluster: Some(node),
        });
    }
    let path = data_dir.join(JOURNAL_FILE);
    let journal: Arc<dyn JournalStore> = Arc::new(
        Journal::open(&path)
            .await
            .with_context(|| format!("cannot open the workflow journal {}", path.display()))?,
    );
    let coordinator = Arc::new(coordinator.with_journal(Arc::clone(&journal)));
    let resumed = coordinator
        .recover()
        .await
        .context("cannot resume the workflows the journal shows unfinished")?;
    for (id, handle) in resumed {
        tracing::info!(workflow = %id, "resuming a workflow interrupted by a restart");
        tokio::spawn(async move {
            if let Ok(result) = handle.await {
                tracing::info!(workflow = %id, success = result.success, "resumed workflow finished");
            }
        });
    }
    Ok(Coordination {
        coordinator,
        journal,
        cluster: None,
    })
}
