//! `/api/emergency`: an operator's emergency stop and its clearing, on this node or — in a
//! cluster — on every node. The coordinator of each node stopped cancels its workflows and
//! audits the stop.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use dsmil_api::emergency as e;
use dsmil_cluster::EmergencyScope;
use dsmil_core::ports::Throttle as _;

use super::{ApiError, AppState, parse_json};

fn unavailable(err: &dsmil_cluster::ClusterError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "cluster_unavailable",
        dsmil_core::report::chain(err),
    )
}

async fn state_of(state: &AppState) -> e::EmergencyState {
    let cluster = match state.cluster.as_ref().and_then(|n| n.emergency()) {
        Some(t) => t.in_force().await.ok().flatten().map(|c| e::ClusterStop {
            reason: c.reason,
            from: c.from,
            at: c.at,
        }),
        None => None,
    };
    let reason = state.coordinator.emergency();
    e::EmergencyState {
        stopped: reason.is_some(),
        reason,
        cluster,
    }
}

/// `GET /api/emergency`.
pub async fn read(State(state): State<Arc<AppState>>) -> Json<e::EmergencyState> {
    Json(state_of(&state).await)
}

/// `POST /api/emergency/stop` `{"reason", "scope"}`.
pub async fn stop(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<e::EmergencyState>, ApiError> {
    let request: e::StopRequest = parse_json("invalid_json", &body)?;
    if request.reason.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "\"reason\" is empty; say why the stop is taken (it is audited)",
        ));
    }
    let reason = format!("operator: {}", request.reason.trim());
    match state.cluster.as_ref().and_then(|n| n.emergency()) {
        Some(throttle) => {
            let scope = match request.scope {
                Some(e::Scope::Local) => EmergencyScope::Local,
                Some(e::Scope::Cluster) => EmergencyScope::Cluster,
                None => throttle.default_scope(),
            };
            throttle
                .stop(&reason, scope)
                .await
                .map_err(|err| unavailable(&err))?;
        }
        None => {
            if request.scope == Some(e::Scope::Cluster) {
                return Err(ApiError::bad_request(
                    "not_clustered",
                    "scope \"cluster\" needs a [cluster] section; this dsmild runs on one host",
                ));
            }
            state.coordinator.emergency_stop(&reason);
        }
    }
    Ok(Json(state_of(&state).await))
}

/// `POST /api/emergency/clear`.
pub async fn clear(
    State(state): State<Arc<AppState>>,
) -> Result<Json<e::EmergencyState>, ApiError> {
    match state.cluster.as_ref().and_then(|n| n.emergency()) {
        Some(throttle) => throttle.clear().await.map_err(|err| unavailable(&err))?,
        None => state.coordinator.clear_emergency(),
    }
    Ok(Json(state_of(&state).await))
}
