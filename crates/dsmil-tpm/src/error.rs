//! Typed errors of TPM operations: which operation failed, the TPM response code it keeps, and
//! what to do about it.

use dsmil_core::ids::OperationId;
use dsmil_core::tpm::{TpmOperation, TpmResultCode};
use thiserror::Error;

/// What a backend reports when a command fails.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BackendError {
    /// The TPM answered with a response code other than success.
    #[error("TPM returned {rc:?} (0x{raw:03x}): {detail}")]
    Tpm {
        /// The classified code.
        rc: TpmResultCode,
        /// The raw code as the TPM sent it.
        raw: u32,
        /// Context (which command, which object).
        detail: String,
    },
    /// The caller's input cannot be sent to a TPM (too long, wrong key type, …).
    #[error("{0}")]
    InvalidInput(String),
    /// A key label that no stored key has.
    #[error("no key named {0:?}; create it first")]
    UnknownKey(String),
    /// A key label already taken.
    #[error("a key named {0:?} already exists")]
    KeyExists(String),
    /// The transport to the TPM failed (connection lost, device gone).
    #[error("TPM transport failed: {0}")]
    Transport(String),
    /// Reading or writing the backend's files failed.
    #[error("{0}")]
    Storage(String),
}

impl BackendError {
    /// A TPM response-code error.
    pub fn tpm(rc: TpmResultCode, detail: impl Into<String>) -> Self {
        BackendError::Tpm {
            rc,
            raw: rc.raw(),
            detail: detail.into(),
        }
    }

    /// The result code this error counts as in the performance monitor.
    pub fn result_code(&self) -> TpmResultCode {
        match self {
            BackendError::Tpm { rc, .. } => *rc,
            BackendError::InvalidInput(_) => TpmResultCode::Value,
            BackendError::UnknownKey(_) => TpmResultCode::Handle,
            BackendError::KeyExists(_) => TpmResultCode::NvDefined,
            BackendError::Transport(_) | BackendError::Storage(_) => TpmResultCode::Failure,
        }
    }
}

/// A failed TPM operation, as callers of [`crate::Tpm`] see it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TpmError {
    /// The operation ran and failed.
    #[error("TPM {operation:?} ({operation_id}) failed: {source}")]
    Failed {
        /// Which operation.
        operation: TpmOperation,
        /// Its id (also in the logs and the perf monitor).
        operation_id: OperationId,
        /// Why.
        #[source]
        source: BackendError,
    },
    /// The DSMIL policy refused the operation before it reached the TPM (quarantined device).
    #[error("policy violation: {0}")]
    PolicyViolation(String),
    /// The TPM did not answer within the configured timeout.
    #[error("TPM {operation:?} ({operation_id}) did not finish within {timeout_ms} ms")]
    Timeout {
        /// Which operation.
        operation: TpmOperation,
        /// Its id.
        operation_id: OperationId,
        /// The timeout.
        timeout_ms: u64,
    },
    /// Too many operations are waiting for the TPM.
    #[error("the TPM queue is full ({0} operations waiting); retry later")]
    QueueFull(usize),
    /// The TPM thread has stopped (the backend could not start or the handle was closed).
    #[error("the TPM is not available: {0}")]
    Unavailable(String),
}

impl TpmError {
    /// The TPM response code behind the error, when there is one.
    pub fn result_code(&self) -> TpmResultCode {
        match self {
            TpmError::Failed { source, .. } => source.result_code(),
            TpmError::PolicyViolation(_) => TpmResultCode::PolicyFail,
            TpmError::Timeout { .. } => TpmResultCode::Timeout,
            TpmError::QueueFull(_) => TpmResultCode::Retry,
            TpmError::Unavailable(_) => TpmResultCode::Failure,
        }
    }
}
