//! [`NatsCluster`]: the running servers of one cluster, owned by the caller until dropped or
//! detached.

use std::fs::{self, File, OpenOptions};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::config::{RouteCredentials, ServerConfig, ServerPorts};
use super::error::NatsServerError;
use super::monitor::{self, check_health};
use super::os::{self, SIGTERM};
use super::recorded::{DetachedCluster, DetachedServer};
use super::{NatsBinary, NatsClusterSpec};

/// Whole starts tried when a chosen port was taken before a server could bind it.
const START_ATTEMPTS: usize = 3;
/// How long [`NatsCluster::stop`] waits after SIGTERM before it sends SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Pause between readiness probes.
const POLL: Duration = Duration::from_millis(50);
/// Log lines quoted in errors.
const TAIL_LINES: usize = 20;
/// The route user of every cluster (its password is random per cluster).
const ROUTE_USER: &str = "dsmil-route";

/// One server's files, ports and process.
#[derive(Debug)]
struct Server {
    name: String,
    ports: ServerPorts,
    dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Which health a readiness wait asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// `/healthz?js-enabled-only=true`: JetStream runs (a fresh cluster).
    JetStreamEnabled,
    /// `/healthz`: JetStream is current, every stream and consumer caught up (a restart).
    Current,
}

/// A running nats-server cluster on loopback, started by [`NatsCluster::start`].
///
/// Dropping it kills (SIGKILL) every server it still runs; [`NatsCluster::detach`] leaves them
/// running instead.
#[derive(Debug)]
pub struct NatsCluster {
    spec: NatsClusterSpec,
    binary: NatsBinary,
    token: String,
    token_file: PathBuf,
    route: RouteCredentials,
    servers: Vec<Server>,
}

