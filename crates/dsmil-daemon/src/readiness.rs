//! Readiness: whether the daemon can do its work now, not only whether it serves. `/api/ready`
//! answers from it, and systemd's watchdog is fed only while it passes ([`crate::notify`]).
//!
//! Each check is bounded by [`CHECK_TIMEOUT`], so a wedged TPM thread or an unreachable
//! database makes the daemon not ready rather than hanging the probe.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use dsmil_core::WorkflowId;

use crate::compose::Layers;

/// Longest one check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// File written and removed in the data dir to prove it writable.
const PROBE_FILE: &str = ".ready-probe";

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

/// Writes, syncs and removes a probe file in `dir`.
async fn probe_writable(dir: &Path) -> std::io::Result<String> {
    let path = dir.join(PROBE_FILE);
    let file = tokio::fs::File::create(&path).await?;
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
