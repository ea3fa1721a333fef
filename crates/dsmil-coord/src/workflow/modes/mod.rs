//! The six execution modes, one module each (parallel and redundant share the dependency
//! scheduler in `dag`; redundant adds hedging). Each runs the tasks of a [`Run`] through its
//! task pipeline and returns whether the workflow succeeded under the mode's rule, with the
//! metadata the mode reports.

mod competitive;
mod consensus;
mod dag;
mod pipeline;
mod sequential;

use std::sync::Arc;

use dsmil_core::workflow::{ExecutionMode, Metadata};

use super::run::Run;

/// Runs `run` in its mode; returns success and metadata.
pub(super) async fn execute(run: Arc<Run>) -> (bool, Metadata) {
    match run.spec.execution_mode {
        ExecutionMode::Sequential => sequential::run(run).await,
        ExecutionMode::Pipeline => pipeline::run(run).await,
        ExecutionMode::Parallel => dag::run(run, false).await,
        ExecutionMode::Redundant => dag::run(run, true).await,
        ExecutionMode::Consensus => consensus::run(run).await,
        ExecutionMode::Competitive => competitive::run(run).await,
    }
}

/// Runs every task of `run` at once with its own input; the join set yields `(index, result)`.
fn all_at_once(run: &Arc<Run>) -> tokio::task::JoinSet<(usize, dsmil_core::workflow::AgentResult)> {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..run.spec.tasks.len() {
        let run = Arc::clone(run);
        set.spawn(async move {
            let input = run.spec.tasks[i].input_data.clone();
            let result = run.task(i, input, None).await;
            (i, result)
        });
    }
    set
}
