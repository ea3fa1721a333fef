//! The journal: histories read back, and recovery after a crash that re-runs only unfinished
//! tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dsmil_coord::agent::AgentOutput;
use dsmil_coord::agents::BuiltinAgent;
use dsmil_coord::journal::Journal;
use dsmil_coord::registry::{AgentRegistry, AgentSettings};
use dsmil_coord::workflow::{CancelToken, Coordinator};
use dsmil_core::AgentId;
use dsmil_core::workflow::{WorkflowSpec, WorkflowState};
use serde_json::json;

fn id(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}

/// `counter` counts calls; `sleeper` waits `sleep_ms`.
fn registry(calls: Arc<AtomicU32>, sleep_ms: u64) -> Arc<AgentRegistry> {
    let mut reg = AgentRegistry::new();
    let counter = BuiltinAgent::new(id("counter"), move |input| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            Ok(AgentOutput {
                result: json!({"call": n, "task": input.task_id}),
                ..Default::default()
            })
        }
    });
    reg.register(Arc::new(counter), AgentSettings::default(), None)
        .unwrap();
    let sleeper = BuiltinAgent::new(id("sleeper"), move |_| async move {
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        Ok(AgentOutput {
            result: json!("rested"),
            ..Default::default()
        })
    });
    reg.register(Arc::new(sleeper), AgentSettings::default(), None)
        .unwrap();
    Arc::new(reg)
}

fn spec() -> WorkflowSpec {
    WorkflowSpec::from_json_str(
        &json!({
            "workflow_type": "recovery", "execution_mode": "parallel",
            "tasks": [
                {"id": "a", "agent_id": "counter", "task_description": "first"},
                {"id": "b", "agent_id": "sleeper", "task_description": "long"},
                {"id": "c", "agent_id": "counter", "task_description": "after a", "dependencies": ["a"]},
                {"id": "d", "agent_id": "counter", "task_description": "after b", "dependencies": ["b"]}
            ]
        })
        .to_string(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_workflow_reads_back_with_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(
        Journal::open(&dir.path().join("journal.sqlite"))
            .await
            .unwrap(),
    );
    let c =
        Coordinator::new(registry(Arc::new(AtomicU32::new(0)), 10)).with_journal(journal.clone());
    let r = c.run(spec(), CancelToken::never()).await.unwrap();
    assert!(r.success);
    let rec = journal.get(r.workflow_id).await.unwrap().unwrap();
    assert_eq!(rec.state, WorkflowState::Completed);
    assert_eq!(rec.results.len(), 4);
    assert_eq!(rec.result.unwrap(), r);
    let states: Vec<_> = rec.history.iter().map(|h| h.state).collect();
    assert_eq!(states, [WorkflowState::Running, WorkflowState::Completed]);
    assert!(journal.unfinished().await.unwrap().is_empty());
    assert!(
        journal
            .get(dsmil_core::WorkflowId::new_random())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_only_unfinished_tasks_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let calls = Arc::new(AtomicU32::new(0));
    let id = {
        let journal = Arc::new(Journal::open(&path).await.unwrap());
        let c = Arc::new(
            Coordinator::new(registry(Arc::clone(&calls), 60_000)).with_journal(journal.clone()),
        );
        let (id, handle) = c.submit(spec()).await.unwrap();
        // Wait until a and c are journaled, while b sleeps.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while journal.get(id).await.unwrap().unwrap().results.len() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "a and c never finished"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The "crash": the run vanishes without writing anything more.
        handle.abort();
        id
    };
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let journal = Arc::new(Journal::open(&path).await.unwrap());
    assert_eq!(
        journal.get(id).await.unwrap().unwrap().state,
        WorkflowState::Running
    );
    let c =
        Arc::new(Coordinator::new(registry(Arc::clone(&calls), 10)).with_journal(journal.clone()));
    let resumed = c.recover().await.unwrap();
    assert_eq!(resumed.len(), 1);
    let (rid, handle) = resumed.into_iter().next().unwrap();
    assert_eq!(rid, id);
    let r = handle.await.unwrap();
    assert!(r.success, "{r:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "a and c were not run again; d was"
    );
    let recovered: Vec<_> = r
        .agent_results
        .iter()
        .filter(|a| a.recovered)
        .map(|a| a.task_id.as_str().to_owned())
        .collect();
    assert_eq!(recovered.len(), 2, "{recovered:?}");
    let rec = journal.get(id).await.unwrap().unwrap();
    let states: Vec<_> = rec.history.iter().map(|h| h.state).collect();
    assert_eq!(
        states,
        [
            WorkflowState::Running,
            WorkflowState::Recovering,
            WorkflowState::Running,
            WorkflowState::Completed
        ]
    );
    assert!(journal.unfinished().await.unwrap().is_empty());
}

/// The SQLite journal keeps every promise of core's journal conformance suite.
#[tokio::test]
async fn the_sqlite_journal_passes_the_journal_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = Journal::open(&path).await.unwrap();
    dsmil_core::conformance::journal::run_all(&journal).await;
    dsmil_core::conformance::journal::survives_reopen(Arc::new(journal), async || {
        Arc::new(Journal::open(&path).await.unwrap()) as Arc<dyn dsmil_core::ports::JournalStore>
    })
    .await;
}
