//! Where performance history lives: one trait, an embedded SQLite backend and a PostgreSQL +
//! pgvector backend, plus the outbox that keeps PostgreSQL writes through outages.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dsmil_core::AgentId;
use dsmil_core::learning::Embedding;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::LearnError;
use crate::record::{StoredRecord, TaskSummary};

mod copy;
mod migrations;
pub mod outbox;
pub mod postgres;
pub mod sqlite;

pub use outbox::ResilientStore;
pub use postgres::{PgStore, PgStoreConfig};
pub use sqlite::SqliteStore;

/// A stored task similar to a query, with its cosine similarity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarTask {
    /// Cosine similarity to the query, −1 to 1.
    pub similarity: f32,
    /// The stored run.
    #[serde(flatten)]
    pub task: TaskSummary,
}

/// Which records a history query returns; newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryFilter {
    /// Only this agent's runs.
    pub agent_id: Option<AgentId>,
    /// Only runs at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many (the newest); `None`: all.
    pub limit: Option<usize>,
}

/// Aggregate figures of one agent's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStats {
    /// The agent.
    pub agent_id: AgentId,
    /// Number of recorded runs.
    pub task_count: u64,
    /// Mean wall time.
    pub avg_execution_time_ms: f64,
    /// Standard deviation of the wall time (population).
    pub execution_time_std_dev_ms: f64,
    /// Mean success rate.
    pub avg_success_rate: f64,
    /// Time of the latest run.
    pub last_seen: DateTime<Utc>,
}

/// Exact search (scan every row) or the backend's approximate index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Whatever the backend is configured for (its index, if it has one).
    #[default]
    Default,
    /// Every row is compared; the answer is the true nearest rows.
    Exact,
}

/// Storage of performance records. All methods are safe to call concurrently.
#[async_trait]
pub trait PerformanceStore: Send + Sync {
    /// Backend name for status pages: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// How similarity search runs (e.g. `flat/scalar`, `pgvector-hnsw(ef_search=100)`).
    fn search_engine(&self) -> String;

    /// Stores `records` atomically: all or none. A record whose `record_id` is already stored
    /// is skipped, so a replay stores nothing twice. Returns how many were accepted (for a
    /// store that queues, accepted means durable in the queue).
    async fn insert(&self, records: &[StoredRecord]) -> Result<u64, LearnError>;

    /// Number of stored records.
    async fn count(&self) -> Result<u64, LearnError>;

    /// The `limit` stored tasks most similar to `query` by cosine, best first, keeping those
    /// with similarity at least `threshold`.
    async fn find_similar(
        &self,
        query: &Embedding,
        threshold: f32,
        limit: usize,
        mode: SearchMode,
    ) -> Result<Vec<SimilarTask>, LearnError>;

    /// Full records matching `filter`, newest first.
    async fn history(&self, filter: &HistoryFilter) -> Result<Vec<StoredRecord>, LearnError>;

    /// Like [`PerformanceStore::history`], but only what analysis needs: no embeddings, context
    /// or signatures are read.
    async fn summaries(&self, filter: &HistoryFilter) -> Result<Vec<TaskSummary>, LearnError>;

    /// One record by id.
    async fn get(&self, record_id: Uuid) -> Result<Option<StoredRecord>, LearnError>;

    /// Deletes records by id; returns how many existed.
    async fn delete(&self, record_ids: &[Uuid]) -> Result<u64, LearnError>;

    /// Per-agent aggregates over the runs at or after `since` (all runs when `None`), by agent
    /// id.
    async fn agent_stats(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<AgentStats>, LearnError>;

    /// Records waiting to reach the store (an outbox's backlog); 0 for direct stores.
    async fn pending(&self) -> Result<u64, LearnError> {
        Ok(0)
    }
}

/// Opens (creating) a SQLite file for durable writes: WAL, `synchronous = FULL`, a 10 s busy
/// timeout, 64 MiB of page cache per connection.
pub(crate) async fn open_sqlite(
    path: &std::path::Path,
    max_connections: u32,
) -> Result<sqlx::SqlitePool, LearnError> {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite:")
        .map_err(LearnError::from_sqlx)?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
        .busy_timeout(std::time::Duration::from_secs(10))
        .pragma("cache_size", "-65536")
        .pragma("temp_store", "memory");
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await
        .map_err(|e| LearnError::unavailable(format!("opening {}", path.display()), e))
}

/// Population standard deviation from a count, a sum and a sum of squares (never NaN).
pub(crate) fn std_dev(n: f64, sum: f64, sum_sq: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    let mean = sum / n;
    (sum_sq / n - mean * mean).max(0.0).sqrt()
}

/// Checks a search request.
pub(crate) fn check_search(threshold: f32, limit: usize) -> Result<(), LearnError> {
    if !threshold.is_finite() {
        return Err(LearnError::InvalidRequest(
            "similarity threshold must be a finite number".into(),
        ));
    }
    if limit > MAX_SEARCH_LIMIT {
        return Err(LearnError::InvalidRequest(format!(
            "limit {limit} is above the maximum {MAX_SEARCH_LIMIT}"
        )));
    }
    Ok(())
}

/// Largest `limit` a similarity search accepts.
pub const MAX_SEARCH_LIMIT: usize = 10_000;
