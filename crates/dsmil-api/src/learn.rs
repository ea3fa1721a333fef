//! `/api/learn/*`: recording agent runs, asking which agent should run a task, and the
//! analyses of the history (anomalies, trends, allocation, insights). Records and predictions
//! are core's types, which are the wire shape (seed field names).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dsmil_core::AgentId;
pub use dsmil_core::learning::{AgentPerformance, LearningPrediction};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// `POST /api/learn/records`: how many of the batch were stored (a batch is all or none; a
/// record replayed with the same id is stored once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordsStored {
    /// Records new to the store.
    pub stored: u64,
    /// Records in the request.
    pub received: usize,
}

/// `POST /api/learn/predict`: a task to route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// The task in words.
    pub task_description: String,
    /// Its kind, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    /// Conditions (input size, priority, …).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: dsmil_core::workflow::Metadata,
    /// Agents not to pick.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_agents: Vec<AgentId>,
    /// Only these agents (default: every agent the daemon knows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<AgentId>>,
}

/// `GET /api/learn/anomalies?threshold_std_devs=2.0`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnomalyQuery {
    /// How many standard deviations from an agent's recent behaviour count as unusual.
    #[serde(default = "default_threshold")]
    #[param(default = 2.0)]
    pub threshold_std_devs: f64,
}

fn default_threshold() -> f64 {
    2.0
}

/// Which metric of a run was unusual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyMetric {
    /// Wall time.
    ExecutionTimeMs,
    /// Success rate.
    SuccessRate,
}

/// One run that deviates from its agent's recent behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Anomaly {
    /// The record.
    pub record_id: Uuid,
    /// Its agent.
    pub agent_id: AgentId,
    /// Its kind of task.
    pub task_type: String,
    /// When it ran.
    pub timestamp: DateTime<Utc>,
    /// The unusual metric.
    pub metric: AnomalyMetric,
    /// Its value.
    pub value: f64,
    /// The agent's recent mean.
    pub baseline_mean: f64,
    /// The agent's recent standard deviation.
    pub baseline_std_dev: f64,
    /// Standard deviations from the mean.
    pub z_score: f64,
}

/// `GET /api/learn/trends?agent_id=A&time_window_hours=24`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrendQuery {
    /// The agent.
    pub agent_id: AgentId,
    /// Hours of history. Default: 24.
    #[serde(default = "default_window")]
    #[param(default = 24)]
    pub time_window_hours: u32,
}

fn default_window() -> u32 {
    24
}

/// Where an agent's performance is heading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrendDirection {
    /// Getting better.
    Improving,
    /// Getting worse.
    Degrading,
    /// No clear change.
    Stable,
    /// Too few runs to say.
    InsufficientData,
}

/// One metric over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricTrend {
    /// Mean.
    pub mean: f64,
    /// Least-squares slope, per hour.
    pub slope_per_hour: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// An agent's performance trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrendReport {
    /// The agent.
    pub agent_id: AgentId,
    /// The window, hours.
    pub time_window_hours: u32,
    /// Runs in the window.
    pub samples: usize,
    /// Success rate (none without runs).
    pub success_rate: Option<MetricTrend>,
    /// Wall time, ms (none without runs).
    pub execution_time_ms: Option<MetricTrend>,
    /// The verdict.
    pub direction: TrendDirection,
}

/// One task waiting for an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingTask {
    /// The caller's name for it.
    pub task_id: String,
    /// The task in words.
    pub task_description: String,
    /// Kind of task, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    /// Conditions.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: dsmil_core::workflow::Metadata,
}

/// Most tasks one `POST /api/learn/allocate` may hold.
pub const MAX_ALLOCATION_TASKS: usize = 2000;

/// `POST /api/learn/allocate`: tasks to share out over agents with free slots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocateRequest {
    /// The tasks (at most [`MAX_ALLOCATION_TASKS`]).
    pub pending_tasks: Vec<PendingTask>,
    /// Free slots per agent.
    pub capacity: BTreeMap<AgentId, usize>,
}

/// The plan that maximises total expected success within capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Allocation {
    /// Task ids per agent.
    pub assignments: BTreeMap<AgentId, Vec<String>>,
    /// Tasks no slot was left for.
    pub unassigned: Vec<String>,
    /// Sum of the expected success of the assignments.
    pub total_score: f64,
}

/// `GET /api/learn/insights`: what the learning layer knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Insights {
    /// `sqlite` or `postgres`.
    pub store_backend: String,
    /// The similarity search in use.
    pub search_engine: String,
    /// Records stored.
    pub total_records: u64,
    /// Records waiting in the outbox.
    pub pending_records: u64,
    /// Agents with history.
    pub known_agents: usize,
    /// Per-agent statistics.
    pub agents: Vec<AgentStats>,
    /// The last hour across agents.
    pub last_hour: SystemSummary,
    /// The best agent and its success rate, per task type.
    pub best_agent_by_task_type: BTreeMap<String, (AgentId, f64)>,
    /// Anomalies at 2 standard deviations.
    pub anomalies: usize,
}

/// One agent's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentStats {
    /// The agent.
    pub agent_id: AgentId,
    /// Runs recorded.
    pub task_count: u64,
    /// Mean wall time, ms.
    pub avg_execution_time_ms: f64,
    /// Standard deviation of wall time, ms.
    pub execution_time_std_dev_ms: f64,
    /// Mean success rate.
    pub avg_success_rate: f64,
    /// Its latest run.
    pub last_seen: DateTime<Utc>,
}

/// Every agent over a window (seed `get_system_performance_summary`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemSummary {
    /// Agents with runs in the window.
    pub active_agents: usize,
    /// Runs in the window.
    pub total_tasks: u64,
    /// Mean wall time, ms.
    pub system_avg_time_ms: f64,
    /// Mean success rate.
    pub system_success_rate: f64,
    /// The largest per-agent standard deviation of wall time, ms.
    pub max_time_std_dev_ms: f64,
}
