//! The learning engine (seed `LearningEngineInterface`): records runs, predicts the best agent
//! for a task, and analyses history — over any [`PerformanceStore`].
//!
//! - this module: the engine, its configuration, recording (one write path: every record and
//!   every batch goes through the group-committing `writer`);
//! - `predict`: routing — candidates, agents' task-type hints as priors, scores, the answer;
//! - `history`: trends, anomalies, allocation, summaries, insights;
//! - [`types`]: the requests and answers of those methods.

mod history;
mod predict;
pub mod types;
mod writer;

pub use types::{Allocation, Insights, PendingTask, PredictRequest, SystemSummary};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock, RwLock};

use async_trait::async_trait;
use chrono::Utc;
use dsmil_core::AgentId;
use dsmil_core::learning::{AgentPerformance, Embedding, LearningPrediction};
use dsmil_core::ports::{
    AdviceRequest, AgentAdvisor, PerformanceSink, PortError, RecordsImport, RecordsRelay, Signer,
};
use dsmil_core::workflow::Metadata;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::analysis::AnomalySettings;
use crate::encoder::TaskEncoder;
use crate::error::LearnError;
use crate::record::StoredRecord;
use crate::router::RouterConfig;
use crate::store::{PerformanceStore, SearchMode, SimilarTask};

/// Most records a history-wide analysis reads.
pub const ANALYSIS_ROW_LIMIT: usize = 200_000;

/// Tuning of the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Scoring of candidates.
    pub router: RouterConfig,
    /// Similar past tasks a prediction looks at. Default: 64.
    pub neighbors: usize,
    /// Agent chosen when there is no history. Default: none (the first eligible by name).
    pub default_agent: Option<AgentId>,
    /// Most records the writer commits at once. Default: 1024.
    pub batch_max: usize,
    /// Records that may wait for the writer before `record_performance` waits for room.
    /// Default: 16384.
    pub queue_capacity: usize,
    /// Anomaly detection settings (the threshold is per call).
    pub anomaly: AnomalySettings,
    /// How far back anomaly detection and insights look, hours. Default: 24.
    pub analysis_window_hours: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            router: RouterConfig::default(),
            neighbors: 64,
            default_agent: None,
            batch_max: 1024,
            queue_capacity: 16_384,
            anomaly: AnomalySettings::default(),
            analysis_window_hours: 24,
        }
    }
}

/// The learning engine.
pub struct LearningEngine {
    store: Arc<dyn PerformanceStore>,
    encoder: TaskEncoder,
    config: EngineConfig,
    signer: Option<Arc<dyn Signer>>,
    agents: RwLock<BTreeSet<AgentId>>,
    writer: mpsc::Sender<writer::Unit>,
    /// Task types each agent is declared for (`[[agents]].task_types`): priors while history
    /// is thin.
    hints: RwLock<BTreeMap<AgentId, BTreeSet<String>>>,
    /// Where stored records go to the other nodes of a cluster (embedded stores only).
    relay: OnceLock<Arc<dyn RecordsRelay>>,
}

impl std::fmt::Debug for LearningEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LearningEngine")
            .field("store", &self.store.backend())
            .field("config", &self.config)
            .finish()
    }
}

pub(super) fn read_agents<'a>(
    set: &'a RwLock<BTreeSet<AgentId>>,
) -> std::sync::RwLockReadGuard<'a, BTreeSet<AgentId>> {
    set.read().unwrap_or_else(|p| p.into_inner())
}

impl LearningEngine {
    /// An engine over `store`; learns the known agents from the stored history. Starts the
    /// batching writer on the current tokio runtime.
    pub async fn new(
        store: Arc<dyn PerformanceStore>,
        config: EngineConfig,
    ) -> Result<Self, LearnError> {
        let known: BTreeSet<AgentId> = store
            .agent_stats(None)
            .await?
            .into_iter()
            .map(|s| s.agent_id)
            .collect();
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        tokio::spawn(writer::write_loop(
            Arc::clone(&store),
            rx,
            config.batch_max.max(1),
        ));
        Ok(Self {
            store,
            encoder: TaskEncoder::default(),
            config,
            signer: None,
            agents: RwLock::new(known),
            writer: tx,
            hints: RwLock::new(BTreeMap::new()),
            relay: OnceLock::new(),
        })
    }

