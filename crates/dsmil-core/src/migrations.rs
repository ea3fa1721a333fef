//! SQL migrations compiled into the binary, as a sqlx [`MigrationSource`] (feature
//! `migrations`), for the layers that keep SQL state (the learning store, the workflow journal).
//!
//! Built from `include_str!` steps rather than with the `sqlx::migrate!` macro: the same
//! versioned, checksummed `_sqlx_migrations` bookkeeping through sqlx's public API, without
//! compiling its proc-macro stack.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};

/// One migration: its version, what it does, its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// Version, ascending from 1.
    pub version: i64,
    /// What it does.
    pub description: &'static str,
    /// The SQL, run in one transaction.
    pub sql: &'static str,
}

/// Steps compiled into the binary.
#[derive(Debug, Clone, Copy)]
pub struct Embedded(pub &'static [Step]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|s| {
                    Migration::new(
                        s.version,
                        Cow::Borrowed(s.description),
                        MigrationType::Simple,
                        Cow::Borrowed(s.sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The migrator over `steps`.
pub async fn migrator(steps: &'static [Step]) -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(steps)).await
}
