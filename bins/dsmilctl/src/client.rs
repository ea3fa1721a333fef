//! Client plumbing shared by every command that talks to dsmild: base URL, bearer token from
//! the token file, JSON in and out, and errors that say what to do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// A connection to one dsmild.
pub struct Client {
    base: String,
    token_file: PathBuf,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `url` that reads its token from `token_file` when a call needs it.
    pub fn new(url: &str, token_file: &Path) -> Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url {url:?} must start with http:// or https://");
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        Ok(Self {
            base,
            token_file: token_file.to_owned(),
            agent,
        })
    }

    /// The daemon's base URL (`http://host:port`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The API token from the token file.
    pub fn token(&self) -> Result<String> {
        let text = std::fs::read_to_string(&self.token_file).with_context(|| {
            format!(
                "cannot read the API token from {} (dsmild writes it to DATA_DIR/api-token on \
                 first start; pass --token-file or set DSMIL_TOKEN_FILE)",
                self.token_file.display()
            )
        })?;
        Ok(text.trim().to_owned())
    }

    /// `GET path` with the token; the JSON answer, or the API's error as an error.
    pub fn get(&self, path: &str) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let token = self.token()?;
        let response = self
            .agent
            .get(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .call();
        self.answer(&url, response)
    }

    /// `POST path` with `body` of `content_type` and the token; the JSON answer, or the API's
    /// error as an [`ApiFailure`].
    pub fn post_raw(&self, path: &str, content_type: &str, body: String) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let token = self.token()?;
        let response = self
            .agent
            .post(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", content_type)
            .send(body);
        self.answer(&url, response)
    }

    fn answer(
        &self,
        url: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value> {
        let mut response = response.map_err(|e| {
            anyhow!(
                "cannot reach dsmild at {}: {e} (is it running? start it with \
                 `cargo run --release --bin dsmild`)",
                self.base
            )
        })?;
        let status = response.status();
        let body: Value = response
            .body_mut()
            .read_json()
            .with_context(|| format!("{url} answered {status} with a body that is not JSON"))?;
        if status.is_success() {
            return Ok(body);
        }
        Err(ApiFailure {
            status: status.as_u16(),
            code: body["error"]["code"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned(),
            message: body["error"]["message"]
                .as_str()
                .unwrap_or("(no message)")
                .to_owned(),
            detail: body["error"].clone(),
        }
        .into())
    }
}

/// dsmild answered with an error.
#[derive(Debug)]
pub struct ApiFailure {
    /// HTTP status.
    pub status: u16,
    /// The error code.
    pub code: String,
    /// The message.
    pub message: String,
    /// The whole error object (extra fields such as `record` and `field`).
    pub detail: Value,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dsmild refused the request ({}, {}): {}",
            self.status, self.code, self.message
        )
    }
}

impl std::error::Error for ApiFailure {}
