//! `dsmil-learn`: agent performance history with 256-d task embeddings, and learned routing of
//! tasks to agents (DSMIL layer 2).
//!
//! Every agent run is recorded with an embedding of its task; the history then answers "which
//! agent should run this task?" from the outcomes of similar past tasks.
//!
//! ```
//! use std::sync::Arc;
//! use dsmil_core::learning::{AgentPerformance, EMBEDDING_DIM};
//! use dsmil_core::ports::{FlatIndex, ScalarVectorKernel, Similarity};
//! use dsmil_core::AgentId;
//! use dsmil_learn::store::SqliteStore;
//! use dsmil_learn::{EngineConfig, LearningEngine, PredictRequest};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! // The embedded store: a SQLite file plus an in-memory vector index (exact, scalar here;
//! // dsmild plugs in dsmil-accel's AVX-512 index).
//! let index = FlatIndex::new(Arc::new(ScalarVectorKernel), EMBEDDING_DIM, Similarity::Cosine);
//! let store = SqliteStore::open(&dir.path().join("learn.sqlite"), Box::new(index)).await?;
//! let engine = LearningEngine::new(Arc::new(store), EngineConfig::default()).await?;
//!
//! let run = |agent: &str, text: &str, success: f64| AgentPerformance {
//!     agent_id: AgentId::new(agent).unwrap(),
//!     task_type: "hash".into(),
//!     task_description: text.into(),
//!     execution_time_ms: 40,
//!     success_rate: success,
//!     resource_usage: Default::default(),
//!     error_details: None,
//!     context_factors: Default::default(),
//!     embedding: None, // computed by the task encoder
//!     timestamp: None,
//!     tpm_signature: None,
//!     record_id: None,
//! };
//! let mut history = Vec::new();
//! for i in 0..20 {
//!     history.push(run("hasher", &format!("hash the audit log part {i}"), 1.0));
//!     history.push(run("generalist", &format!("hash the audit log part {i}"), 0.4));
//! }
//! engine.record_batch(history).await?; // all or nothing
//!
//! let ask = PredictRequest { task_description: "hash the audit log".into(), ..Default::default() };
//! let prediction = engine.predict_optimal_agent(&ask).await?;
//! assert_eq!(prediction.predicted_agent.as_str(), "hasher");
//! assert!(prediction.confidence_score > 0.5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The pieces, each usable alone:
//! - [`encoder`]: the deterministic task embedding (no model download);
//! - [`store`]: the [`store::PerformanceStore`] trait, the embedded [`store::SqliteStore`],
//!   [`store::PgStore`] (PostgreSQL + pgvector, HNSW, binary COPY) and
//!   [`store::ResilientStore`], the durable outbox that keeps records through outages;
//! - [`router`]: scoring candidates from similar outcomes (smoothing, exploration, time);
//! - [`analysis`]: trends and anomalies; [`allocation`]: capacity-respecting assignment;
//! - [`engine`]: [`LearningEngine`], which implements core's `PerformanceSink` and
//!   `AgentAdvisor` ports;
//! - [`synthetic`]: generated task worlds for benchmarks and demos.

pub mod allocation;
pub mod analysis;
pub mod config;
pub mod encoder;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod record;
pub mod router;
pub mod store;
pub mod synthetic;

pub use engine::{EngineConfig, LearningEngine, PredictRequest};
pub use error::LearnError;
