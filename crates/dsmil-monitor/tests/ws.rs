//! The WebSocket protocol with real clients (tokio-tungstenite) over loopback TCP.

use std::time::Duration;

use chrono::Utc;
use dsmil_core::monitoring::{
    AlertLevel, MetricType, PerformanceAlert, SecurityEvent, SystemHealth, ThermalState,
};
use dsmil_core::{Event, EventBus};
use dsmil_monitor::ws::{Hub, HubConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const TOKEN: &str = "s3cret-token";
const PATIENCE: Duration = Duration::from_secs(20);

struct Server {
    hub: Hub,
    bus: EventBus,
    url: String,
}

async fn server(config: HubConfig) -> Server {
    let bus = EventBus::new(65_536);
    let hub = Hub::new(config);
    hub.pump(&bus);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let h = hub.clone();
    tokio::spawn(async move { h.serve_tcp(listener, Some(TOKEN.into())).await });
    Server { hub, bus, url }
}

async fn connect(s: &Server) -> Client {
    let (ws, _) = connect_async(format!("{}?token={TOKEN}", s.url))
        .await
        .unwrap();
    ws
}

/// The next text message as JSON (pings are answered by the library while reading).
async fn next(ws: &mut Client) -> Value {
    loop {
        let msg = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("no message in time")
            .expect("stream ended")
            .unwrap();
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn health(cpu: f64) -> Event {
    Event::SystemHealth(SystemHealth {
        timestamp: Utc::now(),
        cpu_usage_percent: cpu,
        memory_usage_percent: 40.0,
        disk_usage_percent: 50.0,
        network_io_bytes_sent: 1,
        network_io_bytes_recv: 2,
        thermal_state: ThermalState::default(),
        load_average: [0.1, 0.2, 0.3],
        uptime_seconds: 5,
    })
}

fn security(kind: &str, description: String) -> Event {
    Event::Security(SecurityEvent::new(
        kind,
        AlertLevel::Critical,
        "test",
        description,
    ))
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required() {
    let s = server(HubConfig::default()).await;
    for url in [s.url.clone(), format!("{}?token=wrong", s.url)] {
        let err = connect_async(url).await.unwrap_err();
        assert!(err.to_string().contains("401"), "{err}");
    }
    // The header works as well as the query parameter.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = s.url.clone().into_client_request().unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (mut ws, _) = connect_async(req).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "connection_established");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeting_snapshot_and_sequence_numbers() {
    let s = server(HubConfig::default()).await;
    s.bus.publish(health(12.5));
    wait_for("the snapshot", || {
        s.hub.stats().connections_total == 0 // the pump runs without clients
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut ws = connect(&s).await;
    let hello = next(&mut ws).await;
    assert_eq!(hello["seq"], 1);
    assert_eq!(hello["type"], "connection_established");
    // The seed's greeting.
    assert_eq!(
        hello["data"]["available_metric_types"]
            .as_array()
            .unwrap()
            .len(),
        MetricType::ALL.len()
    );
    assert!(hello["data"]["server_time"].is_string());
    assert_eq!(hello["data"]["subscription_status"], "all_metrics");
    let snap = next(&mut ws).await;
    assert_eq!(
        (snap["seq"].as_u64(), snap["type"].as_str()),
        (Some(2), Some("system_health"))
    );
    assert!(snap["timestamp"].is_string());
    assert_eq!(snap["snapshot"], true);
    assert_eq!(snap["data"]["cpu_usage_percent"], 12.5);
    s.bus.publish(health(13.0));
    let live = next(&mut ws).await;
    assert_eq!(
        (live["seq"].as_u64(), live["snapshot"].as_bool()),
        (Some(3), Some(false))
    );
    assert_eq!(
        live["event_seq"].as_u64().unwrap(),
        snap["event_seq"].as_u64().unwrap() + 1
    );
    assert_eq!(s.hub.client_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_filter_but_alerts_and_emergencies_reach_everyone() {
    let s = server(HubConfig::default()).await;
    let mut ws = connect(&s).await;
    next(&mut ws).await;
    ws.send(Message::text(
        r#"{"type":"subscribe","metric_types":["security_event"]}"#,
    ))
    .await
    .unwrap();
    let updated = next(&mut ws).await;
    assert_eq!(updated["type"], "subscription_updated");
    assert_eq!(
        updated["data"]["subscribed_types"],
        json!(["security_event"])
    );
    s.bus.publish(health(50.0));
    s.bus.publish(Event::Alert(PerformanceAlert {
        alert_id: "cpu".into(),
        timestamp: Utc::now(),
        alert_level: AlertLevel::Warning,
        metric_type: MetricType::SystemHealth,
        metric_name: "cpu_usage_percent".into(),
        current_value: 85.0,
        threshold_value: 80.0,
        description: "CPU high".into(),
        recommended_actions: vec![],
        auto_resolved: false,
    }));
    s.bus.publish(security(
        "emergency_response",
        "three critical alerts".into(),
    ));
    let alert = next(&mut ws).await;
    assert_eq!(
        alert["type"], "alert",
        "system_health was filtered out: {alert}"
    );
    assert_eq!(alert["data"]["metric_name"], "cpu_usage_percent");
    assert!(alert["timestamp"].is_string());
    let sec = next(&mut ws).await;
    assert_eq!(sec["type"], "security_event");
    let emergency = next(&mut ws).await;
    assert_eq!(emergency["type"], "emergency");
    // The seed's notice, and the audited event beside it.
    assert_eq!(emergency["data"]["message"], "three critical alerts");
    assert!(emergency["data"]["active_critical_alerts"].is_u64());
    assert!(emergency["data"]["recommended_action"].is_string());
    assert_eq!(
        emergency["security_event"]["event_type"],
        "emergency_response"
    );
    // An empty subscription still gets emergencies.
    ws.send(Message::text(r#"{"type":"subscribe","metric_types":[]}"#))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["data"]["subscribed_types"], json!([]));
    // Unknown names are ignored, as the seed does, and named in a warning.
    ws.send(Message::text(
        r#"{"type":"subscribe","metric_types":["cpu","tpm_event"]}"#,
    ))
    .await
    .unwrap();
    let updated = next(&mut ws).await;
    assert_eq!(updated["data"]["subscribed_types"], json!(["tpm_event"]));
    assert!(
        updated["warnings"][0].as_str().unwrap().contains("cpu"),
        "{updated}"
    );
    s.bus.publish(security("intrusion", "x".into()));
    s.bus
        .publish(security("emergency_response", "again".into()));
    assert_eq!(next(&mut ws).await["type"], "emergency");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_errors_binary_frames_keep_the_connection() {
    let s = server(HubConfig::default()).await;
    let mut ws = connect(&s).await;
    next(&mut ws).await;
    ws.send(Message::text(r#"{"type":"ping","nonce":42}"#))
        .await
        .unwrap();
    let pong = next(&mut ws).await;
    assert_eq!(
        (pong["type"].as_str(), pong["nonce"].as_i64()),
        (Some("pong"), Some(42))
    );
    assert!(pong["timestamp"].is_string());
    for (frame, code) in [
        (Message::text("{not json"), "invalid_json"),
        (Message::text(r#"{"type":"dance"}"#), "unknown_type"),
        (
            Message::text(r#"{"type":"subscribe","metric_types":"cpu"}"#),
            "invalid_message",
        ),
        (Message::binary(vec![1u8, 2, 3]), "binary_not_supported"),
    ] {
        ws.send(frame).await.unwrap();
        let e = next(&mut ws).await;
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("error"), Some(code)),
            "{e}"
        );
        assert!(e["message"].as_str().unwrap().len() > 10);
    }
    ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "pong", "still served");
    assert_eq!(s.hub.stats().protocol_errors_total, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_only_that_client() {
    let s = server(HubConfig {
        max_message_bytes: 1024,
        ..HubConfig::default()
    })
    .await;
    let mut big = connect(&s).await;
    let mut other = connect(&s).await;
    next(&mut big).await;
    next(&mut other).await;
    big.send(Message::text("x".repeat(4096))).await.unwrap();
    let close = loop {
        match tokio::time::timeout(PATIENCE, big.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = close.unwrap();
    assert_eq!(frame.code, CloseCode::Size);
    assert!(frame.reason.contains("1024"), "{}", frame.reason);
    s.bus.publish(health(1.0));
    assert_eq!(next(&mut other).await["type"], "system_health");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_dropped_with_a_reason_while_a_fast_one_gets_everything() {
    let s = server(HubConfig {
        queue_depth: 1024,
        write_timeout: Duration::from_millis(200),
        ..HubConfig::default()
    })
    .await;
    // A client whose kernel receive buffer is small (no autotuning to tens of MB), so that
    // not reading shows within a few MB.
    let addr = s
        .url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .parse()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(
        format!("{}?token={TOKEN}", s.url),
        MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    let mut fast = connect(&s).await;
    next(&mut slow).await;
    next(&mut fast).await;
    const EVENTS: u64 = 2000;
    let reader = tokio::spawn(async move {
        let mut event_seqs = Vec::new();
        let mut last_seq = 1;
        while event_seqs.len() < EVENTS as usize {
            let m = next(&mut fast).await;
            assert_eq!(
                m["seq"].as_u64().unwrap(),
                last_seq + 1,
                "no gap for a fast client"
            );
            last_seq += 1;
            event_seqs.push(m["event_seq"].as_u64().unwrap());
        }
        event_seqs
    });
    // 2,000 events of 8 KiB: far more than the slow client's socket buffers and queue hold.
    let payload = "p".repeat(8 * 1024);
    for i in 0..EVENTS {
        s.bus.publish(security("bulk", format!("{i} {payload}")));
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let seqs = reader.await.unwrap();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "the fast client missed events"
    );
    wait_for("the slow client to be dropped", || {
        s.hub.stats().slow_disconnects_total == 1
    })
    .await;
    // The slow client reads at last: what was queued, then the reason.
    let frame = loop {
        match tokio::time::timeout(PATIENCE, slow.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = frame.unwrap();
    assert_eq!(frame.code, CloseCode::Policy);
    assert!(frame.reason.contains("too slow"), "{}", frame.reason);
    assert_eq!(
        s.hub.stats().slow_disconnects_total,
        1,
        "only the slow client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_pings_and_says_goodbye_on_shutdown() {
    let s = server(HubConfig {
        ping_interval: Duration::from_millis(50),
        ..HubConfig::default()
    })
    .await;
    let mut ws = connect(&s).await;
    next(&mut ws).await;
    let mut pings = 0;
    while pings < 2 {
        if let Some(Ok(Message::Ping(_))) = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap()
        {
            pings += 1;
        }
    }
    s.hub.shutdown();
    let frame = loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame.unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(frame.code, CloseCode::Away);
    assert!(frame.reason.contains("shutting down"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_answers_pings_is_closed() {
    let s = server(HubConfig {
        ping_interval: Duration::from_millis(30),
        pong_timeout: Duration::from_millis(100),
        ..HubConfig::default()
    })
    .await;
    // A raw client that completes the handshake and then reads nothing (so never pongs).
    let ws = connect(&s).await;
    wait_for("the silent client to be closed", || {
        s.hub.client_count() == 0
    })
    .await;
    drop(ws);
}

fn alert(id: &str, resolved: bool) -> PerformanceAlert {
    PerformanceAlert {
        alert_id: id.into(),
        timestamp: Utc::now(),
        alert_level: AlertLevel::Warning,
        metric_type: MetricType::SystemHealth,
        metric_name: "cpu_usage_percent".into(),
        current_value: 81.0,
        threshold_value: 80.0,
        description: format!("alert {id}"),
        recommended_actions: vec![],
        auto_resolved: resolved,
    }
}

/// The alert ids replayed to a new client (it sends a ping; everything before the pong is the
/// snapshot).
async fn replayed_alerts(s: &Server) -> Vec<String> {
    let mut ws = connect(s).await;
    assert_eq!(next(&mut ws).await["type"], "connection_established");
    ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    let mut ids = Vec::new();
    loop {
        let m = next(&mut ws).await;
        match m["type"].as_str() {
            Some("pong") => return ids,
            Some("alert") => ids.push(m["data"]["alert_id"].as_str().unwrap().to_owned()),
            _ => {}
        }
    }
}

/// A hub that falls behind the bus may miss alerts being raised and resolved; with an alert
/// source it re-reads the active ones, so new clients get the truth, not a stale list.
#[tokio::test(flavor = "current_thread")]
async fn after_falling_behind_the_hub_re_reads_the_active_alerts() {
    for with_source in [false, true] {
        let bus = EventBus::new(4);
        let hub = Hub::new(HubConfig::default());
        if with_source {
            // What the alert engine says is active now.
            assert!(hub.set_alert_source(std::sync::Arc::new(|| vec![alert("fresh", false)])));
            assert!(
                !hub.set_alert_source(std::sync::Arc::new(Vec::new)),
                "set once"
            );
        }
        hub.pump(&bus);
        bus.publish(Event::Alert(alert("stale", false)));
        tokio::task::yield_now().await; // the pump sees "stale" raised
        // Without yielding: the pump falls behind, "stale" resolved and "fresh" raised are lost.
        bus.publish(Event::Alert(alert("stale", true)));
        bus.publish(Event::Alert(alert("fresh", false)));
        for _ in 0..8 {
            bus.publish(health(10.0));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let h = hub.clone();
        tokio::spawn(async move { h.serve_tcp(listener, Some(TOKEN.into())).await });
        let s = Server { hub, bus, url };
        let replayed = replayed_alerts(&s).await;
        assert!(s.hub.stats().lagged_events_total > 0);
        if with_source {
            assert_eq!(replayed, ["fresh"]);
        } else {
            assert_eq!(replayed, ["stale"], "without a source the list stays stale");
        }
        s.hub.shutdown();
    }
}

/// An embedder subscribes when it creates the bus and starts the pump later: an alert raised
/// in between (by the first health sample, say) is still replayed to clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_subscription_keeps_alerts_raised_before_the_pump_started() {
    let bus = EventBus::new(64);
    let early = bus.subscribe();
    bus.publish(Event::Alert(alert("cpu-early", false)));
    let hub = Hub::new(HubConfig::default());
    hub.pump_from(early);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let h = hub.clone();
    tokio::spawn(async move { h.serve_tcp(listener, Some(TOKEN.into())).await });
    let s = Server { hub, bus, url };
    // The pump may not have run yet: reconnect until the hub knows the alert.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while replayed_alerts(&s).await != ["cpu-early"] {
        assert!(tokio::time::Instant::now() < deadline, "the alert was lost");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.hub.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_alerts_are_replayed_to_new_clients_until_resolved() {
    let s = server(HubConfig::default()).await;
    let alert = |resolved: bool| {
        Event::Alert(PerformanceAlert {
            alert_id: "disk-1".into(),
            timestamp: Utc::now(),
            alert_level: AlertLevel::Critical,
            metric_type: MetricType::SystemHealth,
            metric_name: "disk_usage_percent".into(),
            current_value: 93.0,
            threshold_value: 90.0,
            description: "disk nearly full".into(),
            recommended_actions: vec![],
            auto_resolved: resolved,
        })
    };
    s.bus.publish(alert(false));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut ws = connect(&s).await;
    next(&mut ws).await;
    let replayed = next(&mut ws).await;
    assert_eq!(
        (replayed["type"].as_str(), replayed["snapshot"].as_bool()),
        (Some("alert"), Some(true))
    );
    assert_eq!(replayed["data"]["alert_id"], "disk-1");
    s.bus.publish(alert(true));
    assert_eq!(next(&mut ws).await["data"]["auto_resolved"], true);
    let mut late = connect(&s).await;
    next(&mut late).await;
    late.send(Message::text(r#"{"type":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(
        next(&mut late).await["type"],
        "pong",
        "no resolved alert replayed"
    );
}
