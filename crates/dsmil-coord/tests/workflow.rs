//! Every execution mode under paused time, with failures, timeouts and cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dsmil_coord::agent::AgentOutput;
use dsmil_coord::agents::BuiltinAgent;
use dsmil_coord::registry::{AgentRegistry, AgentSettings};
use dsmil_coord::workflow::{CancelToken, Coordinator, WorkflowError, cancel_pair};
use dsmil_core::ports::{DefaultAgentAdvisor, MemoryPerformanceSink};
use dsmil_core::workflow::{WorkflowResult, WorkflowSpec, WorkflowState};
use dsmil_core::{AgentId, EventBus};
use serde_json::{Value, json};
use tokio::time::Instant;

fn id(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}

fn registry() -> Arc<AgentRegistry> {
    let mut reg = AgentRegistry::new();
    for name in ["echo", "sleep", "fail", "score"] {
        reg.register(
            Arc::new(BuiltinAgent::named(id(name), name).unwrap()),
            AgentSettings {
                max_concurrency: 16,
                ..Default::default()
            },
            None,
        )
        .unwrap();
    }
    let double = BuiltinAgent::new(id("double"), |input| async move {
        let n = input.input_data["n"].as_i64().unwrap_or(0);
        Ok(AgentOutput {
            result: json!({"n": n * 2}),
            ..Default::default()
        })
    });
    reg.register(Arc::new(double), AgentSettings::default(), None)
        .unwrap();
    // Slow the first time it is called, instant afterwards: what hedging is for.
    let calls = Arc::new(AtomicU32::new(0));
    let straggler = BuiltinAgent::new(id("straggler"), move |_| {
        let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok(AgentOutput {
                result: json!({"first": first}),
                ..Default::default()
            })
        }
    });
    reg.register(
        Arc::new(straggler),
        AgentSettings {
            max_concurrency: 8,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    Arc::new(reg)
}

fn task(tid: &str, agent: &str, input: Value, deps: &[&str]) -> Value {
    json!({"id": tid, "agent_id": agent, "task_description": format!("task {tid}"), "input_data": input,
           "retry_count": 0, "timeout_seconds": 120, "dependencies": deps})
}

fn spec(mode: &str, tasks: Vec<Value>, extra: Value) -> WorkflowSpec {
    let mut s = json!({"workflow_type": "test", "execution_mode": mode, "tasks": tasks});
    if let (Value::Object(m), Value::Object(e)) = (&mut s, extra) {
        m.extend(e);
    }
    WorkflowSpec::from_json_str(&s.to_string()).unwrap()
}

async fn run(spec: WorkflowSpec) -> WorkflowResult {
    Coordinator::new(registry())
        .run(spec, CancelToken::never())
        .await
        .unwrap()
}

fn ids(r: &WorkflowResult) -> Vec<String> {
    r.agent_results
        .iter()
        .map(|a| a.task_id.as_str().to_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn sequential_stops_at_the_first_failure_unless_told_to_continue() {
    let tasks = || {
        vec![
            task("a", "echo", json!(1), &[]),
            task("b", "fail", json!({}), &["a"]),
            task("c", "echo", json!(3), &[]),
            task("d", "echo", json!(4), &["b"]),
        ]
    };
    let r = run(spec("sequential", tasks(), json!({}))).await;
    assert!(!r.success);
    assert_eq!(r.state, WorkflowState::Failed);
    assert_eq!(ids(&r), ["a", "b"]);
    assert_eq!(r.metadata["stopped_at"], "b");
    let r = run(spec(
        "sequential",
        tasks(),
        json!({"continue_on_failure": true}),
    ))
    .await;
    assert_eq!(ids(&r), ["a", "b", "c", "d"]);
    assert_eq!(
        r.agent_results[3].error_message.as_deref(),
        Some("skipped: dependency b failed")
    );
    assert!(r.agent_results[2].success);
}

#[tokio::test(start_paused = true)]
async fn parallel_starts_each_task_when_its_own_dependencies_are_done() {
    let started = Instant::now();
    let r = run(spec(
        "parallel",
        vec![
            task("slow", "sleep", json!({"ms": 1000}), &[]),
            task("fast1", "sleep", json!({"ms": 100}), &[]),
            task("fast2", "sleep", json!({"ms": 100}), &["fast1"]),
            task("broken", "fail", json!({}), &[]),
            task("after-broken", "echo", json!(1), &["broken"]),
            task("further", "echo", json!(1), &["after-broken"]),
        ],
        json!({}),
    ))
    .await;
    assert!(!r.success);
    assert_eq!(started.elapsed(), Duration::from_millis(1000));
    let order = ids(&r);
    let pos = |t: &str| order.iter().position(|x| x == t).unwrap();
    assert!(
        pos("fast2") < pos("slow"),
        "a slow branch does not hold back an independent one: {order:?}"
    );
    let skipped: Vec<_> = r
        .agent_results
        .iter()
        .filter(|a| a.outcome == dsmil_core::TaskOutcome::Skipped)
        .map(|a| a.task_id.as_str())
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(r.metadata["critical_path_ms"], 1000);
    assert_eq!(r.coordination_overhead_ms, 0);
}

#[tokio::test(start_paused = true)]
async fn pipeline_feeds_each_result_to_the_next_task() {
    let r = run(spec(
        "pipeline",
        vec![
            task("x", "double", json!({"n": 1}), &[]),
            task("y", "double", json!(null), &[]),
            task("z", "double", json!(null), &[]),
        ],
        json!({}),
    ))
    .await;
    assert!(r.success);
    assert_eq!(r.metadata["output"], json!({"n": 8}));
    let r = run(spec(
        "pipeline",
        vec![
            task("x", "double", json!({"n": 1}), &[]),
            task("y", "fail", json!(null), &[]),
            task("z", "double", json!(null), &[]),
        ],
        json!({}),
    ))
    .await;
    assert!(!r.success);
    assert_eq!(ids(&r), ["x", "y"]);
}

#[tokio::test(start_paused = true)]
async fn consensus_needs_a_quorum_of_equal_results() {
    let voters = || {
        vec![
            task("v1", "echo", json!({"answer": 42, "by": 1}), &[]),
            task("v2", "echo", json!({"answer": 42, "by": 2}), &[]),
            task("v3", "echo", json!({"answer": 7, "by": 3}), &[]),
        ]
    };
    let r = run(spec(
        "consensus",
        voters(),
        json!({"consensus_field": "answer"}),
    ))
    .await;
    assert!(r.success, "{:?}", r.metadata);
    assert_eq!(r.metadata["consensus_value"], 42);
    let r = run(spec(
        "consensus",
        voters(),
        json!({"quorum": 3, "consensus_field": "answer"}),
    ))
    .await;
    assert!(!r.success);
    assert_eq!(r.metadata["votes"][0]["count"], 2);
    assert_eq!(r.metadata["votes"][1]["value"], 7);
    // Results without the compared field cast no vote.
    let r = run(spec(
        "consensus",
        vec![
            task("v1", "echo", json!({"other": 1}), &[]),
            task("v2", "echo", json!({"other": 2}), &[]),
            task("v3", "echo", json!({"answer": 7}), &[]),
        ],
        json!({"consensus_field": "answer", "quorum": 2}),
    ))
    .await;
    assert!(
        !r.success,
        "two missing fields are not an agreement: {:?}",
        r.metadata
    );
    // Whole results differ (the `by` field): no two agree.
    let r = run(spec("consensus", voters(), json!({}))).await;
    assert!(!r.success);
}

#[tokio::test(start_paused = true)]
async fn competitive_takes_the_fastest_or_the_best_score() {
    let started = Instant::now();
    let r = run(spec(
        "competitive",
        vec![
            task("tortoise", "sleep", json!({"ms": 5000}), &[]),
            task("hare", "sleep", json!({"ms": 100}), &[]),
        ],
        json!({}),
    ))
    .await;
    assert!(r.success);
    assert_eq!(r.metadata["winner"], "hare");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(100),
        "the loser was cancelled"
    );
    let r = run(spec(
        "competitive",
        vec![
            task("a", "score", json!({"score": 3}), &[]),
            task("b", "score", json!({"score": 7.5}), &[]),
            task("c", "score", json!({"score": 5}), &[]),
            task("d", "fail", json!({}), &[]),
        ],
        json!({"comparator": "highest_score"}),
    ))
    .await;
    assert!(r.success);
    assert_eq!(r.metadata["winner"], "b");
    assert_eq!(r.metadata["score"], 7.5);
}

#[tokio::test(start_paused = true)]
async fn redundant_hedges_a_straggler() {
    let started = Instant::now();
    let r = run(spec(
        "redundant",
        vec![task("t", "straggler", json!(null), &[])],
        json!({"replicas": 3, "hedge_delay_ms": 50}),
    ))
    .await;
    assert!(r.success);
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(50),
        "the second replica answered at once"
    );
    assert_eq!(
        r.agent_results.len(),
        1,
        "the straggling replica was cancelled"
    );
    assert_eq!(r.agent_results[0].metadata["replica"], 1);
}

#[tokio::test(start_paused = true)]
async fn global_timeout_and_cancellation_stop_everything() {
    let mut s = spec(
        "parallel",
        vec![
            task("long", "sleep", json!({"ms": 60_000}), &[]),
            task("quick", "echo", json!(1), &[]),
        ],
        json!({}),
    );
    s.global_timeout_seconds = 2;
    for t in &mut s.tasks {
        // Each attempt may take the whole 2 s; the long task would retry beyond it.
        t.timeout_seconds = 2;
        t.retry_count = 2;
    }
    let started = Instant::now();
    let r = Coordinator::new(registry())
        .run(s.clone(), CancelToken::never())
        .await
        .unwrap();
    assert_eq!(r.state, WorkflowState::Failed);
    assert!(
        r.metadata["error"]
            .as_str()
            .unwrap()
            .contains("global timeout")
    );
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(ids(&r), ["quick"], "results so far are kept");

    let (handle, token) = cancel_pair();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        handle.cancel();
    });
    let r = Coordinator::new(registry()).run(s, token).await.unwrap();
    assert_eq!(r.state, WorkflowState::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn agents_are_checked_auto_is_resolved_and_outcomes_are_reported() {
    let err = Coordinator::new(registry())
        .run(
            spec(
                "parallel",
                vec![
                    task("a", "echo", json!(1), &[]),
                    task("b", "nobody", json!(1), &[]),
                ],
                json!({}),
            ),
            CancelToken::never(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WorkflowError::UnknownAgent { index: 1, agent, .. } if agent == "nobody"),
        "{err}"
    );
    assert!(
        err.to_string().contains("echo"),
        "names the registered agents: {err}"
    );

    let sink = Arc::new(MemoryPerformanceSink::new());
    let bus = EventBus::new(256);
    let mut events = bus.subscribe();
    let c = Coordinator::new(registry())
        .with_advisor(Arc::new(DefaultAgentAdvisor {
            default_agent: Some(id("echo")),
        }))
        .with_sink(sink.clone())
        .with_bus(bus);
    let r = c
        .run(
            spec(
                "sequential",
                vec![task("a", "auto", json!({"x": 1}), &[])],
                json!({}),
            ),
            CancelToken::never(),
        )
        .await
        .unwrap();
    assert!(r.success);
    assert_eq!(r.agent_results[0].agent_id, id("echo"));
    assert_eq!(r.agent_results[0].result_data, json!({"x": 1}));
    let records = sink.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].agent_id, id("echo"));
    assert_eq!(records[0].success_rate, 1.0);
    let mut details = Vec::new();
    let mut activities = Vec::new();
    while let Ok(Some(p)) = events.try_recv() {
        match &*p.event {
            dsmil_core::Event::Workflow(w) => details.push(w.detail.clone()),
            dsmil_core::Event::AgentActivity(a) => {
                activities.push((a.agent_id.clone(), a.activity_type, a.success))
            }
            _ => {}
        }
    }
    use dsmil_core::monitoring::ActivityType;
    assert_eq!(
        activities,
        vec![
            (id("echo"), ActivityType::TaskStart, false),
            (id("echo"), ActivityType::TaskComplete, true)
        ]
    );
    assert!(
        details.first().unwrap().starts_with("workflow started"),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("task a completed on echo")),
        "{details:?}"
    );
    assert_eq!(details.last().unwrap(), "workflow completed");
}

