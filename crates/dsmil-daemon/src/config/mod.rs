//! dsmild's configuration: one TOML file assembled from the sections each layer owns.
//!
//! The file's top-level keys and tables belong to exactly one owner each:
//!
//! | owner | keys |
//! |---|---|
//! | the daemon ([`DaemonSettings`]) | `data_dir`, `listen`, `log_format`, `log_filter`, `event_bus_capacity`, `http_header_timeout_secs`, `max_connections` |
//! | [`dsmil_tpm::config::TpmConfig`] | `tpm` |
//! | [`dsmil_learn::config::LearnConfig`] | `database_url` |
//! | [`dsmil_coord::config::CoordConfig`] | `default_agent`, `shutdown_grace_seconds`, `[[agents]]` |
//! | [`dsmil_monitor::config::MonitorConfig`] | `health_interval_ms`, `[alerts]`, `[responses]`, `[websocket]` |
//! | [`dsmil_cluster::ClusterSection`] | `[cluster]` (absent: one host) |
//!
//! [`DaemonConfig::parse_toml`] hands each owner its keys (the owners' field lists come from
//! their own `Deserialize` implementations, so a field added to a layer's section is picked up
//! here without an edit), rejects keys nobody owns, and names the field of the first problem:
//! `invalid config: agents[1].circuit_breaker.failure_threshold: must be at least 1`. Flags and
//! `DSMIL_*` variables are applied with [`Overrides`] before [`DaemonConfig::validate`] runs once.
//! [`template::default_toml`] writes the whole file with every field's default and doc.

pub mod paths;
mod sections;
pub mod template;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use dsmil_cluster::ClusterSection;
use dsmil_coord::config::CoordConfig;
use dsmil_core::validate::FieldError;
use dsmil_learn::config::LearnConfig;
use dsmil_monitor::config::MonitorConfig;
use dsmil_tpm::config::{TpmBackendSpec, TpmConfig};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

/// A configuration problem; the message names the file, key or field.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML (the message gives the line and column).
    #[error("invalid config{}: {source}", in_file(path.as_deref()))]
    Syntax {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The parser's error.
        #[source]
        source: toml::de::Error,
    },
    /// A top-level key no section owns (a typo, or a setting from another version).
    #[error("invalid config{}: unknown field `{key}`, expected one of {expected}", in_file(path.as_deref()))]
    UnknownKey {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The key.
        key: String,
        /// Every key that is known, in backticks.
        expected: String,
    },
    /// A field has a value of the wrong type or out of range.
    #[error("invalid config{}: {source}", in_file(path.as_deref()))]
    Invalid {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The field and what is wrong with it.
        #[source]
        source: FieldError,
    },
}

fn in_file(path: Option<&Path>) -> String {
    path.map(|p| format!(" ({})", p.display()))
        .unwrap_or_default()
}

impl ConfigError {
    fn in_path(self, file: &Path) -> Self {
        let file = Some(file.to_owned());
        match self {
            ConfigError::Syntax { source, .. } => ConfigError::Syntax { path: file, source },
            ConfigError::UnknownKey { key, expected, .. } => ConfigError::UnknownKey {
                path: file,
                key,
                expected,
            },
            ConfigError::Invalid { source, .. } => ConfigError::Invalid { path: file, source },
            read @ ConfigError::Read { .. } => read,
        }
    }

    /// The field named by a validation error (`agents[1].url`), if this is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { source, .. } => Some(&source.field),
            ConfigError::UnknownKey { key, .. } => Some(key),
            _ => None,
        }
    }
}

impl From<FieldError> for ConfigError {
    fn from(source: FieldError) -> Self {
        ConfigError::Invalid { path: None, source }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, ToSchema)]
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

/// Most events a bus subscriber may fall behind by.
pub const MAX_EVENT_BUS_CAPACITY: usize = 1 << 20;

/// The daemon's own settings: where it keeps state, where it listens, how it logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSettings {
    /// Where state lives (API token, TPM state, SQLite store, journal, audit log).
    /// Default: `$STATE_DIRECTORY` when systemd gives one (`StateDirectory=`), else
    /// `/var/lib/dsmil` for a system service, else `./dsmil-data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "/var/lib/dsmil")]
    pub data_dir: Option<PathBuf>,
    /// HTTP/WebSocket listen address (IP:port). Default: `127.0.0.1:8765` (loopback only).
    #[schema(value_type = String)]
    pub listen: SocketAddr,
    /// Log format on stderr: `text` or `json`. Default: `text`.
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax (`RUST_LOG` overrides it). Default: `info`.
    pub log_filter: String,
    /// Events a bus subscriber may fall behind before it loses some (1–1048576).
    /// Default: 4096.
    pub event_bus_capacity: usize,
    /// Seconds a client may take to send a request's headers, and that a kept-alive HTTP
    /// connection may sit idle, before it is closed (1–3600). Default: 30 (hyper's).
    pub http_header_timeout_secs: u64,
    /// Most HTTP connections open at once (at least 8); beyond it the longest-idle connection
    /// is closed, or the newcomer answered 503 when all are busy. Default: the open-file
    /// limit (raised to the hard limit at start) less 256.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 10000)]
    pub max_connections: Option<usize>,
}

