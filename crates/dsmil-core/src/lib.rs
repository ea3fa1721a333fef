//! `dsmil-core`: the shared vocabulary of DSMIL — what more than one layer must agree on, and
//! nothing else.
//!
//! - ids ([`AgentId`], [`TaskId`], [`WorkflowId`]) and the DSMIL device range with its
//!   quarantine ([`DeviceId`]);
//! - the payloads that cross layers: workflow specs and results (the API hands them to the
//!   coordinator, which reports them to learning and monitoring), performance records and
//!   predictions, the monitoring records every layer publishes;
//! - the typed [`EventBus`] and its [`Event`]s;
//! - the [`ports`]: small traits through which one layer uses another without depending on it,
//!   each with a plain implementation here so a layer can be tested alone;
//! - [`hex`], and [`validate::FieldError`], the one shape of a validation error.
//!
//! Each layer's configuration lives in that layer (`dsmil_coord::config`, …); the daemon's
//! composer assembles them. `testenv` (feature `testenv`) finds the real services tests use.
//!
//! ```
//! use dsmil_core::{DeviceId, Embedding, EventBus, Event, SecurityEvent, AlertLevel, WorkflowSpec};
//! use dsmil_core::ports::{ScalarVectorKernel, Similarity, VectorKernel};
//!
//! // Device ids are range-checked, and quarantined devices refuse writes.
//! let device: DeviceId = "0x8009".parse()?;
//! assert!(device.check_writable().is_err());
//!
//! // Embeddings are exactly 256 finite floats.
//! assert!(Embedding::new(vec![0.0; 3]).is_err());
//! let e = Embedding::new(vec![1.0; 256])?;
//!
//! // Workflow specs are validated before anything runs: here a dependency cycle.
//! let spec = r#"
//!     workflow_type = "demo"
//!     execution_mode = "sequential"
//!     [[tasks]]
//!     id = "a"
//!     agent_id = "auto"
//!     task_description = "first"
//!     dependencies = ["b"]
//!     [[tasks]]
//!     id = "b"
//!     agent_id = "hasher"
//!     task_description = "second"
//!     dependencies = ["a"]
//! "#;
//! let err = WorkflowSpec::from_toml_str(spec).unwrap_err();
//! assert_eq!(err.to_string(), "dependency cycle: a -> b -> a");
//!
//! // The scalar vector kernel is the reference every accelerated kernel is checked against.
//! let matrix: Vec<f32> = [vec![0.0; 256], e.as_slice().to_vec()].concat();
//! let hits = ScalarVectorKernel.top_k(e.as_slice(), &matrix, 256, 1, Similarity::Cosine)?;
//! assert_eq!(hits[0].index, 1);
//!
//! // Layers publish typed events; subscribers never slow publishers down.
//! let bus = EventBus::new(64);
//! let mut sub = bus.subscribe();
//! bus.publish(Event::Security(SecurityEvent::new("demo", AlertLevel::Info, "doc", "hello")));
//! assert!(sub.try_recv()?.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod accel;
#[cfg(feature = "testenv")]
pub mod conformance;
pub mod device;
pub mod events;
pub mod hex;
pub mod ids;
pub mod learning;
pub mod merkle;
#[cfg(feature = "migrations")]
pub mod migrations;
pub mod monitoring;
pub mod ports;
pub mod report;
#[cfg(feature = "testenv")]
pub mod testenv;
pub mod tpm;
pub mod validate;
pub mod workflow;

pub use accel::KernelPath;
pub use device::{DeviceError, DeviceId};
pub use events::{Event, EventBus, Published, Subscriber};
pub use ids::{AgentId, AgentRef, NameError, OperationId, TaskId, WorkflowId};
pub use learning::{
    AgentPerformance, EMBEDDING_DIM, Embedding, EmbeddingError, LearningPrediction,
};
pub use monitoring::{
    AgentActivity, AlertLevel, MetricType, PerformanceAlert, SecurityEvent, SystemHealth,
};
pub use ports::{Signature, SignatureScheme};
pub use tpm::{TpmOperation, TpmResultCode};
pub use workflow::{
    AgentResult, AgentTask, ExecutionMode, SpecError, TaskOutcome, WorkflowResult, WorkflowSpec,
    WorkflowState,
};

/// The version of this crate, reported in status answers.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