#[tokio::test(start_paused = true)]
async fn throttle_pauses_non_critical_work_and_an_emergency_stop_cancels_everything() {
    use dsmil_core::ports::{MemoryAuditSink, Throttle};
    let audit = Arc::new(MemoryAuditSink::new());
    let bus = EventBus::new(64);
    let mut events = bus.subscribe();
    let c = Arc::new(
        Coordinator::new(registry())
            .with_audit(audit.clone())
            .with_bus(bus),
    );

    c.pause_non_critical();
    let plain = spec(
        "sequential",
        vec![task("a", "echo", json!(1), &[])],
        json!({}),
    );
    let (_, waiting) = c.submit(plain.clone()).await.unwrap();
    let critical = spec(
        "sequential",
        vec![task("a", "echo", json!(1), &[])],
        json!({"critical": true}),
    );
    let (_, urgent) = c.submit(critical).await.unwrap();
    assert!(
        urgent.await.unwrap().success,
        "critical work runs while paused"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!waiting.is_finished(), "non-critical work waits");
    c.resume_non_critical();
    assert!(waiting.await.unwrap().success);

    c.reduce_agent_concurrency(0.5).unwrap();
    assert_eq!(c.registry().get(&id("echo")).unwrap().bulkhead.limit(), 8);
    assert!(c.reduce_agent_concurrency(0.0).is_err());
    c.reduce_agent_concurrency(1.0).unwrap();

    let long = spec(
        "parallel",
        vec![task("z", "sleep", json!({"ms": 60_000}), &[])],
        json!({}),
    );
    let (_, running) = c.submit(long).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    // A workflow run in place (not submitted) is stopped too.
    let c2 = Arc::clone(&c);
    let long2 = spec(
        "parallel",
        vec![task("z", "sleep", json!({"ms": 60_000}), &[])],
        json!({}),
    );
    let inline = tokio::spawn(async move { c2.run(long2, CancelToken::never()).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(10)).await;
    c.emergency_stop("thermal emergency");
    let r = running.await.unwrap();
    assert_eq!(r.state, WorkflowState::Cancelled);
    assert_eq!(inline.await.unwrap().state, WorkflowState::Cancelled);
    let err = c.submit(plain.clone()).await.unwrap_err();
    assert!(matches!(err, WorkflowError::Emergency(_)), "{err}");
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(audit.events().len(), 1);
    let mut security = false;
    while let Ok(Some(p)) = events.try_recv() {
        security |=
            matches!(&*p.event, dsmil_core::Event::Security(s) if s.event_type == "emergency_stop");
    }
    assert!(security);
    c.clear_emergency();
    assert!(c.submit(plain).await.unwrap().1.await.unwrap().success);
}
