//! The table itself: one constant per route, what it takes and what it answers.

use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};

use super::{Answer, Auth, Body, Method, Route, SchemaRef};
use crate::{alerts, audit, cluster, devices, emergency, error, learn, status, tpm, workflows};

const fn json<T: ToSchema>() -> Body {
    Body::Json(SchemaRef::of::<T>())
}

fn query<T: IntoParams>() -> Vec<Parameter> {
    T::into_params(|| Some(ParameterIn::Query))
}

const fn ok(status: u16, description: &'static str, body: Body) -> Answer {
    Answer {
        status,
        description,
        body,
    }
}

const fn err(status: u16, description: &'static str) -> Answer {
    Answer {
        status,
        description,
        body: Body::Json(SchemaRef::of::<error::ErrorResponse>()),
    }
}

const UNAUTHORIZED: Answer = err(
    401,
    "`unauthorized`: the bearer token is missing or does not match DATA_DIR/api-token",
);

/// What every route behind the token may also answer (added to each by the OpenAPI
/// description): too many failed token checks from the caller's address.
pub const TOO_MANY_FAILURES: Answer = err(
    429,
    "`too_many_failures`: 10 failed token checks from this address within a minute; retry \
     after `Retry-After` seconds",
);

/// `GET /api/v1/health`.
pub const HEALTH: Route = Route {
    method: Method::Get,
    path: "/api/v1/health",
    operation_id: "health",
    summary: "Whether the daemon serves (no token needed).",
    tag: "daemon",
    auth: Auth::None,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[ok(200, "`{\"status\":\"ok\"}`", json::<status::Health>())],
};

/// `GET /api/v1/ready`.
pub const READY: Route = Route {
    method: Method::Get,
    path: "/api/v1/ready",
    operation_id: "ready",
    summary: "Whether the daemon can do its work: TPM answering, data dir writable, learning \
              store and journal reachable (no token needed; for systemd and load balancers).",
    tag: "daemon",
    auth: Auth::None,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(200, "Every check passed", json::<status::Readiness>()),
        err(503, "`not_ready`: the message names each failed check"),
    ],
};

/// `GET /api/v1/status`.
pub const STATUS: Route = Route {
    method: Method::Get,
    path: "/api/v1/status",
    operation_id: "status",
    summary: "Version, uptime and the state of every layer.",
    tag: "daemon",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(200, "The status.", json::<status::Status>()),
        UNAUTHORIZED,
    ],
};

/// `GET /api/v1/cluster`.
pub const CLUSTER: Route = Route {
    method: Method::Get,
    path: "/api/v1/cluster",
    operation_id: "cluster",
    summary: "The cluster as this node sees it: its nodes, whether each is live, what each hosts.",
    tag: "daemon",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(200, "The cluster view.", json::<cluster::ClusterView>()),
        UNAUTHORIZED,
    ],
};

/// `GET /api/v1/openapi.json`.
pub const OPENAPI: Route = Route {
    method: Method::Get,
    path: "/api/v1/openapi.json",
    operation_id: "openapi",
    summary: "This description of the API (OpenAPI 3.1).",
    tag: "daemon",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(
            200,
            "The OpenAPI document.",
            Body::Text {
                content_type: "application/json",
            },
        ),
        UNAUTHORIZED,
    ],
};

/// `POST /api/v1/workflows`.
pub const SUBMIT_WORKFLOW: Route = Route {
    method: Method::Post,
    path: "/api/v1/workflows",
    operation_id: "submit_workflow",
    summary: "Run a workflow (JSON or TOML spec); answer when it finishes, or at once with `?wait=false`.",
    tag: "workflows",
    auth: Auth::Bearer,
    path_params: &[],
    query: Some(query::<workflows::SubmitQuery>),
    request: Body::WorkflowSpec,
    answers: &[
        ok(
            200,
            "The workflow finished (successfully or not; see `success`).",
            json::<workflows::WorkflowResult>(),
        ),
        ok(
            202,
            "`wait=false`: the workflow runs; poll it by id.",
            json::<workflows::WorkflowAccepted>(),
        ),
        err(
            400,
            "`invalid_workflow`: the spec is invalid, names an unknown agent, or an emergency stop is in force",
        ),
        UNAUTHORIZED,
        err(
            500,
            "`journal_error`, `workflow_crashed`: the workflow could not be recorded or run",
        ),
    ],
};

