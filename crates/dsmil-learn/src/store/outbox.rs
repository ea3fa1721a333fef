//! Never lose a record: a durable local outbox in front of a remote store.
//!
//! [`ResilientStore`] writes to its primary (PostgreSQL) while it is reachable. When a write
//! fails because the primary is unreachable, the records go to a SQLite outbox file instead
//! (committed with `synchronous = FULL` before `insert` returns), and every later write queues
//! behind them so order is kept. A background task replays the outbox in order, in batches,
//! once the primary answers again; records carry unique ids and the primary skips ids it already
//! has, so a batch whose commit was uncertain is stored exactly once.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dsmil_core::learning::Embedding;
use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Row, Sqlite};
use tokio::sync::{Mutex, Notify};
use uuid::Uuid;

use super::{AgentStats, HistoryFilter, PerformanceStore, SearchMode, SimilarTask};
use crate::error::LearnError;
use crate::record::{StoredRecord, TaskSummary};

/// Records replayed per batch.
const REPLAY_BATCH: i64 = 2000;
/// Records per outbox INSERT statement.
const APPEND_CHUNK: usize = 256;

/// The outbox file: records in arrival order.
#[derive(Debug, Clone)]
pub struct Outbox {
    pool: SqlitePool,
}

impl Outbox {
    /// Opens (creating) the outbox at `path`.
    pub async fn open(path: &Path) -> Result<Self, LearnError> {
        let pool = super::open_sqlite(path, 2).await?;
        for ddl in [
            "CREATE TABLE IF NOT EXISTS outbox (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 record TEXT NOT NULL
             )",
            "CREATE TABLE IF NOT EXISTS outbox_dead (
                 seq INTEGER PRIMARY KEY,
                 record TEXT NOT NULL,
                 error TEXT NOT NULL
             )",
        ] {
            sqlx::query(ddl)
                .execute(&pool)
                .await
                .map_err(LearnError::from_sqlx)?;
        }
        Ok(Self { pool })
    }

    /// Appends `records` in one transaction; durable when it returns.
    pub async fn append(&self, records: &[StoredRecord]) -> Result<(), LearnError> {
        let mut tx = self.pool.begin().await.map_err(LearnError::from_sqlx)?;
        for chunk in records.chunks(APPEND_CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO outbox (record) ");
            let texts = chunk
                .iter()
                .map(serde_json::to_string)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| LearnError::storage("serialising a record", e))?;
            q.push_values(texts, |mut row, text| {
                row.push_bind(text);
            });
            q.build()
                .execute(&mut *tx)
                .await
                .map_err(LearnError::from_sqlx)?;
        }
        tx.commit().await.map_err(LearnError::from_sqlx)
    }

    /// Number of queued records.
    pub async fn len(&self) -> Result<u64, LearnError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(&self.pool)
            .await
            .map_err(LearnError::from_sqlx)?;
        Ok(n.max(0) as u64)
    }

    /// Whether nothing is queued.
    pub async fn is_empty(&self) -> Result<bool, LearnError> {
        Ok(self.len().await? == 0)
    }

    /// The oldest `n` queued records with their sequence numbers.
    async fn peek(&self, n: i64) -> Result<Vec<(i64, StoredRecord)>, LearnError> {
        let rows = sqlx::query("SELECT seq, record FROM outbox ORDER BY seq LIMIT ?")
            .bind(n)
            .fetch_all(&self.pool)
            .await
            .map_err(LearnError::from_sqlx)?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row
                    .try_get(0)
                    .map_err(|e| LearnError::corrupt("an outbox row", e))?;
                let text: String = row
                    .try_get(1)
                    .map_err(|e| LearnError::corrupt("an outbox row", e))?;
                let record = serde_json::from_str(&text)
                    .map_err(|e| LearnError::corrupt(format!("outbox record {seq}"), e))?;
                Ok((seq, record))
            })
            .collect()
    }

    /// Sets record `seq` aside with the primary's reason for refusing it (kept for an operator;
    /// never replayed).
    async fn bury(&self, seq: i64, record: &StoredRecord, error: &str) -> Result<(), LearnError> {
        sqlx::query("INSERT OR REPLACE INTO outbox_dead (seq, record, error) VALUES (?, ?, ?)")
            .bind(seq)
            .bind(
                serde_json::to_string(record)
                    .map_err(|e| LearnError::storage("serialising a dead letter", e))?,
            )
            .bind(error)
            .execute(&self.pool)
            .await
            .map_err(LearnError::from_sqlx)?;
        Ok(())
    }

    /// Records the primary refused for good, with the reason.
    pub async fn dead_letters(&self) -> Result<Vec<(StoredRecord, String)>, LearnError> {
        let rows = sqlx::query("SELECT record, error FROM outbox_dead ORDER BY seq")
            .fetch_all(&self.pool)
            .await
            .map_err(LearnError::from_sqlx)?;
        rows.iter()
            .map(|row| {
                let text: String = row
                    .try_get(0)
                    .map_err(|e| LearnError::corrupt("an outbox row", e))?;
                let error: String = row
                    .try_get(1)
                    .map_err(|e| LearnError::corrupt("an outbox row", e))?;
                let record = serde_json::from_str(&text)
                    .map_err(|e| LearnError::corrupt("an outbox row", e))?;
                Ok((record, error))
            })
            .collect()
    }

    /// Forgets every record up to and including `seq`.
    async fn remove_through(&self, seq: i64) -> Result<(), LearnError> {
        sqlx::query("DELETE FROM outbox WHERE seq <= ?")
            .bind(seq)
            .execute(&self.pool)
            .await
            .map_err(LearnError::from_sqlx)?;
        Ok(())
    }
}

