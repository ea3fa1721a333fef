//! Workflows: a validated spec run in one of six execution modes.
//!
//! - **sequential**: tasks in dependency order, one at a time; stops at the first failure unless
//!   `continue_on_failure` (then dependents of a failed task are skipped);
//! - **parallel**: a task starts as soon as its own dependencies have succeeded — no batch
//!   barriers; dependents of a failed task are skipped with the reason;
//! - **pipeline**: tasks in order, each one's result is the next one's `input_data`;
//! - **consensus**: every task runs; the workflow succeeds when at least `quorum` results agree
//!   (the whole result, or one `consensus_field`); otherwise it fails with the votes;
//! - **competitive**: every task runs; `fastest` takes the first success and cancels the rest,
//!   `highest_score` the success with the largest numeric `score`;
//! - **redundant**: each task (in dependency order, like parallel) runs on up to `replicas`
//!   replicas, a new one started every `hedge_delay_ms` while none has succeeded; the first
//!   success wins and the others are cancelled.
//!
//! The global timeout and outside cancellation stop everything still running (processes are
//! killed); the results so far are kept. `coordination_overhead_ms` is the wall time minus the
//! critical path of agent time (the longest dependency chain, the sum in sequence, the slowest
//! member of a concurrent group).

mod cancel;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use dsmil_core::events::WorkflowEvent;
use dsmil_core::learning::AgentPerformance;
use dsmil_core::monitoring::{ActivityType, AgentActivity, AlertLevel, SecurityEvent};
use dsmil_core::ports::{
    AdviceRequest, AgentAdvisor, AuditSink, PerformanceSink, PortError, Throttle,
};
use dsmil_core::workflow::{
    AgentResult, AgentTask, Comparator, ExecutionMode, Metadata, SpecError, TaskOutcome,
    WorkflowResult, WorkflowSpec, WorkflowState,
};
use dsmil_core::{AgentId, AgentRef, Event, EventBus, WorkflowId};
use serde_json::{Value, json};
use thiserror::Error;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use cancel::{CancelHandle, CancelToken, cancel_pair};

use crate::agent::AgentError;
use crate::journal::{Journal, JournalError};
use crate::registry::{AgentRegistry, AgentRuntime};
use crate::runner::{TaskOutcome as RunOutcome, TaskRun, run_task};

/// Default delay between hedged replicas.
pub const DEFAULT_HEDGE_DELAY: Duration = Duration::from_millis(100);
/// Default replicas per task in redundant mode.
pub const DEFAULT_REPLICAS: u32 = 2;

/// Why a workflow could not start.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum WorkflowError {
    /// The spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A task names an agent that is not registered.
    #[error("tasks[{index}] ({task}): unknown agent {agent:?}; registered: {known}")]
    UnknownAgent {
        /// Position of the task.
        index: usize,
        /// The task id.
        task: String,
        /// The agent it names.
        agent: String,
        /// The registered agents.
        known: String,
    },
    /// The coordinator is shutting down; no workflow starts any more.
    #[error("the coordinator is shutting down; no workflow starts")]
    ShuttingDown,
    /// An emergency stop is in force; no workflow starts until it is cleared.
    #[error("emergency stop in force ({0}); no workflow starts until it is cleared")]
    Emergency(String),
    /// The journal could not record the workflow.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// `auto` could not be resolved.
    #[error("tasks[{index}] ({task}): no agent for `auto`: {reason}")]
    NoAgent {
        /// Position of the task.
        index: usize,
        /// The task id.
        task: String,
        /// Why.
        reason: String,
    },
}

/// Runs workflows on a registry of agents.
pub struct Coordinator {
    registry: Arc<AgentRegistry>,
    advisor: Option<Arc<dyn AgentAdvisor>>,
    sink: Option<Arc<dyn PerformanceSink>>,
    bus: Option<EventBus>,
    journal: Option<Arc<Journal>>,
    audit: Option<Arc<dyn AuditSink>>,
    active: Mutex<HashMap<WorkflowId, CancelHandle>>,
    /// `true` while non-critical work is paused.
    paused: tokio::sync::watch::Sender<bool>,
    /// Why new workflows are refused, during an emergency stop.
    emergency: Mutex<Option<String>>,
    /// Set once [`Coordinator::shutdown`] begins: new workflows are refused.
    closing: std::sync::atomic::AtomicBool,
    /// Told whenever a workflow stops running.
    finished: tokio::sync::Notify,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("agents", &self.registry.len())
            .finish()
    }
}

