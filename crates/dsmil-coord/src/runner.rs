//! Running one task on one agent through its protections, in the order
//! bulkhead → circuit breaker → retry → timeout → agent.
//!
//! The bulkhead slot is held across retries (a retrying task keeps its place); every attempt
//! asks the breaker; the timeout bounds each attempt. Dropping the future cancels the task:
//! the slot and any probe are released and a command agent's processes are killed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dsmil_core::TaskId;
use dsmil_core::ports::{FailureKind, TaskFailure, TaskReport};
use serde_json::Value;
use tokio::time::Instant;

use crate::agent::{AgentError, AgentOutput, TaskInput};
use crate::registry::AgentRuntime;
use crate::resilience::{RetryBudget, retry};

/// One task to run.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRun {
    /// The task.
    pub task_id: TaskId,
    /// In words.
    pub task_description: String,
    /// Its input.
    pub input_data: Value,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
}

/// What running a task came to: the runner's stage of a task's result (the workflow turns it
/// into the task's `AgentResult`).
#[derive(Debug)]
pub struct RunOutcome {
    /// The result or the last failure.
    pub result: Result<AgentOutput, AgentError>,
    /// Attempts made.
    pub attempts: u32,
    /// Time spent inside the agent, all attempts together.
    pub agent_time: Duration,
    /// Time from the call to the outcome (includes waiting for a slot and backoff).
    pub wall_time: Duration,
}

/// Runs `run` on `rt`, drawing retries from `budget`.
pub async fn run_task(rt: &AgentRuntime, budget: &RetryBudget, run: &TaskRun) -> RunOutcome {
    let started = Instant::now();
    let _slot = rt.bulkhead.enter().await;
    let agent_ns = AtomicU64::new(0);
    let policy = rt.retry.policy(run.retries.saturating_add(1));
    let done = retry(&policy, Some(budget), |attempt| {
        let input = TaskInput {
            task_id: run.task_id.clone(),
            task_description: run.task_description.clone(),
            input_data: run.input_data.clone(),
            attempt,
            timeout_ms: run.timeout.as_millis().min(u128::from(u64::MAX)) as u64,
        };
        let agent_ns = &agent_ns;
        async move {
            let permit = rt.breaker.acquire().map_err(|r| AgentError::CircuitOpen {
                agent: rt.agent.id().clone(),
                retry_after: r.retry_after,
            })?;
            let t = Instant::now();
            let result = match tokio::time::timeout(run.timeout, rt.agent.run(&input)).await {
                Ok(r) => r,
                Err(_) => Err(AgentError::Timeout { after: run.timeout }),
            };
            agent_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            match &result {
                Ok(_) => permit.record(true),
                Err(e) if e.counts_against_agent() => permit.record(false),
                Err(_) => drop(permit),
            }
            result
        }
    })
    .await;
    RunOutcome {
        result: done.outcome,
        attempts: done.attempts,
        agent_time: Duration::from_nanos(agent_ns.load(Ordering::Relaxed)),
        wall_time: started.elapsed(),
    }
}

impl RunOutcome {
    /// The outcome as core's [`TaskReport`] (what a task's result is made from, here and on
    /// the node that ran a dispatched task): the failure's kind and error chain, times in µs.
    pub fn report(self) -> TaskReport {
        let (result, resource_usage, failure) = match self.result {
            Ok(out) => (out.result, out.resource_usage, None),
            Err(e) => {
                let kind = match e {
                    AgentError::Cancelled => FailureKind::Cancelled,
                    AgentError::CircuitOpen { .. } => FailureKind::CircuitOpen,
                    _ => FailureKind::Failed,
                };
                let message = crate::error_chain(&e);
                (
                    Value::Null,
                    Default::default(),
                    Some(TaskFailure { kind, message }),
                )
            }
        };
        TaskReport {
            result,
            resource_usage,
            failure,
            attempts: self.attempts,
            agent_time_us: self.agent_time.as_micros().min(u128::from(u64::MAX)) as u64,
            wall_time_us: self.wall_time.as_micros().min(u128::from(u64::MAX)) as u64,
            node: None,
            deliveries: 1,
        }
    }
}
