//! Scoring agents for a task from the outcomes of similar past tasks.
//!
//! For every candidate agent the router combines the outcomes of the nearest past tasks that
//! agent ran, each weighted by `similarity²`:
//!
//! - **expected success** with Bayesian smoothing: `(Σw·s + m·p₀) / (Σw + m)`, so one lucky run
//!   (little weight) stays near the prior `p₀` while fifty good runs move far from it;
//! - an **exploration bonus** `c·√(ln(1 + W) / (1 + Σw))` (UCB-style, deterministic), so an agent
//!   with no similar history still gets tried when the others are mediocre, and the bonus fades
//!   as evidence accumulates;
//! - a small **time penalty** `λ·t / (t + t_ref)` that prefers the faster of two equally
//!   successful agents (`t_ref` is the median expected time of the candidates).
//!
//! Scores are finite for any input (weights and rates are clamped and sanitised) and never
//! decrease when a past outcome of the agent improves.

use dsmil_core::ids::AgentId;

/// One past run as the router sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The agent that ran it.
    pub agent_id: AgentId,
    /// Share of success, 0–1 (clamped).
    pub success_rate: f64,
    /// Wall time.
    pub execution_time_ms: u64,
}

/// Tuning of the score; the defaults are what the routing bench is run with.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    /// Prior success rate `p₀` of an agent without evidence. Default: 0.5.
    pub prior_mean: f64,
    /// Prior success rate of an agent declared for the task's type (`[[agents]].task_types`):
    /// preferred while history is thin, overtaken by evidence. Default: 0.75.
    pub hinted_prior_mean: f64,
    /// Prior strength `m`, in units of fully similar runs. Default: 2.0.
    pub prior_strength: f64,
    /// Exploration coefficient `c`. Default: 0.3.
    pub exploration: f64,
    /// Time penalty `λ`. Default: 0.05.
    pub time_weight: f64,
    /// Neighbours below this similarity are ignored. Default: 0.05.
    pub similarity_floor: f32,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            prior_mean: 0.5,
            hinted_prior_mean: 0.75,
            prior_strength: 2.0,
            exploration: 0.3,
            time_weight: 0.05,
            similarity_floor: 0.05,
        }
    }
}

/// One candidate's evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentScore {
    /// The agent.
    pub agent_id: AgentId,
    /// The ranking score (higher is better).
    pub score: f64,
    /// Smoothed expected success, 0–1.
    pub expected_success: f64,
    /// Sum of similarity weights of its neighbours (0: no similar history).
    pub evidence: f64,
    /// Similarity-weighted mean time of its neighbours (the neighbours' overall mean without
    /// evidence).
    pub expected_time_ms: f64,
    /// The exploration bonus included in `score`.
    pub exploration_bonus: f64,
}

fn weight(similarity: f32) -> f64 {
    let s = f64::from(similarity);
    if s.is_finite() && s > 0.0 {
        s.min(1.0).powi(2)
    } else {
        0.0
    }
}

