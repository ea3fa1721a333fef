//! Sequential mode: tasks in dependency order, one at a time; stops at the first failure unless
//! `continue_on_failure`, when dependents of a failed task are skipped instead.

use std::sync::Arc;

use dsmil_core::TaskId;
use dsmil_core::workflow::Metadata;
use serde_json::json;

use crate::workflow::run::Run;

/// Runs `run` sequentially.
pub(super) async fn run(run: Arc<Run>) -> (bool, Metadata) {
    let mut meta = Metadata::new();
    let order = run.spec.topological_order().unwrap_or_default();
    let mut failed: Vec<&TaskId> = Vec::new();
    let mut all_ok = true;
    for i in order {
        let task = &run.spec.tasks[i];
        if let Some(dep) = task.dependencies.iter().find(|d| failed.contains(d)) {
            run.skip(i, format!("dependency {dep} failed")).await;
            failed.push(&task.id);
            continue;
        }
        let result = run.task(i, task.input_data.clone(), None).await;
        if !result.succeeded() {
            all_ok = false;
            failed.push(&task.id);
            if !run.spec.continue_on_failure {
                meta.insert("stopped_at".into(), json!(task.id));
                break;
            }
        }
    }
    (all_ok, meta)
}