struct Inner {
    primary: Arc<dyn PerformanceStore>,
    outbox: Outbox,
    /// Held by writers and by the replayer, so records reach the primary in arrival order.
    gate: Mutex<()>,
    pending: AtomicU64,
    wake: Notify,
    replayed: AtomicU64,
}

/// A store that keeps every accepted record through outages of its primary.
pub struct ResilientStore {
    inner: Arc<Inner>,
    replayer: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ResilientStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientStore")
            .field("primary", &self.inner.primary.backend())
            .field("pending", &self.inner.pending.load(Ordering::Relaxed))
            .finish()
    }
}

impl Drop for ResilientStore {
    fn drop(&mut self) {
        self.replayer.abort();
    }
}

impl ResilientStore {
    /// Puts the outbox at `outbox_path` in front of `primary` and starts the replayer (on the
    /// current tokio runtime). Records left in the outbox by an earlier run are replayed.
    pub async fn open(
        primary: Arc<dyn PerformanceStore>,
        outbox_path: &Path,
    ) -> Result<Self, LearnError> {
        let outbox = Outbox::open(outbox_path).await?;
        let pending = outbox.len().await?;
        let inner = Arc::new(Inner {
            primary,
            outbox,
            gate: Mutex::new(()),
            pending: AtomicU64::new(pending),
            wake: Notify::new(),
            replayed: AtomicU64::new(0),
        });
        let replayer = tokio::spawn(replay_loop(Arc::downgrade(&inner)));
        Ok(Self { inner, replayer })
    }

    /// Records the primary refused for good while replaying (never lost: kept aside).
    pub async fn dead_letters(&self) -> Result<Vec<(StoredRecord, String)>, LearnError> {
        self.inner.outbox.dead_letters().await
    }

    /// Records replayed from the outbox since this store was opened.
    pub fn replayed(&self) -> u64 {
        self.inner.replayed.load(Ordering::Relaxed)
    }

