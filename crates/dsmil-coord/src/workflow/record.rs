//! Performance records: their deterministic ids, how one is made from a task's result, and the
//! recorder that hands them to the learning sink without holding up the workflow.
//!
//! A record's id is a UUIDv5 over [`RECORD_NAMESPACE`] and (workflow, task, replica): one record
//! per task outcome (a task's retries are inside its one outcome), the same id whenever the same
//! outcome is sent again — so a store that keeps a record once per id drops the copy a resumed
//! workflow sends.
//!
//! The recorder is a task per workflow fed by a channel: the task pipeline queues a record and
//! goes on, the recorder sends the records to the sink one after another, in order. The queue
//! holds at most one record per task run of its workflow (tasks × replicas), like the
//! workflow's results; the workflow waits for it to drain only after its timings are taken.

use std::sync::{Arc, Mutex};

use dsmil_core::learning::AgentPerformance;
use dsmil_core::ports::PerformanceSink;
use dsmil_core::workflow::{AgentResult, AgentTask, Metadata, WorkflowSpec};
use dsmil_core::{TaskId, WorkflowId};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::lock;

/// The namespace of performance record ids (fixed: changing it would make a resumed workflow's
/// records look new to the store).
pub const RECORD_NAMESPACE: Uuid = Uuid::from_u128(0xc0b6_ca20_d563_45f2_ac73_0099_325b_a6ec);

/// The id of the performance record of task `task`'s outcome in workflow `workflow`, run as
/// replica `replica` (0 for a task that is not replicated): a UUIDv5 over
/// [`RECORD_NAMESPACE`], the workflow id's 16 bytes, the replica (4 bytes, big-endian) and the
/// task id.
pub fn record_id(workflow: WorkflowId, task: &TaskId, replica: u32) -> Uuid {
    let mut name = Vec::with_capacity(20 + task.as_str().len());
    name.extend_from_slice(workflow.0.as_bytes());
    name.extend_from_slice(&replica.to_be_bytes());
    name.extend_from_slice(task.as_str().as_bytes());
    Uuid::new_v5(&RECORD_NAMESPACE, &name)
}

/// The performance record of `result`, task `task` of workflow `workflow` (run from `spec`):
/// the same record, with the same id, whether made when the task ended or from the journal
/// after a restart.
pub(super) fn performance_record(
    workflow: WorkflowId,
    spec: &WorkflowSpec,
    task: &AgentTask,
    result: &AgentResult,
) -> AgentPerformance {
    let mut context = Metadata::new();
    context.insert("workflow_id".into(), json!(workflow));
    context.insert("execution_mode".into(), json!(spec.execution_mode));
    if let Some(attempts) = result.metadata.get("attempts") {
        context.insert("attempts".into(), attempts.clone());
    }
    AgentPerformance {
        agent_id: result.agent_id.clone(),
        task_type: spec.workflow_type.clone(),
        task_description: task.task_description.clone(),
        execution_time_ms: result.execution_time_ms,
        success_rate: if result.success { 1.0 } else { 0.0 },
        resource_usage: result.resource_usage.clone(),
        error_details: result.error_message.clone(),
        context_factors: context,
        embedding: None,
        timestamp: None,
        tpm_signature: None,
        record_id: Some(record_id(workflow, &task.id, result.replica())),
    }
}

/// Sends one workflow's performance records to the sink in the background.
pub(super) struct Recorder {
    queue: Mutex<Option<mpsc::UnboundedSender<AgentPerformance>>>,
    drained: Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    /// A recorder for `sink`; without a sink, records are dropped.
    pub(super) fn start(workflow: WorkflowId, sink: Option<Arc<dyn PerformanceSink>>) -> Self {
        let Some(sink) = sink else {
            return Self {
                queue: Mutex::new(None),
                drained: Mutex::new(None),
            };
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<AgentPerformance>();
        let task = tokio::spawn(async move {
            while let Some(record) = rx.recv().await {
                if let Err(e) = sink.record(record).await {
                    tracing::warn!(workflow = %workflow, error = %e, "could not record a task's performance");
                }
            }
        });
        Self {
            queue: Mutex::new(Some(tx)),
            drained: Mutex::new(Some(task)),
        }
    }

    /// Queues `record` (never waits). Records queued after [`Recorder::finish`] are dropped.
    pub(super) fn send(&self, record: AgentPerformance) {
        if let Some(tx) = &*lock(&self.queue) {
            // The recorder only stops once the queue is closed, so sending cannot fail.
            let _ = tx.send(record);
        }
    }

    /// Closes the queue and waits until every record queued reached the sink.
    pub(super) async fn finish(&self) {
        lock(&self.queue).take();
        let task = lock(&self.drained).take();
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "the performance recorder failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_workflow_task_and_replica_only() {
        let w = WorkflowId::new_random();
        let t = TaskId::new("t").unwrap();
        let id = record_id(w, &t, 0);
        assert_eq!(id, record_id(w, &t, 0));
        assert_eq!(id.get_version_num(), 5);
        assert_ne!(id, record_id(w, &t, 1));
        assert_ne!(id, record_id(w, &TaskId::new("u").unwrap(), 0));
        assert_ne!(id, record_id(WorkflowId::new_random(), &t, 0));
    }
}
