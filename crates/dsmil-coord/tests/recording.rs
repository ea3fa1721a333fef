//! Performance records: journaled before they are sent, sent without holding up the workflow,
//! identified deterministically so that a crash between journal and sink neither loses nor
//! duplicates one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dsmil_coord::agent::{AgentError, AgentOutput};
use dsmil_coord::agents::BuiltinAgent;
use dsmil_coord::journal::Journal;
use dsmil_coord::registry::{AgentRegistry, AgentSettings};
use dsmil_coord::workflow::{CancelToken, Coordinator, record_id};
use dsmil_core::learning::AgentPerformance;
use dsmil_core::ports::{MemoryPerformanceSink, PerformanceSink, PortError};
use dsmil_core::workflow::{WorkflowSpec, WorkflowState};
use dsmil_core::{AgentId, TaskId, WorkflowId};
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

fn id(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}

/// `counter` counts its calls; `flaky` fails every first attempt (a retry succeeds); `sleep`
/// waits `input_data.ms`.
fn registry(calls: Arc<AtomicU32>) -> Arc<AgentRegistry> {
    let mut reg = AgentRegistry::new();
    let counted = Arc::clone(&calls);
    let counter = BuiltinAgent::new(id("counter"), move |input| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            Ok(AgentOutput {
                result: json!({"task": input.task_id}),
                ..Default::default()
            })
        }
    });
    let flaky = BuiltinAgent::new(id("flaky"), move |input| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if input.attempt == 1 {
                Err(AgentError::Reported {
                    message: "first attempts fail".into(),
                    terminal: false,
                })
            } else {
                Ok(AgentOutput::default())
            }
        }
    });
    let quick_retries = AgentSettings {
        retry: dsmil_coord::config::RetryConfig {
            base_delay_ms: 1,
            max_delay_ms: 1,
            ..Default::default()
        },
        ..AgentSettings::default()
    };
    reg.register(Arc::new(counter), AgentSettings::default(), None)
        .unwrap();
    reg.register(Arc::new(flaky), quick_retries, None).unwrap();
    reg.register(
        Arc::new(BuiltinAgent::named(id("sleep"), "sleep").unwrap()),
        AgentSettings::default(),
        None,
    )
    .unwrap();
    Arc::new(reg)
}

fn spec(mode: &str, tasks: serde_json::Value) -> WorkflowSpec {
    WorkflowSpec::from_json_str(
        &json!({"workflow_type": "recording", "execution_mode": mode, "tasks": tasks}).to_string(),
    )
    .unwrap()
}

/// Three tasks, one of them retried: each has one outcome, so one record.
fn three_tasks() -> WorkflowSpec {
    spec(
        "parallel",
        json!([
            {"id": "a", "agent_id": "counter", "task_description": "task a"},
            {"id": "b", "agent_id": "flaky", "task_description": "task b", "retry_count": 2},
            {"id": "c", "agent_id": "counter", "task_description": "task c", "dependencies": ["a"]}
        ]),
    )
}

/// Takes every record it is given, then never returns: a learning store that hangs (or the
/// process dying while the record is on its way).
#[derive(Default)]
struct HangingSink {
    seen: Mutex<Vec<AgentPerformance>>,
}

#[async_trait]
impl PerformanceSink for HangingSink {
    async fn record(&self, record: AgentPerformance) -> Result<(), PortError> {
        self.seen.lock().unwrap().push(record);
        std::future::pending().await
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_crash_between_journal_and_sink_loses_no_record_and_duplicates_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let calls = Arc::new(AtomicU32::new(0));
    let hanging = Arc::new(HangingSink::default());

    // First life: every result is journaled, the sink takes the first record and hangs.
    let first = runtime();
    let workflow: WorkflowId = first.block_on(async {
        let journal = Arc::new(Journal::open(&path).await.unwrap());
        let c = Arc::new(
            Coordinator::new(registry(Arc::clone(&calls)))
                .with_journal(journal.clone())
                .with_sink(hanging.clone()),
        );
        let (id, handle) = c.submit(three_tasks()).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while journal.get(id).await.unwrap().unwrap().results.len() < 3
            || hanging.seen.lock().unwrap().is_empty()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the tasks never finished"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            !handle.is_finished(),
            "the workflow waits for its records to reach the sink"
        );
        id
    });
    // The crash: the runtime goes with the workflow, the recorder and its queued records.
    drop(first);
    let calls_before = calls.load(Ordering::SeqCst);
    assert_eq!(calls_before, 4, "a, c, and b's two attempts");
    let sent_before: Vec<AgentPerformance> = hanging.seen.lock().unwrap().clone();
    assert_eq!(
        sent_before.len(),
        1,
        "the recorder sends one record at a time"
    );

    // Second life: the journal shows the workflow running; recovery keeps every task.
    let second = runtime();
    let recorded = Arc::new(MemoryPerformanceSink::new());
    second.block_on(async {
        let journal = Arc::new(Journal::open(&path).await.unwrap());
        assert_eq!(
            journal.get(workflow).await.unwrap().unwrap().state,
            WorkflowState::Running,
            "the end was not journaled: the records had not all reached the sink"
        );
        let c = Arc::new(
            Coordinator::new(registry(Arc::clone(&calls)))
                .with_journal(journal.clone())
                .with_sink(recorded.clone()),
        );
        let resumed = c.recover().await.unwrap();
        assert_eq!(resumed.len(), 1);
        let r = resumed.into_iter().next().unwrap().1.await.unwrap();
        assert!(r.success, "{r:?}");
        assert!(r.agent_results.iter().all(|a| a.recovered));
        assert_eq!(
            journal.get(workflow).await.unwrap().unwrap().state,
            WorkflowState::Completed
        );
    });
    assert_eq!(
        calls.load(Ordering::SeqCst),
        calls_before,
        "no task ran again"
    );

