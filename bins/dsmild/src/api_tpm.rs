//! `/api/tpm/*` and `/api/devices/*`: what the TPM is, quotes for remote attestation, and the
//! DSMIL devices through the bridge (quarantined devices refused with 403).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use dsmil_core::DeviceId;
use dsmil_core::tpm::{HashAlgorithm, PcrSelection};
use dsmil_tpm::bridge::{BridgeError, DsmilBridge};
use dsmil_tpm::der::base64;
use dsmil_tpm::{BackendError, Tpm, TpmError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::api::{ApiError, AppState};

/// Label of the attestation key used for quotes (shared with the bridge).
const AK_LABEL: &str = "dsmil-ak";
/// Largest body these routes accept.
const MAX_BODY: usize = 64 * 1024;

/// The TPM and device routes (mounted behind the token check).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/tpm/info", get(info))
        .route("/api/tpm/quote", post(quote))
        .route("/api/devices", get(devices))
        .route("/api/devices/{id}/write", post(write))
        .route("/api/devices/{id}/attest", post(attest))
        .route("/api/audit/proof/{seq}", get(audit_proof))
}

impl From<TpmError> for ApiError {
    fn from(err: TpmError) -> Self {
        let (status, code) = match &err {
            TpmError::Failed {
                source: BackendError::InvalidInput(_) | BackendError::UnknownKey(_),
                ..
            } => (StatusCode::BAD_REQUEST, "invalid_tpm_request"),
            TpmError::PolicyViolation(_) => (StatusCode::FORBIDDEN, "policy_violation"),
            TpmError::QueueFull(_) => (StatusCode::SERVICE_UNAVAILABLE, "tpm_busy"),
            TpmError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "tpm_timeout"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "tpm_error"),
        };
        let rc = err.result_code();
        ApiError::new(status, code, err.to_string())
            .with_detail(json!({"tpm_result": rc, "tpm_rc": format!("{:#x}", rc.raw())}))
    }
}

impl From<BridgeError> for ApiError {
    fn from(err: BridgeError) -> Self {
        match err {
            BridgeError::Tpm(e) => e.into(),
            BridgeError::PolicyViolation(m) => {
                ApiError::new(StatusCode::FORBIDDEN, "policy_violation", m)
            }
            BridgeError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "bridge_error",
                other.to_string(),
            ),
        }
    }
}

fn tpm(state: &AppState) -> Result<&Tpm, ApiError> {
    state.tpm.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "tpm_unavailable",
            "the TPM layer is not running",
        )
    })
}

fn bridge(state: &AppState) -> Result<&Arc<DsmilBridge>, ApiError> {
    state.bridge.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "bridge_unavailable",
            "the DSMIL bridge is not running",
        )
    })
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is {} bytes; at most {MAX_BODY}", body.len()),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid: {e}"),
        )
    })
}

fn hex_field(field: &str, text: &str, max: usize) -> Result<Vec<u8>, ApiError> {
    let bytes = dsmil_core::hex::decode(text).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_hex",
            format!("{field} must be hexadecimal"),
        )
    })?;
    if bytes.len() > max {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "too_long",
            format!("{field} is {} bytes; at most {max}", bytes.len()),
        ));
    }
    Ok(bytes)
}

fn device(id: &str) -> Result<DeviceId, ApiError> {
    let raw = match id.strip_prefix("0x").or_else(|| id.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => id.parse().ok(),
    };
    raw.and_then(|r| DeviceId::new(r).ok()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_device",
            format!("{id:?} is not a DSMIL device id (0x8000-0x806B)"),
        )
    })
}

