//! Task dispatch ports: how the coordinator has a task run *somewhere* ([`TaskDispatcher`],
//! provided by the cluster: on whichever node hosts the agent) and how a node runs a task on an
//! agent it hosts, through that agent's bulkhead, breaker and retries ([`TaskExecutor`],
//! provided by coordination).
//!
//! Both sides describe a run the same way — a [`TaskRequest`] in, a [`TaskReport`] out — and
//! turn a report into the task's [`AgentResult`] with the one function
//! [`TaskReport::agent_result`], so a result journaled by the node that ran the task is byte for
//! byte the result the workflow's owner would have journaled itself.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::PortError;
use crate::ids::{AgentId, TaskId, WorkflowId};
use crate::workflow::{AgentResult, Metadata, ResourceUsage, TaskOutcome};

/// One task to run on one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRequest {
    /// The workflow it belongs to.
    pub workflow_id: WorkflowId,
    /// The task.
    pub task_id: TaskId,
    /// The replica (redundant mode), `None` for a task that is not replicated.
    pub replica: Option<u32>,
    /// The agent that runs it.
    pub agent_id: AgentId,
    /// The task in words.
    pub task_description: String,
    /// Its input.
    pub input_data: Value,
    /// Per-attempt timeout, ms.
    pub timeout_ms: u64,
    /// Retries after the first attempt.
    pub retries: u32,
    /// How many results of this task (and replica) its journal already held when it was
    /// dispatched: 0 on a first run, more when a resumed workflow runs a failed task again.
    /// With the workflow, task and replica it names one run of a task, so a resumed owner that
    /// dispatches a run still in flight is recognised as a duplicate, and a re-run is not.
    #[serde(default)]
    pub generation: u32,
}

/// Why a task did not succeed, as far as what happens next is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The agent failed (an exit code, a timeout, an invalid answer, attempts exhausted).
    Failed,
    /// The task was cancelled before it ended.
    Cancelled,
    /// The agent's circuit breaker refused it (says nothing about the agent's performance).
    CircuitOpen,
}

/// A task's failure: its kind and the whole error chain as one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// `error: cause: cause`.
    pub message: String,
}

/// What running a task came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    /// The agent's result (`Null` on failure).
    pub result: Value,
    /// Resources the agent reported.
    #[serde(default)]
    pub resource_usage: ResourceUsage,
    /// The failure, `None` on success.
    pub failure: Option<TaskFailure>,
    /// Attempts made.
    pub attempts: u32,
    /// Time inside the agent, all attempts together, µs.
    pub agent_time_us: u64,
    /// Time from the start of the run to its outcome (waiting for a slot, backoff), µs.
    pub wall_time_us: u64,
    /// The node that ran it (`None` on a single host).
    #[serde(default)]
    pub node: Option<String>,
    /// How many times a node started running the task, this run included (1 unless a node
    /// died running it; a duplicate delivery left to the node running it does not count).
    #[serde(default = "one")]
    pub deliveries: u32,
}

fn one() -> u32 {
    1
}

impl TaskReport {
    /// A failure that happened before the agent was reached (`attempts` 0).
    pub fn refused(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            result: Value::Null,
            resource_usage: ResourceUsage::new(),
            failure: Some(TaskFailure {
                kind,
                message: message.into(),
            }),
            attempts: 0,
            agent_time_us: 0,
            wall_time_us: 0,
            node: None,
            deliveries: 1,
        }
    }

    /// Whether the outcome says something about the agent's performance (a refusal or a
    /// cancellation does not): only such outcomes become performance records.
    pub fn is_recorded(&self) -> bool {
        !matches!(
            self.failure.as_ref().map(|f| f.kind),
            Some(FailureKind::Cancelled | FailureKind::CircuitOpen)
        )
    }

    /// The task's result for `request`: its metadata holds `attempts`, `wall_time_ms`, the
    /// `replica` when there is one, the `node` that ran it and `deliveries` when above 1.
    pub fn agent_result(&self, request: &TaskRequest) -> AgentResult {
        let mut metadata = Metadata::new();
        metadata.insert("attempts".into(), json!(self.attempts));
        metadata.insert("wall_time_ms".into(), json!(self.wall_time_us / 1000));
        if let Some(r) = request.replica {
            metadata.insert("replica".into(), json!(r));
        }
        if let Some(node) = &self.node {
            metadata.insert("node".into(), json!(node));
        }
        if self.deliveries > 1 {
            metadata.insert("deliveries".into(), json!(self.deliveries));
        }
        let outcome = match self.failure.as_ref().map(|f| f.kind) {
            None => TaskOutcome::Completed,
            Some(FailureKind::Cancelled) => TaskOutcome::Cancelled,
            Some(FailureKind::Failed | FailureKind::CircuitOpen) => TaskOutcome::Failed,
        };
        AgentResult {
            agent_id: request.agent_id.clone(),
            task_id: request.task_id.clone(),
            success: self.failure.is_none(),
            result_data: self.result.clone(),
            execution_time_ms: self.agent_time_us / 1000,
            resource_usage: self.resource_usage.clone(),
            error_message: self.failure.as_ref().map(|f| f.message.clone()),
            outcome,
            recovered: false,
            metadata,
        }
    }
}

