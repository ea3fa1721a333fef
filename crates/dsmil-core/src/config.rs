//! The daemon configuration model (TOML): every field has a documented default, unknown fields
//! are rejected, and [`DaemonConfig::validate`] checks everything once at load time with errors
//! that name the field.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::AgentId;
use crate::monitoring::{AlertThresholds, ResponsePolicy, WebSocketLimits};

/// A configuration problem, naming the field.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The TOML is malformed or has an unknown/mistyped field (the message names it and the line).
    #[error("invalid config: {0}")]
    Parse(String),
    /// A field has a value that is not allowed.
    #[error("invalid config: {field}: {reason}")]
    Invalid {
        /// Path of the field, e.g. `agents[1].url`.
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?}; expected text or json"
            )),
        }
    }
}

/// Which TPM backs the daemon: `soft` or `tss:<TCTI>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum TpmBackendSpec {
    /// The embedded software TPM (state in the data dir). Not hardware-rooted.
    #[default]
    Soft,
    /// A real TPM or swtpm through tss-esapi, e.g. `device:/dev/tpmrm0` or
    /// `swtpm:host=127.0.0.1,port=2321`.
    Tss {
        /// The TCTI string handed to tss-esapi.
        tcti: String,
    },
}

/// TCTI kinds tss-esapi 7.7 understands.
const TCTI_KINDS: [&str; 4] = ["device", "swtpm", "mssim", "tabrmd"];

impl FromStr for TpmBackendSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "soft" {
            return Ok(TpmBackendSpec::Soft);
        }
        let Some(tcti) = s.strip_prefix("tss:") else {
            return Err(format!(
                "{s:?} is not a TPM backend; expected \"soft\" or \"tss:<TCTI>\" \
                 (e.g. tss:device:/dev/tpmrm0)"
            ));
        };
        let kind = tcti.split(':').next().unwrap_or_default();
        if !TCTI_KINDS.contains(&kind) {
            return Err(format!(
                "TCTI {tcti:?} has unknown kind {kind:?}; expected one of {}",
                TCTI_KINDS.join(", ")
            ));
        }
        Ok(TpmBackendSpec::Tss {
            tcti: tcti.to_owned(),
        })
    }
}

impl fmt::Display for TpmBackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TpmBackendSpec::Soft => f.write_str("soft"),
            TpmBackendSpec::Tss { tcti } => write!(f, "tss:{tcti}"),
        }
    }
}