/// One task's end as the modes see it.
#[derive(Debug, Clone)]
struct Done {
    success: bool,
    result: Value,
    agent_time: Duration,
}

/// What one run shares between its tasks.
struct Ctx {
    id: WorkflowId,
    spec: WorkflowSpec,
    agents: Vec<Arc<AgentRuntime>>,
    registry: Arc<AgentRegistry>,
    sink: Option<Arc<dyn PerformanceSink>>,
    bus: Option<EventBus>,
    results: Mutex<Vec<AgentResult>>,
    /// Agent time per task (critical path), set when the task ends.
    times: Mutex<Vec<Duration>>,
    journal: Option<Arc<Journal>>,
    /// The first journal failure: the workflow fails when results cannot be made durable.
    journal_error: Mutex<Option<String>>,
    /// Successful results from before a restart, by task index: not run again.
    previous: BTreeMap<usize, AgentResult>,
    /// Non-critical tasks wait while this is `true`.
    paused: tokio::sync::watch::Receiver<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ctx {
    /// Publishes an agent's task start or end.
    fn activity(&self, agent: &AgentId, activity: ActivityType, end: Option<(&AgentResult, u64)>) {
        if let Some(bus) = &self.bus {
            bus.publish(Event::AgentActivity(AgentActivity {
                timestamp: Utc::now(),
                agent_id: agent.clone(),
                workflow_id: self.id,
                activity_type: activity,
                duration_ms: end.map(|(_, ms)| ms),
                success: end.is_some_and(|(r, _)| r.success),
                error_message: end.and_then(|(r, _)| r.error_message.clone()),
                resource_usage: end
                    .map(|(r, _)| r.resource_usage.clone())
                    .unwrap_or_default(),
                metadata: Metadata::new(),
            }));
        }
    }

    /// Publishes a workflow event; `detail` is only formatted when there is a bus.
    fn event(
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

    /// Appends a task result, durable in the journal first.
    async fn push_result(&self, result: AgentResult) {
        if let Some(j) = &self.journal
            && let Err(e) = j.task_result(self.id, &result).await
        {
            tracing::error!(workflow = %self.id, error = %e, "cannot journal a task result");
            lock(&self.journal_error).get_or_insert_with(|| e.to_string());
        }
        lock(&self.results).push(result);
    }

    async fn record_skip(&self, index: usize, reason: String) {
        let task = &self.spec.tasks[index];
        self.event(Some(task), WorkflowState::Running, || {
            format!("task {} skipped: {reason}", task.id)
        });
        self.push_result(AgentResult {
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
        })
        .await;
    }

    /// Runs task `index` on `rt` (its agent, or a replica's) with `input`.
    async fn run(
        &self,
        index: usize,
        rt: &AgentRuntime,
        input: Value,
        replica: Option<u32>,
    ) -> Done {
        let task = &self.spec.tasks[index];
        if let Some(before) = self.previous.get(&index) {
            let mut kept = before.clone();
            kept.recovered = true;
            self.event(Some(task), WorkflowState::Running, || {
                format!(
                    "task {} finished before the restart; not run again",
                    task.id
                )
            });
            lock(&self.results).push(kept.clone());
            return Done {
                success: true,
                result: kept.result_data,
                agent_time: Duration::from_millis(kept.execution_time_ms),
            };
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
        let run = TaskRun {
            task_id: task.id.clone(),
            task_description: task.task_description.clone(),
            input_data: input,
            timeout: Duration::from_secs(u64::from(task.timeout_seconds)),
            retries: task.retry_count,
        };
        self.activity(&agent, ActivityType::TaskStart, None);
        let outcome: RunOutcome = run_task(rt, self.registry.budget(), &run).await;
        let mut metadata = Metadata::new();
        metadata.insert("attempts".into(), json!(outcome.attempts));
        metadata.insert(
            "wall_time_ms".into(),
            json!(outcome.wall_time.as_millis() as u64),
        );
        if let Some(r) = replica {
            metadata.insert("replica".into(), json!(r));
        }
        let ms = outcome.agent_time.as_millis() as u64;
        let (success, result, resources, error) = match outcome.result {
            Ok(out) => (true, out.result, out.resource_usage, None),
            Err(e) => (false, Value::Null, Default::default(), Some(e)),
        };
        self.event(Some(task), WorkflowState::Running, || match &error {
            None => format!("task {} completed on {agent} in {ms} ms", task.id),
            Some(e) => format!("task {} failed on {agent}: {e}", task.id),
        });
        if let Some(sink) = &self.sink
            && !matches!(
                error,
                Some(AgentError::Cancelled | AgentError::CircuitOpen { .. })
            )
        {
            let mut context = Metadata::new();
            context.insert("workflow_id".into(), json!(self.id));
            context.insert("execution_mode".into(), json!(self.spec.execution_mode));
            context.insert("attempts".into(), json!(outcome.attempts));
            let record = AgentPerformance {
                agent_id: agent.clone(),
                task_type: self.spec.workflow_type.clone(),
                task_description: task.task_description.clone(),
                execution_time_ms: ms,
                success_rate: if success { 1.0 } else { 0.0 },
                resource_usage: resources.clone(),
                error_details: error.as_ref().map(ToString::to_string),
                context_factors: context,
                embedding: None,
                timestamp: None,
                tpm_signature: None,
                record_id: None,
            };
            if let Err(e) = sink.record(record).await {
                tracing::warn!(error = %e, task = %task.id, "could not record the task's performance");
            }
        }
        let ended = match &error {
            None => TaskOutcome::Completed,
            Some(AgentError::Cancelled) => TaskOutcome::Cancelled,
            Some(_) => TaskOutcome::Failed,
        };
        let finished = AgentResult {
            agent_id: agent.clone(),
            task_id: task.id.clone(),
            success,
            result_data: result.clone(),
            execution_time_ms: ms,
            resource_usage: resources,
            error_message: error.map(|e| e.to_string()),
            outcome: ended,
            recovered: false,
            metadata,
        };
        let kind = if success {
            ActivityType::TaskComplete
        } else {
            ActivityType::TaskFail
        };
        self.activity(&agent, kind, Some((&finished, ms)));
        self.push_result(finished).await;
        Done {
            success,
            result,
            agent_time: outcome.agent_time,
        }
    }

    fn set_time(&self, index: usize, t: Duration) {
        if let Some(slot) = lock(&self.times).get_mut(index) {
            *slot = t;
        }
    }

    /// Longest chain of agent time through the dependency graph.
    fn critical_path(&self) -> Duration {
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
}

impl Coordinator {
    /// A coordinator over `registry`.
    pub fn new(registry: Arc<AgentRegistry>) -> Self {
        Self {
            registry,
            advisor: None,
            sink: None,
            bus: None,
            journal: None,
            audit: None,
            active: Mutex::new(HashMap::new()),
            paused: tokio::sync::watch::channel(false).0,
            emergency: Mutex::new(None),
            closing: std::sync::atomic::AtomicBool::new(false),
            finished: tokio::sync::Notify::new(),
        }
    }

    /// Appends security-relevant events (emergency stops) to `audit`.
    pub fn with_audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(audit);
        self
    }

    fn refuse_during_emergency(&self) -> Result<(), WorkflowError> {
        if self.closing.load(std::sync::atomic::Ordering::Acquire) {
            return Err(WorkflowError::ShuttingDown);
        }
        match lock(&self.emergency).clone() {
            Some(reason) => Err(WorkflowError::Emergency(reason)),
            None => Ok(()),
        }
    }

    /// Journals every workflow in `journal` (needed for [`Coordinator::submit`] lookups and
    /// [`Coordinator::recover`]).
    pub fn with_journal(mut self, journal: Arc<Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// The journal, if any.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.journal.as_ref()
    }

    /// Forgets a workflow that stopped running and tells [`Coordinator::shutdown`].
    fn finish(&self, id: WorkflowId) {
        lock(&self.active).remove(&id);
        self.finished.notify_waiters();
    }

    /// Stops taking workflows (new ones are refused with [`WorkflowError::ShuttingDown`]) and
    /// waits up to `grace` for the running ones to finish. Returns how many are still running
    /// then: they are left as the journal shows them (running), so the next start resumes them,
    /// and their tasks (and agent processes) stop when the runtime drops them.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.closing
            .store(true, std::sync::atomic::Ordering::Release);
        let deadline = Instant::now() + grace;
        loop {
            let finished = self.finished.notified();
            let running = lock(&self.active).len();
            if running == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                return lock(&self.active).len();
            }
        }
    }

    /// Workflows running now.
    pub fn active(&self) -> Vec<WorkflowId> {
        lock(&self.active).keys().copied().collect()
    }

    /// Cancels workflow `id`; `false` if it is not running.
    pub fn cancel(&self, id: WorkflowId) -> bool {
        lock(&self.active)
            .get(&id)
            .map(CancelHandle::cancel)
            .is_some()
    }

    /// Cancels every running workflow (emergency stop); returns how many.
    pub fn cancel_all(&self) -> usize {
        let active = lock(&self.active);
        for handle in active.values() {
            handle.cancel();
        }
        active.len()
    }

    /// Validates `spec`, journals it and starts it in the background; the handle yields the
    /// result. Errors are returned before anything runs.
    pub async fn submit(
        self: &Arc<Self>,
        spec: WorkflowSpec,
    ) -> Result<(WorkflowId, tokio::task::JoinHandle<WorkflowResult>), WorkflowError> {
        let (id, agents, token) = self.begin(&spec).await?;
        Ok((id, self.spawn(id, spec, agents, BTreeMap::new(), token)))
    }

    /// What starting a new workflow takes: checks (no emergency, agents known), an id,
    /// registration as running, and the journal's record of it.
    async fn begin(
        &self,
        spec: &WorkflowSpec,
    ) -> Result<(WorkflowId, Vec<Arc<AgentRuntime>>, CancelToken), WorkflowError> {
        self.refuse_during_emergency()?;
        let agents = self.prepare(spec).await?;
        let id = WorkflowId::new_random();
        let token = self.register(id)?;
        if let Some(j) = &self.journal
            && let Err(e) = j.create(id, spec, WorkflowState::Running).await
        {
            lock(&self.active).remove(&id);
            return Err(e.into());
        }
        Ok((id, agents, token))
    }

    /// Registers `id` as running — refused during an emergency stop. The check happens under
    /// the same lock `cancel_all` takes, so a workflow is either refused or cancelled by it.
    fn register(&self, id: WorkflowId) -> Result<CancelToken, WorkflowError> {
        let mut active = lock(&self.active);
        self.refuse_during_emergency()?;
        let (handle, token) = cancel_pair();
        active.insert(id, handle);
        Ok(token)
    }

    fn spawn(
        self: &Arc<Self>,
        id: WorkflowId,
        spec: WorkflowSpec,
        agents: Vec<Arc<AgentRuntime>>,
        previous: BTreeMap<usize, AgentResult>,
        token: CancelToken,
    ) -> tokio::task::JoinHandle<WorkflowResult> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let result = this
                .execute_prepared(id, spec, agents, CancelToken::never(), token, previous)
                .await;
            this.finish(id);
            result
        })
    }

    /// Resumes every workflow the journal shows unfinished (after a crash): each is marked
    /// `recovering`, then run again with the tasks that had succeeded kept, not re-run.
    /// Workflows whose agents no longer exist are marked failed.
    pub async fn recover(
        self: &Arc<Self>,
    ) -> Result<Vec<(WorkflowId, tokio::task::JoinHandle<WorkflowResult>)>, WorkflowError> {
        let Some(journal) = &self.journal else {
            return Ok(Vec::new());
        };
        self.refuse_during_emergency()?;
        let mut resumed = Vec::new();
        for record in journal.unfinished().await? {
            let id = record.workflow_id;
            journal
                .transition(id, WorkflowState::Recovering, "resuming after a restart")
                .await?;
            let agents = match self.prepare(&record.spec).await {
                Ok(a) => a,
                Err(e) => {
                    journal
                        .transition(id, WorkflowState::Failed, &format!("cannot resume: {e}"))
                        .await?;
                    continue;
                }
            };
            let mut previous = BTreeMap::new();
            for r in record.results.iter().filter(|r| r.succeeded()) {
                if let Some(i) = record.spec.tasks.iter().position(|t| t.id == r.task_id) {
                    previous.insert(i, r.clone());
                }
            }
            journal
                .transition(
                    id,
                    WorkflowState::Running,
                    &format!("{} finished tasks kept", previous.len()),
                )
                .await?;
            let token = self.register(id)?;
            resumed.push((id, self.spawn(id, record.spec, agents, previous, token)));
        }
        Ok(resumed)
    }

    /// Resolves `agent_id = "auto"` through `advisor` (default: the first registered agent).
    pub fn with_advisor(mut self, advisor: Arc<dyn AgentAdvisor>) -> Self {
        self.advisor = Some(advisor);
        self
    }

    /// Records every task outcome in `sink`.
    pub fn with_sink(mut self, sink: Arc<dyn PerformanceSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Publishes workflow and task events on `bus`.
    pub fn with_bus(mut self, bus: EventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// The agents.
    pub fn registry(&self) -> &Arc<AgentRegistry> {
        &self.registry
    }

    /// Checks `spec` against the registry and resolves every task's agent.
    pub async fn prepare(
        &self,
        spec: &WorkflowSpec,
    ) -> Result<Vec<Arc<AgentRuntime>>, WorkflowError> {
        spec.validate()?;
        let known = || {
            self.registry
                .ids()
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut agents = Vec::with_capacity(spec.tasks.len());
        for (index, task) in spec.tasks.iter().enumerate() {
            let id: AgentId = match &task.agent_id {
                AgentRef::Named(id) => id.clone(),
                AgentRef::Auto => {
                    let request = AdviceRequest {
                        task_description: task.task_description.clone(),
                        task_type: Some(spec.workflow_type.clone()),
                        context: Metadata::new(),
                        candidates: self.registry.ids(),
                        exclude_agents: Vec::new(),
                    };
                    let no_agent = |reason: String| WorkflowError::NoAgent {
                        index,
                        task: task.id.as_str().to_owned(),
                        reason,
                    };
                    match &self.advisor {
                        Some(a) => {
                            a.advise(request)
                                .await
                                .map_err(|e| no_agent(e.to_string()))?
                                .predicted_agent
                        }
                        None => self
                            .registry
                            .ids()
                            .into_iter()
                            .next()
                            .ok_or_else(|| no_agent("no agent is registered".into()))?,
                    }
                }
            };
            let rt = self
                .registry
                .get(&id)
                .ok_or_else(|| WorkflowError::UnknownAgent {
                    index,
                    task: task.id.as_str().to_owned(),
                    agent: id.as_str().to_owned(),
                    known: known(),
                })?;
            agents.push(rt);
        }
        Ok(agents)
    }

    /// Runs `spec` to the end, its global timeout, or `cancel`.
    pub async fn run(
        &self,
        spec: WorkflowSpec,
        cancel: CancelToken,
    ) -> Result<WorkflowResult, WorkflowError> {
        let (id, agents, token) = self.begin(&spec).await?;
        let result = self
            .execute_prepared(id, spec, agents, cancel, token, BTreeMap::new())
            .await;
        self.finish(id);
        Ok(result)
    }

    async fn execute_prepared(
        &self,
        id: WorkflowId,
        spec: WorkflowSpec,
        agents: Vec<Arc<AgentRuntime>>,
        mut cancel: CancelToken,
        mut stop: CancelToken,
        previous: BTreeMap<usize, AgentResult>,
    ) -> WorkflowResult {
        let started = Instant::now();
        let n = spec.tasks.len();
        let ctx = Arc::new(Ctx {
            id,
            spec,
            agents,
            registry: Arc::clone(&self.registry),
            sink: self.sink.clone(),
            bus: self.bus.clone(),
            results: Mutex::new(Vec::new()),
            times: Mutex::new(vec![Duration::ZERO; n]),
            journal: self.journal.clone(),
            journal_error: Mutex::new(None),
            previous,
            paused: self.paused.subscribe(),
        });
        ctx.event(None, WorkflowState::Running, || {
            format!(
                "workflow started ({:?} mode, {n} tasks)",
                ctx.spec.execution_mode
            )
        });
        let deadline = Duration::from_secs(u64::from(ctx.spec.global_timeout_seconds));
        let body = execute(Arc::clone(&ctx));
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
        if let Some(e) = lock(&ctx.journal_error).clone() {
            state = WorkflowState::Failed;
            success = false;
            metadata.insert(
                "error".into(),
                json!(format!("results could not be journaled: {e}")),
            );
        }
        let wall = started.elapsed();
        let critical = match ctx.spec.execution_mode {
            ExecutionMode::Sequential | ExecutionMode::Pipeline => lock(&ctx.times).iter().sum(),
            ExecutionMode::Consensus | ExecutionMode::Competitive => {
                lock(&ctx.times).iter().copied().max().unwrap_or_default()
            }
            ExecutionMode::Parallel | ExecutionMode::Redundant => ctx.critical_path(),
        };
        metadata.insert(
            "critical_path_ms".into(),
            json!(critical.as_millis() as u64),
        );
        ctx.event(None, state, || {
            format!(
                "workflow {}",
                match state {
                    WorkflowState::Completed => "completed",
                    WorkflowState::Cancelled => "cancelled",
                    _ => "failed",
                }
            )
        });
        let agent_results = std::mem::take(&mut *lock(&ctx.results));
        let result = WorkflowResult {
            workflow_id: ctx.id,
            success,
            execution_mode: ctx.spec.execution_mode,
            state,
            total_execution_time_ms: wall.as_millis() as u64,
            agent_results,
            coordination_overhead_ms: wall.saturating_sub(critical).as_millis() as u64,
            metadata,
        };
        if let Some(j) = &self.journal
            && let Err(e) = j.finish(&result).await
        {
            tracing::error!(workflow = %ctx.id, error = %e, "cannot journal the workflow's end");
        }
        result
    }
}

/// Runs the mode; returns success and metadata.
async fn execute(ctx: Arc<Ctx>) -> (bool, Metadata) {
    match ctx.spec.execution_mode {
        ExecutionMode::Sequential => sequential(ctx).await,
        ExecutionMode::Pipeline => pipeline(ctx).await,
        ExecutionMode::Parallel => dag(ctx, false).await,
        ExecutionMode::Redundant => dag(ctx, true).await,
        ExecutionMode::Consensus => consensus(ctx).await,
        ExecutionMode::Competitive => competitive(ctx).await,
    }
}

async fn sequential(ctx: Arc<Ctx>) -> (bool, Metadata) {
    let mut meta = Metadata::new();
    let order = ctx.spec.topological_order().unwrap_or_default();
    let mut failed: Vec<String> = Vec::new();
    let mut all_ok = true;
    for i in order {
        let task = &ctx.spec.tasks[i];
        if let Some(dep) = task
            .dependencies
            .iter()
            .find(|d| failed.contains(&d.as_str().to_owned()))
        {
            ctx.record_skip(i, format!("dependency {dep} failed")).await;
            failed.push(task.id.as_str().to_owned());
            continue;
        }
        let rt = Arc::clone(&ctx.agents[i]);
        let done = ctx.run(i, &rt, task.input_data.clone(), None).await;
        ctx.set_time(i, done.agent_time);
        if !done.success {
            all_ok = false;
            failed.push(task.id.as_str().to_owned());
            if !ctx.spec.continue_on_failure {
                meta.insert("stopped_at".into(), json!(task.id));
                break;
            }
        }
    }
    (all_ok, meta)
}

async fn pipeline(ctx: Arc<Ctx>) -> (bool, Metadata) {
    let mut meta = Metadata::new();
    let mut carried: Option<Value> = None;
    for i in 0..ctx.spec.tasks.len() {
        let task = &ctx.spec.tasks[i];
        let input = carried.take().unwrap_or_else(|| task.input_data.clone());
        let rt = Arc::clone(&ctx.agents[i]);
        let done = ctx.run(i, &rt, input, None).await;
        ctx.set_time(i, done.agent_time);
        if !done.success {
            meta.insert("stopped_at".into(), json!(task.id));
            return (false, meta);
        }
        carried = Some(done.result);
    }
    meta.insert("output".into(), carried.unwrap_or(Value::Null));
    (true, meta)
}

/// Parallel with dependencies (and redundant mode, whose unit is a hedged task).
async fn dag(ctx: Arc<Ctx>, hedged: bool) -> (bool, Metadata) {
    let n = ctx.spec.tasks.len();
    let index: BTreeMap<String, usize> = ctx
        .spec
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str().to_owned(), i))
        .collect();
    let mut waiting: Vec<usize> = ctx
        .spec
        .tasks
        .iter()
        .map(|t| t.dependencies.len())
        .collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, t) in ctx.spec.tasks.iter().enumerate() {
        for d in &t.dependencies {
            if let Some(&j) = index.get(d.as_str()) {
                dependents[j].push(i);
            }
        }
    }
    let mut set: JoinSet<(usize, Done)> = JoinSet::new();
    let spawn = |set: &mut JoinSet<(usize, Done)>, i: usize| {
        let ctx = Arc::clone(&ctx);
        set.spawn(async move {
            let done = if hedged {
                hedge(&ctx, i).await
            } else {
                let rt = Arc::clone(&ctx.agents[i]);
                let input = ctx.spec.tasks[i].input_data.clone();
                ctx.run(i, &rt, input, None).await
            };
            (i, done)
        });
    };
    for i in (0..n).filter(|&i| waiting[i] == 0) {
        spawn(&mut set, i);
    }
    let mut all_ok = true;
    let mut settled = vec![false; n];
    while let Some(joined) = set.join_next().await {
        let Ok((i, done)) = joined else { continue };
        settled[i] = true;
        ctx.set_time(i, done.agent_time);
        if done.success {
            for &k in &dependents[i] {
                waiting[k] -= 1;
                if waiting[k] == 0 {
                    spawn(&mut set, k);
                }
            }
        } else {
            all_ok = false;
            // Skip everything downstream, naming the failed task.
            let mut stack = dependents[i].clone();
            let failed = ctx.spec.tasks[i].id.as_str().to_owned();
            while let Some(k) = stack.pop() {
                if !settled[k] {
                    settled[k] = true;
                    ctx.record_skip(k, format!("dependency {failed} failed"))
                        .await;
                    stack.extend(dependents[k].iter().copied());
                }
            }
        }
    }
    (all_ok && settled.iter().all(|s| *s), Metadata::new())
}