    // Every task has exactly one record id, its first run's, whichever life sent it.
    let expected: BTreeMap<String, Uuid> = ["a", "b", "c"]
        .into_iter()
        .map(|t| {
            (
                format!("task {t}"),
                record_id(workflow, &TaskId::new(t).unwrap(), 0),
            )
        })
        .collect();
    let mut ids: BTreeMap<String, BTreeSet<Uuid>> = BTreeMap::new();
    for r in sent_before.iter().chain(recorded.records().iter()) {
        ids.entry(r.task_description.clone())
            .or_default()
            .insert(r.record_id.unwrap());
    }
    for (task, want) in &expected {
        assert_eq!(ids.get(task), Some(&BTreeSet::from([*want])), "{task}");
    }
    // The first life's record is the one sent again, not a second one.
    let first_id = sent_before[0].record_id.unwrap();
    assert_eq!(
        Some(&first_id),
        expected.get(&sent_before[0].task_description)
    );
    // The resumed workflow sent the records of every task it kept.
    let again: BTreeSet<String> = recorded
        .records()
        .iter()
        .map(|r| r.task_description.clone())
        .collect();
    assert_eq!(again, expected.keys().cloned().collect());
    assert_eq!(recorded.records().len(), 3, "once each");
    let b = recorded
        .records()
        .into_iter()
        .find(|r| r.task_description == "task b")
        .unwrap();
    assert_eq!(
        b.context_factors["attempts"], 2,
        "the retries are inside one record"
    );
    assert_eq!(b.success_rate, 1.0);
}

/// Sleeps `delay` before it stores each record.
struct SlowSink {
    delay: Duration,
    records: MemoryPerformanceSink,
}

#[async_trait]
impl PerformanceSink for SlowSink {
    async fn record(&self, record: AgentPerformance) -> Result<(), PortError> {
        tokio::time::sleep(self.delay).await;
        self.records.record(record).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_sink_is_not_coordination_overhead() {
    const SINK_DELAY: Duration = Duration::from_millis(500);
    let sink = Arc::new(SlowSink {
        delay: SINK_DELAY,
        records: MemoryPerformanceSink::new(),
    });
    let c = Coordinator::new(registry(Arc::new(AtomicU32::new(0)))).with_sink(sink.clone());
    let started = Instant::now();
    let r = c
        .run(
            spec(
                "sequential",
                json!([
                    {"id": "x", "agent_id": "sleep", "task_description": "nap x", "input_data": {"ms": 100}},
                    {"id": "y", "agent_id": "sleep", "task_description": "nap y", "input_data": {"ms": 100}},
                    {"id": "z", "agent_id": "sleep", "task_description": "nap z", "input_data": {"ms": 100}}
                ]),
            ),
            CancelToken::never(),
        )
        .await
        .unwrap();
    assert!(r.success);
    assert!(
        Duration::from_millis(r.coordination_overhead_ms) < SINK_DELAY,
        "overhead {} ms counts the sink",
        r.coordination_overhead_ms
    );
    assert_eq!(
        r.total_execution_time_ms, r.metadata["critical_path_ms"],
        "the workflow's time is its agents' time"
    );
    assert_eq!(
        sink.records.records().len(),
        3,
        "the result comes once the records reached the sink"
    );
    assert!(
        started.elapsed() >= SINK_DELAY * 3,
        "it waited for the sink"
    );
}

/// Notes, for every record it gets, whether the task's result was journaled by then.
struct JournalCheckingSink {
    journal: Arc<Journal>,
    /// Task description → task id.
    tasks: BTreeMap<String, String>,
    seen: Mutex<Vec<(String, bool)>>,
}

#[async_trait]
impl PerformanceSink for JournalCheckingSink {
    async fn record(&self, record: AgentPerformance) -> Result<(), PortError> {
        let workflow: WorkflowId = record.context_factors["workflow_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let task = &self.tasks[&record.task_description];
        let journaled = self
            .journal
            .get(workflow)
            .await
            .unwrap()
            .unwrap()
            .results
            .iter()
            .any(|r| r.task_id.as_str() == task);
        self.seen.lock().unwrap().push((task.clone(), journaled));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_is_journaled_before_its_record_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(
        Journal::open(&dir.path().join("journal.sqlite"))
            .await
            .unwrap(),
    );
    let sink = Arc::new(JournalCheckingSink {
        journal: Arc::clone(&journal),
        tasks: ["a", "b", "c"]
            .into_iter()
            .map(|t| (format!("task {t}"), t.to_owned()))
            .collect(),
        seen: Mutex::new(Vec::new()),
    });
    let c = Coordinator::new(registry(Arc::new(AtomicU32::new(0))))
        .with_journal(journal.clone())
        .with_sink(sink.clone());
    let r = c.run(three_tasks(), CancelToken::never()).await.unwrap();
    assert!(r.success);
    let mut seen = sink.seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("a".to_owned(), true),
            ("b".to_owned(), true),
            ("c".to_owned(), true)
        ]
    );
    for a in &r.agent_results {
        assert!(!a.recovered);
    }
}
