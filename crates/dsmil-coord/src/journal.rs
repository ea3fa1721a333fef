//! The single-host workflow journal: a SQLite file where every state transition and task result
//! is committed (WAL, `synchronous = FULL`) before the coordinator goes on, so a crash loses
//! nothing that was acknowledged. After a restart, `unfinished` lists the workflows to resume,
//! with the results their tasks already produced. It implements core's [`JournalStore`] port
//! (the cluster's JetStream journal is the other implementation; both pass
//! `dsmil_core::conformance::journal`).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dsmil_core::WorkflowId;
use dsmil_core::migrations::Step;
use dsmil_core::ports::{JournalError, JournalStore};
pub use dsmil_core::ports::{JournalTransition, WorkflowRecord};
use dsmil_core::workflow::{AgentResult, WorkflowResult, WorkflowSpec, WorkflowState};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use thiserror::Error;

/// The error a corrupt value failed with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure of the SQLite journal; the database's, the encoder's or the parser's error is kept as the
/// [`source`](std::error::Error::source).
#[derive(Debug, Error)]
pub enum SqliteJournalError {
    /// The journal file could not be opened.
    #[error("cannot open the journal {}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// The journal's tables could not be created or upgraded.
    #[error("cannot prepare the journal's tables")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A database operation failed.
    #[error("journal: cannot {action}")]
    Storage {
        /// What was being done ("record a task result").
        action: &'static str,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },
    /// A value could not be encoded for storage.
    #[error("journal: cannot encode {what}")]
    Encode {
        /// Which value.
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored row could not be read back.
    #[error("journal holds unreadable data: {what}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Why it does not parse (none for a value out of range).
        #[source]
        source: Option<BoxError>,
    },
}

/// A failed database operation `action`.
fn storage(action: &'static str) -> impl FnOnce(sqlx::Error) -> SqliteJournalError {
    move |source| SqliteJournalError::Storage { action, source }
}

/// Value `what` could not be encoded.
fn encode(what: &'static str) -> impl FnOnce(serde_json::Error) -> SqliteJournalError {
    move |source| SqliteJournalError::Encode { what, source }
}

/// Stored value `what` does not parse.
fn corrupt<E: Into<BoxError>>(what: &'static str) -> impl FnOnce(E) -> SqliteJournalError {
    move |e| SqliteJournalError::Corrupt {
        what,
        source: Some(e.into()),
    }
}

/// Stored value `what` is out of range.
fn out_of_range(what: &'static str) -> SqliteJournalError {
    SqliteJournalError::Corrupt { what, source: None }
}

/// The SQLite journal.
#[derive(Debug, Clone)]
pub struct Journal {
    pool: SqlitePool,
}

fn state_name(s: WorkflowState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn parse_state(s: &str) -> Result<WorkflowState, SqliteJournalError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(corrupt("state"))
}

/// Appends one transition inside `tx`.
async fn insert_transition(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &str,
    at_us: i64,
    state: String,
    detail: &str,
) -> Result<(), SqliteJournalError> {
    sqlx::query("INSERT INTO transitions (workflow_id, at_us, state, detail) VALUES (?, ?, ?, ?)")
        .bind(id)
        .bind(at_us)
        .bind(state)
        .bind(detail)
        .execute(&mut **tx)
        .await
        .map_err(storage("record a transition"))?;
    Ok(())
}

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

impl Journal {
    /// Opens (creating) the journal at `path`.
    pub async fn open(path: &Path) -> Result<Self, SqliteJournalError> {
        let open = |source| SqliteJournalError::Open {
            path: path.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(open)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(open)?;
        const STEPS: &[Step] = &[Step {
            version: 1,
            description: "journal",
            sql: include_str!("../migrations/0001_journal.sql"),
        }];
        dsmil_core::migrations::migrator(STEPS)
            .await
            .map_err(SqliteJournalError::Migrate)?
            .run(&pool)
            .await
            .map_err(SqliteJournalError::Migrate)?;
        Ok(Self { pool })
    }

    /// Records a new workflow as `state` (pending, or running at once).
    pub async fn create(
        &self,
        id: WorkflowId,
        spec: &WorkflowSpec,
        state: WorkflowState,
    ) -> Result<(), SqliteJournalError> {
        let spec_text = serde_json::to_string(spec).map_err(encode("the workflow spec"))?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(storage("record a new workflow"))?;
        let now = now_us();
        sqlx::query("INSERT INTO workflows (id, spec, state, created_us, updated_us) VALUES (?, ?, ?, ?, ?)")
            .bind(id.to_string())
            .bind(spec_text)
            .bind(state_name(state))
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(storage("record a new workflow"))?;
        insert_transition(&mut tx, &id.to_string(), now, state_name(state), "accepted").await?;
        tx.commit().await.map_err(storage("record a new workflow"))
    }

    /// Records a state change.
    pub async fn transition(
        &self,
        id: WorkflowId,
        state: WorkflowState,
        detail: &str,
    ) -> Result<(), SqliteJournalError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(storage("record a state change"))?;
        let now = now_us();
        sqlx::query("UPDATE workflows SET state = ?, updated_us = ? WHERE id = ?")
            .bind(state_name(state))
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(storage("record a state change"))?;
        insert_transition(&mut tx, &id.to_string(), now, state_name(state), detail).await?;
        tx.commit().await.map_err(storage("record a state change"))
    }

