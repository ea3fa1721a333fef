//! Schema migrations, embedded in the binary.
//!
//! Built at run time from the SQL files under `migrations/` (`include_str!`) rather than with the
//! `sqlx::migrate!` macro: same versioned, checksummed `_sqlx_migrations` bookkeeping, without
//! compiling sqlx's proc-macro stack.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

fn migrator(steps: &[(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = steps
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// Migrations of the embedded SQLite store.
pub fn sqlite() -> Migrator {
    migrator(&[(
        1,
        "agent performance metrics",
        include_str!("../../migrations/sqlite/0001_agent_performance_metrics.sql"),
    )])
}

/// Migrations of the PostgreSQL store.
pub fn postgres() -> Migrator {
    migrator(&[(
        1,
        "agent performance metrics",
        include_str!("../../migrations/postgres/0001_agent_performance_metrics.sql"),
    )])
}
