//! The embedded store: a SQLite file, with every embedding also held in a [`VectorIndex`] in
//! memory so similarity search never touches the disk.
//!
//! The index is loaded when the store opens and updated after each committed insert or delete.
//! Writes are durable when they return (WAL, `synchronous = FULL`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dsmil_core::AgentId;
use dsmil_core::learning::{EMBEDDING_DIM, Embedding};
use dsmil_core::ports::{Similarity, VectorIndex};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::{
    AgentStats, HistoryFilter, PerformanceStore, SearchMode, SimilarTask, check_search, std_dev,
};
use crate::error::LearnError;
use crate::record::{StoredRecord, TaskSummary};

/// Records per INSERT statement (12 bound values each, well under SQLite's variable limit).
const ROWS_PER_STATEMENT: usize = 256;

/// The columns [`decode_summary`] reads.
const SUMMARY_COLUMNS: &str = "record_id, agent_id, task_type, task_description, \
     execution_time_ms, success_rate, resource_usage, timestamp_us";

/// Rows read per page when the index is loaded.
const LOAD_PAGE: i64 = 8192;

const COLUMNS: &str = "record_id, agent_id, task_type, task_description, execution_time_ms, \
     success_rate, resource_usage, error_details, context_factors, vector_embedding, \
     tpm_signature, timestamp_us";

/// What the in-memory side holds: the index and, per index row, the run it came from.
struct Memory {
    index: Box<dyn VectorIndex>,
    /// Per index row; `None` once deleted.
    rows: Vec<Option<TaskSummary>>,
    by_id: HashMap<Uuid, usize>,
    deleted: usize,
}

impl Memory {
    fn push(&mut self, embeddings: &[f32], summaries: Vec<TaskSummary>) -> Result<(), LearnError> {
        self.index
            .add(embeddings)
            .map_err(|e| LearnError::corrupt("a stored embedding", e))?;
        for s in summaries {
            self.by_id.insert(s.record_id, self.rows.len());
            self.rows.push(Some(s));
        }
        Ok(())
    }
}

/// The embedded SQLite store.
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
    memory: Arc<RwLock<Memory>>,
    /// One writer at a time, so the index sees inserts in commit order.
    write: tokio::sync::Mutex<()>,
    insert_sql: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn read_memory(memory: &RwLock<Memory>) -> std::sync::RwLockReadGuard<'_, Memory> {
    memory.read().unwrap_or_else(|p| p.into_inner())
}

