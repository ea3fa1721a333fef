//! Learning stores at 100,000 records (`cargo xtask bench learn`): batched record throughput
//! into each store beside single-row inserts, and `predict_optimal_agent` latency (p50/p99)
//! with each search engine beside exact search, with recall@10 of the approximate ones.
//!
//! PostgreSQL rows need `DSMIL_TEST_DATABASE_URL` (`cargo xtask bench` starts the services).
//! `DSMIL_BENCH_QUICK=1` shrinks the run to 20,000 records and fewer queries. Rows go to
//! `DSMIL_BENCH_ROWS_DIR` when set.

#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use dsmil_accel::{AccelIndex, Platform};
use dsmil_core::learning::EMBEDDING_DIM;
use dsmil_core::ports::{FlatIndex, ScalarVectorKernel, Similarity};
use dsmil_learn::encoder::TaskEncoder;
use dsmil_learn::record::StoredRecord;
use dsmil_learn::store::{PerformanceStore, PgStore, PgStoreConfig, SearchMode, SqliteStore};
use dsmil_learn::synthetic::{Rng, World};
use dsmil_learn::{EngineConfig, LearningEngine, PredictRequest};
use serde_json::{Value, json};

struct Bench {
    rows: Vec<Value>,
    n: usize,
}

impl Bench {
    fn row(&mut self, group: &str, case: &str, implementation: &str, unit: &str, value: f64) {
        println!("{group:<28} {case:<8} {implementation:<28} {value:>12.3} {unit}");
        self.rows.push(json!({"group": group, "case": case, "impl": implementation, "unit": unit, "value": value}));
    }
}

