//! The coordinator's configuration: the `[[agents]]` entries (how each agent is reached, its
//! bulkhead, circuit breaker and retry settings), the agent `auto` tasks fall back on, and how
//! long running workflows get to finish at shutdown. Every field has one default, documented on
//! it; [`CoordConfig::validate`] names the field of the first problem (`agents[1].url`).

use std::collections::HashSet;
use std::time::Duration;

use dsmil_core::AgentId;
use dsmil_core::validate::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The coordinator's part of dsmild's configuration file (top-level keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CoordConfig {
    /// Agent used for `auto` tasks while there is no history. Default: the first agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "hasher")]
    pub default_agent: Option<AgentId>,
    /// Seconds running workflows get to finish on shutdown (SIGTERM) before they are stopped;
    /// the ones still running then are journaled and resume at the next start (0–3600).
    /// Default: 10.
    pub shutdown_grace_seconds: u64,
    /// Declared agents. Default: none.
    pub agents: Vec<AgentConfig>,
}

impl Default for CoordConfig {
    fn default() -> Self {
        Self {
            default_agent: None,
            shutdown_grace_seconds: 10,
            agents: Vec::new(),
        }
    }
}

impl CoordConfig {
    /// How long running workflows get to finish on shutdown.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    /// Checks every agent and the cross-references; the error names the field from the top
    /// (`agents[1].circuit_breaker.failure_threshold`, `default_agent`).
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.shutdown_grace_seconds > 3600 {
            return Err(FieldError::new(
                "shutdown_grace_seconds",
                format!("is {}; expected at most 3600", self.shutdown_grace_seconds),
            ));
        }
        if self.agents.len() > MAX_AGENTS {
            return Err(FieldError::new(
                "agents",
                format!(
                    "{} agents declared; at most {MAX_AGENTS} are allowed",
                    self.agents.len()
                ),
            ));
        }
        let mut seen = HashSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            if !seen.insert(agent.id.as_str()) {
                return Err(FieldError::new(
                    format!("agents[{i}].id"),
                    format!("{:?} is declared twice", agent.id.as_str()),
                ));
            }
            agent
                .validate()
                .map_err(|e| e.within(&format!("agents[{i}].")))?;
        }
        if let Some(default) = &self.default_agent
            && !seen.contains(default.as_str())
        {
            return Err(FieldError::new(
                "default_agent",
                format!("{:?} is not one of the declared agents", default.as_str()),
            ));
        }
        Ok(())
    }
}

/// How an agent is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// A program: task JSON on stdin, result JSON on stdout.
    Command,
    /// An HTTP endpoint: task JSON POSTed, result JSON answered.
    Http,
    /// Rust code compiled into the daemon.
    Builtin,
}

/// Circuit breaker settings. The seed's three fields alone give its behaviour (open after
/// `failure_threshold` consecutive failures); the optional ones switch to a sliding window with a
/// failure-rate and slow-call judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open the circuit. Default: 5.
    pub failure_threshold: u32,
    /// Seconds the circuit stays open before a trial call. Default: 60.
    pub recovery_timeout_seconds: f64,
    /// Successes in half-open state that close it again (the probe calls). Default: 3.
    pub success_threshold: u32,
    /// Judge the last N calls. Default: `failure_threshold`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 20)]
    pub window_calls: Option<u32>,
    /// Judge the calls of the last N seconds instead of a count.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 30.0)]
    pub window_seconds: Option<f64>,
    /// Failure share (0–1] of the window that opens the circuit. Default: 1.0 (all failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 0.5)]
    pub failure_rate_threshold: Option<f64>,
    /// Calls the window must hold before it is judged. Default: `failure_threshold`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 10)]
    pub minimum_calls: Option<u32>,
    /// A successful call slower than this (ms) is slow. Default: 10000.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 10000)]
    pub slow_call_ms: Option<u64>,
    /// Slow-call share (0–1] of the window that opens the circuit. Default: 1.0.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 1.0)]
    pub slow_call_rate_threshold: Option<f64>,
    /// Seconds after which a probe that has not reported counts as failed. Default: 60.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 60.0)]
    pub probe_timeout_seconds: Option<f64>,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            recovery_timeout_seconds: 60.0,
            success_threshold: 3,
            window_calls: None,
            window_seconds: None,
            failure_rate_threshold: None,
            minimum_calls: None,
            slow_call_ms: None,
            slow_call_rate_threshold: None,
            probe_timeout_seconds: None,
        }
    }
}