fn write_memory(memory: &RwLock<Memory>) -> std::sync::RwLockWriteGuard<'_, Memory> {
    memory.write().unwrap_or_else(|p| p.into_inner())
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and loads every stored embedding into
    /// `index`, which must be empty, 256-dimensional and ranked by cosine.
    pub async fn open(path: &Path, index: Box<dyn VectorIndex>) -> Result<Self, LearnError> {
        if index.dim() != EMBEDDING_DIM || index.metric() != Similarity::Cosine || !index.is_empty()
        {
            return Err(LearnError::InvalidRequest(format!(
                "the store needs an empty {EMBEDDING_DIM}-d cosine index, got {} ({}-d, {:?}, {} rows)",
                index.name(),
                index.dim(),
                index.metric(),
                index.len()
            )));
        }
        // 64 MiB of page cache per connection keeps the record-id index of 100,000 records in
        // memory during bulk inserts.
        let pool = super::open_sqlite(path, 4).await?;
        dsmil_core::migrations::migrator(super::migrations::SQLITE)
            .await
            .map_err(|e| LearnError::storage(format!("migrating {}", path.display()), e))?
            .run(&pool)
            .await
            .map_err(|e| LearnError::storage(format!("migrating {}", path.display()), e))?;
        let store = Self {
            pool,
            path: path.to_owned(),
            memory: Arc::new(RwLock::new(Memory {
                index,
                rows: Vec::new(),
                by_id: HashMap::new(),
                deleted: 0,
            })),
            write: tokio::sync::Mutex::new(()),
            insert_sql: insert_sql(ROWS_PER_STATEMENT, false),
        };
        store.load().await?;
        Ok(store)
    }

    /// Writes `records` in one transaction; with `skip_stored`, ids already stored are skipped
    /// and the ids actually inserted are returned.
    async fn write_rows(
        &self,
        records: &[StoredRecord],
        skip_stored: bool,
    ) -> Result<std::collections::HashSet<Vec<u8>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut inserted = std::collections::HashSet::new();
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let sql = if chunk.len() == ROWS_PER_STATEMENT && !skip_stored {
                self.insert_sql.clone()
            } else {
                insert_sql(chunk.len(), skip_stored)
            };
            // JSON texts are made first so the query can borrow everything else.
            let json: Vec<(String, String)> = chunk
                .iter()
                .map(|r| (to_json(&r.resource_usage), to_json(&r.context_factors)))
                .collect();
            // Embeddings are stored as little-endian f32: borrowed as they are on such CPUs.
            #[cfg(target_endian = "little")]
            let blobs: Vec<&[u8]> = chunk
                .iter()
                .map(|r| bytemuck::cast_slice(r.embedding.as_slice()))
                .collect();
            #[cfg(not(target_endian = "little"))]
            let owned: Vec<Vec<u8>> = chunk.iter().map(|r| r.embedding.to_le_bytes()).collect();
            #[cfg(not(target_endian = "little"))]
            let blobs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            let mut query = sqlx::query(&sql);
            for ((r, (resources, context)), blob) in chunk.iter().zip(&json).zip(blobs) {
                query = query
                    .bind(r.record_id.as_bytes().as_slice())
                    .bind(r.agent_id.as_str())
                    .bind(r.task_type.as_str())
                    .bind(r.task_description.as_str())
                    .bind(r.execution_time_ms as i64)
                    .bind(r.success_rate)
                    .bind(resources.as_str())
                    .bind(r.error_details.as_deref())
                    .bind(context.as_str())
                    .bind(blob)
                    .bind(r.tpm_signature.as_deref())
                    .bind(micros(r.timestamp));
            }
            if skip_stored {
                for row in query.fetch_all(&mut *tx).await? {
                    inserted.insert(row.try_get::<Vec<u8>, _>(0)?);
                }
            } else {
                query.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// `columns` of the rows matching `filter`, newest first.
    async fn filtered(
        &self,
        columns: &str,
        filter: &HistoryFilter,
    ) -> Result<Vec<SqliteRow>, LearnError> {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {columns} FROM agent_performance_metrics WHERE 1 = 1"
        ));
        if let Some(agent) = &filter.agent_id {
            q.push(" AND agent_id = ")
                .push_bind(agent.as_str().to_owned());
        }
        if let Some(since) = filter.since {
            q.push(" AND timestamp_us >= ").push_bind(micros(since));
        }
        q.push(" ORDER BY timestamp_us DESC, id DESC");
        if let Some(limit) = filter.limit {
            q.push(" LIMIT ")
                .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        q.build()
            .fetch_all(&self.pool)
            .await
            .map_err(LearnError::from_sqlx)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every stored row into the in-memory index, page by page.
    async fn load(&self) -> Result<(), LearnError> {
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT id, {COLUMNS} FROM agent_performance_metrics WHERE id > ? ORDER BY id LIMIT ?"
            ))
            .bind(after)
            .bind(LOAD_PAGE)
            .fetch_all(&self.pool)
            .await
            .map_err(LearnError::from_sqlx)?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            after = last.try_get::<i64, _>(0).map_err(corrupt)?;
            let mut flat = Vec::with_capacity(rows.len() * EMBEDDING_DIM);
            let mut summaries = Vec::with_capacity(rows.len());
            for row in &rows {
                let record = decode(row, 1)?;
                flat.extend_from_slice(record.embedding.as_slice());
                summaries.push(record.summary());
            }
            write_memory(&self.memory).push(&flat, summaries)?;
        }
    }

    /// How many rows of the in-memory index belong to deleted records (they are skipped in
    /// searches and dropped when the store is next opened).
    pub fn deleted_rows(&self) -> usize {
        read_memory(&self.memory).deleted
    }
}

/// The INSERT of `rows` records; `skip_stored` adds conflict handling and returns the ids that
/// were inserted.
fn insert_sql(rows: usize, skip_stored: bool) -> String {
    let one = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let values = vec![one; rows].join(", ");
    let tail = if skip_stored {
        " ON CONFLICT (record_id) DO NOTHING RETURNING record_id"
    } else {
        ""
    };
    format!("INSERT INTO agent_performance_metrics ({COLUMNS}) VALUES {values}{tail}")
}

fn corrupt(e: sqlx::Error) -> LearnError {
    LearnError::corrupt("a stored column", e)
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> Result<DateTime<Utc>, LearnError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| LearnError::corrupt_value(format!("timestamp {us} µs is out of range")))
}

