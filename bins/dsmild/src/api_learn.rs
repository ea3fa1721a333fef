//! `/api/learn/*`: recording runs, predictions, anomalies, trends, allocation and insights.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use dsmil_core::AgentId;
use dsmil_learn::engine::PendingTask;
use dsmil_learn::record::parse_records;
use dsmil_learn::{LearnError, PredictRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, AppState};

/// Largest request body `POST /api/learn/records` accepts (about 50,000 records with
/// embeddings); `dsmilctl learn import` sends files in smaller batches.
pub const MAX_RECORDS_BODY: usize = 64 * 1024 * 1024;

/// Largest number of records in one `POST /api/learn/records`.
pub const MAX_RECORDS_PER_REQUEST: usize = 50_000;

/// The learning routes (mounted behind the token check).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/learn/records",
            post(records).layer(DefaultBodyLimit::max(MAX_RECORDS_BODY)),
        )
        .route("/api/learn/predict", post(predict))
        .route("/api/learn/anomalies", get(anomalies))
        .route("/api/learn/insights", get(insights))
        .route("/api/learn/trends", get(trends))
        .route("/api/learn/allocate", post(allocate))
}

impl From<LearnError> for ApiError {
    fn from(err: LearnError) -> Self {
        let (status, code) = match &err {
            LearnError::InvalidRecord { .. } => (StatusCode::BAD_REQUEST, "invalid_record"),
            LearnError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            LearnError::NoEligibleAgent(_) => (StatusCode::CONFLICT, "no_eligible_agent"),
            LearnError::Unavailable(_) | LearnError::Closed => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
            LearnError::Storage(_) | LearnError::Corrupt(_) | LearnError::Signing(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "store_error")
            }
        };
        let mut api = ApiError::new(status, code, err.to_string());
        if let LearnError::InvalidRecord { index, field, .. } = &err {
            api = api.with_detail(json!({"record": index, "field": field}));
        }
        api
    }
}

fn learn(state: &AppState) -> Result<&Arc<dsmil_learn::LearningEngine>, ApiError> {
    state.learning.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "learning_unavailable",
            "the learning layer is not running",
        )
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ApiError> {
    serde_json::from_str(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))
}

/// `POST /api/learn/records`: a JSON array or NDJSON; all stored or none.
async fn records(
    State(state): State<Arc<AppState>>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    let engine = learn(&state)?;
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
    let stored = engine.record_batch(parsed).await?;
    Ok(Json(json!({"stored": stored, "received": received})))
}

/// `POST /api/learn/predict`.
async fn predict(
    State(state): State<Arc<AppState>>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    let engine = learn(&state)?;
    let request: PredictRequest = parse_json(&body)?;
    let prediction = engine.predict_optimal_agent(&request).await?;
    Ok(Json(json!(prediction)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnomalyQuery {
    #[serde(default = "default_threshold")]
    threshold_std_devs: f64,
}

fn default_threshold() -> f64 {
    2.0
}

/// `GET /api/learn/anomalies?threshold_std_devs=2.0`.
async fn anomalies(
    State(state): State<Arc<AppState>>,
    Query(q): Query<AnomalyQuery>,
) -> Result<Json<Value>, ApiError> {
    let found = learn(&state)?
        .detect_performance_anomalies(q.threshold_std_devs)
        .await?;
    Ok(Json(json!(found)))
}

/// `GET /api/learn/insights`.
async fn insights(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(learn(&state)?.get_learning_insights().await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrendQuery {
    agent_id: AgentId,
    #[serde(default = "default_window")]
    time_window_hours: u32,
}

fn default_window() -> u32 {
    24
}

/// `GET /api/learn/trends?agent_id=A&time_window_hours=24`.
async fn trends(
    State(state): State<Arc<AppState>>,
    Query(q): Query<TrendQuery>,
) -> Result<Json<Value>, ApiError> {
    let report = learn(&state)?
        .analyze_performance_trends(&q.agent_id, q.time_window_hours)
        .await?;
    Ok(Json(json!(report)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocateRequest {
    pending_tasks: Vec<PendingTask>,
    capacity: BTreeMap<AgentId, usize>,
}

/// Most tasks one allocation request may hold.
const MAX_ALLOCATION_TASKS: usize = 2000;

/// `POST /api/learn/allocate`: `{"pending_tasks":[…],"capacity":{"agent":slots}}`.
async fn allocate(
    State(state): State<Arc<AppState>>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    let engine = learn(&state)?;
    let request: AllocateRequest = parse_json(&body)?;
    if request.pending_tasks.len() > MAX_ALLOCATION_TASKS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_tasks",
            format!("at most {MAX_ALLOCATION_TASKS} pending tasks per request"),
        ));
    }
    let plan = engine
        .optimize_agent_allocation(&request.pending_tasks, &request.capacity)
        .await?;
    Ok(Json(json!(plan)))
}
