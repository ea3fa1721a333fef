//! Learning vocabulary (seed layer 2): 256-d task embeddings, performance records and
//! routing predictions.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

use crate::ids::AgentId;
use crate::workflow::{Metadata, ResourceUsage};

/// Dimension of every task embedding.
pub const EMBEDDING_DIM: usize = 256;

/// Why a vector was rejected as an [`Embedding`].
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EmbeddingError {
    /// Not exactly [`EMBEDDING_DIM`] components.
    #[error("embedding must have exactly {EMBEDDING_DIM} components, got {0}")]
    WrongDimension(usize),
    /// A component is NaN or infinite.
    #[error("embedding component {index} is {value}, but every component must be finite")]
    NotFinite {
        /// Position of the first bad component.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// The bytes are not a little-endian f32 vector of the right size.
    #[error("embedding blob has {0} bytes; expected 1024 (256 little-endian f32)")]
    WrongByteLength(usize),
}

/// A task embedding: exactly 256 finite `f32`.
///
/// The constructor is the only way to build one, so every `Embedding` in the system is valid.
#[derive(Clone, PartialEq)]
pub struct Embedding(Box<[f32]>);

impl Embedding {
    /// Validates and wraps `values`.
    pub fn new(values: Vec<f32>) -> Result<Self, EmbeddingError> {
        if values.len() != EMBEDDING_DIM {
            return Err(EmbeddingError::WrongDimension(values.len()));
        }
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(EmbeddingError::NotFinite { index, value });
        }
        Ok(Self(values.into_boxed_slice()))
    }

    /// The all-zero embedding.
    pub fn zeros() -> Self {
        Self(vec![0.0; EMBEDDING_DIM].into_boxed_slice())
    }

    /// The components.
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// Euclidean norm.
    pub fn norm(&self) -> f32 {
        self.0.iter().map(|v| v * v).sum::<f32>().sqrt()
    }

    /// A copy scaled to unit length (the zero vector stays zero).
    pub fn normalized(&self) -> Self {
        let n = self.norm();
        if n == 0.0 {
            return self.clone();
        }
        Self(self.0.iter().map(|v| v / n).collect())
    }

    /// Little-endian bytes (1024), as stored in blobs.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Parses the little-endian blob written by [`Embedding::to_le_bytes`].
    pub fn from_le_bytes(bytes: &[u8]) -> Result<Self, EmbeddingError> {
        if bytes.len() != EMBEDDING_DIM * 4 {
            return Err(EmbeddingError::WrongByteLength(bytes.len()));
        }
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Self::new(values)
    }
}

impl fmt::Debug for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Embedding(norm={:.4}, [{:.4}, {:.4}, …])",
            self.norm(),
            self.0[0],
            self.0[1]
        )
    }
}

impl TryFrom<Vec<f32>> for Embedding {
    type Error = EmbeddingError;
    fn try_from(values: Vec<f32>) -> Result<Self, Self::Error> {
        Self::new(values)
    }
}

impl utoipa::PartialSchema for Embedding {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::Number)
                    .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                        utoipa::openapi::schema::KnownFormat::Float,
                    ))),
            )
            .min_items(Some(EMBEDDING_DIM))
            .max_items(Some(EMBEDDING_DIM))
            .description(Some("A task embedding: exactly 256 finite numbers."))
            .into()
    }
}

impl utoipa::ToSchema for Embedding {}

impl Serialize for Embedding {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Embedding {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let values = Vec::<f32>::deserialize(deserializer)?;
        Embedding::new(values).map_err(serde::de::Error::custom)
    }
}

/// One recorded agent run (seed `AgentPerformanceMetrics`, field names kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPerformance {
    /// The agent that ran.
    pub agent_id: AgentId,
    /// Kind of task (`"hash"`, `"build"`, …).
    pub task_type: String,
    /// The task in words. Default: empty.
    #[serde(default)]
    pub task_description: String,
    /// Wall time of the run.
    pub execution_time_ms: u64,
    /// Share of successful attempts, 0–1.
    pub success_rate: f64,
    /// Resources used (`cpu`, `memory_mb`, …). Default: empty.
    #[serde(default)]
    pub resource_usage: ResourceUsage,
    /// Error text of a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<String>,
    /// Conditions of the run (load, input size, …). Default: empty.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context_factors: Metadata,
    /// Caller-supplied embedding; computed from description, type and context when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Embedding>,
    /// When the run happened; the time of recording when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Signature over the record by the configured signer, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_signature: Option<String>,
    /// The record's id; a record sent again with the same id is stored once (the coordinator
    /// derives it from the workflow, task and attempt, so a replay after a crash is not a second
    /// record). Absent: a fresh id is assigned when it is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<uuid::Uuid>,
}

/// Why a performance record was rejected; names the field.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{field}: {reason}")]
pub struct RecordError {
    /// The offending field.
    pub field: &'static str,
    /// What was wrong and what is expected.
    pub reason: String,
}

/// Longest accepted task description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 16 * 1024;

