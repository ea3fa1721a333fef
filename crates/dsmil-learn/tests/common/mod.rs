//! Test support: both stores, record builders and a deterministic generator.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use dsmil_core::AgentId;
use dsmil_core::learning::{AgentPerformance, EMBEDDING_DIM, Embedding};
use dsmil_core::ports::{FlatIndex, ScalarVectorKernel, Similarity};
use dsmil_core::testenv::{DATABASE_URL_VAR, service_from_env};
use dsmil_learn::record::StoredRecord;
use dsmil_learn::store::{PerformanceStore, PgStore, PgStoreConfig, SqliteStore};
use uuid::Uuid;

/// A store under test, with what keeps it alive.
pub struct Backend {
    pub name: &'static str,
    pub store: Arc<dyn PerformanceStore>,
    pub pg: Option<PgStore>,
    _dir: tempfile::TempDir,
}

impl Backend {
    /// Drops a PostgreSQL test schema.
    pub async fn cleanup(self) {
        if let Some(pg) = &self.pg {
            pg.drop_schema().await.unwrap();
            pg.close().await;
        }
    }
}

pub fn flat_index() -> Box<FlatIndex> {
    Box::new(FlatIndex::new(
        Arc::new(ScalarVectorKernel),
        EMBEDDING_DIM,
        Similarity::Cosine,
    ))
}

pub async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("learn.sqlite"), flat_index())
        .await
        .unwrap();
    Backend {
        name: "sqlite",
        store: Arc::new(store),
        pg: None,
        _dir: dir,
    }
}

/// A unique schema name for one test.
pub fn schema_name() -> String {
    format!("t_{}", Uuid::new_v4().simple())
}

/// The PostgreSQL URL, `None` when not configured (and not required).
pub fn database_url() -> Option<String> {
    service_from_env(DATABASE_URL_VAR).unwrap()
}

pub async fn postgres() -> Option<Backend> {
    let url = database_url()?;
    let mut config = PgStoreConfig::new(url);
    config.schema = schema_name();
    let pg = PgStore::connect(config).await.unwrap();
    Some(Backend {
        name: "postgres",
        store: Arc::new(pg.clone()),
        pg: Some(pg),
        _dir: tempfile::tempdir().unwrap(),
    })
}

/// SQLite, and PostgreSQL when configured.
pub async fn backends() -> Vec<Backend> {
    let mut all = vec![sqlite().await];
    if let Some(pg) = postgres().await {
        all.push(pg);
    } else {
        eprintln!("PostgreSQL not configured ({DATABASE_URL_VAR}); testing SQLite only");
    }
    all
}

pub fn id(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}

/// xorshift64*, deterministic.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn embedding(&mut self) -> Embedding {
        Embedding::new(
            (0..EMBEDDING_DIM)
                .map(|_| (self.unit() * 2.0 - 1.0) as f32)
                .collect(),
        )
        .unwrap()
    }
}

/// A seed-shaped record.
pub fn perf(
    agent: &str,
    task_type: &str,
    description: &str,
    ms: u64,
    success: f64,
) -> AgentPerformance {
    AgentPerformance {
        agent_id: id(agent),
        task_type: task_type.into(),
        task_description: description.into(),
        execution_time_ms: ms,
        success_rate: success,
        resource_usage: [("cpu".to_string(), 0.5)].into(),
        error_details: None,
        context_factors: Default::default(),
        embedding: None,
        timestamp: None,
        tpm_signature: None,
        record_id: None,
    }
}

/// A stored record with a random embedding at `at`.
pub fn stored(rng: &mut Rng, agent: &str, at: DateTime<Utc>) -> StoredRecord {
    StoredRecord {
        record_id: Uuid::new_v4(),
        agent_id: id(agent),
        task_type: "t".into(),
        task_description: format!("task {}", rng.next_u64() % 1000),
        execution_time_ms: 10 + rng.next_u64() % 90,
        success_rate: rng.unit(),
        resource_usage: [("cpu".to_string(), rng.unit())].into(),
        error_details: None,
        context_factors: Default::default(),
        embedding: rng.embedding(),
        timestamp: at,
        tpm_signature: None,
    }
}

/// `n` stored records, one per second ending now, agents cycling through `agents`.
pub fn many(rng: &mut Rng, n: usize, agents: &[&str]) -> Vec<StoredRecord> {
    let now = Utc::now();
    (0..n)
        .map(|i| {
            // Microsecond precision: what both stores keep.
            let at = now - Duration::seconds((n - i) as i64);
            let at = DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap();
            stored(rng, agents[i % agents.len()], at)
        })
        .collect()
}
