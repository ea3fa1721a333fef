//! `dsmil-learn`: agent performance history with 256-d task embeddings, and learned routing of
//! tasks to agents (DSMIL layer 2).
//!
//! Today the crate holds the [`encoder`] — a deterministic embedding of a task (description, type
//! and context) that needs no model download — and the [`router`]'s scoring of candidate agents
//! from the outcomes of similar past tasks. The stores (SQLite, PostgreSQL + pgvector) and the
//! engine that ties them together build on these.
//!
//! ```
//! use dsmil_learn::encoder::TaskEncoder;
//!
//! let encoder = TaskEncoder::default();
//! let context = serde_json::json!({"size": 4096, "priority": "high"});
//! let a = encoder.encode("hash the audit log files", "hash", context.as_object())?;
//! let b = encoder.encode("compute hashes of audit log files", "hash", None)?;
//! let c = encoder.encode("render the dashboard chart", "ui", None)?;
//! let cos = |x: &dsmil_core::Embedding, y: &dsmil_core::Embedding| -> f32 {
//!     x.as_slice().iter().zip(y.as_slice()).map(|(p, q)| p * q).sum()
//! };
//! assert!((a.norm() - 1.0).abs() < 1e-5);
//! assert!(cos(&a, &b) > cos(&a, &c));
//! # Ok::<(), dsmil_learn::encoder::EncodeError>(())
//! ```

pub mod encoder;
pub mod router;