impl AgentPerformance {
    /// Every check a record passes before it is stored — the one validation the daemon and
    /// clients' pre-checks share: a non-empty task type; a description (or a caller-supplied
    /// embedding) of at most [`MAX_DESCRIPTION_BYTES`]; no NUL characters in text fields (no
    /// store can keep them); `execution_time_ms` within what stores keep (a signed 64-bit
    /// integer); `success_rate` a finite number in 0–1; finite resource numbers. The error names
    /// the field.
    pub fn validate(&self) -> Result<(), RecordError> {
        let err = |field: &'static str, reason: String| Err(RecordError { field, reason });
        if self.task_type.trim().is_empty() {
            return err("task_type", "must not be empty".into());
        }
        if self.task_description.trim().is_empty() && self.embedding.is_none() {
            return err(
                "task_description",
                "must not be empty (or give an `embedding`)".into(),
            );
        }
        if self.task_description.len() > MAX_DESCRIPTION_BYTES {
            return err(
                "task_description",
                format!(
                    "is {} bytes; at most {MAX_DESCRIPTION_BYTES} are accepted",
                    self.task_description.len()
                ),
            );
        }
        for (field, text) in [
            ("task_type", Some(self.task_type.as_str())),
            ("task_description", Some(self.task_description.as_str())),
            ("error_details", self.error_details.as_deref()),
        ] {
            if text.is_some_and(|t| t.contains('\0')) {
                return err(
                    field,
                    "contains a NUL character, which cannot be stored".into(),
                );
            }
        }
        if i64::try_from(self.execution_time_ms).is_err() {
            return err(
                "execution_time_ms",
                format!("{} is too large", self.execution_time_ms),
            );
        }
        if !(self.success_rate.is_finite() && (0.0..=1.0).contains(&self.success_rate)) {
            return err(
                "success_rate",
                format!("is {}; expected a number from 0 to 1", self.success_rate),
            );
        }
        if let Some((name, value)) = self.resource_usage.iter().find(|(_, v)| !v.is_finite()) {
            return err(
                "resource_usage",
                format!("{name} is {value}; every value must be finite"),
            );
        }
        Ok(())
    }
}

/// The learning layer's answer to "which agent should run this task?" (seed field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LearningPrediction {
    /// The agent to use.
    pub predicted_agent: AgentId,
    /// Calibrated confidence, 0–1 (0 when there was no history).
    pub confidence_score: f64,
    /// Why: similar tasks found, per-agent scores, exploration.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub reasoning: Metadata,
    /// Runners-up with their confidence, best first (at most 5).
    #[serde(default)]
    pub alternative_agents: Vec<(AgentId, f64)>,
    /// Expected wall time.
    pub execution_time_estimate_ms: u64,
    /// Expected resource usage.
    #[serde(default)]
    pub resource_estimate: ResourceUsage,
}

impl LearningPrediction {
    /// How the prediction was made (`reasoning.method`: `similar_history`,
    /// `default_agent_without_history`, …).
    pub fn method(&self) -> Option<&str> {
        self.reasoning
            .get("method")
            .and_then(serde_json::Value::as_str)
    }

    /// How many similar past tasks it rests on (`reasoning.similar_tasks`).
    pub fn similar_tasks(&self) -> Option<u64> {
        self.reasoning
            .get("similar_tasks")
            .and_then(serde_json::Value::as_u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn embedding_rejects_wrong_dimension_and_non_finite() {
        assert_eq!(
            Embedding::new(vec![0.0; 255]),
            Err(EmbeddingError::WrongDimension(255))
        );
        let mut v = vec![0.5; 256];
        v[17] = f32::NAN;
        let err = Embedding::new(v).unwrap_err();
        assert!(matches!(err, EmbeddingError::NotFinite { index: 17, .. }));
        assert!(err.to_string().contains("component 17"));
        let mut v = vec![0.5; 256];
        v[255] = f32::INFINITY;
        assert!(Embedding::new(v).is_err());
    }

    #[test]
    fn embedding_deserialization_validates() {
        let err = serde_json::from_str::<Embedding>("[1.0, 2.0]").unwrap_err();
        assert!(err.to_string().contains("exactly 256"), "{err}");
        assert!(Embedding::from_le_bytes(&[0; 12]).is_err());
    }

    #[test]
    fn record_with_seed_fields_parses_and_validates() {
        let json = r#"{"agent_id":"hasher","task_type":"hash","task_description":"hash files",
            "execution_time_ms":120,"success_rate":0.9,"resource_usage":{"cpu":0.5},
            "error_details":null,"context_factors":{"size":"4KiB"},
            "timestamp":"2026-11-27T03:00:00Z"}"#;
        let record: AgentPerformance = serde_json::from_str(json).unwrap();
        record.validate().unwrap();
        assert!(record.embedding.is_none());

        let bad = AgentPerformance {
            success_rate: 1.5,
            ..record.clone()
        };
        assert_eq!(bad.validate().unwrap_err().field, "success_rate");
        let err = serde_json::from_str::<AgentPerformance>(&json.replace("agent_id", "agent"))
            .unwrap_err();
        assert!(err.to_string().contains("agent"), "{err}");
    }

    proptest! {
        #[test]
        fn finite_vectors_round_trip_through_json_and_bytes(v in proptest::collection::vec(-1e6f32..1e6, 256)) {
            let e = Embedding::new(v).unwrap();
            let json = serde_json::to_string(&e).unwrap();
            prop_assert_eq!(&serde_json::from_str::<Embedding>(&json).unwrap(), &e);
            prop_assert_eq!(&Embedding::from_le_bytes(&e.to_le_bytes()).unwrap(), &e);
            let n = e.normalized().norm();
            prop_assert!(e.norm() == 0.0 || (n - 1.0).abs() < 1e-3);
        }

        #[test]
        fn any_other_length_is_rejected(len in 0usize..600) {
            prop_assume!(len != EMBEDDING_DIM);
            prop_assert_eq!(Embedding::new(vec![0.0; len]), Err(EmbeddingError::WrongDimension(len)));
        }
    }
}
