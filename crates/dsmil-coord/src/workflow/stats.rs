//! Counts of what ran, for `/metrics`: each agent's task outcomes and run times, and how
//! workflows ended. Kept per coordinator (per process): counters start at zero with it, as
//! Prometheus counters do.

use std::collections::BTreeMap;
use std::sync::Mutex;

use dsmil_core::AgentId;
use dsmil_core::workflow::{AgentResult, TaskOutcome, WorkflowState};

use super::lock;

/// Upper bounds (seconds) of the task duration histogram: 1 ms to 5 min.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0,
];

/// One agent's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentTaskStats {
    /// Tasks by outcome (`completed`, `failed`, `skipped`, `cancelled`).
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Cumulative counts per [`DURATION_BUCKETS`] bound, of tasks that ran.
    pub buckets: [u64; DURATION_BUCKETS.len()],
    /// Seconds of all tasks that ran.
    pub sum_seconds: f64,
    /// Tasks that ran (not skipped).
    pub count: u64,
}

/// What ran since the coordinator started.
#[derive(Debug, Default)]
pub struct TaskStats {
    agents: Mutex<BTreeMap<AgentId, AgentTaskStats>>,
    workflows: Mutex<BTreeMap<&'static str, u64>>,
}

/// The label of an outcome.
pub fn outcome_label(outcome: TaskOutcome) -> &'static str {
    match outcome {
        TaskOutcome::Completed => "completed",
        TaskOutcome::Failed => "failed",
        TaskOutcome::Skipped => "skipped",
        TaskOutcome::Cancelled => "cancelled",
    }
}

/// The label of a workflow's end state.
pub fn state_label(state: WorkflowState) -> &'static str {
    match state {
        WorkflowState::Completed => "completed",
        WorkflowState::Cancelled => "cancelled",
        WorkflowState::Failed => "failed",
        WorkflowState::Pending => "pending",
        WorkflowState::Running => "running",
        WorkflowState::Recovering => "recovering",
    }
}

impl TaskStats {
    /// Counts one task's result (a skipped task counts, without a duration).
    pub fn task(&self, result: &AgentResult) {
        let mut agents = lock(&self.agents);
        let stats = agents.entry(result.agent_id.clone()).or_default();
        *stats
            .outcomes
            .entry(outcome_label(result.outcome))
            .or_default() += 1;
        if result.outcome == TaskOutcome::Skipped {
            return;
        }
        let seconds = result.execution_time_ms as f64 / 1000.0;
        for (bound, count) in DURATION_BUCKETS.iter().zip(stats.buckets.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        stats.sum_seconds += seconds;
        stats.count += 1;
    }

    /// Counts a workflow's end.
    pub fn workflow(&self, state: WorkflowState) {
        *lock(&self.workflows).entry(state_label(state)).or_default() += 1;
    }

    /// Every agent's figures, by id.
    pub fn agents(&self) -> BTreeMap<AgentId, AgentTaskStats> {
        lock(&self.agents).clone()
    }

    /// Workflows ended, by end state.
    pub fn workflows(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.workflows).clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use dsmil_core::TaskId;

    fn result(ms: u64, outcome: TaskOutcome) -> AgentResult {
        AgentResult {
            agent_id: AgentId::new("a").unwrap(),
            task_id: TaskId::new("t").unwrap(),
            success: outcome == TaskOutcome::Completed,
            result_data: serde_json::Value::Null,
            execution_time_ms: ms,
            resource_usage: Default::default(),
            error_message: None,
            outcome,
            recovered: false,
            metadata: Default::default(),
        }
    }

    #[test]
    fn buckets_are_cumulative_and_skipped_tasks_have_no_duration() {
        let stats = TaskStats::default();
        stats.task(&result(3, TaskOutcome::Completed));
        stats.task(&result(700, TaskOutcome::Failed));
        stats.task(&result(0, TaskOutcome::Skipped));
        let a = &stats.agents()[&AgentId::new("a").unwrap()];
        assert_eq!(a.count, 2);
        assert_eq!(a.buckets[0], 0, "3 ms is over 1 ms");
        assert_eq!(a.buckets[1], 1, "3 ms is within 5 ms");
        assert_eq!(a.buckets[8], 2, "both within 1 s");
        assert!((a.sum_seconds - 0.703).abs() < 1e-9);
        assert_eq!(a.outcomes["skipped"], 1);
        stats.workflow(WorkflowState::Failed);
        assert_eq!(stats.workflows()["failed"], 1);
    }
}
