//! `dsmilctl run FILE`: submits a workflow, prints each task as it finishes, then the result.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::client::Client;

/// How often the workflow is polled.
const POLL: Duration = Duration::from_millis(200);

fn line(r: &Value) -> String {
    let task = r["task_id"].as_str().unwrap_or("?");
    let agent = r["agent_id"].as_str().unwrap_or("?");
    if r["success"].as_bool() == Some(true) {
        let recovered = if r["metadata"]["recovered"].as_bool() == Some(true) {
            ", kept from before a restart"
        } else {
            ""
        };
        format!(
            "  ok    {task} on {agent} ({} ms{recovered})",
            r["execution_time_ms"]
        )
    } else {
        format!(
            "  FAIL  {task} on {agent}: {}",
            r["error_message"].as_str().unwrap_or("failed")
        )
    }
}

/// Runs the workflow in `path` (TOML, or JSON by extension or content) and returns the final
/// journal record; progress goes to stderr unless `quiet`.
pub fn run(client: &Client, path: &Path, quiet: bool) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json = path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let content_type = if json {
        "application/json"
    } else {
        "application/toml"
    };
    let accepted = client.post_raw("/api/workflows?wait=false", content_type, text)?;
    let Some(id) = accepted["workflow_id"].as_str().map(str::to_owned) else {
        bail!("dsmild accepted the workflow but sent no workflow_id: {accepted}");
    };
    if !quiet {
        eprintln!("workflow {id} started");
    }
    let mut shown = 0usize;
    loop {
        let record = client.get(&format!("/api/workflows/{id}"))?;
        let results = record["results"].as_array().cloned().unwrap_or_default();
        if !quiet {
            for r in results.iter().skip(shown) {
                eprintln!("{}", line(r));
            }
        }
        shown = results.len();
        let state = record["state"].as_str().unwrap_or("?");
        if matches!(state, "completed" | "failed" | "cancelled") {
            return Ok(record);
        }
        std::thread::sleep(POLL);
    }
}

/// Text form of the final record.
pub fn text(v: &Value) -> String {
    let result = &v["result"];
    let mut out = format!(
        "workflow {} {} in {} ms (coordination overhead {} ms)",
        v["workflow_id"].as_str().unwrap_or("?"),
        v["state"].as_str().unwrap_or("?"),
        result["total_execution_time_ms"],
        result["coordination_overhead_ms"],
    );
    if let Some(e) = result["metadata"]["error"].as_str() {
        out.push_str(&format!("\n  error: {e}"));
    }
    for key in ["winner", "consensus_value", "output"] {
        if let Some(x) = result["metadata"].get(key) {
            out.push_str(&format!("\n  {key}: {x}"));
        }
    }
    out
}