/// `GET /api/v1/workflows/{id}`.
pub const GET_WORKFLOW: Route = Route {
    method: Method::Get,
    path: "/api/v1/workflows/{id}",
    operation_id: "get_workflow",
    summary: "A workflow's state, results so far and history, from the journal.",
    tag: "workflows",
    auth: Auth::Bearer,
    path_params: &[("id", "The workflow's id (a UUID).")],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(
            200,
            "The journal's record.",
            json::<workflows::WorkflowRecord>(),
        ),
        err(400, "`invalid_workflow_id`: not a UUID"),
        UNAUTHORIZED,
        err(404, "`not_found`: no such workflow"),
        err(500, "`journal_error`: the journal could not be read"),
    ],
};

/// `POST /api/v1/workflows/{id}/cancel`.
pub const CANCEL_WORKFLOW: Route = Route {
    method: Method::Post,
    path: "/api/v1/workflows/{id}/cancel",
    operation_id: "cancel_workflow",
    summary: "Stop a running workflow (its processes are killed; it ends `cancelled`); in a cluster, through any node.",
    tag: "workflows",
    auth: Auth::Bearer,
    path_params: &[("id", "The workflow's id (a UUID).")],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(
            202,
            "It is being stopped.",
            json::<workflows::CancelAccepted>(),
        ),
        err(400, "`invalid_workflow_id`: not a UUID"),
        UNAUTHORIZED,
        err(404, "`not_running`: the workflow is not running"),
        err(
            503,
            "`owner_unreachable`: in a cluster, the node that owns the workflow cannot be reached",
        ),
    ],
};

/// `POST /api/v1/learn/records`.
pub const RECORD_PERFORMANCE: Route = Route {
    method: Method::Post,
    path: "/api/v1/learn/records",
    operation_id: "record_performance",
    summary: "Store performance records (a JSON array or NDJSON); a batch is stored all or none.",
    tag: "learn",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: Body::Records,
    answers: &[
        ok(200, "The batch was stored.", json::<learn::RecordsStored>()),
        err(
            400,
            "`invalid_record`: a record is invalid (`record` and `field` name it); nothing was stored",
        ),
        UNAUTHORIZED,
        err(
            413,
            "`too_many_records`: more than 50,000 records in one request",
        ),
        err(
            503,
            "`store_unavailable`: the store cannot take records now",
        ),
    ],
};

/// `POST /api/v1/learn/predict`.
pub const PREDICT: Route = Route {
    method: Method::Post,
    path: "/api/v1/learn/predict",
    operation_id: "predict_optimal_agent",
    summary: "Which agent should run a task (seed `predict_optimal_agent`).",
    tag: "learn",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: json::<learn::PredictRequest>(),
    answers: &[
        ok(200, "The prediction.", json::<learn::LearningPrediction>()),
        err(400, "`invalid_request`: the request is not valid"),
        UNAUTHORIZED,
        err(409, "`no_eligible_agent`: every candidate is excluded"),
    ],
};

/// `GET /api/v1/learn/anomalies`.
pub const ANOMALIES: Route = Route {
    method: Method::Get,
    path: "/api/v1/learn/anomalies",
    operation_id: "detect_performance_anomalies",
    summary: "Runs that deviate from their agent's recent behaviour.",
    tag: "learn",
    auth: Auth::Bearer,
    path_params: &[],
    query: Some(query::<learn::AnomalyQuery>),
    request: Body::Empty,
    answers: &[
        ok(
            200,
            "The anomalies, newest first.",
            Body::JsonArray(SchemaRef::of::<learn::Anomaly>()),
        ),
        err(400, "`invalid_request`: a bad threshold"),
        UNAUTHORIZED,
    ],
};

/// `GET /api/v1/learn/insights`.
pub const INSIGHTS: Route = Route {
    method: Method::Get,
    path: "/api/v1/learn/insights",
    operation_id: "get_learning_insights",
    summary: "What the learning layer knows: store, agents, the last hour, best agents.",
    tag: "learn",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(200, "The insights.", json::<learn::Insights>()),
        UNAUTHORIZED,
    ],
};

/// `GET /api/v1/learn/trends`.
pub const TRENDS: Route = Route {
    method: Method::Get,
    path: "/api/v1/learn/trends",
    operation_id: "analyze_performance_trends",
    summary: "An agent's performance trend over a window.",
    tag: "learn",
    auth: Auth::Bearer,
    path_params: &[],
    query: Some(query::<learn::TrendQuery>),
    request: Body::Empty,
    answers: &[
        ok(200, "The trend.", json::<learn::TrendReport>()),
        err(
            400,
            "`invalid_request`: a missing or bad agent id or window",
        ),
        UNAUTHORIZED,
    ],
};

