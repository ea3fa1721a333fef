//! Ports: the traits through which one layer uses another.
//!
//! A layer crate never depends on another layer crate. Where it needs one (coordination asks
//! learning for advice, everything signs through the TPM, monitoring throttles coordination),
//! it takes one of these traits; the providing layer implements it and the binary injects it.
//! Each port has a plain implementation here so a layer can be tested alone.

mod audit;
mod control;
mod dispatch;
mod host;
mod index;
mod journal;
mod learning;
mod metrics;
mod records;
mod signing;
mod vector;
mod witness;

pub use audit::{AuditReceipt, AuditSink, MemoryAuditSink};
pub use control::{PerformanceScaling, RecordingThrottle, ScalingKnob, Throttle, ThrottleState};
pub use dispatch::{
    Dispatched, FailureKind, HostedAgent, TaskDispatcher, TaskExecutor, TaskFailure, TaskReport,
    TaskRequest,
};
pub use host::{Adoption, WorkflowHost};
pub use index::{FlatIndex, VectorIndex, check_rows};
pub use journal::{JournalError, JournalStore, JournalTransition, WorkflowRecord};
pub use learning::{
    AdviceRequest, AgentAdvisor, DefaultAgentAdvisor, MemoryPerformanceSink, PerformanceSink,
};
pub use metrics::{MetricFamily, MetricKind, MetricSet, MetricsSource, Sample, SampleValue};
pub use records::{RecordsImport, RecordsRelay};
pub use signing::{HmacSigner, Signature, SignatureScheme, Signer, Verifier};
pub use vector::{
    Hit, ScalarVectorKernel, Similarity, VectorKernel, check_top_k_input, cosine_from_parts,
};
pub use witness::{ConsistencyProof, HeadVerifier, SignedTreeHead, TreeHeadSource};

use thiserror::Error;

/// Why a port call failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortError {
    /// The caller passed something invalid; the message says what.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The provider cannot serve right now (shut down, queue full, device gone).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The provider tried and failed; the message keeps the underlying error.
    #[error("{0}")]
    Backend(String),
}