/// Runs task `i` on replicas of its agent, a new one every hedge delay until one succeeds.
async fn hedge(ctx: &Arc<Ctx>, i: usize) -> Done {
    let replicas = ctx.spec.replicas.unwrap_or(DEFAULT_REPLICAS).max(1);
    let delay = ctx
        .spec
        .hedge_delay_ms
        .map_or(DEFAULT_HEDGE_DELAY, Duration::from_millis);
    let mut set: JoinSet<Done> = JoinSet::new();
    let mut started = 0u32;
    let mut last = Done {
        success: false,
        result: Value::Null,
        agent_time: Duration::ZERO,
    };
    loop {
        if started < replicas {
            let ctx2 = Arc::clone(ctx);
            let r = started;
            set.spawn(async move {
                let rt = Arc::clone(&ctx2.agents[i]);
                let input = ctx2.spec.tasks[i].input_data.clone();
                ctx2.run(i, &rt, input, Some(r)).await
            });
            started += 1;
        }
        let next = if started < replicas {
            tokio::select! {
                j = set.join_next() => j,
                _ = tokio::time::sleep(delay) => continue,
            }
        } else {
            set.join_next().await
        };
        match next {
            Some(Ok(done)) if done.success => {
                set.abort_all();
                return done;
            }
            Some(Ok(done)) => last = done,
            Some(Err(_)) => {}
            None if started >= replicas => return last,
            None => {}
        }
    }
}

