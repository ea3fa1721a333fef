//! Readiness: whether the daemon can do its work now, not only whether it serves. `/api/ready`
//! answers from it, and systemd's watchdog is fed only while it passes ([`crate::notify`]).
//!
//! Each check is bounded by [`CHECK_TIMEOUT`], so a wedged TPM thread or an unreachable
//! database makes the daemon not ready rather than hanging the probe.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dsmil_core::WorkflowId;

use crate::compose::Layers;

/// Longest one check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Prefix of the file written and removed in the data dir to prove it writable; each probe adds
/// the process id and its own number, because `/api/ready` and the watchdog probe concurrently.
const PROBE_FILE: &str = ".ready-probe";

/// Numbers the probes of this process, so two never share a file.
static PROBE_SEQ: AtomicU64 = AtomicU64::new(0);

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// `tpm`, `data_dir`, `learning_store` or `journal`.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, or why it failed.
    pub detail: String,
    /// How long it took.
    pub elapsed: Duration,
}

/// Every check's outcome, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check passed.
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// `name: detail` of each failed check, `; `-separated.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Runs one check under the timeout.
async fn check<F, E>(name: &'static str, work: F) -> Check
where
    F: Future<Output = Result<String, E>>,
    E: std::error::Error,
{
    let started = Instant::now();
    let (ok, detail) = match tokio::time::timeout(CHECK_TIMEOUT, work).await {
        Ok(Ok(detail)) => (true, detail),
        Ok(Err(e)) => (false, dsmil_core::report::chain(&e)),
        Err(_) => (
            false,
            format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
        ),
    };
    Check {
        name,
        ok,
        detail,
        elapsed: started.elapsed(),
    }
}

/// Writes, syncs and removes a probe file of its own in `dir`.
async fn probe_writable(dir: &Path) -> std::io::Result<String> {
    let seq = PROBE_SEQ.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{PROBE_FILE}.{}.{seq}", std::process::id()));
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::remove_file(&path).await?;
    Ok("writable".into())
}

/// Runs every check, one after another (each is cheap).
pub async fn assess(layers: &Layers) -> Report {
    let tpm = check("tpm", async {
        layers
            .tpm
            .get_random(8)
            .await
            .map(|_| "answered".to_owned())
    })
    .await;
    let data_dir = check("data_dir", probe_writable(&layers.data_dir)).await;
    let store = check("learning_store", async {
        let store = layers.learning.store();
        store
            .count()
            .await
            .map(|n| format!("{} reachable, {n} records", store.backend()))
    })
    .await;
    let journal = check("journal", async {
        layers
            .journal
            .get(WorkflowId::new_random())
            .await
            .map(|_| "reachable".to_owned())
    })
    .await;
    Report {
        checks: vec![tpm, data_dir, store, journal],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/api/ready` and the watchdog probe at the same time; neither may see the other's file
    /// vanish (a shared probe name made one of them fail with "No such file or directory").
    #[tokio::test]
    async fn concurrent_probes_do_not_collide() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut probes = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let path = dir.path().to_path_buf();
            probes.spawn(async move { probe_writable(&path).await });
        }
        while let Some(outcome) = probes.join_next().await {
            assert_eq!(outcome.expect("join").expect("probe"), "writable");
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read dir").collect();
        assert!(left.is_empty(), "probe files left behind: {left:?}");
    }

    #[tokio::test]
    async fn probe_of_a_missing_dir_fails() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("gone");
        assert!(probe_writable(&missing).await.is_err());
    }
}
