//! dsmild's monitoring surface on a real daemon: the WebSocket at `/ws` with a real client,
//! `/api/alerts` with an alert raised from live samples, and `/metrics` with every layer.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::Daemon;
use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Samples every 200 ms; any CPU use raises a warning.
const CONFIG: &str =
    "health_interval_ms = 200\n[alerts]\ncpu_percent = { warning = 0.0, critical = 95.0 }\n";

fn start(dir: &Path) -> (Daemon, String) {
    let config = dir.join("dsmil.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let data = dir.join("data");
    let daemon = Daemon::start(&data, &["--config", config.to_str().unwrap()]);
    let token = std::fs::read_to_string(data.join("api-token"))
        .unwrap()
        .trim()
        .to_owned();
    (daemon, token)
}

fn ws_url(daemon: &Daemon) -> String {
    daemon.base.replace("http://", "ws://") + "/ws"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_alerts_and_metrics_on_a_real_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, token) = start(dir.path());

    // No token, a wrong token: refused before the upgrade.
    for url in [ws_url(&daemon), format!("{}?token=nope", ws_url(&daemon))] {
        let err = connect_async(url).await.unwrap_err();
        assert!(err.to_string().contains("401"), "{err}");
    }
    let (mut ws, _) = connect_async(format!("{}?token={token}", ws_url(&daemon)))
        .await
        .unwrap();
    let hello = recv(&mut ws).await;
    assert_eq!(hello["type"], "connection_established");
    assert_eq!(hello["seq"], 1);
    // Live health samples and the CPU alert arrive.
    let (mut health, mut alert) = (None, None);
    let deadline = Instant::now() + crate::common::PATIENCE;
    while health.is_none() || alert.is_none() {
        assert!(
            Instant::now() < deadline,
            "in {:?}: health {health:?}, alert {alert:?}",
            crate::common::PATIENCE
        );
        let m = recv(&mut ws).await;
        if m["type"] == "system_health" {
            health = Some(m);
        } else if m["type"] == "alert" {
            alert = Some(m);
        }
    }
    let health = health.unwrap();
    let cpu = health["data"]["cpu_usage_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&cpu));
    assert_eq!(alert.unwrap()["data"]["metric_name"], "cpu_usage_percent");
    ws.send(Message::text(r#"{"type":"ping","n":1}"#))
        .await
        .unwrap();
    let deadline = Instant::now() + crate::common::PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "no pong");
        let m = recv(&mut ws).await;
        if m["type"] == "pong" {
            assert_eq!(m["n"], 1);
            break;
        }
    }

    let (status, alerts) = daemon.get("/api/alerts", Some(&token));
    assert_eq!(status, 200, "{alerts}");
    let active = alerts["active"].as_array().unwrap();
    assert!(
        active
            .iter()
            .any(|a| a["alert"]["metric_name"] == "cpu_usage_percent"),
        "{alerts}"
    );
    let (status, _) = daemon.get("/api/alerts", None);
    assert_eq!(status, 401);
    let (_, st) = daemon.get("/api/status", Some(&token));
    assert_eq!(st["connected_clients"], 1, "{st}");
    assert!(st["health_collector"]["samples"].as_u64().unwrap() >= 1);

    // Prometheus: every layer, token required.
    let mut resp = crate::common::agent()
        .get(format!("{}/metrics", daemon.base))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert!(
        resp.headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.body_mut().read_to_string().unwrap();
    for family in [
        "# TYPE dsmil_uptime_seconds gauge",
        "# TYPE dsmil_accel_scale gauge",
        "# TYPE dsmil_tpm_operation_duration_seconds histogram",
        "dsmil_tpm_hardware_rooted{backend=\"soft\"} 0",
        "# TYPE dsmil_learn_records gauge",
        "# TYPE dsmil_workflows_active gauge",
        "dsmil_ws_clients 1",
        "# TYPE dsmil_cpu_usage_ratio gauge",
        "dsmil_events_total{kind=\"system_health\"}",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
    // The CPU alert is active at some level (critical when the machine is busy).
    let active: f64 = text
        .lines()
        .filter(|l| l.starts_with("dsmil_alerts_active{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(active >= 1.0, "{text}");
    let (status, _) = daemon.get("/metrics", None);
    assert_eq!(status, 401);

    // The page is served without a token; it asks for one.
    let mut page = crate::common::agent().get(&daemon.base).call().unwrap();
    assert!(page.body_mut().read_to_string().unwrap().contains("<html"));

    // A stop says goodbye to WebSocket clients.
    let stopping = std::thread::spawn(move || daemon.stop(Signal::SIGTERM));
    let deadline = Instant::now() + crate::common::PATIENCE;
    let frame = loop {
        assert!(Instant::now() < deadline, "no close frame");
        match tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(f))) => break f.unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame: {other:?}"),
        }
    };
    assert_eq!(frame.code, CloseCode::Away);
    drop(ws);
    let (status, stderr) = stopping.join().unwrap();
    assert!(status.success(), "{stderr}");
    // Alerts were audited.
    let log = std::fs::read_to_string(dir.path().join("data/audit/audit.log")).unwrap();
    assert!(log.contains("alert_raised"), "{log}");
}

async fn recv<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no message in time");
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).unwrap(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("stream ended: {other:?}"),
        }
    }
}

