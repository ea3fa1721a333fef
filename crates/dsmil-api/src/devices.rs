//! `/api/devices/*`: the DSMIL devices (0x8000–0x806B) through the TPM bridge. Writes to the
//! quarantined devices are refused (403 `policy_violation`) and audited; when the audit entry
//! cannot be written the refusal says so (403 `policy_violation_unaudited`).

use dsmil_core::DeviceId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::tpm::Quote;

/// `GET /api/devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Devices {
    /// Every device, in order.
    pub devices: Vec<DeviceStatus>,
}

/// What the bridge records about one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceStatus {
    /// The device.
    pub device: DeviceId,
    /// Whether it is quarantined (never written).
    pub quarantined: bool,
    /// Label of its TPM key, once provisioned.
    pub key_label: Option<String>,
    /// Whether a configuration is sealed for it.
    pub config_sealed: bool,
    /// Whether its configuration is locked (after an intrusion).
    pub config_locked: bool,
}

/// `POST /api/devices/{id}/write`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteRequest {
    /// The bytes, hex (at most 4096).
    pub data: String,
}

/// A device write that was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Written {
    /// The device.
    pub device: DeviceId,
    /// Bytes written.
    pub written: usize,
}

/// `POST /api/devices/{id}/attest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    /// The verifier's nonce, hex (at most 64 bytes).
    pub nonce: String,
    /// The device state to bind (as reported by its driver).
    #[serde(default)]
    pub state: String,
}

/// A device attestation and the key that verifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttestResponse {
    /// The attestation.
    pub attestation: DeviceAttestation,
    /// The attestation key, PEM.
    pub ak_pem: String,
}

/// A quote whose qualifying data binds the device, its state and the nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceAttestation {
    /// The device.
    pub device: DeviceId,
    /// SHA-256 of the reported state, hex.
    pub state_digest: String,
    /// The nonce, hex.
    pub nonce: String,
    /// The quote.
    pub quote: Quote,
}