/// `POST /api/v1/learn/allocate`.
pub const ALLOCATE: Route = Route {
    method: Method::Post,
    path: "/api/v1/learn/allocate",
    operation_id: "optimize_agent_allocation",
    summary: "Share pending tasks over agents with free slots, maximising expected success.",
    tag: "learn",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: json::<learn::AllocateRequest>(),
    answers: &[
        ok(200, "The plan.", json::<learn::Allocation>()),
        err(400, "`invalid_request`: the request is not valid"),
        UNAUTHORIZED,
        err(413, "`too_many_tasks`: more than 2,000 tasks"),
    ],
};

/// `GET /api/v1/tpm/info`.
pub const TPM_INFO: Route = Route {
    method: Method::Get,
    path: "/api/v1/tpm/info",
    operation_id: "tpm_info",
    summary: "The TPM: backend, hardware rooting, vendor, algorithms, keys, latency, audit anchor.",
    tag: "tpm",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(200, "The TPM's description.", json::<tpm::TpmInfo>()),
        UNAUTHORIZED,
        err(500, "`tpm_error`: the TPM did not answer"),
    ],
};

/// `POST /api/v1/tpm/quote`.
pub const TPM_QUOTE: Route = Route {
    method: Method::Post,
    path: "/api/v1/tpm/quote",
    operation_id: "tpm_quote",
    summary: "Quote PCRs with a nonce, verified before it is returned (tpm2_checkquote accepts it).",
    tag: "tpm",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: json::<tpm::QuoteRequest>(),
    answers: &[
        ok(200, "The quote.", json::<tpm::QuoteResponse>()),
        err(
            400,
            "`invalid_json`, `invalid_pcrs`, `invalid_hex`, `too_long`: the request is not valid",
        ),
        UNAUTHORIZED,
        err(500, "`tpm_error`, `quote_invalid`: the TPM failed"),
    ],
};

/// `GET /api/v1/devices`.
pub const DEVICES: Route = Route {
    method: Method::Get,
    path: "/api/v1/devices",
    operation_id: "list_devices",
    summary: "Every DSMIL device and what the bridge records about it.",
    tag: "devices",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(200, "The devices.", json::<devices::Devices>()),
        UNAUTHORIZED,
    ],
};

/// `POST /api/v1/devices/{id}/write`.
pub const DEVICE_WRITE: Route = Route {
    method: Method::Post,
    path: "/api/v1/devices/{id}/write",
    operation_id: "write_device",
    summary: "Write to a DSMIL device; quarantined devices are refused and the refusal audited.",
    tag: "devices",
    auth: Auth::Bearer,
    path_params: &[("id", "The device, e.g. `0x8000` (0x8000-0x806B).")],
    query: None,
    request: json::<devices::WriteRequest>(),
    answers: &[
        ok(200, "Written.", json::<devices::Written>()),
        err(
            400,
            "`invalid_device`, `invalid_json`, `invalid_hex`, `too_long`: the request is not valid",
        ),
        UNAUTHORIZED,
        err(
            403,
            "`policy_violation`: the device is quarantined (0x8009, 0x800A, 0x800B, 0x8019, \
             0x8029) and the refusal is audited; `policy_violation_unaudited`: refused, but \
             the audit entry could not be written",
        ),
    ],
};

/// `POST /api/v1/devices/{id}/attest`.
pub const DEVICE_ATTEST: Route = Route {
    method: Method::Post,
    path: "/api/v1/devices/{id}/attest",
    operation_id: "attest_device",
    summary: "A quote binding the device, its state and the verifier's nonce.",
    tag: "devices",
    auth: Auth::Bearer,
    path_params: &[("id", "The device, e.g. `0x8000` (0x8000-0x806B).")],
    query: None,
    request: json::<devices::AttestRequest>(),
    answers: &[
        ok(200, "The attestation.", json::<devices::AttestResponse>()),
        err(
            400,
            "`invalid_device`, `invalid_json`, `invalid_hex`, `too_long`: the request is not valid",
        ),
        UNAUTHORIZED,
    ],
};

/// `GET /api/v1/audit/proof/{seq}`.
pub const AUDIT_PROOF: Route = Route {
    method: Method::Get,
    path: "/api/v1/audit/proof/{seq}",
    operation_id: "audit_inclusion_proof",
    summary: "An audit entry's inclusion proof in the latest signed tree head (RFC 9162).",
    tag: "audit",
    auth: Auth::Bearer,
    path_params: &[("seq", "The entry's sequence number (0, 1, 2, …).")],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(200, "The proof.", json::<audit::InclusionProof>()),
        err(400, "`invalid_sequence`: not an entry number"),
        UNAUTHORIZED,
        err(
            404,
            "`not_signed`: the entry is not covered by a signed checkpoint yet",
        ),
    ],
};