fn json_object<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, LearnError> {
    serde_json::from_str(text).map_err(|e| LearnError::corrupt(what, e))
}

/// Decodes the [`COLUMNS`] of `row`, starting at column `at`.
fn decode(row: &SqliteRow, at: usize) -> Result<StoredRecord, LearnError> {
    let text = |i: usize| row.try_get::<String, _>(at + i).map_err(corrupt);
    let id_bytes: Vec<u8> = row.try_get(at).map_err(corrupt)?;
    let record_id = Uuid::from_slice(&id_bytes).map_err(|e| LearnError::corrupt("record_id", e))?;
    let agent_id = AgentId::new(text(1)?).map_err(|e| LearnError::corrupt("agent_id", e))?;
    let time: i64 = row.try_get(at + 4).map_err(corrupt)?;
    let blob: Vec<u8> = row.try_get(at + 9).map_err(corrupt)?;
    Ok(StoredRecord {
        record_id,
        agent_id,
        task_type: text(2)?,
        task_description: text(3)?,
        execution_time_ms: u64::try_from(time)
            .map_err(|e| LearnError::corrupt(format!("execution_time_ms {time}"), e))?,
        success_rate: row.try_get(at + 5).map_err(corrupt)?,
        resource_usage: json_object(&text(6)?, "resource_usage")?,
        error_details: row.try_get(at + 7).map_err(corrupt)?,
        context_factors: json_object(&text(8)?, "context_factors")?,
        embedding: Embedding::from_le_bytes(&blob)
            .map_err(|e| LearnError::corrupt("vector_embedding", e))?,
        tpm_signature: row.try_get(at + 10).map_err(corrupt)?,
        timestamp: from_micros(row.try_get(at + 11).map_err(corrupt)?)?,
    })
}

/// Decodes the [`SUMMARY_COLUMNS`] of `row`.
fn decode_summary(row: &SqliteRow) -> Result<TaskSummary, LearnError> {
    let id_bytes: Vec<u8> = row.try_get(0).map_err(corrupt)?;
    let time: i64 = row.try_get(4).map_err(corrupt)?;
    let resources: String = row.try_get(6).map_err(corrupt)?;
    Ok(TaskSummary {
        record_id: Uuid::from_slice(&id_bytes).map_err(|e| LearnError::corrupt("record_id", e))?,
        agent_id: AgentId::new(row.try_get::<String, _>(1).map_err(corrupt)?)
            .map_err(|e| LearnError::corrupt("agent_id", e))?,
        task_type: row.try_get(2).map_err(corrupt)?,
        task_description: row.try_get(3).map_err(corrupt)?,
        execution_time_ms: u64::try_from(time)
            .map_err(|e| LearnError::corrupt(format!("execution_time_ms {time}"), e))?,
        success_rate: row.try_get(5).map_err(corrupt)?,
        resource_usage: json_object(&resources, "resource_usage")?,
        timestamp: from_micros(row.try_get(7).map_err(corrupt)?)?,
    })
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}

