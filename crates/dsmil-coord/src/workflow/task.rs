//! The per-task pipeline: a kept result is taken as it is; otherwise wait while non-critical
//! work is paused → run the task through its agent's protections (here, or on the node that
//! hosts its agent through the dispatcher) → journal the result (unless that node did) → queue its performance record for the sink → publish it on the bus. Also how a
//! skipped task is recorded.

use std::time::Duration;

use std::sync::Arc;

use dsmil_core::monitoring::ActivityType;
use dsmil_core::ports::{FailureKind, TaskReport, TaskRequest};
use dsmil_core::workflow::{AgentResult, Metadata, TaskOutcome, WorkflowState};
use serde_json::Value;

use super::lock;
use super::record::performance_record;
use super::run::Run;
use crate::executor::LocalExecutor;

impl Run {
    /// Makes `result` durable, then adds it to the run's results. A journal failure is kept
    /// (the workflow fails at its end) and the run goes on.
    async fn settle(&self, result: &AgentResult) {
        if self.is_detached() {
            // Another node owns the workflow now; what it journals counts.
            lock(&self.results).push(result.clone());
            return;
        }
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
            agent_id: self.agents[index].clone(),
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
        self.stats.task(&result);
        self.event(Some(task), WorkflowState::Running, || {
            format!("task {} skipped: {reason}", task.id)
        });
    }

    /// Runs task `index` with `input` (as replica `replica` in redundant mode) — on the local
    /// registry, or through the dispatcher on whichever node hosts its agent; returns its result
    /// once it is journaled.
    pub(super) async fn task(
        &self,
        index: usize,
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
        let agent = self.agents[index].clone();
        self.event(Some(task), WorkflowState::Running, || {
            format!("task {} started on {agent}", task.id)
        });
        self.activity(&agent, ActivityType::TaskStart, None);
        let request = TaskRequest {
            workflow_id: self.id,
            task_id: task.id.clone(),
            replica,
            agent_id: agent.clone(),
            task_description: task.task_description.clone(),
            input_data: input,
            timeout_ms: u64::from(task.timeout_seconds).saturating_mul(1000),
            retries: task.retry_count,
            generation: self
                .generations
                .get(&(index, replica.unwrap_or(0)))
                .copied()
                .unwrap_or(0),
        };
        let (report, journaled) = match &self.dispatcher {
            Some(d) => match d.dispatch(request.clone()).await {
                Ok(done) => (done.report, done.journaled),
                Err(e) => (
                    TaskReport::refused(
                        FailureKind::Failed,
                        format!("cannot dispatch the task: {}", crate::error_chain(&e)),
                    ),
                    false,
                ),
            },
            None => (
                LocalExecutor::new(Arc::clone(&self.registry))
                    .run(&request)
                    .await,
                false,
            ),
        };
        self.set_time(index, Duration::from_micros(report.agent_time_us));
        let result = report.agent_result(&request);
        self.stats.task(&result);
        if journaled {
            lock(&self.results).push(result.clone());
        } else {
            self.settle(&result).await;
        }
        if report.is_recorded() {
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
