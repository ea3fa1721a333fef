//! [`FieldError`]: a value that failed validation, named by the path of its field.
//!
//! Every layer validates its own configuration section and input types; they all report the
//! same way, so a composer can prefix the section (`agents[1].`, `alerts.`) and an operator
//! reads one message shape: `agents[1].circuit_breaker.failure_threshold: must be at least 1`.

use thiserror::Error;

/// A field with a value that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// Path of the field, e.g. `agents[1].url` or `websocket.queue_depth`.
    pub field: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

impl FieldError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error with `prefix` put in front of the field path (`"alerts."` turns
    /// `cpu_percent.warning` into `alerts.cpu_percent.warning`).
    pub fn within(mut self, prefix: &str) -> Self {
        self.field.insert_str(0, prefix);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_compose_into_a_path() {
        let e = FieldError::new("failure_threshold", "must be at least 1")
            .within("circuit_breaker.")
            .within("agents[1].");
        assert_eq!(e.field, "agents[1].circuit_breaker.failure_threshold");
        assert_eq!(
            e.to_string(),
            "agents[1].circuit_breaker.failure_threshold: must be at least 1"
        );
    }
}
