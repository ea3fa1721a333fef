//! The HTTP API dsmild serves: health, status, token auth and the JSON error format of
//! CONTRACTS.md; each layer's routes live in their own module (`api_learn`, `api_workflows`).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dsmil_core::DaemonConfig;
use serde_json::json;

use crate::token::constant_time_eq;

/// What the handlers share.
pub struct AppState {
    /// The effective configuration.
    pub config: DaemonConfig,
    /// The API token's secret.
    pub token: String,
    /// When the daemon started.
    pub started: Instant,
    /// The accelerator: kernel path, CPU features and topology, detected once at start.
    pub accel: AccelInfo,
    /// The accelerator's compute pool.
    pub engine: Arc<dsmil_accel::Engine>,
    /// The event bus every layer publishes to.
    pub bus: dsmil_core::EventBus,
    /// The learning engine (`None` only in tests of other routes).
    pub learning: Option<Arc<dsmil_learn::LearningEngine>>,
    /// The workflow coordinator.
    pub coordinator: Option<Arc<dsmil_coord::workflow::Coordinator>>,
    /// The TPM.
    pub tpm: Option<dsmil_tpm::Tpm>,
    /// The DSMIL device bridge.
    pub bridge: Option<Arc<dsmil_tpm::bridge::DsmilBridge>>,
    /// The audit log.
    pub audit: Option<Arc<dsmil_tpm::audit::AuditLog>>,
    /// The WebSocket hub.
    pub hub: Option<dsmil_monitor::ws::Hub>,
    /// Alerts, rates and event counters.
    pub alerts: Option<dsmil_monitor::alerts::AlertsView>,
    /// The health collector's state.
    pub collector: Option<tokio::sync::watch::Receiver<dsmil_monitor::collect::CollectorStatus>>,
}

/// What the accelerator layer detected, as reported by `/api/status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccelInfo {
    /// The kernel path in use (`portable`, `avx2`, `avx512`).
    pub path: dsmil_core::KernelPath,
    /// CPU features found.
    pub capabilities: dsmil_core::CapabilitySet,
    /// Cores, NUMA nodes, cache, thermal zones.
    pub topology: dsmil_core::CpuTopology,
}

/// An API error rendered as `{"error":{"code","message"}}` with its status (plus optional
/// details, e.g. the record and field of a rejected record).
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    detail: Option<serde_json::Value>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// Adds fields to the error object (merged beside `code` and `message`).
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let (Some(serde_json::Value::Object(extra)), Some(obj)) =
            (self.detail, error.as_object_mut())
        {
            for (k, v) in extra {
                obj.entry(k).or_insert(v);
            }
        }
        let body = json!({ "error": error });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750: tell the client which scheme to use.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"dsmild\""),
            );
        }
        response
    }
}

/// The router: `/api/health` is open, everything else needs the bearer token.
pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/api/status", get(status))
        .merge(crate::api_learn::routes())
        .merge(crate::api_workflows::routes())
        .merge(crate::api_tpm::routes())
        .merge(crate::api_monitor::protected_routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/api/health", get(health))
        .merge(crate::api_monitor::open_routes())
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn store_status(state: &AppState) -> serde_json::Value {
    let Some(engine) = &state.learning else {
        return json!({"backend": "none"});
    };
    let store = engine.store();
    json!({
        "backend": store.backend(),
        "search": store.search_engine(),
        "records": store.count().await.ok(),
        "pending": store.pending().await.ok(),
        "known_agents": engine.known_agents().len(),
    })
}

async fn status(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let store = store_status(&state).await;
    let c = &state.config;
    let agents: Vec<_> = match &state.coordinator {
        Some(co) => co
            .registry()
            .info()
            .into_iter()
            .map(|a| json!({"id": a.id, "kind": a.kind, "max_concurrency": a.max_concurrency, "available": a.available, "breaker": a.breaker}))
            .collect(),
        None => c
            .agents
            .iter()
            .map(|a| json!({"id": a.id, "kind": a.kind, "max_concurrency": a.max_concurrency}))
            .collect(),
    };
    let active = state.coordinator.as_ref().map_or(0, |co| co.active().len());
    Json(json!({
        "version": dsmil_core::VERSION,
        "uptime_seconds": state.started.elapsed().as_secs(),
        "accel": {
            "path": state.accel.path,
            "capabilities": state.accel.capabilities,
            "topology": state.accel.topology,
            "engine": {
                "workers": state.engine.workers(),
                "cores": state.engine.cores(),
                "pinned": state.engine.pinned(),
                "scale": state.engine.scale(),
                "queued": state.engine.queued(),
                "running": state.engine.running(),
                "thermal_throttled": state.engine.thermal_throttled(),
                "counters": state.engine.counters(),
            },
        },
        "event_bus": {"subscribers": state.bus.subscriber_count()},
        "tpm": state.tpm.as_ref().map_or_else(
            || json!({"backend": c.tpm.to_string()}),
            |t| {
                let caps = t.capabilities();
                json!({
                    "backend": caps.backend,
                    "spec": c.tpm.to_string(),
                    "hardware_rooted": caps.hardware_rooted,
                    "vendor": caps.vendor,
                    "manufacturer": caps.manufacturer,
                })
            },
        ),
        "store": store,
        "agents": agents,
        "active_workflows": active,
        "connected_clients": state.hub.as_ref().map_or(0, |h| h.client_count()),
        "websocket": state.hub.as_ref().map(|h| h.stats()),
        "health_collector": state.collector.as_ref().map(|c| {
            let s = c.borrow();
            json!({
                "running": s.running,
                "samples": s.samples,
                "failures": s.failures,
                "consecutive_failures": s.consecutive_failures,
                "last_error": s.last_error,
                "last_success_at": s.last_success_at,
            })
        }),
        "alerts": state.alerts.as_ref().map(|a| {
            let snap = a.snapshot();
            json!({"active": snap.active.len(), "responses": snap.responses})
        }),
    }))
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// Rejects requests without `Authorization: Bearer <token>`.
async fn require_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), state.token.as_bytes()) => {
            Ok(next.run(request).await)
        }
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token does not match DATA_DIR/api-token",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing 'Authorization: Bearer <token>' header (the token is in DATA_DIR/api-token)",
        )),
    }
}
