//! Schema migrations of the stores, embedded in the binary (see `dsmil_core::migrations`).

use dsmil_core::migrations::Step;

/// Migrations of the embedded SQLite store.
pub const SQLITE: &[Step] = &[Step {
    version: 1,
    description: "agent performance metrics",
    sql: include_str!("../../migrations/sqlite/0001_agent_performance_metrics.sql"),
}];

/// Migrations of the PostgreSQL store.
pub const POSTGRES: &[Step] = &[Step {
    version: 1,
    description: "agent performance metrics",
    sql: include_str!("../../migrations/postgres/0001_agent_performance_metrics.sql"),
}];
