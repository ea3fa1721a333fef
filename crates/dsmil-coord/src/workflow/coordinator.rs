//! The [`Coordinator`] and its lifecycle: building it with its ports, checking and registering
//! workflows (submit, run in place), resuming them after a crash or taking them over from a
//! dead node ([`Coordinator::adopt`]), cancelling them, letting go of them, and shutting down.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dsmil_core::ports::WorkflowRecord;
use dsmil_core::ports::{
    AdviceRequest, AgentAdvisor, AuditSink, JournalStore, PerformanceSink, TaskDispatcher,
};
use dsmil_core::workflow::{AgentResult, Metadata, WorkflowResult, WorkflowSpec, WorkflowState};
use dsmil_core::{AgentId, AgentRef, EventBus, WorkflowId};
use tokio::time::Instant;

use super::cancel::{CancelHandle, CancelToken, cancel_pair};
use super::record::Recorder;
use super::run::Run;
use super::{WorkflowError, lock};
use crate::registry::AgentRegistry;

/// A running workflow as the coordinator tracks it.
struct Active {
    /// Cancels it.
    cancel: CancelHandle,
    /// Set when it is let go of ([`Coordinator::abandon`]): it stops without journaling more.
    detached: Arc<AtomicBool>,
}

/// What [`Coordinator::adopt`] came to.
#[derive(Debug)]
pub enum Takeover {
    /// The workflow runs here now; the handle yields its result.
    Started(tokio::task::JoinHandle<WorkflowResult>),
    /// Nothing to run (finished, unknown, or running here already).
    Nothing,
    /// Not resumed yet: its agents are not known to be hosted while the dispatcher's view is
    /// incomplete. Nothing was journaled; ask again later.
    Waiting(String),
}

