//! What the engine's methods take and answer: prediction and allocation requests, the
//! allocation plan, the system summary and the insights (seed field names).

use std::collections::BTreeMap;

use dsmil_core::AgentId;
use dsmil_core::workflow::Metadata;
use serde::{Deserialize, Serialize};

use crate::store::AgentStats;

/// A prediction request (seed `predict_optimal_agent` arguments).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// The task in words.
    pub task_description: String,
    /// Kind of task, if known.
    #[serde(default)]
    pub task_type: Option<String>,
    /// Conditions (input size, priority, …).
    #[serde(default)]
    pub context: Metadata,
    /// Agents not to choose.
    #[serde(default)]
    pub exclude_agents: Vec<AgentId>,
    /// Choose among these; default: every agent the engine knows.
    #[serde(default)]
    pub candidates: Option<Vec<AgentId>>,
}

/// A task waiting to be allocated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingTask {
    /// The caller's name for it.
    pub task_id: String,
    /// The task in words.
    pub task_description: String,
    /// Kind of task, if known.
    #[serde(default)]
    pub task_type: Option<String>,
    /// Conditions.
    #[serde(default)]
    pub context: Metadata,
}

/// Answer of `optimize_agent_allocation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    /// Task ids per agent.
    pub assignments: BTreeMap<AgentId, Vec<String>>,
    /// Tasks left over (capacity exhausted).
    pub unassigned: Vec<String>,
    /// Sum of the predicted scores of the assignments.
    pub total_score: f64,
}

/// The seed's system performance summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemSummary {
    /// Agents with runs in the window.
    pub active_agents: usize,
    /// Runs in the window.
    pub total_tasks: u64,
    /// Mean over agents of their mean time.
    pub system_avg_time_ms: f64,
    /// Mean over agents of their mean success.
    pub system_success_rate: f64,
    /// Largest per-agent time standard deviation.
    pub max_time_std_dev_ms: f64,
}

/// Answer of `get_learning_insights`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Insights {
    /// Store backend (`sqlite`, `postgres`).
    pub store_backend: String,
    /// How similarity search runs.
    pub search_engine: String,
    /// Stored records.
    pub total_records: u64,
    /// Records waiting in the outbox.
    pub pending_records: u64,
    /// Agents known to the engine.
    pub known_agents: usize,
    /// Per-agent figures over the analysis window.
    pub agents: Vec<AgentStats>,
    /// The summary over the last hour.
    pub last_hour: SystemSummary,
    /// Per task type, the agent with the best smoothed success in the window, and that rate.
    pub best_agent_by_task_type: BTreeMap<String, (AgentId, f64)>,
    /// Anomalies in the window at the default threshold.
    pub anomalies: usize,
}
