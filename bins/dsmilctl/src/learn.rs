//! `dsmilctl learn …`: importing performance records and asking for predictions.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dsmil_api::client::Client;
use dsmil_api::learn::{AgentPerformance, LearningPrediction, PredictRequest};
use serde::Serialize;

/// One record of the file, with its line number.
struct Line<'a> {
    number: usize,
    text: &'a str,
}

/// Checks every line of an NDJSON file with the validation dsmild applies
/// (`AgentPerformance::validate`), so a bad file sends nothing.
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

/// What `learn import` did.
#[derive(Debug, Serialize)]
pub struct Imported {
    /// The file.
    pub file: std::path::PathBuf,
    /// Records in it.
    pub records: usize,
    /// Records new to the store.
    pub stored: u64,
    /// Time taken.
    pub seconds: f64,
    /// Records per second.
    pub records_per_second: f64,
}

/// `learn import FILE`: validates the whole file, then sends it in batches of `batch` records
/// (each batch is stored atomically), with a progress bar.
pub fn import(client: &Client, path: &Path, batch: usize) -> Result<Imported> {
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
        let answer = client.record_ndjson(body);
        let answer = match answer {
            Ok(a) => a,
            Err(err) => {
                if std::io::stderr().is_terminal() {
                    eprintln!();
                }
                // Map the server's record number back to the file's line.
                let line = err
                    .api_error()
                    .and_then(|(_, e)| e.record)
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
        stored += answer.stored;
        sent += chunk.len();
        progress(sent, total, started);
    }
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Imported {
        file: path.to_owned(),
        records: total,
        stored,
        seconds,
        records_per_second: total as f64 / seconds.max(1e-9),
    })
}

/// `learn predict TEXT`.
pub fn predict(
    client: &Client,
    text: &str,
    context: Option<&str>,
    task_type: Option<&str>,
    exclude: &[String],
) -> Result<LearningPrediction> {
    let context = match context {
        Some(c) => match serde_json::from_str::<serde_json::Value>(c) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => bail!("--context must be a JSON object, e.g. '{{\"size\": 4096}}'"),
        },
        None => Default::default(),
    };
    let exclude_agents = exclude
        .iter()
        .map(|a| a.parse().with_context(|| format!("--exclude {a:?}")))
        .collect::<Result<_>>()?;
    let request = PredictRequest {
        task_description: text.to_owned(),
        task_type: task_type.map(str::to_owned),
        context,
        exclude_agents,
        candidates: None,
    };
    Ok(client.predict(&request)?)
}

/// Text form of a prediction.
pub fn prediction_text(p: &LearningPrediction) -> String {
    let mut out = format!(
        "{}  (confidence {:.2}, about {} ms)",
        p.predicted_agent, p.confidence_score, p.execution_time_estimate_ms
    );
    for (agent, confidence) in &p.alternative_agents {
        out.push_str(&format!("\n  or {agent} ({confidence:.2})"));
    }
    let similar = p
        .similar_tasks()
        .map_or_else(|| "no".to_owned(), |n| n.to_string());
    let method = p.method().unwrap_or("unknown");
    out.push_str(&format!("\n  from {similar} similar past tasks ({method})"));
    out
}

/// Text form of an import summary.
pub fn import_text(v: &Imported) -> String {
    format!(
        "imported {} records from {} ({} new) in {:.1} s, {:.0} records/s",
        v.records,
        v.file.display(),
        v.stored,
        v.seconds,
        v.records_per_second
    )
}
