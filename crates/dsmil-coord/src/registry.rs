//! The agent registry: every agent with its bulkhead, circuit breaker and retry settings, built
//! from dsmild's `[[agents]]` configuration or registered in code. Both ways take the same
//! settings types ([`AgentSettings`] is an entry's protection part), with the same defaults and
//! the same validation ([`AgentConfig::validate`]'s).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dsmil_core::AgentId;
use dsmil_core::validate::FieldError;
use serde::Serialize;
use thiserror::Error;

use crate::agent::{Agent, AgentError};
use crate::agents::{BuiltinAgent, CommandAgent, HttpAgent};
pub use crate::config::AgentSettings;
use crate::config::{AgentConfig, AgentKind, RetryConfig, Target};
use crate::resilience::breaker::Transition;
use crate::resilience::{BreakerState, Bulkhead, CircuitBreaker, RetryBudget};

/// Why an agent could not be registered.
#[derive(Debug, Error)]
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
    /// A setting is out of range or missing; the source names the field within the entry.
    #[error("agents.{agent}: invalid setting")]
    Invalid {
        /// The agent.
        agent: AgentId,
        /// The field and what is wrong with it.
        #[source]
        source: FieldError,
    },
    /// The agent could not be built from its settings.
    #[error("agents.{agent}: cannot set up the agent")]
    Agent {
        /// The agent.
        agent: AgentId,
        /// Why.
        #[source]
        source: AgentError,
    },
}

/// An agent and its protections.
pub struct AgentRuntime {
    /// The agent.
    pub agent: Arc<dyn Agent>,
    /// Its concurrency limit.
    pub bulkhead: Bulkhead,
    /// Its breaker.
    pub breaker: Arc<CircuitBreaker>,
    /// Its backoff (the attempts come from each task's `retry_count`).
    pub retry: RetryConfig,
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
    /// Built-ins registered without being declared ([`AgentRegistry::add_builtins`]).
    implicit: BTreeSet<AgentId>,
    budget: Arc<RetryBudget>,
}

impl AgentRegistry {
    /// An empty registry with the default retry budget.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds every configured agent; `listener` hears breaker transitions. Each entry is
    /// checked as [`AgentConfig::validate`] checks it.
    pub fn from_config(
        configs: &[AgentConfig],
        listener: Option<TransitionListener>,
    ) -> Result<Self, RegistryError> {
        let mut registry = Self::new();
        for c in configs {
            let target = c.target().map_err(|source| RegistryError::Invalid {
                agent: c.id.clone(),
                source,
            })?;
            let agent: Arc<dyn Agent> = match target {
                Target::Command { program, args } => {
                    Arc::new(CommandAgent::new(c.id.clone(), program, args.to_vec()))
                }
                Target::Http { url, tls } => Arc::new(
                    HttpAgent::configured(c.id.clone(), url, tls).map_err(|source| {
                        RegistryError::Agent {
                            agent: c.id.clone(),
                            source,
                        }
                    })?,
                ),
                Target::Builtin { name } => {
                    Arc::new(BuiltinAgent::named(c.id.clone(), name).ok_or_else(|| {
                        RegistryError::UnknownBuiltin {
                            agent: c.id.clone(),
                            name: name.to_owned(),
                        }
                    })?)
                }
            };
            registry.register(agent, c.settings(), listener.clone())?;
        }
        Ok(registry)
    }

    /// Adds `agent` with `settings` (checked as an `[[agents]]` entry's are).
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
        let breaker = settings
            .breaker_settings()
            .map_err(|source| RegistryError::Invalid {
                agent: id.clone(),
                source,
            })?;
        let on_transition = listener.map(|l| {
            let who = id.clone();
            Box::new(move |t: Transition| l(&who, t)) as Box<dyn Fn(Transition) + Send + Sync>
        });
        // Validated: 1..=MAX_AGENT_CONCURRENCY fits any usize.
        let concurrency = usize::try_from(settings.max_concurrency).unwrap_or(usize::MAX);
        let runtime = AgentRuntime {
            agent,
            bulkhead: Bulkhead::new(concurrency),
            breaker: CircuitBreaker::new(breaker, on_transition),
            retry: settings.retry,
            configured_concurrency: concurrency,
        };
        self.agents.insert(id, Arc::new(runtime));
        Ok(())
    }

    /// Registers, under its own name and with the default protections, every built-in
    /// ([`BuiltinAgent::NAMES`]) not registered yet; returns the ones added. They are offered to
    /// `auto` routing only while no other agent is registered ([`AgentRegistry::implicit_ids`]).
    pub fn add_builtins(
        &mut self,
        listener: Option<TransitionListener>,
    ) -> Result<Vec<AgentId>, RegistryError> {
        let mut added = Vec::new();
        for name in BuiltinAgent::NAMES {
            // Every built-in name is a valid id with an implementation; skip rather than panic.
            let Ok(id) = AgentId::new(*name) else {
                continue;
            };
            if self.agents.contains_key(&id) {
                continue;
            }
            let Some(agent) = BuiltinAgent::named(id.clone(), name) else {
                continue;
            };
            self.register(Arc::new(agent), AgentSettings::default(), listener.clone())?;
            self.implicit.insert(id.clone());
            added.push(id);
        }
        Ok(added)
    }

    /// The built-ins registered without being declared ([`AgentRegistry::add_builtins`]);
    /// `auto` passes over them while anything else is registered.
    pub fn implicit_ids(&self) -> &BTreeSet<AgentId> {
        &self.implicit
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
