//! The learning layer's configuration: where performance history is kept.

use dsmil_core::validate::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The learning layer's part of dsmild's configuration file (a top-level key; `--database-url`
/// on dsmild's command line).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LearnConfig {
    /// PostgreSQL (+ pgvector) URL for the learning store, e.g.
    /// `postgres://dsmil@127.0.0.1/dsmil`; absent → an embedded SQLite file in the data dir.
    /// Default: absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "postgres://dsmil@127.0.0.1/dsmil")]
    pub database_url: Option<String>,
}

impl LearnConfig {
    /// Checks the URL's scheme; the error names `database_url`.
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(FieldError::new(
                "database_url",
                "must be a postgres:// or postgresql:// URL (leave it unset for embedded SQLite)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgres_urls_are_accepted() {
        LearnConfig::default().validate().unwrap();
        let ok = LearnConfig {
            database_url: Some("postgresql://u@127.0.0.1/db".into()),
        };
        ok.validate().unwrap();
        let bad = LearnConfig {
            database_url: Some("mysql://x".into()),
        };
        assert_eq!(bad.validate().unwrap_err().field, "database_url");
    }
}
