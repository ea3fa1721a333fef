//! Workflow vocabulary (seed layer 3): execution modes and states here; the specs people submit
//! (and the validation every spec passes before anything starts) as [`WorkflowSpec`]; what runs
//! produce as [`AgentResult`] and [`WorkflowResult`].

mod result;
mod spec;

pub use result::{AgentResult, TaskOutcome, WorkflowResult};
pub use spec::{AgentTask, Comparator, ParseError, SpecError, WorkflowSpec};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Free-form metadata attached to tasks, workflows and results.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// Resource usage as named numbers (`cpu`, `memory_mb`, `io_bytes`, …).
pub type ResourceUsage = BTreeMap<String, f64>;

/// Most tasks one workflow may hold.
pub const MAX_TASKS: usize = 10_000;
/// Longest accepted global timeout: one week.
pub const MAX_TIMEOUT_SECONDS: u32 = 7 * 24 * 3600;
/// Most retries a task may ask for.
pub const MAX_RETRIES: u32 = 100;
/// Most replicas redundant mode may run per task.
pub const MAX_REPLICAS: u32 = 16;

/// How the tasks of a workflow are coordinated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionMode {
    /// One task after another in dependency order; stops at the first failure.
    Sequential,
    /// Every task whose dependencies are done runs at once.
    Parallel,
    /// Tasks in order, the output of each is the input of the next.
    Pipeline,
    /// Every task runs; the workflow succeeds when a quorum of results agree.
    Consensus,
    /// Every task runs; the best result (per comparator) wins.
    Competitive,
    /// Each task runs on several replicas; the first success counts.
    Redundant,
}

impl ExecutionMode {
    /// All modes, in declaration order.
    pub const ALL: [ExecutionMode; 6] = [
        ExecutionMode::Sequential,
        ExecutionMode::Parallel,
        ExecutionMode::Pipeline,
        ExecutionMode::Consensus,
        ExecutionMode::Competitive,
        ExecutionMode::Redundant,
    ];
}

/// Lifecycle state of a workflow run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    /// Accepted, not started.
    Pending,
    /// Tasks are executing.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished unsuccessfully.
    Failed,
    /// Stopped on request (or by an emergency stop).
    Cancelled,
    /// Being resumed from the journal after a restart.
    Recovering,
}

impl WorkflowState {
    /// Whether no further transition can happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            WorkflowState::Completed | WorkflowState::Failed | WorkflowState::Cancelled
        )
    }

    /// Whether moving from `self` to `next` is a legal transition.
    pub fn can_transition_to(self, next: WorkflowState) -> bool {
        use WorkflowState::*;
        match self {
            Pending => matches!(next, Running | Cancelled | Failed),
            Running => matches!(next, Completed | Failed | Cancelled | Recovering),
            Recovering => matches!(next, Running | Failed | Cancelled),
            Completed | Failed | Cancelled => false,
        }
    }
}
