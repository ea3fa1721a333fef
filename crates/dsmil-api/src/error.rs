//! The error format of every route: `{"error":{"code":"…","message":"…"}}` with a 4xx or 5xx
//! status, plus fields some errors add.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What every failed request answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorBody,
}

/// One error: a machine-readable code, a message for people, and details some codes carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code (`unauthorized`, `not_found`, `invalid_record`, `policy_violation`, …).
    pub code: String,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// `invalid_record`: the record (from 1; the line for NDJSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// `invalid_record`: the field of that record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// TPM errors: the response code's name (`auth_fail`, `nv_locked`, …, or `{"other": n}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_result: Option<dsmil_core::TpmResultCode>,
    /// TPM errors: the raw response code, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_rc: Option<String>,
}

impl ErrorResponse {
    /// An error with `code` and `message` and no details.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorBody {
                code: code.into(),
                message: message.into(),
                record: None,
                field: None,
                tpm_result: None,
                tpm_rc: None,
            },
        }
    }
}
