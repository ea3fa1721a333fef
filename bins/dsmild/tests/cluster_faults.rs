//! Faults of a cluster under real dsmild nodes beyond a single node's death: a task whose
//! hosts keep dying spends its retry budget on the redeliveries; a node whose breaker is open
//! leaves the agent's tasks to the others; a nats-server killed under load loses no task and
//! runs none twice, and after every node and server restarts every workflow reads as before;
//! nodes join servers that require TLS with `tls_ca`, and a node without it is refused; a workflow taken over just after a NATS outage
//! waits for its agents to be announced again instead of failing.

use std::time::{Duration, Instant};

use dsmil_cluster::nats_server::{NatsBinary, NatsCluster, NatsClusterSpec};
use serde_json::json;

use crate::cluster::{Cluster, log_lines, slow_agent};
use crate::common::PATIENCE;

#[test]
fn a_redelivery_spends_the_tasks_retry_budget() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let log = cluster.dir.path().join("runs.log");
    let a = cluster.node("a", "");
    let mut b = cluster.node("b", &slow_agent(cluster.dir.path(), "b", &log));
    let mut c = cluster.node("c", &slow_agent(cluster.dir.path(), "c", &log));
    a.until_hosted(&["slow"]);
    std::fs::remove_file(&log).ok();
    // No retries: the run lost with its node was the task's only attempt.
    let id = a.submit(
        &json!({"workflow_type": "budget", "execution_mode": "sequential",
        "tasks": [{"id": "s1", "agent_id": "slow", "task_description": "long",
                   "retry_count": 0, "input_data": {"name": "s1", "ms": 3_000}}]}),
    );
    let deadline = Instant::now() + PATIENCE;
    let victim = loop {
        if let Some(line) = log_lines(&log).iter().find(|l| l.starts_with("start s1 ")) {
            break line.rsplit(' ').next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "s1 never started");
        std::thread::sleep(Duration::from_millis(10));
    };
    let dead = if victim == "b" { &mut b } else { &mut c };
    dead.daemon.child.kill().unwrap();
    dead.daemon.child.wait().unwrap();

    let deadline = Instant::now() + PATIENCE;
    let record = loop {
        let (_, record) = a
            .daemon
            .get(&format!("/api/workflows/{id}"), Some(&a.token));
        if record["state"] == "failed" {
            break record;
        }
        assert_ne!(
            record["state"], "completed",
            "ran again without a retry left: {record}"
        );
        assert!(Instant::now() < deadline, "never failed: {record}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let s1 = &record["results"][0];
    let error = s1["error_message"].as_str().unwrap_or_default();
    assert!(error.contains("already ran once without a result"), "{s1}");
    assert_eq!(s1["metadata"]["deliveries"], 2, "{s1}");
    let starts = log_lines(&log)
        .iter()
        .filter(|l| l.starts_with("start s1 "))
        .count();
    assert_eq!(starts, 1, "{:?}", log_lines(&log));
}

/// A command agent `flaky` that fails on node `node` when it is `bad`, and succeeds elsewhere;
/// its breaker opens at the first failure and stays open for a minute.
fn flaky(node: &str, bad: &str) -> String {
    // TOML-escaped quotes: the shell sees printf '{"ok":true}'.
    let exit = if node == bad {
        "exit 1"
    } else {
        "printf '{\\\"ok\\\":true}'"
    };
    format!(
        "[[agents]]\nid = \"flaky\"\nkind = \"command\"\ncommand = \"/bin/sh\"\n\
         args = [\"-c\", \"cat > /dev/null; {exit}\"]\nmax_concurrency = 4\n\
         circuit_breaker = {{ failure_threshold = 1, recovery_timeout_seconds = 60.0, success_threshold = 1 }}\n"
    )
}

fn breaker_of(node: &crate::cluster::Node, of: &str) -> String {
    let (_, view) = node.daemon.get("/api/cluster", Some(&node.token));
    view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == of)
        .and_then(|n| {
            n["agents"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["agent_id"] == "flaky")
                .map(|a| a["breaker"].as_str().unwrap().to_owned())
        })
        .unwrap_or_default()
}

