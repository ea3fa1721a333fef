//! Servers that outlive the [`super::NatsCluster`] that started them (xtask's): what is recorded
//! about them, and stopping a recorded pid only while it still is one of our servers.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::binary::NatsVersion;
use super::config::ServerPorts;
use super::error::NatsServerError;
use super::monitor::check_health;
use super::os::{self, SIGKILL, SIGTERM};

/// How long a recorded server may take to die after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Pause between checks while waiting for a process to exit.
const POLL: Duration = Duration::from_millis(50);

/// One server left running by [`super::NatsCluster::detach`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedServer {
    /// Its `server_name` (`n0`, …).
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// Its ports.
    pub ports: ServerPorts,
    /// Its config file: the process's command line names it, which is how a recorded pid is
    /// recognised as still being this server.
    pub config_file: PathBuf,
    /// Its log file.
    pub log_file: PathBuf,
}

impl DetachedServer {
    /// `nats://127.0.0.1:<client port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.ports.client)
    }

    /// True when the recorded pid is a live nats-server started with this config file.
    pub fn is_running(&self) -> bool {
        is_our_server(self.pid, &self.config_file)
    }

    /// Checks `/healthz` (JetStream current) on the server's monitoring port.
    pub fn check_health(&self) -> Result<(), NatsServerError> {
        check_health(self.ports.http, false)
    }

    /// Stops the server by its recorded pid (see [`stop_recorded`]).
    pub fn stop(&self, grace: Duration) -> Result<RecordedStop, NatsServerError> {
        stop_recorded(self.pid, &self.config_file, grace)
    }
}

/// A cluster left running by [`super::NatsCluster::detach`]: everything needed to reach it and
/// to stop it later by pid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedCluster {
    /// The servers that were running when it was detached.
    pub servers: Vec<DetachedServer>,
    /// The client token file.
    pub token_file: PathBuf,
    /// The nats-server binary.
    pub binary: PathBuf,
    /// Its version.
    pub version: NatsVersion,
    /// `cluster.name`.
    pub cluster_name: String,
    /// Whether the servers fsync every write (`sync_interval: always`).
    pub sync_always: bool,
}

impl DetachedCluster {
    /// The client URLs, in server order.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(DetachedServer::url).collect()
    }

    /// Stops every server by its recorded pid; tries them all and returns the first error.
    pub fn stop(&self, grace: Duration) -> Result<(), NatsServerError> {
        let mut first = None;
        for server in &self.servers {
            if let Err(err) = server.stop(grace) {
                first.get_or_insert(err);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// What [`stop_recorded`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedStop {
    /// The pid was our server; it has exited.
    Stopped,
    /// No live process has that pid.
    NotRunning,
    /// The pid is alive but is not a nats-server started with the recorded config file (the
    /// pid was reused): it was left alone.
    NotOurs,
}

/// True when `pid` is a live nats-server whose command line names `config`.
pub fn is_our_server(pid: u32, config: &Path) -> bool {
    os::is_alive(pid) && os::cmdline(pid).is_some_and(|args| os::is_server_cmdline(&args, config))
}

/// Stops the nats-server recorded as `pid`, started with config file `config`: checks in
/// `/proc` that the pid still is such a process (a recycled pid is left alone), sends SIGTERM,
/// waits up to `grace`, then sends SIGKILL.
pub fn stop_recorded(
    pid: u32,
    config: &Path,
    grace: Duration,
) -> Result<RecordedStop, NatsServerError> {
    if !os::is_alive(pid) {
        return Ok(RecordedStop::NotRunning);
    }
    if !is_our_server(pid, config) {
        return Ok(if os::is_alive(pid) {
            RecordedStop::NotOurs
        } else {
            RecordedStop::NotRunning
        });
    }
    let server = config.display().to_string();
    let signal = |action, signal| {
        os::send_signal(pid, signal).map_err(|source| NatsServerError::Process {
            action,
            server: server.clone(),
            pid,
            source,
        })
    };
    signal("sending SIGTERM to", SIGTERM)?;
    if wait_gone(pid, config, grace) {
        return Ok(RecordedStop::Stopped);
    }
    signal("sending SIGKILL to", SIGKILL)?;
    if wait_gone(pid, config, KILL_WAIT) {
        return Ok(RecordedStop::Stopped);
    }
    Err(NatsServerError::Unkillable { server, pid })
}

/// Waits up to `timeout` for `pid` to stop being our server (exited, a zombie, or replaced).
fn wait_gone(pid: u32, config: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !is_our_server(pid, config) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_that_is_not_our_server_is_left_alone() {
        let me = std::process::id();
        let got = stop_recorded(me, Path::new("/nonexistent/n0/nats.conf"), Duration::ZERO);
        assert_eq!(got.unwrap(), RecordedStop::NotOurs);
        let got = stop_recorded(
            u32::MAX,
            Path::new("/nonexistent/n0/nats.conf"),
            Duration::ZERO,
        );
        assert_eq!(got.unwrap(), RecordedStop::NotRunning);
    }

    #[test]
    fn detached_servers_serialise_for_xtask_state() {
        let server = DetachedServer {
            name: "n0".to_owned(),
            pid: 42,
            ports: ServerPorts {
                client: 1,
                route: 2,
                http: 3,
            },
            config_file: PathBuf::from("/r/n0/nats.conf"),
            log_file: PathBuf::from("/r/n0/nats.log"),
        };
        let text = serde_json::to_string(&server).unwrap();
        let back: DetachedServer = serde_json::from_str(&text).unwrap();
        assert_eq!(back, server);
        assert_eq!(server.url(), "nats://127.0.0.1:1");
    }
}
