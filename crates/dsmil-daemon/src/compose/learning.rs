//! Composes the learning layer: the store the configuration asks for (embedded SQLite, or
//! PostgreSQL behind the durable outbox), the accelerated vector index, and the engine with the
//! configured agents as candidates (their `task_types` as routing priors).

use std::path::Path;
use std::sync::Arc;

use crate::config::DaemonConfig;
use crate::error::{Context, Result};
use dsmil_accel::{AccelIndex, Meter, Platform};
use dsmil_core::learning::EMBEDDING_DIM;
use dsmil_core::ports::Similarity;
use dsmil_learn::store::{PerformanceStore, PgStore, PgStoreConfig, ResilientStore, SqliteStore};
use dsmil_learn::{EngineConfig, LearningEngine};

/// File of the embedded store, in the data dir.
pub const SQLITE_FILE: &str = "learn.sqlite";
/// File of the PostgreSQL outbox, in the data dir.
pub const OUTBOX_FILE: &str = "learn-outbox.sqlite";

/// Opens the store and starts the engine; agents from the configuration become candidates.
/// The embedded store's similarity searches are counted by `meter` (the accelerator engine's
/// counters and throughput events, so the dashboard charts them).
pub async fn start(
    config: &DaemonConfig,
    data_dir: &Path,
    platform: Platform,
    meter: Meter,
) -> Result<Arc<LearningEngine>> {
    let store: Arc<dyn PerformanceStore> = match &config.learn.database_url {
        Some(url) => {
            let pg = PgStore::connect(PgStoreConfig::new(url.clone()))
                .await
                .context("cannot open the PostgreSQL store (--database-url)")?;
            let outbox = data_dir.join(OUTBOX_FILE);
            Arc::new(
                ResilientStore::open(Arc::new(pg), &outbox)
                    .await
                    .with_context(|| format!("cannot open the outbox {}", outbox.display()))?,
            )
        }
        None => {
            let path = data_dir.join(SQLITE_FILE);
            let index = AccelIndex::new(platform, EMBEDDING_DIM, Similarity::Cosine)
                .context("cannot create the vector index")?
                .with_meter(meter);
            Arc::new(
                SqliteStore::open(&path, Box::new(index))
                    .await
                    .with_context(|| {
                        format!("cannot open the embedded store {}", path.display())
                    })?,
            )
        }
    };
    let engine = LearningEngine::new(
        store,
        EngineConfig {
            default_agent: config.coord.default_agent.clone(),
            ..EngineConfig::default()
        },
    )
    .await
    .context("cannot start the learning engine")?;
    // Every configured agent is a candidate; its `task_types` are its prior for those tasks.
    engine.register_agent_hints(
        config
            .coord
            .agents
            .iter()
            .map(|a| (a.id.clone(), a.task_types.clone())),
    );
    Ok(Arc::new(engine))
}
