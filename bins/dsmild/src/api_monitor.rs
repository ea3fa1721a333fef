//! The monitoring surface: the dashboard page at `/`, the WebSocket at `/ws` (token in the
//! `Authorization` header or `?token=`), `/api/alerts`, and `/metrics` in Prometheus text format
//! with every layer's counters and histograms.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dsmil_monitor::metrics::{CONTENT_TYPE, MetricsWriter};
use dsmil_monitor::ws::{accept_key, request_token, token_matches};
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::api::{ApiError, AppState};

/// The dashboard: one self-contained page (HTML, CSS and JS; no CDN).
const DASHBOARD: &str = include_str!("dashboard.html");

/// Routes that need the token (mounted behind the middleware).
pub fn protected_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/alerts", get(alerts))
        .route("/metrics", get(metrics))
}

/// Routes that check the token themselves (`/ws`) or need none (the page, which asks for it).
pub fn open_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(dashboard))
        .route("/ws", get(websocket))
}

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        DASHBOARD,
    )
        .into_response()
}

async fn websocket(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let Some(hub) = state.hub.clone() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "monitor_unavailable",
            "the monitoring layer is not running",
        )
        .into_response();
    };
    let headers = request.headers();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !request_token(auth, request.uri().query()).is_some_and(|t| token_matches(&state.token, t)) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the WebSocket needs the API token (Authorization: Bearer <token> or ?token=<token>)",
        )
        .into_response();
    }
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| upgrade && version)
    else {
        return ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            "/ws speaks WebSocket (version 13): send an Upgrade: websocket request",
        )
        .into_response();
    };
    let accept = accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ended = hub.serve_upgraded(TokioIo::new(upgraded)).await;
                tracing::debug!(?ended, "WebSocket connection ended");
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn alerts(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let view = state.alerts.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "monitor_unavailable",
            "the monitoring layer is not running",
        )
    })?;
    let snapshot = view.snapshot();
    Ok(Json(json!({
        "active": snapshot.active,
        "history": snapshot.history,
        "responses": snapshot.responses,
        "counters": snapshot.counters,
        "rates": view.rates(),
        "thresholds": state.config.alerts,
    })))
}

/// Bucket bounds of the latency histograms, seconds.
const LATENCY_BOUNDS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0,
];

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut w = MetricsWriter::new();
    w.gauge(
        "dsmil_info",
        "Build information (always 1).",
        &[("version", dsmil_core::VERSION)],
        1.0,
    );
    w.gauge(
        "dsmil_uptime_seconds",
        "Seconds since dsmild started.",
        &[],
        state.started.elapsed().as_secs_f64(),
    );
    w.gauge(
        "dsmil_event_bus_subscribers",
        "Subscribers of the event bus.",
        &[],
        state.bus.subscriber_count() as f64,
    );
    accel_metrics(&mut w, &state);
    tpm_metrics(&mut w, &state);
    learn_metrics(&mut w, &state).await;
    coord_metrics(&mut w, &state);
    monitor_metrics(&mut w, &state);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], w.finish()).into_response()
}

fn accel_metrics(w: &mut MetricsWriter, state: &AppState) {
    for (kind, c) in state.engine.counters() {
        let l = [("operation", kind)];
        w.counter(
            "dsmil_accel_operations_total",
            "Accelerator jobs run.",
            &l,
            c.ops as f64,
        );
        w.counter(
            "dsmil_accel_failures_total",
            "Accelerator jobs that failed.",
            &l,
            c.failures as f64,
        );
        w.counter(
            "dsmil_accel_bytes_total",
            "Bytes (or elements) processed.",
            &l,
            c.bytes as f64,
        );
        w.counter(
            "dsmil_accel_busy_seconds_total",
            "Time spent running jobs.",
            &l,
            c.busy_nanos as f64 / 1e9,
        );
    }
    w.gauge(
        "dsmil_accel_scale",
        "Accelerator concurrency scale (0-1).",
        &[],
        state.engine.scale(),
    );
    w.gauge(
        "dsmil_accel_queued",
        "Accelerator jobs waiting.",
        &[],
        state.engine.queued() as f64,
    );
    w.gauge(
        "dsmil_accel_thermal_throttled",
        "Whether the accelerator is thermally throttled.",
        &[],
        f64::from(u8::from(state.engine.thermal_throttled())),
    );
}

fn tpm_metrics(w: &mut MetricsWriter, state: &AppState) {
    let Some(tpm) = &state.tpm else { return };
    let caps = tpm.capabilities();
    w.gauge(
        "dsmil_tpm_hardware_rooted",
        "1 when keys live in a hardware TPM, 0 for the software TPM and swtpm.",
        &[("backend", &caps.backend)],
        f64::from(u8::from(caps.hardware_rooted)),
    );
    let c = tpm.perf_snapshot().counters;
    for (result, v) in [
        ("success", c.successful_operations),
        ("failure", c.failed_operations),
    ] {
        w.counter(
            "dsmil_tpm_operations_total",
            "TPM operations by result.",
            &[("result", result)],
            v as f64,
        );
    }
    for (kind, v) in [
        ("timeout", c.timeout_errors),
        ("hardware", c.hardware_errors),
        ("policy_violation", c.policy_violations),
        ("auth_failure", c.authentication_failures),
    ] {
        w.counter(
            "dsmil_tpm_errors_total",
            "TPM errors by kind.",
            &[("kind", kind)],
            v as f64,
        );
    }
    for (op, h) in tpm.perf().histograms() {
        let name = serde_json::to_value(op)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
            .iter()
            .map(|s| (*s, h.count_at_most_us((s * 1e6) as u64)))
            .collect();
        w.histogram(
            "dsmil_tpm_operation_duration_seconds",
            "TPM operation latency.",
            &[("operation", &name)],
            &buckets,
            h.sum_us() as f64 / 1e6,
            h.count(),
        );
    }
    if let Some(log) = &state.audit {
        w.gauge(
            "dsmil_audit_entries",
            "Entries in the audit log.",
            &[],
            log.len() as f64,
        );
        w.gauge(
            "dsmil_audit_signed_entries",
            "Entries covered by a signed checkpoint.",
            &[],
            log.signed() as f64,
        );
    }
}

