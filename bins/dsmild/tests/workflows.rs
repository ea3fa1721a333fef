//! `/api/workflows` on the real dsmild with the example agents (real processes), and recovery
//! after the daemon is killed with SIGKILL in the middle of a workflow.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/dsmil-coord/examples")
}

/// The example configuration with absolute agent paths, without automatic responses: a busy
/// machine's CPU-critical alert would pause these non-critical workflows (the responses have
/// tests of their own).
fn config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(examples().join("dsmil.toml")).unwrap();
    let agents = examples().join("agents").canonicalize().unwrap();
    let text = text.replace(
        "crates/dsmil-coord/examples/agents",
        agents.to_str().unwrap(),
    ) + "\n[responses]\nenabled = false\n";
    let path = dir.join("dsmil.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn post_raw(
    daemon: &Daemon,
    path: &str,
    token: &str,
    body: &str,
    content_type: &str,
) -> (u16, Value) {
    let mut resp = agent()
        .post(format!("{}{path}", daemon.base))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", content_type)
        .send(body)
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_json().unwrap())
}

/// Submits `spec` without waiting; its id.
fn start_workflow(daemon: &Daemon, token: &str, spec: &Value) -> String {
    let (status, accepted) = post_raw(
        daemon,
        "/api/workflows?wait=false",
        token,
        &spec.to_string(),
        "application/json",
    );
    assert_eq!(status, 202, "{accepted}");
    accepted["workflow_id"].as_str().unwrap().to_owned()
}

#[test]
fn example_workflows_run_on_real_agents_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = config(dir.path());
    let daemon = Daemon::start(&data, &["--config", cfg.to_str().unwrap()]);
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    let token = token.trim();

    let pipeline =
        std::fs::read_to_string(examples().join("workflows/text-pipeline.toml")).unwrap();
    let (status, r) = post_raw(
        &daemon,
        "/api/workflows",
        token,
        &pipeline,
        "application/toml",
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["metadata"]["output"]["words"], 9);
    assert_eq!(
        r["metadata"]["output"]["text"],
        "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG"
    );

    let fan = std::fs::read_to_string(examples().join("workflows/fan-out.toml")).unwrap();
    let (_, r) = post_raw(&daemon, "/api/workflows", token, &fan, "application/toml");
    assert_eq!(r["success"], true, "{r}");
    let retried = r["agent_results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["task_id"] == "retry")
        .unwrap();
    assert_eq!(retried["metadata"]["attempts"], 2);
    let id = r["workflow_id"].as_str().unwrap().to_owned();
    let (status, rec) = daemon.get(&format!("/api/workflows/{id}"), Some(token));
    assert_eq!(status, 200);
    assert_eq!(rec["state"], "completed");
    assert_eq!(rec["results"].as_array().unwrap().len(), 4);
    assert_eq!(rec["history"][0]["state"], "running");

    let vote = std::fs::read_to_string(examples().join("workflows/vote.toml")).unwrap();
    let (_, r) = post_raw(&daemon, "/api/workflows", token, &vote, "application/toml");
    assert_eq!(r["metadata"]["consensus_value"], 4, "{r}");

    // Bad specs are refused before anything runs, naming the problem.
    let (status, e) = post_raw(
        &daemon,
        "/api/workflows",
        token,
        &fan.replace("\"left\", \"right\"", "\"left\", \"nowhere\""),
        "application/toml",
    );
    assert_eq!(status, 400);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("nowhere"),
        "{e}"
    );
    let (status, e) = post_raw(
        &daemon,
        "/api/workflows",
        token,
        &pipeline.replace("agent_id = \"shout\"", "agent_id = \"ghost\""),
        "application/toml",
    );
    assert_eq!(status, 400);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("ghost"),
        "{e}"
    );
    let (status, _) = daemon.get("/api/workflows/not-a-uuid", Some(token));
    assert_eq!(status, 400);
    let (status, _) = daemon.get(
        &format!("/api/workflows/{}", uuid::Uuid::new_v4()),
        Some(token),
    );
    assert_eq!(status, 404);
    // Cancelled from outside: the long task's process is killed and the workflow ends cancelled.
    let long = json!({"workflow_type": "t", "execution_mode": "parallel", "tasks": [
        {"id": "nap", "agent_id": "sleepy", "task_description": "nap", "input_data": {"seconds": 60}}]});
    let (status, accepted) = post_raw(
        &daemon,
        "/api/workflows?wait=false",
        token,
        &long.to_string(),
        "application/json",
    );
    assert_eq!(status, 202);
    let wid = accepted["workflow_id"].as_str().unwrap().to_owned();
    let (status, _) = daemon.post(&format!("/api/workflows/{wid}/cancel"), token, "");
    assert_eq!(status, 202);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, rec) = daemon.get(&format!("/api/workflows/{wid}"), Some(token));
        if rec["state"] == "cancelled" {
            break;
        }
        assert!(Instant::now() < deadline, "never cancelled: {rec}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = daemon.post(&format!("/api/workflows/{wid}/cancel"), token, "");
    assert_eq!(status, 404, "no longer running");
    let (status, st) = daemon.get("/api/status", Some(token));
    assert_eq!(status, 200);
    // The example's five, and the four built-ins it does not declare.
    assert_eq!(st["agents"].as_array().unwrap().len(), 9);
    assert_eq!(st["agents"][0]["breaker"], "closed");
    let (exit, _) = daemon.stop(Signal::SIGTERM);
    assert!(exit.success());
}

