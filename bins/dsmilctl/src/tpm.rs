//! `dsmilctl tpm info` and `dsmilctl tpm quote`: what the daemon's TPM is, and quotes written
//! in the files `tpm2_checkquote` reads (checked here first, so a bad quote is never written).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dsmil_api::client::Client;
use dsmil_api::tpm::{QuoteRequest, QuotedPcrs, TpmInfo};
use dsmil_tpm::Quote;
use serde::Serialize;

/// Text form of `tpm info`.
pub fn info_text(v: &TpmInfo) -> String {
    let mut out = format!(
        "TPM backend:     {}{}\nvendor:          {} ({})\nfirmware:        {}\nPCR banks:       {}\nalgorithms:      {}\nNV:              index ≤ {} bytes, {} bytes per command\nlocation:        {}\n",
        v.backend,
        if v.hardware_rooted {
            " (hardware-rooted)"
        } else {
            " (NOT hardware-rooted)"
        },
        v.vendor,
        v.manufacturer,
        v.firmware_version,
        v.pcr_banks.join(", "),
        v.algorithms.join(", "),
        v.max_nv_index_size,
        v.max_nv_buffer,
        v.location,
    );
    let labels: Vec<String> = v
        .keys
        .iter()
        .map(|k| format!("{} ({})", k.label, k.template))
        .collect();
    out.push_str(&format!("keys:            {}\n", labels.join(", ")));
    if let Some(head) = &v.audit.tree_head {
        out.push_str(&format!("audit tree head: {head}\n"));
    }
    if let Some(anchor) = &v.audit_anchor {
        out.push_str(&format!("audit anchor:    {anchor} (in TPM NV)\n"));
    }
    out.trim_end().to_owned()
}

/// Parses `0,1,7`.
fn parse_pcrs(text: &str) -> Result<Vec<u32>> {
    let sel = dsmil_tpm::PcrSelection::parse_list(dsmil_tpm::HashAlgorithm::Sha256, text)?;
    Ok(sel.pcrs().map(u32::from).collect())
}

/// What `tpm quote` wrote.
#[derive(Debug, Serialize)]
pub struct QuoteWritten {
    /// The directory.
    pub dir: PathBuf,
    /// The files in it.
    pub files: [&'static str; 4],
    /// The TPM backend.
    pub backend: String,
    /// Whether its keys are hardware-rooted.
    pub hardware_rooted: bool,
    /// The quoted PCRs.
    pub pcrs: QuotedPcrs,
    /// The nonce, lowercase hex.
    pub nonce: String,
    /// Checked here before writing.
    pub verified: bool,
}

/// The contract's quote as the TPM layer's, to verify it with the TPM layer's own checks.
fn to_tpm_quote(q: &dsmil_api::tpm::Quote) -> Result<Quote> {
    // The contract and the TPM layer describe the same JSON shape; converting through it keeps
    // one implementation of the hex and PCR decoding (the TPM layer's, with its validation).
    let json = serde_json::to_value(q).context("cannot encode the daemon's quote")?;
    serde_json::from_value(json).context("the daemon's quote is not a TPM quote")
}

/// `POST /api/tpm/quote`, verified locally, written to `out`.
pub fn quote(client: &Client, pcrs: &str, nonce: &str, out: &Path) -> Result<QuoteWritten> {
    let pcrs = parse_pcrs(pcrs)?;
    let nonce_bytes = dsmil_core::hex::decode(nonce)
        .map_err(|_| anyhow::anyhow!("--nonce {nonce:?} is not hexadecimal"))?;
    if nonce_bytes.len() > 64 {
        bail!(
            "--nonce is {} bytes; a TPM takes at most 64",
            nonce_bytes.len()
        );
    }
    let answer = client.tpm_quote(&QuoteRequest {
        pcrs,
        nonce: nonce.to_owned(),
    })?;
    let quote = to_tpm_quote(&answer.quote)?;
    if let Err(e) = quote.verify(&nonce_bytes) {
        bail!("the daemon's quote does not verify: {e}");
    }
    quote
        .write_tpm2_tools_files(out)
        .with_context(|| format!("cannot write the quote files into {}", out.display()))?;
    Ok(QuoteWritten {
        dir: out.to_owned(),
        files: ["quote.msg", "quote.sig", "quote.pcrs", "ak.pub.pem"],
        backend: answer.backend,
        hardware_rooted: answer.hardware_rooted,
        pcrs: answer.pcrs,
        nonce: nonce.to_ascii_lowercase(),
        verified: true,
    })
}

/// Text form of `tpm quote`.
pub fn quote_text(v: &QuoteWritten) -> String {
    let dir = v.dir.display();
    format!(
        "quote of PCRs {} by the {} TPM{} verified and written to {dir}/\n  check it with: tpm2_checkquote -u {dir}/ak.pub.pem -m {dir}/quote.msg -s {dir}/quote.sig -f {dir}/quote.pcrs -g sha256 -q {}",
        v.pcrs.values.keys().cloned().collect::<Vec<_>>().join(","),
        v.backend,
        if v.hardware_rooted {
            ""
        } else {
            " (NOT hardware-rooted)"
        },
        v.nonce,
    )
}
