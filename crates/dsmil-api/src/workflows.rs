//! `/api/workflows`: submitting a workflow, reading it back, cancelling it. The spec and result
//! are core's types, which are the wire shape (`WorkflowSpec`, `WorkflowResult`).

use chrono::{DateTime, Utc};
use dsmil_core::WorkflowId;
pub use dsmil_core::workflow::{
    AgentResult, AgentTask, Comparator, ExecutionMode, WorkflowResult, WorkflowSpec, WorkflowState,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /api/workflows?wait=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubmitQuery {
    /// Answer with the result when the workflow has finished (`true`, the default), or at once
    /// with 202 and its id (`false`).
    #[serde(default = "yes")]
    #[param(default = true)]
    pub wait: bool,
}

fn yes() -> bool {
    true
}

impl Default for SubmitQuery {
    fn default() -> Self {
        Self { wait: true }
    }
}

/// 202 to `POST /api/workflows?wait=false`: the workflow runs; poll it by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowAccepted {
    /// Its id.
    pub workflow_id: WorkflowId,
    /// `running`.
    pub state: WorkflowState,
}

/// 202 to `POST /api/workflows/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CancelAccepted {
    /// The workflow.
    pub workflow_id: WorkflowId,
    /// `true`: it is being stopped (its processes are killed; it ends `cancelled`).
    pub cancelling: bool,
}

/// `GET /api/workflows/{id}`: everything the journal knows about a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowRecord {
    /// Its id.
    pub workflow_id: WorkflowId,
    /// What was submitted.
    pub spec: WorkflowSpec,
    /// Its current state.
    pub state: WorkflowState,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// Task results so far, in completion order.
    pub results: Vec<AgentResult>,
    /// Its state changes.
    pub history: Vec<Transition>,
    /// The final result, once finished.
    pub result: Option<WorkflowResult>,
}

/// One state change of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Transition {
    /// When.
    pub at: DateTime<Utc>,
    /// The state entered.
    pub state: WorkflowState,
    /// Why.
    pub detail: String,
}
