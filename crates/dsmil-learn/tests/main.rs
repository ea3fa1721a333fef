//! The learning layer's integration tests in one harness: the engine, the stores (SQLite and
//! PostgreSQL + pgvector, the same suite on both) and the outbox.

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

mod common;
mod engine;
mod outbox;
mod stores;
