//! Typed errors of TPM operations: which operation failed, the TPM response code it keeps, and
//! what to do about it.
//!
//! Errors keep the error they were caused by (an I/O, JSON, crypto or `tss-esapi` error) as
//! their [`std::error::Error::source`]; a message names the step that failed and its input,
//! and the cause is not repeated in it, so a chain printed with `{:#}` (as the binaries print
//! errors) names each cause once. [`TpmError::Failed`] is the one exception: its message ends
//! with its [`BackendError`] and that error's causes, because API clients and logs show a
//! failed operation by its message alone.

use dsmil_core::ids::OperationId;
use dsmil_core::tpm::{TpmOperation, TpmResultCode};
use thiserror::Error;

/// An underlying error kept as the source of one of this crate's errors: an I/O, JSON,
/// aws-lc-rs or `tss-esapi` error, a join error of a blocking task, or a driver's error.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a backend reports when a command fails.
#[derive(Debug, Error)]
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
        /// The error the code was read from (a `tss-esapi` error, an aws-lc-rs failure of
        /// the software TPM), when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// The caller's input cannot be sent to a TPM (too long, wrong key type, …).
    #[error(transparent)]
    InvalidInput(InputError),
    /// A key label that no stored key has.
    #[error("no key named {0:?}; create it first")]
    UnknownKey(String),
    /// A key label already taken.
    #[error("a key named {0:?} already exists")]
    KeyExists(String),
    /// The transport to the TPM failed (connection lost, device gone).
    #[error("TPM transport failed: {detail}")]
    Transport {
        /// What was being done.
        detail: String,
        /// The `tss-esapi` (or reconnection) error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// Reading or writing the backend's files failed.
    #[error("{detail}")]
    Storage {
        /// What failed, naming the file.
        detail: String,
        /// The I/O, JSON or crypto error, when there is one.
        #[source]
        source: Option<Cause>,
    },
}

/// What is wrong with the caller's input ([`BackendError::InvalidInput`]), and the error that
/// found it when a library did (`tss-esapi` refusing a parameter, a value out of range).
#[derive(Debug, Error)]
#[error("{message}")]
pub struct InputError {
    message: String,
    #[source]
    source: Option<Cause>,
}

impl InputError {
    /// What is wrong, naming the input and what was expected.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl BackendError {
    /// The caller's input is invalid: `message` names it and says what was expected.
    pub fn invalid(message: impl Into<String>) -> Self {
        BackendError::InvalidInput(InputError {
            message: message.into(),
            source: None,
        })
    }

    /// The caller's input is invalid, as `source` (a library's check) found.
    pub fn invalid_caused(message: impl Into<String>, source: impl Into<Cause>) -> Self {
        BackendError::InvalidInput(InputError {
            message: message.into(),
            source: Some(source.into()),
        })
    }

    /// A TPM response-code error.
    pub fn tpm(rc: TpmResultCode, detail: impl Into<String>) -> Self {
        BackendError::Tpm {
            rc,
            raw: rc.raw(),
            detail: detail.into(),
            source: None,
        }
    }

    /// A TPM response-code error read from `source`.
    pub fn tpm_caused(
        rc: TpmResultCode,
        detail: impl Into<String>,
        source: impl Into<Cause>,
    ) -> Self {
        BackendError::Tpm {
            rc,
            raw: rc.raw(),
            detail: detail.into(),
            source: Some(source.into()),
        }
    }

    /// A storage failure: `detail` names what was being done to which file, `source` says why.
    pub fn storage(detail: impl Into<String>, source: impl Into<Cause>) -> Self {
        BackendError::Storage {
            detail: detail.into(),
            source: Some(source.into()),
        }
    }

    /// A transport failure: `detail` names what was being done, `source` says why.
    pub fn transport(detail: impl Into<String>, source: impl Into<Cause>) -> Self {
        BackendError::Transport {
            detail: detail.into(),
            source: Some(source.into()),
        }
    }

    /// The result code this error counts as in the performance monitor.
    pub fn result_code(&self) -> TpmResultCode {
        match self {
            BackendError::Tpm { rc, .. } => *rc,
            BackendError::InvalidInput(_) => TpmResultCode::Value,
            BackendError::UnknownKey(_) => TpmResultCode::Handle,
            BackendError::KeyExists(_) => TpmResultCode::NvDefined,
            BackendError::Transport { .. } | BackendError::Storage { .. } => TpmResultCode::Failure,
        }
    }
}

/// A failed TPM operation, as callers of [`crate::Tpm`] see it.
#[derive(Debug, Error)]
pub enum TpmError {
    /// The operation ran and failed. The message ends with the backend's error and its
    /// causes (see the module docs).
    #[error("TPM {operation:?} ({operation_id}) failed: {}", chain(.source))]
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
    /// The TPM thread has stopped (the handle was closed) or this build lacks the backend.
    #[error("the TPM is not available: {0}")]
    Unavailable(String),
    /// The TPM could not be started: its thread, its backend or its key store failed.
    #[error("the TPM is not available: {step}")]
    Start {
        /// What failed ("the backend could not be opened").
        step: &'static str,
        /// The backend's or the operating system's error.
        #[source]
        source: Cause,
    },
}

impl TpmError {
    /// The TPM response code behind the error, when there is one.
    pub fn result_code(&self) -> TpmResultCode {
        match self {
            TpmError::Failed { source, .. } => source.result_code(),
            TpmError::PolicyViolation(_) => TpmResultCode::PolicyFail,
            TpmError::Timeout { .. } => TpmResultCode::Timeout,
            TpmError::QueueFull(_) => TpmResultCode::Retry,
            TpmError::Unavailable(_) | TpmError::Start { .. } => TpmResultCode::Failure,
        }
    }
}

pub(crate) use dsmil_core::report::chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_operation_names_every_cause_once() {
        let io = std::io::Error::other("disk on fire");
        let err = TpmError::Failed {
            operation: TpmOperation::CreateKey,
            operation_id: OperationId::next(),
            source: BackendError::storage("cannot write /keys/k.json", io),
        };
        let text = err.to_string();
        assert!(
            text.ends_with("failed: cannot write /keys/k.json: disk on fire"),
            "{text}"
        );
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("cannot write /keys/k.json"));
        assert_eq!(err.result_code(), TpmResultCode::Failure);
    }

    #[test]
    fn chains_skip_causes_their_wrapper_repeats() {
        #[derive(Debug, Error)]
        #[error("outer: {0}")]
        struct Repeats(#[source] std::io::Error);
        let err = Repeats(std::io::Error::other("inner"));
        assert_eq!(chain(&err), "outer: inner");
        let err = BackendError::Storage {
            detail: "no cause".into(),
            source: None,
        };
        assert_eq!(chain(&err), "no cause");
    }
}
