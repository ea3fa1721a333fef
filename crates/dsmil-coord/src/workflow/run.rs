//! One run of a workflow: what its tasks share (spec, agents, results so far, agent times, the
//! journal, the recorder), its events, and how it ends — the mode raced against the global
//! timeout and cancellation, the timings taken, the records drained to the sink, the end
//! journaled and published.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use dsmil_core::events::WorkflowEvent;
use dsmil_core::monitoring::{ActivityType, AgentActivity};
use dsmil_core::ports::{JournalError, JournalStore, TaskDispatcher};
use dsmil_core::workflow::{
    AgentResult, AgentTask, ExecutionMode, Metadata, WorkflowResult, WorkflowSpec, WorkflowState,
};
use dsmil_core::{AgentId, Event, EventBus, WorkflowId};
use serde_json::json;
use tokio::time::Instant;

use super::cancel::CancelToken;
use super::lock;
use super::modes;
use super::record::{Recorder, performance_record};
use crate::registry::AgentRegistry;

/// What one run shares between its tasks.
pub(super) struct Run {
    /// The workflow.
    pub(super) id: WorkflowId,
    /// What was submitted.
    pub(super) spec: WorkflowSpec,
    /// Each task's agent, by task index.
    pub(super) agents: Vec<AgentId>,
    /// The local agents (and the retry budget).
    pub(super) registry: Arc<AgentRegistry>,
    /// Where events go.
    pub(super) bus: Option<EventBus>,
    /// Where results are made durable.
    pub(super) journal: Option<Arc<dyn JournalStore>>,
    /// Where tasks run when not on the local registry (a cluster).
    pub(super) dispatcher: Option<Arc<dyn TaskDispatcher>>,
    /// Task results, in completion order.
    pub(super) results: Mutex<Vec<AgentResult>>,
    /// Agent time per task (for the critical path), set when the task's run settles.
    pub(super) times: Mutex<Vec<Duration>>,
    /// The first journal failure: the workflow fails when results cannot be made durable.
    pub(super) journal_error: Mutex<Option<JournalError>>,
    /// Successful results from before a restart, by task index: not run again.
    pub(super) previous: BTreeMap<usize, AgentResult>,
    /// Results already journaled per (task index, replica), before a restart: the generation
    /// of the task's next dispatch.
    pub(super) generations: BTreeMap<(usize, u32), u32>,
    /// Set when another node took the workflow over: the run stops without journaling more.
    pub(super) detached: Arc<AtomicBool>,
    /// Non-critical tasks wait while this is `true`.
    pub(super) paused: tokio::sync::watch::Receiver<bool>,
    /// Hands performance records to the sink.
    pub(super) recorder: Recorder,
    /// The coordinator's counts of what ran.
    pub(super) stats: Arc<super::stats::TaskStats>,
}

impl Run {
    /// Publishes an agent's task start or end.
    pub(super) fn activity(
        &self,
        agent: &AgentId,
        activity: ActivityType,
        end: Option<&AgentResult>,
    ) {
        if let Some(bus) = &self.bus {
            bus.publish(Event::AgentActivity(AgentActivity {
                timestamp: Utc::now(),
                agent_id: agent.clone(),
                workflow_id: self.id,
                activity_type: activity,
                duration_ms: end.map(|r| r.execution_time_ms),
                success: end.is_some_and(|r| r.success),
                error_message: end.and_then(|r| r.error_message.clone()),
                resource_usage: end.map(|r| r.resource_usage.clone()).unwrap_or_default(),
                metadata: Metadata::new(),
            }));
        }
    }

    /// Publishes a workflow event; `detail` is only formatted when there is a bus.
    pub(super) fn event(
        &self,
        task: Option<&AgentTask>,
        state: WorkflowState,
        detail: impl FnOnce() -> String,
    ) {
        if let Some(bus) = &self.bus {
            let detail = detail();
            bus.publish(Event::Workflow(WorkflowEvent {
                timestamp: Utc::now(),
                workflow_id: self.id,
                task_id: task.map(|t| t.id.clone()),
                state,
                detail,
            }));
        }
    }

    /// Whether another node took the workflow over (nothing more is journaled from here).
    pub(super) fn is_detached(&self) -> bool {
        self.detached.load(Ordering::Acquire)
    }

    /// Notes the agent time of task `index`'s run.
    pub(super) fn set_time(&self, index: usize, t: Duration) {
        if let Some(slot) = lock(&self.times).get_mut(index) {
            *slot = t;
        }
    }

