//! `dsmilctl audit verify PATH`: checks an audit log offline.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dsmil_tpm::audit::{TreeHead, verify_file_against};
use dsmil_tpm::soft_key::P256Verifier;
use serde_json::{Value, json};

/// `PATH` is the audit dir (holding `audit.log` and `signer.pub`) or the log file itself;
/// `head` (`SIZE:ROOT`) a trusted signed tree head the log must contain.
pub fn verify(path: &Path, head: Option<&str>) -> Result<Value> {
    let head = match head {
        Some(text) => Some(TreeHead::parse(text).with_context(|| {
            format!("--head {text:?} is not SIZE:ROOT (a decimal size, a colon, 64 hex digits)")
        })?),
        None => None,
    };
    let (log, dir): (PathBuf, PathBuf) = if path.is_dir() {
        (path.join("audit.log"), path.to_owned())
    } else {
        (
            path.to_owned(),
            path.parent().map(Path::to_path_buf).unwrap_or_default(),
        )
    };
    let key_file = dir.join("signer.pub");
    let key_text = std::fs::read_to_string(&key_file)
        .with_context(|| format!("cannot read the signer's public key {}", key_file.display()))?;
    let key = dsmil_core::hex::decode(key_text.trim())
        .map_err(|e| anyhow::anyhow!("{}: not a hex public key: {e}", key_file.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("cannot start a runtime")?;
    let verifier = P256Verifier::new(key);
    match runtime.block_on(verify_file_against(&log, &verifier, head.as_ref())) {
        Ok(summary) => Ok(json!({
            "file": log,
            "intact": true,
            "entries": summary.entries,
            "checkpoints": summary.checkpoints,
            "signed_entries": summary.signed_entries,
            "key_name": summary.key_name,
            "trusted_head": head.map(|h| h.to_string()),
        })),
        Err(e) => bail!("{}: NOT intact: {e}", log.display()),
    }
}

/// Text form of a successful verification.
pub fn text(v: &Value) -> String {
    let unsigned = v["entries"].as_u64().unwrap_or(0) - v["signed_entries"].as_u64().unwrap_or(0);
    format!(
        "{}: intact — {} entries, {} checkpoints signed by {}{}",
        v["file"].as_str().unwrap_or("?"),
        v["entries"],
        v["checkpoints"],
        v["key_name"].as_str().unwrap_or("nobody"),
        if unsigned > 0 {
            format!(" ({unsigned} newest entries not yet signed)")
        } else {
            String::new()
        }
    )
}
