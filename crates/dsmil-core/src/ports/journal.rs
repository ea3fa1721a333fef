//! The workflow journal port: where every state change and task result of a workflow is made
//! durable before the coordinator acts on it, and from which unfinished workflows are resumed.
//!
//! Two backends implement it: coordination's SQLite file (one host, the default) and the
//! cluster's replicated JetStream stream. [`crate::conformance::journal`] (feature `testenv`) is
//! the one test suite both run.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::WorkflowId;
use crate::workflow::{AgentResult, WorkflowResult, WorkflowSpec, WorkflowState};

/// One state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalTransition {
    /// When.
    pub at: DateTime<Utc>,
    /// The state entered.
    pub state: WorkflowState,
    /// Why.
    pub detail: String,
}

/// Everything the journal knows about a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRecord {
    /// Its id.
    pub workflow_id: WorkflowId,
    /// What was submitted.
    pub spec: WorkflowSpec,
    /// Its current state.
    pub state: WorkflowState,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// Task results so far, in the order they were journaled.
    pub results: Vec<AgentResult>,
    /// Its history.
    pub history: Vec<JournalTransition>,
    /// The final result, once finished.
    pub result: Option<WorkflowResult>,
}

/// Any backend error kept as a journal failure's cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A journal failure: the backend's own error (SQLite's, JetStream's), whole — its message and
/// its chain of sources are the backend's.
#[derive(Debug, Error)]
#[error(transparent)]
pub struct JournalError(pub BoxError);

impl JournalError {
    /// Wraps a backend error.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self(error.into())
    }

    /// The backend's error as type `E`, when it is one.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

/// Where workflows are journaled. Every method returns once its write is as durable as the
/// backend makes it (SQLite: fsync'd; JetStream: acknowledged by a quorum of servers).
#[async_trait]
pub trait JournalStore: Send + Sync + std::fmt::Debug {
    /// Records a new workflow as `state` (pending, or running at once).
    async fn create(
        &self,
        id: WorkflowId,
        spec: &WorkflowSpec,
        state: WorkflowState,
    ) -> Result<(), JournalError>;

    /// Records a state change with why.
    async fn transition(
        &self,
        id: WorkflowId,
        state: WorkflowState,
        detail: &str,
    ) -> Result<(), JournalError>;

    /// Records a task result. Every call appends one: a failed run and its re-run are both
    /// kept, in the order they were recorded.
    async fn task_result(&self, id: WorkflowId, result: &AgentResult) -> Result<(), JournalError>;

    /// Records the final result and state.
    async fn finish(&self, result: &WorkflowResult) -> Result<(), JournalError>;

    /// Everything about workflow `id`, `None` if it was never journaled.
    async fn get(&self, id: WorkflowId) -> Result<Option<WorkflowRecord>, JournalError>;

    /// Workflows not finished (pending, running or recovering), oldest first.
    async fn unfinished(&self) -> Result<Vec<WorkflowRecord>, JournalError>;
}
