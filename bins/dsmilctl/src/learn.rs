//! `dsmilctl learn …`: importing performance records and asking for predictions.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dsmil_core::learning::AgentPerformance;
use serde_json::{Value, json};

use crate::client::Client;

/// One record of the file, with its line number.
struct Line<'a> {
    number: usize,
    text: &'a str,
}

/// Checks every line of an NDJSON file the way dsmild will, so a bad file sends nothing.
fn check_file<'t>(path: &Path, text: &'t str) -> Result<Vec<Line<'t>>> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let record: AgentPerformance = serde_json::from_str(line).with_context(|| {
            format!(
                "{}:{number}: not a valid performance record",
                path.display()
            )
        })?;
        record
            .validate()
            .with_context(|| format!("{}:{number}: invalid record", path.display()))?;
        if record.task_description.trim().is_empty() && record.embedding.is_none() {
            bail!(
                "{}:{number}: invalid record: task_description: must not be empty (or give an `embedding`)",
                path.display()
            );
        }
        lines.push(Line { number, text: line });
    }
    if lines.is_empty() {
        bail!(
            "{}: no records (expected one JSON object per line)",
            path.display()
        );
    }
    Ok(lines)
}

/// Draws `done/total` as a bar on stderr when it is a terminal.
fn progress(done: usize, total: usize, started: Instant) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let width = 30;
    let filled = done * width / total.max(1);
    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
    eprint!(
        "\r[{}{}] {:>3}% {done}/{total} records, {rate:.0}/s ",
        "#".repeat(filled),
        " ".repeat(width - filled),
        done * 100 / total.max(1)
    );
    let _ = std::io::stderr().flush();
}

/// `learn import FILE`: validates the whole file, then sends it in batches of `batch` records
/// (each batch is stored atomically), with a progress bar.
pub fn import(client: &Client, path: &Path, batch: usize) -> Result<Value> {
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let lines = check_file(path, &text)?;
    let total = lines.len();
    let started = Instant::now();
    let mut stored = 0u64;
    let mut sent = 0usize;
    progress(0, total, started);
    for chunk in lines.chunks(batch) {
        let body: String = chunk.iter().map(|l| l.text).collect::<Vec<_>>().join("\n");
        let answer = client.post_raw("/api/learn/records", "application/x-ndjson", body);
        let answer = match answer {
            Ok(a) => a,
            Err(err) => {
                if std::io::stderr().is_terminal() {
                    eprintln!();
                }
                // Map the server's record number back to the file's line.
                let line = err
                    .downcast_ref::<crate::client::ApiFailure>()
                    .and_then(|f| f.detail["record"].as_u64())
                    .and_then(|r| chunk.get((r as usize).saturating_sub(1)))
                    .map(|l| format!(" (line {})", l.number))
                    .unwrap_or_default();
                return Err(err).with_context(|| {
                    format!(
                        "{}: batch starting at line {} was refused{line}; {sent} records before it were stored",
                        path.display(),
                        chunk[0].number
                    )
                });
            }
        };
        stored += answer["stored"].as_u64().unwrap_or(0);
        sent += chunk.len();
        progress(sent, total, started);
    }
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "file": path,
        "records": total,
        "stored": stored,
        "seconds": seconds,
        "records_per_second": total as f64 / seconds.max(1e-9),
    }))
}

/// `learn predict TEXT`.
pub fn predict(
    client: &Client,
    text: &str,
    context: Option<&str>,
    task_type: Option<&str>,
    exclude: &[String],
) -> Result<Value> {
    let context: Value = match context {
        Some(c) => serde_json::from_str(c).context("--context must be a JSON object")?,
        None => json!({}),
    };
    if !context.is_object() {
        bail!("--context must be a JSON object, e.g. '{{\"size\": 4096}}'");
    }
    let mut body = json!({"task_description": text, "context": context, "exclude_agents": exclude});
    if let Some(t) = task_type {
        body["task_type"] = json!(t);
    }
    client.post_raw("/api/learn/predict", "application/json", body.to_string())
}

/// Text form of a prediction.
pub fn prediction_text(v: &Value) -> String {
    let mut out = format!(
        "{}  (confidence {:.2}, about {} ms)",
        v["predicted_agent"].as_str().unwrap_or("?"),
        v["confidence_score"].as_f64().unwrap_or(0.0),
        v["execution_time_estimate_ms"]
    );
    if let Some(alts) = v["alternative_agents"].as_array() {
        for a in alts {
            out.push_str(&format!(
                "\n  or {} ({:.2})",
                a[0].as_str().unwrap_or("?"),
                a[1].as_f64().unwrap_or(0.0)
            ));
        }
    }
    out.push_str(&format!(
        "\n  from {} similar past tasks ({})",
        v["reasoning"]["similar_tasks"],
        v["reasoning"]["method"].as_str().unwrap_or("?")
    ));
    out
}

/// Text form of an import summary.
pub fn import_text(v: &Value) -> String {
    format!(
        "imported {} records from {} ({} new) in {:.1} s, {:.0} records/s",
        v["records"],
        v["file"].as_str().unwrap_or("?"),
        v["stored"],
        v["seconds"].as_f64().unwrap_or(0.0),
        v["records_per_second"].as_f64().unwrap_or(0.0)
    )
}
