//! The coordinator's configuration: the `[[agents]]` entries (how each agent is reached, its
//! bulkhead, circuit breaker and retry settings), the agent `auto` tasks fall back on, and how
//! long running workflows get to finish at shutdown. Every field has one default, documented on
//! it; [`CoordConfig::validate`] names the field of the first problem (`agents[1].url`).
//!
//! The same types set agents registered in code: [`AgentSettings`] is an entry's protection
//! part with the entry's defaults. The runtime types are built from these in one place each —
//! [`CircuitBreakerConfig::to_settings`] (which is also the breaker's validation) and
//! [`RetryConfig::policy`] — and have no defaults of their own.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use dsmil_core::AgentId;
use dsmil_core::validate::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::resilience::{BreakerSettings, RetryPolicy, Window};

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
    /// The built-in agents registered without being declared.
    pub builtins: BuiltinsConfig,
    /// Declared agents. Default: none.
    pub agents: Vec<AgentConfig>,
}

/// The `[builtins]` table: whether the built-in agents (`echo`, `noop`, `sleep`, `fail`,
/// `score`) are registered under their own names without an `[[agents]]` entry, so a bare
/// start can run a first workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BuiltinsConfig {
    /// Register every built-in that no `[[agents]]` entry declares, with the default
    /// protections. Tasks may name them; `auto` routes to them only while no agent is declared.
    /// Default: on, except on a node of a cluster (`[cluster]`), where each node hosts only
    /// what it declares.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = true)]
    pub enabled: Option<bool>,
}

impl BuiltinsConfig {
    /// Whether the built-ins are registered: as set, else on unless `clustered`.
    pub fn enabled(&self, clustered: bool) -> bool {
        self.enabled.unwrap_or(!clustered)
    }
}

