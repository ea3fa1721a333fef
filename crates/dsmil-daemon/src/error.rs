//! [`DaemonError`]: why the daemon could not start or stopped, with the failed step named and
//! the layer's own error kept as the source.

use thiserror::Error;

use crate::config::ConfigError;

/// Any error, kept as the source of a failed step.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why composing or serving failed.
#[derive(Debug, Error)]
pub enum DaemonError {
    /// The configuration is invalid (nothing was started).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A step of start-up, serving or shutdown failed; the message names the step
    /// ("cannot open the TPM (soft)") and the source says why.
    #[error("{step}")]
    Step {
        /// What was being done.
        step: String,
        /// The layer's error.
        #[source]
        source: BoxError,
    },
    /// A condition the daemon refuses to start under (the message says which and what to do).
    #[error("{0}")]
    Refused(String),
}

/// Results of the composer.
pub type Result<T, E = DaemonError> = std::result::Result<T, E>;

/// Names the step a layer's error happened in, keeping the error as the source.
pub trait Context<T> {
    /// `step` describes what failed ("cannot open the workflow journal").
    fn context(self, step: &str) -> Result<T>;
    /// Like [`Context::context`], for a description that is built only on failure.
    fn with_context(self, step: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<BoxError>> Context<T> for std::result::Result<T, E> {
    fn context(self, step: &str) -> Result<T> {
        self.map_err(|e| DaemonError::Step {
            step: step.to_owned(),
            source: e.into(),
        })
    }

    fn with_context(self, step: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| DaemonError::Step {
            step: step(),
            source: e.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_failed_step_keeps_its_source() {
        let io: std::result::Result<(), _> = Err(std::io::Error::other("disk on fire"));
        let err = io.context("cannot create the data dir").unwrap_err();
        assert_eq!(err.to_string(), "cannot create the data dir");
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("disk on fire")
        );
    }
}
