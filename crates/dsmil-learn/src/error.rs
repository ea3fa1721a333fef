//! The crate's error type.

use std::sync::Arc;

use dsmil_core::ports::PortError;
use thiserror::Error;

/// The underlying error a learning error keeps (shared, so one failed group commit can tell
/// every waiting caller).
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in the learning layer. Store, data and signing failures keep the error that
/// caused them as their [`source`](std::error::Error::source).
#[derive(Debug, Clone, Error)]
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
    #[error("store unavailable: {what}")]
    Unavailable {
        /// What could not be done.
        what: String,
        /// Why.
        #[source]
        source: Option<Source>,
    },
    /// The store answered with an error.
    #[error("store error: {what}")]
    Storage {
        /// What failed.
        what: String,
        /// The store's error.
        #[source]
        source: Option<Source>,
    },
    /// Stored data could not be read back (corrupt row, wrong embedding size).
    #[error("corrupt stored data: {what}")]
    Corrupt {
        /// Which value.
        what: String,
        /// Why it does not parse.
        #[source]
        source: Option<Source>,
    },
    /// The configured signer failed.
    #[error("signing failed")]
    Signing(#[source] PortError),
    /// The engine was shut down.
    #[error("the learning engine is shut down")]
    Closed,
}

fn share(e: impl std::error::Error + Send + Sync + 'static) -> Option<Source> {
    Some(Arc::new(e))
}

impl LearnError {
    /// A store failure while doing `what`, caused by `source`.
    pub fn storage(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Storage {
            what: what.into(),
            source: share(source),
        }
    }

    /// The store is unavailable for `what`, because of `source`.
    pub fn unavailable(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Unavailable {
            what: what.into(),
            source: share(source),
        }
    }

    /// Stored value `what` does not parse, because of `source`.
    pub fn corrupt(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Corrupt {
            what: what.into(),
            source: share(source),
        }
    }

    /// Stored value `what` is out of range (no underlying error).
    pub fn corrupt_value(what: impl Into<String>) -> Self {
        Self::Corrupt {
            what: what.into(),
            source: None,
        }
    }

    /// Whether retrying later may succeed (the store was unreachable).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// Classifies a database error: connection-level failures become [`LearnError::Unavailable`]
    /// (the outbox keeps records through them), everything else [`LearnError::Storage`].
    pub fn from_sqlx(err: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &err {
            E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::Tls(_) | E::WorkerCrashed => {
                Self::unavailable("database connection", err)
            }
            E::Protocol(_) => Self::unavailable("database connection", err),
            E::Database(db) => {
                // SQLSTATE class 08 (connection exception), 57P01–57P03 (shutdown, cannot
                // connect now), 53 (insufficient resources).
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") {
                    Self::unavailable("database connection", err)
                } else {
                    Self::storage("database request", err)
                }
            }
            _ => Self::storage("database request", err),
        }
    }
}

impl From<LearnError> for PortError {
    fn from(err: LearnError) -> Self {
        match err {
            LearnError::InvalidRecord { .. }
            | LearnError::InvalidRequest(_)
            | LearnError::NoEligibleAgent(_) => PortError::InvalidInput(chain(&err)),
            LearnError::Unavailable { .. } | LearnError::Closed => {
                PortError::Unavailable(chain(&err))
            }
            _ => PortError::Backend(chain(&err)),
        }
    }
}

pub use dsmil_core::report::chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_keep_their_cause() {
        let io = std::io::Error::other("disk on fire");
        let e = LearnError::storage("inserting 3 records", io);
        assert_eq!(e.to_string(), "store error: inserting 3 records");
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("disk on fire"));
        assert_eq!(chain(&e), "store error: inserting 3 records: disk on fire");
        assert!(matches!(PortError::from(e), PortError::Backend(m) if m.contains("disk on fire")));
    }
}
