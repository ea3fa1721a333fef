//! `dsmil-daemon`: the composer — the only library that knows every layer.
//!
//! - [`config`]: dsmild's configuration file assembled from the sections the layers own
//!   (`dsmil_coord::config`, `dsmil_monitor::config`, …), validated once with errors naming the
//!   field, and [`config::template::default_toml`], the whole file with every default and doc
//!   generated from those types.
//! - `compose` (feature `server`, on by default): the layers started in dependency order with
//!   their ports wired (the learning engine as the coordinator's advisor and sink, the
//!   coordinator as the monitor's and the bridge's `Throttle`, the accelerator engine as
//!   `PerformanceScaling`, the TPM-signed audit log as everyone's `AuditSink`), and shut down
//!   in reverse.
//! - `http` (feature `server`): the HTTP API with the wire types of `dsmil-api`, the bearer
//!   token, the JSON error format, `/metrics` gathered from every layer's `MetricsSource`.
//!
//! - `readiness` and `notify` (feature `server`): the checks `/api/ready` answers from, and
//!   systemd's `Type=notify` protocol (`READY=1`, watchdog pings while ready, `STOPPING=1`).
//!
//! `bins/dsmild` is flags, logging and a call to [`run`].
//!
//! ```
//! use dsmil_daemon::config::DaemonConfig;
//!
//! let config = DaemonConfig::parse_toml(r#"
//!     listen = "127.0.0.1:9000"
//!     [[agents]]
//!     id = "hasher"
//!     kind = "command"
//!     command = "/usr/bin/sha256sum"
//! "#)?;
//! config.validate()?;
//! assert_eq!(config.coord.agents[0].max_concurrency, 4);
//!
//! // A bad value is refused naming its field.
//! let bad = DaemonConfig::parse_toml("[[agents]]\nid = \"web\"\nkind = \"http\"")?;
//! assert_eq!(
//!     bad.validate().unwrap_err().to_string(),
//!     "invalid config: agents[0].url: is required for http agents"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "server")]
pub mod compose;
pub mod config;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod notify;
#[cfg(feature = "server")]
pub mod readiness;
#[cfg(feature = "server")]
pub mod token;

#[cfg(feature = "server")]
pub use compose::run;
#[cfg(feature = "server")]
pub use error::DaemonError;
