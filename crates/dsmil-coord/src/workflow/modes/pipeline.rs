//! Pipeline mode: tasks in order, each one's result the next one's `input_data`; the last
//! result is the workflow's `output`. Stops at the first failure.

use std::sync::Arc;

use dsmil_core::workflow::Metadata;
use serde_json::{Value, json};

use crate::workflow::run::Run;

/// Runs `run` as a pipeline.
pub(super) async fn run(run: Arc<Run>) -> (bool, Metadata) {
    let mut meta = Metadata::new();
    let mut carried: Option<Value> = None;
    for i in 0..run.spec.tasks.len() {
        let task = &run.spec.tasks[i];
        let input = carried.take().unwrap_or_else(|| task.input_data.clone());
        let result = run.task(i, input, None).await;
        if !result.succeeded() {
            meta.insert("stopped_at".into(), json!(task.id));
            return (false, meta);
        }
        carried = Some(result.result_data);
    }
    meta.insert("output".into(), carried.unwrap_or(Value::Null));
    (true, meta)
}