impl Serialize for TpmBackendSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TpmBackendSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// How an agent is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub window_calls: Option<u32>,
    /// Judge the calls of the last N seconds instead of a count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<f64>,
    /// Failure share (0–1] of the window that opens the circuit. Default: 1.0 (all failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_rate_threshold: Option<f64>,
    /// Calls the window must hold before it is judged. Default: `failure_threshold`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_calls: Option<u32>,
    /// A successful call slower than this (ms) is slow. Default: 10000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_call_ms: Option<u64>,
    /// Slow-call share (0–1] of the window that opens the circuit. Default: 1.0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_call_rate_threshold: Option<f64>,
    /// Seconds after which a probe that has not reported counts as failed. Default: 60.
    #[serde(skip_serializing_if = "Option::is_none")]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Unique agent name; tasks refer to it.
    pub id: AgentId,
    /// How it is reached.
    pub kind: AgentKind,
    /// `command` agents: the program to run (required for them, refused for others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// `command` agents: its arguments. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `http` agents: the URL tasks are POSTed to (required for them, refused for others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `builtin` agents: the built-in implementation. Default: the agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
    /// Tasks run at once on this agent. Default: 4.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    /// Kinds of task this agent is meant for (hints for routing). Default: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_types: Vec<String>,
    /// Circuit breaker. Default: see [`CircuitBreakerConfig`].
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    /// Retries. Default: see [`RetryConfig`].
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
    fn validate(&self, i: usize) -> Result<(), ConfigError> {
        let f = |name: &str| format!("agents[{i}].{name}");
        let wrong_kind = |name: &str| {
            invalid(
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
                    None => return Err(invalid(f("command"), "is required for command agents")),
                    Some(c) if c.trim().is_empty() => {
                        return Err(invalid(f("command"), "must not be empty"));
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
                    return Err(invalid(f("url"), "is required for http agents"));
                };
                let rest = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"));
                match rest {
                    Some(host) if !host.is_empty() && !host.starts_with('/') => {}
                    _ => {
                        return Err(invalid(
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
            return Err(invalid(
                f("max_concurrency"),
                format!(
                    "is {}; expected 1..={MAX_AGENT_CONCURRENCY}",
                    self.max_concurrency
                ),
            ));
        }
        let cb = &self.circuit_breaker;
        if cb.failure_threshold == 0 {
            return Err(invalid(
                f("circuit_breaker.failure_threshold"),
                "must be at least 1",
            ));
        }
        if cb.success_threshold == 0 {
            return Err(invalid(
                f("circuit_breaker.success_threshold"),
                "must be at least 1",
            ));
        }
        if !cb.recovery_timeout_seconds.is_finite()
            || cb.recovery_timeout_seconds <= 0.0
            || cb.recovery_timeout_seconds > MAX_BREAKER_SECONDS
        {
            return Err(invalid(
                f("circuit_breaker.recovery_timeout_seconds"),
                format!(
                    "is {}; expected a positive number of seconds up to {MAX_BREAKER_SECONDS} (a year)",
                    cb.recovery_timeout_seconds
                ),
            ));
        }
        if let Some(0) = cb.window_calls {
            return Err(invalid(
                f("circuit_breaker.window_calls"),
                "must be at least 1",
            ));
        }
        if cb.window_calls.is_some() && cb.window_seconds.is_some() {
            return Err(invalid(
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
                return Err(invalid(
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
                return Err(invalid(
                    f(&format!("circuit_breaker.{name}")),
                    format!("is {v}; expected a share above 0 and at most 1"),
                ));
            }
        }
        if let Some(0) = cb.minimum_calls {
            return Err(invalid(
                f("circuit_breaker.minimum_calls"),
                "must be at least 1",
            ));
        }
        let r = &self.retry;
        if r.base_delay_ms > r.max_delay_ms {
            return Err(invalid(
                f("retry.base_delay_ms"),
                format!(
                    "is {}, above retry.max_delay_ms ({})",
                    r.base_delay_ms, r.max_delay_ms
                ),
            ));
        }
        if !r.multiplier.is_finite() || r.multiplier < 1.0 {
            return Err(invalid(
                f("retry.multiplier"),
                format!("is {}; expected a number of at least 1.0", r.multiplier),
            ));
        }
        if !(0.0..=1.0).contains(&r.jitter) {
            return Err(invalid(
                f("retry.jitter"),
                format!("is {}; expected a fraction from 0 to 1", r.jitter),
            ));
        }
        Ok(())
    }
}

/// Configuration of `dsmild`. Flags and `DSMIL_*` environment variables override the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Where state lives (token, TPM state, SQLite store, audit log). Default: `./dsmil-data`.
    pub data_dir: PathBuf,
    /// HTTP/WebSocket listen address. Default: `127.0.0.1:8765` (loopback only).
    pub listen: SocketAddr,
    /// Log format. Default: `text`.
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax (overridden by `RUST_LOG`). Default: `info`.
    pub log_filter: String,
    /// PostgreSQL URL for the learning store; absent → embedded SQLite in the data dir.
    /// Default: absent.
    pub database_url: Option<String>,
    /// TPM backend: `soft` or `tss:<TCTI>`. Default: `soft`.
    pub tpm: TpmBackendSpec,
    /// Events a bus subscriber may fall behind before losing some. Default: 4096.
    pub event_bus_capacity: usize,
    /// Seconds in-flight work gets to finish on shutdown before it is journaled and
    /// abandoned. Default: 10.
    pub shutdown_grace_seconds: u64,
    /// Agent used for `auto` tasks while there is no history. Default: the first agent.
    pub default_agent: Option<AgentId>,
    /// Declared agents. Default: none.
    pub agents: Vec<AgentConfig>,
    /// Alert thresholds. Default: the seed's values.
    pub alerts: AlertThresholds,
    /// Automatic responses to critical alerts. Default: on, with the seed's factors.
    pub responses: ResponsePolicy,
    /// How often system health is sampled, milliseconds (100–3,600,000). Default: 2000.
    pub health_interval_ms: u64,
    /// Limits of the live WebSocket stream at `/ws`. Default: see [`WebSocketLimits`].
    pub websocket: WebSocketLimits,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./dsmil-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8765)),
            log_format: LogFormat::Text,
            log_filter: "info".into(),
            database_url: None,
            tpm: TpmBackendSpec::Soft,
            event_bus_capacity: crate::events::DEFAULT_BUS_CAPACITY,
            shutdown_grace_seconds: 10,
            default_agent: None,
            agents: Vec::new(),
            alerts: AlertThresholds::default(),
            responses: ResponsePolicy::default(),
            health_interval_ms: 2000,
            websocket: WebSocketLimits::default(),
        }
    }
}

impl DaemonConfig {
    /// Parses TOML without validating (flags may still override fields); call
    /// [`DaemonConfig::validate`] once everything is merged.
    pub fn parse_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string().trim_end().to_owned()))
    }

    /// Reads and parses a TOML file (not validated; see [`DaemonConfig::parse_toml`]).
    pub fn read_toml_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::parse_toml(&text).map_err(|e| match e {
            ConfigError::Parse(msg) => ConfigError::Parse(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// Checks every field; the first problem is returned, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        if self.listen.port() == 0 {
            return Err(invalid(
                "listen",
                "port 0 is not allowed; choose a fixed port",
            ));
        }
        if self.log_filter.trim().is_empty() {
            return Err(invalid("log_filter", "must not be empty (e.g. \"info\")"));
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                "must be a postgres:// or postgresql:// URL (leave it unset for embedded SQLite)",
            ));
        }
        if self.event_bus_capacity == 0 || self.event_bus_capacity > 1 << 20 {
            return Err(invalid(
                "event_bus_capacity",
                format!("is {}; expected 1..={}", self.event_bus_capacity, 1 << 20),
            ));
        }
        if !(100..=3_600_000).contains(&self.health_interval_ms) {
            return Err(invalid(
                "health_interval_ms",
                format!(
                    "is {}; expected 100 to 3600000 milliseconds",
                    self.health_interval_ms
                ),
            ));
        }
        if self.shutdown_grace_seconds > 3600 {
            return Err(invalid(
                "shutdown_grace_seconds",
                format!("is {}; expected at most 3600", self.shutdown_grace_seconds),
            ));
        }
        if self.agents.len() > MAX_AGENTS {
            return Err(invalid(
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
                return Err(invalid(
                    format!("agents[{i}].id"),
                    format!("{:?} is declared twice", agent.id.as_str()),
                ));
            }
            agent.validate(i)?;
        }
        if let Some(default) = &self.default_agent
            && !seen.contains(default.as_str())
        {
            return Err(invalid(
                "default_agent",
                format!("{:?} is not one of the declared agents", default.as_str()),
            ));
        }
        self.alerts
            .validate("alerts.")
            .map_err(|e| invalid(e.field, e.reason))?;
        self.responses
            .validate("responses.")
            .map_err(|e| invalid(e.field, e.reason))?;
        self.websocket
            .validate("websocket.")
            .map_err(|e| invalid(e.field, e.reason))?;
        Ok(())
    }

    /// A commented TOML file with every default, for `dsmilctl config default`.
    pub fn default_toml() -> String {
        // Serializing the defaults keeps this text true as fields are added.
        let body = toml::to_string_pretty(&Self::default()).unwrap_or_default();
        format!(
            "# dsmild configuration. Every field is optional; shown values are the defaults.\n\
             # Flags (--data-dir, --listen, ...) and DSMIL_* environment variables override it.\n\
             # database_url = \"postgres://user@127.0.0.1/dsmil\"  # absent: embedded SQLite\n\
             # default_agent = \"...\"                            # absent: the first agent\n\
             #\n\
             # [[agents]]\n\
             # id = \"hasher\"\n\
             # kind = \"command\"          # command | http | builtin\n\
             # command = \"/usr/local/bin/hasher\"\n\
             # args = [\"--json\"]\n\
             # max_concurrency = 4\n\
             # circuit_breaker = {{ failure_threshold = 5, recovery_timeout_seconds = 60.0, success_threshold = 3 }}\n\
             # # or a sliding window: window_calls | window_seconds, failure_rate_threshold, minimum_calls,\n\
             # #   slow_call_ms, slow_call_rate_threshold, probe_timeout_seconds\n\
             # retry = {{ base_delay_ms = 100, max_delay_ms = 10000, multiplier = 2.0, jitter = 1.0 }}\n\n{body}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_invalid(toml_text: &str, expected_field: &str) {
        let err = DaemonConfig::parse_toml(toml_text)
            .and_then(|c| c.validate().map(|_| c))
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(expected_field),
            "expected {expected_field:?} in {msg:?}"
        );
    }

    #[test]
    fn empty_file_gives_valid_defaults() {
        let c = DaemonConfig::parse_toml("").unwrap();
        c.validate().unwrap();
        assert_eq!(c, DaemonConfig::default());
        assert_eq!(c.listen.to_string(), "127.0.0.1:8765");
        assert_eq!(c.tpm, TpmBackendSpec::Soft);
    }

    #[test]
    fn default_toml_parses_back_to_the_defaults() {
        let text = DaemonConfig::default_toml();
        let c = DaemonConfig::parse_toml(&text).unwrap();
        assert_eq!(c, DaemonConfig::default());
    }

    #[test]
    fn full_agent_config_parses() {
        let c = DaemonConfig::parse_toml(
            r#"
            tpm = "tss:swtpm:host=127.0.0.1,port=2321"
            default_agent = "web"
            [[agents]]
            id = "hasher"
            kind = "command"
            command = "/bin/cat"
            args = ["-u"]
            retry = { base_delay_ms = 5, max_delay_ms = 50, multiplier = 1.5, jitter = 0.0 }
            [[agents]]
            id = "web"
            kind = "http"
            url = "http://127.0.0.1:9000/run"
            circuit_breaker = { failure_threshold = 2 }
            [alerts]
            cpu_percent = { warning = 70.0, critical = 90.0 }
            [websocket]
            max_clients = 50
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.agents[1].circuit_breaker.failure_threshold, 2);
        assert_eq!(c.agents[1].circuit_breaker.success_threshold, 3);
        assert_eq!(c.alerts.cpu_percent.warning, 70.0);
        assert_eq!(c.alerts.memory_percent.warning, 85.0);
        assert_eq!(c.websocket.max_clients, 50);
        assert_eq!(c.websocket.queue_depth, 256);
        assert_eq!(
            c.tpm,
            TpmBackendSpec::Tss {
                tcti: "swtpm:host=127.0.0.1,port=2321".into()
            }
        );
    }

    #[test]
    fn bad_inputs_name_the_field() {
        check_invalid("listne = \"127.0.0.1:1\"", "listne");
        check_invalid("listen = \"localhost\"", "listen");
        check_invalid("listen = \"127.0.0.1:0\"", "listen");
        check_invalid("tpm = \"hardware\"", "tss:<TCTI>");
        check_invalid("tpm = \"tss:serial:/dev/x\"", "unknown kind \"serial\"");
        check_invalid("log_format = \"xml\"", "log_format");
        check_invalid("database_url = \"mysql://x\"", "database_url");
        check_invalid("event_bus_capacity = 0", "event_bus_capacity");
        check_invalid("default_agent = \"ghost\"", "default_agent");
        check_invalid(
            "[alerts]\ncpu_percent = { warning = 99.0, critical = 95.0 }",
            "alerts.cpu_percent.warning",
        );
        check_invalid(
            "[websocket]\nqueue_depth = 0",
            "websocket.queue_depth: is 0",
        );
        check_invalid(
            "[websocket]\nmax_message_bytes = 100",
            "websocket.max_message_bytes",
        );
        check_invalid("[websocket]\nmax_clinets = 5", "max_clinets");
        check_invalid(
            "[websocket]\nping_interval_seconds = 30\npong_timeout_seconds = 30",
            "websocket.pong_timeout_seconds: is 30, which is not above",
        );
        check_invalid(
            "[websocket]\nwrite_timeout_ms = 10",
            "websocket.write_timeout_ms",
        );
        check_invalid(
            "[[agents]]\nid = \"a\"\nkind = \"command\"",
            "agents[0].command: is required",
        );
        check_invalid(
            "[[agents]]\nid = \"a\"\nkind = \"http\"\nurl = \"ftp://x\"",
            "agents[0].url",
        );
        check_invalid(
            "[[agents]]\nid = \"a\"\nkind = \"builtin\"\nurl = \"http://x\"",
            "agents[0].url: is only used by http",
        );
        check_invalid(
            "[[agents]]\nid = \"a b\"\nkind = \"builtin\"",
            "agent id \"a b\"",
        );
        check_invalid(
            "[[agents]]\nid = \"a\"\nkind = \"builtin\"\n[[agents]]\nid = \"a\"\nkind = \"builtin\"",
            "agents[1].id: \"a\" is declared twice",
        );
        check_invalid(
            "[[agents]]\nid = \"a\"\nkind = \"builtin\"\nmax_concurrency = 0",
            "agents[0].max_concurrency",
        );
        check_invalid(
            "[[agents]]\nid = \"a\"\nkind = \"builtin\"\nretry = { jitter = 1.5 }",
            "agents[0].retry.jitter",
        );
        check_invalid(
            "[[agents]]\nid = \"a\"\nkind = \"builtin\"\nretry = { base_delay_ms = 500, max_delay_ms = 100 }",
            "agents[0].retry.base_delay_ms",
        );
        check_invalid(
            "[[agents]]\nid = \"a\"\nkind = \"builtin\"\ncircuit_breaker = { failure_threshold = 0 }",
            "agents[0].circuit_breaker.failure_threshold",
        );
        check_invalid(
            "[[agents]]\nid = \"a\"\nkind = \"builtin\"\ncircuit_breaker = { window_calls = 5, window_seconds = 3.0 }",
            "agents[0].circuit_breaker.window_seconds",
        );
        check_invalid(
            "[[agents]]\nid = \"a\"\nkind = \"builtin\"\ncircuit_breaker = { failure_rate_threshold = 1.5 }",
            "agents[0].circuit_breaker.failure_rate_threshold",
        );
        check_invalid(
            "[[agents]]\nid = \"a\"\nkind = \"builtin\"\ntimeout = 3",
            "timeout",
        );
    }

    proptest! {
        #[test]
        fn tpm_specs_round_trip(port in 1u16.., host in "[a-z0-9.]{1,20}") {
            for spec in [
                TpmBackendSpec::Soft,
                TpmBackendSpec::Tss { tcti: format!("swtpm:host={host},port={port}") },
                TpmBackendSpec::Tss { tcti: "device:/dev/tpmrm0".into() },
            ] {
                prop_assert_eq!(spec.to_string().parse::<TpmBackendSpec>(), Ok(spec.clone()));
            }
        }

        #[test]
        fn any_text_parses_or_fails_without_panicking(text in "\\PC{0,200}") {
            if let Ok(c) = DaemonConfig::parse_toml(&text) {
                let _ = c.validate();
            }
        }
    }
}
