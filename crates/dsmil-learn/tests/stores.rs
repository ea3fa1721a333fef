//! The same store suite against the embedded SQLite store and PostgreSQL + pgvector.

use crate::common::*;
use dsmil_learn::LearnError;
use dsmil_learn::store::{HistoryFilter, SearchMode, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_read_delete_and_idempotent_inserts() {
    for b in backends().await {
        let s = &b.store;
        let mut rng = Rng(7);
        let records = many(&mut rng, 30, &["alpha", "beta", "gamma"]);
        assert_eq!(s.insert(&records).await.unwrap(), 30, "{}", b.name);
        assert_eq!(s.count().await.unwrap(), 30);
        // The same ids again: nothing new.
        assert_eq!(s.insert(&records[..10]).await.unwrap(), 0, "{}", b.name);
        assert_eq!(s.count().await.unwrap(), 30);
        // Stored and new ids mixed (a replay overlapping fresh records): only the new ones.
        let extra = many(&mut rng, 3, &["delta"]);
        let mixed: Vec<_> = records[20..].iter().chain(&extra).cloned().collect();
        assert_eq!(s.insert(&mixed).await.unwrap(), 3, "{}", b.name);
        let hit = s
            .find_similar(&extra[1].embedding, 0.99, 1, SearchMode::Exact)
            .await
            .unwrap();
        assert_eq!(
            hit[0].task.record_id, extra[1].record_id,
            "{}: new rows are searchable",
            b.name
        );
        assert_eq!(
            s.delete(&extra.iter().map(|r| r.record_id).collect::<Vec<_>>())
                .await
                .unwrap(),
            3
        );
        assert_eq!(s.count().await.unwrap(), 30);

        let got = s.get(records[4].record_id).await.unwrap().unwrap();
        assert_eq!(got, records[4], "{}: a record reads back unchanged", b.name);

        let beta = s
            .history(&HistoryFilter {
                agent_id: Some(id("beta")),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(beta.len(), 10);
        assert!(
            beta.windows(2).all(|w| w[0].timestamp >= w[1].timestamp),
            "newest first"
        );
        let recent = s
            .history(&HistoryFilter {
                since: Some(records[25].timestamp),
                limit: Some(3),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            recent.iter().map(|r| r.record_id).collect::<Vec<_>>(),
            vec![
                records[29].record_id,
                records[28].record_id,
                records[27].record_id
            ]
        );

        let sums = s
            .summaries(&HistoryFilter {
                agent_id: Some(id("beta")),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            sums,
            beta.iter().map(|r| r.summary()).collect::<Vec<_>>(),
            "{}",
            b.name
        );

        let stats = s.agent_stats(None).await.unwrap();
        assert_eq!(stats.len(), 3);
        let alpha: Vec<_> = records
            .iter()
            .filter(|r| r.agent_id == id("alpha"))
            .collect();
        let mean = alpha
            .iter()
            .map(|r| r.execution_time_ms as f64)
            .sum::<f64>()
            / 10.0;
        assert!(
            (stats[0].avg_execution_time_ms - mean).abs() < 1e-9,
            "{}",
            b.name
        );
        assert_eq!(stats[0].task_count, 10);

        let gone = [
            records[0].record_id,
            records[1].record_id,
            uuid::Uuid::new_v4(),
        ];
        assert_eq!(s.delete(&gone).await.unwrap(), 2);
        assert_eq!(s.count().await.unwrap(), 28);
        assert!(s.get(records[0].record_id).await.unwrap().is_none());
        let hits = s
            .find_similar(&records[0].embedding, -1.0, 40, SearchMode::Exact)
            .await
            .unwrap();
        assert_eq!(hits.len(), 28, "{}: deleted rows are not found", b.name);
        assert!(
            hits.iter()
                .all(|h| h.task.record_id != records[0].record_id)
        );
        b.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_a_bad_row_stores_nothing() {
    for b in backends().await {
        let mut rng = Rng(8);
        let mut records = many(&mut rng, 20, &["alpha"]);
        // Bypasses validation: the database's own check must refuse it.
        records[13].success_rate = 2.0;
        let err = b.store.insert(&records).await.unwrap_err();
        assert!(
            matches!(err, LearnError::Storage { .. }),
            "{}: {err}",
            b.name
        );
        assert_eq!(b.store.count().await.unwrap(), 0, "{}", b.name);
        assert!(
            b.store
                .find_similar(&records[0].embedding, -1.0, 5, SearchMode::Exact)
                .await
                .unwrap()
                .is_empty()
        );
        b.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_similarity_is_identical_on_both_stores() {
    let Some(pg) = postgres().await else {
        return;
    };
    let lite = sqlite().await;
    let mut rng = Rng(9);
    let records = many(&mut rng, 1500, &["a", "b", "c", "d"]);
    lite.store.insert(&records).await.unwrap();
    pg.store.insert(&records).await.unwrap();
    for q in 0..20 {
        let query = if q % 2 == 0 {
            rng.embedding()
        } else {
            records[q * 37].embedding.clone()
        };
        let a = lite
            .store
            .find_similar(&query, -1.0, 10, SearchMode::Exact)
            .await
            .unwrap();
        let b = pg
            .store
            .find_similar(&query, -1.0, 10, SearchMode::Exact)
            .await
            .unwrap();
        let ids = |v: &[dsmil_learn::store::SimilarTask]| {
            v.iter().map(|h| h.task.record_id).collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b), "query {q}");
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x.similarity - y.similarity).abs() < 1e-4,
                "{} vs {}",
                x.similarity,
                y.similarity
            );
            assert_eq!(x.task, y.task);
        }
        // Thresholds cut the same rows (halfway between the 5th and 6th, away from rounding).
        let cut = (a[4].similarity + a[5].similarity) / 2.0;
        let a = lite
            .store
            .find_similar(&query, cut, 10, SearchMode::Exact)
            .await
            .unwrap();
        let b = pg
            .store
            .find_similar(&query, cut, 10, SearchMode::Exact)
            .await
            .unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(ids(&a), ids(&b));
    }
    // The HNSW index agrees with exact search on the nearest neighbour of a stored vector.
    let hnsw = pg
        .store
        .find_similar(&records[100].embedding, 0.0, 1, SearchMode::Default)
        .await
        .unwrap();
    assert_eq!(hnsw[0].task.record_id, records[100].record_id);
    pg.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reloads_its_index_when_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("learn.sqlite");
    let mut rng = Rng(10);
    let records = many(&mut rng, 300, &["a", "b"]);
    {
        let store = SqliteStore::open(&path, flat_index()).await.unwrap();
        use dsmil_learn::store::PerformanceStore;
        store.insert(&records).await.unwrap();
        store.delete(&[records[5].record_id]).await.unwrap();
    }
    use dsmil_learn::store::PerformanceStore;
    let store = SqliteStore::open(&path, flat_index()).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 299);
    let hit = store
        .find_similar(&records[7].embedding, 0.0, 1, SearchMode::Default)
        .await
        .unwrap();
    assert_eq!(hit[0].task.record_id, records[7].record_id);
    assert!((hit[0].similarity - 1.0).abs() < 1e-5);
    let none = store
        .find_similar(&records[5].embedding, 0.99, 1, SearchMode::Default)
        .await
        .unwrap();
    assert!(
        none.is_empty(),
        "a deleted record stays deleted after reopening"
    );
    // A non-empty or wrong-shaped index is refused.
    let mut used = flat_index();
    use dsmil_core::ports::VectorIndex;
    used.add(records[0].embedding.as_slice()).unwrap();
    let err = SqliteStore::open(&dir.path().join("other.sqlite"), used)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_reject_bad_requests() {
    for b in backends().await {
        let q = Rng(3).embedding();
        let err = b
            .store
            .find_similar(&q, f32::NAN, 5, SearchMode::Default)
            .await
            .unwrap_err();
        assert!(matches!(err, LearnError::InvalidRequest(_)), "{}", b.name);
        assert!(
            b.store
                .find_similar(&q, 0.0, 1_000_000, SearchMode::Default)
                .await
                .is_err()
        );
        assert!(
            b.store
                .find_similar(&q, 0.0, 0, SearchMode::Default)
                .await
                .unwrap()
                .is_empty()
        );
        b.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_bulk_loads_rebuild_the_index_and_replays_store_once() {
    use dsmil_learn::store::{PerformanceStore, PgStore, PgStoreConfig};
    let Some(url) = database_url() else { return };
    let mut config = PgStoreConfig::new(url.clone());
    config.schema = schema_name();
    config.bulk_reindex_from = 200;
    let pg = PgStore::connect(config.clone()).await.unwrap();
    let mut rng = Rng(12);
    let records = many(&mut rng, 400, &["a", "b"]);
    assert_eq!(pg.insert(&records[..100]).await.unwrap(), 100);
    // Bulk: 300 records, 50 of them already stored (a replay); the index is rebuilt.
    assert_eq!(pg.insert(&records[50..]).await.unwrap(), 300);
    assert_eq!(pg.count().await.unwrap(), 400);
    let pool = sqlx::postgres::PgPool::connect(&url).await.unwrap();
    let indexes = hnsw_indexes(&pool, &config.schema).await;
    assert_eq!(indexes, 1, "the HNSW index is back after a bulk load");
    // A missing index (a crash mid-rebuild) is rebuilt on connect.
    sqlx::query(&format!(
        "DROP INDEX \"{}\".agent_performance_metrics_embedding",
        config.schema
    ))
    .execute(&pool)
    .await
    .unwrap();
    let again = PgStore::connect(config.clone()).await.unwrap();
    let indexes = hnsw_indexes(&pool, &config.schema).await;
    assert_eq!(indexes, 1);
    let hit = again
        .find_similar(&records[300].embedding, 0.0, 1, SearchMode::Default)
        .await
        .unwrap();
    assert_eq!(hit[0].task.record_id, records[300].record_id);
    again.drop_schema().await.unwrap();
}

/// How many HNSW indexes the store's table has in `schema` (0 or 1).
async fn hnsw_indexes(pool: &sqlx::PgPool, schema: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = 'agent_performance_metrics_embedding'",
    )
    .bind(schema)
    .fetch_one(pool)
    .await
    .unwrap()
}
