//! The learning engine (seed `LearningEngineInterface`): records runs, predicts the best agent
//! for a task, and analyses history — over any [`PerformanceStore`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use chrono::{Duration as TimeDelta, Utc};
use dsmil_core::AgentId;
use dsmil_core::learning::{AgentPerformance, Embedding, LearningPrediction};
use dsmil_core::ports::{AdviceRequest, AgentAdvisor, PerformanceSink, PortError, Signer};
use dsmil_core::workflow::{Metadata, ResourceUsage};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::allocation;
use crate::analysis::{self, Anomaly, AnomalySettings, TrendReport};
use crate::encoder::TaskEncoder;
use crate::error::LearnError;
use crate::record::{StoredRecord, TaskSummary};
use crate::router::{self, AgentScore, Outcome, RouterConfig};
use crate::store::{AgentStats, HistoryFilter, PerformanceStore, SearchMode, SimilarTask};

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

struct Pending {
    record: StoredRecord,
    done: oneshot::Sender<Result<(), LearnError>>,
}

/// The learning engine.
pub struct LearningEngine {
    store: Arc<dyn PerformanceStore>,
    encoder: TaskEncoder,
    config: EngineConfig,
    signer: Option<Arc<dyn Signer>>,
    agents: RwLock<BTreeSet<AgentId>>,
    writer: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for LearningEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LearningEngine")
            .field("store", &self.store.backend())
            .field("config", &self.config)
            .finish()
    }
}

fn read_agents<'a>(
    set: &'a RwLock<BTreeSet<AgentId>>,
) -> std::sync::RwLockReadGuard<'a, BTreeSet<AgentId>> {
    set.read().unwrap_or_else(|p| p.into_inner())
}

