//! HTTP agents: the task POSTed as JSON, the result answered as JSON.
//!
//! Requests run on the blocking pool with `ureq` (connect timeout 5 s, and the attempt's timeout
//! as the overall bound); a cancelled attempt stops waiting at once and its request ends by that
//! bound.

use std::time::Duration;

use crate::config::AgentKind;
use async_trait::async_trait;
use dsmil_core::AgentId;

use crate::agent::{
    Agent, AgentError, AgentOutput, ERROR_QUOTE_BYTES, TaskInput, parse_answer, quote,
};

/// Largest response body accepted.
pub const MAX_BODY_BYTES: u64 = 16 << 20;

/// An agent behind a URL.
#[derive(Debug, Clone)]
pub struct HttpAgent {
    id: AgentId,
    url: String,
}

impl HttpAgent {
    /// An agent `id` at `url` (`http://` or `https://`).
    pub fn new(id: AgentId, url: impl Into<String>) -> Result<Self, AgentError> {
        let url = url.into();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(AgentError::InvalidUrl { url });
        }
        Ok(Self { id, url })
    }
}

fn post(url: &str, body: Vec<u8>, timeout: Duration) -> Result<AgentOutput, AgentError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5).min(timeout)))
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(&body[..])
        .map_err(|e| match e {
            ureq::Error::Timeout(_) => AgentError::Timeout { after: timeout },
            other => AgentError::transport(format!("POST {url}"), other),
        })?;
    let status = response.status().as_u16();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY_BYTES)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::Timeout(_) => AgentError::Timeout { after: timeout },
            ureq::Error::BodyExceedsLimit(_) => AgentError::InvalidOutput {
                reason: format!("response body is larger than {MAX_BODY_BYTES} bytes"),
                source: None,
            },
            other => AgentError::transport(format!("reading the response of {url}"), other),
        })?;
    if !(200..300).contains(&status) {
        return Err(AgentError::Http {
            status,
            body: quote(&bytes, ERROR_QUOTE_BYTES),
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| AgentError::InvalidOutput {
            reason: format!("response is not JSON: {}", quote(&bytes, 200)),
            source: Some(e),
        })?;
    parse_answer(value)
}

#[async_trait]
impl Agent for HttpAgent {
    fn id(&self) -> &AgentId {
        &self.id
    }

    fn kind(&self) -> AgentKind {
        AgentKind::Http
    }

    async fn run(&self, input: &TaskInput) -> Result<AgentOutput, AgentError> {
        let body = serde_json::to_vec(input).map_err(AgentError::Encode)?;
        let url = self.url.clone();
        let timeout = Duration::from_millis(input.timeout_ms.max(1));
        tokio::task::spawn_blocking(move || post(&url, body, timeout))
            .await
            .map_err(|e| AgentError::transport("running the request", e))?
    }
}
