//! The [`JournalStore`] suite: the SQLite journal (coordination) and the JetStream journal
//! (cluster) both run [`run_all`] — and [`survives_reopen`] with two handles on the same
//! storage — so both backends keep the same promises.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;

use crate::ids::{AgentId, TaskId, WorkflowId};
use crate::ports::JournalStore;
use crate::workflow::{
    AgentResult, ExecutionMode, Metadata, TaskOutcome, WorkflowResult, WorkflowSpec, WorkflowState,
};

/// A two-task workflow spec of type `kind`.
pub fn spec(kind: &str) -> WorkflowSpec {
    let text = json!({
        "workflow_type": kind,
        "execution_mode": "parallel",
        "tasks": [
            {"id": "a", "agent_id": "echo", "task_description": "first", "input_data": {"n": 1}},
            {"id": "b", "agent_id": "echo", "task_description": "second", "input_data": {"n": 2}}
        ]
    })
    .to_string();
    match WorkflowSpec::from_json_str(&text) {
        Ok(s) => s,
        Err(e) => panic!("the suite's spec does not parse: {e}"),
    }
}

/// The result of task `task` (replica `replica` when set), successful or not.
pub fn result(task: &str, replica: Option<u32>, success: bool) -> AgentResult {
    let mut metadata = Metadata::new();
    metadata.insert("attempts".into(), json!(1));
    if let Some(r) = replica {
        metadata.insert("replica".into(), json!(r));
    }
    AgentResult {
        agent_id: AgentId::new("echo").unwrap_or_else(|e| panic!("{e}")),
        task_id: TaskId::new(task).unwrap_or_else(|e| panic!("{e}")),
        success,
        result_data: if success {
            json!({"task": task})
        } else {
            json!(null)
        },
        execution_time_ms: 3,
        resource_usage: Default::default(),
        error_message: (!success).then(|| "exited with code 1".to_owned()),
        outcome: if success {
            TaskOutcome::Completed
        } else {
            TaskOutcome::Failed
        },
        recovered: false,
        metadata,
    }
}

/// The final result of workflow `id` with `results`.
pub fn finished(id: WorkflowId, success: bool, results: Vec<AgentResult>) -> WorkflowResult {
    WorkflowResult {
        workflow_id: id,
        success,
        execution_mode: ExecutionMode::Parallel,
        state: if success {
            WorkflowState::Completed
        } else {
            WorkflowState::Failed
        },
        total_execution_time_ms: 10,
        agent_results: results,
        coordination_overhead_ms: 1,
        metadata: Metadata::new(),
    }
}

/// Every check of the suite, one after another, on `store` (which may hold other workflows).
pub async fn run_all(store: &dyn JournalStore) {
    unknown_workflows_are_none(store).await;
    a_workflow_is_recorded_through_its_life(store).await;
    failed_and_replicated_results_are_all_kept(store).await;
    unfinished_lists_only_unfinished_oldest_first(store).await;
    concurrent_workflows_keep_their_own_order(store).await;
}

/// `get` of a workflow never journaled is `None`.
pub async fn unknown_workflows_are_none(store: &dyn JournalStore) {
    let got = store.get(WorkflowId::new_random()).await;
    assert!(
        matches!(got, Ok(None)),
        "get of an unknown workflow must be Ok(None), got {got:?}"
    );
}