    /// Signs every record through `signer` before it is stored.
    pub fn with_signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Hands every record stored from now on to `relay` (the cluster's records stream, when
    /// each node keeps its own store), so the other nodes learn from this node's runs. Set
    /// once; a second relay is refused.
    pub fn relay_to(&self, relay: Arc<dyn RecordsRelay>) -> Result<(), LearnError> {
        self.relay
            .set(relay)
            .map_err(|_| LearnError::InvalidRequest("the engine relays its records already".into()))
    }

    /// `records` in the shape the relay carries, when there is a relay (taken before they
    /// go to the writer, so nothing is cloned without one).
    fn to_relay(&self, records: &[StoredRecord]) -> Option<Vec<AgentPerformance>> {
        self.relay
            .get()
            .map(|_| records.iter().map(StoredRecord::to_performance).collect())
    }

    /// Hands records that are now stored to the relay.
    fn relay(&self, records: Option<Vec<AgentPerformance>>) {
        if let (Some(relay), Some(records)) = (self.relay.get(), records) {
            relay.relay(records);
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn PerformanceStore> {
        &self.store
    }

    /// The task encoder.
    pub fn encoder(&self) -> &TaskEncoder {
        &self.encoder
    }

    /// Makes agents candidates for predictions before they have any history (e.g. the agents
    /// configured in the daemon).
    pub fn register_agents(&self, agents: impl IntoIterator<Item = AgentId>) {
        let mut set = self.agents.write().unwrap_or_else(|p| p.into_inner());
        set.extend(agents);
    }

    /// Makes agents candidates (like [`LearningEngine::register_agents`]) and records the kinds
    /// of task each is declared for. A hinted agent starts from a higher prior for tasks of those
    /// types ([`RouterConfig::hinted_prior_mean`]) and is preferred when there is no history;
    /// the prior fades as the agents' real outcomes accumulate. An empty list removes the hints.
    pub fn register_agent_hints(&self, agents: impl IntoIterator<Item = (AgentId, Vec<String>)>) {
        let mut hints = self.hints.write().unwrap_or_else(|p| p.into_inner());
        let mut ids = Vec::new();
        for (agent, types) in agents {
            if types.is_empty() {
                hints.remove(&agent);
            } else {
                hints.insert(agent.clone(), types.into_iter().collect());
            }
            ids.push(agent);
        }
        drop(hints);
        self.register_agents(ids);
    }

    /// Whether `agent` is declared for tasks of `task_type`.
    fn hinted(&self, agent: &AgentId, task_type: Option<&str>) -> bool {
        let Some(t) = task_type else { return false };
        self.hints
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(agent)
            .is_some_and(|types| types.contains(t))
    }

    /// Agents the engine knows, by name.
    pub fn known_agents(&self) -> Vec<AgentId> {
        read_agents(&self.agents).iter().cloned().collect()
    }

    async fn prepare(
        &self,
        record: AgentPerformance,
        index: usize,
    ) -> Result<StoredRecord, LearnError> {
        let mut stored = StoredRecord::prepare(record, &self.encoder, Utc::now(), index)?;
        if let Some(signer) = &self.signer {
            let signature = signer
                .sign(&stored.signed_bytes())
                .await
                .map_err(LearnError::Signing)?;
            stored.tpm_signature = Some(
                serde_json::to_string(&signature)
                    .map_err(|e| LearnError::Signing(PortError::Backend(e.to_string())))?,
            );
        }
        Ok(stored)
    }

    fn learn_agents<'a>(&self, agents: impl IntoIterator<Item = &'a AgentId>) {
        let fresh: Vec<AgentId> = {
            let known = read_agents(&self.agents);
            agents
                .into_iter()
                .filter(|a| !known.contains(*a))
                .cloned()
                .collect()
        };
        if !fresh.is_empty() {
            self.register_agents(fresh);
        }
    }

    /// Records one run (seed `record_performance`): validated, embedded, signed when a signer
    /// is configured, and committed together with concurrent calls. Returns once the record is
    /// durable, with its id.
    pub async fn record_performance(&self, record: AgentPerformance) -> Result<Uuid, LearnError> {
        let stored = self.prepare(record, 1).await?;
        let id = stored.record_id;
        let agent = stored.agent_id.clone();
        let relayed = self.to_relay(std::slice::from_ref(&stored));
        let (done, wait) = oneshot::channel();
        self.writer
            .send(writer::Unit::One(Box::new(stored), done))
            .await
            .map_err(|_| LearnError::Closed)?;
        wait.await.map_err(|_| LearnError::Closed)??;
        self.learn_agents([&agent]);
        self.relay(relayed);
        Ok(id)
    }

    /// Records a batch atomically: every record is validated first (errors name the record's
    /// position from 1), then all are stored or none, through the same writer as single records
    /// (in one transaction of its own). Returns how many were new to the store.
    pub async fn record_batch(&self, records: Vec<AgentPerformance>) -> Result<u64, LearnError> {
        let mut prepared = Vec::with_capacity(records.len());
        for (i, r) in records.into_iter().enumerate() {
            prepared.push(self.prepare(r, i + 1).await?);
        }
        let relayed = self.to_relay(&prepared);
        let stored = self.commit_batch(prepared).await?;
        self.relay(relayed);
        Ok(stored)
    }

    /// Commits prepared records as one batch; how many were new.
    async fn commit_batch(&self, prepared: Vec<StoredRecord>) -> Result<u64, LearnError> {
        let agents: BTreeSet<AgentId> = prepared.iter().map(|r| r.agent_id.clone()).collect();
        let (done, wait) = oneshot::channel();
        self.writer
            .send(writer::Unit::Batch(prepared, done))
            .await
            .map_err(|_| LearnError::Closed)?;
        let stored = wait.await.map_err(|_| LearnError::Closed)??;
        self.learn_agents(agents.iter());
        Ok(stored)
    }

    /// Stores records another node stored, as they are (their ids, times, embeddings and
    /// signatures kept; not signed again, not relayed again); those already stored are
    /// skipped. Returns how many were new.
    pub async fn import_records(&self, records: Vec<AgentPerformance>) -> Result<u64, LearnError> {
        let now = Utc::now();
        let mut prepared = Vec::with_capacity(records.len());
        for (i, r) in records.into_iter().enumerate() {
            if r.record_id.is_none() {
                return Err(LearnError::InvalidRecord {
                    index: i + 1,
                    field: "record_id".into(),
                    reason: "an imported record must keep the id it was stored with".into(),
                });
            }
            prepared.push(StoredRecord::prepare(r, &self.encoder, now, i + 1)?);
        }
        self.commit_batch(prepared).await
    }

    /// Embeds a task description the way records are embedded.
    pub fn embed(
        &self,
        description: &str,
        task_type: Option<&str>,
        context: &Metadata,
    ) -> Result<Embedding, LearnError> {
        if description.trim().is_empty() {
            return Err(LearnError::InvalidRequest(
                "task_description must not be empty".into(),
            ));
        }
        self.encoder
            .encode(description, task_type.unwrap_or(""), Some(context))
            .map_err(|e| LearnError::InvalidRequest(e.to_string()))
    }

    /// Stored tasks similar to `query` (seed `find_similar_tasks`).
    pub async fn find_similar_tasks(
        &self,
        query: &Embedding,
        similarity_threshold: f32,
        limit: usize,
    ) -> Result<Vec<SimilarTask>, LearnError> {
        self.store
            .find_similar(query, similarity_threshold, limit, SearchMode::Default)
            .await
    }
}

#[async_trait]
impl PerformanceSink for LearningEngine {
    async fn record(&self, record: AgentPerformance) -> Result<(), PortError> {
        self.record_performance(record).await?;
        Ok(())
    }
}

#[async_trait]
impl RecordsImport for LearningEngine {
    async fn import(&self, records: Vec<AgentPerformance>) -> Result<u64, PortError> {
        Ok(self.import_records(records).await?)
    }
}

#[async_trait]
impl AgentAdvisor for LearningEngine {
    async fn advise(&self, request: AdviceRequest) -> Result<LearningPrediction, PortError> {
        let request = PredictRequest {
            task_description: request.task_description,
            task_type: request.task_type,
            context: request.context,
            exclude_agents: request.exclude_agents,
            candidates: (!request.candidates.is_empty()).then_some(request.candidates),
        };
        Ok(self.predict_optimal_agent(&request).await?)
    }
}
