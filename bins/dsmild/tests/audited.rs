//! Every mutation audited: the daemon's start (with the SHA-256 of its configuration) and stop
//! (with the signal), and each authorised state-changing API call — who, what, on what, the
//! outcome and the body's digest — are entries of the signed audit log; a refused token is not.

use nix::sys::signal::Signal;
use serde_json::Value;
use sha2::Digest as _;

use crate::common::{Daemon, agent};

/// The events of the audit log's entries, in order.
fn entries(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["type"] == "entry")
        .map(|l| l["event"].clone())
        .collect()
}

#[test]
fn the_daemons_life_and_every_state_change_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &[]);
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    let token = token.trim();
    let post = |path: &str, body: &str| daemon.post(path, token, body);

    let spec = r#"{"workflow_type":"audit","execution_mode":"sequential",
        "tasks":[{"id":"a","agent_id":"echo","task_description":"say it"}]}"#;
    assert_eq!(post("/api/v1/workflows", spec).0, 200);
    let records = concat!(
        r#"{"agent_id":"echo","task_type":"t","task_description":"one","execution_time_ms":5,"success_rate":1.0}"#,
        "\n",
        r#"{"agent_id":"echo","task_type":"t","task_description":"two","execution_time_ms":7,"success_rate":0.0}"#,
        "\n"
    );
    let (status, body) = post("/api/v1/learn/records", records);
    assert!((200..300).contains(&status), "{status} {body}");
    assert_eq!(
        post("/api/v1/devices/0x8000/write", r#"{"data":"00ff"}"#).0,
        200
    );
    assert_eq!(
        post("/api/v1/devices/0x8009/write", r#"{"data":"00ff"}"#).0,
        403
    );
    assert_eq!(
        post("/api/v1/emergency/stop", r#"{"reason":"drill"}"#).0,
        200
    );
    assert_eq!(post("/api/v1/emergency/clear", "{}").0, 200);
    // A query is not a state change; a refused token never reached the operation.
    assert_eq!(
        post("/api/v1/learn/predict", r#"{"task_description":"say it"}"#).0,
        200
    );
    let refused = agent()
        .post(format!("{}/api/v1/workflows", daemon.base))
        .header(
            "Authorization",
            "Bearer not-the-token-not-the-token-not-the-token",
        )
        .send(spec)
        .unwrap();
    assert_eq!(refused.status(), 401);
    let (status, _) = daemon.stop(Signal::SIGTERM);
    assert!(status.success());

    let events = entries(&data.join("audit/audit.log"));
    let of =
        |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["event_type"] == kind).collect() };
    let started = of("daemon_started");
    assert_eq!(started.len(), 1, "{events:#?}");
    assert!(
        started[0]["response_actions"][0]
            .as_str()
            .is_some_and(|a| a.starts_with("configuration sha256:") && a.len() == 21 + 64),
        "{}",
        started[0]
    );
    let stopped = of("daemon_stopped");
    assert_eq!(stopped.len(), 1);
    assert!(
        stopped[0]["description"]
            .as_str()
            .unwrap()
            .contains("SIGTERM")
    );
    assert_eq!(
        events.last().unwrap()["event_type"],
        "daemon_stopped",
        "stop is the last entry"
    );

    for kind in [
        "api_submit_workflow",
        "api_record_performance",
        "api_emergency_stop",
        "api_emergency_clear",
    ] {
        let found = of(kind);
        assert_eq!(found.len(), 1, "{kind}: {events:#?}");
        let description = found[0]["description"].as_str().unwrap();
        assert!(
            description.contains("by token \"api-token\" from 127.0.0.1:"),
            "{description}"
        );
    }
    assert_eq!(
        of("api_submit_workflow").len(),
        1,
        "the refused token made no entry"
    );
    assert!(of("api_predict_optimal_agent").is_empty());
    // The records' entry pins the body by its digest and size.
    let digest = dsmil_core::hex::encode(&sha2::Sha256::digest(records.as_bytes()));
    let import = &of("api_record_performance")[0]["response_actions"];
    assert_eq!(
        import[1],
        format!("request body sha256:{digest} ({} bytes)", records.len())
    );
    // Both writes, with their outcomes (the refusal also has its quarantine entry).
    let writes: Vec<String> = of("api_write_device")
        .iter()
        .map(|e| e["description"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(writes[0].contains("/api/v1/devices/0x8000/write") && writes[0].ends_with(": 200"));
    assert!(writes[1].contains("0x8009") && writes[1].ends_with(": 403 policy_violation"));
    assert_eq!(of("quarantine_violation").len(), 1);
}