/// Create → transitions → results → finish, read back at each step.
pub async fn a_workflow_is_recorded_through_its_life(store: &dyn JournalStore) {
    let id = WorkflowId::new_random();
    let spec = spec("life");
    store
        .create(id, &spec, WorkflowState::Running)
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let r = store.get(id).await.unwrap_or_else(|e| panic!("get: {e}"));
    let r = r.unwrap_or_else(|| panic!("a created workflow must be found"));
    assert_eq!(r.workflow_id, id);
    assert_eq!(r.spec, spec, "the spec must come back as it was journaled");
    assert_eq!(r.state, WorkflowState::Running);
    assert_eq!(r.history.len(), 1, "creation is the first transition");
    assert_eq!(r.history[0].state, WorkflowState::Running);
    assert!(r.results.is_empty() && r.result.is_none());

    let a = result("a", None, true);
    store
        .task_result(id, &a)
        .await
        .unwrap_or_else(|e| panic!("task_result: {e}"));
    store
        .transition(id, WorkflowState::Recovering, "resuming after a restart")
        .await
        .unwrap_or_else(|e| panic!("transition: {e}"));
    store
        .transition(id, WorkflowState::Running, "1 finished tasks kept")
        .await
        .unwrap_or_else(|e| panic!("transition: {e}"));
    let b = result("b", None, true);
    store
        .task_result(id, &b)
        .await
        .unwrap_or_else(|e| panic!("task_result: {e}"));
    let r = store
        .get(id)
        .await
        .unwrap_or_else(|e| panic!("get: {e}"))
        .unwrap_or_else(|| panic!("found"));
    assert_eq!(
        r.results,
        vec![a.clone(), b.clone()],
        "results in journal order"
    );
    let states: Vec<_> = r.history.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        [
            WorkflowState::Running,
            WorkflowState::Recovering,
            WorkflowState::Running
        ]
    );
    assert_eq!(r.history[1].detail, "resuming after a restart");
    assert!(r.history.windows(2).all(|w| w[0].at <= w[1].at));

    let end = finished(id, true, vec![a, b]);
    store
        .finish(&end)
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"));
    let r = store
        .get(id)
        .await
        .unwrap_or_else(|e| panic!("get: {e}"))
        .unwrap_or_else(|| panic!("found"));
    assert_eq!(r.state, WorkflowState::Completed);
    assert_eq!(r.result.as_ref(), Some(&end));
    assert_eq!(
        r.history.last().map(|t| t.state),
        Some(WorkflowState::Completed)
    );
    let unfinished = store
        .unfinished()
        .await
        .unwrap_or_else(|e| panic!("unfinished: {e}"));
    assert!(
        unfinished.iter().all(|w| w.workflow_id != id),
        "a finished workflow is not unfinished"
    );
}

/// A failed result, its re-run and replicas of one task are all kept, in order.
pub async fn failed_and_replicated_results_are_all_kept(store: &dyn JournalStore) {
    let id = WorkflowId::new_random();
    store
        .create(id, &spec("replicas"), WorkflowState::Running)
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let written = vec![
        result("a", None, false),
        result("a", None, true),
        result("b", Some(0), false),
        result("b", Some(1), true),
    ];
    for r in &written {
        store
            .task_result(id, r)
            .await
            .unwrap_or_else(|e| panic!("task_result: {e}"));
    }
    let r = store
        .get(id)
        .await
        .unwrap_or_else(|e| panic!("get: {e}"))
        .unwrap_or_else(|| panic!("found"));
    assert_eq!(r.results, written);
    store
        .finish(&finished(id, false, written))
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"));
}