fn records(world: &World, rng: &mut Rng, n: usize) -> Vec<StoredRecord> {
    let encoder = TaskEncoder::default();
    let now = Utc::now();
    (0..n)
        .map(|i| {
            let task = world.task(rng);
            let agent = rng.below(world.agents());
            let perf = dsmil_core::learning::AgentPerformance {
                agent_id: World::agent_id(agent),
                task_type: format!("topic-{}", task.topic),
                task_description: task.text,
                execution_time_ms: world.speed_ms[agent],
                success_rate: if rng.unit() < world.skill[agent][task.topic] {
                    1.0
                } else {
                    0.0
                },
                resource_usage: [("cpu".to_string(), rng.unit())].into(),
                error_details: None,
                context_factors: Default::default(),
                embedding: None,
                timestamp: Some(now - chrono::Duration::milliseconds((n - i) as i64)),
                tpm_signature: None,
                record_id: None,
            };
            StoredRecord::prepare(perf, &encoder, now, i + 1).unwrap()
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50 and p99 of `predict_optimal_agent` over `queries`, in ms.
async fn latency(engine: &LearningEngine, queries: &[String]) -> (f64, f64) {
    let mut times = Vec::with_capacity(queries.len());
    for q in queries {
        let t = Instant::now();
        engine
            .predict_optimal_agent(&PredictRequest {
                task_description: q.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (percentile(&times, 50.0), percentile(&times, 99.0))
}

/// recall@10 of `store`'s default search against its exact search.
async fn recall(store: &dyn PerformanceStore, queries: &[dsmil_core::learning::Embedding]) -> f64 {
    let (mut found, mut total) = (0, 0);
    for q in queries {
        let exact: HashSet<_> = store
            .find_similar(q, -1.0, 10, SearchMode::Exact)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.task.record_id)
            .collect();
        let got = store
            .find_similar(q, -1.0, 10, SearchMode::Default)
            .await
            .unwrap();
        found += got
            .iter()
            .filter(|h| exact.contains(&h.task.record_id))
            .count();
        total += exact.len();
    }
    found as f64 / total.max(1) as f64
}

async fn single_rows(store: &dyn PerformanceStore, records: &[StoredRecord]) -> f64 {
    let t = Instant::now();
    for r in records {
        store.insert(std::slice::from_ref(r)).await.unwrap();
    }
    records.len() as f64 / t.elapsed().as_secs_f64()
}

async fn engine(store: Arc<dyn PerformanceStore>) -> LearningEngine {
    LearningEngine::new(store, EngineConfig::default())
        .await
        .unwrap()
}

async fn run(b: &mut Bench) {
    let quick = std::env::var("DSMIL_BENCH_QUICK").is_ok_and(|v| v == "1");
    let mut rng = Rng::new(42);
    let world = World::new(&mut rng, 40, 12);
    let t = Instant::now();
    let data = records(&world, &mut rng, b.n);
    let extra = records(&world, &mut rng, if quick { 1000 } else { 3000 });
    eprintln!(
        "generated and embedded {} records in {:.1?}",
        data.len(),
        t.elapsed()
    );
    let queries: Vec<String> = (0..if quick { 100 } else { 400 })
        .map(|_| world.task(&mut rng).text)
        .collect();
    let encoder = TaskEncoder::default();
    let query_vectors: Vec<_> = queries
        .iter()
        .take(100)
        .map(|q| encoder.encode(q, "", None).unwrap())
        .collect();
    let case = format!("{}k", b.n / 1000);
    let platform = Platform::detect().unwrap();

    // Embedded store.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("learn.sqlite");
    let accel = AccelIndex::new(platform, EMBEDDING_DIM, Similarity::Cosine).unwrap();
    let lite = Arc::new(SqliteStore::open(&path, Box::new(accel)).await.unwrap());
    let t = Instant::now();
    for chunk in data.chunks(10_000) {
        lite.insert(chunk).await.unwrap();
    }
    b.row(
        "learn_record_sqlite",
        &case,
        "dsmil-sqlite",
        "records/s",
        data.len() as f64 / t.elapsed().as_secs_f64(),
    );
    let single = single_rows(lite.as_ref(), &extra[..extra.len() / 3]).await;
    b.row(
        "learn_record_sqlite",
        &case,
        "sqlite-single-row",
        "records/s",
        single,
    );
    let flat = FlatIndex::new(
        Arc::new(ScalarVectorKernel),
        EMBEDDING_DIM,
        Similarity::Cosine,
    );
    let exact_store: Arc<dyn PerformanceStore> =
        Arc::new(SqliteStore::open(&path, Box::new(flat)).await.unwrap());
    let lite_dyn: Arc<dyn PerformanceStore> = lite.clone();
    let r = recall(lite_dyn.as_ref(), &query_vectors).await;
    b.row(
        "learn_recall_at_10",
        &case,
        "dsmil-accel-int8-rerank",
        "recall",
        r,
    );
    let fast = engine(lite_dyn).await;
    let exact = engine(exact_store).await;
    let (p50, p99) = latency(&fast, &queries).await;
    let (e50, e99) = latency(&exact, &queries).await;
    b.row(
        "learn_predict_embedded",
        &format!("{case} p50"),
        "dsmil-accel-index",
        "ms",
        p50,
    );
    b.row(
        "learn_predict_embedded",
        &format!("{case} p50"),
        "flat-scalar-exact",
        "ms",
        e50,
    );
    b.row(
        "learn_predict_embedded",
        &format!("{case} p99"),
        "dsmil-accel-index",
        "ms",
        p99,
    );
    b.row(
        "learn_predict_embedded",
        &format!("{case} p99"),
        "flat-scalar-exact",
        "ms",
        e99,
    );

    // PostgreSQL + pgvector.
    let Some(url) = std::env::var("DSMIL_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("DSMIL_TEST_DATABASE_URL not set: PostgreSQL rows skipped");
        return;
    };
    let mut config = PgStoreConfig::new(url);
    config.schema = "bench_learn".into();
    config.acquire_timeout = Duration::from_secs(30);
    config.bulk_reindex_from = 10_000;
    let pg = PgStore::connect(config.clone()).await.unwrap();
    pg.drop_schema().await.unwrap();
    let pg = PgStore::connect(config).await.unwrap();
    let t = Instant::now();
    pg.insert(&data).await.unwrap(); // one bulk batch: COPY, then the HNSW index is rebuilt
    b.row(
        "learn_record_postgres",
        &case,
        "dsmil-postgres-bulk",
        "records/s",
        data.len() as f64 / t.elapsed().as_secs_f64(),
    );
    let third = extra.len() / 3;
    let t = Instant::now();
    for chunk in extra[third..2 * third].chunks(500) {
        pg.insert(chunk).await.unwrap();
    }
    b.row(
        "learn_record_postgres",
        &case,
        "dsmil-postgres-hnsw-500",
        "records/s",
        third as f64 / t.elapsed().as_secs_f64(),
    );
    let single = single_rows(&pg, &extra[2 * third..]).await;
    b.row(
        "learn_record_postgres",
        &case,
        "postgres-single-row",
        "records/s",
        single,
    );
    let r = recall(&pg, &query_vectors).await;
    b.row(
        "learn_recall_at_10",
        &case,
        "dsmil-pgvector-hnsw",
        "recall",
        r,
    );
    let pg_engine = engine(Arc::new(pg.clone())).await;
    let (p50, p99) = latency(&pg_engine, &queries).await;
    b.row(
        "learn_predict_postgres",
        &format!("{case} p50"),
        "dsmil-pgvector-hnsw",
        "ms",
        p50,
    );
    b.row(
        "learn_predict_postgres",
        &format!("{case} p99"),
        "dsmil-pgvector-hnsw",
        "ms",
        p99,
    );
    // Exact search on PostgreSQL, for reference (fewer queries: it scans every row).
    let mut times = Vec::new();
    for q in query_vectors.iter().take(if quick { 10 } else { 40 }) {
        let t = Instant::now();
        pg.find_similar(q, -1.0, 64, SearchMode::Exact)
            .await
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    b.row(
        "learn_predict_postgres",
        &format!("{case} p50"),
        "pgvector-exact-scan",
        "ms",
        percentile(&times, 50.0),
    );
    b.row(
        "learn_predict_postgres",
        &format!("{case} p99"),
        "pgvector-exact-scan",
        "ms",
        percentile(&times, 99.0),
    );
    pg.drop_schema().await.unwrap();
}

fn main() {
    let quick = std::env::var("DSMIL_BENCH_QUICK").is_ok_and(|v| v == "1");
    let mut b = Bench {
        rows: Vec::new(),
        n: if quick { 20_000 } else { 100_000 },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(&mut b));
    if let Ok(dir) = std::env::var("DSMIL_BENCH_ROWS_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            std::path::Path::new(&dir).join("learn_store.json"),
            serde_json::to_string_pretty(&b.rows).unwrap(),
        )
        .unwrap();
    }
}
