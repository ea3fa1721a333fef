//! Routing: which eligible agent should run a task — similar past tasks scored per agent,
//! with each agent's declared task types as its prior while history is thin.

use std::collections::{BTreeMap, BTreeSet};

use dsmil_core::AgentId;
use dsmil_core::learning::{Embedding, LearningPrediction};
use dsmil_core::workflow::{Metadata, ResourceUsage};
use serde_json::json;

use super::{LearningEngine, PredictRequest};
use crate::error::LearnError;
use crate::router::{self, AgentScore, Outcome, RouterConfig};
use crate::store::{SearchMode, SimilarTask};

impl LearningEngine {
    /// Scores every eligible candidate for a task; best first.
    pub(super) async fn score(
        &self,
        embedding: &Embedding,
        candidates: &[AgentId],
        task_type: Option<&str>,
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
        let priors: Vec<f64> = candidates
            .iter()
            .map(|a| {
                if self.hinted(a, task_type) {
                    router_config.hinted_prior_mean
                } else {
                    router_config.prior_mean
                }
            })
            .collect();
        Ok((
            router::score_agents_with_priors(router_config, &pairs, candidates, &priors),
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
            .score(
                &embedding,
                &eligible,
                request.task_type.as_deref(),
                &self.config.router,
            )
            .await?;
        let relevant = scores.iter().any(|s| s.evidence > 0.0);
        let mut reasoning = Metadata::new();
        reasoning.insert("similar_tasks".into(), json!(neighbors.len()));
        reasoning.insert("search".into(), json!(self.store.search_engine()));
        if !relevant {
            let task_type = request.task_type.as_deref();
            let hinted = eligible.iter().find(|a| self.hinted(a, task_type));
            let (chosen, method) = match hinted {
                Some(a) => (a.clone(), "task_type_hint_without_history"),
                None => (
                    self.config
                        .default_agent
                        .as_ref()
                        .filter(|d| eligible.contains(d))
                        .unwrap_or(&eligible[0])
                        .clone(),
                    "default_agent_without_history",
                ),
            };
            reasoning.insert("method".into(), json!(method));
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