    /// The critical path of agent time under the run's mode.
    fn critical(&self) -> Duration {
        match self.spec.execution_mode {
            ExecutionMode::Sequential | ExecutionMode::Pipeline => lock(&self.times).iter().sum(),
            ExecutionMode::Consensus | ExecutionMode::Competitive => {
                lock(&self.times).iter().copied().max().unwrap_or_default()
            }
            ExecutionMode::Parallel | ExecutionMode::Redundant => self.longest_chain(),
        }
    }

    /// Longest chain of agent time through the dependency graph.
    fn longest_chain(&self) -> Duration {
        let times = lock(&self.times).clone();
        let index: BTreeMap<&str, usize> = self
            .spec
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), i))
            .collect();
        let mut finish = vec![Duration::ZERO; times.len()];
        for i in self.spec.topological_order().unwrap_or_default() {
            let start = self.spec.tasks[i]
                .dependencies
                .iter()
                .filter_map(|d| index.get(d.as_str()).map(|&j| finish[j]))
                .max()
                .unwrap_or_default();
            finish[i] = start + times[i];
        }
        finish.into_iter().max().unwrap_or_default()
    }

    /// Runs the workflow to its end, its global timeout, `cancel` or `stop`; returns its result
    /// once its performance records reached the sink and its end is journaled.
    pub(super) async fn execute(
        self: Arc<Self>,
        mut cancel: CancelToken,
        mut stop: CancelToken,
    ) -> WorkflowResult {
        let started = Instant::now();
        let n = self.spec.tasks.len();
        // Records of results kept from before a restart are sent again (same ids: the store
        // keeps one), in case the crash came before they reached it.
        for (&i, kept) in &self.previous {
            self.recorder.send(performance_record(
                self.id,
                &self.spec,
                &self.spec.tasks[i],
                kept,
            ));
        }
        self.event(None, WorkflowState::Running, || {
            format!(
                "workflow started ({:?} mode, {n} tasks)",
                self.spec.execution_mode
            )
        });
        let deadline = Duration::from_secs(u64::from(self.spec.global_timeout_seconds));
        let body = modes::execute(Arc::clone(&self));
        let (mut state, mut success, mut metadata) = tokio::select! {
            (success, metadata) = body => (if success { WorkflowState::Completed } else { WorkflowState::Failed }, success, metadata),
            _ = tokio::time::sleep(deadline) => {
                let mut m = Metadata::new();
                m.insert("error".into(), json!(format!("global timeout of {} s reached", deadline.as_secs())));
                (WorkflowState::Failed, false, m)
            }
            _ = async { tokio::select! { _ = cancel.cancelled() => {}, _ = stop.cancelled() => {} } } => {
                let mut m = Metadata::new();
                m.insert("error".into(), json!("cancelled"));
                (WorkflowState::Cancelled, false, m)
            }
        };
        if let Some(e) = lock(&self.journal_error).take() {
            state = WorkflowState::Failed;
            success = false;
            metadata.insert(
                "error".into(),
                json!(format!(
                    "results could not be journaled: {}",
                    crate::error_chain(&e)
                )),
            );
        }
        let wall = started.elapsed();
        let critical = self.critical();
        metadata.insert(
            "critical_path_ms".into(),
            json!(critical.as_millis() as u64),
        );
        let agent_results = std::mem::take(&mut *lock(&self.results));
        let result = WorkflowResult {
            workflow_id: self.id,
            success,
            execution_mode: self.spec.execution_mode,
            state,
            total_execution_time_ms: wall.as_millis() as u64,
            agent_results,
            coordination_overhead_ms: wall.saturating_sub(critical).as_millis() as u64,
            metadata,
        };
        // The timings are taken: waiting for the sink is not coordination. The end is journaled
        // only once the records are in, so a crash before that resumes the workflow, which sends
        // them again.
        self.recorder.finish().await;
        if self.is_detached() {
            tracing::info!(workflow = %self.id, "workflow let go of: another node owns it now");
            return result;
        }
        if let Some(j) = &self.journal
            && let Err(e) = j.finish(&result).await
        {
            tracing::error!(workflow = %self.id, error = %crate::error_chain(&e), "cannot journal the workflow's end");
        }
        self.stats.workflow(state);
        self.event(None, state, || {
            format!(
                "workflow {}",
                match state {
                    WorkflowState::Completed => "completed",
                    WorkflowState::Cancelled => "cancelled",
                    _ => "failed",
                }
            )
        });
        result
    }
}