/// Retry settings: exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Delay before the first retry, ms. Default: 100.
    pub base_delay_ms: u64,
    /// Upper bound of any delay, ms. Default: 10000.
    pub max_delay_ms: u64,
    /// Growth factor per attempt. Default: 2.0.
    pub multiplier: f64,
    /// Random spread of each delay, as a fraction (0–1): a delay is drawn uniformly from
    /// `[(1 − jitter) · d, d]` for the exponential delay `d`. Default: 1.0 ("full jitter").
    pub jitter: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            base_delay_ms: 100,
            max_delay_ms: 10_000,
            multiplier: 2.0,
            jitter: 1.0,
        }
    }
}

fn default_max_concurrency() -> u32 {
    4
}

/// One `[[agents]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Unique agent name; tasks refer to it.
    pub id: AgentId,
    /// How it is reached.
    pub kind: AgentKind,
    /// `command` agents: the program to run (required for them, refused for others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "/usr/local/bin/hasher")]
    pub command: Option<String>,
    /// `command` agents: its arguments. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["--json"]))]
    pub args: Vec<String>,
    /// `http` agents: the URL tasks are POSTed to (required for them, refused for others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "http://127.0.0.1:9000/run")]
    pub url: Option<String>,
    /// `builtin` agents: the built-in implementation. Default: the agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "echo")]
    pub builtin: Option<String>,
    /// Tasks run at once on this agent. Default: 4.
    #[serde(default = "default_max_concurrency")]
    #[schema(default = 4)]
    pub max_concurrency: u32,
    /// Kinds of task this agent is meant for (hints for routing). Default: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["hash"]))]
    pub task_types: Vec<String>,
    /// Circuit breaker. Default: the seed's (open after 5 failures in a row for 60 s, close after 3 successful probes).
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    /// Backoff between retries. Default: 100 ms doubling up to 10 s, full jitter.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// Longest circuit-breaker duration accepted, in seconds (a year).
pub const MAX_BREAKER_SECONDS: f64 = 31_536_000.0;

/// Most agents one daemon may declare.
pub const MAX_AGENTS: usize = 1024;
/// Highest per-agent concurrency.
pub const MAX_AGENT_CONCURRENCY: u32 = 1024;