#[test]
fn the_websocket_route_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, token) = start(dir.path());
    let (status, body) = daemon.get(&format!("/ws?token={token}"), None);
    assert_eq!(status, 426, "{body}");
    assert_eq!(body["error"]["code"], "websocket_required");
}

/// `[websocket]` limits reach the hub: a second client beyond `max_clients` is refused with
/// 1013, and a message over `max_message_bytes` closes its sender with 1009.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_limits_come_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dsmil.toml");
    std::fs::write(
        &config,
        "[websocket]\nmax_clients = 1\nmax_message_bytes = 1024\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &["--config", config.to_str().unwrap()]);
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    let url = format!("{}?token={}", ws_url(&daemon), token.trim());
    let (mut first, _) = connect_async(&url).await.unwrap();
    assert_eq!(recv(&mut first).await["type"], "connection_established");

    let (mut second, _) = connect_async(&url).await.unwrap();
    let refused = close_frame(&mut second).await;
    assert_eq!(refused.code, CloseCode::Again, "{refused:?}");
    assert!(refused.reason.contains("too many clients"), "{refused:?}");

    first
        .send(Message::text(format!(
            r#"{{"type":"ping","pad":"{}"}}"#,
            "x".repeat(2048)
        )))
        .await
        .unwrap();
    let closed = close_frame(&mut first).await;
    assert_eq!(closed.code, CloseCode::Size, "{closed:?}");
    assert!(closed.reason.contains("1024"), "{closed:?}");
}

/// Reads until the server's close frame (health samples may come first).
async fn close_frame<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
) -> tokio_tungstenite::tungstenite::protocol::CloseFrame
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let deadline = Instant::now() + crate::common::PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "no close frame");
        match tokio::time::timeout(crate::common::PATIENCE, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => return frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame: {other:?}"),
        }
    }
}

/// `[responses]` reaches the alert engine: a CPU-critical alert pauses non-critical workflows
/// (audited as `automatic_response`) when responses are on, and only raises the alert when
/// `enabled = false`.
#[test]
fn automatic_responses_follow_the_configuration() {
    for enabled in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("dsmil.toml");
        // Any CPU use at all is critical.
        std::fs::write(
            &config,
            format!(
                "health_interval_ms = 200\n[alerts]\ncpu_percent = {{ warning = 0.0, critical = 0.001 }}\n\
                 [responses]\nenabled = {enabled}\n"
            ),
        )
        .unwrap();
        let data = dir.path().join("data");
        let daemon = Daemon::start(&data, &["--config", config.to_str().unwrap()]);
        let token = std::fs::read_to_string(data.join("api-token")).unwrap();
        let deadline = Instant::now() + crate::common::PATIENCE;
        loop {
            let (_, alerts) = daemon.get("/api/alerts", Some(token.trim()));
            let critical = alerts["history"].as_array().unwrap().iter().any(|t| {
                t["alert"]["metric_name"] == "cpu_usage_percent"
                    && t["alert"]["alert_level"] == "critical"
            });
            if critical {
                break;
            }
            assert!(Instant::now() < deadline, "no critical CPU alert: {alerts}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let (status, stderr) = daemon.stop(Signal::SIGTERM);
        assert!(status.success(), "{stderr}");
        let log = std::fs::read_to_string(data.join("audit/audit.log")).unwrap();
        assert_eq!(
            log.contains("automatic_response"),
            enabled,
            "responses enabled = {enabled}:\n{log}"
        );
    }
}

/// A client written to the seed's WebSocket shapes, on the third-party Python `websockets`
/// library (`bins/dsmild/tests/seed_ws_client.py`), talks to dsmild unchanged.
#[test]
fn a_client_written_to_the_seeds_shapes_works_unchanged() {
    let Some(python) = dsmil_core::testenv::service_from_env(dsmil_core::testenv::PYTHON_VAR)
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        eprintln!("skipped: {} is not set", dsmil_core::testenv::PYTHON_VAR);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (daemon, token) = start(dir.path());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/seed_ws_client.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(ws_url(&daemon))
        .arg(&token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for check in [
        "connection_established: the seed's data",
        "subscription_updated: unknown type ignored",
        "pong: timestamp",
        "system_health and alert: the seed's shapes",
        "error: message",
    ] {
        assert!(stdout.contains(check), "{check} missing from:\n{stdout}");
    }
    daemon.stop(Signal::SIGTERM);
}
