//! One error type over every validation in core, for callers that handle them uniformly.

use thiserror::Error;

/// Any error produced by `dsmil-core`.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Error {
    /// An agent or task name was rejected.
    #[error(transparent)]
    Name(#[from] crate::ids::NameError),
    /// A DSMIL device id or write was rejected.
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
    /// An embedding was rejected.
    #[error(transparent)]
    Embedding(#[from] crate::learning::EmbeddingError),
    /// A performance record was rejected.
    #[error(transparent)]
    Record(#[from] crate::learning::RecordError),
    /// A workflow spec was rejected.
    #[error(transparent)]
    Spec(#[from] crate::workflow::SpecError),
    /// The configuration was rejected.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A TPM value (PCR, digest) was rejected.
    #[error(transparent)]
    TpmValue(#[from] crate::tpm::TpmValueError),
    /// Alert thresholds were rejected.
    #[error(transparent)]
    Threshold(#[from] crate::monitoring::ThresholdError),
    /// A port call failed.
    #[error(transparent)]
    Port(#[from] crate::ports::PortError),
}
