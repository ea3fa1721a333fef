//! The monitoring surface: the dashboard page at `/`, the WebSocket at `/ws` (the handshake is
//! `dsmil_monitor::ws::upgrade`'s), `/api/alerts`, and `/metrics` — a loop over every layer's
//! `MetricsSource`, rendered as Prometheus text by the monitor.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dsmil_api::alerts::Alerts;
use dsmil_core::ports::{MetricSet, MetricsSource};
use dsmil_monitor::metrics::{CONTENT_TYPE, render};

use super::{ApiError, AppState, wire};

pub async fn dashboard() -> Response {
    let mut response = dsmil_monitor::dashboard::PAGE.into_response();
    for (name, value) in dsmil_monitor::dashboard::HEADERS {
        if let Ok(v) = header::HeaderValue::from_str(value) {
            response
                .headers_mut()
                .insert(header::HeaderName::from_static(name), v);
        }
    }
    response
}

pub async fn websocket(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match dsmil_monitor::ws::upgrade(&state.monitor.hub, request) {
        Ok(response) => response.map(|()| Body::empty()),
        Err(refused) => ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            refused.to_string(),
        )
        .into_response(),
    }
}

pub async fn alerts(State(state): State<Arc<AppState>>) -> Json<Alerts> {
    let view = &state.monitor.alerts;
    Json(wire::alerts(
        view.snapshot(),
        view.rates(),
        &state.config.monitor.alerts,
    ))
}

/// Every layer's figures, then the daemon's own.
pub async fn collect(state: &AppState) -> MetricSet {
    let mut set = MetricSet::new();
    set.gauge(
        "dsmil_info",
        "Build information (always 1).",
        &[("version", dsmil_core::VERSION)],
        1.0,
    );
    set.gauge(
        "dsmil_uptime_seconds",
        "Seconds since dsmild started.",
        &[],
        state.started.elapsed().as_secs_f64(),
    );
    set.gauge(
        "dsmil_event_bus_subscribers",
        "Subscribers of the event bus.",
        &[],
        state.bus.subscriber_count() as f64,
    );
    let sources: [&dyn MetricsSource; 9] = [
        &dsmil_monitor::process::ProcessMetrics,
        state.engine.as_ref(),
        &state.tpm,
        state.audit.as_ref(),
        state.learning.as_ref(),
        state.coordinator.as_ref(),
        &state.monitor.hub,
        &state.monitor.alerts,
        &state.monitor.collector,
    ];
    for source in sources {
        source.collect(&mut set).await;
    }
    set
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let set = collect(&state).await;
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&set)).into_response()
}
