//! The production store: PostgreSQL with pgvector, searched through an HNSW index
//! (`vector_cosine_ops`), written with binary COPY.
//!
//! A batch is written with one `COPY … FROM STDIN (FORMAT binary)` straight into the table, in
//! one transaction (atomic). If that meets a record id that is already stored (a replay after
//! an uncertain commit), the batch is written again through a temporary staging table and
//! `INSERT … SELECT … ON CONFLICT (record_id) DO NOTHING`, so each record is stored once.
//!
//! Incremental HNSW insertion dominates the cost of a write (see docs/benchmarks.md). A batch of
//! at least [`PgStoreConfig::bulk_reindex_from`] records therefore drops the HNSW index, loads,
//! and rebuilds it (parallel build, `maintenance_work_mem` raised for that session); searches
//! meanwhile run as exact scans. A store that finds the index missing when it connects (a crash
//! mid-rebuild) rebuilds it.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dsmil_core::AgentId;
use dsmil_core::learning::Embedding;
use pgvector::Vector;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Connection, Executor, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::copy::{encode_row, header, trailer};
use super::{
    AgentStats, HistoryFilter, PerformanceStore, SearchMode, SimilarTask, check_search, std_dev,
};
use crate::error::LearnError;
use crate::record::{StoredRecord, TaskSummary};

use super::copy::COLUMNS;

const SUMMARY_COLUMNS: &str = "record_id, agent_id, task_type, task_description, \
     execution_time_ms, success_rate, resource_usage, timestamp";

/// Largest `hnsw.ef_search` pgvector accepts.
const MAX_EF_SEARCH: usize = 1000;

/// The HNSW index (cosine), created when missing.
const CREATE_INDEX: &str = "CREATE INDEX IF NOT EXISTS agent_performance_metrics_embedding \
     ON agent_performance_metrics USING hnsw (vector_embedding vector_cosine_ops)";

/// The per-connection staging table for batches that may hold already-stored ids.
const STAGING_TABLE: &str = "CREATE TEMP TABLE IF NOT EXISTS dsmil_staging (
    ord BIGINT NOT NULL, record_id UUID NOT NULL, agent_id TEXT NOT NULL,
    task_type TEXT NOT NULL, task_description TEXT NOT NULL,
    execution_time_ms BIGINT NOT NULL, success_rate DOUBLE PRECISION NOT NULL,
    resource_usage JSONB NOT NULL, error_details TEXT, context_factors JSONB NOT NULL,
    vector_embedding vector(256) NOT NULL, tpm_signature TEXT,
    timestamp TIMESTAMPTZ NOT NULL
 ) ON COMMIT DELETE ROWS";

/// Bytes of COPY data sent per message.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// How to reach and use PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub struct PgStoreConfig {
    /// `postgres://user@host:port/db`.
    pub url: String,
    /// Schema holding the table (created if missing). Default: `public`.
    pub schema: String,
    /// `hnsw.ef_search` for every connection: larger is more accurate and slower. Default: 100.
    pub ef_search: u32,
    /// Pool size. Default: 8.
    pub max_connections: u32,
    /// How long a call waits for a connection before the store counts as unavailable.
    /// Default: 3 s.
    pub acquire_timeout: Duration,
    /// Batches at least this large rebuild the HNSW index instead of inserting into it.
    /// Default: 50,000.
    pub bulk_reindex_from: usize,
    /// `maintenance_work_mem` for index rebuilds. Default: `1GB`.
    pub index_build_memory: String,
}

impl PgStoreConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: "public".into(),
            ef_search: 100,
            max_connections: 8,
            acquire_timeout: Duration::from_secs(3),
            bulk_reindex_from: 50_000,
            index_build_memory: "1GB".into(),
        }
    }
}

fn check_schema(name: &str) -> Result<(), LearnError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(LearnError::InvalidRequest(format!(
            "schema name {name:?} must be 1–63 characters of a–z, 0–9 and _, not starting with a digit"
        )))
    }
}

/// The PostgreSQL + pgvector store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    config: PgStoreConfig,
}

