//! `/api/tpm/*`, `/api/devices/*` and `/api/audit/proof/*`: what the TPM is, quotes for remote
//! attestation, the DSMIL devices through the bridge (quarantined devices refused with 403),
//! and audit inclusion proofs.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dsmil_api::{audit as au, devices as d, tpm as t};
use dsmil_core::DeviceId;
use dsmil_tpm::bridge::BridgeError;
use dsmil_tpm::der::base64;
use dsmil_tpm::{BackendError, HashAlgorithm, PcrSelection, TpmError};

use super::{ApiError, AppState, parse_json, wire};

/// Label of the attestation key used for quotes (shared with the bridge).
const AK_LABEL: &str = "dsmil-ak";
/// Largest body these routes accept.
const MAX_BODY: usize = 64 * 1024;

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
        ApiError::new(status, code, dsmil_core::report::chain(&err)).with_tpm_result(rc)
    }
}

impl From<BridgeError> for ApiError {
    fn from(err: BridgeError) -> Self {
        match err {
            BridgeError::Tpm(e) => e.into(),
            BridgeError::PolicyViolation(m) => {
                ApiError::new(StatusCode::FORBIDDEN, "policy_violation", m)
            }
            // Still a refusal (nothing was written), but one the audit log does not hold.
            unrecorded @ BridgeError::PolicyViolationUnrecorded { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "policy_violation_unaudited",
                dsmil_core::report::chain(&unrecorded),
            ),
            BridgeError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "bridge_error",
                dsmil_core::report::chain(&other),
            ),
        }
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is {} bytes; at most {MAX_BODY}", body.len()),
        ));
    }
    parse_json("invalid_json", body)
}

fn hex_field(field: &str, text: &str, max: usize) -> Result<Vec<u8>, ApiError> {
    let bytes = dsmil_core::hex::decode(text).map_err(|_| {
        ApiError::bad_request("invalid_hex", format!("{field} must be hexadecimal"))
    })?;
    if bytes.len() > max {
        return Err(ApiError::bad_request(
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
        ApiError::bad_request(
            "invalid_device",
            format!("{id:?} is not a DSMIL device id (0x8000-0x806B)"),
        )
    })
}

pub async fn info(State(state): State<Arc<AppState>>) -> Result<Json<t::TpmInfo>, ApiError> {
    let tpm = &state.tpm;
    let caps = tpm.query_capabilities().await?.value;
    let keys = tpm
        .keys()
        .await?
        .value
        .into_iter()
        .map(|k| t::TpmKey {
            label: k.label,
            template: wire::name(&k.template),
            public_pem: k.public.pem(),
        })
        .collect();
    let log = &state.audit;
    let anchor = dsmil_tpm::audit::anchor::read_anchor(tpm).await;
    Ok(Json(t::TpmInfo {
        backend: caps.backend,
        hardware_rooted: caps.hardware_rooted,
        manufacturer: caps.manufacturer,
        vendor: caps.vendor,
        firmware_version: caps.firmware_version,
        algorithms: caps.algorithms.iter().map(wire::name).collect(),
        pcr_banks: caps.pcr_banks.iter().map(wire::name).collect(),
        max_nv_index_size: caps.max_nv_index_size,
        max_nv_buffer: caps.max_nv_buffer,
        nv_space_bytes: caps.nv_space_bytes,
        location: caps.location,
        keys,
        performance: wire::tpm_performance(tpm.perf_snapshot()),
        audit: t::AuditStatus {
            entries: log.len(),
            signed: log.signed(),
            tree_head: log.tree_head().map(|h| h.to_string()),
        },
        audit_anchor: anchor.map(|h| h.to_string()),
    }))
}

/// `GET /api/audit/proof/{seq}`: the inclusion proof of entry `seq` in the latest signed
/// tree head, with the entry as written and its leaf hash (`dsmilctl audit prove` checks it).
pub async fn audit_proof(
    State(state): State<Arc<AppState>>,
    Path(seq): Path<String>,
) -> Result<Json<au::InclusionProof>, ApiError> {
    let seq: u64 = seq.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_sequence",
            format!("{seq:?} is not an entry number (0, 1, 2, …)"),
        )
    })?;
    let log = &state.audit;
    match log.prove(seq).await {
        Ok(Some(proof)) => Ok(Json(wire::inclusion_proof(proof))),
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
            dsmil_core::report::chain(&e),
        )),
    }
}

pub async fn quote(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<t::QuoteResponse>, ApiError> {
    let tpm = &state.tpm;
    let request: t::QuoteRequest = parse_body(&body)?;
    let selection = PcrSelection::new(HashAlgorithm::Sha256, request.pcrs)
        .map_err(|e| ApiError::bad_request("invalid_pcrs", e.to_string()))?;
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
    Ok(Json(t::QuoteResponse {
        backend: tpm.backend_name().to_owned(),
        hardware_rooted: tpm.hardware_rooted(),
        nonce: request.nonce.to_ascii_lowercase(),
        pcrs: t::QuotedPcrs {
            bank: "sha256".into(),
            values: quote
                .pcr_values
                .iter()
                .map(|(i, d)| (i.to_string(), dsmil_core::hex::encode(d.as_bytes())))
                .collect(),
        },
        message: base64(&quote.attest),
        signature: base64(&quote.signature),
        pcrs_file: base64(&dsmil_tpm::wire::tpm2_tools_pcrs(
            quote.bank,
            &quote.pcr_values,
        )),
        ak_pem: ak.public.pem().unwrap_or_default(),
        quote: wire::quote(&quote),
    }))
}

pub async fn devices(State(state): State<Arc<AppState>>) -> Json<d::Devices> {
    let devices = DeviceId::all()
        .map(|id| wire::device_status(state.bridge.device(id), id))
        .collect();
    Json(d::Devices { devices })
}

pub async fn write(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<d::Written>, ApiError> {
    let device = device(&id)?;
    let request: d::WriteRequest = parse_body(&body)?;
    let data = hex_field("data", &request.data, 4096)?;
    state.bridge.write(device, &data).await?;
    Ok(Json(d::Written {
        device,
        written: data.len(),
    }))
}

pub async fn attest(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<d::AttestResponse>, ApiError> {
    let device = device(&id)?;
    let request: d::AttestRequest = parse_body(&body)?;
    let nonce = hex_field("nonce", &request.nonce, 64)?;
    let attestation = state
        .bridge
        .attest(device, request.state.as_bytes(), &nonce)
        .await?;
    let ak = state.bridge.attestation_key().await?;
    Ok(Json(d::AttestResponse {
        attestation: wire::device_attestation(&attestation),
        ak_pem: ak.pem().unwrap_or_default(),
    }))
}
