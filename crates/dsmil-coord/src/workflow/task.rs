//! The per-task pipeline: a kept result is taken as it is; otherwise wait while non-critical
//! work is paused → run the task through its agent's protections ([`run_task`]) → journal the
//! result → queue its performance record for the sink → publish it on the bus. Also how a
//! skipped task is recorded.

use std::time::Duration;

use dsmil_core::monitoring::ActivityType;
use dsmil_core::workflow::{AgentResult, Metadata, TaskOutcome, WorkflowState};
use serde_json::{Value, json};

use super::lock;
use super::record::performance_record;
use super::run::Run;
use crate::agent::AgentError;
use crate::registry::AgentRuntime;
use crate::runner::{TaskRun, run_task};

impl Run {
    /// Makes `result` durable, then adds it to the run's results. A journal failure is kept
    /// (the workflow fails at its end) and the run goes on.
    async fn settle(&self, result: &AgentResult) {
        if let Some(j) = &self.journal
            && let Err(e) = j.task_result(self.id, result).await
        {
            tracing::error!(workflow = %self.id, error = %crate::error_chain(&e), "cannot journal a task result");
            lock(&self.journal_error).get_or_insert(e);
        }
        lock(&self.results).push(result.clone());
    }

    /// Records task `index` as skipped (not run) because of `reason`.
    pub(super) async fn skip(&self, index: usize, reason: String) {
        let task = &self.spec.tasks[index];
        let result = AgentResult {
            agent_id: self.agents[index].agent.id().clone(),
            task_id: task.id.clone(),
            success: false,
            result_data: Value::Null,
            execution_time_ms: 0,
            resource_usage: Default::default(),
            error_message: Some(format!("skipped: {reason}")),
            outcome: TaskOutcome::Skipped,
            recovered: false,
            metadata: Metadata::new(),
        };
        self.settle(&result).await;
        self.event(Some(task), WorkflowState::Running, || {
            format!("task {} skipped: {reason}", task.id)
        });
    }

    /// Runs task `index` on `rt` (its agent, or a replica's) with `input`; returns its result
    /// once it is journaled.
    pub(super) async fn task(
        &self,
        index: usize,
        rt: &AgentRuntime,
        input: Value,
        replica: Option<u32>,
    ) -> AgentResult {
        let task = &self.spec.tasks[index];
        if let Some(before) = self.previous.get(&index) {
            // Journaled before the restart (and its record sent again at the start).
            let mut kept = before.clone();
            kept.recovered = true;
            self.set_time(index, Duration::from_millis(kept.execution_time_ms));
            lock(&self.results).push(kept.clone());
            self.event(Some(task), WorkflowState::Running, || {
                format!(
                    "task {} finished before the restart; not run again",
                    task.id
                )
            });
            return kept;
        }
        if !self.spec.critical && *self.paused.borrow() {
            self.event(Some(task), WorkflowState::Running, || {
                format!("task {} waits: non-critical work is paused", task.id)
            });
            let mut paused = self.paused.clone();
            // The sender lives as long as the coordinator; if it is gone, go on.
            let _ = paused.wait_for(|p| !*p).await;
        }
        let agent = rt.agent.id().clone();
        self.event(Some(task), WorkflowState::Running, || {
            format!("task {} started on {agent}", task.id)
        });
        self.activity(&agent, ActivityType::TaskStart, None);
        let run = TaskRun {
            task_id: task.id.clone(),
            task_description: task.task_description.clone(),
            input_data: input,
            timeout: Duration::from_secs(u64::from(task.timeout_seconds)),
            retries: task.retry_count,
        };
        let outcome = run_task(rt, self.registry.budget(), &run).await;
        self.set_time(index, outcome.agent_time);
        let mut metadata = Metadata::new();
        metadata.insert("attempts".into(), json!(outcome.attempts));
        metadata.insert(
            "wall_time_ms".into(),
            json!(outcome.wall_time.as_millis() as u64),
        );
        if let Some(r) = replica {
            metadata.insert("replica".into(), json!(r));
        }
        let (result_data, resource_usage, error, ended) = match outcome.result {
            Ok(out) => (out.result, out.resource_usage, None, TaskOutcome::Completed),
            Err(e) => {
                let ended = match e {
                    AgentError::Cancelled => TaskOutcome::Cancelled,
                    _ => TaskOutcome::Failed,
                };
                (Value::Null, Default::default(), Some(e), ended)
            }
        };
        // Refusals say nothing about how the agent performs.
        let recorded = !matches!(
            error,
            Some(AgentError::Cancelled | AgentError::CircuitOpen { .. })
        );
        let result = AgentResult {
            agent_id: agent.clone(),
            task_id: task.id.clone(),
            success: error.is_none(),
            result_data,
            execution_time_ms: outcome.agent_time.as_millis() as u64,
            resource_usage,
            error_message: error.as_ref().map(|e| crate::error_chain(e)),
            outcome: ended,
            recovered: false,
            metadata,
        };
        self.settle(&result).await;
        if recorded {
            self.recorder
                .send(performance_record(self.id, &self.spec, task, &result));
        }
        self.event(Some(task), WorkflowState::Running, || {
            match &result.error_message {
                None => format!(
                    "task {} completed on {agent} in {} ms",
                    task.id, result.execution_time_ms
                ),
                Some(e) => format!("task {} failed on {agent}: {e}", task.id),
            }
        });
        let kind = if result.success {
            ActivityType::TaskComplete
        } else {
            ActivityType::TaskFail
        };
        self.activity(&agent, kind, Some(&result));
        result
    }
}
