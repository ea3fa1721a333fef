//! HTTP agents against a real local server.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use dsmil_coord::agent::{Agent, AgentError, TaskInput};
use dsmil_coord::agents::HttpAgent;
use dsmil_core::{AgentId, TaskId};
use serde_json::{Value, json};

async fn server() -> String {
    let app = Router::new()
        .route(
            "/double",
            post(|body: axum::Json<Value>| async move {
                let n = body["input_data"]["n"].as_i64().unwrap_or(0);
                axum::Json(json!({"result": {"doubled": n * 2}}))
            }),
        )
        .route(
            "/down",
            post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "maintenance") }),
        )
        .route(
            "/missing",
            post(|| async { (StatusCode::NOT_FOUND, "no such agent") }),
        )
        .route("/garbage", post(|| async { "<html>oops</html>" }))
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "{}"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn input(timeout_ms: u64) -> TaskInput {
    TaskInput {
        task_id: TaskId::new("t").unwrap(),
        task_description: "double it".into(),
        input_data: json!({"n": 21}),
        attempt: 1,
        timeout_ms,
    }
}

fn agent(url: String) -> HttpAgent {
    HttpAgent::new(AgentId::new("web").unwrap(), url).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_and_typed_failures() {
    let base = server().await;
    let out = agent(format!("{base}/double"))
        .run(&input(5000))
        .await
        .unwrap();
    assert_eq!(out.result, json!({"doubled": 42}));

    let err = agent(format!("{base}/down"))
        .run(&input(5000))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AgentError::Http { status: 503, body } if body == "maintenance"),
        "{err}"
    );
    assert!(err.is_retryable());
    let err = agent(format!("{base}/missing"))
        .run(&input(5000))
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::Http { status: 404, .. }) && !err.is_retryable());
    let err = agent(format!("{base}/garbage"))
        .run(&input(5000))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AgentError::InvalidOutput { reason, source: Some(_) } if reason.contains("oops")),
        "{err}"
    );
    let err = agent(format!("{base}/slow"))
        .run(&input(300))
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::Timeout { .. }), "{err}");

    // Nothing listens here.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = agent(format!("http://127.0.0.1:{port}/x"))
        .run(&input(2000))
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::Transport { .. }), "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the client's error is kept"
    );
    assert!(matches!(
        HttpAgent::new(AgentId::new("bad").unwrap(), "ftp://x"),
        Err(AgentError::InvalidUrl { .. })
    ));
}
