//! `/api/workflows`: submitting workflows and reading them back from the journal.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dsmil_coord::workflow::{Coordinator, WorkflowError};
use dsmil_core::WorkflowId;
use dsmil_core::workflow::WorkflowSpec;
use serde::Deserialize;
use serde_json::json;

use crate::api::{ApiError, AppState};

/// The workflow routes (mounted behind the token check).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/workflows", post(submit))
        .route("/api/workflows/{id}", get(read))
        .route("/api/workflows/{id}/cancel", post(cancel))
}

fn coordinator(state: &AppState) -> Result<&Arc<Coordinator>, ApiError> {
    state.coordinator.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "coordination_unavailable",
            "the coordination layer is not running",
        )
    })
}

impl From<WorkflowError> for ApiError {
    fn from(err: WorkflowError) -> Self {
        match err {
            WorkflowError::Journal(e) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "journal_error",
                e.to_string(),
            ),
            other => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_workflow",
                other.to_string(),
            ),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitQuery {
    #[serde(default = "yes")]
    wait: bool,
}

fn yes() -> bool {
    true
}

/// Parses a spec as JSON (a body starting with `{`, or a JSON content type) or TOML.
fn parse_spec(headers: &HeaderMap, body: &str) -> Result<WorkflowSpec, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let json = content_type.contains("json") || body.trim_start().starts_with('{');
    let parsed = if json {
        WorkflowSpec::from_json_str(body)
    } else {
        WorkflowSpec::from_toml_str(body)
    };
    parsed.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_workflow", e.to_string()))
}

/// `POST /api/workflows[?wait=false]`: the spec (JSON or TOML) → the result when finished, or
/// 202 with the id at once.
async fn submit(
    State(state): State<Arc<AppState>>,
    Query(q): Query<SubmitQuery>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let coordinator = coordinator(&state)?;
    let spec = parse_spec(&headers, &body)?;
    let (id, handle) = coordinator.submit(spec).await?;
    if !q.wait {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"workflow_id": id, "state": "running"})),
        )
            .into_response());
    }
    let result = handle.await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "workflow_crashed",
            format!("workflow {id} stopped unexpectedly: {e}"),
        )
    })?;
    Ok(Json(json!(result)).into_response())
}

fn parse_id(id: &str) -> Result<WorkflowId, ApiError> {
    WorkflowId::from_str(id).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_workflow_id",
            format!("{id:?} is not a workflow id: {e}"),
        )
    })
}

/// `POST /api/workflows/{id}/cancel`: stops a running workflow (its processes are killed; it
/// ends `cancelled`). 202, or 404 when it is not running.
async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let coordinator = coordinator(&state)?;
    let id = parse_id(&id)?;
    if coordinator.cancel(id) {
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({"workflow_id": id, "cancelling": true})),
        )
            .into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_running",
            format!("workflow {id} is not running"),
        ))
    }
}

/// `GET /api/workflows/{id}`: state, results so far and history.
async fn read(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let coordinator = coordinator(&state)?;
    let id = WorkflowId::from_str(&id).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_workflow_id",
            format!("{id:?} is not a workflow id: {e}"),
        )
    })?;
    let journal = coordinator.journal().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_journal",
            "workflows are not journaled",
        )
    })?;
    let record = journal
        .get(id)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "journal_error",
                e.to_string(),
            )
        })?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no workflow {id}"),
            )
        })?;
    Ok(Json(json!(record)))
}