/// Most seconds `http_header_timeout_secs` may be.
pub const MAX_HTTP_HEADER_TIMEOUT_SECS: u64 = 3600;

impl Default for DaemonSettings {
    fn default() -> Self {
        Self {
            data_dir: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8765)),
            log_format: LogFormat::Text,
            log_filter: "info".into(),
            event_bus_capacity: dsmil_core::events::DEFAULT_BUS_CAPACITY,
            http_header_timeout_secs: 30,
            max_connections: None,
        }
    }
}

impl DaemonSettings {
    /// The data directory: as set, else the default for how the daemon runs
    /// ([`paths::default_data_dir`]).
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| paths::default_data_dir(&paths::Environment::current()))
    }

    /// Checks the daemon's own keys.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self
            .data_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(FieldError::new("data_dir", "must not be empty"));
        }
        if self.listen.port() == 0 {
            return Err(FieldError::new(
                "listen",
                "port 0 is not allowed; choose a fixed port",
            ));
        }
        if self.log_filter.trim().is_empty() {
            return Err(FieldError::new(
                "log_filter",
                "must not be empty (e.g. \"info\")",
            ));
        }
        if self.event_bus_capacity == 0 || self.event_bus_capacity > MAX_EVENT_BUS_CAPACITY {
            return Err(FieldError::new(
                "event_bus_capacity",
                format!(
                    "is {}; expected 1..={MAX_EVENT_BUS_CAPACITY}",
                    self.event_bus_capacity
                ),
            ));
        }
        if !(1..=MAX_HTTP_HEADER_TIMEOUT_SECS).contains(&self.http_header_timeout_secs) {
            return Err(FieldError::new(
                "http_header_timeout_secs",
                format!(
                    "is {}; expected 1..={MAX_HTTP_HEADER_TIMEOUT_SECS}",
                    self.http_header_timeout_secs
                ),
            ));
        }
        if let Some(max) = self.max_connections
            && max < 8
        {
            return Err(FieldError::new(
                "max_connections",
                format!("is {max}; expected at least 8"),
            ));
        }
        Ok(())
    }
}

/// The whole configuration of `dsmild`: the daemon's settings and every layer's section.
/// Flags and `DSMIL_*` environment variables override the file ([`Overrides`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct DaemonConfig {
    /// The daemon's own settings.
    #[serde(flatten)]
    pub daemon: DaemonSettings,
    /// Which TPM backs the daemon.
    #[serde(flatten)]
    pub tpm: TpmConfig,
    /// Where learning history is kept.
    #[serde(flatten)]
    pub learn: LearnConfig,
    /// Agents and workflows.
    #[serde(flatten)]
    pub coord: CoordConfig,
    /// Health sampling, alerts, responses, the WebSocket stream.
    #[serde(flatten)]
    pub monitor: MonitorConfig,
    /// Running as a node of a cluster over NATS JetStream.
    #[serde(flatten)]
    pub cluster: ClusterSection,
}

/// What the command line (or its `DSMIL_*` variables) sets over the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--tpm`.
    pub tpm: Option<TpmBackendSpec>,
}

impl DaemonConfig {
    /// Parses TOML without validating (flags may still override fields); call
    /// [`DaemonConfig::validate`] once everything is merged. Keys no section owns, and values
    /// of the wrong type, are errors naming the key or field.
    pub fn parse_toml(text: &str) -> Result<Self, ConfigError> {
        sections::split(text)
    }

    /// Reads and parses a TOML file (not validated; see [`DaemonConfig::parse_toml`]).
    pub fn read_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse_toml(&text).map_err(|e| e.in_path(path))
    }

    /// Applies flags over the file's values.
    pub fn apply(&mut self, overrides: Overrides) {
        let Overrides {
            data_dir,
            listen,
            log_format,
            database_url,
            tpm,
        } = overrides;
        if let Some(dir) = data_dir {
            self.daemon.data_dir = Some(dir);
        }
        if let Some(listen) = listen {
            self.daemon.listen = listen;
        }
        if let Some(format) = log_format {
            self.daemon.log_format = format;
        }
        if let Some(url) = database_url {
            self.learn.database_url = Some(url);
        }
        if let Some(tpm) = tpm {
            self.tpm.tpm = tpm;
        }
    }

    /// Checks every section; the first problem is returned, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.daemon.validate()?;
        self.tpm.validate()?;
        self.learn.validate()?;
        self.coord.validate()?;
        self.monitor.validate()?;
        self.cluster.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
