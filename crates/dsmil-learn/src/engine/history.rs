//! Analyses of the history (seed `analyze_performance_trends`, `detect_performance_anomalies`,
//! `optimize_agent_allocation`, `get_system_performance_summary`, `get_learning_insights`).

use std::collections::BTreeMap;

use chrono::{Duration as TimeDelta, Utc};
use dsmil_core::AgentId;

use super::{
    ANALYSIS_ROW_LIMIT, Allocation, Insights, LearningEngine, PendingTask, SystemSummary,
    read_agents,
};
use crate::allocation;
use crate::analysis::{self, Anomaly, AnomalySettings, TrendReport};
use crate::error::LearnError;
use crate::record::{StoredRecord, TaskSummary};
use crate::router::RouterConfig;
use crate::store::{AgentStats, HistoryFilter};

impl LearningEngine {
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
            let (scores, _) = self
                .score(&e, &agents, t.task_type.as_deref(), &exploit)
                .await?;
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