impl AgentConfig {
    /// Checks the entry; the error names the field within it (`circuit_breaker.failure_threshold`).
    pub fn validate(&self) -> Result<(), FieldError> {
        let f = |name: &str| name.to_owned();
        let wrong_kind = |name: &str| {
            FieldError::new(
                f(name),
                format!(
                    "is only used by {} agents, but {:?} is {:?}",
                    match name {
                        "url" => "http",
                        "builtin" => "builtin",
                        _ => "command",
                    },
                    self.id.as_str(),
                    self.kind
                ),
            )
        };
        match self.kind {
            AgentKind::Command => {
                match &self.command {
                    None => {
                        return Err(FieldError::new(
                            f("command"),
                            "is required for command agents",
                        ));
                    }
                    Some(c) if c.trim().is_empty() => {
                        return Err(FieldError::new(f("command"), "must not be empty"));
                    }
                    Some(_) => {}
                }
                if self.url.is_some() {
                    return Err(wrong_kind("url"));
                }
                if self.builtin.is_some() {
                    return Err(wrong_kind("builtin"));
                }
            }
            AgentKind::Http => {
                let Some(url) = &self.url else {
                    return Err(FieldError::new(f("url"), "is required for http agents"));
                };
                let rest = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"));
                match rest {
                    Some(host) if !host.is_empty() && !host.starts_with('/') => {}
                    _ => {
                        return Err(FieldError::new(
                            f("url"),
                            format!("{url:?} is not an http:// or https:// URL with a host"),
                        ));
                    }
                }
                if self.command.is_some() {
                    return Err(wrong_kind("command"));
                }
                if !self.args.is_empty() {
                    return Err(wrong_kind("args"));
                }
                if self.builtin.is_some() {
                    return Err(wrong_kind("builtin"));
                }
            }
            AgentKind::Builtin => {
                if self.command.is_some() {
                    return Err(wrong_kind("command"));
                }
                if !self.args.is_empty() {
                    return Err(wrong_kind("args"));
                }
                if self.url.is_some() {
                    return Err(wrong_kind("url"));
                }
            }
        }
        if self.max_concurrency == 0 || self.max_concurrency > MAX_AGENT_CONCURRENCY {
            return Err(FieldError::new(
                f("max_concurrency"),
                format!(
                    "is {}; expected 1..={MAX_AGENT_CONCURRENCY}",
                    self.max_concurrency
                ),
            ));
        }
        let cb = &self.circuit_breaker;
        if cb.failure_threshold == 0 {
            return Err(FieldError::new(
                f("circuit_breaker.failure_threshold"),
                "must be at least 1",
            ));
        }
        if cb.success_threshold == 0 {
            return Err(FieldError::new(
                f("circuit_breaker.success_threshold"),
                "must be at least 1",
            ));
        }
        if !cb.recovery_timeout_seconds.is_finite()
            || cb.recovery_timeout_seconds <= 0.0
            || cb.recovery_timeout_seconds > MAX_BREAKER_SECONDS
        {
            return Err(FieldError::new(
                f("circuit_breaker.recovery_timeout_seconds"),
                format!(
                    "is {}; expected a positive number of seconds up to {MAX_BREAKER_SECONDS} (a year)",
                    cb.recovery_timeout_seconds
                ),
            ));
        }
        if let Some(0) = cb.window_calls {
            return Err(FieldError::new(
                f("circuit_breaker.window_calls"),
                "must be at least 1",
            ));
        }
        if cb.window_calls.is_some() && cb.window_seconds.is_some() {
            return Err(FieldError::new(
                f("circuit_breaker.window_seconds"),
                "cannot be combined with window_calls; choose a count or a time window",
            ));
        }
        for (name, value) in [
            ("window_seconds", cb.window_seconds),
            ("probe_timeout_seconds", cb.probe_timeout_seconds),
        ] {
            if let Some(v) = value
                && (!v.is_finite() || v <= 0.0 || v > MAX_BREAKER_SECONDS)
            {
                return Err(FieldError::new(
                    f(&format!("circuit_breaker.{name}")),
                    format!(
                        "is {v}; expected a positive number of seconds up to {MAX_BREAKER_SECONDS} (a year)"
                    ),
                ));
            }
        }
        for (name, value) in [
            ("failure_rate_threshold", cb.failure_rate_threshold),
            ("slow_call_rate_threshold", cb.slow_call_rate_threshold),
        ] {
            if let Some(v) = value
                && !(v > 0.0 && v <= 1.0)
            {
                return Err(FieldError::new(
                    f(&format!("circuit_breaker.{name}")),
                    format!("is {v}; expected a share above 0 and at most 1"),
                ));
            }
        }
        if let Some(0) = cb.minimum_calls {
            return Err(FieldError::new(
                f("circuit_breaker.minimum_calls"),
                "must be at least 1",
            ));
        }
        let r = &self.retry;
        if r.base_delay_ms > r.max_delay_ms {
            return Err(FieldError::new(
                f("retry.base_delay_ms"),
                format!(
                    "is {}, above retry.max_delay_ms ({})",
                    r.base_delay_ms, r.max_delay_ms
                ),
            ));
        }
        if !r.multiplier.is_finite() || r.multiplier < 1.0 {
            return Err(FieldError::new(
                f("retry.multiplier"),
                format!("is {}; expected a number of at least 1.0", r.multiplier),
            ));
        }
        if !(0.0..=1.0).contains(&r.jitter) {
            return Err(FieldError::new(
                f("retry.jitter"),
                format!("is {}; expected a fraction from 0 to 1", r.jitter),
            ));
        }
        Ok(())
    }
}
