//! A blocking client of dsmild's API over the contract's types (feature `client`).
//!
//! ```no_run
//! use dsmil_api::client::Client;
//!
//! let token = std::fs::read_to_string("dsmil-data/api-token")?;
//! let client = Client::new("http://127.0.0.1:8765", token.trim())?;
//! let status = client.status()?;
//! println!("dsmild {} with {} agents", status.version, status.agents.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::error::{ErrorBody, ErrorResponse};
use crate::routes::{self, Method, Route};
use crate::{alerts, audit, cluster, devices, learn, status, tpm, workflows};

/// Why a call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The base URL is not `http://` or `https://`.
    #[error("{0:?} is not an http:// or https:// URL")]
    BadUrl(String),
    /// The daemon could not be reached.
    #[error(
        "cannot reach dsmild at {base} (is it running? start it with `cargo run --release --bin dsmild`)"
    )]
    Unreachable {
        /// The base URL.
        base: String,
        /// The transport error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The daemon refused the request with its error body.
    #[error("dsmild refused the request ({status}, {}): {}", .error.code, .error.message)]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error the daemon sent.
        error: ErrorBody,
    },
    /// The answer is not what the contract says.
    #[error("{url} answered {status} with a body that does not match the API contract")]
    Decode {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Why it did not decode.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ClientError {
    /// The API error, when the daemon answered with one.
    pub fn api_error(&self) -> Option<(u16, &ErrorBody)> {
        match self {
            ClientError::Api { status, error } => Some((*status, error)),
            _ => None,
        }
    }
}

/// What submitting a workflow answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// It finished (`wait=true`).
    Finished(Box<workflows::WorkflowResult>),
    /// It runs (`wait=false`).
    Accepted(workflows::WorkflowAccepted),
}

