//! The messages of task dispatch: a task handed to the nodes hosting its agent, the report sent
//! back to the workflow's owner, and the cancellation of a run nobody waits for any more.

use dsmil_core::ports::{TaskReport, TaskRequest};
use serde::{Deserialize, Serialize};

use crate::names::Names;

/// A task in the tasks stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMessage {
    /// The run's identity ([`run_key`]): its message id, and the key of its report.
    pub key: String,
    /// The node that owns the workflow and waits for the report.
    pub owner: String,
    /// What to run.
    pub request: TaskRequest,
}

/// A run's report, sent to its owner by the node that ran it (after journaling it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneMessage {
    /// The run.
    pub key: String,
    /// What it came to.
    pub report: TaskReport,
}

/// A run its owner stopped waiting for (the workflow was cancelled or timed out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelMessage {
    /// The run.
    pub key: String,
}

/// The identity of one run: workflow, task, replica and generation.
pub fn run_key(request: &TaskRequest) -> String {
    Names::task_msg_id(
        request.workflow_id,
        &request.task_id,
        request.replica.unwrap_or(0),
        request.generation,
    )
}
