//! Coordination overhead (`cargo xtask bench coord`): 10,000 no-op built-in tasks in one
//! workflow per execution mode, beside the same agent calls made with raw `tokio::spawn` + join
//! in the same run; the journal's cost; and a command agent's spawn cost beside a bare
//! `std::process::Command`.
//!
//! Prints a table; with `DSMIL_BENCH_ROWS_DIR` set (by `cargo xtask bench`) writes the rows.
//! `DSMIL_BENCH_QUICK=1` runs fewer repetitions.

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dsmil_coord::agent::{Agent, TaskInput};
use dsmil_coord::agents::{BuiltinAgent, CommandAgent};
use dsmil_coord::journal::Journal;
use dsmil_coord::registry::{AgentRegistry, AgentSettings};
use dsmil_coord::workflow::{CancelToken, Coordinator};
use dsmil_core::workflow::WorkflowSpec;
use dsmil_core::{AgentId, TaskId};
use serde_json::{Value, json};

const TASKS: usize = 10_000;

fn spec(mode: &str, agent: &str, tasks: usize, extra: Value) -> WorkflowSpec {
    let tasks: Vec<Value> = (0..tasks)
        .map(|i| {
            json!({"id": format!("t{i}"), "agent_id": agent, "task_description": "nothing",
                        "input_data": {"score": 1}, "retry_count": 0})
        })
        .collect();
    let mut s = json!({"workflow_type": "bench", "execution_mode": mode, "tasks": tasks});
    if let (Value::Object(m), Value::Object(e)) = (&mut s, extra) {
        m.extend(e);
    }
    WorkflowSpec::from_json_str(&s.to_string()).unwrap()
}

fn registry() -> Arc<AgentRegistry> {
    let mut reg = AgentRegistry::new();
    let settings = AgentSettings {
        max_concurrency: 1024,
        ..Default::default()
    };
    for name in ["noop", "score"] {
        reg.register(
            Arc::new(BuiltinAgent::named(AgentId::new(name).unwrap(), name).unwrap()),
            settings.clone(),
            None,
        )
        .unwrap();
    }
    Arc::new(reg)
}

fn best_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

struct Rows(Vec<Value>);

impl Rows {
    fn add(&mut self, group: &str, case: &str, implementation: &str, unit: &str, value: f64) {
        println!("{group:<24} {case:<14} {implementation:<22} {value:>12.3} {unit}");
        self.0.push(json!({"group": group, "case": case, "impl": implementation, "unit": unit, "value": value}));
    }
}

