//! `dsmilctl audit verify PATH`: checks an audit log offline; `dsmilctl audit prove SEQ`:
//! fetches an entry's inclusion proof from the daemon and checks it here.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dsmil_api::client::Client;
use dsmil_tpm::audit::{InclusionProof, TreeHead, verify_file_against};
use dsmil_tpm::soft_key::P256Verifier;
use serde::Serialize;

/// A proof that checked out.
#[derive(Debug, Serialize)]
pub struct Proven {
    /// The proof.
    #[serde(flatten)]
    pub proof: dsmil_api::audit::InclusionProof,
    /// It checked out.
    pub verified: bool,
    /// The tree head it was required to be against, `SIZE:ROOT`.
    pub trusted_head: Option<String>,
}

/// A log that verified.
#[derive(Debug, Serialize)]
pub struct Verified {
    /// The log file.
    pub file: PathBuf,
    /// It is intact.
    pub intact: bool,
    /// Entries.
    pub entries: u64,
    /// Signed checkpoints.
    pub checkpoints: u64,
    /// Entries covered by a checkpoint.
    pub signed_entries: u64,
    /// The key that signed them.
    pub key_name: Option<String>,
    /// The tree head it had to contain, `SIZE:ROOT`.
    pub trusted_head: Option<String>,
}

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
pub fn prove(client: &Client, seq: u64, head: Option<&str>) -> Result<Proven> {
    let head = parse_head(head)?;
    let wire = client.audit_proof(seq)?;
    if wire.seq != seq {
        bail!(
            "the daemon answered with entry {} for entry {seq}",
            wire.seq
        );
    }
    let proof = InclusionProof {
        seq: wire.seq,
        entry: wire.entry.clone(),
        leaf: wire.leaf.clone(),
        tree_size: wire.tree_size,
        root: wire.root.clone(),
        proof: wire.proof.clone(),
    };
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
    Ok(Proven {
        proof: wire,
        verified: true,
        trusted_head: head.map(|h| h.to_string()),
    })
}

/// Text form of a checked proof.
pub fn prove_text(v: &Proven) -> String {
    format!(
        "entry {} is in the signed tree of {} entries with root {} ({} sibling hashes){}",
        v.proof.seq,
        v.proof.tree_size,
        v.proof.root,
        v.proof.proof.len(),
        if v.trusted_head.is_some() {
            " — the trusted tree head"
        } else {
            "; compare SIZE:ROOT with a tree head you trust (`dsmilctl tpm info`'s anchor, `audit verify --head`)"
        }
    )
}

/// `PATH` is the audit dir (holding `audit.log` and `signer.pub`) or the log file itself;
/// `head` (`SIZE:ROOT`) a trusted signed tree head the log must contain.
pub fn verify(path: &Path, head: Option<&str>) -> Result<Verified> {
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
        Ok(summary) => Ok(Verified {
            file: log,
            intact: true,
            entries: summary.entries,
            checkpoints: summary.checkpoints,
            signed_entries: summary.signed_entries,
            key_name: summary.key_name,
            trusted_head: head.map(|h| h.to_string()),
        }),
        Err(e) => bail!(
            "{}: NOT intact: {}",
            log.display(),
            dsmil_core::report::chain(&e)
        ),
    }
}

/// Text form of a successful verification.
pub fn text(v: &Verified) -> String {
    let unsigned = v.entries.saturating_sub(v.signed_entries);
    format!(
        "{}: intact — {} entries, {} checkpoints signed by {}{}",
        v.file.display(),
        v.entries,
        v.checkpoints,
        v.key_name.as_deref().unwrap_or("nobody"),
        if unsigned > 0 {
            format!(" ({unsigned} newest entries not yet signed)")
        } else {
            String::new()
        }
    )
}
