//! Every state-changing API call becomes an audit entry, signed and chained with the rest of
//! the audit log: who (the token's name and the peer address), what (the operation), on what
//! (the request path), the outcome (status and error code) and the request body's SHA-256 and
//! size — enough to match an entry with the request that caused it, never the body itself.
//!
//! The audited operations are [`AUDITED`]; the other `POST` routes are [`QUERIES`] (they change
//! nothing). A test checks that every `POST` route of the contract is in one list, so a new
//! route cannot slip through unclassified. Calls refused by the token check are not entries:
//! they never reached the operation, and recording them would let anyone fill the log.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dsmil_core::monitoring::{AlertLevel, SecurityEvent};
use dsmil_core::ports::AuditSink as _;
use sha2::{Digest as _, Sha256};

use super::{ApiError, AppState};

/// Operations whose every authorised call is an audit entry.
pub const AUDITED: &[&str] = &[
    "submit_workflow",
    "cancel_workflow",
    "record_performance",
    "write_device",
    "emergency_stop",
    "emergency_clear",
];

/// `POST` operations that change nothing (predictions, quotes, attestations), so are not
/// audited.
pub const QUERIES: &[&str] = &[
    "predict_optimal_agent",
    "optimize_agent_allocation",
    "tpm_quote",
    "attest_device",
];

/// The caller's name in audit entries: the daemon's one token (`DATA_DIR/api-token`).
pub const TOKEN_NAME: &str = "api-token";

/// `source_component` of the entries.
pub const SOURCE: &str = "dsmild-api";

/// Largest error answer read back for its `code`.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What an audited call was, for its entry.
struct Call {
    operation: &'static str,
    method: String,
    path: String,
    peer: String,
    body_sha256: String,
    body_len: usize,
}

/// Middleware of an audited route: runs the call with the body it read (at most `limit`
/// bytes, the route's own limit), then appends the entry.
pub async fn audit(
    operation: &'static str,
    limit: usize,
    request: Request,
    next: Next,
) -> Response {
    let app = request.extensions().get::<Arc<AppState>>().cloned();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "an unknown address".to_owned(), |c| c.0.to_string());
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is over {limit} bytes"),
        )
        .into_response();
    };
    let call = Call {
        operation,
        method,
        path,
        peer,
        body_sha256: dsmil_core::hex::encode(&Sha256::digest(&bytes)),
        body_len: bytes.len(),
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (response, code) = error_code(response).await;
    if let Some(app) = app {
        let event = entry(&call, response.status(), code.as_deref());
        if let Err(e) = app.audit.append(event).await {
            tracing::error!(
                operation,
                error = %e,
                "could not audit an API call; it was answered {}",
                response.status()
            );
        }
    }
    response
}

/// The `error.code` of an error answer (read back and restored), `None` for a success.
async fn error_code(response: Response) -> (Response, Option<String>) {
    if response.status().is_success() {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY)
        .await
        .unwrap_or_else(|_| Bytes::new());
    let code = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
    (Response::from_parts(parts, Body::from(bytes)), code)
}

/// The audit entry of `call`, answered `status` (with `code` when it failed).
fn entry(call: &Call, status: StatusCode, code: Option<&str>) -> SecurityEvent {
    let outcome = match code {
        Some(code) => format!("{} {code}", status.as_u16()),
        None => status.as_u16().to_string(),
    };
    let severity = if status.is_success() {
        AlertLevel::Info
    } else {
        AlertLevel::Warning
    };
    let mut event = SecurityEvent::new(
        format!("api_{}", call.operation),
        severity,
        SOURCE,
        format!(
            "{} {} by token {TOKEN_NAME:?} from {}: {outcome}",
            call.method, call.path, call.peer
        ),
    );
    event.affected_resources = vec![call.path.clone()];
    event.response_actions = vec![
        format!("answered {outcome}"),
        format!(
            "request body sha256:{} ({} bytes)",
            call.body_sha256, call.body_len
        ),
    ];
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_post_route_is_audited_or_a_query() {
        for route in dsmil_api::routes::ALL {
            if route.method != dsmil_api::routes::Method::Post {
                continue;
            }
            let audited = AUDITED.contains(&route.operation_id);
            let query = QUERIES.contains(&route.operation_id);
            assert!(
                audited ^ query,
                "POST {} ({}) must be in exactly one of AUDITED and QUERIES",
                route.path,
                route.operation_id
            );
        }
        for name in AUDITED.iter().chain(QUERIES) {
            assert!(
                dsmil_api::routes::ALL
                    .iter()
                    .any(|r| r.operation_id == *name),
                "{name} is not an operation of the contract"
            );
        }
    }

    #[test]
    fn entries_name_who_what_and_the_outcome() {
        let call = Call {
            operation: "write_device",
            method: "POST".into(),
            path: "/api/v1/devices/0x8009/write".into(),
            peer: "127.0.0.1:5000".into(),
            body_sha256: "ab".repeat(32),
            body_len: 17,
        };
        let refused = entry(&call, StatusCode::FORBIDDEN, Some("policy_violation"));
        assert_eq!(refused.event_type, "api_write_device");
        assert_eq!(refused.severity, AlertLevel::Warning);
        assert!(
            refused.description.contains("\"api-token\"")
                && refused.description.contains("127.0.0.1:5000")
                && refused.description.contains("403 policy_violation"),
            "{}",
            refused.description
        );
        assert!(refused.response_actions[1].contains("(17 bytes)"));
        let ok = entry(&call, StatusCode::OK, None);
        assert_eq!(ok.severity, AlertLevel::Info);
        assert!(ok.description.ends_with(": 200"), "{}", ok.description);
    }
}