    /// Waits until the outbox is empty, or `timeout` passes (then returns how many are left).
    pub async fn drain(&self, timeout: Duration) -> Result<(), LearnError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = self.inner.pending.load(Ordering::Acquire);
            if left == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LearnError::Unavailable {
                    what: format!("{left} records still wait in the outbox"),
                    source: None,
                });
            }
            self.inner.wake.notify_one();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn replay_loop(inner: Weak<Inner>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(this) = inner.upgrade() else {
            return;
        };
        if this.pending.load(Ordering::Acquire) == 0 {
            // Re-check periodically; the store aborts this task when it is dropped.
            let _ = tokio::time::timeout(Duration::from_secs(1), this.wake.notified()).await;
            // Records a cancelled caller committed without counting: pick them up.
            if let Ok(left) = this.outbox.len().await
                && left > 0
            {
                let _ = this
                    .pending
                    .compare_exchange(0, left, Ordering::AcqRel, Ordering::Acquire);
            }
            continue;
        }
        match replay_batch(&this).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                if !e.is_unavailable() {
                    tracing::error!(error = %e, "replaying the outbox failed; will retry");
                }
                drop(this);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Moves the oldest batch from the outbox to the primary. Writers are not held up while the
/// primary is tried: only the replayer removes records, and writers append behind the batch.
async fn replay_batch(this: &Inner) -> Result<(), LearnError> {
    let batch = this.outbox.peek(REPLAY_BATCH).await?;
    if let Some(&(last, _)) = batch.last() {
        let records: Vec<StoredRecord> = batch.iter().map(|(_, r)| r.clone()).collect();
        match this.primary.insert(&records).await {
            Ok(_) => {}
            Err(e) if e.is_unavailable() => return Err(e),
            Err(e) => {
                // The primary refuses something in the batch for good (a value it cannot
                // store): find it record by record, keep the rest, set the refused aside.
                tracing::error!(error = %e, "the primary refused an outbox batch; checking it record by record");
                for (seq, record) in &batch {
                    match this.primary.insert(std::slice::from_ref(record)).await {
                        Ok(_) => {}
                        Err(e) if e.is_unavailable() => return Err(e),
                        Err(e) => {
                            tracing::error!(seq, record_id = %record.record_id, error = %e,
                                "record refused by the primary; moved to the outbox's dead letters");
                            this.outbox.bury(*seq, record, &e.to_string()).await?;
                        }
                    }
                }
            }
        }
        this.outbox.remove_through(last).await?;
        this.replayed
            .fetch_add(records.len() as u64, Ordering::Relaxed);
    }
    // Under the gate, so no writer appends between the count and the switch back to direct
    // writes.
    let _gate = this.gate.lock().await;
    let left = this.outbox.len().await?;
    this.pending.store(left, Ordering::Release);
    if left == 0 {
        tracing::info!("outbox drained: the primary store has every record");
    }
    Ok(())
}

#[async_trait]
impl PerformanceStore for ResilientStore {
    fn backend(&self) -> &'static str {
        self.inner.primary.backend()
    }

    fn search_engine(&self) -> String {
        self.inner.primary.search_engine()
    }

    async fn insert(&self, records: &[StoredRecord]) -> Result<u64, LearnError> {
        if records.is_empty() {
            return Ok(0);
        }
        let this = &self.inner;
        let _gate = this.gate.lock().await;
        if this.pending.load(Ordering::Acquire) == 0 {
            match this.primary.insert(records).await {
                Ok(n) => return Ok(n),
                Err(e) if e.is_unavailable() => {
                    tracing::warn!(error = %e, records = records.len(),
                        "primary store unreachable; keeping records in the outbox");
                }
                Err(e) => return Err(e),
            }
        }
        // Counted before the append: if this call is dropped after the commit, the replayer
        // still knows there is something to replay (an over-count is corrected by it).
        let n = records.len() as u64;
        this.pending.fetch_add(n, Ordering::AcqRel);
        if let Err(e) = this.outbox.append(records).await {
            this.pending.fetch_sub(n, Ordering::AcqRel);
            return Err(e);
        }
        this.wake.notify_one();
        Ok(n)
    }

    async fn count(&self) -> Result<u64, LearnError> {
        self.inner.primary.count().await
    }

    async fn find_similar(
        &self,
        query: &Embedding,
        threshold: f32,
        limit: usize,
        mode: SearchMode,
    ) -> Result<Vec<SimilarTask>, LearnError> {
        self.inner
            .primary
            .find_similar(query, threshold, limit, mode)
            .await
    }

    async fn history(&self, filter: &HistoryFilter) -> Result<Vec<StoredRecord>, LearnError> {
        self.inner.primary.history(filter).await
    }

    async fn summaries(&self, filter: &HistoryFilter) -> Result<Vec<TaskSummary>, LearnError> {
        self.inner.primary.summaries(filter).await
    }

    async fn get(&self, record_id: Uuid) -> Result<Option<StoredRecord>, LearnError> {
        self.inner.primary.get(record_id).await
    }

    async fn delete(&self, record_ids: &[Uuid]) -> Result<u64, LearnError> {
        self.inner.primary.delete(record_ids).await
    }

    async fn agent_stats(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<AgentStats>, LearnError> {
        self.inner.primary.agent_stats(since).await
    }

    async fn pending(&self) -> Result<u64, LearnError> {
        Ok(self.inner.pending.load(Ordering::Acquire))
    }
}
