//! Composes the coordination layer: agents from the configuration (their breaker transitions
//! reported to the bus and the audit log), the journal in the data dir, the learning engine as
//! advisor and performance sink, the event bus — and resumes workflows a crash interrupted.

use std::path::Path;
use std::sync::Arc;

use dsmil_coord::journal::Journal;
use dsmil_coord::registry::AgentRegistry;
use dsmil_coord::transitions::report_transitions;
use dsmil_coord::workflow::Coordinator;
use dsmil_core::EventBus;
use dsmil_core::ports::AuditSink;
use dsmil_learn::LearningEngine;

use crate::config::DaemonConfig;
use crate::error::{Context, Result};

/// File of the workflow journal, in the data dir.
pub const JOURNAL_FILE: &str = "coord.sqlite";

/// Builds the coordinator over its journal and resumes unfinished workflows in the background.
pub async fn start(
    config: &DaemonConfig,
    data_dir: &Path,
    learning: Arc<LearningEngine>,
    bus: EventBus,
    audit: Arc<dyn AuditSink>,
) -> Result<(Arc<Coordinator>, Arc<Journal>)> {
    let listener = report_transitions(Some(bus.clone()), Some(Arc::clone(&audit)));
    let registry = AgentRegistry::from_config(&config.coord.agents, Some(listener))
        .context("cannot set up the configured agents")?;
    let path = data_dir.join(JOURNAL_FILE);
    let journal = Arc::new(
        Journal::open(&path)
            .await
            .with_context(|| format!("cannot open the workflow journal {}", path.display()))?,
    );
    let coordinator = Arc::new(
        Coordinator::new(Arc::new(registry))
            .with_journal(journal.clone())
            .with_advisor(learning.clone())
            .with_sink(learning)
            .with_bus(bus)
            .with_audit(audit),
    );
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
    Ok((coordinator, journal))
}
