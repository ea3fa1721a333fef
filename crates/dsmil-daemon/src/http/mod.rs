//! The HTTP API: every route of `dsmil_api::routes` registered through one table (so the
//! daemon serves exactly the documented routes, each with the authorisation the table names),
//! the bearer token, and the JSON error format. Each layer's handlers live in their own module;
//! [`wire`] converts the layers' types to the contract's.
//! [`serve`] is the listener: timeouts, the connection cap and the open-file limit; [`audited`]
//! makes every state-changing call an audit entry.

mod audit;
pub mod audited;
mod emergency;
pub mod failures;
mod learn;
mod monitor;
pub mod serve;
mod status;
mod tpm;
pub mod wire;
mod workflows;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use axum::{Json, Router};
use dsmil_api::routes::{self, Auth, Method, Route};
use dsmil_api::{ErrorBody, ErrorResponse};

/// What the handlers share: every running layer.
pub type AppState = crate::compose::Layers;

/// An API error rendered as `{"error":{"code","message",…}}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    // Boxed: errors travel through every handler's `Result`, which stays small.
    body: Box<ErrorBody>,
    /// Seconds for a `Retry-After` header (429 and 503 answers).
    retry_after: Option<u64>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: Box::new(ErrorResponse::new(code, message).error),
            retry_after: None,
        }
    }

    /// The error with `Retry-After: secs`.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The error with the record and field of a rejected performance record.
    pub fn with_record(mut self, record: usize, field: &str) -> Self {
        self.body.record = Some(record as u64);
        self.body.field = Some(field.to_owned());
        self
    }

    /// The error with a TPM response code.
    pub fn with_tpm_result(mut self, rc: dsmil_core::TpmResultCode) -> Self {
        self.body.tpm_rc = Some(format!("{:#x}", rc.raw()));
        self.body.tpm_result = Some(rc);
        self
    }

    /// 400 with `code` for a request that does not parse.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let retry_after = self.retry_after;
        let mut response = (self.status, Json(ErrorResponse { error: *self.body })).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if unauthorized {
            // RFC 6750: tell the client which scheme to use.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"dsmild\""),
            );
        }
        response
    }
}

/// Parses a JSON body into a contract type, answering 400 with `code` naming the problem.
pub fn parse_json<T: serde::de::DeserializeOwned>(code: &str, body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(code, format!("the body is not valid: {e}")))
}

/// The token every protected route checks, and the failed checks per client address
/// ([`failures`]).
pub struct TokenCheck {
    secret: String,
    failures: failures::FailureLimiter,
}

impl TokenCheck {
    /// A check against `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            secret: secret.into(),
            failures: failures::FailureLimiter::new(),
        }
    }

    fn matches(&self, presented: &str) -> bool {
        crate::token::constant_time_eq(presented.as_bytes(), self.secret.as_bytes())
    }
}

/// The routes as registered, with the method and path of each (what the tests compare with
/// the contract).
pub struct Routes {
    router: Router<Arc<AppState>>,
    served: Vec<(Method, &'static str)>,
    aliases: Vec<(Method, String)>,
    token: Arc<TokenCheck>,
}

impl Routes {
    fn new(token: Arc<TokenCheck>) -> Self {
        Self {
            router: Router::new(),
            served: Vec::new(),
            aliases: Vec::new(),
            token,
        }
    }

    /// Registers `handler` for `route`, behind the authorisation the route names, with axum's
    /// default body limit.
    fn add<H, T>(self, route: &'static Route, handler: H) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        self.add_limited(route, handler, DEFAULT_BODY_LIMIT)
    }

    /// Like [`Routes::add`], accepting request bodies of up to `body_limit` bytes (the limit the
    /// handler's extractor and the audit middleware both apply).
    fn add_limited<H, T>(mut self, route: &'static Route, handler: H, body_limit: usize) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        let filter = match route.method {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
        };
        let mut method_router = on(filter, handler);
        if body_limit != DEFAULT_BODY_LIMIT {
            method_router = method_router.layer(DefaultBodyLimit::max(body_limit));
        }
        if audited::AUDITED.contains(&route.operation_id) {
            // Inside the token check: only authorised calls become entries.
            let (operation, limit) = (route.operation_id, body_limit);
            method_router = method_router.route_layer(middleware::from_fn(
                move |request: Request, next: Next| audited::audit(operation, limit, request, next),
            ));
        }
        match route.auth {
            Auth::None => {}
            Auth::Bearer => {
                method_router = method_router.route_layer(middleware::from_fn_with_state(
                    Arc::clone(&self.token),
                    require_bearer,
                ));
            }
            Auth::BearerOrQuery => {
                method_router = method_router.route_layer(middleware::from_fn_with_state(
                    Arc::clone(&self.token),
                    require_bearer_or_query,
                ));
            }
        }
        if let Some(alias) = route.alias() {
            self.router = self.router.route(&alias, method_router.clone());
            self.aliases.push((route.method, alias));
        }
        self.router = self.router.route(route.path, method_router);
        self.served.push((route.method, route.path));
        self
    }

