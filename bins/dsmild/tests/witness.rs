//! Witnessed audit logs across real dsmild nodes: node B countersigns node A's signed tree
//! heads after checking A's consistency proofs; A is killed, its audit log is cut back to an
//! earlier checkpoint while it is down, and A is started again on it (its own TPM anchor,
//! refreshed only every 15 minutes, does not notice): B reports A's log inconsistent — in its
//! witness records, as a critical security event, and in its own audit log.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{Cluster, Node};
use crate::common::{Daemon, PATIENCE};

/// Refused writes to a quarantined device: each is an audit entry on the node.
fn audited_refusals(node: &Node, n: usize) {
    for _ in 0..n {
        let (status, body) = node.daemon.post(
            "/api/devices/0x8009/write",
            &node.token,
            r#"{"data":"00ff"}"#,
        );
        assert_eq!(status, 403, "{body}");
    }
}

/// What witness `witness` holds of node `node`, once `done` accepts it (bounded wait).
fn witnessed(by: &Node, node: &str, witness: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, view) = by.daemon.get("/api/audit/witnesses", Some(&by.token));
        assert_eq!(status, 200, "{view}");
        let record = view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == node)
            .and_then(|n| {
                n["witnesses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|w| w["witness"] == witness)
                    .cloned()
            });
        if let Some(record) = record
            && done(&record)
        {
            return record;
        }
        assert!(Instant::now() < deadline, "never reached: {view:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Cuts the log at `path` right after its checkpoint over `size` entries.
fn cut_after_checkpoint(path: &Path, size: u64) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut kept = String::new();
    for line in text.lines() {
        kept.push_str(line);
        kept.push('\n');
        let v: Value = serde_json::from_str(line).unwrap();
        if v["type"] == "checkpoint" && v["tree_size"] == size {
            std::fs::write(path, kept).unwrap();
            return;
        }
    }
    panic!("no checkpoint over {size} entries in {}", path.display());
}

#[test]
fn a_node_whose_log_was_cut_back_while_it_was_down_is_reported_by_its_witness() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let mut a = cluster.node("a", "");
    let b = cluster.node("b", "");

    audited_refusals(&a, 3);
    let first = witnessed(&b, "a", "b", |w| {
        w["accepted_size"].as_u64().is_some_and(|s| s >= 3) && w["problem"].is_null()
    });
    let first_size = first["accepted_size"].as_u64().unwrap();
    assert!(first["audit_sequence"].is_u64(), "countersigned: {first}");

    // More entries: B accepts the longer log only through A's consistency proof.
    audited_refusals(&a, 3);
    let second = witnessed(&b, "a", "b", |w| {
        w["accepted_size"]
            .as_u64()
            .is_some_and(|s| s >= first_size + 3)
    });
    assert!(second["problem"].is_null(), "{second}");

    // A dies; its log is cut back to the first head B witnessed; A comes back on it.
    a.daemon.child.kill().unwrap();
    a.daemon.child.wait().unwrap();
    let data = cluster.dir.path().join("a-data");
    cut_after_checkpoint(&data.join("audit/audit.log"), first_size);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, view) = b.daemon.get("/api/cluster", Some(&b.token));
        let a_live = view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["node_id"] == "a" && n["live"] == true);
        if !a_live {
            break;
        }
        assert!(Instant::now() < deadline, "a never lost: {view}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let config = cluster.dir.path().join("a.toml");
    let _a = Daemon::start(&data, &["--config", config.to_str().unwrap()]);

    let reported = witnessed(&b, "a", "b", |w| w["problem"].is_string());
    let problem = reported["problem"].as_str().unwrap();
    assert!(problem.contains("cut back"), "{reported}");
    // The accepted head stays the one witnessed before the cut.
    assert_eq!(reported["accepted_size"], second["accepted_size"]);
    // B's own audit log records the critical event.
    let deadline = Instant::now() + PATIENCE;
    let b_log = cluster.dir.path().join("b-data/audit/audit.log");
    while !std::fs::read_to_string(&b_log)
        .unwrap()
        .contains("audit_log_inconsistent")
    {
        assert!(
            Instant::now() < deadline,
            "B's audit log has no audit_log_inconsistent entry"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
