//! Parallel and redundant modes: a task starts as soon as its own dependencies have succeeded
//! (no batch barriers); dependents of a failed task are skipped, naming it. In redundant mode
//! the unit is a hedged task: up to `replicas` replicas, a new one every `hedge_delay_ms` while
//! none has succeeded; the first success wins and the others are cancelled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dsmil_core::workflow::{AgentResult, Metadata};
use tokio::task::JoinSet;

use crate::workflow::run::Run;
use crate::workflow::{DEFAULT_HEDGE_DELAY, DEFAULT_REPLICAS};

/// Runs `run`'s dependency graph; `hedged` runs each task on replicas.
pub(super) async fn run(run: Arc<Run>, hedged: bool) -> (bool, Metadata) {
    let n = run.spec.tasks.len();
    let index: BTreeMap<&str, usize> = run
        .spec
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let mut waiting: Vec<usize> = run
        .spec
        .tasks
        .iter()
        .map(|t| t.dependencies.len())
        .collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, t) in run.spec.tasks.iter().enumerate() {
        for d in &t.dependencies {
            if let Some(&j) = index.get(d.as_str()) {
                dependents[j].push(i);
            }
        }
    }
    let mut set: JoinSet<(usize, bool)> = JoinSet::new();
    let spawn = |set: &mut JoinSet<(usize, bool)>, i: usize| {
        let run = Arc::clone(&run);
        set.spawn(async move {
            let succeeded = if hedged {
                hedge(&run, i).await.is_some_and(|r| r.succeeded())
            } else {
                let input = run.spec.tasks[i].input_data.clone();
                run.task(i, input, None).await.succeeded()
            };
            (i, succeeded)
        });
    };
    for i in (0..n).filter(|&i| waiting[i] == 0) {
        spawn(&mut set, i);
    }
    let mut all_ok = true;
    let mut settled = vec![false; n];
    while let Some(joined) = set.join_next().await {
        let Ok((i, succeeded)) = joined else { continue };
        settled[i] = true;
        if succeeded {
            for &k in &dependents[i] {
                waiting[k] -= 1;
                if waiting[k] == 0 {
                    spawn(&mut set, k);
                }
            }
        } else {
            all_ok = false;
            // Skip everything downstream, naming the failed task.
            let mut stack = dependents[i].clone();
            let failed = &run.spec.tasks[i].id;
            while let Some(k) = stack.pop() {
                if !settled[k] {
                    settled[k] = true;
                    run.skip(k, format!("dependency {failed} failed")).await;
                    stack.extend(dependents[k].iter().copied());
                }
            }
        }
    }
    (all_ok && settled.iter().all(|s| *s), Metadata::new())
}

/// Runs task `i` on replicas of its agent, a new one every hedge delay until one succeeds;
/// returns the winner's result, or the last failure's (none if no replica ended).
async fn hedge(run: &Arc<Run>, i: usize) -> Option<AgentResult> {
    let replicas = run.spec.replicas.unwrap_or(DEFAULT_REPLICAS).max(1);
    let delay = run
        .spec
        .hedge_delay_ms
        .map_or(DEFAULT_HEDGE_DELAY, Duration::from_millis);
    let mut set: JoinSet<AgentResult> = JoinSet::new();
    let mut started = 0u32;
    let mut last = None;
    loop {
        if started < replicas {
            let run = Arc::clone(run);
            let r = started;
            set.spawn(async move {
                let input = run.spec.tasks[i].input_data.clone();
                run.task(i, input, Some(r)).await
            });
            started += 1;
        }
        let next = if started < replicas {
            tokio::select! {
                j = set.join_next() => j,
                _ = tokio::time::sleep(delay) => continue,
            }
        } else {
            set.join_next().await
        };
        match next {
            Some(Ok(result)) if result.succeeded() => {
                set.abort_all();
                return Some(result);
            }
            Some(Ok(result)) => last = Some(result),
            Some(Err(_)) => {}
            None if started >= replicas => return last,
            None => {}
        }
    }
}
