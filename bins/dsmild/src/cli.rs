//! Command-line flags of `dsmild`; each can also be given as a `DSMIL_<NAME>` variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use dsmil_daemon::config::{LogFormat, Overrides};
use dsmil_tpm::config::TpmBackendSpec;

/// `--version`: the version, the git revision built from, and the optional features built in.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("DSMIL_GIT_REV"),
    ")\nfeatures: ",
    features!()
);

/// The optional features this binary was built with.
#[cfg(feature = "tss")]
macro_rules! features {
    () => {
        "tss (TPM 2.0 hardware and swtpm through tss-esapi)"
    };
}
#[cfg(not(feature = "tss"))]
macro_rules! features {
    () => {
        "none (no tss: only the embedded software TPM)"
    };
}
use features;

/// The DSMIL daemon: runs agents in resilient workflows, learns which agent suits which task,
/// signs its audit trail with a TPM and streams it all to a live dashboard.
#[derive(Debug, Parser)]
#[command(name = "dsmild", version, long_version = LONG_VERSION)]
pub struct Cli {
    /// TOML configuration file (see `dsmilctl config default`) [default: the first that exists
    /// of $CONFIGURATION_DIRECTORY/dsmil.toml, /etc/dsmil/dsmil.toml,
    /// $XDG_CONFIG_HOME/dsmil/dsmil.toml].
    #[arg(long, env = "DSMIL_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Data directory (API token, TPM state, learning store, audit log) [default:
    /// $STATE_DIRECTORY under systemd, /var/lib/dsmil for a system service, else ./dsmil-data].
    #[arg(long, env = "DSMIL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address for the HTTP API, WebSocket and dashboard [default: 127.0.0.1:8765].
    #[arg(long, env = "DSMIL_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Log format: text or json [default: text].
    #[arg(long, env = "DSMIL_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// PostgreSQL URL for the learning store [default: embedded SQLite in the data dir].
    #[arg(long, env = "DSMIL_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// TPM backend.
    #[arg(
        long,
        env = "DSMIL_TPM",
        value_name = "BACKEND",
        help = "TPM backend: soft, or tss:<TCTI> (e.g. tss:device:/dev/tpmrm0) [default: soft]"
    )]
    pub tpm: Option<TpmBackendSpec>,

    /// Write the man page dsmild.8 into DIR and exit (packaging).
    #[arg(long, value_name = "DIR", hide = true)]
    pub generate_man: Option<PathBuf>,
}

impl Cli {
    /// What the flags set over the configuration file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            log_format: self.log_format,
            database_url: self.database_url.clone(),
            tpm: self.tpm.clone(),
        }
    }
}