impl NatsCluster {
    /// Starts `spec.servers` servers under `spec.root` and waits (up to `spec.ready_timeout`)
    /// until each is healthy with JetStream enabled and the JetStream meta group has a leader
    /// that sees every server as current. A fresh client token (written to
    /// `<root>/client.token`, mode 0600) and route password are generated at every start. When a
    /// chosen port is taken before a server binds it, the whole start is retried on new ports
    /// (three tries).
    pub fn start(spec: NatsClusterSpec) -> Result<Self, NatsServerError> {
        spec.validate()?;
        let binary = match &spec.binary {
            Some(path) => NatsBinary::at(path)?,
            None => NatsBinary::find()?,
        };
        fs::create_dir_all(&spec.root)
            .map_err(|e| NatsServerError::io("creating", &spec.root, e))?;
        let root = fs::canonicalize(&spec.root)
            .map_err(|e| NatsServerError::io("resolving", &spec.root, e))?;
        let spec = NatsClusterSpec { root, ..spec };
        let token = os::random_hex(32)?;
        let token_file = spec.root.join("client.token");
        os::write_private(&token_file, &token)?;
        let route = RouteCredentials {
            user: ROUTE_USER.to_owned(),
            password: os::random_hex(32)?,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut cluster = Self {
                servers: layout(&spec)?,
                spec: spec.clone(),
                binary: binary.clone(),
                token: token.clone(),
                token_file: token_file.clone(),
                route: route.clone(),
            };
            // On an error `cluster` is dropped, which kills whatever did start.
            match cluster.launch() {
                Ok(()) => return Ok(cluster),
                Err(err) if err.is_port_conflict() && attempt < START_ATTEMPTS => continue,
                Err(err) if err.is_port_conflict() => {
                    return Err(NatsServerError::PortsTaken {
                        attempts: attempt,
                        last: Box::new(err),
                    });
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn launch(&mut self) -> Result<(), NatsServerError> {
        for index in 0..self.servers.len() {
            self.write_config(index)?;
        }
        for index in 0..self.servers.len() {
            self.spawn(index, true)?;
        }
        let all: Vec<usize> = (0..self.servers.len()).collect();
        self.wait_ready(&all, Health::JetStreamEnabled)
    }

    fn write_config(&self, index: usize) -> Result<(), NatsServerError> {
        let server = &self.servers[index];
        let peers: Vec<u16> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, s)| s.ports.route)
            .collect();
        let store_dir = server.dir.join("store");
        let pid_file = server.dir.join("nats.pid");
        let text = ServerConfig {
            name: &server.name,
            ports: server.ports,
            peer_route_ports: &peers,
            cluster_name: &self.spec.cluster_name,
            store_dir: &store_dir,
            pid_file: &pid_file,
            token: &self.token,
            route: &self.route,
            sync_always: self.spec.sync_always,
            max_memory_store: self.spec.max_memory_store,
            max_file_store: self.spec.max_file_store,
            tls: self.spec.tls.as_ref(),
        }
        .render()?;
        os::write_private(&server.config, &text)
    }

    /// Spawns server `index` from its config file; `fresh_log` truncates its log first.
    fn spawn(&mut self, index: usize, fresh_log: bool) -> Result<(), NatsServerError> {
        let own_group = self.spec.own_process_group;
        let binary = self.binary.path.clone();
        let server = &mut self.servers[index];
        let log = open_log(&server.log, fresh_log)?;
        let log_err = log
            .try_clone()
            .map_err(|e| NatsServerError::io("duplicating the handle of", &server.log, e))?;
        let mut cmd = Command::new(&binary);
        cmd.arg("-c")
            .arg(&server.config)
            .current_dir(&server.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if own_group {
            cmd.process_group(0);
        }
        let child = cmd.spawn().map_err(|source| NatsServerError::Spawn {
            server: server.name.clone(),
            binary,
            source,
        })?;
        server.child = Some(child);
        Ok(())
    }

    /// Waits until every server in `indices` is healthy as `health` asks and knows the meta
    /// leader, and the leader sees every running server as current.
    fn wait_ready(&mut self, indices: &[usize], health: Health) -> Result<(), NatsServerError> {
        let timeout = self.spec.ready_timeout;
        let deadline = Instant::now() + timeout;
        loop {
            let waiting = self.not_ready(indices, health)?;
            let Some((index, waiting_for)) = waiting else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                let server = &self.servers[index];
                return Err(NatsServerError::NotReady {
                    server: server.name.clone(),
                    timeout,
                    waiting_for,
                    log: server.log.clone(),
                    tail: os::tail(&server.log, TAIL_LINES),
                });
            }
            sleep(POLL);
        }
    }

    /// The first condition of readiness that does not hold yet (and which server it concerns);
    /// an error when a waited-for server has exited.
    fn not_ready(
        &mut self,
        indices: &[usize],
        health: Health,
    ) -> Result<Option<(usize, String)>, NatsServerError> {
        for &index in indices {
            self.check_exited(index)?;
        }
        let clustered = self.servers.len() > 1;
        let mut leader = None;
        for &index in indices {
            let port = self.servers[index].ports.http;
            if let Err(err) = check_health(port, health == Health::JetStreamEnabled) {
                return Ok(Some((index, err.to_string())));
            }
            if !clustered {
                continue;
            }
            match monitor::meta_view(port) {
                Ok(Some(view)) => match view.leader {
                    Some(name) => leader = Some(name),
                    None => return Ok(Some((index, "no JetStream meta leader yet".to_owned()))),
                },
                Ok(None) => {
                    return Ok(Some((index, "/jsz shows no meta cluster".to_owned())));
                }
                Err(err) => return Ok(Some((index, err.to_string()))),
            }
        }
        let Some(leader) = leader else {
            return Ok(None);
        };
        let Some(leader_index) = self.servers.iter().position(|s| s.name == leader) else {
            return Ok(Some((0, format!("meta leader {leader:?} is none of ours"))));
        };
        let view = match monitor::meta_view(self.servers[leader_index].ports.http) {
            Ok(Some(view)) => view,
            Ok(None) => {
                return Ok(Some((
                    leader_index,
                    "/jsz shows no meta cluster".to_owned(),
                )));
            }
            Err(err) => return Ok(Some((leader_index, err.to_string()))),
        };
        for (index, server) in self.servers.iter().enumerate() {
            if index == leader_index || server.child.is_none() {
                continue;
            }
            if !view.current_peers.contains(&server.name) {
                return Ok(Some((
                    index,
                    format!(
                        "meta leader {leader} does not see {} as current yet",
                        server.name
                    ),
                )));
            }
        }
        Ok(None)
    }

    /// Fails with [`NatsServerError::Exited`] when server `index` has exited.
    fn check_exited(&mut self, index: usize) -> Result<(), NatsServerError> {
        let server = &mut self.servers[index];
        let Some(child) = server.child.as_mut() else {
            return Err(NatsServerError::Exited {
                server: server.name.clone(),
                status: "no process (stopped)".to_owned(),
                log: server.log.clone(),
                tail: os::tail(&server.log, TAIL_LINES),
            });
        };
        let status = child
            .try_wait()
            .map_err(|source| NatsServerError::Process {
                action: "waiting for",
                server: server.name.clone(),
                pid: child.id(),
                source,
            })?;
        if let Some(status) = status {
            server.child = None;
            return Err(NatsServerError::Exited {
                server: server.name.clone(),
                status: status.to_string(),
                log: server.log.clone(),
                tail: os::tail(&server.log, TAIL_LINES),
            });
        }
        Ok(())
    }

    fn server(&self, index: usize) -> Result<&Server, NatsServerError> {
        self.servers
            .get(index)
            .ok_or(NatsServerError::NoSuchServer {
                index,
                servers: self.servers.len(),
            })
    }

    fn server_mut(&mut self, index: usize) -> Result<&mut Server, NatsServerError> {
        let servers = self.servers.len();
        self.servers
            .get_mut(index)
            .ok_or(NatsServerError::NoSuchServer { index, servers })
    }

    /// How many servers the cluster has (running or not).
    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// The client URLs of every server, `nats://127.0.0.1:<port>`, in server order (also of
    /// servers that are stopped right now).
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(|s| client_url(s.ports)).collect()
    }

    /// The client URL of server `index`.
    pub fn url(&self, index: usize) -> Option<String> {
        self.servers.get(index).map(|s| client_url(s.ports))
    }

    /// The ports of server `index`.
    pub fn ports(&self, index: usize) -> Option<ServerPorts> {
        self.servers.get(index).map(|s| s.ports)
    }

    /// The `server_name` of server `index` (`n<index>`).
    pub fn server_name(&self, index: usize) -> Option<&str> {
        self.servers.get(index).map(|s| s.name.as_str())
    }

    /// The pid of server `index`, `None` when this cluster stopped or killed it.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.servers
            .get(index)
            .and_then(|s| s.child.as_ref())
            .map(Child::id)
    }