/// How a dispatched task came back.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatched {
    /// What running it came to.
    pub report: TaskReport,
    /// Whether its result is already in the workflow's journal (the node that ran it appended
    /// it): the coordinator does not append it again.
    pub journaled: bool,
}

/// Runs tasks wherever their agent is hosted (provided by the cluster).
#[async_trait]
pub trait TaskDispatcher: Send + Sync {
    /// Agents some live node hosts now.
    fn agents(&self) -> Vec<AgentId>;

    /// Whether [`TaskDispatcher::agents`] is complete: `false` while this node has not yet
    /// heard from every node that may be live (just started, or just reconnected after an
    /// outage), so an agent missing from it may only not have been announced yet.
    fn knows_every_agent(&self) -> bool {
        true
    }

    /// Runs `request` on a node hosting its agent and returns once its result is known (and,
    /// when [`Dispatched::journaled`], durable). Cancelling the future abandons the wait; the
    /// dispatcher tells the running node. `Err` when the task could not be handed over at all.
    async fn dispatch(&self, request: TaskRequest) -> Result<Dispatched, PortError>;
}

/// An agent this node hosts, as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostedAgent {
    /// The agent.
    pub agent_id: AgentId,
    /// Tasks it may run at once here (its bulkhead's limit in force).
    pub capacity: usize,
    /// Tasks it runs now.
    pub in_flight: usize,
    /// Its breaker here: `closed`, `open` or `half_open`.
    pub breaker: String,
}

/// Runs tasks on the agents this node hosts (provided by coordination).
#[async_trait]
pub trait TaskExecutor: Send + Sync {
    /// The agents hosted here with their load and breaker state.
    fn hosted(&self) -> Vec<HostedAgent>;

    /// Runs `request` on its agent through the agent's bulkhead, breaker, retries and timeout.
    /// An unknown agent is a failed report, not a panic. Dropping the future cancels the run.
    async fn execute(&self, request: &TaskRequest) -> TaskReport;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(replica: Option<u32>) -> TaskRequest {
        TaskRequest {
            workflow_id: WorkflowId::new_random(),
            task_id: TaskId::new("t").unwrap(),
            replica,
            agent_id: AgentId::new("a").unwrap(),
            task_description: "d".into(),
            input_data: Value::Null,
            timeout_ms: 1000,
            retries: 0,
            generation: 0,
        }
    }

    #[test]
    fn results_carry_the_run_and_refusals_are_not_recorded() {
        let mut report = TaskReport::refused(FailureKind::CircuitOpen, "open");
        assert!(!report.is_recorded());
        let r = report.agent_result(&request(Some(2)));
        assert_eq!(r.outcome, TaskOutcome::Failed);
        assert_eq!(r.metadata["replica"], 2);
        assert!(!r.metadata.contains_key("node"));
        report.failure = None;
        report.node = Some("b".into());
        report.deliveries = 2;
        let r = report.agent_result(&request(None));
        assert!(r.success && report.is_recorded());
        assert_eq!(r.metadata["node"], "b");
        assert_eq!(r.metadata["deliveries"], 2);
        assert!(!r.metadata.contains_key("replica"));
        let back: TaskReport =
            serde_json::from_value(serde_json::to_value(&report).unwrap()).unwrap();
        assert_eq!(back, report);
    }
}
