//! The crate's error type.

use dsmil_core::ports::PortError;
use thiserror::Error;

/// What went wrong in the learning layer.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LearnError {
    /// A record in a batch was rejected; nothing of the batch was stored.
    #[error("record {index}: {field}: {reason}")]
    InvalidRecord {
        /// Position of the record in its batch, from 1 (the line number of NDJSON input).
        index: usize,
        /// The offending field.
        field: String,
        /// What was wrong.
        reason: String,
    },
    /// A request (not a record) was invalid; the message says what.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No agent is left to choose from (all excluded, or none known).
    #[error("no eligible agent: {0}")]
    NoEligibleAgent(String),
    /// The store cannot be reached right now (connection refused or lost, pool timed out).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with an error.
    #[error("store error: {0}")]
    Storage(String),
    /// Stored data could not be read back (corrupt row, wrong embedding size).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The configured signer failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// The engine was shut down.
    #[error("the learning engine is shut down")]
    Closed,
}

impl LearnError {
    /// Whether retrying later may succeed (the store was unreachable).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// Classifies a database error: connection-level failures become [`LearnError::Unavailable`]
    /// (the outbox keeps records through them), everything else [`LearnError::Storage`].
    pub fn from_sqlx(err: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &err {
            E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::Tls(_) | E::WorkerCrashed => {
                Self::Unavailable(err.to_string())
            }
            E::Protocol(_) => Self::Unavailable(err.to_string()),
            E::Database(db) => {
                // SQLSTATE class 08 (connection exception), 57P01–57P03 (shutdown, cannot
                // connect now), 53 (insufficient resources).
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") {
                    Self::Unavailable(err.to_string())
                } else {
                    Self::Storage(err.to_string())
                }
            }
            _ => Self::Storage(err.to_string()),
        }
    }
}

impl From<LearnError> for PortError {
    fn from(err: LearnError) -> Self {
        match err {
            LearnError::InvalidRecord { .. }
            | LearnError::InvalidRequest(_)
            | LearnError::NoEligibleAgent(_) => PortError::InvalidInput(err.to_string()),
            LearnError::Unavailable(_) | LearnError::Closed => {
                PortError::Unavailable(err.to_string())
            }
            _ => PortError::Backend(err.to_string()),
        }
    }
}