async fn learn_metrics(w: &mut MetricsWriter, state: &AppState) {
    let Some(engine) = &state.learning else {
        return;
    };
    let store = engine.store();
    if let Ok(n) = store.count().await {
        w.gauge(
            "dsmil_learn_records",
            "Performance records in the learning store.",
            &[("backend", store.backend())],
            n as f64,
        );
    }
    if let Ok(n) = store.pending().await {
        w.gauge(
            "dsmil_learn_outbox_pending",
            "Records waiting in the outbox.",
            &[],
            n as f64,
        );
    }
    w.gauge(
        "dsmil_learn_known_agents",
        "Agents with history.",
        &[],
        engine.known_agents().len() as f64,
    );
}

fn coord_metrics(w: &mut MetricsWriter, state: &AppState) {
    let Some(co) = &state.coordinator else { return };
    w.gauge(
        "dsmil_workflows_active",
        "Workflows running now.",
        &[],
        co.active().len() as f64,
    );
    for a in co.registry().info() {
        let id = a.id.to_string();
        w.gauge(
            "dsmil_agent_available_slots",
            "Free concurrency slots per agent.",
            &[("agent", &id)],
            a.available as f64,
        );
        let open = a.breaker != dsmil_coord::resilience::BreakerState::Closed;
        w.gauge(
            "dsmil_agent_circuit_open",
            "1 while an agent's circuit breaker is not closed.",
            &[("agent", &id)],
            f64::from(u8::from(open)),
        );
    }
}

fn monitor_metrics(w: &mut MetricsWriter, state: &AppState) {
    if let Some(hub) = &state.hub {
        let s = hub.stats();
        w.gauge(
            "dsmil_ws_clients",
            "WebSocket clients connected.",
            &[],
            s.clients as f64,
        );
        w.counter(
            "dsmil_ws_connections_total",
            "WebSocket connections accepted.",
            &[],
            s.connections_total as f64,
        );
        w.counter(
            "dsmil_ws_slow_disconnects_total",
            "Clients dropped for falling behind.",
            &[],
            s.slow_disconnects_total as f64,
        );
        w.counter(
            "dsmil_ws_messages_total",
            "Messages sent to WebSocket clients.",
            &[],
            s.messages_total as f64,
        );
        w.counter(
            "dsmil_ws_protocol_errors_total",
            "Client messages answered with an error.",
            &[],
            s.protocol_errors_total as f64,
        );
    }
    if let Some(view) = &state.alerts {
        for (kind, n) in view.event_counters().by_kind() {
            w.counter(
                "dsmil_events_total",
                "Bus events seen by the monitor, by kind.",
                &[("kind", kind)],
                n as f64,
            );
        }
        let snap = view.snapshot();
        for level in ["warning", "critical", "emergency"] {
            let active = snap
                .active
                .iter()
                .filter(|a| {
                    serde_json::to_value(a.alert.alert_level)
                        .ok()
                        .is_some_and(|v| v == level)
                })
                .count();
            w.gauge(
                "dsmil_alerts_active",
                "Active alerts by level.",
                &[("level", level)],
                active as f64,
            );
        }
        let c = &snap.counters;
        w.counter(
            "dsmil_alerts_resolved_total",
            "Alerts that resolved.",
            &[],
            c.resolved as f64,
        );
        w.counter(
            "dsmil_automatic_responses_total",
            "Automatic responses taken.",
            &[],
            c.automatic_responses as f64,
        );
        w.counter(
            "dsmil_emergencies_total",
            "Emergency responses.",
            &[],
            c.emergencies as f64,
        );
    }
    if let Some(status) = &state.collector {
        let s = status.borrow().clone();
        w.counter(
            "dsmil_health_samples_total",
            "System health samples taken.",
            &[],
            s.samples as f64,
        );
        w.counter(
            "dsmil_health_sample_failures_total",
            "System health samples that failed.",
            &[],
            s.failures as f64,
        );
        if let Some(h) = s.last_sample {
            w.gauge(
                "dsmil_cpu_usage_percent",
                "CPU busy, %.",
                &[],
                h.cpu_usage_percent,
            );
            w.gauge(
                "dsmil_memory_usage_percent",
                "Memory in use, %.",
                &[],
                h.memory_usage_percent,
            );
            w.gauge(
                "dsmil_disk_usage_percent",
                "Disk in use on the data dir's filesystem, %.",
                &[],
                h.disk_usage_percent,
            );
            w.gauge(
                "dsmil_load_average",
                "1-minute load average.",
                &[],
                h.load_average[0],
            );
            if h.thermal_state.sensor_count > 0 {
                w.gauge(
                    "dsmil_temperature_max_celsius",
                    "Hottest sensor, °C.",
                    &[],
                    h.thermal_state.max_temp,
                );
            }
        }
    }
}