async fn write_loop(store: Arc<dyn PerformanceStore>, mut rx: mpsc::Receiver<Pending>, max: usize) {
    let mut batch = Vec::with_capacity(max);
    while rx.recv_many(&mut batch, max).await > 0 {
        let records: Vec<StoredRecord> = batch.iter().map(|p| p.record.clone()).collect();
        let result = store.insert(&records).await.map(|_| ());
        for p in batch.drain(..) {
            // The caller may have gone away; its record is stored regardless.
            let _ = p.done.send(result.clone());
        }
    }
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
        tokio::spawn(write_loop(Arc::clone(&store), rx, config.batch_max.max(1)));
        Ok(Self {
            store,
            encoder: TaskEncoder::default(),
            config,
            signer: None,
            agents: RwLock::new(known),
            writer: tx,
        })
    }

    /// Signs every record through `signer` before it is stored.
    pub fn with_signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(signer);
        self
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
                .map_err(|e| LearnError::Signing(e.to_string()))?;
            stored.tpm_signature = Some(
                serde_json::to_string(&signature)
                    .map_err(|e| LearnError::Signing(e.to_string()))?,
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
        let (done, wait) = oneshot::channel();
        self.writer
            .send(Pending {
                record: stored,
                done,
            })
            .await
            .map_err(|_| LearnError::Closed)?;
        wait.await.map_err(|_| LearnError::Closed)??;
        self.learn_agents([&agent]);
        Ok(id)
    }

    /// Records a batch atomically: every record is validated first (errors name the record's
    /// position from 1), then all are stored or none. Returns how many were stored.
    pub async fn record_batch(&self, records: Vec<AgentPerformance>) -> Result<u64, LearnError> {
        let mut prepared = Vec::with_capacity(records.len());
        for (i, r) in records.into_iter().enumerate() {
            prepared.push(self.prepare(r, i + 1).await?);
        }
        let n = self.store.insert(&prepared).await?;
        self.learn_agents(prepared.iter().map(|r| &r.agent_id));
        Ok(n)
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

    /// Scores every eligible candidate for a task; best first.
    async fn score(
        &self,
        embedding: &Embedding,
        candidates: &[AgentId],
        router_config: &RouterConfig,
    ) -> Result<(Vec<AgentScore>, Vec<SimilarTask>), LearnError> {
        let neighbors = self
            .store
            .find_similar(
                embedding,
                router_config.similarity_floor,
                self.config.neighbors,
                SearchMode::Default,
            )
            .await?;
        let outcomes: Vec<Outcome> = neighbors
            .iter()
            .map(|n| Outcome {
                agent_id: n.task.agent_id.clone(),
                success_rate: n.task.success_rate,
                execution_time_ms: n.task.execution_time_ms,
            })
            .collect();
        let pairs: Vec<(f32, &Outcome)> = neighbors
            .iter()
            .zip(&outcomes)
            .map(|(n, o)| (n.similarity, o))
            .collect();
        Ok((
            router::score_agents(router_config, &pairs, candidates),
            neighbors,
        ))
    }

    fn eligible(&self, request: &PredictRequest) -> Result<Vec<AgentId>, LearnError> {
        let pool: Vec<AgentId> = match &request.candidates {
            Some(c) => c.clone(),
            None => self.known_agents(),
        };
        let mut seen = BTreeSet::new();
        let eligible: Vec<AgentId> = pool
            .into_iter()
            .filter(|a| !request.exclude_agents.contains(a))
            .filter(|a| seen.insert(a.clone()))
            .collect();
        if eligible.is_empty() {
            return Err(LearnError::NoEligibleAgent(
                if self.known_agents().is_empty() {
                    "no agent is known yet: record some runs or register agents".into()
                } else {
                    "every candidate is excluded".into()
                },
            ));
        }
        Ok(eligible)
    }

    /// Predicts the best agent for a task (seed `predict_optimal_agent`): embed, find similar
    /// past tasks, score each eligible agent (smoothed success, exploration, time) and explain.
    /// Without any relevant history it answers the default agent with confidence 0.
    pub async fn predict_optimal_agent(
        &self,
        request: &PredictRequest,
    ) -> Result<LearningPrediction, LearnError> {
        let embedding = self.embed(
            &request.task_description,
            request.task_type.as_deref(),
            &request.context,
        )?;
        let eligible = self.eligible(request)?;
        let (scores, neighbors) = self
            .score(&embedding, &eligible, &self.config.router)
            .await?;
        let relevant = scores.iter().any(|s| s.evidence > 0.0);
        let mut reasoning = Metadata::new();
        reasoning.insert("similar_tasks".into(), json!(neighbors.len()));
        reasoning.insert("search".into(), json!(self.store.search_engine()));
        if !relevant {
            let chosen = self
                .config
                .default_agent
                .as_ref()
                .filter(|d| eligible.contains(d))
                .unwrap_or(&eligible[0])
                .clone();
            reasoning.insert("method".into(), json!("default_agent_without_history"));
            return Ok(LearningPrediction {
                predicted_agent: chosen,
                confidence_score: 0.0,
                reasoning,
                alternative_agents: Vec::new(),
                execution_time_estimate_ms: 0,
                resource_estimate: ResourceUsage::new(),
            });
        }
        let cfg = &self.config.router;
        let best = &scores[0];
        let runner_up = scores.get(1);
        reasoning.insert("method".into(), json!("similar_history"));
        reasoning.insert(
            "top_similarity".into(),
            json!(neighbors.first().map(|n| n.similarity)),
        );
        reasoning.insert(
            "scores".into(),
            json!(
                scores
                    .iter()
                    .take(6)
                    .map(|s| json!({
                        "agent_id": s.agent_id,
                        "score": s.score,
                        "expected_success": s.expected_success,
                        "evidence": s.evidence,
                        "exploration_bonus": s.exploration_bonus,
                        "expected_time_ms": s.expected_time_ms,
                    }))
                    .collect::<Vec<_>>()
            ),
        );
        let alternative_agents = scores
            .iter()
            .skip(1)
            .take(5)
            .map(|s| (s.agent_id.clone(), router::confidence(cfg, s, Some(best))))
            .collect();
        Ok(LearningPrediction {
            predicted_agent: best.agent_id.clone(),
            confidence_score: router::confidence(cfg, best, runner_up),
            reasoning,
            alternative_agents,
            execution_time_estimate_ms: best.expected_time_ms.round().max(0.0) as u64,
            resource_estimate: resource_estimate(&neighbors, &best.agent_id),
        })
    }

    /// One agent's runs in the last `hours` (seed `get_agent_performance_history`), newest first.
    pub async fn agent_history(
        &self,
        agent: &AgentId,
        hours: u32,
    ) -> Result<Vec<StoredRecord>, LearnError> {
        self.store
            .history(&HistoryFilter {
                agent_id: Some(agent.clone()),
                since: Some(Utc::now() - TimeDelta::hours(i64::from(hours))),
                limit: Some(ANALYSIS_ROW_LIMIT),
            })
            .await
    }

    /// Trend of an agent over the last `time_window_hours` (seed
    /// `analyze_performance_trends`).
    pub async fn analyze_performance_trends(
        &self,
        agent: &AgentId,
        time_window_hours: u32,
    ) -> Result<TrendReport, LearnError> {
        if time_window_hours == 0 {
            return Err(LearnError::InvalidRequest(
                "time_window_hours must be at least 1".into(),
            ));
        }
        let runs = self
            .store
            .summaries(&HistoryFilter {
                agent_id: Some(agent.clone()),
                since: Some(Utc::now() - TimeDelta::hours(i64::from(time_window_hours))),
                limit: Some(ANALYSIS_ROW_LIMIT),
            })
            .await?;
        Ok(analysis::trend(
            agent.clone(),
            time_window_hours,
            &runs,
            Utc::now(),
        ))
    }

    /// Runs in the analysis window that deviate from their agent's rolling baseline by more
    /// than `threshold_std_devs` (seed `detect_performance_anomalies`).
    pub async fn detect_performance_anomalies(
        &self,
        threshold_std_devs: f64,
    ) -> Result<Vec<Anomaly>, LearnError> {
        if !threshold_std_devs.is_finite() || threshold_std_devs <= 0.0 {
            return Err(LearnError::InvalidRequest(format!(
                "threshold_std_devs must be a positive number, got {threshold_std_devs}"
            )));
        }
        let runs = self.window_runs().await?;
        let settings = AnomalySettings {
            threshold_std_devs,
            ..self.config.anomaly.clone()
        };
        Ok(analysis::anomalies(&runs, &settings))
    }

    async fn window_runs(&self) -> Result<Vec<TaskSummary>, LearnError> {
        self.store
            .summaries(&HistoryFilter {
                agent_id: None,
                since: Some(
                    Utc::now() - TimeDelta::hours(i64::from(self.config.analysis_window_hours)),
                ),
                limit: Some(ANALYSIS_ROW_LIMIT),
            })
            .await
    }

    /// Assigns `tasks` to agents within `capacity` (free slots per agent), maximising the total
    /// predicted score (seed `optimize_agent_allocation`). Scores here leave out the exploration
    /// bonus: allocation exploits what is known.
    pub async fn optimize_agent_allocation(
        &self,
        tasks: &[PendingTask],
        capacity: &BTreeMap<AgentId, usize>,
    ) -> Result<Allocation, LearnError> {
        let agents: Vec<AgentId> = capacity.keys().cloned().collect();
        let caps: Vec<usize> = capacity.values().copied().collect();
        let exploit = RouterConfig {
            exploration: 0.0,
            ..self.config.router.clone()
        };
        let mut matrix = Vec::with_capacity(tasks.len());
        for t in tasks {
            let e = self.embed(&t.task_description, t.task_type.as_deref(), &t.context)?;
            let (scores, _) = self.score(&e, &agents, &exploit).await?;
            let row: Vec<f64> = agents
                .iter()
                .map(|a| {
                    scores
                        .iter()
                        .find(|s| &s.agent_id == a)
                        .map_or(f64::NAN, |s| s.score)
                })
                .collect();
            matrix.push(row);
        }
        let picks = allocation::assign(&matrix, &caps);
        let mut out = Allocation {
            assignments: BTreeMap::new(),
            unassigned: Vec::new(),
            total_score: 0.0,
        };
        for ((task, pick), row) in tasks.iter().zip(picks).zip(&matrix) {
            match pick {
                Some(a) => {
                    out.total_score += row[a];
                    out.assignments
                        .entry(agents[a].clone())
                        .or_default()
                        .push(task.task_id.clone());
                }
                None => out.unassigned.push(task.task_id.clone()),
            }
        }
        Ok(out)
    }

    /// The seed's system performance summary over the last `hours`.
    pub async fn system_summary(&self, hours: u32) -> Result<SystemSummary, LearnError> {
        let stats = self
            .store
            .agent_stats(Some(Utc::now() - TimeDelta::hours(i64::from(hours))))
            .await?;
        Ok(summarise(&stats))
    }

    /// What the engine has learned (seed `get_learning_insights`).
    pub async fn get_learning_insights(&self) -> Result<Insights, LearnError> {
        let window = Utc::now() - TimeDelta::hours(i64::from(self.config.analysis_window_hours));
        let agents = self.store.agent_stats(Some(window)).await?;
        let runs = self.window_runs().await?;
        let anomalies = analysis::anomalies(&runs, &self.config.anomaly).len();
        let known_agents = read_agents(&self.agents).len();
        Ok(Insights {
            store_backend: self.store.backend().into(),
            search_engine: self.store.search_engine(),
            total_records: self.store.count().await?,
            pending_records: self.store.pending().await?,
            known_agents,
            last_hour: self.system_summary(1).await?,
            best_agent_by_task_type: best_by_task_type(&runs, &self.config.router),
            anomalies,
            agents,
        })
    }
}