#[async_trait]
impl PerformanceStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn search_engine(&self) -> String {
        read_memory(&self.memory).index.name()
    }

    async fn insert(&self, records: &[StoredRecord]) -> Result<u64, LearnError> {
        if records.is_empty() {
            return Ok(0);
        }
        let _writer = self.write.lock().await;
        // Fast path: plain INSERTs. A record id that is already stored (a replay) aborts it,
        // and the batch is written again skipping the stored ids.
        let fresh: Vec<&StoredRecord> = match self.write_rows(records, false).await {
            Ok(_) => records.iter().collect(),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                let inserted = self
                    .write_rows(records, true)
                    .await
                    .map_err(LearnError::from_sqlx)?;
                // `remove`: a batch naming one id twice stored it once, and indexes it once.
                let mut inserted = inserted;
                records
                    .iter()
                    .filter(|r| inserted.remove(r.record_id.as_bytes().as_slice()))
                    .collect()
            }
            Err(e) => return Err(LearnError::from_sqlx(e)),
        };
        let mut flat = Vec::with_capacity(fresh.len() * EMBEDDING_DIM);
        for r in &fresh {
            flat.extend_from_slice(r.embedding.as_slice());
        }
        write_memory(&self.memory).push(&flat, fresh.iter().map(|r| r.summary()).collect())?;
        Ok(fresh.len() as u64)
    }

    async fn count(&self) -> Result<u64, LearnError> {
        let m = read_memory(&self.memory);
        Ok((m.rows.len() - m.deleted) as u64)
    }

    async fn find_similar(
        &self,
        query: &Embedding,
        threshold: f32,
        limit: usize,
        mode: SearchMode,
    ) -> Result<Vec<SimilarTask>, LearnError> {
        check_search(threshold, limit)?;
        let memory = Arc::clone(&self.memory);
        let query = query.clone();
        let search = move || -> Result<Vec<SimilarTask>, LearnError> {
            let m = read_memory(&memory);
            let k = limit.saturating_add(m.deleted);
            let hits = match mode {
                SearchMode::Default => m.index.search(query.as_slice(), k),
                SearchMode::Exact => m.index.search_exact(query.as_slice(), k),
            }
            .map_err(|e| LearnError::InvalidRequest(e.to_string()))?;
            Ok(hits
                .into_iter()
                .filter(|h| h.value >= threshold)
                .filter_map(|h| {
                    m.rows.get(h.index)?.as_ref().map(|task| SimilarTask {
                        similarity: h.value,
                        task: task.clone(),
                    })
                })
                .take(limit)
                .collect())
        };
        tokio::task::spawn_blocking(search)
            .await
            .map_err(|e| LearnError::storage("the search task", e))?
    }

    async fn history(&self, filter: &HistoryFilter) -> Result<Vec<StoredRecord>, LearnError> {
        let rows = self.filtered(COLUMNS, filter).await?;
        rows.iter().map(|r| decode(r, 0)).collect()
    }

    async fn summaries(&self, filter: &HistoryFilter) -> Result<Vec<TaskSummary>, LearnError> {
        let rows = self.filtered(SUMMARY_COLUMNS, filter).await?;
        rows.iter().map(decode_summary).collect()
    }

    async fn get(&self, record_id: Uuid) -> Result<Option<StoredRecord>, LearnError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM agent_performance_metrics WHERE record_id = ?"
        ))
        .bind(record_id.as_bytes().to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(LearnError::from_sqlx)?;
        row.map(|r| decode(&r, 0)).transpose()
    }

    async fn delete(&self, record_ids: &[Uuid]) -> Result<u64, LearnError> {
        let _writer = self.write.lock().await;
        let mut tx = self.pool.begin().await.map_err(LearnError::from_sqlx)?;
        let mut removed = Vec::new();
        for id in record_ids {
            let done = sqlx::query("DELETE FROM agent_performance_metrics WHERE record_id = ?")
                .bind(id.as_bytes().to_vec())
                .execute(&mut *tx)
                .await
                .map_err(LearnError::from_sqlx)?;
            if done.rows_affected() > 0 {
                removed.push(*id);
            }
        }
        tx.commit().await.map_err(LearnError::from_sqlx)?;
        let mut m = write_memory(&self.memory);
        for id in &removed {
            if let Some(row) = m.by_id.remove(id) {
                if let Some(slot) = m.rows.get_mut(row) {
                    *slot = None;
                }
                m.deleted += 1;
            }
        }
        Ok(removed.len() as u64)
    }

    async fn agent_stats(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<AgentStats>, LearnError> {
        let rows = sqlx::query(
            "SELECT agent_id, COUNT(*), SUM(CAST(execution_time_ms AS REAL)), \
                    SUM(CAST(execution_time_ms AS REAL) * execution_time_ms), \
                    AVG(success_rate), MAX(timestamp_us) \
             FROM agent_performance_metrics WHERE timestamp_us >= ? \
             GROUP BY agent_id ORDER BY agent_id",
        )
        .bind(since.map_or(i64::MIN, micros))
        .fetch_all(&self.pool)
        .await
        .map_err(LearnError::from_sqlx)?;
        rows.iter()
            .map(|row| {
                let agent: String = row.try_get(0).map_err(corrupt)?;
                let n: i64 = row.try_get(1).map_err(corrupt)?;
                let sum: f64 = row.try_get(2).map_err(corrupt)?;
                let sum_sq: f64 = row.try_get(3).map_err(corrupt)?;
                let n = n as f64;
                Ok(AgentStats {
                    agent_id: AgentId::new(agent)
                        .map_err(|e| LearnError::corrupt("agent_id", e))?,
                    task_count: n as u64,
                    avg_execution_time_ms: sum / n,
                    execution_time_std_dev_ms: std_dev(n, sum, sum_sq),
                    avg_success_rate: row.try_get(4).map_err(corrupt)?,
                    last_seen: from_micros(row.try_get(5).map_err(corrupt)?)?,
                })
            })
            .collect()
    }
}