fn main() {
    let quick = std::env::var("DSMIL_BENCH_QUICK").is_ok_and(|v| v == "1");
    let runs = if quick { 2 } else { 5 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Rows(Vec::new());
    let per_task = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / n as f64;

    // Reference: the same agent calls with raw tokio, no coordination.
    let noop = Arc::new(BuiltinAgent::named(AgentId::new("noop").unwrap(), "noop").unwrap());
    let raw = best_of(runs, || {
        rt.block_on(async {
            let start = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for i in 0..TASKS {
                let agent = Arc::clone(&noop);
                set.spawn(async move {
                    let input = TaskInput {
                        task_id: TaskId::new(format!("t{i}")).unwrap(),
                        task_description: "nothing".into(),
                        input_data: json!({"score": 1}),
                        attempt: 1,
                        timeout_ms: 30_000,
                    };
                    agent.run(&input).await
                });
            }
            while set.join_next().await.is_some() {}
            start.elapsed()
        })
    });
    let modes: [(&str, &str, Value); 6] = [
        ("sequential", "noop", json!({})),
        ("parallel", "noop", json!({})),
        ("pipeline", "noop", json!({})),
        ("consensus", "noop", json!({})),
        (
            "competitive",
            "score",
            json!({"comparator": "highest_score"}),
        ),
        ("redundant", "noop", json!({"replicas": 1})),
    ];
    for (mode, agent, extra) in modes {
        let s = spec(mode, agent, TASKS, extra);
        let coordinator = Coordinator::new(registry());
        let took = best_of(runs, || {
            rt.block_on(async {
                let start = Instant::now();
                let r = coordinator
                    .run(s.clone(), CancelToken::never())
                    .await
                    .unwrap();
                assert!(r.success, "{mode}: {:?}", r.metadata);
                start.elapsed()
            })
        });
        rows.add(
            "coord_overhead_10k",
            mode,
            "dsmil-coordinator",
            "µs",
            per_task(took, TASKS),
        );
        rows.add(
            "coord_overhead_10k",
            mode,
            "tokio-spawn-join",
            "µs",
            per_task(raw, TASKS),
        );
        rows.add(
            "coord_throughput_10k",
            mode,
            "dsmil-coordinator",
            "tasks/s",
            TASKS as f64 / took.as_secs_f64(),
        );
        rows.add(
            "coord_throughput_10k",
            mode,
            "tokio-spawn-join",
            "tasks/s",
            TASKS as f64 / raw.as_secs_f64(),
        );
    }

    // Hundreds of agents: 10,000 parallel tasks spread over 500 agents; and the status listing.
    let many = {
        let mut reg = AgentRegistry::new();
        for a in 0..500 {
            let id = AgentId::new(format!("agent-{a}")).unwrap();
            reg.register(
                Arc::new(BuiltinAgent::named(id, "noop").unwrap()),
                AgentSettings::default(),
                None,
            )
            .unwrap();
        }
        Arc::new(reg)
    };
    let tasks: Vec<Value> = (0..TASKS)
        .map(|i| json!({"id": format!("t{i}"), "agent_id": format!("agent-{}", i % 500), "task_description": "nothing", "retry_count": 0}))
        .collect();
    let spread = WorkflowSpec::from_json_str(
        &json!({"workflow_type": "bench", "execution_mode": "parallel", "tasks": tasks})
            .to_string(),
    )
    .unwrap();
    let coordinator = Coordinator::new(Arc::clone(&many));
    let took = best_of(runs, || {
        rt.block_on(async {
            let start = Instant::now();
            assert!(
                coordinator
                    .run(spread.clone(), CancelToken::never())
                    .await
                    .unwrap()
                    .success
            );
            start.elapsed()
        })
    });
    rows.add(
        "coord_overhead_10k",
        "parallel, 500 agents",
        "dsmil-coordinator",
        "µs",
        per_task(took, TASKS),
    );
    rows.add(
        "coord_overhead_10k",
        "parallel, 500 agents",
        "tokio-spawn-join",
        "µs",
        per_task(raw, TASKS),
    );
    let listing = best_of(runs, || {
        let start = Instant::now();
        assert_eq!(many.info().len(), 500);
        start.elapsed()
    });
    rows.add(
        "coord_registry_500",
        "status listing",
        "dsmil-registry",
        "µs",
        listing.as_secs_f64() * 1e6,
    );

    // The journal: every task result committed to SQLite (fsync) before it is acknowledged.
    let dir = tempfile::tempdir().unwrap();
    let journaled_tasks = if quick { 200 } else { 1000 };
    let took = rt.block_on(async {
        let journal = Arc::new(
            Journal::open(&dir.path().join("journal.sqlite"))
                .await
                .unwrap(),
        );
        let c = Coordinator::new(registry()).with_journal(journal);
        let s = spec("parallel", "noop", journaled_tasks, json!({}));
        let start = Instant::now();
        assert!(c.run(s, CancelToken::never()).await.unwrap().success);
        start.elapsed()
    });
    rows.add(
        "coord_journaled",
        "parallel",
        "dsmil-coordinator",
        "µs",
        per_task(took, journaled_tasks),
    );

    // Command agents: spawn, pipe, wait — beside a bare process spawn of the same program.
    let spawns = if quick { 50 } else { 200 };
    let agent = CommandAgent::new(
        AgentId::new("echo").unwrap(),
        "/bin/echo",
        vec!["{}".into()],
    );
    let input = TaskInput {
        task_id: TaskId::new("t").unwrap(),
        task_description: "spawn".into(),
        input_data: Value::Null,
        attempt: 1,
        timeout_ms: 10_000,
    };
    let ours = rt.block_on(async {
        let start = Instant::now();
        for _ in 0..spawns {
            agent.run(&input).await.unwrap();
        }
        start.elapsed()
    });
    let start = Instant::now();
    for _ in 0..spawns {
        std::process::Command::new("/bin/echo")
            .arg("{}")
            .output()
            .unwrap();
    }
    let bare = start.elapsed();
    rows.add(
        "coord_command_spawn",
        "/bin/echo",
        "dsmil-command-agent",
        "µs",
        per_task(ours, spawns),
    );
    rows.add(
        "coord_command_spawn",
        "/bin/echo",
        "std-process-output",
        "µs",
        per_task(bare, spawns),
    );

    if let Ok(dir) = std::env::var("DSMIL_BENCH_ROWS_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            std::path::Path::new(&dir).join("coord_overhead.json"),
            serde_json::to_string_pretty(&rows.0).unwrap(),
        )
        .unwrap();
    }
}
