//! `/api/workflows`: submitting workflows, reading them back from the journal, cancelling.

use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dsmil_api::workflows::{CancelAccepted, SubmitQuery, WorkflowAccepted, WorkflowRecord};
use dsmil_coord::workflow::WorkflowError;
use dsmil_core::WorkflowId;
use dsmil_core::workflow::{WorkflowSpec, WorkflowState};

use super::{ApiError, AppState, wire};

impl From<WorkflowError> for ApiError {
    fn from(err: WorkflowError) -> Self {
        match err {
            WorkflowError::Journal(e) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "journal_error",
                dsmil_core::report::chain(&e),
            ),
            WorkflowError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                err.to_string(),
            ),
            other => ApiError::bad_request("invalid_workflow", dsmil_core::report::chain(&other)),
        }
    }
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
    parsed.map_err(|e| ApiError::bad_request("invalid_workflow", dsmil_core::report::chain(&e)))
}

fn parse_id(id: &str) -> Result<WorkflowId, ApiError> {
    WorkflowId::from_str(id).map_err(|e| {
        ApiError::bad_request(
            "invalid_workflow_id",
            format!("{id:?} is not a workflow id: {e}"),
        )
    })
}

/// `POST /api/workflows[?wait=false]`: the spec (JSON or TOML) → the result when finished, or
/// 202 with the id at once.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    Query(q): Query<SubmitQuery>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let spec = parse_spec(&headers, &body)?;
    let (id, handle) = state.coordinator.submit(spec).await?;
    if !q.wait {
        let accepted = WorkflowAccepted {
            workflow_id: id,
            state: WorkflowState::Running,
        };
        return Ok((StatusCode::ACCEPTED, Json(accepted)).into_response());
    }
    let result = handle.await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "workflow_crashed",
            format!("workflow {id} stopped unexpectedly: {e}"),
        )
    })?;
    Ok(Json(result).into_response())
}

/// `POST /api/workflows/{id}/cancel`: 202, or 404 when it is not running. In a cluster the
/// node asked forwards the cancellation to the workflow's owner (503 when it cannot be reached).
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let cancelled = match &state.cluster {
        Some(node) => node.cancel(id).await.map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "owner_unreachable",
                dsmil_core::report::chain(&e),
            )
        })?,
        None => state.coordinator.cancel(id),
    };
    if cancelled {
        let accepted = CancelAccepted {
            workflow_id: id,
            cancelling: true,
        };
        Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_running",
            format!("workflow {id} is not running"),
        ))
    }
}

/// `GET /api/workflows/{id}`: state, results so far and history.
pub async fn read(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<WorkflowRecord>, ApiError> {
    let id = parse_id(&id)?;
    let record = state
        .journal
        .get(id)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "journal_error",
                dsmil_core::report::chain(&e),
            )
        })?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no workflow {id}"),
            )
        })?;
    Ok(Json(wire::workflow_record(record)))
}