async fn consensus(ctx: Arc<Ctx>) -> (bool, Metadata) {
    let mut set: JoinSet<(usize, Done)> = JoinSet::new();
    for i in 0..ctx.spec.tasks.len() {
        let ctx = Arc::clone(&ctx);
        set.spawn(async move {
            let rt = Arc::clone(&ctx.agents[i]);
            let input = ctx.spec.tasks[i].input_data.clone();
            (i, ctx.run(i, &rt, input, None).await)
        });
    }
    let mut votes: Vec<(Value, Vec<String>)> = Vec::new();
    while let Some(joined) = set.join_next().await {
        let Ok((i, done)) = joined else { continue };
        ctx.set_time(i, done.agent_time);
        if !done.success {
            continue;
        }
        // A result without the compared field casts no vote.
        let value = match &ctx.spec.consensus_field {
            Some(f) => match done.result.get(f) {
                Some(v) => v.clone(),
                None => continue,
            },
            None => done.result,
        };
        let agent = ctx.agents[i].agent.id().as_str().to_owned();
        match votes.iter_mut().find(|(v, _)| *v == value) {
            Some((_, who)) => who.push(agent),
            None => votes.push((value, vec![agent])),
        }
    }
    votes.sort_by_key(|v| std::cmp::Reverse(v.1.len()));
    let quorum = ctx.spec.effective_quorum();
    let mut meta = Metadata::new();
    meta.insert("quorum".into(), json!(quorum));
    meta.insert(
        "votes".into(),
        json!(
            votes
                .iter()
                .map(|(v, who)| json!({"value": v, "count": who.len(), "agents": who}))
                .collect::<Vec<_>>()
        ),
    );
    let ok = votes.first().is_some_and(|(_, who)| who.len() >= quorum);
    if ok {
        meta.insert("consensus_value".into(), votes[0].0.clone());
    } else {
        meta.insert("error".into(), json!(format!("no {quorum} results agree")));
    }
    (ok, meta)
}