fn summarise(stats: &[AgentStats]) -> SystemSummary {
    let n = stats.len().max(1) as f64;
    SystemSummary {
        active_agents: stats.len(),
        total_tasks: stats.iter().map(|s| s.task_count).sum(),
        system_avg_time_ms: stats.iter().map(|s| s.avg_execution_time_ms).sum::<f64>() / n,
        system_success_rate: stats.iter().map(|s| s.avg_success_rate).sum::<f64>() / n,
        max_time_std_dev_ms: stats
            .iter()
            .map(|s| s.execution_time_std_dev_ms)
            .fold(0.0, f64::max),
    }
}

/// Per task type, the agent with the best Bayesian-smoothed mean success.
fn best_by_task_type(runs: &[TaskSummary], cfg: &RouterConfig) -> BTreeMap<String, (AgentId, f64)> {
    let mut sums: BTreeMap<(&str, &AgentId), (f64, f64)> = BTreeMap::new();
    for r in runs {
        let e = sums.entry((&r.task_type, &r.agent_id)).or_default();
        e.0 += r.success_rate;
        e.1 += 1.0;
    }
    let m = cfg.prior_strength.max(1e-6);
    let mut best: BTreeMap<String, (AgentId, f64)> = BTreeMap::new();
    for ((task_type, agent), (s, n)) in sums {
        let smoothed = (s + m * cfg.prior_mean) / (n + m);
        let entry = best.entry(task_type.to_owned());
        match entry {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((agent.clone(), smoothed));
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                if smoothed > o.get().1 {
                    o.insert((agent.clone(), smoothed));
                }
            }
        }
    }
    best
}

/// Similarity²-weighted mean resource usage of `agent`'s neighbours.
fn resource_estimate(neighbors: &[SimilarTask], agent: &AgentId) -> ResourceUsage {
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for n in neighbors.iter().filter(|n| &n.task.agent_id == agent) {
        let w = f64::from(n.similarity.max(0.0)).powi(2);
        for (k, v) in &n.task.resource_usage {
            let e = sums.entry(k.clone()).or_default();
            e.0 += w * v;
            e.1 += w;
        }
    }
    sums.into_iter()
        .filter(|(_, (_, w))| *w > 0.0)
        .map(|(k, (s, w))| (k, s / w))
        .collect()
}

#[async_trait]
impl PerformanceSink for LearningEngine {
    async fn record(&self, record: AgentPerformance) -> Result<(), PortError> {
        self.record_performance(record).await?;
        Ok(())
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