async fn info(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let tpm = tpm(&state)?;
    let caps = tpm.query_capabilities().await?.value;
    let keys: Vec<_> = tpm
        .keys()
        .await?
        .value
        .into_iter()
        .map(|k| json!({"label": k.label, "template": k.template, "public_pem": k.public.pem()}))
        .collect();
    let audit = state.audit.as_ref().map(|log| {
        json!({
            "entries": log.len(),
            "signed": log.signed(),
            "tree_head": log.tree_head().map(|h| h.to_string()),
        })
    });
    let anchor = crate::tpm::read_anchor(tpm).await.map(|h| h.to_string());
    Ok(Json(json!({
        "backend": caps.backend,
        "hardware_rooted": caps.hardware_rooted,
        "manufacturer": caps.manufacturer,
        "vendor": caps.vendor,
        "firmware_version": caps.firmware_version,
        "algorithms": caps.algorithms,
        "pcr_banks": caps.pcr_banks,
        "max_nv_index_size": caps.max_nv_index_size,
        "max_nv_buffer": caps.max_nv_buffer,
        "nv_space_bytes": caps.nv_space_bytes,
        "location": caps.location,
        "keys": keys,
        "performance": tpm.perf_snapshot(),
        "audit": audit,
        "audit_anchor": anchor,
    })))
}

/// `GET /api/audit/proof/{seq}`: the inclusion proof of entry `seq` in the latest signed
/// tree head, with the entry as written and its leaf hash (`dsmilctl audit prove` checks it).
async fn audit_proof(
    State(state): State<Arc<AppState>>,
    Path(seq): Path<String>,
) -> Result<Json<dsmil_tpm::audit::InclusionProof>, ApiError> {
    let seq: u64 = seq.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_sequence",
            format!("{seq:?} is not an entry number (0, 1, 2, …)"),
        )
    })?;
    let log = state.audit.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            "the audit log is not open",
        )
    })?;
    match log.prove(seq).await {
        Ok(Some(proof)) => Ok(Json(proof)),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_signed",
            format!(
                "entry {seq} is not covered by a signed checkpoint ({} of {} entries are signed; \
                 a batch is signed within a second)",
                log.signed(),
                log.len()
            ),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "audit_error",
            e.to_string(),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuoteRequest {
    pcrs: Vec<u32>,
    #[serde(default)]
    nonce: String,
}

async fn quote(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tpm = tpm(&state)?;
    let request: QuoteRequest = parse_body(&body)?;
    let selection = PcrSelection::new(HashAlgorithm::Sha256, request.pcrs)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_pcrs", e.to_string()))?;
    let nonce = hex_field("nonce", &request.nonce, 64)?;
    let ak = tpm.ensure_attestation_key(AK_LABEL).await?;
    let quote = tpm.quote(AK_LABEL, &selection, &nonce).await?.value;
    quote.verify(&nonce).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "quote_invalid",
            format!("the TPM produced a quote that does not verify: {e}"),
        )
    })?;
    let values: serde_json::Map<String, serde_json::Value> = quote
        .pcr_values
        .iter()
        .map(|(i, d)| (i.to_string(), json!(dsmil_core::hex::encode(d.as_bytes()))))
        .collect();
    Ok(Json(json!({
        "backend": tpm.backend_name(),
        "hardware_rooted": tpm.hardware_rooted(),
        "nonce": request.nonce.to_ascii_lowercase(),
        "pcrs": {"bank": "sha256", "values": values},
        "message": base64(&quote.attest),
        "signature": base64(&quote.signature),
        "pcrs_file": base64(&dsmil_tpm::wire::tpm2_tools_pcrs(quote.bank, &quote.pcr_values)),
        "ak_pem": ak.public.pem(),
        "quote": quote,
    })))
}

async fn devices(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let bridge = bridge(&state)?;
    Ok(Json(json!({ "devices": bridge.devices() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteRequest {
    data: String,
}

async fn write(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let bridge = bridge(&state)?;
    let device = device(&id)?;
    let request: WriteRequest = parse_body(&body)?;
    let data = hex_field("data", &request.data, 4096)?;
    bridge.write(device, &data).await?;
    Ok(Json(json!({"device": device, "written": data.len()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttestRequest {
    nonce: String,
    #[serde(default)]
    state: String,
}

async fn attest(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let bridge = bridge(&state)?;
    let device = device(&id)?;
    let request: AttestRequest = parse_body(&body)?;
    let nonce = hex_field("nonce", &request.nonce, 64)?;
    let attestation = bridge
        .attest(device, request.state.as_bytes(), &nonce)
        .await?;
    let ak = bridge.attestation_key().await?;
    Ok(Json(json!({
        "attestation": attestation,
        "ak_pem": ak.pem(),
    })))
}
