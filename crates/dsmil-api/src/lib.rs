//! `dsmil-api`: the wire contract of dsmild — every HTTP route's request and response types,
//! every WebSocket message, the [`routes`] table, the [`openapi`] description generated from
//! them, and (feature `client`) a typed [`client`].
//!
//! The wire shape is decided here. Core's types are re-exported where they are the shape
//! (`WorkflowSpec`, `AgentPerformance`, `LearningPrediction`, the monitoring records); the
//! layers' own results (trends, quotes, proofs, alert state) have their wire form here, and the
//! daemon converts at the edge — so a renamed field fails to compile in the daemon, in dsmilctl
//! and in any client written against this crate, instead of printing "?".
//!
//! ```
//! use dsmil_api::learn::PredictRequest;
//! use dsmil_api::routes;
//!
//! let request: PredictRequest =
//!     serde_json::from_str(r#"{"task_description": "hash the release tarball"}"#)?;
//! assert!(request.exclude_agents.is_empty());
//! assert_eq!(routes::PREDICT.path, "/api/v1/learn/predict");
//!
//! // Unknown fields are refused, naming them.
//! let err = serde_json::from_str::<PredictRequest>(r#"{"task": "x"}"#).unwrap_err();
//! assert!(err.to_string().contains("unknown field `task`"));
//!
//! // The OpenAPI 3.1 description covers every route.
//! let doc = dsmil_api::openapi::document();
//! assert!(doc.paths.paths.contains_key("/api/v1/learn/predict"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod alerts;
pub mod audit;
#[cfg(feature = "client")]
pub mod client;
pub mod cluster;
pub mod devices;
pub mod emergency;
pub mod error;
pub mod learn;
pub mod openapi;
pub mod routes;
pub mod status;
pub mod tpm;
pub mod workflows;
pub mod ws;

pub use error::{ErrorBody, ErrorResponse};