    /// Method and path of every route registered.
    pub fn served(&self) -> &[(Method, &'static str)] {
        &self.served
    }

    /// Method and path of every unversioned alias registered (`/api/status` for
    /// `/api/v1/status`).
    pub fn aliases(&self) -> &[(Method, String)] {
        &self.aliases
    }
}

/// Largest request body `POST /api/learn/records` accepts (about 50,000 records with
/// embeddings); `dsmilctl learn import` sends files in smaller batches.
pub const MAX_RECORDS_BODY: usize = 64 * 1024 * 1024;

/// axum's default request body limit, which every route but the records import keeps.
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Every route of the contract with its handler.
pub fn routes(token: Arc<TokenCheck>) -> Routes {
    Routes::new(token)
        .add(&routes::HEALTH, status::health)
        .add(&routes::READY, status::ready)
        .add(&routes::STATUS, status::status)
        .add(&routes::CLUSTER, status::cluster)
        .add(&routes::OPENAPI, status::openapi)
        .add(&routes::SUBMIT_WORKFLOW, workflows::submit)
        .add(&routes::GET_WORKFLOW, workflows::read)
        .add(&routes::CANCEL_WORKFLOW, workflows::cancel)
        .add_limited(
            &routes::RECORD_PERFORMANCE,
            learn::records,
            MAX_RECORDS_BODY,
        )
        .add(&routes::PREDICT, learn::predict)
        .add(&routes::ANOMALIES, learn::anomalies)
        .add(&routes::INSIGHTS, learn::insights)
        .add(&routes::TRENDS, learn::trends)
        .add(&routes::ALLOCATE, learn::allocate)
        .add(&routes::TPM_INFO, tpm::info)
        .add(&routes::TPM_QUOTE, tpm::quote)
        .add(&routes::DEVICES, tpm::devices)
        .add(&routes::DEVICE_WRITE, tpm::write)
        .add(&routes::DEVICE_ATTEST, tpm::attest)
        .add(&routes::AUDIT_PROOF, tpm::audit_proof)
        .add(&routes::AUDIT_CONSISTENCY, audit::consistency)
        .add(&routes::AUDIT_WITNESSES, audit::witnesses)
        .add(&routes::EMERGENCY, emergency::read)
        .add(&routes::EMERGENCY_STOP, emergency::stop)
        .add(&routes::EMERGENCY_CLEAR, emergency::clear)
        .add(&routes::ALERTS, monitor::alerts)
        .add(&routes::METRICS, monitor::metrics)
        .add(&routes::WEBSOCKET, monitor::websocket)
        .add(&routes::DASHBOARD, monitor::dashboard)
}

/// The router over `layers`.
pub fn router(layers: Arc<AppState>) -> Router {
    let token = Arc::new(TokenCheck::new(layers.token.secret.clone()));
    routes(token)
        .router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // For the audit middleware, which runs inside a route and needs the audit log.
        .layer(axum::Extension(Arc::clone(&layers)))
        .with_state(layers)
}

/// The router of `[metrics] listen`: `GET /metrics` alone, without the token.
pub fn metrics_router(layers: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(monitor::metrics))
        .fallback(not_found)
        .with_state(layers)
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

fn bearer(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The client's IP address, when the listener gave it.
fn peer_ip(request: &Request) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

fn check(
    token: &TokenCheck,
    presented: Option<&str>,
    how: &str,
    peer: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    let now = std::time::Instant::now();
    if let Some(ip) = peer
        && let Err(wait) = token.failures.check(ip, now)
    {
        let secs = wait.as_secs().max(1);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            format!(
                "{} failed token checks from {ip} within {} s; retry in {secs} s",
                failures::MAX_FAILURES,
                failures::WINDOW.as_secs()
            ),
        )
        .with_retry_after(secs));
    }
    let refused = match presented {
        Some(t) if token.matches(t) => {
            if let Some(ip) = peer {
                token.failures.succeeded(ip);
            }
            return Ok(());
        }
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token does not match DATA_DIR/api-token",
        ),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("missing {how} (the token is in DATA_DIR/api-token)"),
        ),
    };
    if let Some(ip) = peer
        && token.failures.failed(ip, now)
    {
        tracing::warn!(
            %ip,
            failures = failures::MAX_FAILURES,
            window_secs = failures::WINDOW.as_secs(),
            "too many failed token checks: refusing this address's requests for a while"
        );
    }
    Err(refused)
}

/// Rejects requests without `Authorization: Bearer <token>`.
async fn require_bearer(
    State(token): State<Arc<TokenCheck>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    check(
        &token,
        bearer(&request),
        "'Authorization: Bearer <token>' header",
        peer_ip(&request),
    )?;
    Ok(next.run(request).await)
}

/// Rejects requests without the token in the `Authorization` header or `?token=` (browsers
/// cannot set headers on a WebSocket).
async fn require_bearer_or_query(
    State(token): State<Arc<TokenCheck>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = bearer(&request).or_else(|| {
        request
            .uri()
            .query()?
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
    });
    let peer = peer_ip(&request);
    check(
        &token,
        presented,
        "token (Authorization: Bearer <token> or ?token=<token>)",
        peer,
    )?;
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_daemon_serves_exactly_the_contract_routes() {
        let routes = routes(Arc::new(TokenCheck::new("t")));
        let served: BTreeSet<_> = routes.served().iter().copied().collect();
        let contract: BTreeSet<_> = routes::ALL.iter().map(|r| (r.method, r.path)).collect();
        assert_eq!(served, contract);
        assert_eq!(
            routes.served().len(),
            routes::ALL.len(),
            "a route registered twice"
        );
        let aliases: BTreeSet<_> = routes.aliases().iter().cloned().collect();
        let expected: BTreeSet<_> = routes::ALL
            .iter()
            .filter_map(|r| Some((r.method, r.alias()?)))
            .collect();
        assert_eq!(aliases, expected);
        assert!(aliases.contains(&(Method::Get, "/api/status".to_owned())));
    }
}
