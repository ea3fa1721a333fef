//! `/api/learn/*`: recording runs, predictions, anomalies, trends, allocation and insights.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use dsmil_api::learn::{
    self as l, AllocateRequest, AnomalyQuery, MAX_ALLOCATION_TASKS, PredictRequest, RecordsStored,
    TrendQuery,
};
use dsmil_learn::LearnError;
use dsmil_learn::record::parse_records;

use super::{ApiError, AppState, parse_json, wire};

/// Largest number of records in one `POST /api/learn/records`.
pub const MAX_RECORDS_PER_REQUEST: usize = 50_000;

impl From<LearnError> for ApiError {
    fn from(err: LearnError) -> Self {
        let (status, code) = match &err {
            LearnError::InvalidRecord { .. } => (StatusCode::BAD_REQUEST, "invalid_record"),
            LearnError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            LearnError::NoEligibleAgent(_) => (StatusCode::CONFLICT, "no_eligible_agent"),
            LearnError::Unavailable { .. } | LearnError::Closed => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "store_error"),
        };
        let api = ApiError::new(status, code, dsmil_core::report::chain(&err));
        match &err {
            LearnError::InvalidRecord { index, field, .. } => api.with_record(*index, field),
            _ => api,
        }
    }
}

/// `POST /api/learn/records`: a JSON array or NDJSON; all stored or none.
pub async fn records(
    State(state): State<Arc<AppState>>,
    body: String,
) -> Result<Json<RecordsStored>, ApiError> {
    let parsed = parse_records(&body)?;
    if parsed.len() > MAX_RECORDS_PER_REQUEST {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_records",
            format!(
                "{} records in one request; send at most {MAX_RECORDS_PER_REQUEST} per request",
                parsed.len()
            ),
        ));
    }
    let received = parsed.len();
    let stored = state.learning.record_batch(parsed).await?;
    Ok(Json(RecordsStored { stored, received }))
}

/// `POST /api/learn/predict`.
pub async fn predict(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<l::LearningPrediction>, ApiError> {
    let request: PredictRequest = parse_json("invalid_request", &body)?;
    let prediction = state
        .learning
        .predict_optimal_agent(&wire::predict_request(request))
        .await?;
    Ok(Json(prediction))
}

fn bad_query(e: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_request", e.body_text())
}

/// `GET /api/learn/anomalies?threshold_std_devs=2.0`.
pub async fn anomalies(
    State(state): State<Arc<AppState>>,
    query: Result<Query<AnomalyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<l::Anomaly>>, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let found = state
        .learning
        .detect_performance_anomalies(q.threshold_std_devs)
        .await?;
    Ok(Json(found.into_iter().map(wire::anomaly).collect()))
}

/// `GET /api/learn/insights`.
pub async fn insights(State(state): State<Arc<AppState>>) -> Result<Json<l::Insights>, ApiError> {
    let insights = state.learning.get_learning_insights().await?;
    Ok(Json(wire::insights(insights)))
}

/// `GET /api/learn/trends?agent_id=A&time_window_hours=24`.
pub async fn trends(
    State(state): State<Arc<AppState>>,
    query: Result<Query<TrendQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<l::TrendReport>, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let report = state
        .learning
        .analyze_performance_trends(&q.agent_id, q.time_window_hours)
        .await?;
    Ok(Json(wire::trend(report)))
}

/// `POST /api/learn/allocate`: `{"pending_tasks":[…],"capacity":{"agent":slots}}`.
pub async fn allocate(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<l::Allocation>, ApiError> {
    let request: AllocateRequest = parse_json("invalid_request", &body)?;
    if request.pending_tasks.len() > MAX_ALLOCATION_TASKS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_tasks",
            format!("at most {MAX_ALLOCATION_TASKS} pending tasks per request"),
        ));
    }
    let pending: Vec<_> = request
        .pending_tasks
        .into_iter()
        .map(wire::pending_task)
        .collect();
    let plan = state
        .learning
        .optimize_agent_allocation(&pending, &request.capacity)
        .await?;
    Ok(Json(wire::allocation(plan)))
}