async fn competitive(ctx: Arc<Ctx>) -> (bool, Metadata) {
    let comparator = ctx.spec.comparator.unwrap_or_default();
    let mut set: JoinSet<(usize, Done)> = JoinSet::new();
    for i in 0..ctx.spec.tasks.len() {
        let ctx = Arc::clone(&ctx);
        set.spawn(async move {
            let rt = Arc::clone(&ctx.agents[i]);
            let input = ctx.spec.tasks[i].input_data.clone();
            (i, ctx.run(i, &rt, input, None).await)
        });
    }
    let mut best: Option<(usize, f64, Value)> = None;
    while let Some(joined) = set.join_next().await {
        let Ok((i, done)) = joined else { continue };
        ctx.set_time(i, done.agent_time);
        if !done.success {
            continue;
        }
        match comparator {
            Comparator::Fastest => {
                set.abort_all();
                best = Some((i, 0.0, done.result));
                break;
            }
            Comparator::HighestScore => {
                let score = done.result.get("score").and_then(Value::as_f64);
                if let Some(s) = score
                    && best.as_ref().is_none_or(|(_, b, _)| s > *b)
                {
                    best = Some((i, s, done.result));
                }
            }
        }
    }
    // Drain the cancelled losers (their futures, and processes, are gone).
    while set.join_next().await.is_some() {}
    let mut meta = Metadata::new();
    match best {
        Some((i, score, result)) => {
            meta.insert("winner".into(), json!(ctx.spec.tasks[i].id));
            meta.insert("winner_agent".into(), json!(ctx.agents[i].agent.id()));
            if comparator == Comparator::HighestScore {
                meta.insert("score".into(), json!(score));
            }
            meta.insert("output".into(), result);
            (true, meta)
        }
        None => {
            meta.insert(
                "error".into(),
                json!(match comparator {
                    Comparator::Fastest => "no task succeeded",
                    Comparator::HighestScore => "no successful task returned a numeric score",
                }),
            );
            (false, meta)
        }
    }
}

