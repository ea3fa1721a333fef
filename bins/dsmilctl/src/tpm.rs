//! `dsmilctl tpm info` and `dsmilctl tpm quote`: what the daemon's TPM is, and quotes written
//! in the files `tpm2_checkquote` reads (checked here first, so a bad quote is never written).

use std::path::Path;

use anyhow::{Context, Result, bail};
use dsmil_tpm::Quote;
use serde_json::{Value, json};

use crate::client::Client;

/// `GET /api/tpm/info`.
pub fn info(client: &Client) -> Result<Value> {
    client.get("/api/tpm/info")
}

/// Text form of `tpm info`.
pub fn info_text(v: &Value) -> String {
    let mut out = format!(
        "TPM backend:     {}{}\nvendor:          {} ({})\nfirmware:        {}\nPCR banks:       {}\nalgorithms:      {}\nNV:              index ≤ {} bytes, {} bytes per command\nlocation:        {}\n",
        v["backend"].as_str().unwrap_or("?"),
        if v["hardware_rooted"] == true {
            " (hardware-rooted)"
        } else {
            " (NOT hardware-rooted)"
        },
        v["vendor"].as_str().unwrap_or("?"),
        v["manufacturer"].as_str().unwrap_or("?"),
        v["firmware_version"].as_str().unwrap_or("?"),
        list(&v["pcr_banks"]),
        list(&v["algorithms"]),
        v["max_nv_index_size"],
        v["max_nv_buffer"],
        v["location"].as_str().unwrap_or("?"),
    );
    if let Some(keys) = v["keys"].as_array() {
        let labels: Vec<String> = keys
            .iter()
            .map(|k| {
                format!(
                    "{} ({})",
                    k["label"].as_str().unwrap_or("?"),
                    k["template"].as_str().unwrap_or("?")
                )
            })
            .collect();
        out.push_str(&format!("keys:            {}\n", labels.join(", ")));
    }
    if let Some(head) = v["audit"]["tree_head"].as_str() {
        out.push_str(&format!("audit tree head: {head}\n"));
    }
    if let Some(anchor) = v["audit_anchor"].as_str() {
        out.push_str(&format!("audit anchor:    {anchor} (in TPM NV)\n"));
    }
    out.trim_end().to_owned()
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Parses `0,1,7`.
fn parse_pcrs(text: &str) -> Result<Vec<u32>> {
    let sel =
        dsmil_core::tpm::PcrSelection::parse_list(dsmil_core::tpm::HashAlgorithm::Sha256, text)?;
    Ok(sel.pcrs().map(u32::from).collect())
}

/// `POST /api/tpm/quote`, verified locally, written to `out`.
pub fn quote(client: &Client, pcrs: &str, nonce: &str, out: &Path) -> Result<Value> {
    let pcrs = parse_pcrs(pcrs)?;
    let nonce_bytes = dsmil_core::hex::decode(nonce)
        .map_err(|_| anyhow::anyhow!("--nonce {nonce:?} is not hexadecimal"))?;
    if nonce_bytes.len() > 64 {
        bail!(
            "--nonce is {} bytes; a TPM takes at most 64",
            nonce_bytes.len()
        );
    }
    let answer = client.post_raw(
        "/api/tpm/quote",
        "application/json",
        json!({"pcrs": pcrs, "nonce": nonce}).to_string(),
    )?;
    let quote: Quote = serde_json::from_value(answer["quote"].clone())
        .context("the daemon's answer holds no readable quote")?;
    if let Err(e) = quote.verify(&nonce_bytes) {
        bail!("the daemon's quote does not verify: {e}");
    }
    quote
        .write_tpm2_tools_files(out)
        .with_context(|| format!("cannot write the quote files into {}", out.display()))?;
    Ok(json!({
        "dir": out,
        "files": ["quote.msg", "quote.sig", "quote.pcrs", "ak.pub.pem"],
        "backend": answer["backend"],
        "hardware_rooted": answer["hardware_rooted"],
        "pcrs": answer["pcrs"],
        "nonce": nonce.to_ascii_lowercase(),
        "verified": true,
    }))
}

/// Text form of `tpm quote`.
pub fn quote_text(v: &Value) -> String {
    let dir = v["dir"].as_str().unwrap_or(".");
    format!(
        "quote of PCRs {} by the {} TPM{} verified and written to {dir}/\n  check it with: tpm2_checkquote -u {dir}/ak.pub.pem -m {dir}/quote.msg -s {dir}/quote.sig -f {dir}/quote.pcrs -g sha256 -q {}",
        v["pcrs"]["values"]
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>().join(","))
            .unwrap_or_default(),
        v["backend"].as_str().unwrap_or("?"),
        if v["hardware_rooted"] == true {
            ""
        } else {
            " (NOT hardware-rooted)"
        },
        v["nonce"].as_str().unwrap_or(""),
    )
}
