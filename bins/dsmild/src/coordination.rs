//! Composes the coordination layer: agents from the configuration, the journal in the data dir,
//! the learning engine as advisor and performance sink, the event bus — and resumes workflows a
//! crash interrupted.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use dsmil_coord::journal::Journal;
use dsmil_coord::registry::AgentRegistry;
use dsmil_coord::resilience::BreakerState;
use dsmil_coord::workflow::Coordinator;
use dsmil_core::monitoring::{AlertLevel, SecurityEvent};
use dsmil_core::ports::AuditSink;
use dsmil_core::{DaemonConfig, Event, EventBus};
use dsmil_learn::LearningEngine;

/// File of the workflow journal, in the data dir.
pub const JOURNAL_FILE: &str = "coord.sqlite";

/// Builds the coordinator and resumes unfinished workflows in the background.
pub async fn start(
    config: &DaemonConfig,
    data_dir: &Path,
    learning: Arc<LearningEngine>,
    bus: EventBus,
    audit: Arc<dyn AuditSink>,
) -> Result<Arc<Coordinator>> {
    let breaker_bus = bus.clone();
    let breaker_audit = Arc::clone(&audit);
    // Every breaker transition goes to the log and the bus; an opening one as a warning.
    let listener: dsmil_coord::registry::TransitionListener = Arc::new(move |agent, t| {
        let state = match t.to {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        };
        tracing::warn!(%agent, from = ?t.from, to = state, reason = %t.reason, "circuit breaker");
        let event = SecurityEvent {
            timestamp: chrono::Utc::now(),
            event_type: format!("circuit_breaker_{state}"),
            severity: if t.to == BreakerState::Open {
                AlertLevel::Warning
            } else {
                AlertLevel::Info
            },
            source_component: "coord".into(),
            description: format!("circuit for agent {agent} is {state}: {}", t.reason),
            tpm_signature: None,
            affected_resources: vec![agent.to_string()],
            response_actions: match t.to {
                BreakerState::Open => vec!["calls refused until the open duration elapses".into()],
                BreakerState::HalfOpen => vec!["probe calls admitted".into()],
                BreakerState::Closed => Vec::new(),
            },
        };
        breaker_bus.publish(Event::Security(event.clone()));
        // An opening circuit is security-relevant: it goes to the audit log too.
        if t.to == BreakerState::Open
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let audit = Arc::clone(&breaker_audit);
            rt.spawn(async move {
                if let Err(e) = audit.append(event).await {
                    tracing::error!(error = %e, "cannot audit a circuit opening");
                }
            });
        }
    });
    let registry = AgentRegistry::from_config(&config.agents, Some(listener))
        .context("cannot set up the configured agents")?;
    let path = data_dir.join(JOURNAL_FILE);
    let journal = Arc::new(
        Journal::open(&path)
            .await
            .with_context(|| format!("cannot open the workflow journal {}", path.display()))?,
    );
    let coordinator = Arc::new(
        Coordinator::new(Arc::new(registry))
            .with_journal(journal)
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
    Ok(coordinator)
}