impl Default for CoordConfig {
    fn default() -> Self {
        Self {
            default_agent: None,
            shutdown_grace_seconds: 10,
            builtins: BuiltinsConfig::default(),
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
    /// A successful call slower than this (ms) is slow, and slow calls then count against the
    /// agent (`slow_call_rate_threshold`). Default: none — no call is slow, as in the seed.
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

/// Tasks run at once on an agent unless its entry says otherwise.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 4;

fn default_max_concurrency() -> u32 {
    DEFAULT_MAX_CONCURRENCY
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
    /// Tasks run at once on this agent (1–1024). Default: 4.
    #[serde(default = "default_max_concurrency")]
    #[schema(default = 4)]
    pub max_concurrency: u32,
    /// Kinds of task this agent is meant for (hints for routing). Default: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["hash"]))]
    pub task_types: Vec<String>,
    /// `http` agents with an `https://` URL: whom to trust and what to present. Default: the
    /// system's root certificates, no client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<AgentTls>,
    /// Circuit breaker. Default: the seed's (open after 5 failures in a row for 60 s, close after 3 successful probes).
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    /// Backoff between retries. Default: 100 ms doubling up to 10 s, full jitter.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// TLS of an `https://` agent: the CA certificates to trust instead of the system's, and a
/// client certificate for agents that require mutual TLS. Files are read when the agent is
/// registered (at start), so a missing or unreadable one stops the start naming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentTls {
    /// PEM file of the CA certificates that sign the agent's certificate, trusted instead of
    /// the system roots. Default: the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "/etc/dsmil/agents-ca.pem")]
    pub ca: Option<PathBuf>,
    /// PEM file of the client certificate (and its chain) presented to the agent; needs `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "/etc/dsmil/agent-client.pem")]
    pub cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1); needs `cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "/etc/dsmil/agent-client.key")]
    pub key: Option<PathBuf>,
}

/// Longest circuit-breaker duration accepted, in seconds (a year).
pub const MAX_BREAKER_SECONDS: f64 = 31_536_000.0;

/// Most agents one daemon may declare.
pub const MAX_AGENTS: usize = 1024;
/// Highest per-agent concurrency.
pub const MAX_AGENT_CONCURRENCY: u32 = 1024;

/// Seconds after which an unreported probe counts as failed, unless `probe_timeout_seconds`
/// says otherwise.
pub const DEFAULT_PROBE_TIMEOUT_SECONDS: f64 = 60.0;

/// How an agent is protected: the bulkhead, circuit-breaker and retry part of an `[[agents]]`
/// entry, for agents registered in code
/// ([`AgentRegistry::register`](crate::registry::AgentRegistry::register)). Its defaults are the
/// entry's, so an agent registered in code and one declared in TOML are protected alike.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    /// Tasks run at once on this agent (1–1024). Default: 4.
    pub max_concurrency: u32,
    /// Circuit breaker. Default: the seed's.
    pub circuit_breaker: CircuitBreakerConfig,
    /// Backoff between retries. Default: 100 ms doubling up to 10 s, full jitter.
    pub retry: RetryConfig,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            circuit_breaker: CircuitBreakerConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

impl AgentSettings {
    /// The settings an `[[agents]]` entry asks for.
    pub fn from_config(c: &AgentConfig) -> Self {
        c.settings()
    }

    /// Checks every field; the error names it within the agent's entry
    /// (`circuit_breaker.failure_threshold`). The same checks as [`AgentConfig::validate`]'s.
    pub fn validate(&self) -> Result<(), FieldError> {
        protection(self.max_concurrency, &self.circuit_breaker, &self.retry).map(drop)
    }

    /// Checks the settings and builds the circuit breaker's runtime settings.
    pub fn breaker_settings(&self) -> Result<BreakerSettings, FieldError> {
        protection(self.max_concurrency, &self.circuit_breaker, &self.retry)
    }
}

/// The one validation of an agent's protections (concurrency, then breaker, then retry); returns
/// the breaker's runtime settings.
fn protection(
    max_concurrency: u32,
    cb: &CircuitBreakerConfig,
    retry: &RetryConfig,
) -> Result<BreakerSettings, FieldError> {
    if max_concurrency == 0 || max_concurrency > MAX_AGENT_CONCURRENCY {
        return Err(FieldError::new(
            "max_concurrency",
            format!("is {max_concurrency}; expected 1..={MAX_AGENT_CONCURRENCY}"),
        ));
    }
    let breaker = cb.to_settings().map_err(|e| e.within("circuit_breaker."))?;
    retry.validate().map_err(|e| e.within("retry."))?;
    Ok(breaker)
}

/// `v` seconds as a duration, if it is positive, finite and at most a year.
fn seconds(field: &str, v: f64) -> Result<Duration, FieldError> {
    let out_of_range = || {
        FieldError::new(
            field,
            format!(
                "is {v}; expected a positive number of seconds up to {MAX_BREAKER_SECONDS} (a year)"
            ),
        )
    };
    if !v.is_finite() || v <= 0.0 || v > MAX_BREAKER_SECONDS {
        return Err(out_of_range());
    }
    Duration::try_from_secs_f64(v).map_err(|_| out_of_range())
}

impl CircuitBreakerConfig {
    /// Checks the settings; the error names the field (`failure_threshold`).
    pub fn validate(&self) -> Result<(), FieldError> {
        self.to_settings().map(drop)
    }

    /// Checks the settings and builds the breaker's runtime settings from them — the only place
    /// they are built. The seed's three fields alone ("open after N consecutive failures, close
    /// after M successes") map to a count window of N calls that opens at a 100% failure rate
    /// once it holds N calls, with M half-open probes; the optional fields override window,
    /// rates, minimum calls, slow-call duration and probe timeout.
    pub fn to_settings(&self) -> Result<BreakerSettings, FieldError> {
        if self.failure_threshold == 0 {
            return Err(FieldError::new("failure_threshold", "must be at least 1"));
        }
        if self.success_threshold == 0 {
            return Err(FieldError::new("success_threshold", "must be at least 1"));
        }
        let open_duration = seconds("recovery_timeout_seconds", self.recovery_timeout_seconds)?;
        if let Some(0) = self.window_calls {
            return Err(FieldError::new("window_calls", "must be at least 1"));
        }
        if self.window_calls.is_some() && self.window_seconds.is_some() {
            return Err(FieldError::new(
                "window_seconds",
                "cannot be combined with window_calls; choose a count or a time window",
            ));
        }
        let window = match (self.window_calls, self.window_seconds) {
            (_, Some(s)) => Window::Time(seconds("window_seconds", s)?),
            (Some(calls), None) => Window::Count(calls),
            (None, None) => Window::Count(self.failure_threshold),
        };
        let probe_timeout = seconds(
            "probe_timeout_seconds",
            self.probe_timeout_seconds
                .unwrap_or(DEFAULT_PROBE_TIMEOUT_SECONDS),
        )?;
        let rate = |name: &str, value: Option<f64>| match value {
            None => Ok(1.0),
            Some(v) if v > 0.0 && v <= 1.0 => Ok(v),
            Some(v) => Err(FieldError::new(
                name,
                format!("is {v}; expected a share above 0 and at most 1"),
            )),
        };
        let failure_rate_threshold = rate("failure_rate_threshold", self.failure_rate_threshold)?;
        let slow_call_rate_threshold =
            rate("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        if let Some(0) = self.minimum_calls {
            return Err(FieldError::new("minimum_calls", "must be at least 1"));
        }
        let minimum_calls = self.minimum_calls.unwrap_or(self.failure_threshold);
        if let Window::Count(n) = window
            && minimum_calls > n
        {
            return Err(match self.minimum_calls {
                Some(m) => FieldError::new(
                    "minimum_calls",
                    format!(
                        "is {m}, more than the window of {n} calls can hold: the circuit could never open"
                    ),
                ),
                None => FieldError::new(
                    "window_calls",
                    format!(
                        "is {n}, fewer than minimum_calls (default: failure_threshold, {minimum_calls}): the circuit could never open"
                    ),
                ),
            });
        }
        if let Some(slow_call_ms) = self.slow_call_ms
            && slow_call_ms as f64 > MAX_BREAKER_SECONDS * 1000.0
        {
            return Err(FieldError::new(
                "slow_call_ms",
                format!("is {slow_call_ms}; expected at most a year"),
            ));
        }
        Ok(BreakerSettings {
            window,
            minimum_calls,
            failure_rate_threshold,
            slow_call_duration: self.slow_call_ms.map(Duration::from_millis),
            slow_call_rate_threshold,
            open_duration,
            half_open_permits: self.success_threshold,
            probe_timeout,
        })
    }
}

impl RetryConfig {
    /// Checks the settings; the error names the field (`base_delay_ms`).
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.base_delay_ms > self.max_delay_ms {
            return Err(FieldError::new(
                "base_delay_ms",
                format!(
                    "is {}, above retry.max_delay_ms ({})",
                    self.base_delay_ms, self.max_delay_ms
                ),
            ));
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(FieldError::new(
                "multiplier",
                format!("is {}; expected a number of at least 1.0", self.multiplier),
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(FieldError::new(
                "jitter",
                format!("is {}; expected a fraction from 0 to 1", self.jitter),
            ));
        }
        Ok(())
    }

    /// The backoff these settings give, for `max_attempts` attempts in all (a task's
    /// `retry_count` + 1) — the only place a [`RetryPolicy`] is built from configuration.
    pub fn policy(&self, max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(self.base_delay_ms),
            max_delay: Duration::from_millis(self.max_delay_ms),
            multiplier: self.multiplier,
            jitter: self.jitter,
        }
    }
}

/// How a validated entry reaches its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    /// A program and its arguments.
    Command {
        /// The program.
        program: &'a str,
        /// Its arguments.
        args: &'a [String],
    },
    /// A URL tasks are POSTed to.
    Http {
        /// The URL.
        url: &'a str,
        /// Its TLS settings, when it has any.
        tls: Option<&'a AgentTls>,
    },
    /// A built-in, by name.
    Builtin {
        /// The built-in's name.
        name: &'a str,
    },
}

impl AgentConfig {
    /// The protection part of the entry.
    pub fn settings(&self) -> AgentSettings {
        AgentSettings {
            max_concurrency: self.max_concurrency,
            circuit_breaker: self.circuit_breaker.clone(),
            retry: self.retry.clone(),
        }
    }

    /// Checks the entry; the error names the field within it (`circuit_breaker.failure_threshold`).
    pub fn validate(&self) -> Result<(), FieldError> {
        self.target()?;
        protection(self.max_concurrency, &self.circuit_breaker, &self.retry).map(drop)
    }

    /// Checks the fields of the entry's kind (what it needs, what it must not have) and says
    /// how the agent is reached.
    pub(crate) fn target(&self) -> Result<Target<'_>, FieldError> {
        let wrong_kind = |name: &str| {
            FieldError::new(
                name,
                format!(
                    "is only used by {} agents, but {:?} is {:?}",
                    match name {
                        "url" | "tls" => "http",
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
                let program = match &self.command {
                    None => {
                        return Err(FieldError::new("command", "is required for command agents"));
                    }
                    Some(c) if c.trim().is_empty() => {
                        return Err(FieldError::new("command", "must not be empty"));
                    }
                    Some(c) => c,
                };
                if self.url.is_some() {
                    return Err(wrong_kind("url"));
                }
                if self.tls.is_some() {
                    return Err(wrong_kind("tls"));
                }
                if self.builtin.is_some() {
                    return Err(wrong_kind("builtin"));
                }
                Ok(Target::Command {
                    program,
                    args: &self.args,
                })
            }
            AgentKind::Http => {
                let Some(url) = &self.url else {
                    return Err(FieldError::new("url", "is required for http agents"));
                };
                let rest = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"));
                match rest {
                    Some(host) if !host.is_empty() && !host.starts_with('/') => {}
                    _ => {
                        return Err(FieldError::new(
                            "url",
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
                if let Some(tls) = &self.tls {
                    if !url.starts_with("https://") {
                        return Err(FieldError::new(
                            "tls",
                            format!("is set but {url:?} is not an https:// URL"),
                        ));
                    }
                    match (&tls.cert, &tls.key) {
                        (Some(_), None) => {
                            return Err(FieldError::new("tls.key", "is required with tls.cert"));
                        }
                        (None, Some(_)) => {
                            return Err(FieldError::new("tls.cert", "is required with tls.key"));
                        }
                        _ => {}
                    }
                }
                Ok(Target::Http {
                    url,
                    tls: self.tls.as_ref(),
                })
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
                if self.tls.is_some() {
                    return Err(wrong_kind("tls"));
                }
                Ok(Target::Builtin {
                    name: self.builtin.as_deref().unwrap_or(self.id.as_str()),
                })
            }
        }
    }
}
