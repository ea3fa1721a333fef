//! `dsmil-learn`: agent performance history with 256-d task embeddings, and learned routing of
//! tasks to agents (DSMIL layer 2).

pub mod allocation;
pub mod analysis;
pub mod encoder;
pub mod engine;
pub mod error;
pub mod record;
pub mod router;
pub mod store;

pub use engine::{EngineConfig, LearningEngine, PredictRequest};
pub use error::LearnError;