#[test]
fn a_node_whose_breaker_is_open_leaves_the_agents_tasks_to_hosts_whose_breaker_is_closed() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let a = cluster.node("a", "");
    let b = cluster.node("b", &flaky("b", "b"));
    let _c = cluster.node("c", &flaky("c", "b"));
    a.until_hosted(&["flaky"]);
    let one = |i: usize| {
        json!({"workflow_type": "flaky", "execution_mode": "sequential",
            "tasks": [{"id": format!("f{i}"), "agent_id": "flaky", "task_description": "x",
                       "retry_count": 0, "input_data": {}}]})
    };
    // Until one task has run on b (and failed there), opening b's breaker.
    let deadline = Instant::now() + PATIENCE;
    let mut i = 0;
    while breaker_of(&a, "b") != "open" {
        assert!(Instant::now() < deadline, "b's breaker never opened");
        i += 1;
        let (status, _) = a
            .daemon
            .post("/api/workflows", &a.token, &one(i).to_string());
        assert!(status == 200 || status == 400, "{status}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every task now runs on c: none is refused by b's open breaker.
    let tasks: Vec<_> = (0..12)
        .map(|k| {
            json!({"id": format!("p{k}"), "agent_id": "flaky", "task_description": "x",
                   "retry_count": 0, "input_data": {}})
        })
        .collect();
    let spec = json!({"workflow_type": "flaky", "execution_mode": "parallel", "tasks": tasks});
    let (status, record) = a.daemon.post("/api/workflows", &a.token, &spec.to_string());
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["success"], true, "{record:#}");
    assert!(
        record["agent_results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["metadata"]["node"] == "c"),
        "{record:#}"
    );
    assert_eq!(breaker_of(&a, "b"), "open", "the test's premise");
    drop(b);
}

/// Workflow `id`'s record once completed, read through `node` while the servers fail over: a
/// read that waits out a stream leader's election (or fails meanwhile) is asked again.
fn completed_through_failover(node: &crate::cluster::Node, id: &str) -> serde_json::Value {
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let read = http
            .get(format!("{}/api/workflows/{id}", node.daemon.base))
            .header("Authorization", &format!("Bearer {}", node.token))
            .call();
        if let Ok(mut resp) = read
            && let Ok(record) = resp.body_mut().read_json::<serde_json::Value>()
        {
            if record["state"] == "completed" {
                return record;
            }
            assert_ne!(record["state"], "failed", "{record}");
        }
        assert!(Instant::now() < deadline, "{id} never completed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// This test's own three nats-servers (it kills one); `None` (skip) without a nats-server
/// binary, unless services are required.
fn own_nats(dir: &std::path::Path) -> Option<NatsCluster> {
    if NatsBinary::find().is_err() {
        assert!(
            std::env::var(dsmil_core::testenv::REQUIRE_VAR).as_deref() != Ok("1"),
            "a nats-server binary is required (cargo xtask services up)"
        );
        return None;
    }
    Some(NatsCluster::start(NatsClusterSpec::new(dir)).unwrap())
}

#[test]
fn a_nats_server_killed_under_load_loses_no_task_and_a_full_restart_keeps_every_workflow() {
    let nats_dir = tempfile::tempdir().unwrap();
    let Some(mut nats) = own_nats(nats_dir.path()) else {
        return;
    };
    let mut cluster = Cluster::on(nats.urls(), nats.token_file().to_owned());
    // The default lease: a server's failover (a stream leader elected, the clients reconnected)
    // takes a few seconds, which a lease must outlast. With a 1 s lease the heartbeats, lease
    // renewals and progress acks of that window are missed: tasks are delivered again while
    // they run and workflows are taken over (seen here) — see docs/ARCHITECTURE.md.
    cluster.lease_seconds = 5;
    let log = cluster.dir.path().join("runs.log");
    let agents = |node: &str| slow_agent(cluster.dir.path(), node, &log);
    let a = cluster.node("a", "");
    let b = cluster.node("b", &agents("b"));
    let c = cluster.node("c", &agents("c"));
    a.until_hosted(&["slow"]);
    b.until_hosted(&["slow"]);
    std::fs::remove_file(&log).ok();
    let workflows: Vec<(String, Vec<String>)> = (0..6)
        .map(|w| {
            let names: Vec<String> = (0..3).map(|t| format!("w{w}t{t}")).collect();
            let tasks: Vec<_> = names
                .iter()
                .map(|n| {
                    json!({"id": n, "agent_id": "slow", "task_description": n,
                                "input_data": {"name": n, "ms": 300}})
                })
                .collect();
            let spec =
                json!({"workflow_type": "load", "execution_mode": "sequential", "tasks": tasks});
            let owner = if w % 2 == 0 { &a } else { &b };
            (owner.submit(&spec), names)
        })
        .collect();
    // Mid-load: the first tasks run; one of the three servers is killed.
    crate::cluster::until_started(&log, "w0t0");
    nats.kill(1).unwrap();
    let before: Vec<serde_json::Value> = workflows
        .iter()
        .map(|(id, _)| completed_through_failover(&a, id))
        .collect();
    // Nothing lost: every task ran and its one result is journaled.
    let lines = log_lines(&log);
    let mut twice = Vec::new();
    for ((id, names), record) in workflows.iter().zip(&before) {
        assert_eq!(
            record["results"].as_array().unwrap().len(),
            names.len(),
            "{id}: {record}"
        );
        for n in names {
            let starts = lines
                .iter()
                .filter(|l| l.starts_with(&format!("start {n} ")))
                .count();
            assert!(starts >= 1, "{n} never ran: {lines:?}");
            if starts > 1 {
                twice.push(n.clone());
            }
        }
    }
    // A task pulled just before the killed server's consumer leadership moved can be
    // delivered by the new leader as well: its run claim leaves it to the node running it.
    assert!(twice.is_empty(), "{twice:?} ran twice: {lines:?}");

    // Everything stops (the nodes cleanly, then every server) and starts again.
    for node in [a, b, c] {
        let (status, stderr) = node.daemon.stop(nix::sys::signal::Signal::SIGTERM);
        assert!(status.success(), "{stderr}");
    }
    nats.stop_all().unwrap();
    nats.restart_all().unwrap();
    let a = cluster.node("a", "");
    let _b = cluster.node("b", &agents("b"));
    for ((id, _), was) in workflows.iter().zip(&before) {
        let now = a.until_state(id, "completed");
        assert_eq!(now["results"], was["results"], "workflow {id} changed");
        assert_eq!(now["history"], was["history"], "workflow {id} changed");
    }
}

#[test]
fn a_workflow_taken_over_after_a_nats_outage_waits_for_its_agents_to_be_announced() {
    let nats_dir = tempfile::tempdir().unwrap();
    let Some(mut nats) = own_nats(nats_dir.path()) else {
        return;
    };
    let mut cluster = Cluster::on(nats.urls(), nats.token_file().to_owned());
    // Leases long enough for the window in which a reconnected node waits to hear the others
    // (3 leases + the client's 4 s reconnection lag) to hold the steps below.
    cluster.lease_seconds = 3;
    let log = cluster.dir.path().join("runs.log");
    let agents = |node: &str| slow_agent(cluster.dir.path(), node, &log);
    let mut a = cluster.node("a", "");
    let c = cluster.node("c", "");
    let mut b = cluster.node("b", &agents("b"));
    a.until_hosted(&["slow"]);
    c.until_hosted(&["slow"]);
    std::fs::remove_file(&log).ok();
    let id = a.submit(
        &json!({"workflow_type": "outage", "execution_mode": "sequential",
        "tasks": [{"id": "s1", "agent_id": "slow", "task_description": "s1",
                   "input_data": {"name": "s1", "ms": 500}},
                  {"id": "s2", "agent_id": "slow", "task_description": "s2",
                   "input_data": {"name": "s2", "ms": 100}}]}),
    );
    crate::cluster::until_started(&log, "s1");
    // The owner and the only host of `slow` die and NATS is down for more than three leases:
    // when it is back, `c` has heard from no other node and claims the workflow alone.
    for dead in [&mut a, &mut b] {
        dead.daemon.child.kill().unwrap();
        dead.daemon.child.wait().unwrap();
    }
    nats.stop_all().unwrap();
    std::thread::sleep(Duration::from_secs(10));
    nats.restart_all().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, view) = c.daemon.get("/api/cluster", Some(&c.token));
        let owned = status == 200
            && view["nodes"].as_array().is_some_and(|nodes| {
                nodes.iter().any(|n| {
                    n["node_id"] == "c"
                        && n["workflows"]
                            .as_array()
                            .is_some_and(|w| w.contains(&json!(id)))
                })
            });
        let (_, record) = c
            .daemon
            .get(&format!("/api/workflows/{id}"), Some(&c.token));
        if owned || record["state"] == "failed" {
            break;
        }
        assert!(Instant::now() < deadline, "c never claimed {id}: {view}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let (_, record) = c
        .daemon
        .get(&format!("/api/workflows/{id}"), Some(&c.token));
    assert_ne!(
        record["state"], "failed",
        "failed although its agent's host may only not have reconnected yet: {record}"
    );
    // `b` comes back (within the window) and announces `slow`: `c` resumes the workflow.
    let _b = cluster.node("b", &agents("b"));
    let record = completed_through_failover(&c, &id);
    assert_eq!(record["results"].as_array().unwrap().len(), 2, "{record}");
    let (status, stderr) = c.daemon.stop(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("waiting for its agents to be announced"),
        "the takeover waited: {stderr}"
    );
}

#[test]
fn nodes_join_a_cluster_over_tls_and_a_node_without_the_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    if NatsBinary::find().is_err() {
        assert!(
            std::env::var(dsmil_core::testenv::REQUIRE_VAR).as_deref() != Ok("1"),
            "a nats-server binary is required (cargo xtask services up)"
        );
        return;
    }
    let tls = dsmil_cluster::nats_server::write_test_tls(&dir.path().join("tls")).unwrap();
    let mut spec = NatsClusterSpec::new(dir.path().join("nats"));
    spec.tls = Some(tls.clone());
    let nats = NatsCluster::start(spec).unwrap();
    let mut cluster = Cluster::on(nats.urls(), nats.token_file().to_owned());
    // Without the CA the server's certificate is not trusted: refused, naming TLS.
    let (status, stderr) = cluster.refused("plain", nats.token_file());
    assert!(!status.success());
    assert!(
        stderr.contains("cannot connect to the NATS servers"),
        "{stderr}"
    );
    cluster.cluster_extra = format!("tls_ca = {:?}\n", tls.ca.display().to_string());
    let a = cluster.node("a", "");
    let _b = cluster.node("b", "[[agents]]\nid = \"echo\"\nkind = \"builtin\"\n");
    a.until_hosted(&["echo"]);
    let spec = json!({"workflow_type": "tls", "execution_mode": "sequential",
        "tasks": [{"id": "e", "agent_id": "echo", "task_description": "over TLS",
                   "input_data": {"x": 1}}]});
    let (status, result) = a.daemon.post("/api/workflows", &a.token, &spec.to_string());
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(
        result["agent_results"][0]["metadata"]["node"], "b",
        "{result}"
    );
}