impl PgStore {
    /// Connects, creates the schema if needed and runs the migrations.
    pub async fn connect(config: PgStoreConfig) -> Result<Self, LearnError> {
        check_schema(&config.schema)?;
        let options: PgConnectOptions = config
            .url
            .parse()
            .map_err(|e| LearnError::InvalidRequest(format!("database URL: {e}")))?;
        let session = format!(
            "SET search_path TO \"{}\", public; SET hnsw.ef_search = {};",
            config.schema, config.ef_search
        );
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(config.acquire_timeout)
            .after_connect(move |conn, _meta| {
                let session = session.clone();
                Box::pin(async move {
                    conn.execute(session.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(LearnError::from_sqlx)?;
        sqlx::query(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{}\"",
            config.schema
        ))
        .execute(&pool)
        .await
        .map_err(LearnError::from_sqlx)?;
        dsmil_core::migrations::migrator(super::migrations::POSTGRES)
            .await
            .map_err(|e| LearnError::storage("migrating PostgreSQL", e))?
            .run(&pool)
            .await
            .map_err(|e| LearnError::storage("migrating PostgreSQL", e))?;
        let store = Self { pool, config };
        store.ensure_index().await?;
        Ok(store)
    }

    /// Builds the HNSW index if it is missing.
    async fn ensure_index(&self) -> Result<(), LearnError> {
        let memory = self.config.index_build_memory.replace('\'', "");
        // SET LOCAL: the setting ends with the transaction, whatever happens to the build.
        let mut tx = self.pool.begin().await.map_err(LearnError::from_sqlx)?;
        tx.execute(format!("SET LOCAL maintenance_work_mem = '{memory}'").as_str())
            .await
            .map_err(LearnError::from_sqlx)?;
        tx.execute(CREATE_INDEX)
            .await
            .map_err(LearnError::from_sqlx)?;
        tx.commit().await.map_err(LearnError::from_sqlx)
    }

    /// One COPY of `records` into `table` (with `ord` for the staging table) inside `tx`.
    async fn copy(
        conn: &mut sqlx::PgConnection,
        table: &str,
        staging: bool,
        records: &[StoredRecord],
    ) -> Result<(), sqlx::Error> {
        let columns = if staging {
            format!("ord, {COLUMNS}")
        } else {
            COLUMNS.to_owned()
        };
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY {table} ({columns}) FROM STDIN (FORMAT binary)"
            ))
            .await?;
        let mut buffer = Vec::with_capacity(COPY_CHUNK_BYTES + 4096);
        header(&mut buffer);
        for (ord, record) in records.iter().enumerate() {
            encode_row(&mut buffer, staging.then_some(ord as i64), record);
            if buffer.len() >= COPY_CHUNK_BYTES {
                copy.send(std::mem::take(&mut buffer)).await?;
            }
        }
        trailer(&mut buffer);
        copy.send(buffer).await?;
        copy.finish().await?;
        Ok(())
    }

    /// Writes `records` atomically, skipping ids already stored.
    async fn write(&self, records: &[StoredRecord]) -> Result<u64, LearnError> {
        let mut conn = self.pool.acquire().await.map_err(LearnError::from_sqlx)?;
        let mut tx = conn.begin().await.map_err(LearnError::from_sqlx)?;
        match Self::copy(&mut tx, "agent_performance_metrics", false, records).await {
            Ok(()) => {
                tx.commit().await.map_err(LearnError::from_sqlx)?;
                return Ok(records.len() as u64);
            }
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
                tx.rollback().await.map_err(LearnError::from_sqlx)?;
            }
            Err(e) => return Err(LearnError::from_sqlx(e)),
        }
        let mut tx = conn.begin().await.map_err(LearnError::from_sqlx)?;
        sqlx::query(STAGING_TABLE)
            .execute(&mut *tx)
            .await
            .map_err(LearnError::from_sqlx)?;
        Self::copy(&mut tx, "dsmil_staging", true, records)
            .await
            .map_err(LearnError::from_sqlx)?;
        let done = sqlx::query(&format!(
            "INSERT INTO agent_performance_metrics ({COLUMNS}) \
             SELECT {COLUMNS} FROM dsmil_staging ORDER BY ord \
             ON CONFLICT (record_id) DO NOTHING"
        ))
        .execute(&mut *tx)
        .await
        .map_err(LearnError::from_sqlx)?;
        tx.commit().await.map_err(LearnError::from_sqlx)?;
        Ok(done.rows_affected())
    }

    /// `columns` of the rows matching `filter`, newest first.
    async fn filtered(
        &self,
        columns: &str,
        filter: &HistoryFilter,
    ) -> Result<Vec<PgRow>, LearnError> {
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {columns} FROM agent_performance_metrics WHERE TRUE"
        ));
        if let Some(agent) = &filter.agent_id {
            q.push(" AND agent_id = ")
                .push_bind(agent.as_str().to_owned());
        }
        if let Some(since) = filter.since {
            q.push(" AND timestamp >= ").push_bind(since);
        }
        q.push(" ORDER BY timestamp DESC, id DESC");
        if let Some(limit) = filter.limit {
            q.push(" LIMIT ")
                .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        q.build()
            .fetch_all(&self.pool)
            .await
            .map_err(LearnError::from_sqlx)
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &PgStoreConfig {
        &self.config
    }

    /// Drops the store's schema and everything in it (for tests and benchmarks that use a
    /// throw-away schema). Refuses `public`.
    pub async fn drop_schema(&self) -> Result<(), LearnError> {
        if self.config.schema == "public" {
            return Err(LearnError::InvalidRequest(
                "refusing to drop the public schema".into(),
            ));
        }
        sqlx::query(&format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.config.schema
        ))
        .execute(&self.pool)
        .await
        .map_err(LearnError::from_sqlx)?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn corrupt(e: sqlx::Error) -> LearnError {
    LearnError::corrupt("a stored column", e)
}

fn agent(text: String) -> Result<AgentId, LearnError> {
    AgentId::new(text).map_err(|e| LearnError::corrupt("agent_id", e))
}

fn time_ms(value: i64) -> Result<u64, LearnError> {
    u64::try_from(value).map_err(|e| LearnError::corrupt(format!("execution_time_ms {value}"), e))
}

/// The first six columns, shared by [`COLUMNS`] and [`SUMMARY_COLUMNS`].
struct Head {
    record_id: uuid::Uuid,
    agent_id: AgentId,
    task_type: String,
    task_description: String,
    execution_time_ms: u64,
    success_rate: f64,
}

fn decode_head(row: &PgRow) -> Result<Head, LearnError> {
    Ok(Head {
        record_id: row.try_get(0).map_err(corrupt)?,
        agent_id: agent(row.try_get(1).map_err(corrupt)?)?,
        task_type: row.try_get(2).map_err(corrupt)?,
        task_description: row.try_get(3).map_err(corrupt)?,
        execution_time_ms: time_ms(row.try_get(4).map_err(corrupt)?)?,
        success_rate: row.try_get(5).map_err(corrupt)?,
    })
}

fn decode_summary(row: &PgRow) -> Result<TaskSummary, LearnError> {
    let h = decode_head(row)?;
    Ok(TaskSummary {
        record_id: h.record_id,
        agent_id: h.agent_id,
        task_type: h.task_type,
        task_description: h.task_description,
        execution_time_ms: h.execution_time_ms,
        success_rate: h.success_rate,
        resource_usage: row.try_get::<Json<_>, _>(6).map_err(corrupt)?.0,
        timestamp: row.try_get(7).map_err(corrupt)?,
    })
}

fn decode(row: &PgRow) -> Result<StoredRecord, LearnError> {
    let h = decode_head(row)?;
    let vector: Vector = row.try_get(9).map_err(corrupt)?;
    Ok(StoredRecord {
        record_id: h.record_id,
        agent_id: h.agent_id,
        task_type: h.task_type,
        task_description: h.task_description,
        execution_time_ms: h.execution_time_ms,
        success_rate: h.success_rate,
        resource_usage: row.try_get::<Json<_>, _>(6).map_err(corrupt)?.0,
        error_details: row.try_get(7).map_err(corrupt)?,
        context_factors: row.try_get::<Json<_>, _>(8).map_err(corrupt)?.0,
        embedding: Embedding::new(vector.to_vec())
            .map_err(|e| LearnError::corrupt("vector_embedding", e))?,
        tpm_signature: row.try_get(10).map_err(corrupt)?,
        timestamp: row.try_get(11).map_err(corrupt)?,
    })
}

#[async_trait]
impl PerformanceStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn search_engine(&self) -> String {
        format!("pgvector-hnsw(ef_search={})", self.config.ef_search)
    }

    async fn insert(&self, records: &[StoredRecord]) -> Result<u64, LearnError> {
        if records.is_empty() {
            return Ok(0);
        }
        if records.len() < self.config.bulk_reindex_from {
            return self.write(records).await;
        }
        sqlx::query("DROP INDEX IF EXISTS agent_performance_metrics_embedding")
            .execute(&self.pool)
            .await
            .map_err(LearnError::from_sqlx)?;
        let written = self.write(records).await;
        // Rebuild even when the load failed; if this fails too, the next connect repairs it.
        self.ensure_index().await?;
        written
    }

    async fn count(&self) -> Result<u64, LearnError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agent_performance_metrics")
            .fetch_one(&self.pool)
            .await
            .map_err(LearnError::from_sqlx)?;
        Ok(n.max(0) as u64)
    }