fn rate(success: f64) -> f64 {
    if success.is_finite() {
        success.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// Scores every candidate from `neighbors` (similarity to the task, past outcome); best first,
/// ties broken by the candidates' order. Every candidate starts from `config.prior_mean`.
pub fn score_agents(
    config: &RouterConfig,
    neighbors: &[(f32, &Outcome)],
    candidates: &[AgentId],
) -> Vec<AgentScore> {
    let priors = vec![config.prior_mean; candidates.len()];
    score_agents_with_priors(config, neighbors, candidates, &priors)
}

/// Like [`score_agents`], with each candidate's own prior success rate (`priors[i]` for
/// `candidates[i]`; missing entries use `config.prior_mean`).
pub fn score_agents_with_priors(
    config: &RouterConfig,
    neighbors: &[(f32, &Outcome)],
    candidates: &[AgentId],
    priors: &[f64],
) -> Vec<AgentScore> {
    let m = if config.prior_strength.is_finite() {
        config.prior_strength.max(1e-6)
    } else {
        2.0
    };
    let usable: Vec<(f64, &Outcome)> = neighbors
        .iter()
        .filter(|(s, _)| *s >= config.similarity_floor)
        .map(|(s, o)| (weight(*s), *o))
        .filter(|(w, _)| *w > 0.0)
        .collect();
    let total_weight: f64 = usable.iter().map(|(w, _)| w).sum();
    let overall_time = if total_weight > 0.0 {
        usable
            .iter()
            .map(|(w, o)| w * o.execution_time_ms as f64)
            .sum::<f64>()
            / total_weight
    } else {
        0.0
    };
    let mut scores: Vec<AgentScore> = candidates
        .iter()
        .enumerate()
        .map(|(i, agent)| {
            let p0 = rate(priors.get(i).copied().unwrap_or(config.prior_mean));
            let (mut w_sum, mut s_sum, mut t_sum) = (0.0, 0.0, 0.0);
            for (w, o) in usable.iter().filter(|(_, o)| &o.agent_id == agent) {
                w_sum += w;
                s_sum += w * rate(o.success_rate);
                t_sum += w * o.execution_time_ms as f64;
            }
            let expected_success = (s_sum + m * p0) / (w_sum + m);
            let exploration_bonus =
                config.exploration.max(0.0) * ((1.0 + total_weight).ln() / (1.0 + w_sum)).sqrt();
            let expected_time_ms = if w_sum > 0.0 {
                t_sum / w_sum
            } else {
                overall_time
            };
            AgentScore {
                agent_id: agent.clone(),
                score: expected_success + exploration_bonus,
                expected_success,
                evidence: w_sum,
                expected_time_ms,
                exploration_bonus,
            }
        })
        .collect();
    let mut times: Vec<f64> = scores
        .iter()
        .map(|s| s.expected_time_ms)
        .filter(|t| *t > 0.0)
        .collect();
    times.sort_by(f64::total_cmp);
    if let Some(&t_ref) = times.get(times.len() / 2) {
        let lambda = config.time_weight.max(0.0);
        for s in &mut scores {
            s.score -= lambda * s.expected_time_ms / (s.expected_time_ms + t_ref);
        }
    }
    for s in &mut scores {
        if !s.score.is_finite() {
            s.score = 0.0;
        }
    }
    // Stable sort keeps the candidates' order among equal scores.
    scores.sort_by(|a, b| b.score.total_cmp(&a.score));
    scores
}

/// Confidence that `best` really is the best: evidence (how much similar history it has,
/// relative to the prior) times margin (a logistic of its lead in expected success over the
/// runner-up). 0 without history.
pub fn confidence(config: &RouterConfig, best: &AgentScore, runner_up: Option<&AgentScore>) -> f64 {
    let m = config.prior_strength.max(1e-6);
    let evidence = best.evidence / (best.evidence + m);
    let lead = runner_up.map_or(0.5, |r| best.expected_success - r.expected_success);
    let margin = 1.0 / (1.0 + (-10.0 * lead).exp());
    let c = evidence * margin;
    if c.is_finite() {
        c.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> AgentId {
        AgentId::new(s).unwrap()
    }

    fn outcome(agent: &str, success: f64, ms: u64) -> Outcome {
        Outcome {
            agent_id: id(agent),
            success_rate: success,
            execution_time_ms: ms,
        }
    }

    #[test]
    fn a_lucky_streak_does_not_beat_steady_evidence() {
        let lucky = [outcome("lucky", 1.0, 100)];
        let steady: Vec<Outcome> = (0..50).map(|_| outcome("steady", 0.9, 100)).collect();
        let mut n: Vec<(f32, &Outcome)> = vec![(0.5, &lucky[0])];
        n.extend(steady.iter().map(|o| (0.9f32, o)));
        let cfg = RouterConfig {
            exploration: 0.0,
            ..RouterConfig::default()
        };
        let scores = score_agents(&cfg, &n, &[id("lucky"), id("steady")]);
        assert_eq!(scores[0].agent_id, id("steady"));
    }

    #[test]
    fn an_untried_agent_gets_explored_when_others_are_mediocre() {
        let runs: Vec<Outcome> = (0..10).map(|_| outcome("meh", 0.4, 100)).collect();
        let n: Vec<(f32, &Outcome)> = runs.iter().map(|o| (0.9f32, o)).collect();
        let scores = score_agents(&RouterConfig::default(), &n, &[id("meh"), id("new")]);
        assert_eq!(scores[0].agent_id, id("new"));
        assert_eq!(scores[0].evidence, 0.0);
    }

    #[test]
    fn faster_agent_wins_between_equals_and_no_history_means_no_confidence() {
        let runs = [outcome("fast", 0.9, 10), outcome("slow", 0.9, 1000)];
        let n: Vec<(f32, &Outcome)> = runs.iter().map(|o| (1.0f32, o)).collect();
        let cfg = RouterConfig {
            exploration: 0.0,
            ..RouterConfig::default()
        };
        let scores = score_agents(&cfg, &n, &[id("slow"), id("fast")]);
        assert_eq!(scores[0].agent_id, id("fast"));
        let empty = score_agents(&cfg, &[], &[id("a")]);
        assert_eq!(confidence(&cfg, &empty[0], None), 0.0);
    }

    #[test]
    fn a_hinted_prior_leads_while_history_is_thin_and_fades_with_evidence() {
        let cfg = RouterConfig {
            exploration: 0.0,
            ..RouterConfig::default()
        };
        let agents = [id("generalist"), id("specialist")];
        let priors = [cfg.prior_mean, cfg.hinted_prior_mean];
        // One middling run of each: the hint decides.
        let thin = [
            outcome("generalist", 0.6, 100),
            outcome("specialist", 0.6, 100),
        ];
        let n: Vec<(f32, &Outcome)> = thin.iter().map(|o| (1.0f32, o)).collect();
        let scores = score_agents_with_priors(&cfg, &n, &agents, &priors);
        assert_eq!(scores[0].agent_id, id("specialist"));
        // Twenty runs each, the generalist clearly better: the evidence decides.
        let mut many: Vec<Outcome> = (0..20).map(|_| outcome("generalist", 0.9, 100)).collect();
        many.extend((0..20).map(|_| outcome("specialist", 0.6, 100)));
        let n: Vec<(f32, &Outcome)> = many.iter().map(|o| (1.0f32, o)).collect();
        let scores = score_agents_with_priors(&cfg, &n, &agents, &priors);
        assert_eq!(scores[0].agent_id, id("generalist"));
    }

    proptest! {
        #[test]
        fn scores_are_finite_for_any_input(
            raw in proptest::collection::vec((any::<f32>(), any::<f64>(), any::<u64>(), 0usize..3), 0..40),
            exploration in any::<f64>(), prior in any::<f64>(),
        ) {
            let agents = [id("a"), id("b"), id("c")];
            let outcomes: Vec<Outcome> = raw.iter().map(|(_, s, t, a)| Outcome {
                agent_id: agents[*a].clone(), success_rate: *s, execution_time_ms: *t,
            }).collect();
            let n: Vec<(f32, &Outcome)> = raw.iter().zip(&outcomes).map(|((sim, ..), o)| (*sim, o)).collect();
            let cfg = RouterConfig { exploration, prior_mean: prior, ..RouterConfig::default() };
            let scores = score_agents(&cfg, &n, &agents);
            for s in &scores {
                prop_assert!(s.score.is_finite() && s.expected_success.is_finite());
                let c = confidence(&cfg, s, scores.get(1));
                prop_assert!((0.0..=1.0).contains(&c));
            }
        }

        #[test]
        fn score_never_decreases_when_an_outcome_improves(
            runs in proptest::collection::vec((0f32..1.0, 0f64..1.0, 1u64..10_000, any::<bool>()), 1..30),
            pick in any::<prop::sample::Index>(), better in 0f64..1.0,
        ) {
            let agents = [id("x"), id("y")];
            let mut outcomes: Vec<Outcome> = runs.iter().map(|(_, s, t, a)| Outcome {
                agent_id: agents[usize::from(*a)].clone(), success_rate: *s, execution_time_ms: *t,
            }).collect();
            let score_of = |outs: &[Outcome], agent: &AgentId| -> f64 {
                let n: Vec<(f32, &Outcome)> = runs.iter().zip(outs).map(|((sim, ..), o)| (*sim, o)).collect();
                score_agents(&RouterConfig::default(), &n, &agents).into_iter().find(|s| &s.agent_id == agent).map(|s| s.score).unwrap()
            };
            let i = pick.index(outcomes.len());
            let agent = outcomes[i].agent_id.clone();
            let before = score_of(&outcomes, &agent);
            outcomes[i].success_rate = (outcomes[i].success_rate + better).min(1.0);
            let after = score_of(&outcomes, &agent);
            prop_assert!(after >= before - 1e-12, "{} -> {}", before, after);
        }
    }
}
