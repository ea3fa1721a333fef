//! The daemon's answers against its published contract: a real dsmild is called on its routes
//! (success and error answers) and its WebSocket stream is read, and every body is validated
//! against the schema `dsmil_api::routes` names for that route and status, by an independent
//! JSON Schema validator — and decoded into the contract's Rust types.

use std::time::{Duration, Instant};

use dsmil_api::routes::{self, Body, Route};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Daemon, PATIENCE};
use crate::schema;

const CONFIG: &str = r#"health_interval_ms = 200

[[agents]]
id = "echo"
kind = "builtin"
task_types = ["greeting"]

[[agents]]
id = "fail"
kind = "builtin"
"#;

/// The schema of `route`'s answer with `status`, from the contract's table.
fn answer_schema(route: &Route, status: u16) -> Value {
    let answer = route
        .answers
        .iter()
        .find(|a| a.status == status)
        .unwrap_or_else(|| {
            panic!(
                "{} {} does not document {status}",
                route.method.as_str(),
                route.path
            )
        });
    match answer.body {
        Body::Json(s) => json!({"$ref": format!("#/components/schemas/{}", (s.name)())}),
        Body::JsonArray(s) => {
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{}", (s.name)())}})
        }
        other => panic!("{}: {status} is not JSON: {other:?}", route.path),
    }
}

/// Checks one answer against the contract; returns the body.
fn conforms(route: &Route, (status, body): (u16, Value)) -> Value {
    let validator = schema::validator_for(&answer_schema(route, status));
    let errors = schema::errors(&validator, &body);
    assert!(
        errors.is_empty(),
        "{} {} answered {status} outside the contract: {errors:#?}\n{body:#}",
        route.method.as_str(),
        route.path
    );
    body
}

fn decode<T: serde::de::DeserializeOwned>(body: Value) -> T {
    serde_json::from_value(body).unwrap_or_else(|e| panic!("does not decode: {e}"))
}