    async fn find_similar(
        &self,
        query: &Embedding,
        threshold: f32,
        limit: usize,
        mode: SearchMode,
    ) -> Result<Vec<SimilarTask>, LearnError> {
        check_search(threshold, limit)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(LearnError::from_sqlx)?;
        match mode {
            SearchMode::Exact => {
                tx.execute("SET LOCAL enable_indexscan = off")
                    .await
                    .map_err(LearnError::from_sqlx)?;
            }
            // pgvector caps ef_search at 1000: larger answers come from an exact scan.
            SearchMode::Default if limit > MAX_EF_SEARCH => {
                tx.execute("SET LOCAL enable_indexscan = off")
                    .await
                    .map_err(LearnError::from_sqlx)?;
            }
            SearchMode::Default if limit > self.config.ef_search as usize => {
                // HNSW returns at most ef_search rows.
                tx.execute(format!("SET LOCAL hnsw.ef_search = {limit}").as_str())
                    .await
                    .map_err(LearnError::from_sqlx)?;
            }
            SearchMode::Default => {}
        }
        let rows = sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS}, (1 - (vector_embedding <=> $1))::real \
             FROM agent_performance_metrics ORDER BY vector_embedding <=> $1 LIMIT $2"
        ))
        .bind(Vector::from(query.as_slice().to_vec()))
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(LearnError::from_sqlx)?;
        tx.commit().await.map_err(LearnError::from_sqlx)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let similarity: Option<f32> = row.try_get(8).map_err(corrupt)?;
            // A zero vector has no cosine (pgvector answers NaN): treat it as 0.
            let similarity = similarity.filter(|s| s.is_finite()).unwrap_or(0.0);
            if similarity >= threshold {
                out.push(SimilarTask {
                    similarity,
                    task: decode_summary(row)?,
                });
            }
        }
        Ok(out)
    }

    async fn history(&self, filter: &HistoryFilter) -> Result<Vec<StoredRecord>, LearnError> {
        let rows = self.filtered(COLUMNS, filter).await?;
        rows.iter().map(decode).collect()
    }

    async fn summaries(&self, filter: &HistoryFilter) -> Result<Vec<TaskSummary>, LearnError> {
        let rows = self.filtered(SUMMARY_COLUMNS, filter).await?;
        rows.iter().map(decode_summary).collect()
    }

    async fn get(&self, record_id: Uuid) -> Result<Option<StoredRecord>, LearnError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM agent_performance_metrics WHERE record_id = $1"
        ))
        .bind(record_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(LearnError::from_sqlx)?;
        row.as_ref().map(decode).transpose()
    }

    async fn delete(&self, record_ids: &[Uuid]) -> Result<u64, LearnError> {
        let done = sqlx::query("DELETE FROM agent_performance_metrics WHERE record_id = ANY($1)")
            .bind(record_ids.to_vec())
            .execute(&self.pool)
            .await
            .map_err(LearnError::from_sqlx)?;
        Ok(done.rows_affected())
    }

    async fn agent_stats(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<AgentStats>, LearnError> {
        let rows = sqlx::query(
            "SELECT agent_id, COUNT(*), SUM(execution_time_ms)::float8, \
                    SUM(execution_time_ms::float8 * execution_time_ms), \
                    AVG(success_rate), MAX(timestamp) \
             FROM agent_performance_metrics \
             WHERE $1::timestamptz IS NULL OR timestamp >= $1 \
             GROUP BY agent_id ORDER BY agent_id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(LearnError::from_sqlx)?;
        rows.iter()
            .map(|row| {
                let n = row.try_get::<i64, _>(1).map_err(corrupt)? as f64;
                let sum: f64 = row.try_get(2).map_err(corrupt)?;
                let sum_sq: f64 = row.try_get(3).map_err(corrupt)?;
                Ok(AgentStats {
                    agent_id: agent(row.try_get(0).map_err(corrupt)?)?,
                    task_count: n as u64,
                    avg_execution_time_ms: sum / n,
                    execution_time_std_dev_ms: std_dev(n, sum, sum_sq),
                    avg_success_rate: row.try_get(4).map_err(corrupt)?,
                    last_seen: row.try_get(5).map_err(corrupt)?,
                })
            })
            .collect()
    }
}
