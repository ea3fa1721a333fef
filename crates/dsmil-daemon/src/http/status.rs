//! `GET /api/health`, `GET /api/status` and `GET /api/openapi.json`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use dsmil_api::cluster as c;
use dsmil_api::status as s;
use dsmil_coord::config::AgentKind;
use dsmil_coord::resilience::BreakerState;

use axum::http::StatusCode;

use super::wire::name;
use super::{ApiError, AppState};

pub async fn health() -> Json<s::Health> {
    Json(s::Health {
        status: "ok".into(),
    })
}

/// Runs the readiness checks: 200 with each one, or 503 `not_ready` naming the failed ones.
pub async fn ready(State(state): State<Arc<AppState>>) -> Result<Json<s::Readiness>, ApiError> {
    let report = crate::readiness::assess(&state).await;
    if !report.ready() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("not ready: {}", report.failures()),
        ));
    }
    Ok(Json(s::Readiness {
        status: "ready".into(),
        checks: report
            .checks
            .into_iter()
            .map(|c| s::ReadinessCheck {
                name: c.name.into(),
                ok: c.ok,
                detail: c.detail,
                elapsed_ms: u64::try_from(c.elapsed.as_millis()).unwrap_or(u64::MAX),
            })
            .collect(),
    }))
}

pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        dsmil_api::openapi::to_pretty_json(),
    )
        .into_response()
}

fn agent_kind(k: AgentKind) -> s::AgentKind {
    match k {
        AgentKind::Command => s::AgentKind::Command,
        AgentKind::Http => s::AgentKind::Http,
        AgentKind::Builtin => s::AgentKind::Builtin,
    }
}

/// A breaker state on the wire.
pub fn breaker_state(b: BreakerState) -> s::BreakerState {
    match b {
        BreakerState::Closed => s::BreakerState::Closed,
        BreakerState::Open => s::BreakerState::Open,
        BreakerState::HalfOpen => s::BreakerState::HalfOpen,
    }
}

fn accel(state: &AppState) -> s::AccelStatus {
    let t = &state.accel.topology;
    let e = &state.engine;
    s::AccelStatus {
        path: state.accel.platform.path(),
        capabilities: state.accel.capabilities.0.iter().map(name).collect(),
        topology: s::CpuTopology {
            total_cores: t.total_cores,
            p_cores: t.p_cores.clone(),
            e_cores: t.e_cores.clone(),
            avx512_cores: t.avx512_cores.clone(),
            numa_nodes: t.numa_nodes,
            l3_cache_bytes: t.l3_cache_bytes,
            thermal_zones: t.thermal_zones,
        },
        engine: s::EngineStatus {
            workers: e.workers(),
            cores: e.cores().to_vec(),
            pinned: e.pinned(),
            scale: e.scale(),
            queued: e.queued(),
            running: e.running(),
            thermal_throttled: e.thermal_throttled(),
            counters: e
                .counters()
                .into_iter()
                .map(|(kind, c)| {
                    (
                        kind.to_owned(),
                        s::OpCounters {
                            ops: c.ops,
                            failures: c.failures,
                            bytes: c.bytes,
                            busy_nanos: c.busy_nanos,
                            throughput_bytes_per_second: c.throughput_bytes_per_second,
                        },
                    )
                })
                .collect(),
        },
    }
}

pub async fn status(State(state): State<Arc<AppState>>) -> Json<s::Status> {
    let store = state.learning.store();
    let caps = state.tpm.capabilities();
    let collector = state.monitor.collector.status();
    let ws = state.monitor.hub.stats();
    let alerts = state.monitor.alerts.snapshot();
    Json(s::Status {
        version: dsmil_core::VERSION.into(),
        uptime_seconds: state.started.elapsed().as_secs(),
        accel: accel(&state),
        event_bus: s::EventBusStatus {
            subscribers: state.bus.subscriber_count(),
        },
        tpm: s::TpmStatus {
            backend: caps.backend.clone(),
            spec: state.config.tpm.tpm.to_string(),
            hardware_rooted: caps.hardware_rooted,
            vendor: caps.vendor.clone(),
            manufacturer: caps.manufacturer.clone(),
        },
        store: s::StoreStatus {
            backend: store.backend().to_owned(),
            search: store.search_engine().to_string(),
            records: store.count().await.ok(),
            pending: store.pending().await.ok(),
            known_agents: state.learning.known_agents().len(),
        },
        agents: state
            .coordinator
            .registry()
            .info()
            .into_iter()
            .map(|a| s::AgentStatus {
                id: a.id,
                kind: agent_kind(a.kind),
                max_concurrency: a.max_concurrency,
                available: a.available,
                breaker: breaker_state(a.breaker),
            })
            .collect(),
        active_workflows: state.coordinator.active().len(),
        connected_clients: state.monitor.hub.client_count() as u64,
        websocket: s::WebSocketStats {
            clients: ws.clients,
            connections_total: ws.connections_total,
            refused_total: ws.refused_total,
            slow_disconnects_total: ws.slow_disconnects_total,
            messages_total: ws.messages_total,
            protocol_errors_total: ws.protocol_errors_total,
            lagged_events_total: ws.lagged_events_total,
        },
        health_collector: s::CollectorStatus {
            running: collector.running,
            samples: collector.samples,
            failures: collector.failures,
            consecutive_failures: collector.consecutive_failures,
            last_error: collector.last_error,
            last_success_at: collector.last_success_at,
        },
        alerts: s::AlertsSummary {
            active: alerts.active.len(),
            responses: super::wire::response_status(&alerts.responses),
        },
    })
}

/// `GET /api/cluster`: the cluster as this node sees it (`clustered: false` on one host).
pub async fn cluster(State(state): State<Arc<AppState>>) -> Json<c::ClusterView> {
    let Some(node) = &state.cluster else {
        return Json(c::ClusterView {
            clustered: false,
            cluster: None,
            node_id: None,
            replicas: None,
            server: None,
            nodes: Vec::new(),
        });
    };
    Json(super::wire::cluster_view(node.status()))
}
