//! dsmild as nodes of a cluster: three daemons (real processes) on the JetStream cluster that
//! `cargo xtask services up` started, each under a fresh cluster prefix. A workflow submitted
//! on one node runs its tasks on the nodes hosting their agents; tasks of an agent hosted twice
//! spread over both; a node SIGKILLed in the middle of a task has the task delivered to the
//! other host, and no task that had finished runs again; a wrong token and a second live node
//! with the same id are refused at start, naming the setting.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dsmil_core::testenv::{NATS_TOKEN_FILE_VAR, NATS_URLS_VAR, service_from_env};
use serde_json::{Value, json};

use crate::common::{Daemon, PATIENCE, dsmild};

/// The shared cluster's URLs and token file; `None` (the test skips) when there is none.
fn nats() -> Option<(Vec<String>, PathBuf)> {
    let urls = service_from_env(NATS_URLS_VAR).unwrap_or_else(|e| panic!("{e}"))?;
    let token = service_from_env(NATS_TOKEN_FILE_VAR).unwrap_or_else(|e| panic!("{e}"))?;
    Some((urls.split(',').map(str::to_owned).collect(), token.into()))
}

/// Top-level settings for nodes whose every sample raises a CPU warning (health every 200 ms).
pub(crate) const ALERTING: &str =
    "health_interval_ms = 200\n[alerts]\ncpu_percent = { warning = 0.0, critical = 100.0 }\n";

/// One test's cluster: its prefix and where its nodes keep their files.
pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    urls: Vec<String>,
    token_file: PathBuf,
    prefix: String,
    /// `[cluster] lease_seconds` of its nodes.
    pub(crate) lease_seconds: u64,
    /// Top-level settings of its nodes' configuration.
    pub(crate) prelude: String,
    /// More lines of its nodes' `[cluster]` table.
    pub(crate) cluster_extra: String,
}

/// A running node: the daemon and its API token.
pub(crate) struct Node {
    pub(crate) daemon: Daemon,
    pub(crate) token: String,
}

impl Cluster {
    pub(crate) fn new() -> Option<Self> {
        let (urls, token_file) = nats()?;
        Some(Self::on(urls, token_file))
    }

