//! `/api/learn/*` on the real dsmild: the embedded store by default, PostgreSQL with
//! `--database-url`; records survive a restart.

use crate::common::*;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

fn line(agent: &str, task_type: &str, text: &str, ms: u64, success: f64) -> String {
    json!({
        "agent_id": agent, "task_type": task_type, "task_description": text,
        "execution_time_ms": ms, "success_rate": success,
        "resource_usage": {"cpu": 0.25}, "context_factors": {"size": 4096}
    })
    .to_string()
}

fn history() -> String {
    let mut lines = Vec::new();
    for i in 0..30 {
        lines.push(line(
            "hasher",
            "hash",
            &format!("compute sha256 digests of archive {i}"),
            40,
            1.0,
        ));
        lines.push(line(
            "painter",
            "hash",
            &format!("compute sha256 digests of archive {i}"),
            80,
            0.3,
        ));
        lines.push(line(
            "painter",
            "ui",
            &format!("draw the latency chart {i}"),
            30,
            1.0,
        ));
    }
    lines.join("\n")
}

/// Everything the API promises, against one running daemon.
fn exercise(daemon: &Daemon, token: &str, backend: &str) {
    let (status, body) = daemon.post("/api/learn/records", token, &history());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stored"], 90);

    // A JSON array works too.
    let array = format!(
        "[{}]",
        line("hasher", "hash", "hash one more archive", 41, 1.0)
    );
    let (status, body) = daemon.post("/api/learn/records", token, &array);
    assert_eq!((status, body["stored"].clone()), (200, json!(1)));

    // One bad record: the whole batch is refused, naming record and field.
    let bad = [
        line("hasher", "hash", "fine", 1, 1.0),
        line("hasher", "hash", "fine", 1, 1.0),
        line("hasher", "hash", "wrong rate", 1, 1.5),
    ]
    .join("\n");
    let (status, body) = daemon.post("/api/learn/records", token, &bad);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_record");
    assert_eq!(body["error"]["record"], 3);
    assert_eq!(body["error"]["field"], "success_rate");
    let unknown = r#"{"agent_id":"a","task_type":"t","task_description":"x","execution_time_ms":1,"success_rate":1,"colour":"red"}"#;
    let (status, body) = daemon.post("/api/learn/records", token, unknown);
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("colour"))
    );
    let (_, status_body) = daemon.get("/api/status", Some(token));
    assert_eq!(status_body["store"]["backend"], backend);
    assert_eq!(
        status_body["store"]["records"], 91,
        "refused batches store nothing"
    );

    let ask = json!({"task_description": "compute sha256 digests of the backup archive", "context": {"size": 4096}});
    let (status, p) = daemon.post("/api/learn/predict", token, &ask.to_string());
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["predicted_agent"], "hasher", "{p}");
    assert!(p["confidence_score"].as_f64().unwrap() > 0.5, "{p}");
    assert_eq!(p["alternative_agents"][0][0], "painter");
    assert!(p["execution_time_estimate_ms"].as_u64().unwrap() > 0);
    assert!(p["resource_estimate"]["cpu"].as_f64().is_some());
    assert!(p["reasoning"]["similar_tasks"].as_u64().unwrap() > 0);
    let (status, p) = daemon.post(
        "/api/learn/predict",
        token,
        &json!({"task_description": "draw a chart", "exclude_agents": ["painter"]}).to_string(),
    );
    assert_eq!(
        (status, p["predicted_agent"].clone()),
        (200, json!("hasher"))
    );
    let (status, e) = daemon.post("/api/learn/predict", token, r#"{"task_description": ""}"#);
    assert_eq!(
        (status, e["error"]["code"].clone()),
        (400, json!("invalid_request"))
    );
    let (status, e) = daemon.post("/api/learn/predict", token, "{not json");
    assert_eq!(status, 400, "{e}");

    let (status, anomalies) =
        daemon.get("/api/learn/anomalies?threshold_std_devs=2.5", Some(token));
    assert_eq!(status, 200);
    assert!(anomalies.is_array(), "{anomalies}");
    let (status, e) = daemon.get("/api/learn/anomalies?threshold_std_devs=-1", Some(token));
    assert_eq!(status, 400, "{e}");
    let (status, insights) = daemon.get("/api/learn/insights", Some(token));
    assert_eq!(status, 200);
    assert_eq!(insights["total_records"], 91);
    assert_eq!(insights["best_agent_by_task_type"]["hash"][0], "hasher");
    let (status, trend) = daemon.get(
        "/api/learn/trends?agent_id=painter&time_window_hours=2",
        Some(token),
    );
    assert_eq!(
        (status, trend["samples"].clone()),
        (200, json!(60)),
        "{trend}"
    );
    let plan = json!({
        "pending_tasks": [
            {"task_id": "a", "task_description": "compute sha256 digests of archive 99"},
            {"task_id": "b", "task_description": "draw the latency chart 99"}
        ],
        "capacity": {"hasher": 1, "painter": 1}
    });
    let (status, plan) = daemon.post("/api/learn/allocate", token, &plan.to_string());
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["assignments"]["hasher"], json!(["a"]));
    assert_eq!(plan["assignments"]["painter"], json!(["b"]));

    // Without the token: refused.
    let (status, _) = daemon.get("/api/learn/insights", None);
    assert_eq!(status, 401);
}

#[test]
fn learning_api_on_the_embedded_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &[]);
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    let token = token.trim();
    exercise(&daemon, token, "sqlite");
    let (exit, _) = daemon.stop(Signal::SIGINT);
    assert!(exit.success());

    let daemon = Daemon::start(&data, &[]);
    let (_, status) = daemon.get("/api/status", Some(token));
    assert_eq!(status["store"]["records"], 91);
    assert!(
        status["store"]["search"]
            .as_str()
            .unwrap()
            .starts_with("dsmil-accel/"),
        "{status}"
    );
    let ask = json!({"task_description": "draw the latency chart for today"});
    let (_, p) = daemon.post("/api/learn/predict", token, &ask.to_string());
    assert_eq!(
        p["predicted_agent"], "painter",
        "the index is reloaded: {p}"
    );
    let (exit, _) = daemon.stop(Signal::SIGTERM);
    assert!(exit.success());
}

#[test]
fn learning_api_on_postgres() {
    let Some(url) =
        dsmil_core::testenv::service_from_env(dsmil_core::testenv::DATABASE_URL_VAR).unwrap()
    else {
        eprintln!("PostgreSQL not configured; skipped");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let name = format!("dsmild_{}", uuid::Uuid::new_v4().simple());
    let admin = url.clone();
    runtime.block_on(async {
        let pool = sqlx::PgPool::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .unwrap();
    });
    let (base, _) = url.rsplit_once('/').unwrap();
    let db_url = format!("{base}/{name}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &["--database-url", &db_url]);
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    exercise(&daemon, token.trim(), "postgres");
    let (_, status): (u16, Value) = daemon.get("/api/status", Some(token.trim()));
    assert!(
        status["store"]["search"]
            .as_str()
            .unwrap()
            .starts_with("pgvector-hnsw"),
        "{status}"
    );
    assert_eq!(status["store"]["pending"], 0);
    let (exit, _) = daemon.stop(Signal::SIGTERM);
    assert!(exit.success());
    runtime.block_on(async {
        let pool = sqlx::PgPool::connect(&admin).await.unwrap();
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&pool)
            .await
            .unwrap();
    });
}