    /// The log file of server `index` (its stdout and stderr).
    pub fn log_file(&self, index: usize) -> Option<&Path> {
        self.servers.get(index).map(|s| s.log.as_path())
    }

    /// The config file of server `index` (mode 0600: it holds secrets).
    pub fn config_file(&self, index: usize) -> Option<&Path> {
        self.servers.get(index).map(|s| s.config.as_path())
    }

    /// The file holding the client token (hex, no newline, mode 0600).
    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    /// The client token clients authenticate with.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The credentials the servers' routes authenticate with (never accepted from clients).
    pub fn route_credentials(&self) -> &RouteCredentials {
        &self.route
    }

    /// The binary the servers run.
    pub fn binary(&self) -> &NatsBinary {
        &self.binary
    }

    /// The spec the cluster was started from (`root` made absolute).
    pub fn spec(&self) -> &NatsClusterSpec {
        &self.spec
    }

    /// Fetches `path` (e.g. `/varz`, `/jsz`, `/routez`) from server `index`'s HTTP monitoring
    /// port and parses the JSON answer.
    pub fn monitor(&self, index: usize, path: &str) -> Result<Value, NatsServerError> {
        monitor::get_json(self.server(index)?.ports.http, path)
    }

    /// True when server `index` runs (reaps it when it has exited on its own).
    pub fn is_running(&mut self, index: usize) -> bool {
        let Some(server) = self.servers.get_mut(index) else {
            return false;
        };
        let running = server
            .child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)));
        if !running {
            server.child = None;
        }
        running
    }

    /// Kills server `index` with SIGKILL (no shutdown of any kind) and reaps it. Does nothing
    /// when it does not run.
    pub fn kill(&mut self, index: usize) -> Result<(), NatsServerError> {
        let server = self.server_mut(index)?;
        let Some(mut child) = server.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        let name = server.name.clone();
        let failed = |action, source| NatsServerError::Process {
            action,
            server: name.clone(),
            pid,
            source,
        };
        child.kill().map_err(|e| failed("sending SIGKILL to", e))?;
        child.wait().map_err(|e| failed("waiting for", e))?;
        Ok(())
    }

    /// Stops server `index` with SIGTERM and waits for it to exit (SIGKILL after 10 s). Does
    /// nothing when it does not run.
    pub fn stop(&mut self, index: usize) -> Result<(), NatsServerError> {
        let server = self.server_mut(index)?;
        let Some(child) = server.child.as_mut() else {
            return Ok(());
        };
        let pid = child.id();
        let name = server.name.clone();
        let failed = |action, source| NatsServerError::Process {
            action,
            server: name.clone(),
            pid,
            source,
        };
        // The child is not reaped yet, so its pid cannot have been reused.
        os::send_signal(pid, SIGTERM).map_err(|e| failed("sending SIGTERM to", e))?;
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            if child
                .try_wait()
                .map_err(|e| failed("waiting for", e))?
                .is_some()
            {
                server.child = None;
                return Ok(());
            }
            if Instant::now() >= deadline {
                break;
            }
            sleep(POLL);
        }
        self.kill(index)
    }

    /// Stops every running server (SIGTERM, as [`NatsCluster::stop`]); tries them all and
    /// returns the first error.
    pub fn stop_all(&mut self) -> Result<(), NatsServerError> {
        let mut first = None;
        for index in 0..self.servers.len() {
            if let Err(err) = self.stop(index) {
                first.get_or_insert(err);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Starts server `index` again with the same ports, config file and store dir (stopping it
    /// first with SIGTERM when it runs) and waits until it is fully healthy (`/healthz`: its
    /// JetStream streams and consumers have caught up) and the meta leader sees it as current.
    /// That needs a quorum of the cluster running; to bring back a majority at once use
    /// [`NatsCluster::restart_all`].
    pub fn restart(&mut self, index: usize) -> Result<(), NatsServerError> {
        self.stop(index)?;
        self.spawn(index, false)?;
        self.wait_ready(&[index], Health::Current)
    }

    /// Starts every server that does not run (same ports, config files and store dirs) and
    /// waits until all of them are fully healthy and the meta leader sees every server.
    pub fn restart_all(&mut self) -> Result<(), NatsServerError> {
        let all: Vec<usize> = (0..self.servers.len()).collect();
        self.restart_some(&all)
    }

    /// Starts the servers of `indices` that do not run, all at once (so a majority can come
    /// back together), and waits until they are fully healthy and the meta leader sees them —
    /// or, while some server stays down (its streams cannot all be current), until JetStream
    /// runs on them and the meta leader sees them.
    pub fn restart_some(&mut self, indices: &[usize]) -> Result<(), NatsServerError> {
        let mut started = Vec::new();
        for &index in indices {
            if index >= self.servers.len() {
                return Err(NatsServerError::NoSuchServer {
                    index,
                    servers: self.servers.len(),
                });
            }
            if !self.is_running(index) {
                self.spawn(index, false)?;
                started.push(index);
            }
        }
        let everyone = (0..self.servers.len()).all(|index| self.is_running(index));
        let health = if everyone {
            Health::Current
        } else {
            Health::JetStreamEnabled
        };
        self.wait_ready(&started, health)
    }

    /// Leaves the running servers running and returns what is needed to find and stop them
    /// later (pids, ports, config files). Servers that are stopped right now are left out.
    pub fn detach(mut self) -> DetachedCluster {
        let mut servers = Vec::new();
        for server in &mut self.servers {
            // Dropping a `Child` neither kills nor waits for it.
            if let Some(child) = server.child.take() {
                servers.push(DetachedServer {
                    name: server.name.clone(),
                    pid: child.id(),
                    ports: server.ports,
                    config_file: server.config.clone(),
                    log_file: server.log.clone(),
                });
            }
        }
        DetachedCluster {
            servers,
            token_file: self.token_file.clone(),
            binary: self.binary.path.clone(),
            version: self.binary.version,
            cluster_name: self.spec.cluster_name.clone(),
            sync_always: self.spec.sync_always,
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            if let Some(mut child) = server.child.take() {
                // Best effort: the process may already have exited.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `nats://127.0.0.1:<client port>`.
fn client_url(ports: ServerPorts) -> String {
    format!("nats://127.0.0.1:{}", ports.client)
}

/// The servers' directories under `spec.root` and fresh free ports for each.
fn layout(spec: &NatsClusterSpec) -> Result<Vec<Server>, NatsServerError> {
    let ports = os::free_ports(spec.servers * 3)?;
    let mut servers = Vec::with_capacity(spec.servers);
    for (index, chunk) in ports.chunks_exact(3).enumerate() {
        let name = format!("n{index}");
        let dir = spec.root.join(&name);
        fs::create_dir_all(&dir).map_err(|e| NatsServerError::io("creating", &dir, e))?;
        servers.push(Server {
            ports: ServerPorts {
                client: chunk[0],
                route: chunk[1],
                http: chunk[2],
            },
            config: dir.join("nats.conf"),
            log: dir.join("nats.log"),
            dir,
            name,
            child: None,
        });
    }
    Ok(servers)
}

/// Opens a server's log for its stdout and stderr: truncated for a fresh start, appended to on
/// a restart (so the log of the run before stays readable).
fn open_log(path: &Path, fresh: bool) -> Result<File, NatsServerError> {
    let mut options = OpenOptions::new();
    if fresh {
        options.write(true).create(true).truncate(true);
    } else {
        options.append(true).create(true);
    }
    options
        .open(path)
        .map_err(|e| NatsServerError::io("opening the log", path, e))
}
