//! The agent registry: every agent with its bulkhead, circuit breaker and retry policy, built
//! from dsmild's `[[agents]]` configuration or registered in code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AgentConfig, AgentKind};
use dsmil_core::AgentId;
use serde::Serialize;
use thiserror::Error;

use crate::agent::Agent;
use crate::agents::{BuiltinAgent, CommandAgent, HttpAgent};
use crate::resilience::breaker::Transition;
use crate::resilience::{
    BreakerSettings, BreakerState, Bulkhead, CircuitBreaker, RetryBudget, RetryPolicy, Window,
};

/// Why an agent could not be registered.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RegistryError {
    /// Two agents share an id.
    #[error("agent {0} is registered twice")]
    Duplicate(AgentId),
    /// A `builtin` agent names no built-in.
    #[error("agents.{agent}: unknown built-in {name:?}; expected one of {}", BuiltinAgent::NAMES.join(", "))]
    UnknownBuiltin {
        /// The agent.
        agent: AgentId,
        /// The name it gave.
        name: String,
    },
    /// A setting is out of range or missing.
    #[error("agents.{agent}: {reason}")]
    Invalid {
        /// The agent.
        agent: AgentId,
        /// What is wrong.
        reason: String,
    },
}

/// How an agent is protected.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    /// Tasks at once (bulkhead). Default: 4.
    pub max_concurrency: usize,
    /// Circuit breaker.
    pub breaker: BreakerSettings,
    /// Backoff between attempts (the number of attempts comes from each task's `retry_count`).
    pub retry: RetryPolicy,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            max_concurrency: 4,
            breaker: BreakerSettings::default(),
            retry: RetryPolicy::default(),
        }
    }
}

impl AgentSettings {
    /// The settings an `[[agents]]` entry asks for. The seed's breaker alone ("open after N
    /// consecutive failures, close after M successes") maps to a count window of N calls that
    /// opens at a 100% failure rate, with M half-open probes; the optional fields override
    /// window, rates, minimum calls, slow-call duration and probe timeout.
    pub fn from_config(c: &AgentConfig) -> Self {
        let cb = &c.circuit_breaker;
        let n = cb.failure_threshold.max(1);
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(60));
        let defaults = BreakerSettings::default();
        let window = match (cb.window_calls, cb.window_seconds) {
            (_, Some(s)) => Window::Time(secs(s)),
            (Some(calls), None) => Window::Count(calls.max(1)),
            (None, None) => Window::Count(n),
        };
        Self {
            max_concurrency: c.max_concurrency.max(1) as usize,
            breaker: BreakerSettings {
                window,
                minimum_calls: cb.minimum_calls.unwrap_or(n).max(1),
                failure_rate_threshold: cb.failure_rate_threshold.unwrap_or(1.0),
                slow_call_duration: cb
                    .slow_call_ms
                    .map_or(defaults.slow_call_duration, Duration::from_millis),
                slow_call_rate_threshold: cb.slow_call_rate_threshold.unwrap_or(1.0),
                open_duration: secs(cb.recovery_timeout_seconds),
                half_open_permits: cb.success_threshold.max(1),
                probe_timeout: cb
                    .probe_timeout_seconds
                    .map_or(defaults.probe_timeout, secs),
            },
            retry: RetryPolicy {
                max_attempts: RetryPolicy::default().max_attempts,
                base_delay: Duration::from_millis(c.retry.base_delay_ms),
                max_delay: Duration::from_millis(c.retry.max_delay_ms),
                multiplier: c.retry.multiplier,
                jitter: c.retry.jitter,
            },
        }
    }
}

/// An agent and its protections.
pub struct AgentRuntime {
    /// The agent.
    pub agent: Arc<dyn Agent>,
    /// Its concurrency limit.
    pub bulkhead: Bulkhead,
    /// Its breaker.
    pub breaker: Arc<CircuitBreaker>,
    /// Its backoff.
    pub retry: RetryPolicy,
    /// The configured concurrency (before any throttling).
    pub configured_concurrency: usize,
}

impl std::fmt::Debug for AgentRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRuntime")
            .field("agent", self.agent.id())
            .field("bulkhead", &self.bulkhead.limit())
            .field("breaker", &self.breaker.state())
            .finish()
    }
}

/// What the registry reports about an agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentInfo {
    /// Its id.
    pub id: AgentId,
    /// How it is reached.
    pub kind: AgentKind,
    /// Concurrency limit in force.
    pub max_concurrency: usize,
    /// Slots free now.
    pub available: usize,
    /// Breaker state.
    pub breaker: BreakerState,
}