/// `unfinished` holds pending, running and recovering workflows, oldest first, with their
/// results; not finished ones, nor ones that failed by a transition.
pub async fn unfinished_lists_only_unfinished_oldest_first(store: &dyn JournalStore) {
    let (first, second, failed, done) = (
        WorkflowId::new_random(),
        WorkflowId::new_random(),
        WorkflowId::new_random(),
        WorkflowId::new_random(),
    );
    for (id, state) in [
        (first, WorkflowState::Pending),
        (second, WorkflowState::Running),
        (failed, WorkflowState::Running),
        (done, WorkflowState::Running),
    ] {
        store
            .create(id, &spec("unfinished"), state)
            .await
            .unwrap_or_else(|e| panic!("create: {e}"));
    }
    store
        .task_result(second, &result("a", None, true))
        .await
        .unwrap_or_else(|e| panic!("task_result: {e}"));
    store
        .transition(second, WorkflowState::Recovering, "resuming")
        .await
        .unwrap_or_else(|e| panic!("transition: {e}"));
    store
        .transition(failed, WorkflowState::Failed, "cannot resume: agent gone")
        .await
        .unwrap_or_else(|e| panic!("transition: {e}"));
    store
        .finish(&finished(done, true, Vec::new()))
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"));
    let listed = store
        .unfinished()
        .await
        .unwrap_or_else(|e| panic!("unfinished: {e}"));
    let ours: Vec<_> = listed
        .iter()
        .filter(|w| [first, second, failed, done].contains(&w.workflow_id))
        .collect();
    let ids: Vec<_> = ours.iter().map(|w| w.workflow_id).collect();
    assert_eq!(
        ids,
        vec![first, second],
        "pending and recovering, oldest first"
    );
    assert_eq!(ours[1].state, WorkflowState::Recovering);
    assert_eq!(
        ours[1].results.len(),
        1,
        "unfinished records carry their results"
    );
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at),
        "oldest first"
    );
    for id in [first, second] {
        store
            .finish(&finished(id, false, Vec::new()))
            .await
            .unwrap_or_else(|e| panic!("finish: {e}"));
    }
}

/// Many workflows written at once: each keeps all its results, in its own order.
pub async fn concurrent_workflows_keep_their_own_order(store: &dyn JournalStore) {
    let ids: Vec<WorkflowId> = (0..8).map(|_| WorkflowId::new_random()).collect();
    let writes = ids.iter().map(|&id| async move {
        store
            .create(id, &spec("concurrent"), WorkflowState::Running)
            .await
            .unwrap_or_else(|e| panic!("create: {e}"));
        for i in 0..12 {
            store
                .task_result(id, &result(&format!("t{i}"), None, true))
                .await
                .unwrap_or_else(|e| panic!("task_result: {e}"));
        }
    });
    futures_join_all(writes).await;
    for id in ids {
        let r = store
            .get(id)
            .await
            .unwrap_or_else(|e| panic!("get: {e}"))
            .unwrap_or_else(|| panic!("found"));
        let tasks: Vec<String> = r
            .results
            .iter()
            .map(|r| r.task_id.as_str().to_owned())
            .collect();
        let expected: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
        assert_eq!(tasks, expected, "workflow {id}: its results in its order");
        let distinct: BTreeSet<_> = tasks.iter().collect();
        assert_eq!(distinct.len(), 12);
        store
            .finish(&finished(id, true, r.results))
            .await
            .unwrap_or_else(|e| panic!("finish: {e}"));
    }
}

/// What was journaled through `first` is read back whole through `second`, a handle opened
/// afterwards on the same storage (a restart, or another node).
pub async fn survives_reopen(
    first: Arc<dyn JournalStore>,
    second: impl AsyncFnOnce() -> Arc<dyn JournalStore>,
) {
    let id = WorkflowId::new_random();
    first
        .create(id, &spec("reopen"), WorkflowState::Running)
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let a = result("a", None, true);
    first
        .task_result(id, &a)
        .await
        .unwrap_or_else(|e| panic!("task_result: {e}"));
    drop(first);
    let second = second().await;
    let r = second
        .get(id)
        .await
        .unwrap_or_else(|e| panic!("get: {e}"))
        .unwrap_or_else(|| panic!("a workflow journaled before must be found after reopening"));
    assert_eq!(r.results, vec![a]);
    let unfinished = second
        .unfinished()
        .await
        .unwrap_or_else(|e| panic!("unfinished: {e}"));
    assert!(unfinished.iter().any(|w| w.workflow_id == id));
    second
        .finish(&finished(id, true, r.results))
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"));
}

/// Runs `futures` concurrently (core does not depend on a futures crate).
async fn futures_join_all<F: std::future::Future<Output = ()>>(
    futures: impl IntoIterator<Item = F>,
) {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(move |cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