    /// A cluster of nodes on the NATS servers at `urls` (a test's own).
    pub(crate) fn on(urls: Vec<String>, token_file: PathBuf) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            urls,
            token_file,
            prefix: format!("d{}", &uuid::Uuid::new_v4().simple().to_string()[..10]),
            lease_seconds: 1,
            prelude: String::new(),
            cluster_extra: String::new(),
        }
    }

    /// The configuration of node `id` hosting the `[[agents]]` in `agents`.
    fn config(&self, id: &str, agents: &str, token_file: &Path) -> PathBuf {
        let urls: Vec<String> = self.urls.iter().map(|u| format!("{u:?}")).collect();
        let text = format!(
            "{}[responses]\nenabled = false\n\n{agents}\n[cluster]\nnats = [{}]\nname = \"{}\"\n\
             node_id = \"{id}\"\ntoken_file = {:?}\nlease_seconds = {}\n{}",
            self.prelude,
            urls.join(", "),
            self.prefix,
            token_file.display().to_string(),
            self.lease_seconds,
            self.cluster_extra,
        );
        let path = self.dir.path().join(format!("{id}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    pub(crate) fn node(&self, id: &str, agents: &str) -> Node {
        let config = self.config(id, agents, &self.token_file);
        let data = self.dir.path().join(format!("{id}-data"));
        let daemon = Daemon::start(&data, &["--config", config.to_str().unwrap()]);
        let token = std::fs::read_to_string(data.join("api-token")).unwrap();
        Node {
            daemon,
            token: token.trim().to_owned(),
        }
    }

    /// Starts node `id` expecting it to refuse to start; its exit status and stderr.
    pub(crate) fn refused(
        &self,
        id: &str,
        token_file: &Path,
    ) -> (std::process::ExitStatus, String) {
        let config = self.config(id, "", token_file);
        let data = self.dir.path().join(format!("{id}-refused"));
        let out = dsmild()
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", crate::common::free_port()))
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Node {
    /// Submits `spec` without waiting; the workflow id.
    pub(crate) fn submit(&self, spec: &Value) -> String {
        let (status, accepted) =
            self.daemon
                .post("/api/workflows?wait=false", &self.token, &spec.to_string());
        assert_eq!(status, 202, "{accepted}");
        accepted["workflow_id"].as_str().unwrap().to_owned()
    }

    /// Waits (bounded) until workflow `id` is completed; its record.
    fn completed(&self, id: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (_, record) = self
                .daemon
                .get(&format!("/api/workflows/{id}"), Some(&self.token));
            match record["state"].as_str() {
                Some("completed") => return record,
                Some("failed" | "cancelled") => panic!("workflow {id} did not complete: {record}"),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "workflow {id} never finished: {record}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) until workflow `id` reads as `state` through this node; its record.
    pub(crate) fn until_state(&self, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (_, record) = self
                .daemon
                .get(&format!("/api/workflows/{id}"), Some(&self.token));
            if record["state"] == state {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never became {state}: {record}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) until this node sees every agent of `agents` hosted in the cluster:
    /// a workflow naming one is accepted once it does.
    pub(crate) fn until_hosted(&self, agents: &[&str]) {
        let deadline = Instant::now() + PATIENCE;
        for agent in agents {
            let probe = json!({"workflow_type": "probe", "execution_mode": "sequential",
                "tasks": [{"id": "p", "agent_id": agent, "task_description": "probe",
                           "input_data": {"ms": 0}}]});
            loop {
                let (status, _) =
                    self.daemon
                        .post("/api/workflows?wait=false", &self.token, &probe.to_string());
                if status == 202 {
                    break;
                }
                assert!(Instant::now() < deadline, "agent {agent} never hosted");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The node each task's result names, by task id.
fn nodes_of(record: &Value) -> BTreeMap<String, String> {
    record["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["task_id"].as_str().unwrap().to_owned(),
                r["metadata"]["node"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn tasks_run_where_their_agents_are_and_spread_over_their_hosts() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let a = cluster.node("a", "[[agents]]\nid = \"echo\"\nkind = \"builtin\"\n");
    let worker = "[[agents]]\nid = \"worker\"\nkind = \"builtin\"\nbuiltin = \"sleep\"\nmax_concurrency = 2\n";
    let b = cluster.node("b", worker);
    let _c = cluster.node(
        "c",
        &format!("{worker}\n[[agents]]\nid = \"remote\"\nkind = \"builtin\"\nbuiltin = \"echo\"\n"),
    );
    a.until_hosted(&["remote", "worker"]);
    let mut tasks = vec![
        json!({"id": "here", "agent_id": "echo", "task_description": "local echo", "input_data": {"x": 1}}),
        json!({"id": "there", "agent_id": "remote", "task_description": "remote echo", "input_data": {"x": 2}}),
    ];
    for i in 0..12 {
        tasks.push(json!({"id": format!("w{i}"), "agent_id": "worker",
            "task_description": format!("sleep a little, part {i}"), "input_data": {"ms": 200}}));
    }
    let spec = json!({"workflow_type": "spread", "execution_mode": "parallel", "tasks": tasks});
    let id = a.submit(&spec);
    let record = a.completed(&id);
    let nodes = nodes_of(&record);
    assert_eq!(nodes["here"], "a", "{record}");
    assert_eq!(nodes["there"], "c", "{record}");
    let there = record["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["task_id"] == "there")
        .unwrap();
    assert_eq!(there["result_data"], json!({"x": 2}));
    let workers: BTreeSet<&str> = nodes
        .iter()
        .filter(|(task, _)| task.starts_with('w'))
        .map(|(_, node)| node.as_str())
        .collect();
    assert_eq!(workers, BTreeSet::from(["b", "c"]), "{record}");
    assert_eq!(
        record["results"].as_array().unwrap().len(),
        14,
        "each task once"
    );
    // Any node answers for any workflow: the journal is the cluster's.
    let (status, elsewhere) = b
        .daemon
        .get(&format!("/api/workflows/{id}"), Some(&b.token));
    assert_eq!(status, 200, "{elsewhere}");
    assert_eq!(elsewhere["state"], "completed");
    assert_eq!(elsewhere["results"], record["results"]);

    // Every node sees the same members, each live, each with what it hosts.
    let (status, view) = a.daemon.get("/api/cluster", Some(&a.token));
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["clustered"], true);
    assert_eq!(view["node_id"], "a");
    assert_eq!(view["cluster"], cluster.prefix.as_str());
    let members: BTreeMap<&str, &Value> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node_id"].as_str().unwrap(), n))
        .collect();
    assert_eq!(
        members.keys().copied().collect::<Vec<_>>(),
        ["a", "b", "c"],
        "{view}"
    );
    assert!(members.values().all(|n| n["live"] == true), "{view}");
    let hosted = |node: &str| -> BTreeSet<&str> {
        members[node]["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["agent_id"].as_str().unwrap())
            .collect()
    };
    assert_eq!(hosted("c"), BTreeSet::from(["remote", "worker"]), "{view}");
    assert_eq!(hosted("b"), BTreeSet::from(["worker"]), "{view}");
    let (status, _) = a.daemon.get("/api/cluster", Some("wrong-token"));
    assert_eq!(status, 401);
}

/// A command agent that logs `start <task> <node>` and `end <task> <node>` around a sleep.
pub(crate) fn slow_agent(dir: &Path, node: &str, log: &Path) -> String {
    let script = dir.join("slow.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ninput=$(cat)\ntask=$(printf '%s' \"$input\" | grep -o '\"name\":\"[a-z0-9]*\"' | cut -d'\"' -f4)\n\
         ms=$(printf '%s' \"$input\" | grep -o '\"ms\":[0-9]*' | cut -d: -f2)\n\
         echo \"start $task $1\" >> \"$2\"\nsleep $(echo \"$ms\" | awk '{print $1/1000}')\n\
         echo \"end $task $1\" >> \"$2\"\necho '{\"done\": true}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "[[agents]]\nid = \"slow\"\nkind = \"command\"\ncommand = {:?}\nargs = [{node:?}, {:?}]\n",
        script.display().to_string(),
        log.display().to_string()
    )
}

pub(crate) fn log_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_node_killed_mid_task_has_the_task_run_again_elsewhere_and_nothing_finished_twice() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let log = cluster.dir.path().join("runs.log");
    let a = cluster.node("a", "");
    let b = cluster.node("b", &slow_agent(cluster.dir.path(), "b", &log));
    let c = cluster.node("c", &slow_agent(cluster.dir.path(), "c", &log));
    a.until_hosted(&["slow"]);
    std::fs::remove_file(&log).ok();
    let tasks: Vec<Value> = (1..=4)
        .map(|i| {
            let ms = if i == 3 { 2_500 } else { 100 };
            json!({"id": format!("s{i}"), "agent_id": "slow", "task_description": format!("step {i}"),
                   "input_data": {"name": format!("s{i}"), "ms": ms}})
        })
        .collect();
    let id = a.submit(
        &json!({"workflow_type": "failover", "execution_mode": "sequential", "tasks": tasks}),
    );
    // Whoever starts the long task dies.
    let deadline = Instant::now() + PATIENCE;
    let victim = loop {
        if let Some(line) = log_lines(&log).iter().find(|l| l.starts_with("start s3 ")) {
            break line.rsplit(' ').next().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "s3 never started: {:?}",
            log_lines(&log)
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let (mut dead, survivor) = if victim == "b" { (b, "c") } else { (c, "b") };
    dead.daemon.child.kill().unwrap();
    dead.daemon.child.wait().unwrap();

    let record = a.completed(&id);
    let nodes = nodes_of(&record);
    assert_eq!(nodes["s3"], survivor, "{record}");
    let s3 = record["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["task_id"] == "s3")
        .unwrap();
    assert_eq!(s3["metadata"]["deliveries"], 2, "{s3}");
    assert_eq!(record["results"].as_array().unwrap().len(), 4, "{record}");
    let lines = log_lines(&log);
    for task in ["s1", "s2", "s4"] {
        let starts = lines
            .iter()
            .filter(|l| l.starts_with(&format!("start {task} ")))
            .count();
        assert_eq!(starts, 1, "{task} ran once: {lines:?}");
    }
    let s3_starts: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("start s3 "))
        .collect();
    assert_eq!(s3_starts.len(), 2, "{lines:?}");
}

#[test]
fn a_wrong_token_and_a_duplicate_node_id_are_refused_at_start() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let wrong = cluster.dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-token").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (status, stderr) = cluster.refused("w", &wrong);
    assert!(!status.success());
    assert!(
        stderr.contains("refused") && stderr.contains("cluster.token_file"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-token"), "{stderr}");

    let _first = cluster.node("twin", "[[agents]]\nid = \"echo\"\nkind = \"builtin\"\n");
    let (status, stderr) = cluster.refused("twin", &cluster.token_file);
    assert!(!status.success());
    assert!(
        stderr.contains("node id \"twin\" is already in use") && stderr.contains("node_id"),
        "{stderr}"
    );
}

/// Seconds from `since` to the journal's takeover (`recovering`) transition of `record`.
fn taken_over_after(record: &Value, since: chrono::DateTime<chrono::Utc>) -> f64 {
    let taken = record["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["state"] == "recovering")
        .unwrap_or_else(|| panic!("no takeover in {record}"));
    let at: chrono::DateTime<chrono::Utc> = taken["at"].as_str().unwrap().parse().unwrap();
    (at - since).as_seconds_f64()
}

/// Asserts the agent's log shows each of `tasks` started exactly once.
fn started_once(log: &Path, tasks: &[&str]) {
    let lines = log_lines(log);
    for task in tasks {
        let starts = lines
            .iter()
            .filter(|l| l.starts_with(&format!("start {task} ")))
            .count();
        assert_eq!(starts, 1, "{task} ran once: {lines:?}");
    }
}

/// Waits (bounded) until the agent's log shows `task` started.
pub(crate) fn until_started(log: &Path, task: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !log_lines(log)
        .iter()
        .any(|l| l.starts_with(&format!("start {task} ")))
    {
        assert!(
            Instant::now() < deadline,
            "{task} never started: {:?}",
            log_lines(log)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_owner_killed_mid_workflow_has_it_taken_over_within_a_lease_and_a_second() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let log = cluster.dir.path().join("runs.log");
    let mut a = cluster.node("a", "");
    let b = cluster.node("b", &slow_agent(cluster.dir.path(), "b", &log));
    let _c = cluster.node("c", &slow_agent(cluster.dir.path(), "c", &log));
    a.until_hosted(&["slow"]);
    b.until_hosted(&["slow"]);
    std::fs::remove_file(&log).ok();
    let tasks: Vec<Value> = (1..=5)
        .map(|i| {
            json!({"id": format!("s{i}"), "agent_id": "slow", "task_description": format!("step {i}"),
                   "input_data": {"name": format!("s{i}"), "ms": 400}})
        })
        .collect();
    let id = a.submit(
        &json!({"workflow_type": "takeover", "execution_mode": "sequential", "tasks": tasks}),
    );
    // The owner dies once the second task has started.
    until_started(&log, "s2");
    a.daemon.child.kill().unwrap();
    let killed_at = chrono::Utc::now();
    a.daemon.child.wait().unwrap();

    let record = b.completed(&id);
    let after = taken_over_after(&record, killed_at);
    eprintln!("taken over {after:.3} s after the kill");
    // lease_seconds = 1: claimed within a lease and a second of the kill.
    assert!(
        after < 2.0,
        "taken over {after:.2} s after the kill: {record}"
    );
    assert_eq!(record["results"].as_array().unwrap().len(), 5, "{record}");
    started_once(&log, &["s1", "s2", "s3", "s4", "s5"]);
}

#[test]
fn a_node_stopped_cleanly_hands_its_workflows_over_at_once() {
    let Some(mut cluster) = Cluster::new() else {
        return;
    };
    // A long lease: a takeover well before it ends can only be the hand-back.
    cluster.lease_seconds = 6;
    cluster.prelude = "shutdown_grace_seconds = 0\n".to_owned();
    let log = cluster.dir.path().join("runs.log");
    let a = cluster.node("a", "");
    let b = cluster.node("b", &slow_agent(cluster.dir.path(), "b", &log));
    a.until_hosted(&["slow"]);
    b.until_hosted(&["slow"]);
    std::fs::remove_file(&log).ok();
    let tasks: Vec<Value> = (1..=3)
        .map(|i| {
            json!({"id": format!("s{i}"), "agent_id": "slow", "task_description": format!("step {i}"),
                   "input_data": {"name": format!("s{i}"), "ms": 300}})
        })
        .collect();
    let id = a.submit(
        &json!({"workflow_type": "handover", "execution_mode": "sequential", "tasks": tasks}),
    );
    until_started(&log, "s1");
    let stopped_at = chrono::Utc::now();
    let (status, stderr) = a.daemon.stop(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success(), "{stderr}");

    let record = b.completed(&id);
    let after = taken_over_after(&record, stopped_at);
    eprintln!("handed over {after:.3} s after SIGTERM");
    assert!(
        after < 4.0,
        "taken over {after:.2} s after the stop, as if by expiry: {record}"
    );
    started_once(&log, &["s1", "s2", "s3"]);
}

#[test]
fn a_workflow_is_cancelled_through_a_node_that_does_not_own_it() {
    let Some(mut cluster) = Cluster::new() else {
        return;
    };
    // A lease long enough that A stays the owner throughout.
    cluster.lease_seconds = 5;
    let log = cluster.dir.path().join("runs.log");
    let a = cluster.node("a", &slow_agent(cluster.dir.path(), "a", &log));
    let b = cluster.node("b", "");
    b.until_hosted(&["slow"]);
    std::fs::remove_file(&log).ok();
    let tasks: Vec<Value> = (1..=3)
        .map(|i| {
            json!({"id": format!("s{i}"), "agent_id": "slow", "task_description": format!("step {i}"),
                   "input_data": {"name": format!("s{i}"), "ms": 5_000}})
        })
        .collect();
    let id = a.submit(
        &json!({"workflow_type": "cancel", "execution_mode": "sequential", "tasks": tasks}),
    );
    until_started(&log, "s1");
    // B's view names A as the owner.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, view) = b.daemon.get("/api/cluster", Some(&b.token));
        let owned_by_a = view["nodes"].as_array().unwrap().iter().any(|n| {
            n["node_id"] == "a" && n["workflows"].as_array().unwrap().contains(&json!(id))
        });
        if owned_by_a {
            break;
        }
        assert!(Instant::now() < deadline, "B never saw A own {id}: {view}");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (status, answer) = b
        .daemon
        .post(&format!("/api/workflows/{id}/cancel"), &b.token, "");
    assert_eq!(status, 202, "{answer}");
    b.until_state(&id, "cancelled");
    assert!(
        !log_lines(&log).iter().any(|l| l.starts_with("start s2 ")),
        "the workflow went on after its cancellation: {:?}",
        log_lines(&log)
    );
    // Cancelling it again through either node: it no longer runs anywhere.
    let (status, answer) = b
        .daemon
        .post(&format!("/api/workflows/{id}/cancel"), &b.token, "");
    assert_eq!(status, 404, "{answer}");
}

/// What node `node` predicts for `task` among `candidates`.
fn predicted(node: &Node, task: &str, candidates: &[&str]) -> String {
    let ask = json!({"task_description": task, "candidates": candidates});
    let (status, p) = node
        .daemon
        .post("/api/learn/predict", &node.token, &ask.to_string());
    assert_eq!(status, 200, "{p}");
    p["predicted_agent"].as_str().unwrap().to_owned()
}

#[test]
fn records_stored_on_one_node_change_predictions_on_another() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    // Embedded stores (no PostgreSQL): records travel through the cluster.
    let a = cluster.node("a", "");
    let b = cluster.node("b", "");
    let task = "compress the nightly log archive of host 7";
    let candidates = ["alpha", "zeta"];
    // No history anywhere: the first candidate by name.
    assert_eq!(predicted(&b, task, &candidates), "alpha");

    let lines: Vec<String> = (0..40)
        .flat_map(|i| {
            [("zeta", 1.0), ("alpha", 0.0)].map(|(agent, success)| {
                json!({"agent_id": agent, "task_type": "compress",
                       "task_description": format!("compress the nightly log archive of host {i}"),
                       "execution_time_ms": 50, "success_rate": success})
                .to_string()
            })
        })
        .collect();
    let (status, body) = a
        .daemon
        .post("/api/learn/records", &a.token, &lines.join("\n"));
    assert_eq!((status, body["stored"].clone()), (200, json!(80)), "{body}");
    let stored_at = Instant::now();
    assert_eq!(predicted(&a, task, &candidates), "zeta");

    let deadline = Instant::now() + PATIENCE;
    while predicted(&b, task, &candidates) != "zeta" {
        assert!(Instant::now() < deadline, "B never learnt from A's records");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "B predicts from A's records {:.3} s after they were stored",
        stored_at.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_nodes_websocket_shows_every_nodes_events_each_naming_its_node() {
    use futures_util::StreamExt as _;
    let Some(mut cluster) = Cluster::new() else {
        return;
    };
    // Samples every 200 ms; any CPU use raises a warning on every node.
    cluster.prelude = ALERTING.to_owned();
    let _a = cluster.node("a", "");
    let b = cluster.node("b", "");
    let url = format!(
        "{}/ws?token={}",
        b.daemon.base.replace("http://", "ws://"),
        b.token
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut health_from = BTreeSet::new();
    let mut alerts_from = BTreeSet::new();
    let mut established = None;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while health_from.len() < 2 || !alerts_from.contains("a") {
        let next = tokio::time::timeout_at(deadline, ws.next()).await;
        let Ok(Some(Ok(message))) = next else {
            panic!("health from {health_from:?}, alerts from {alerts_from:?} by the deadline");
        };
        let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
            continue;
        };
        let m: Value = serde_json::from_str(&text).unwrap();
        let node = m["node"].as_str().map(str::to_owned);
        match m["type"].as_str() {
            Some("connection_established") => established = node,
            Some("system_health") => {
                health_from.insert(node.expect("a metric without its node"));
            }
            Some("alert") => {
                alerts_from.insert(node.expect("an alert without its node"));
            }
            _ => {}
        }
    }
    assert_eq!(established.as_deref(), Some("b"));
    assert_eq!(
        health_from,
        BTreeSet::from(["a".to_owned(), "b".to_owned()])
    );
}