impl Throttle for Coordinator {
    /// Scales every agent's concurrency to `factor` (0 < factor ≤ 1) of its configured limit.
    fn reduce_agent_concurrency(&self, factor: f64) -> Result<(), PortError> {
        if !(factor.is_finite() && factor > 0.0 && factor <= 1.0) {
            return Err(PortError::InvalidInput(format!(
                "factor {factor} is out of range; expected a number above 0.0 up to 1.0"
            )));
        }
        self.registry.scale_concurrency(factor);
        Ok(())
    }

    /// Non-critical workflows start no new task until resumed (running tasks finish).
    fn pause_non_critical(&self) {
        self.paused.send_replace(true);
    }

    fn resume_non_critical(&self) {
        self.paused.send_replace(false);
    }

    /// Cancels every running workflow (their processes are killed and they are journaled as
    /// cancelled), refuses new ones until cleared, and reports it to the bus and the audit log.
    fn emergency_stop(&self, reason: &str) {
        *lock(&self.emergency) = Some(reason.to_owned());
        let stopped = self.cancel_all();
        tracing::warn!(reason, workflows = stopped, "emergency stop");
        let event = SecurityEvent {
            timestamp: Utc::now(),
            event_type: "emergency_stop".into(),
            severity: AlertLevel::Emergency,
            source_component: "coord".into(),
            description: format!("emergency stop: {reason}; {stopped} workflows cancelled"),
            tpm_signature: None,
            affected_resources: Vec::new(),
            response_actions: vec![
                "running workflows cancelled".into(),
                "new workflows refused".into(),
            ],
        };
        if let Some(bus) = &self.bus {
            bus.publish(Event::Security(event.clone()));
        }
        if let Some(audit) = self.audit.clone() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        if let Err(e) = audit.append(event).await {
                            tracing::error!(error = %e, "cannot audit the emergency stop");
                        }
                    });
                }
                Err(_) => tracing::error!("no runtime to audit the emergency stop on"),
            }
        }
    }

    fn clear_emergency(&self) {
        *lock(&self.emergency) = None;
    }
}