    /// Records a task result.
    pub async fn task_result(
        &self,
        id: WorkflowId,
        result: &AgentResult,
    ) -> Result<(), SqliteJournalError> {
        sqlx::query("INSERT INTO task_results (workflow_id, task_id, result) VALUES (?, ?, ?)")
            .bind(id.to_string())
            .bind(result.task_id.as_str())
            .bind(serde_json::to_string(result).map_err(encode("a task result"))?)
            .execute(&self.pool)
            .await
            .map_err(storage("record a task result"))?;
        Ok(())
    }

    /// Records the final result and state.
    pub async fn finish(&self, result: &WorkflowResult) -> Result<(), SqliteJournalError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(storage("record a workflow's end"))?;
        let now = now_us();
        sqlx::query("UPDATE workflows SET state = ?, updated_us = ?, result = ? WHERE id = ?")
            .bind(state_name(result.state))
            .bind(now)
            .bind(serde_json::to_string(result).map_err(encode("a workflow result"))?)
            .bind(result.workflow_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(storage("record a workflow's end"))?;
        insert_transition(
            &mut tx,
            &result.workflow_id.to_string(),
            now,
            state_name(result.state),
            if result.success {
                "finished successfully"
            } else {
                "finished unsuccessfully"
            },
        )
        .await?;
        tx.commit()
            .await
            .map_err(storage("record a workflow's end"))
    }

    /// Everything about workflow `id`.
    pub async fn get(&self, id: WorkflowId) -> Result<Option<WorkflowRecord>, SqliteJournalError> {
        let Some(row) =
            sqlx::query("SELECT spec, state, created_us, result FROM workflows WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(storage("read a workflow"))?
        else {
            return Ok(None);
        };
        let spec: String = row.try_get(0).map_err(corrupt("workflows.spec"))?;
        let state: String = row.try_get(1).map_err(corrupt("workflows.state"))?;
        let created: i64 = row.try_get(2).map_err(corrupt("workflows.created_us"))?;
        let result: Option<String> = row.try_get(3).map_err(corrupt("workflows.result"))?;
        let results =
            sqlx::query("SELECT result FROM task_results WHERE workflow_id = ? ORDER BY seq")
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(storage("read a workflow's task results"))?
                .iter()
                .map(|r| {
                    let text: String = r.try_get(0).map_err(corrupt("task_results.result"))?;
                    serde_json::from_str(&text).map_err(corrupt("task_results.result"))
                })
                .collect::<Result<Vec<AgentResult>, _>>()?;
        let history = sqlx::query(
            "SELECT at_us, state, detail FROM transitions WHERE workflow_id = ? ORDER BY seq",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(storage("read a workflow's history"))?
        .iter()
        .map(|r| {
            let at: i64 = r.try_get(0).map_err(corrupt("transitions.at_us"))?;
            let state: String = r.try_get(1).map_err(corrupt("transitions.state"))?;
            Ok(JournalTransition {
                at: DateTime::from_timestamp_micros(at)
                    .ok_or_else(|| out_of_range("transitions.at_us"))?,
                state: parse_state(&state)?,
                detail: r.try_get(2).map_err(corrupt("transitions.detail"))?,
            })
        })
        .collect::<Result<Vec<_>, SqliteJournalError>>()?;
        Ok(Some(WorkflowRecord {
            workflow_id: id,
            spec: serde_json::from_str(&spec).map_err(corrupt("workflows.spec"))?,
            state: parse_state(&state)?,
            created_at: DateTime::from_timestamp_micros(created)
                .ok_or_else(|| out_of_range("workflows.created_us"))?,
            results,
            history,
            result: result
                .map(|r| serde_json::from_str(&r))
                .transpose()
                .map_err(corrupt("workflows.result"))?,
        }))
    }

    /// Workflows that were not finished (pending, running or recovering), oldest first.
    pub async fn unfinished(&self) -> Result<Vec<WorkflowRecord>, SqliteJournalError> {
        let ids = sqlx::query("SELECT id FROM workflows WHERE state IN ('pending', 'running', 'recovering') ORDER BY created_us")
            .fetch_all(&self.pool)
            .await
            .map_err(storage("list unfinished workflows"))?;
        let mut out = Vec::new();
        for row in ids {
            let text: String = row.try_get(0).map_err(corrupt("workflows.id"))?;
            let id = WorkflowId::from_str(&text).map_err(corrupt("workflows.id"))?;
            if let Some(record) = self.get(id).await? {
                out.push(record);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl JournalStore for Journal {
    async fn create(
        &self,
        id: WorkflowId,
        spec: &WorkflowSpec,
        state: WorkflowState,
    ) -> Result<(), JournalError> {
        Journal::create(self, id, spec, state)
            .await
            .map_err(JournalError::new)
    }

    async fn transition(
        &self,
        id: WorkflowId,
        state: WorkflowState,
        detail: &str,
    ) -> Result<(), JournalError> {
        Journal::transition(self, id, state, detail)
            .await
            .map_err(JournalError::new)
    }

    async fn task_result(&self, id: WorkflowId, result: &AgentResult) -> Result<(), JournalError> {
        Journal::task_result(self, id, result)
            .await
            .map_err(JournalError::new)
    }

    async fn finish(&self, result: &WorkflowResult) -> Result<(), JournalError> {
        Journal::finish(self, result)
            .await
            .map_err(JournalError::new)
    }

    async fn get(&self, id: WorkflowId) -> Result<Option<WorkflowRecord>, JournalError> {
        Journal::get(self, id).await.map_err(JournalError::new)
    }

    async fn unfinished(&self) -> Result<Vec<WorkflowRecord>, JournalError> {
        Journal::unfinished(self).await.map_err(JournalError::new)
    }
}