#[test]
fn every_answer_matches_the_published_contract() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dsmil.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &["--config", config.to_str().unwrap()]);
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    let token = token.trim();
    let get = |path: &str| daemon.get(path, Some(token));
    let post = |path: &str, body: &str| daemon.post(path, token, body);

    conforms(&routes::HEALTH, daemon.get("/api/health", None));
    conforms(&routes::READY, daemon.get("/api/ready", None));
    let status: dsmil_api::status::Status = decode(conforms(&routes::STATUS, get("/api/status")));
    // The two declared, and the built-ins they do not declare.
    assert_eq!(status.agents.len(), 5);
    conforms(&routes::STATUS, daemon.get("/api/status", None)); // 401
    conforms(
        &routes::STATUS,
        daemon.get("/api/status", Some("wrong-token")),
    ); // 401

    // Workflows: finished, accepted, read back, an invalid spec, an unknown id.
    let spec = json!({"workflow_type": "demo", "execution_mode": "sequential",
        "tasks": [{"id": "a", "agent_id": "echo", "task_description": "say hello", "input_data": {"x": 1}},
                  {"id": "b", "agent_id": "auto", "task_description": "say hello again", "dependencies": ["a"]}]});
    let done: dsmil_api::workflows::WorkflowResult = decode(conforms(
        &routes::SUBMIT_WORKFLOW,
        post("/api/workflows", &spec.to_string()),
    ));
    assert!(done.success, "{done:?}");
    let accepted: dsmil_api::workflows::WorkflowAccepted = decode(conforms(
        &routes::SUBMIT_WORKFLOW,
        post("/api/workflows?wait=false", &spec.to_string()),
    ));
    let id = accepted.workflow_id.to_string();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let record: dsmil_api::workflows::WorkflowRecord = decode(conforms(
            &routes::GET_WORKFLOW,
            get(&format!("/api/workflows/{id}")),
        ));
        if record.state.is_terminal() {
            assert_eq!(record.results.len(), 2);
            break;
        }
        assert!(Instant::now() < deadline, "the workflow never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    conforms(
        &routes::SUBMIT_WORKFLOW,
        post("/api/workflows", "{\"tasks\": 1}"),
    );
    conforms(&routes::GET_WORKFLOW, get("/api/workflows/not-a-uuid"));
    conforms(
        &routes::GET_WORKFLOW,
        get("/api/workflows/00000000-0000-0000-0000-000000000000"),
    );
    conforms(
        &routes::CANCEL_WORKFLOW,
        post(
            "/api/workflows/00000000-0000-0000-0000-000000000000/cancel",
            "",
        ),
    );

    // Learning: records (stored, and a bad one naming record and field), prediction, analyses.
    let records = "{\"agent_id\":\"echo\",\"task_type\":\"greeting\",\"task_description\":\"say hello\",\"execution_time_ms\":5,\"success_rate\":1.0}\n\
                   {\"agent_id\":\"fail\",\"task_type\":\"greeting\",\"task_description\":\"say hello\",\"execution_time_ms\":5,\"success_rate\":0.0}";
    let stored: dsmil_api::learn::RecordsStored = decode(conforms(
        &routes::RECORD_PERFORMANCE,
        post("/api/learn/records", records),
    ));
    assert_eq!(stored.received, 2);
    let bad = conforms(
        &routes::RECORD_PERFORMANCE,
        post(
            "/api/learn/records",
            "[{\"agent_id\":\"echo\",\"task_type\":\"t\",\"task_description\":\"x\",\"execution_time_ms\":5,\"success_rate\":7}]",
        ),
    );
    let bad: dsmil_api::ErrorResponse = decode(bad);
    assert_eq!(
        (bad.error.record, bad.error.field.as_deref()),
        (Some(1), Some("success_rate"))
    );
    let prediction: dsmil_api::learn::LearningPrediction = decode(conforms(
        &routes::PREDICT,
        post(
            "/api/learn/predict",
            "{\"task_description\":\"say hello\",\"task_type\":\"greeting\"}",
        ),
    ));
    assert_eq!(prediction.predicted_agent.as_str(), "echo");
    conforms(
        &routes::PREDICT,
        post("/api/learn/predict", "{\"task\":\"x\"}"),
    );
    conforms(&routes::ANOMALIES, get("/api/learn/anomalies"));
    conforms(
        &routes::ANOMALIES,
        get("/api/learn/anomalies?threshold_std_devs=x"),
    );
    conforms(&routes::INSIGHTS, get("/api/learn/insights"));
    conforms(&routes::TRENDS, get("/api/learn/trends?agent_id=echo"));
    conforms(&routes::TRENDS, get("/api/learn/trends"));
    conforms(
        &routes::ALLOCATE,
        post(
            "/api/learn/allocate",
            "{\"pending_tasks\":[{\"task_id\":\"t1\",\"task_description\":\"say hello\"}],\"capacity\":{\"echo\":1}}",
        ),
    );

    // TPM, devices, audit.
    conforms(&routes::TPM_INFO, get("/api/tpm/info"));
    let quote: dsmil_api::tpm::QuoteResponse = decode(conforms(
        &routes::TPM_QUOTE,
        post("/api/tpm/quote", "{\"pcrs\":[0,7],\"nonce\":\"abcd\"}"),
    ));
    assert_eq!(quote.pcrs.values.len(), 2);
    conforms(
        &routes::TPM_QUOTE,
        post("/api/tpm/quote", "{\"pcrs\":[99]}"),
    );
    let devices: dsmil_api::devices::Devices =
        decode(conforms(&routes::DEVICES, get("/api/devices")));
    assert_eq!(devices.devices.len(), 108);
    assert_eq!(devices.devices[9].device.to_string(), "0x8009");
    assert!(devices.devices[9].quarantined);
    conforms(
        &routes::DEVICE_WRITE,
        post("/api/devices/0x8000/write", "{\"data\":\"00ff\"}"),
    );
    conforms(
        &routes::DEVICE_WRITE,
        post("/api/devices/0x8009/write", "{\"data\":\"00ff\"}"),
    );
    conforms(
        &routes::DEVICE_WRITE,
        post("/api/devices/banana/write", "{\"data\":\"00\"}"),
    );
    conforms(
        &routes::DEVICE_ATTEST,
        post(
            "/api/devices/0x8001/attest",
            "{\"nonce\":\"abcd\",\"state\":\"ok\"}",
        ),
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = get("/api/audit/proof/0");
        let ok = answer.0 == 200;
        conforms(&routes::AUDIT_PROOF, answer);
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "entry 0 was never signed");
        std::thread::sleep(Duration::from_millis(100));
    }
    conforms(&routes::AUDIT_PROOF, get("/api/audit/proof/x"));
    // Entry 0 is signed: a consistency proof from 0 (and from 1) to the latest head.
    let proof: dsmil_api::audit::ConsistencyProof = decode(conforms(
        &routes::AUDIT_CONSISTENCY,
        get("/api/audit/consistency?from=1"),
    ));
    assert!(proof.verify() && proof.from_size == 1, "{proof:?}");
    conforms(
        &routes::AUDIT_CONSISTENCY,
        get("/api/audit/consistency?from=2&to=1"),
    ); // 400
    conforms(
        &routes::AUDIT_CONSISTENCY,
        get("/api/audit/consistency?from=x"),
    ); // 400
    let witnesses: dsmil_api::audit::WitnessView = decode(conforms(
        &routes::AUDIT_WITNESSES,
        get("/api/audit/witnesses"),
    ));
    assert!(!witnesses.clustered && witnesses.nodes.is_empty());
    conforms(&routes::ALERTS, get("/api/alerts"));
    let view: dsmil_api::cluster::ClusterView =
        decode(conforms(&routes::CLUSTER, get("/api/cluster")));
    assert!(!view.clustered && view.nodes.is_empty(), "{view:?}");
    conforms(&routes::CLUSTER, daemon.get("/api/cluster", None)); // 401

    // The description the daemon serves is the one the contract generates.
    let (code, served) = get("/api/openapi.json");
    assert_eq!(code, 200);
    assert_eq!(served, schema::document());

    // The WebSocket stream: every message in the schema and in the contract's types.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = format!("{}/ws?token={token}", daemon.base.replacen("http", "ws", 1));
    let messages: Vec<Value> = runtime.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
            if let Message::Text(t) = m {
                out.push(serde_json::from_str(&t).unwrap());
            }
        }
        out
    });
    let validator = schema::validator("ServerMessage");
    let mut kinds = std::collections::BTreeSet::new();
    for m in &messages {
        let errors = schema::errors(&validator, m);
        assert!(errors.is_empty(), "{m}: {errors:#?}");
        let typed: dsmil_api::ws::ServerMessage = decode(m.clone());
        kinds.insert(match typed.metric() {
            Some((_, metric)) => format!(
                "metric/{}",
                serde_json::to_value(metric.metric_type()).unwrap()
            ),
            None => serde_json::to_value(&typed).unwrap()["type"].to_string(),
        });
    }
    for kind in [
        "\"connection_established\"",
        "metric/\"system_health\"",
        "metric/\"agent_activity\"",
        "metric/\"tpm_event\"",
        "metric/\"security_event\"",
        "metric/\"dsmil_device\"",
        "metric/\"workflow_coordination\"",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
}