/// Runs workflows on a registry of agents.
pub struct Coordinator {
    pub(super) registry: Arc<AgentRegistry>,
    advisor: Option<Arc<dyn AgentAdvisor>>,
    sink: Option<Arc<dyn PerformanceSink>>,
    pub(super) bus: Option<EventBus>,
    journal: Option<Arc<dyn JournalStore>>,
    dispatcher: Option<Arc<dyn TaskDispatcher>>,
    pub(super) audit: Option<Arc<dyn AuditSink>>,
    active: Mutex<HashMap<WorkflowId, Active>>,
    /// `true` while non-critical work is paused.
    pub(super) paused: tokio::sync::watch::Sender<bool>,
    /// Why new workflows are refused, during an emergency stop.
    pub(super) emergency: Mutex<Option<String>>,
    /// Set once [`Coordinator::shutdown`] begins: new workflows are refused.
    closing: AtomicBool,
    /// Told whenever a workflow stops running.
    finished: tokio::sync::Notify,
    /// What ran, for `/metrics`.
    pub(super) stats: Arc<super::stats::TaskStats>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("agents", &self.registry.len())
            .finish()
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
            dispatcher: None,
            audit: None,
            active: Mutex::new(HashMap::new()),
            paused: tokio::sync::watch::channel(false).0,
            emergency: Mutex::new(None),
            closing: AtomicBool::new(false),
            finished: tokio::sync::Notify::new(),
            stats: Arc::default(),
        }
    }

    /// Appends security-relevant events (emergency stops) to `audit`.
    pub fn with_audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Journals every workflow in `journal` (needed for [`Coordinator::submit`] lookups,
    /// [`Coordinator::recover`] and [`Coordinator::adopt`]): the SQLite
    /// [`Journal`](crate::journal::Journal) on one host, the cluster's on many.
    pub fn with_journal(mut self, journal: Arc<dyn JournalStore>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Runs every task through `dispatcher` (on whichever node hosts its agent) instead of on
    /// the local registry; tasks may then name agents only other nodes host.
    pub fn with_dispatcher(mut self, dispatcher: Arc<dyn TaskDispatcher>) -> Self {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// Resolves `agent_id = "auto"` through `advisor` (default: the first registered agent).
    pub fn with_advisor(mut self, advisor: Arc<dyn AgentAdvisor>) -> Self {
        self.advisor = Some(advisor);
        self
    }

    /// Records every task outcome in `sink` (in the background, by deterministic record id; a
    /// workflow's handle resolves once its records are in).
    pub fn with_sink(mut self, sink: Arc<dyn PerformanceSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Publishes workflow and task events on `bus`.
    pub fn with_bus(mut self, bus: EventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// The journal, if any.
    pub fn journal(&self) -> Option<&Arc<dyn JournalStore>> {
        self.journal.as_ref()
    }

    /// The agents.
    pub fn registry(&self) -> &Arc<AgentRegistry> {
        &self.registry
    }

    /// Task outcomes, durations and workflow ends since start.
    pub fn stats(&self) -> &super::stats::TaskStats {
        &self.stats
    }

    /// Workflows running now.
    pub fn active(&self) -> Vec<WorkflowId> {
        lock(&self.active).keys().copied().collect()
    }

    /// Cancels workflow `id`; `false` if it is not running.
    pub fn cancel(&self, id: WorkflowId) -> bool {
        lock(&self.active)
            .get(&id)
            .map(|a| a.cancel.cancel())
            .is_some()
    }

    /// Stops running workflow `id` here without journaling anything more — another node owns
    /// it now; `false` if it is not running. Its tasks are dropped; its handle resolves
    /// (cancelled) but the journal keeps what the new owner writes.
    pub fn abandon(&self, id: WorkflowId) -> bool {
        lock(&self.active)
            .get(&id)
            .map(|a| {
                a.detached.store(true, Ordering::Release);
                a.cancel.cancel();
            })
            .is_some()
    }

    /// Cancels every running workflow (emergency stop); returns how many.
    pub fn cancel_all(&self) -> usize {
        let active = lock(&self.active);
        for a in active.values() {
            a.cancel.cancel();
        }
        active.len()
    }

    /// Stops taking workflows (new ones are refused with [`WorkflowError::ShuttingDown`]) and
    /// waits up to `grace` for the running ones to finish. Returns how many are still running
    /// then: they are left as the journal shows them (running), so the next start resumes them,
    /// and their tasks (and agent processes) stop when the runtime drops them.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.closing.store(true, Ordering::Release);
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

    /// Validates `spec`, journals it and starts it in the background; the handle yields the
    /// result. Errors are returned before anything runs.
    pub async fn submit(
        self: &Arc<Self>,
        spec: WorkflowSpec,
    ) -> Result<(WorkflowId, tokio::task::JoinHandle<WorkflowResult>), WorkflowError> {
        let (id, agents, token) = self.begin(&spec).await?;
        Ok((id, self.spawn(id, spec, agents, Resume::default(), token)))
    }

    /// Runs `spec` to the end, its global timeout, or `cancel`.
    pub async fn run(
        &self,
        spec: WorkflowSpec,
        cancel: CancelToken,
    ) -> Result<WorkflowResult, WorkflowError> {
        let (id, agents, token) = self.begin(&spec).await?;
        let run = self.run_state(id, spec, agents, Resume::default(), token.1);
        let result = run.execute(cancel, token.0).await;
        self.finish(id);
        Ok(result)
    }

    /// Resumes every workflow the journal shows unfinished (after a crash): each is marked
    /// `recovering`, then run again with the tasks that had succeeded kept, not re-run (their
    /// performance records are sent again, with the same ids). Workflows whose agents no
    /// longer exist are marked failed. (In a cluster, nodes do not call this: each unfinished
    /// workflow is taken over through [`Coordinator::adopt`] by the node that claims it.)
    pub async fn recover(
        self: &Arc<Self>,
    ) -> Result<Vec<(WorkflowId, tokio::task::JoinHandle<WorkflowResult>)>, WorkflowError> {
        let Some(journal) = &self.journal else {
            return Ok(Vec::new());
        };
        self.refuse()?;
        let mut resumed = Vec::new();
        for record in journal.unfinished().await? {
            let id = record.workflow_id;
            match self.resume(record, "resuming after a restart").await? {
                Takeover::Started(handle) => resumed.push((id, handle)),
                Takeover::Nothing => {}
                Takeover::Waiting(why) => {
                    tracing::info!(workflow = %id, why, "not resumed yet");
                }
            }
        }
        Ok(resumed)
    }

    /// Takes over workflow `id` from its journal — its owner died and this node claimed it:
    /// like [`Coordinator::recover`] for one workflow. [`Takeover::Nothing`] when the journal
    /// does not know it, shows it finished, or it runs here already; [`Takeover::Waiting`]
    /// when its agents are not hosted by any node this node has heard from yet, while the
    /// dispatcher's view is still filling (after a start or a NATS outage) — rather than
    /// failing a workflow whose agents are only not announced yet.
    pub async fn adopt(self: &Arc<Self>, id: WorkflowId) -> Result<Takeover, WorkflowError> {
        let Some(journal) = &self.journal else {
            return Ok(Takeover::Nothing);
        };
        self.refuse()?;
        if lock(&self.active).contains_key(&id) {
            return Ok(Takeover::Nothing);
        }
        match journal.get(id).await? {
            Some(record) if !record.state.is_terminal() => {
                self.resume(record, "taken over from a node that stopped")
                    .await
            }
            _ => Ok(Takeover::Nothing),
        }
    }

    /// Runs an unfinished workflow again from its journal record: `recovering`, then `running`
    /// with its successful results kept (or `failed` when its agents are gone — unless the
    /// dispatcher does not know every agent yet: then nothing is journaled and it waits).
    async fn resume(
        self: &Arc<Self>,
        record: WorkflowRecord,
        why: &str,
    ) -> Result<Takeover, WorkflowError> {
        let Some(journal) = &self.journal else {
            return Ok(Takeover::Nothing);
        };
        let id = record.workflow_id;
        let prepared = self.prepare(&record.spec).await;
        if let Err(e @ (WorkflowError::UnknownAgent { .. } | WorkflowError::NoAgent { .. })) =
            &prepared
            && self
                .dispatcher
                .as_ref()
                .is_some_and(|d| !d.knows_every_agent())
        {
            return Ok(Takeover::Waiting(crate::error_chain(e)));
        }
        journal
            .transition(id, WorkflowState::Recovering, why)
            .await?;
        let agents = match prepared {
            Ok(a) => a,
            Err(e) => {
                let detail = format!("cannot resume: {}", crate::error_chain(&e));
                journal
                    .transition(id, WorkflowState::Failed, &detail)
                    .await?;
                return Ok(Takeover::Nothing);
            }
        };
        let resume = Resume::from_record(&record);
        journal
            .transition(
                id,
                WorkflowState::Running,
                &format!("{} finished tasks kept", resume.previous.len()),
            )
            .await?;
        let token = self.register(id)?;
        Ok(Takeover::Started(self.spawn(
            id,
            record.spec,
            agents,
            resume,
            token,
        )))
    }

    /// Checks `spec` against the registry and resolves every task's agent.
    pub async fn prepare(&self, spec: &WorkflowSpec) -> Result<Vec<AgentId>, WorkflowError> {
        spec.validate()?;
        let candidates = self.agents();
        let routable = self.routable_agents();
        let known = || {
            candidates
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut agents = Vec::with_capacity(spec.tasks.len());
        for (index, task) in spec.tasks.iter().enumerate() {
            let id: AgentId = match &task.agent_id {
                AgentRef::Named(id) => id.clone(),
                AgentRef::Auto => match &self.advisor {
                    Some(a) => {
                        let request = AdviceRequest {
                            task_description: task.task_description.clone(),
                            task_type: Some(spec.workflow_type.clone()),
                            context: Metadata::new(),
                            candidates: routable.clone(),
                            exclude_agents: Vec::new(),
                        };
                        a.advise(request)
                            .await
                            .map_err(|source| WorkflowError::Advisor {
                                index,
                                task: task.id.as_str().to_owned(),
                                source,
                            })?
                            .predicted_agent
                    }
                    None => routable
                        .first()
                        .cloned()
                        .ok_or_else(|| WorkflowError::NoAgent {
                            index,
                            task: task.id.as_str().to_owned(),
                        })?,
                },
            };
            if !candidates.contains(&id) {
                return Err(WorkflowError::UnknownAgent {
                    index,
                    task: task.id.as_str().to_owned(),
                    agent: id.as_str().to_owned(),
                    known: known(),
                });
            }
            agents.push(id);
        }
        Ok(agents)
    }

    /// The agents tasks may name: the registry's, and with a dispatcher every agent a live
    /// node hosts; sorted, each once.
    pub fn agents(&self) -> Vec<AgentId> {
        let mut ids = self.registry.ids();
        if let Some(d) = &self.dispatcher {
            ids.extend(d.agents());
            ids.sort();
            ids.dedup();
        }
        ids
    }

    /// The agents `auto` may choose: [`Coordinator::agents`] less this node's undeclared
    /// built-ins while anything else is there to choose.
    pub fn routable_agents(&self) -> Vec<AgentId> {
        let all = self.agents();
        let implicit = self.registry.implicit_ids();
        if all.iter().all(|id| implicit.contains(id)) {
            return all;
        }
        all.into_iter()
            .filter(|id| !implicit.contains(id))
            .collect()
    }

    /// Why new workflows are refused, during an emergency stop.
    pub fn emergency(&self) -> Option<String> {
        lock(&self.emergency).clone()
    }

    /// Refuses new work while shutting down or during an emergency stop.
    fn refuse(&self) -> Result<(), WorkflowError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(WorkflowError::ShuttingDown);
        }
        match lock(&self.emergency).clone() {
            Some(reason) => Err(WorkflowError::Emergency(reason)),
            None => Ok(()),
        }
    }

    /// What starting a new workflow takes: checks (not refused, agents known), an id,
    /// registration as running, and the journal's record of it.
    async fn begin(
        &self,
        spec: &WorkflowSpec,
    ) -> Result<(WorkflowId, Vec<AgentId>, Registered), WorkflowError> {
        self.refuse()?;
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

    /// Registers `id` as running — refused while shutting down or during an emergency stop.
    /// The check happens under the same lock `cancel_all` takes, so a workflow is either
    /// refused or cancelled by it.
    fn register(&self, id: WorkflowId) -> Result<Registered, WorkflowError> {
        let mut active = lock(&self.active);
        self.refuse()?;
        let (cancel, token) = cancel_pair();
        let detached = Arc::new(AtomicBool::new(false));
        active.insert(
            id,
            Active {
                cancel,
                detached: Arc::clone(&detached),
            },
        );
        Ok((token, detached))
    }

    /// Forgets a workflow that stopped running and tells [`Coordinator::shutdown`].
    fn finish(&self, id: WorkflowId) {
        lock(&self.active).remove(&id);
        self.finished.notify_waiters();
    }

    /// The shared state of a run of `spec` as workflow `id`.
    fn run_state(
        &self,
        id: WorkflowId,
        spec: WorkflowSpec,
        agents: Vec<AgentId>,
        resume: Resume,
        detached: Arc<AtomicBool>,
    ) -> Arc<Run> {
        let n = spec.tasks.len();
        Arc::new(Run {
            id,
            spec,
            agents,
            registry: Arc::clone(&self.registry),
            bus: self.bus.clone(),
            journal: self.journal.clone(),
            dispatcher: self.dispatcher.clone(),
            results: Mutex::new(Vec::new()),
            times: Mutex::new(vec![Duration::ZERO; n]),
            journal_error: Mutex::new(None),
            previous: resume.previous,
            generations: resume.generations,
            detached,
            paused: self.paused.subscribe(),
            recorder: Recorder::start(id, self.sink.clone()),
            stats: Arc::clone(&self.stats),
        })
    }

    /// Runs a registered workflow in the background.
    fn spawn(
        self: &Arc<Self>,
        id: WorkflowId,
        spec: WorkflowSpec,
        agents: Vec<AgentId>,
        resume: Resume,
        (token, detached): Registered,
    ) -> tokio::task::JoinHandle<WorkflowResult> {
        let this = Arc::clone(self);
        let run = self.run_state(id, spec, agents, resume, detached);
        tokio::spawn(async move {
            let result = run.execute(CancelToken::never(), token).await;
            this.finish(id);
            result
        })
    }
}

/// What registering a workflow gives its run: the token that cancels it and the flag that says
/// it was let go of.
type Registered = (CancelToken, Arc<AtomicBool>);

/// What a resumed run starts from.
#[derive(Debug, Default)]
struct Resume {
    /// Successful results by task index: kept, not run again.
    previous: BTreeMap<usize, AgentResult>,
    /// Results journaled per (task index, replica): the generation of the next run.
    generations: BTreeMap<(usize, u32), u32>,
}

impl Resume {
    /// From a journal record: its successful results, and how many results each task (and
    /// replica) has.
    fn from_record(record: &WorkflowRecord) -> Self {
        let mut resume = Self::default();
        for r in &record.results {
            let Some(i) = record.spec.tasks.iter().position(|t| t.id == r.task_id) else {
                continue;
            };
            *resume.generations.entry((i, r.replica())).or_default() += 1;
            if r.succeeded() {
                resume.previous.insert(i, r.clone());
            }
        }
        resume
    }
}
