//! Emergency stops on real dsmild nodes: an operator's cluster-wide stop taken on node A
//! cancels node B's workflow, refuses new work on every node, is audited on each, stops a node
//! that joins while it holds, and is cleared on every node from any node; a local stop stays
//! local. On one host, `scope: cluster` is refused.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::{Cluster, Node};
use crate::common::{Daemon, PATIENCE};

fn emergency(node: &Node) -> Value {
    let (status, state) = node.daemon.get("/api/emergency", Some(&node.token));
    assert_eq!(status, 200, "{state}");
    state
}

fn until_stopped(node: &Node, stopped: bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = emergency(node);
        if state["stopped"] == stopped {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "stopped never {stopped}: {state}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn audit_log_has(data: &Path, what: &str) -> bool {
    std::fs::read_to_string(data.join("audit/audit.log"))
        .unwrap_or_default()
        .contains(what)
}

fn sleeper() -> &'static str {
    "[[agents]]\nid = \"sleep\"\nkind = \"builtin\"\n"
}

#[test]
fn a_cluster_wide_stop_reaches_every_node_and_is_cleared_from_any() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let a = cluster.node("a", "");
    let b = cluster.node("b", sleeper());
    a.until_hosted(&["sleep"]);
    let long = json!({"workflow_type": "long", "execution_mode": "sequential",
        "tasks": [{"id": "s", "agent_id": "sleep", "task_description": "sleep",
                   "input_data": {"ms": 60_000}}]});
    let id = b.submit(&long);

    // A local stop on A leaves B alone.
    let (status, state) = a.daemon.post(
        "/api/emergency/stop",
        &a.token,
        r#"{"reason": "drill", "scope": "local"}"#,
    );
    assert_eq!((status, &state["stopped"]), (200, &json!(true)), "{state}");
    assert_eq!(emergency(&b)["stopped"], false);
    let (status, _) = a.daemon.post("/api/emergency/clear", &a.token, "");
    assert_eq!(status, 200);
    until_stopped(&a, false);

    // A cluster-wide stop on A.
    let (status, state) = a.daemon.post(
        "/api/emergency/stop",
        &a.token,
        r#"{"reason": "coolant leak", "scope": "cluster"}"#,
    );
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["cluster"]["from"], "a", "{state}");
    let on_b = until_stopped(&b, true);
    assert!(
        on_b["reason"].as_str().unwrap().contains("coolant leak"),
        "{on_b}"
    );
    // B's workflow was cancelled, and B refuses new ones.
    b.until_state(&id, "cancelled");
    let (status, refused) = b
        .daemon
        .post("/api/workflows?wait=false", &b.token, &long.to_string());
    assert_ne!(status, 202, "{refused}");
    // Audited on each node.
    for node in ["a", "b"] {
        let data = cluster.dir.path().join(format!("{node}-data"));
        let deadline = Instant::now() + PATIENCE;
        while !audit_log_has(&data, "coolant leak") {
            assert!(Instant::now() < deadline, "not audited on {node}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // A node that joins during the stop stops too.
    let c = cluster.node("c", "");
    until_stopped(&c, true);

    // Cleared from B: every node accepts work again.
    let (status, state) = b.daemon.post("/api/emergency/clear", &b.token, "");
    assert_eq!(status, 200, "{state}");
    for node in [&a, &b, &c] {
        let state = until_stopped(node, false);
        assert!(state["cluster"].is_null(), "{state}");
    }
    a.submit(&long);
}

#[test]
fn a_cluster_wide_stop_on_one_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let token = std::fs::read_to_string(dir.path().join("data/api-token")).unwrap();
    let token = token.trim();
    let (status, body) = daemon.post(
        "/api/emergency/stop",
        token,
        r#"{"reason": "x", "scope": "cluster"}"#,
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("not_clustered")),
        "{body}"
    );
    let (status, body) = daemon.post("/api/emergency/stop", token, r#"{"reason": " "}"#);
    assert_eq!(status, 400, "{body}");
    let (status, body) = daemon.post("/api/emergency/stop", token, r#"{"reason": "drill"}"#);
    assert_eq!((status, &body["stopped"]), (200, &json!(true)), "{body}");
    let (status, body) = daemon.post("/api/emergency/clear", token, "");
    assert_eq!((status, &body["stopped"]), (200, &json!(false)), "{body}");
}

/// The metric names of `node`'s active alerts.
fn active_alerts(node: &Node) -> Vec<String> {
    let (status, alerts) = node.daemon.get("/api/alerts", Some(&node.token));
    assert_eq!(status, 200, "{alerts}");
    alerts["active"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert"]["metric_name"].as_str().unwrap().to_owned())
        .collect()
}

fn until_alerts(node: &Node, what: &str, done: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let active = active_alerts(node);
        if done(&active) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {active:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_lost_node_and_its_agents_raise_cluster_alerts_that_resolve_when_it_returns() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let a = cluster.node("a", "");
    let mut b = cluster.node("b", sleeper());
    a.until_hosted(&["sleep"]);
    let has = |m: &str| {
        let m = m.to_owned();
        move |active: &[String]| active.contains(&m)
    };
    assert!(!has("cluster_nodes_lost")(&active_alerts(&a)));

    b.daemon.child.kill().unwrap();
    b.daemon.child.wait().unwrap();
    until_alerts(&a, "a lost node and an unhosted agent", |active| {
        has("cluster_nodes_lost")(active) && has("cluster_agents_unhosted")(active)
    });

    // B comes back: both alerts resolve.
    let config = cluster.dir.path().join("b.toml");
    let _b = Daemon::start(
        &cluster.dir.path().join("b-data"),
        &["--config", config.to_str().unwrap()],
    );
    until_alerts(&a, "the cluster alerts resolved", |active| {
        !active.iter().any(|m| m.starts_with("cluster_"))
    });
}
