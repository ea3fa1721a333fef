//! HTTP agents: the task POSTed as JSON, the result answered as JSON.
//!
//! Requests run on the blocking pool with `ureq` (connect timeout 5 s, and the attempt's timeout
//! as the overall bound); a cancelled attempt stops waiting at once and its request ends by that
//! bound. Redirects are not followed: an agent answers where it is configured.
//!
//! `https://` agents are reached over rustls on the aws-lc-rs provider, trusting the system's
//! root certificates, or the CA bundle of the entry's `tls.ca`; with `tls.cert` and `tls.key`
//! the daemon presents a client certificate (mutual TLS). The files are read once, when the
//! agent is built.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AgentKind, AgentTls};
use async_trait::async_trait;
use dsmil_core::AgentId;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig, TlsProvider};

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
    tls: TlsConfig,
}

impl HttpAgent {
    /// An agent `id` at `url` (`http://` or `https://`); an `https://` one trusts the system
    /// roots.
    pub fn new(id: AgentId, url: impl Into<String>) -> Result<Self, AgentError> {
        Self::configured(id, url, None)
    }

    /// An agent `id` at `url` with the entry's TLS settings: trusting `tls.ca` instead of the
    /// system roots and presenting `tls.cert`/`tls.key`. The files are read now.
    pub fn configured(
        id: AgentId,
        url: impl Into<String>,
        tls: Option<&AgentTls>,
    ) -> Result<Self, AgentError> {
        let url = url.into();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(AgentError::InvalidUrl { url });
        }
        let roots = match tls.and_then(|t| t.ca.as_deref()) {
            Some(ca) => RootCerts::new_with_certs(&certificates(ca)?),
            None if url.starts_with("https://") => system_roots()?,
            // Never used: an http:// agent is not redirected to TLS.
            None => RootCerts::new_with_certs(&[]),
        };
        let client = match tls.map(|t| (&t.cert, &t.key)) {
            Some((Some(cert), Some(key))) => Some(ClientCert::new_with_certs(
                &certificates(cert)?,
                private_key(key)?,
            )),
            None | Some((None, None)) => None,
            Some(_) => {
                return Err(AgentError::TlsSetup {
                    detail: "tls.cert and tls.key go together".into(),
                    source: None,
                });
            }
        };
        Ok(Self {
            id,
            url,
            tls: tls_config(roots, client),
        })
    }
}

fn tls_config(roots: RootCerts, client: Option<ClientCert>) -> TlsConfig {
    TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(roots)
        .client_cert(client)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .build()
}

fn setup_error(detail: String, source: impl Into<crate::agent::BoxError>) -> AgentError {
    AgentError::TlsSetup {
        detail,
        source: Some(source.into()),
    }
}

/// The system's root certificates (`/etc/ssl/certs`, `SSL_CERT_FILE`, …), read once per
/// process: every `https://` agent trusts the same store.
fn system_roots() -> Result<RootCerts, AgentError> {
    static ROOTS: std::sync::OnceLock<Result<RootCerts, String>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| load_system_roots().map_err(|e| e.to_string()))
        .clone()
        .map_err(|detail| AgentError::TlsSetup {
            detail,
            source: None,
        })
}

fn load_system_roots() -> Result<RootCerts, AgentError> {
    let found = rustls_native_certs::load_native_certs();
    let certs: Vec<Certificate<'static>> = found
        .certs
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    if certs.is_empty() {
        let why = found
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(AgentError::TlsSetup {
            detail: format!(
                "no system root certificates found ({}); install ca-certificates or set tls.ca",
                if why.is_empty() {
                    "none installed"
                } else {
                    &why
                }
            ),
            source: None,
        });
    }
    Ok(RootCerts::new_with_certs(&certs))
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<PemItem<'static>>, AgentError> {
    let bytes = std::fs::read(path)
        .map_err(|e| setup_error(format!("cannot read the {what} {}", path.display()), e))?;
    ureq::tls::parse_pem(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup_error(format!("{} is not PEM", path.display()), e))
}

/// The certificates of the PEM file `path` (at least one).
fn certificates(path: &Path) -> Result<Vec<Certificate<'static>>, AgentError> {
    let certs: Vec<Certificate<'static>> = read_pem(path, "certificate file")?
        .into_iter()
        .filter_map(|item| match item {
            PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(AgentError::TlsSetup {
            detail: format!("{} holds no certificate", path.display()),
            source: None,
        });
    }
    Ok(certs)
}

/// The one private key of the PEM file `path`.
fn private_key(path: &Path) -> Result<PrivateKey<'static>, AgentError> {
    let mut keys = read_pem(path, "private key file")?
        .into_iter()
        .filter_map(|item| match item {
            PemItem::PrivateKey(k) => Some(k),
            _ => None,
        });
    match (keys.next(), keys.next()) {
        (Some(key), None) => Ok(key),
        (None, _) => Err(AgentError::TlsSetup {
            detail: format!("{} holds no private key", path.display()),
            source: None,
        }),
        (Some(_), Some(_)) => Err(AgentError::TlsSetup {
            detail: format!("{} holds more than one private key", path.display()),
            source: None,
        }),
    }
}

fn post(
    url: &str,
    tls: TlsConfig,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<AgentOutput, AgentError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .tls_config(tls)
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
        let tls = self.tls.clone();
        let timeout = Duration::from_millis(input.timeout_ms.max(1));
        tokio::task::spawn_blocking(move || post(&url, tls, body, timeout))
            .await
            .map_err(|e| AgentError::transport("running the request", e))?
    }
}