#[test]
fn a_workflow_interrupted_by_sigkill_resumes_without_rerunning_finished_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = config(dir.path());
    let log = dir.path().join("ran.log");
    let spec = json!({
        "workflow_type": "recovery", "execution_mode": "parallel",
        "tasks": [
            {"id": "quick", "agent_id": "sleepy", "task_description": "quick",
             "input_data": {"seconds": 0, "log": log}},
            {"id": "slow", "agent_id": "sleepy", "task_description": "slow",
             "input_data": {"seconds": 3, "log": log}},
            {"id": "after", "agent_id": "sleepy", "task_description": "after both",
             "input_data": {"seconds": 0, "log": log}, "dependencies": ["quick", "slow"]}
        ]
    });
    let mut daemon = Daemon::start(&data, &["--config", cfg.to_str().unwrap()]);
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    let token = token.trim().to_owned();
    let id = start_workflow(&daemon, &token, &spec);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, rec) = daemon.get(&format!("/api/workflows/{id}"), Some(&token));
        if rec["results"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the quick task never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Kill -9 while `slow` is still sleeping.
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();

    let daemon = Daemon::start(&data, &["--config", cfg.to_str().unwrap()]);
    let deadline = Instant::now() + PATIENCE;
    let rec = loop {
        let (_, rec) = daemon.get(&format!("/api/workflows/{id}"), Some(&token));
        if rec["state"] == "completed" || rec["state"] == "failed" {
            break rec;
        }
        assert!(
            Instant::now() < deadline,
            "the workflow never finished: {rec}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(rec["state"], "completed", "{rec}");
    let states: Vec<&str> = rec["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect();
    assert!(states.contains(&"recovering"), "{states:?}");
    let ran = std::fs::read_to_string(&log).unwrap();
    let count = |t: &str| ran.lines().filter(|l| *l == t).count();
    assert_eq!(
        count("quick"),
        1,
        "a finished task is not run again:\n{ran}"
    );
    assert_eq!(count("slow"), 2, "the interrupted task runs again:\n{ran}");
    assert_eq!(count("after"), 1);
    let (exit, _) = daemon.stop(Signal::SIGTERM);
    assert!(exit.success());
}

/// Task outcomes reach the learning store exactly once however the daemon dies: the journal
/// is written first, the record id is derived from the workflow and task, and a resumed
/// workflow sends the records of the tasks it keeps again (the store drops what it has). The
/// daemon is killed with SIGKILL at varying points of a workflow of many short tasks, where most
/// of the time goes into the journal and store writes, then let finish.
#[test]
fn kills_between_journal_and_store_leave_one_learning_record_per_task() {
    const TASKS: usize = 120;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("dsmil.toml");
    std::fs::write(
        &cfg,
        "[responses]\nenabled = false\n\n[[agents]]\nid = \"echo\"\nkind = \"builtin\"\n",
    )
    .unwrap();
    let tasks: Vec<Value> = (0..TASKS)
        .map(|i| json!({"id": format!("t{i}"), "agent_id": "echo", "task_description": format!("step {i} of the crash test")}))
        .collect();
    let spec = json!({"workflow_type": "crash", "execution_mode": "sequential", "tasks": tasks});
    let mut daemon = Daemon::start(&data, &["--config", cfg.to_str().unwrap()]);
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    let token = token.trim().to_owned();
    let id = start_workflow(&daemon, &token, &spec);
    let done = |daemon: &Daemon| {
        let (_, rec) = daemon.get(&format!("/api/workflows/{id}"), Some(&token));
        rec["state"] == "completed"
    };
    // Kill it a few times while it runs, at different points of the task loop.
    for delay_ms in [40u64, 90, 15, 130, 60] {
        std::thread::sleep(Duration::from_millis(delay_ms));
        if done(&daemon) {
            break;
        }
        daemon.child.kill().unwrap();
        daemon.child.wait().unwrap();
        daemon = Daemon::start(&data, &["--config", cfg.to_str().unwrap()]);
    }
    let deadline = Instant::now() + PATIENCE;
    while !done(&daemon) {
        assert!(Instant::now() < deadline, "the workflow never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, rec) = daemon.get(&format!("/api/workflows/{id}"), Some(&token));
    let kept = rec["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["success"] == true)
        .count();
    assert!(kept >= TASKS, "{rec}");
    // Every task's record, once (the store may still be taking the last ones).
    let records = |daemon: &Daemon| {
        let (_, insights) = daemon.get("/api/learn/insights", Some(&token));
        insights["total_records"].as_u64().unwrap()
    };
    let deadline = Instant::now() + PATIENCE;
    while records(&daemon) < TASKS as u64 {
        assert!(
            Instant::now() < deadline,
            "records missing: {}",
            records(&daemon)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        records(&daemon),
        TASKS as u64,
        "a task's outcome was recorded twice"
    );
    let (exit, _) = daemon.stop(Signal::SIGTERM);
    assert!(exit.success());
}

/// `shutdown_grace_seconds` acts: on SIGTERM a workflow that finishes within the grace period
/// completes before the daemon exits; one that does not is left to the journal and resumes at
/// the next start.
#[test]
fn sigterm_lets_running_workflows_finish_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let run = |grace: u64, sleep_ms: u64| -> (Value, Value) {
        let data = dir.path().join(format!("data-{grace}"));
        let cfg = dir.path().join(format!("dsmil-{grace}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "shutdown_grace_seconds = {grace}\n[responses]\nenabled = false\n\n\
                 [[agents]]\nid = \"sleep\"\nkind = \"builtin\"\n"
            ),
        )
        .unwrap();
        let daemon = Daemon::start(&data, &["--config", cfg.to_str().unwrap()]);
        let token = std::fs::read_to_string(data.join("api-token")).unwrap();
        let token = token.trim().to_owned();
        let spec = json!({"workflow_type": "grace", "execution_mode": "sequential",
            "tasks": [{"id": "nap", "agent_id": "sleep", "task_description": "nap",
                       "input_data": {"ms": sleep_ms}, "timeout_seconds": 60}]});
        let id = start_workflow(&daemon, &token, &spec);
        std::thread::sleep(Duration::from_millis(200));
        let (exit, stderr) = daemon.stop(Signal::SIGTERM);
        assert!(exit.success(), "{stderr}");
        // Read what the journal kept, on a fresh start.
        let daemon = Daemon::start(&data, &["--config", cfg.to_str().unwrap()]);
        let first = daemon.get(&format!("/api/workflows/{id}"), Some(&token)).1;
        let deadline = Instant::now() + PATIENCE;
        let last = loop {
            let (_, rec) = daemon.get(&format!("/api/workflows/{id}"), Some(&token));
            if rec["state"] == "completed" || rec["state"] == "failed" {
                break rec;
            }
            assert!(Instant::now() < deadline, "never finished: {rec}");
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = daemon.stop(Signal::SIGTERM);
        (first, last)
    };
    // Within the grace: finished before the first daemon exited, nothing to resume.
    let (first, last) = run(10, 1500);
    assert_eq!(first["state"], "completed", "{first}");
    assert!(
        !last["history"].to_string().contains("recovering"),
        "{last}"
    );
    // Past the grace: left running in the journal, resumed and completed by the next start.
    let (first, last) = run(0, 3000);
    assert_ne!(first["state"], "completed", "{first}");
    assert_eq!(last["state"], "completed", "{last}");
    assert!(last["history"].to_string().contains("recovering"), "{last}");
}
