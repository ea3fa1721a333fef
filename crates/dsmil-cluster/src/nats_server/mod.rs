//! Starting and stopping real nats-server processes: a JetStream cluster on loopback for tests,
//! benches, `cargo xtask cluster-demo` and `cargo xtask services`.
//!
//! Blocking std code only (no async client inside): call it from a test thread, or through
//! `tokio::task::block_in_place` / `spawn_blocking` from async code.
//!
//! - [`NatsBinary::find`] picks the binary: `DSMIL_TEST_NATS_SERVER`, else `nats-server` on
//!   `PATH`; it must be ≥ 2.10 ([`MIN_VERSION`]).
//! - [`NatsCluster::start`] takes a [`NatsClusterSpec`] and, under its `root`, writes a random
//!   client token to `client.token` (mode 0600) and one config file per server
//!   (`n<i>/nats.conf`, mode 0600: it holds the token and the route password), picks free
//!   loopback ports (client, route, HTTP monitoring) for each server, spawns them (output to
//!   `n<i>/nats.log`, JetStream store in `n<i>/store`) and waits until every server is healthy
//!   and the JetStream meta group has a leader that sees every peer.
//! - Failure tests use [`NatsCluster::kill`] (SIGKILL), [`NatsCluster::stop`] (SIGTERM),
//!   [`NatsCluster::restart`] (same ports, config and store; waits until the server has caught
//!   up) and [`NatsCluster::stop_all`].
//! - Dropping a [`NatsCluster`] kills its servers. [`NatsCluster::detach`] hands them over as a
//!   [`DetachedCluster`] instead (xtask records it and later stops each pid with
//!   [`stop_recorded`], which first checks the pid still is a nats-server running one of our
//!   config files).
//! - [`write_test_tls`] makes a throw-away CA and server certificate with `openssl` for
//!   [`NatsClusterSpec::tls`].
//!
//! Security: every port is bound on 127.0.0.1 only; clients need the token; routes need a
//! generated user and password distinct from the token, so no other process on the machine can
//! join the cluster; the token never appears on a command line or in a log line.

mod binary;
mod cluster;
mod config;
mod error;
mod monitor;
mod os;
mod recorded;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

pub use binary::{BINARY_VAR, MIN_VERSION, NatsBinary, NatsVersion};
pub use cluster::NatsCluster;
pub use config::{RouteCredentials, ServerPorts};
pub use error::NatsServerError;
pub use monitor::check_health;
pub use recorded::{DetachedCluster, DetachedServer, RecordedStop, is_our_server, stop_recorded};
pub use tls::{TlsFiles, write_test_tls};

/// What cluster to start. Build one with [`NatsClusterSpec::new`] and change the public fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsClusterSpec {
    /// Number of servers. Default 3; 1 starts a standalone JetStream server (no routes).
    pub servers: usize,
    /// Directory for config files, store dirs, logs and the token file (created if missing).
    pub root: PathBuf,
    /// `cluster.name` of every server. Default `dsmil-test`.
    pub cluster_name: String,
    /// Write `sync_interval: always` in the jetstream block: every write is fsync'd before it is
    /// acknowledged. Default false: nats-server's default, flushing on an interval (an ack then
    /// means a quorum has the write in memory, not on disk).
    pub sync_always: bool,
    /// TLS for client connections (servers then require it). Default none.
    pub tls: Option<TlsFiles>,
    /// The nats-server binary. Default none: [`NatsBinary::find`].
    pub binary: Option<PathBuf>,
    /// JetStream `max_memory_store` per server, bytes. Default 128 MiB.
    pub max_memory_store: u64,
    /// JetStream `max_file_store` per server, bytes. Default 1 GiB.
    pub max_file_store: u64,
    /// How long [`NatsCluster::start`] and [`NatsCluster::restart`] wait for readiness. Default
    /// 30 s.
    pub ready_timeout: Duration,
    /// Put each server in a process group of its own, so a Ctrl-C meant for the caller does not
    /// reach it: for servers that outlive the caller (xtask's). Default false: the servers share
    /// the caller's group, so an interrupted test run takes them down too.
    pub own_process_group: bool,
}

impl NatsClusterSpec {
    /// The defaults documented on each field, with `root` as the root directory.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            servers: 3,
            root: root.into(),
            cluster_name: "dsmil-test".to_owned(),
            sync_always: false,
            tls: None,
            binary: None,
            max_memory_store: 128 << 20,
            max_file_store: 1 << 30,
            ready_timeout: Duration::from_secs(30),
            own_process_group: false,
        }
    }

    /// Checks the fields that do not need the file system; names the field that is wrong.
    pub fn validate(&self) -> Result<(), NatsServerError> {
        let invalid = |field, reason: &str| {
            Err(NatsServerError::InvalidSpec {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.servers == 0 {
            return invalid("servers", "must be at least 1");
        }
        if self.root.as_os_str().is_empty() {
            return invalid("root", "must not be empty");
        }
        config::check_cluster_name(&self.cluster_name)?;
        if self.max_memory_store == 0 || self.max_file_store == 0 {
            return invalid("max_memory_store/max_file_store", "must be above 0 bytes");
        }
        if self.ready_timeout.is_zero() {
            return invalid("ready_timeout", "must be above 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_three_servers_interval_sync_no_tls() {
        let spec = NatsClusterSpec::new("/tmp/x");
        assert_eq!(spec.servers, 3);
        assert_eq!(spec.cluster_name, "dsmil-test");
        assert!(!spec.sync_always && spec.tls.is_none() && spec.binary.is_none());
        assert_eq!(spec.ready_timeout, Duration::from_secs(30));
        spec.validate().unwrap();
    }

    #[test]
    fn invalid_specs_name_the_field() {
        type Breakage = fn(&mut NatsClusterSpec);
        let cases: [(&str, Breakage); 5] = [
            ("servers", |s| s.servers = 0),
            ("root", |s| s.root = PathBuf::new()),
            ("cluster_name", |s| s.cluster_name = "a b".to_owned()),
            ("max_file_store", |s| s.max_file_store = 0),
            ("ready_timeout", |s| s.ready_timeout = Duration::ZERO),
        ];
        for (field, change) in cases {
            let mut spec = NatsClusterSpec::new("/tmp/x");
            change(&mut spec);
            let err = spec.validate().unwrap_err();
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
    }
}