/// Called with every breaker transition of an agent.
pub type TransitionListener = Arc<dyn Fn(&AgentId, Transition) + Send + Sync>;

/// All agents by id.
#[derive(Debug, Default)]
pub struct AgentRegistry {
    agents: BTreeMap<AgentId, Arc<AgentRuntime>>,
    budget: Arc<RetryBudget>,
}

impl AgentRegistry {
    /// An empty registry with the default retry budget.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds every configured agent; `listener` hears breaker transitions.
    pub fn from_config(
        configs: &[AgentConfig],
        listener: Option<TransitionListener>,
    ) -> Result<Self, RegistryError> {
        let mut registry = Self::new();
        for c in configs {
            let invalid = |reason: &str| RegistryError::Invalid {
                agent: c.id.clone(),
                reason: reason.into(),
            };
            let agent: Arc<dyn Agent> = match c.kind {
                AgentKind::Command => {
                    let program = c
                        .command
                        .clone()
                        .ok_or_else(|| invalid("command is required for command agents"))?;
                    Arc::new(CommandAgent::new(c.id.clone(), program, c.args.clone()))
                }
                AgentKind::Http => {
                    let url = c
                        .url
                        .clone()
                        .ok_or_else(|| invalid("url is required for http agents"))?;
                    Arc::new(
                        HttpAgent::new(c.id.clone(), url).map_err(|e| invalid(&e.to_string()))?,
                    )
                }
                AgentKind::Builtin => {
                    let name = c
                        .builtin
                        .clone()
                        .unwrap_or_else(|| c.id.as_str().to_owned());
                    Arc::new(BuiltinAgent::named(c.id.clone(), &name).ok_or_else(|| {
                        RegistryError::UnknownBuiltin {
                            agent: c.id.clone(),
                            name,
                        }
                    })?)
                }
            };
            registry.register(agent, AgentSettings::from_config(c), listener.clone())?;
        }
        Ok(registry)
    }

    /// Adds `agent` with `settings`.
    pub fn register(
        &mut self,
        agent: Arc<dyn Agent>,
        settings: AgentSettings,
        listener: Option<TransitionListener>,
    ) -> Result<(), RegistryError> {
        let id = agent.id().clone();
        if self.agents.contains_key(&id) {
            return Err(RegistryError::Duplicate(id));
        }
        settings
            .breaker
            .validate()
            .map_err(|reason| RegistryError::Invalid {
                agent: id.clone(),
                reason: format!("circuit_breaker.{reason}"),
            })?;
        let on_transition = listener.map(|l| {
            let who = id.clone();
            Box::new(move |t: Transition| l(&who, t)) as Box<dyn Fn(Transition) + Send + Sync>
        });
        let runtime = AgentRuntime {
            agent,
            bulkhead: Bulkhead::new(settings.max_concurrency),
            breaker: CircuitBreaker::new(settings.breaker, on_transition),
            retry: settings.retry,
            configured_concurrency: settings.max_concurrency.max(1),
        };
        self.agents.insert(id, Arc::new(runtime));
        Ok(())
    }

    /// The agent `id`.
    pub fn get(&self, id: &AgentId) -> Option<Arc<AgentRuntime>> {
        self.agents.get(id).cloned()
    }

    /// Every agent id, sorted.
    pub fn ids(&self) -> Vec<AgentId> {
        self.agents.keys().cloned().collect()
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// The shared retry budget.
    pub fn budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// Status of every agent.
    pub fn info(&self) -> Vec<AgentInfo> {
        self.agents
            .values()
            .map(|rt| AgentInfo {
                id: rt.agent.id().clone(),
                kind: rt.agent.kind(),
                max_concurrency: rt.bulkhead.limit(),
                available: rt.bulkhead.available(),
                breaker: rt.breaker.state(),
            })
            .collect()
    }

    /// Scales every agent's concurrency to `factor` of its configured limit (at least 1 each);
    /// 1.0 restores it.
    pub fn scale_concurrency(&self, factor: f64) {
        let factor = if factor.is_finite() {
            factor.clamp(0.0, 1.0)
        } else {
            1.0
        };
        for rt in self.agents.values() {
            let limit = ((rt.configured_concurrency as f64) * factor).floor() as usize;
            rt.bulkhead.set_limit(limit.max(1));
        }
    }
}