/// A connection to one dsmild.
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client for the daemon at `base` (`http://host:port`) with the API token.
    pub fn new(base: &str, token: &str) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::BadUrl(base));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        Ok(Self {
            base,
            token: token.to_owned(),
            agent,
        })
    }

    /// The daemon's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of the WebSocket stream (`ws://…/ws`).
    pub fn websocket_url(&self) -> String {
        format!(
            "{}{}",
            self.base
                .replacen("http://", "ws://", 1)
                .replacen("https://", "wss://", 1),
            routes::WEBSOCKET.path
        )
    }

    /// The API token.
    pub fn token(&self) -> &str {
        &self.token
    }

    fn call(
        &self,
        route: &Route,
        path: &str,
        body: Option<(&str, String)>,
    ) -> Result<(u16, Vec<u8>, String), ClientError> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let response = match (route.method, body) {
            (Method::Get, _) => self.agent.get(&url).header("Authorization", &auth).call(),
            (Method::Post, Some((content_type, text))) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", content_type)
                .send(text),
            (Method::Post, None) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty(),
        };
        let mut response = response.map_err(|e| ClientError::Unreachable {
            base: self.base.clone(),
            source: Box::new(e),
        })?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| ClientError::Decode {
                url: url.clone(),
                status,
                source: Box::new(e),
            })?;
        if !(200..300).contains(&status) {
            let error = serde_json::from_slice::<ErrorResponse>(&bytes)
                .map(|e| e.error)
                .map_err(|e| ClientError::Decode {
                    url: url.clone(),
                    status,
                    source: Box::new(e),
                })?;
            return Err(ClientError::Api { status, error });
        }
        Ok((status, bytes, url))
    }

    fn decode<T: DeserializeOwned>(
        (status, bytes, url): (u16, Vec<u8>, String),
    ) -> Result<T, ClientError> {
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url,
            status,
            source: Box::new(e),
        })
    }

    fn get<T: DeserializeOwned>(&self, route: &Route, path: &str) -> Result<T, ClientError> {
        Self::decode(self.call(route, path, None)?)
    }

    fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        route: &Route,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let text = serde_json::to_string(body).map_err(|e| ClientError::Decode {
            url: path.to_owned(),
            status: 0,
            source: Box::new(e),
        })?;
        Self::decode(self.call(route, path, Some(("application/json", text)))?)
    }

    /// `GET /api/health`.
    pub fn health(&self) -> Result<status::Health, ClientError> {
        self.get(&routes::HEALTH, routes::HEALTH.path)
    }

    /// `GET /api/ready`; a failed check is [`ClientError::Api`] with 503 `not_ready`.
    pub fn ready(&self) -> Result<status::Readiness, ClientError> {
        self.get(&routes::READY, routes::READY.path)
    }

    /// `GET /api/status`.
    pub fn status(&self) -> Result<status::Status, ClientError> {
        self.get(&routes::STATUS, routes::STATUS.path)
    }

    /// `GET /api/cluster`.
    pub fn cluster(&self) -> Result<cluster::ClusterView, ClientError> {
        self.get(&routes::CLUSTER, routes::CLUSTER.path)
    }

    /// `GET /api/openapi.json`, as JSON.
    pub fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.get(&routes::OPENAPI, routes::OPENAPI.path)
    }

    /// `POST /api/workflows`: the spec's text (`application/json` or `application/toml`);
    /// with `wait`, the answer comes when the workflow has finished.
    pub fn submit_workflow(
        &self,
        spec: String,
        content_type: &str,
        wait: bool,
    ) -> Result<Submitted, ClientError> {
        let r = &routes::SUBMIT_WORKFLOW;
        let path = format!("{}?wait={wait}", r.path);
        let answer = self.call(r, &path, Some((content_type, spec)))?;
        if answer.0 == 202 {
            Self::decode(answer).map(Submitted::Accepted)
        } else {
            Self::decode(answer).map(|r| Submitted::Finished(Box::new(r)))
        }
    }

    /// `GET /api/workflows/{id}`.
    pub fn workflow(&self, id: &str) -> Result<workflows::WorkflowRecord, ClientError> {
        let r = &routes::GET_WORKFLOW;
        self.get(r, &r.path_with(&[id]))
    }

    /// `POST /api/workflows/{id}/cancel`.
    pub fn cancel_workflow(&self, id: &str) -> Result<workflows::CancelAccepted, ClientError> {
        let r = &routes::CANCEL_WORKFLOW;
        Self::decode(self.call(r, &r.path_with(&[id]), None)?)
    }

    /// `POST /api/learn/records` with NDJSON text (one record per line).
    pub fn record_ndjson(&self, ndjson: String) -> Result<learn::RecordsStored, ClientError> {
        let r = &routes::RECORD_PERFORMANCE;
        Self::decode(self.call(r, r.path, Some(("application/x-ndjson", ndjson)))?)
    }

    /// `POST /api/learn/records` with records.
    pub fn record(
        &self,
        records: &[learn::AgentPerformance],
    ) -> Result<learn::RecordsStored, ClientError> {
        let r = &routes::RECORD_PERFORMANCE;
        self.post(r, r.path, &records)
    }

    /// `POST /api/learn/predict`.
    pub fn predict(
        &self,
        request: &learn::PredictRequest,
    ) -> Result<learn::LearningPrediction, ClientError> {
        let r = &routes::PREDICT;
        self.post(r, r.path, request)
    }

    /// `GET /api/learn/anomalies`.
    pub fn anomalies(&self, threshold_std_devs: f64) -> Result<Vec<learn::Anomaly>, ClientError> {
        let r = &routes::ANOMALIES;
        self.get(
            r,
            &format!("{}?threshold_std_devs={threshold_std_devs}", r.path),
        )
    }

    /// `GET /api/learn/insights`.
    pub fn insights(&self) -> Result<learn::Insights, ClientError> {
        self.get(&routes::INSIGHTS, routes::INSIGHTS.path)
    }

    /// `GET /api/learn/trends`.
    pub fn trends(&self, agent: &str, hours: u32) -> Result<learn::TrendReport, ClientError> {
        let r = &routes::TRENDS;
        let path = format!(
            "{}?agent_id={}&time_window_hours={hours}",
            r.path,
            encode_query(agent)
        );
        self.get(r, &path)
    }

    /// `POST /api/learn/allocate`.
    pub fn allocate(
        &self,
        request: &learn::AllocateRequest,
    ) -> Result<learn::Allocation, ClientError> {
        let r = &routes::ALLOCATE;
        self.post(r, r.path, request)
    }

    /// `GET /api/tpm/info`.
    pub fn tpm_info(&self) -> Result<tpm::TpmInfo, ClientError> {
        self.get(&routes::TPM_INFO, routes::TPM_INFO.path)
    }

    /// `POST /api/tpm/quote`.
    pub fn tpm_quote(
        &self,
        request: &tpm::QuoteRequest,
    ) -> Result<tpm::QuoteResponse, ClientError> {
        let r = &routes::TPM_QUOTE;
        self.post(r, r.path, request)
    }

    /// `GET /api/devices`.
    pub fn devices(&self) -> Result<devices::Devices, ClientError> {
        self.get(&routes::DEVICES, routes::DEVICES.path)
    }

    /// `POST /api/devices/{id}/write`.
    pub fn write_device(
        &self,
        device: &str,
        request: &devices::WriteRequest,
    ) -> Result<devices::Written, ClientError> {
        let r = &routes::DEVICE_WRITE;
        self.post(r, &r.path_with(&[device]), request)
    }

    /// `POST /api/devices/{id}/attest`.
    pub fn attest_device(
        &self,
        device: &str,
        request: &devices::AttestRequest,
    ) -> Result<devices::AttestResponse, ClientError> {
        let r = &routes::DEVICE_ATTEST;
        self.post(r, &r.path_with(&[device]), request)
    }

    /// `GET /api/audit/proof/{seq}`.
    pub fn audit_proof(&self, seq: u64) -> Result<audit::InclusionProof, ClientError> {
        let r = &routes::AUDIT_PROOF;
        self.get(r, &r.path_with(&[&seq.to_string()]))
    }

    /// `GET /api/audit/consistency?from=&to=` (`to` absent: the latest signed size).
    pub fn audit_consistency(
        &self,
        from: u64,
        to: Option<u64>,
    ) -> Result<audit::ConsistencyProof, ClientError> {
        let r = &routes::AUDIT_CONSISTENCY;
        let path = match to {
            Some(to) => format!("{}?from={from}&to={to}", r.path),
            None => format!("{}?from={from}", r.path),
        };
        self.get(r, &path)
    }

    /// `GET /api/audit/witnesses`.
    pub fn audit_witnesses(&self) -> Result<audit::WitnessView, ClientError> {
        self.get(&routes::AUDIT_WITNESSES, routes::AUDIT_WITNESSES.path)
    }

    /// `GET /api/alerts`.
    pub fn alerts(&self) -> Result<alerts::Alerts, ClientError> {
        self.get(&routes::ALERTS, routes::ALERTS.path)
    }

    /// `GET /metrics`, the Prometheus text.
    pub fn metrics(&self) -> Result<String, ClientError> {
        let (status, bytes, url) = self.call(&routes::METRICS, routes::METRICS.path, None)?;
        String::from_utf8(bytes).map_err(|e| ClientError::Decode {
            url,
            status,
            source: Box::new(e),
        })
    }
}

/// Percent-encodes a query value.
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