/// `GET /api/v1/audit/consistency`.
pub const AUDIT_CONSISTENCY: Route = Route {
    method: Method::Get,
    path: "/api/v1/audit/consistency",
    operation_id: "audit_consistency_proof",
    summary: "The RFC 9162 consistency proof between the audit log's trees of `from` and `to` entries.",
    tag: "audit",
    auth: Auth::Bearer,
    path_params: &[],
    query: Some(query::<audit::ConsistencyQuery>),
    request: Body::Empty,
    answers: &[
        ok(200, "The proof.", json::<audit::ConsistencyProof>()),
        err(
            400,
            "`invalid_range`: `from` > `to`, or `to` beyond the latest signed tree head; `invalid_request`: `from` missing or not a number",
        ),
        UNAUTHORIZED,
    ],
};

/// `GET /api/v1/audit/witnesses`.
pub const AUDIT_WITNESSES: Route = Route {
    method: Method::Get,
    path: "/api/v1/audit/witnesses",
    operation_id: "audit_witnesses",
    summary: "Every node's latest signed audit head and what each other node witnessed of it.",
    tag: "audit",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(200, "The witnesses.", json::<audit::WitnessView>()),
        UNAUTHORIZED,
        err(
            503,
            "`cluster_unavailable`: the witness records cannot be read",
        ),
    ],
};

/// `GET /api/v1/emergency`.
pub const EMERGENCY: Route = Route {
    method: Method::Get,
    path: "/api/v1/emergency",
    operation_id: "emergency_state",
    summary: "Whether an emergency stop is in force here, and the cluster-wide one.",
    tag: "emergency",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(200, "The state.", json::<emergency::EmergencyState>()),
        UNAUTHORIZED,
    ],
};

/// `POST /api/v1/emergency/stop`.
pub const EMERGENCY_STOP: Route = Route {
    method: Method::Post,
    path: "/api/v1/emergency/stop",
    operation_id: "emergency_stop",
    summary: "Cancel every running workflow and refuse new ones, here or on every node; audited on each.",
    tag: "emergency",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: json::<emergency::StopRequest>(),
    answers: &[
        ok(200, "Stopped.", json::<emergency::EmergencyState>()),
        err(
            400,
            "`invalid_json`: not a stop request; `not_clustered`: scope `cluster` on one host",
        ),
        UNAUTHORIZED,
        err(
            503,
            "`cluster_unavailable`: the cluster-wide stop could not be stored",
        ),
    ],
};

/// `POST /api/v1/emergency/clear`.
pub const EMERGENCY_CLEAR: Route = Route {
    method: Method::Post,
    path: "/api/v1/emergency/clear",
    operation_id: "emergency_clear",
    summary: "Accept work again; a cluster-wide stop is cleared on every node.",
    tag: "emergency",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(200, "Cleared.", json::<emergency::EmergencyState>()),
        UNAUTHORIZED,
        err(
            503,
            "`cluster_unavailable`: the cluster-wide stop could not be cleared",
        ),
    ],
};

/// `GET /api/v1/alerts`.
pub const ALERTS: Route = Route {
    method: Method::Get,
    path: "/api/v1/alerts",
    operation_id: "alerts",
    summary: "Active alerts, recent changes, automatic responses, event rates and thresholds.",
    tag: "monitor",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(200, "The alerts.", json::<alerts::Alerts>()),
        UNAUTHORIZED,
    ],
};

/// `GET /metrics`.
pub const METRICS: Route = Route {
    method: Method::Get,
    path: "/metrics",
    operation_id: "metrics",
    summary: "Every layer's counters, gauges and histograms in Prometheus text format.",
    tag: "monitor",
    auth: Auth::Bearer,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(
            200,
            "The exposition.",
            Body::Text {
                content_type: "text/plain; version=0.0.4; charset=utf-8",
            },
        ),
        UNAUTHORIZED,
    ],
};

/// `GET /ws`.
pub const WEBSOCKET: Route = Route {
    method: Method::Get,
    path: "/ws",
    operation_id: "websocket",
    summary: "The live stream of metrics, alerts and emergencies (WebSocket; see ServerMessage and ClientMessage).",
    tag: "monitor",
    auth: Auth::BearerOrQuery,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[
        ok(101, "Switching to WebSocket.", Body::WebSocket),
        UNAUTHORIZED,
        err(426, "`websocket_required`: not a WebSocket upgrade request"),
    ],
};

/// `GET /`.
pub const DASHBOARD: Route = Route {
    method: Method::Get,
    path: "/",
    operation_id: "dashboard",
    summary: "The live dashboard (it asks for the token, or takes it from `#token=`).",
    tag: "monitor",
    auth: Auth::None,
    path_params: &[],
    query: None,
    request: Body::Empty,
    answers: &[ok(
        200,
        "The page.",
        Body::Text {
            content_type: "text/html; charset=utf-8",
        },
    )],
};
