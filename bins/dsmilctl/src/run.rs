//! `dsmilctl run FILE`: submits a workflow, prints each task as it finishes, then the result.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use dsmil_api::client::{Client, Submitted};
use dsmil_api::workflows::{AgentResult, WorkflowRecord};

/// How often the workflow is polled.
const POLL: Duration = Duration::from_millis(200);

fn line(r: &AgentResult) -> String {
    if r.success {
        let recovered = if r.recovered {
            ", kept from before a restart"
        } else {
            ""
        };
        format!(
            "  ok    {} on {} ({} ms{recovered})",
            r.task_id, r.agent_id, r.execution_time_ms
        )
    } else {
        format!(
            "  FAIL  {} on {}: {}",
            r.task_id,
            r.agent_id,
            r.error_message.as_deref().unwrap_or("failed")
        )
    }
}

/// Runs the workflow in `path` (TOML, or JSON by extension or content) and returns the final
/// journal record; progress goes to stderr unless `quiet`.
pub fn run(client: &Client, path: &Path, quiet: bool) -> Result<WorkflowRecord> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json = path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let content_type = if json {
        "application/json"
    } else {
        "application/toml"
    };
    let id = match client.submit_workflow(text, content_type, false)? {
        Submitted::Accepted(accepted) => accepted.workflow_id.to_string(),
        Submitted::Finished(result) => {
            bail!(
                "dsmild ran workflow {} to the end instead of accepting it",
                result.workflow_id
            )
        }
    };
    if !quiet {
        eprintln!("workflow {id} started");
    }
    let mut shown = 0usize;
    loop {
        let record = client.workflow(&id)?;
        if !quiet {
            for r in record.results.iter().skip(shown) {
                eprintln!("{}", line(r));
            }
        }
        shown = record.results.len();
        if record.state.is_terminal() {
            return Ok(record);
        }
        std::thread::sleep(POLL);
    }
}

/// Text form of the final record.
pub fn text(r: &WorkflowRecord) -> String {
    let (total, overhead) = r.result.as_ref().map_or((0, 0), |res| {
        (res.total_execution_time_ms, res.coordination_overhead_ms)
    });
    let mut out = format!(
        "workflow {} {} in {total} ms (coordination overhead {overhead} ms)",
        r.workflow_id,
        crate::output::name(&r.state),
    );
    if let Some(res) = &r.result {
        if let Some(e) = res.error() {
            out.push_str(&format!("\n  error: {e}"));
        }
        for (key, value) in res.outputs() {
            out.push_str(&format!("\n  {key}: {value}"));
        }
    }
    out
}
