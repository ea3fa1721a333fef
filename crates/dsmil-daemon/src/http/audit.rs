//! `/api/audit/consistency` and `/api/audit/witnesses`: this node's log as its witnesses check
//! it, and every node's log as the cluster witnesses it.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use dsmil_api::audit as au;
use dsmil_core::ports::{PortError, TreeHeadSource as _};

use super::{ApiError, AppState};

/// `GET /api/audit/consistency?from=N[&to=M]`: the RFC 9162 consistency proof between the
/// trees of the first `from` and `to` entries (`to` defaults to the latest signed size).
pub async fn consistency(
    State(state): State<Arc<AppState>>,
    query: Result<Query<au::ConsistencyQuery>, QueryRejection>,
) -> Result<Json<au::ConsistencyProof>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    let to = q.to.unwrap_or_else(|| state.audit.signed());
    match state.audit_heads.consistency(q.from, to).await {
        Ok(proof) => Ok(Json(proof)),
        Err(PortError::InvalidInput(why)) => Err(ApiError::bad_request("invalid_range", why)),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "audit_error",
            e.to_string(),
        )),
    }
}

/// `GET /api/audit/witnesses`: every node's latest signed head and what each witness holds
/// of it (`clustered: false`, no nodes, on one host).
pub async fn witnesses(
    State(state): State<Arc<AppState>>,
) -> Result<Json<au::WitnessView>, ApiError> {
    let Some(node) = &state.cluster else {
        return Ok(Json(au::WitnessView {
            clustered: false,
            nodes: Vec::new(),
        }));
    };
    let nodes = match node.witnesses().await {
        Some(Ok(nodes)) => nodes,
        None => Vec::new(),
        Some(Err(e)) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster_unavailable",
                dsmil_core::report::chain(&e),
            ));
        }
    };
    Ok(Json(au::WitnessView {
        clustered: true,
        nodes: nodes.into_iter().map(super::wire::witnessed_log).collect(),
    }))
}
