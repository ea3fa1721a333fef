//! `dsmilctl audit verify PATH`: checks an audit log offline; `dsmilctl audit prove SEQ`:
//! fetches an entry's inclusion proof from the daemon and checks it here; `dsmilctl audit
//! consistency`: the same for a consistency proof between two sizes; `dsmilctl audit
//! witnesses`: every node's head and who witnessed it.

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
    let key = dsmil_tpm::der::ecc_p256_point_from_text(&key_text).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: not a P-256 public key (PEM `PUBLIC KEY`, or the hex point older daemons wrote)",
            key_file.display()
        )
    })?;
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

/// `GET /api/audit/consistency`, checked here (and, with `from_root`, that it starts at that
/// trusted root).
pub fn consistency(
    client: &Client,
    from: u64,
    to: Option<u64>,
    from_root: Option<&str>,
) -> Result<dsmil_api::audit::ConsistencyProof> {
    let trusted = from_root
        .map(|r| {
            dsmil_tpm::audit::record::parse_hash(r)
                .with_context(|| format!("--from-root {r:?} is not 64 lower-case hex digits"))
        })
        .transpose()?;
    let proof = client.audit_consistency(from, to)?;
    if proof.from_size != from || to.is_some_and(|t| t != proof.to_size) {
        bail!(
            "the daemon answered a proof from {} to {} entries",
            proof.from_size,
            proof.to_size
        );
    }
    if !proof.verify() {
        bail!(
            "the consistency proof from {} to {} entries does NOT check out: the log of {} entries is not a prefix of the log of {}",
            proof.from_size,
            proof.to_size,
            proof.from_size,
            proof.to_size
        );
    }
    if let Some(root) = trusted
        && root != proof.from_root
    {
        bail!(
            "the daemon's log of {from} entries has root {}, not the trusted {}: it was rewritten",
            dsmil_core::hex::encode(&proof.from_root),
            dsmil_core::hex::encode(&root)
        );
    }
    Ok(proof)
}

/// Text form of a checked consistency proof.
pub fn consistency_text(p: &dsmil_api::audit::ConsistencyProof) -> String {
    format!(
        "the log of {} entries (root {}) is a prefix of the log of {} entries (root {}): {} proof hashes check out",
        p.from_size,
        dsmil_core::hex::encode(&p.from_root),
        p.to_size,
        dsmil_core::hex::encode(&p.to_root),
        p.proof.len()
    )
}

/// Text form of `GET /api/audit/witnesses`, one line per node and witness.
pub fn witnesses_text(v: &dsmil_api::audit::WitnessView) -> String {
    use std::fmt::Write as _;
    if !v.clustered {
        return "this dsmild runs on one host: no other node witnesses its audit log".to_owned();
    }
    let mut out = format!(
        "{:<20} {:>8} {:<18} {:<20} {:>8} STATUS\n",
        "NODE", "HEAD", "ROOT", "WITNESS", "ACCEPTED"
    );
    for n in &v.nodes {
        let (size, root) = n
            .head
            .as_ref()
            .map_or(("-".to_owned(), "-".to_owned()), |h| {
                (
                    h.tree_size.to_string(),
                    dsmil_core::hex::encode(&h.root)[..16].to_owned(),
                )
            });
        if n.witnesses.is_empty() {
            let _ = writeln!(
                out,
                "{:<20} {size:>8} {root:<18} {:<20} {:>8} not witnessed yet",
                n.node_id, "-", "-"
            );
        }
        for w in &n.witnesses {
            let status = match &w.problem {
                Some(p) => format!("INCONSISTENT: {p}"),
                None => "consistent".to_owned(),
            };
            let accepted = w.accepted_size.map_or("-".to_owned(), |s| s.to_string());
            let _ = writeln!(
                out,
                "{:<20} {size:>8} {root:<18} {:<20} {accepted:>8} {status}",
                n.node_id, w.witness
            );
        }
    }
    out.trim_end().to_owned()
}
