//! Learning ports (provided by the learning layer): record outcomes, advise on agents.

use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::PortError;
use crate::ids::AgentId;
use crate::learning::{AgentPerformance, LearningPrediction};
use crate::workflow::Metadata;

/// Receives every task outcome.
#[async_trait]
pub trait PerformanceSink: Send + Sync {
    /// Stores one record.
    async fn record(&self, record: AgentPerformance) -> Result<(), PortError>;
}

/// What the coordinator asks when a task says `agent_id = "auto"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdviceRequest {
    /// The task in words.
    pub task_description: String,
    /// The task's kind, if known (the workflow type).
    #[serde(default)]
    pub task_type: Option<String>,
    /// Extra context (input size, priority, …).
    #[serde(default)]
    pub context: Metadata,
    /// Agents that can run it (the registered ones); the answer must be one of them.
    pub candidates: Vec<AgentId>,
    /// Agents not to pick (e.g. with an open circuit breaker).
    #[serde(default)]
    pub exclude_agents: Vec<AgentId>,
}

impl AdviceRequest {
    /// Candidates minus exclusions, in the given order.
    pub fn eligible(&self) -> impl Iterator<Item = &AgentId> {
        self.candidates
            .iter()
            .filter(|c| !self.exclude_agents.contains(c))
    }
}

/// Picks an agent for a task.
#[async_trait]
pub trait AgentAdvisor: Send + Sync {
    /// The best eligible agent, with confidence and alternatives.
    async fn advise(&self, request: AdviceRequest) -> Result<LearningPrediction, PortError>;
}

/// Stores records in memory (tests, or a deployment without learning).
#[derive(Debug, Default)]
pub struct MemoryPerformanceSink {
    records: Mutex<Vec<AgentPerformance>>,
}

impl MemoryPerformanceSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything recorded so far.
    pub fn records(&self) -> Vec<AgentPerformance> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl PerformanceSink for MemoryPerformanceSink {
    async fn record(&self, record: AgentPerformance) -> Result<(), PortError> {
        record
            .validate()
            .map_err(|e| PortError::InvalidInput(e.to_string()))?;
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
        Ok(())
    }
}

/// Advisor without history: the configured default agent if eligible, else the first eligible
/// candidate, always with confidence 0.
#[derive(Debug, Clone, Default)]
pub struct DefaultAgentAdvisor {
    /// Preferred agent.
    pub default_agent: Option<AgentId>,
}

#[async_trait]
impl AgentAdvisor for DefaultAgentAdvisor {
    async fn advise(&self, request: AdviceRequest) -> Result<LearningPrediction, PortError> {
        let chosen = self
            .default_agent
            .as_ref()
            .filter(|d| request.eligible().any(|c| c == *d))
            .or_else(|| request.eligible().next())
            .cloned()
            .ok_or_else(|| {
                PortError::InvalidInput("no eligible agent: every candidate is excluded".into())
            })?;
        let mut reasoning = Metadata::new();
        reasoning.insert("method".into(), "default_agent_without_history".into());
        Ok(LearningPrediction {
            predicted_agent: chosen,
            confidence_score: 0.0,
            reasoning,
            alternative_agents: Vec::new(),
            execution_time_estimate_ms: 0,
            resource_estimate: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> AgentId {
        AgentId::new(s).unwrap()
    }

    #[tokio::test]
    async fn default_advisor_respects_exclusions() {
        let advisor = DefaultAgentAdvisor {
            default_agent: Some(id("b")),
        };
        let mut req = AdviceRequest {
            task_description: "x".into(),
            task_type: None,
            context: Metadata::new(),
            candidates: vec![id("a"), id("b")],
            exclude_agents: vec![],
        };
        assert_eq!(
            advisor.advise(req.clone()).await.unwrap().predicted_agent,
            id("b")
        );
        req.exclude_agents = vec![id("b")];
        let p = advisor.advise(req.clone()).await.unwrap();
        assert_eq!(p.predicted_agent, id("a"));
        assert_eq!(p.confidence_score, 0.0);
        req.exclude_agents = vec![id("a"), id("b")];
        assert!(advisor.advise(req).await.is_err());
    }
}
