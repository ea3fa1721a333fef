//! `dsmilctl audit verify PATH`: checks an audit log offline; `dsmilctl audit prove SEQ`:
//! fetches an entry's inclusion proof from the daemon and checks it here.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dsmil_tpm::audit::{InclusionProof, TreeHead, verify_file_against};
use dsmil_tpm::soft_key::P256Verifier;
use serde_json::{Value, json};

use crate::client::Client;

/// Parses `--head SIZE:ROOT`.
fn parse_head(text: Option<&str>) -> Result<Option<TreeHead>> {
    text.map(|text| {
        TreeHead::parse(text).with_context(|| {
            format!("--head {text:?} is not SIZE:ROOT (a decimal size, a colon, 64 hex digits)")
        })
    })
    .transpose()
}

/// `GET /api/audit/proof/{seq}`, checked: the entry's leaf, the path to the root and, with
/// `head`, that the root is that trusted tree head's.
pub fn prove(client: &Client, seq: u64, head: Option<&str>) -> Result<Value> {
    let head = parse_head(head)?;
    let body = client.get(&format!("/api/audit/proof/{seq}"))?;
    let proof: InclusionProof =
        serde_json::from_value(body).context("the daemon's answer is not an inclusion proof")?;
    if proof.seq != seq {
        bail!(
            "the daemon answered with entry {} for entry {seq}",
            proof.seq
        );
    }
    proof
        .verify()
        .map_err(|e| anyhow::anyhow!("the proof of entry {seq} does NOT check out: {e}"))?;
    if let Some(head) = &head
        && (head.tree_size, Some(head.root))
            != (
                proof.tree_size,
                dsmil_tpm::audit::record::parse_hash(&proof.root),
            )
    {
        bail!(
            "the proof is against the tree head {}:{}, not the trusted {head}",
            proof.tree_size,
            proof.root
        );
    }
    let mut v = serde_json::to_value(&proof).context("cannot serialise the proof")?;
    v["verified"] = json!(true);
    v["trusted_head"] = json!(head.map(|h| h.to_string()));
    Ok(v)
}

/// Text form of a checked proof.
pub fn prove_text(v: &Value) -> String {
    format!(
        "entry {} is in the signed tree of {} entries with root {} ({} sibling hashes){}",
        v["seq"],
        v["tree_size"],
        v["root"].as_str().unwrap_or("?"),
        v["proof"].as_array().map_or(0, Vec::len),
        if v["trusted_head"].is_string() {
            " — the trusted tree head"
        } else {
            "; compare SIZE:ROOT with a tree head you trust (`dsmilctl tpm info`'s anchor, `audit verify --head`)"
        }
    )
}

/// `PATH` is the audit dir (holding `audit.log` and `signer.pub`) or the log file itself;
/// `head` (`SIZE:ROOT`) a trusted signed tree head the log must contain.
pub fn verify(path: &Path, head: Option<&str>) -> Result<Value> {
    let head = parse_head(head)?;
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
