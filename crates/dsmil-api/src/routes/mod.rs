//! Every route of dsmild's API in one table: method, path, what it takes and what it answers.
//!
//! The daemon registers its handlers through this table (and a test checks it serves exactly
//! these routes), the typed client calls these paths, and [`crate::openapi`] describes them —
//! so a route cannot exist in one of the three and be missing from the others.

use std::borrow::Cow;

use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::path::Parameter;
use utoipa::openapi::schema::Schema;

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

impl Method {
    /// `GET` or `POST`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// How a route is authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No token (health, the dashboard page).
    None,
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// The bearer header, or `?token=` (the WebSocket, which browsers cannot give headers).
    BearerOrQuery,
}

/// A schema the contract names: its component name, schema and the schemas it refers to.
#[derive(Clone, Copy)]
pub struct SchemaRef {
    /// The component name.
    pub name: fn() -> Cow<'static, str>,
    /// The schema.
    pub schema: fn() -> RefOr<Schema>,
    /// The schemas it refers to.
    pub refs: fn(&mut Vec<(String, RefOr<Schema>)>),
}

impl std::fmt::Debug for SchemaRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&(self.name)())
    }
}

impl SchemaRef {
    /// The reference to `T`'s schema.
    pub const fn of<T: ToSchema>() -> Self {
        Self {
            name: T::name,
            schema: T::schema,
            refs: T::schemas,
        }
    }
}

/// A request or response body.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// No body.
    Empty,
    /// `application/json` of one schema.
    Json(SchemaRef),
    /// `application/json`, an array of one schema.
    JsonArray(SchemaRef),
    /// A workflow spec as `application/json` or `application/toml` (the same fields).
    WorkflowSpec,
    /// Performance records as a JSON array (`application/json`) or NDJSON
    /// (`application/x-ndjson`, one record per line).
    Records,
    /// Text of a content type (Prometheus exposition, the dashboard's HTML).
    Text {
        /// The content type.
        content_type: &'static str,
    },
    /// The switch to WebSocket (101); the messages are `ws::ServerMessage` and
    /// `ws::ClientMessage`.
    WebSocket,
}

/// One answer a route can give.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// When it is given.
    pub description: &'static str,
    /// Its body (errors are always `ErrorResponse`).
    pub body: Body,
}

/// One route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path; `{name}` marks a path parameter (the same syntax axum and OpenAPI use).
    pub path: &'static str,
    /// A unique name (OpenAPI `operationId`).
    pub operation_id: &'static str,
    /// What it does, one line.
    pub summary: &'static str,
    /// Which layer it belongs to (OpenAPI tag).
    pub tag: &'static str,
    /// Authorisation.
    pub auth: Auth,
    /// Path parameters and their descriptions.
    pub path_params: &'static [(&'static str, &'static str)],
    /// Query parameters.
    pub query: Option<fn() -> Vec<Parameter>>,
    /// The request body.
    pub request: Body,
    /// The answers, success first.
    pub answers: &'static [Answer],
}

mod table;

pub use table::*;

/// Every route, in the order the description lists them.
pub const ALL: &[Route] = &[
    HEALTH,
    READY,
    STATUS,
    CLUSTER,
    OPENAPI,
    SUBMIT_WORKFLOW,
    GET_WORKFLOW,
    CANCEL_WORKFLOW,
    RECORD_PERFORMANCE,
    PREDICT,
    ANOMALIES,
    INSIGHTS,
    TRENDS,
    ALLOCATE,
    TPM_INFO,
    TPM_QUOTE,
    DEVICES,
    DEVICE_WRITE,
    DEVICE_ATTEST,
    AUDIT_PROOF,
    AUDIT_CONSISTENCY,
    AUDIT_WITNESSES,
    EMERGENCY,
    EMERGENCY_STOP,
    EMERGENCY_CLEAR,
    ALERTS,
    METRICS,
    WEBSOCKET,
    DASHBOARD,
];

/// The documented prefix of the API's versioned routes.
pub const V1_PREFIX: &str = "/api/v1/";

impl Route {
    /// The unversioned alias of a `/api/v1/…` route (`/api/status` for `/api/v1/status`), which
    /// the daemon also serves so clients written before versioning keep working; `None` for
    /// routes outside `/api` (`/metrics`, `/ws`, `/`).
    pub fn alias(&self) -> Option<String> {
        self.path
            .strip_prefix(V1_PREFIX)
            .map(|rest| format!("/api/{rest}"))
    }

    /// The path with its parameters filled in (`/api/v1/workflows/{id}` → `/api/v1/workflows/3f…`),
    /// each value percent-encoded.
    pub fn path_with(&self, values: &[&str]) -> String {
        let mut out = String::with_capacity(self.path.len() + 40);
        let mut rest = self.path;
        let mut values = values.iter();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
            if let Some(v) = values.next() {
                for b in v.bytes() {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        out.push(char::from(b));
                    } else {
                        out.push_str(&format!("%{b:02X}"));
                    }
                }
            }
            rest = &rest[close..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn operations_are_unique_and_paths_well_formed() {
        let ids: BTreeSet<_> = ALL.iter().map(|r| r.operation_id).collect();
        assert_eq!(ids.len(), ALL.len());
        let routes: BTreeSet<_> = ALL.iter().map(|r| (r.method, r.path)).collect();
        assert_eq!(routes.len(), ALL.len());
        for r in ALL {
            assert!(r.path.starts_with('/'), "{}", r.path);
            let params = r.path.matches('{').count();
            assert_eq!(params, r.path_params.len(), "{}", r.path);
            assert!(!r.answers.is_empty());
        }
    }

    #[test]
    fn path_parameters_are_filled_and_encoded() {
        assert_eq!(GET_WORKFLOW.path_with(&["3f2a"]), "/api/v1/workflows/3f2a");
        assert_eq!(
            CANCEL_WORKFLOW.path_with(&["a b/c"]),
            "/api/v1/workflows/a%20b%2Fc/cancel"
        );
        assert_eq!(STATUS.path_with(&[]), "/api/v1/status");
    }
}
