//! What workflow runs produce: each task's [`AgentResult`] (with its typed [`TaskOutcome`])
//! and the whole run's [`WorkflowResult`] — the seed's shapes, journaled, returned by the API
//! and reported to the learning layer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ExecutionMode, Metadata, ResourceUsage, WorkflowState};
use crate::ids::{AgentId, TaskId, WorkflowId};

/// How one task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutcome {
    /// The agent returned a result (`success` is true). Also what a result journaled before
    /// outcomes were recorded reads as: check `success` with it.
    #[default]
    Completed,
    /// The agent failed after its retries, timed out, or its circuit was open.
    Failed,
    /// Not run: a task it depends on failed.
    Skipped,
    /// Stopped before it finished: the workflow was cancelled, timed out, or another replica
    /// or competitor won.
    Cancelled,
}

/// The outcome of one task attempt on one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentResult {
    /// The agent that ran the task.
    pub agent_id: AgentId,
    /// The task it ran.
    pub task_id: TaskId,
    /// Whether the agent reported success.
    pub success: bool,
    /// What the agent returned (`null` on failure).
    #[serde(default)]
    pub result_data: serde_json::Value,
    /// Wall time of the execution.
    pub execution_time_ms: u64,
    /// Resources the agent reported or that were measured.
    #[serde(default)]
    pub resource_usage: ResourceUsage,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// How it ended: completed, failed, skipped (a dependency failed) or cancelled.
    #[serde(default)]
    pub outcome: TaskOutcome,
    /// Whether this result was journaled before a restart and kept, not run again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
    /// Free-form metadata (attempts, wall time, replica, …).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Metadata,
}

impl AgentResult {
    /// The replica the result was run as (its `replica` metadata), 0 when it was not
    /// replicated: with the task id it says which run of a task this is.
    pub fn replica(&self) -> u32 {
        self.metadata
            .get("replica")
            .and_then(serde_json::Value::as_u64)
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(0)
    }

    /// Whether the task completed successfully (what recovery keeps and dependents wait for).
    pub fn succeeded(&self) -> bool {
        self.success && self.outcome == TaskOutcome::Completed
    }
}

/// The outcome of a whole workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowResult {
    /// The run.
    pub workflow_id: WorkflowId,
    /// Whether the workflow succeeded under its mode's rule.
    pub success: bool,
    /// The mode it ran in.
    pub execution_mode: ExecutionMode,
    /// Its final state.
    pub state: WorkflowState,
    /// Wall time from start to finish.
    pub total_execution_time_ms: u64,
    /// Every task result, in completion order.
    pub agent_results: Vec<AgentResult>,
    /// Wall time not spent inside agents.
    pub coordination_overhead_ms: u64,
    /// Free-form metadata (winner, consensus value, …).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Metadata,
}

impl WorkflowResult {
    /// The metadata keys a mode sets to say what the run produced, in the order they are best
    /// shown: `winner` (competitive), `consensus_value` (consensus), `output` (pipeline and
    /// competitive).
    pub const OUTCOME_KEYS: [&'static str; 3] = ["winner", "consensus_value", "output"];

    /// Why the workflow failed (`metadata.error`), when it did.
    pub fn error(&self) -> Option<&str> {
        self.metadata
            .get("error")
            .and_then(serde_json::Value::as_str)
    }

    /// What the run produced, by [`WorkflowResult::OUTCOME_KEYS`] present in its metadata.
    pub fn outputs(&self) -> Vec<(&'static str, &serde_json::Value)> {
        Self::OUTCOME_KEYS
            .iter()
            .filter_map(|k| self.metadata.get(*k).map(|v| (*k, v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_journaled_without_an_outcome_read_by_their_success() {
        let old = r#"{"agent_id":"a","task_id":"t","success":false,"execution_time_ms":1,
            "error_message":"skipped: dependency x failed","metadata":{"skipped":true}}"#;
        let r: AgentResult = serde_json::from_str(old).unwrap();
        assert!(!r.succeeded());
        assert!(!r.recovered);
        let json = serde_json::to_value(AgentResult {
            outcome: TaskOutcome::Skipped,
            ..r
        })
        .unwrap();
        assert_eq!(json["outcome"], "skipped");
        assert!(json.get("recovered").is_none());
    }
}
