//! Records as stored: a validated [`AgentPerformance`] with its embedding, timestamp and a
//! unique id filled in.

use chrono::{DateTime, Utc};
use dsmil_core::AgentId;
use dsmil_core::learning::{AgentPerformance, Embedding};
use dsmil_core::workflow::{Metadata, ResourceUsage};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::encoder::TaskEncoder;
use crate::error::LearnError;

pub use dsmil_core::learning::MAX_DESCRIPTION_BYTES;

/// One stored agent run. `record_id` makes storing idempotent: a record replayed from the outbox
/// after an uncertain commit is stored once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// Unique id, assigned when the record is accepted.
    pub record_id: Uuid,
    /// The agent that ran.
    pub agent_id: AgentId,
    /// Kind of task.
    pub task_type: String,
    /// The task in words.
    pub task_description: String,
    /// Wall time of the run.
    pub execution_time_ms: u64,
    /// Share of success, 0–1.
    pub success_rate: f64,
    /// Resources used.
    pub resource_usage: ResourceUsage,
    /// Error text of a failed run.
    pub error_details: Option<String>,
    /// Conditions of the run.
    pub context_factors: Metadata,
    /// The task's embedding (the caller's, or computed by the encoder).
    pub embedding: Embedding,
    /// When the run happened.
    pub timestamp: DateTime<Utc>,
    /// Signature by the configured signer over [`StoredRecord::signed_bytes`], as JSON.
    pub tpm_signature: Option<String>,
}

/// What similarity search and routing need of a stored run (no embedding, no free text beyond
/// the description).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// The record's id.
    pub record_id: Uuid,
    /// The agent that ran.
    pub agent_id: AgentId,
    /// Kind of task.
    pub task_type: String,
    /// The task in words.
    pub task_description: String,
    /// Wall time of the run.
    pub execution_time_ms: u64,
    /// Share of success, 0–1.
    pub success_rate: f64,
    /// Resources used.
    pub resource_usage: ResourceUsage,
    /// When the run happened.
    pub timestamp: DateTime<Utc>,
}

impl StoredRecord {
    /// Validates `record` and completes it: embedding from `encoder` when absent, timestamp
    /// `now` when absent, a fresh id. `index` (from 1) names the record in errors.
    pub fn prepare(
        record: AgentPerformance,
        encoder: &TaskEncoder,
        now: DateTime<Utc>,
        index: usize,
    ) -> Result<Self, LearnError> {
        let invalid = |field: &str, reason: String| LearnError::InvalidRecord {
            index,
            field: field.to_owned(),
            reason,
        };
        record.validate().map_err(|e| invalid(e.field, e.reason))?;
        let embedding = match record.embedding {
            Some(e) => e,
            None => encoder
                .encode(
                    &record.task_description,
                    &record.task_type,
                    Some(&record.context_factors),
                )
                .map_err(|e| invalid("task_description", e.to_string()))?,
        };
        Ok(Self {
            record_id: record.record_id.unwrap_or_else(Uuid::new_v4),
            agent_id: record.agent_id,
            task_type: record.task_type,
            task_description: record.task_description,
            execution_time_ms: record.execution_time_ms,
            success_rate: record.success_rate,
            resource_usage: record.resource_usage,
            error_details: record.error_details,
            context_factors: record.context_factors,
            embedding,
            timestamp: to_micros(record.timestamp.unwrap_or(now)),
            tpm_signature: record.tpm_signature,
        })
    }

    /// The bytes a signature covers: the record as compact JSON without its signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.tpm_signature = None;
        // Serialising plain data to a Vec cannot fail.
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }

    /// The summary used by search and routing.
    pub fn summary(&self) -> TaskSummary {
        TaskSummary {
            record_id: self.record_id,
            agent_id: self.agent_id.clone(),
            task_type: self.task_type.clone(),
            task_description: self.task_description.clone(),
            execution_time_ms: self.execution_time_ms,
            success_rate: self.success_rate,
            resource_usage: self.resource_usage.clone(),
            timestamp: self.timestamp,
        }
    }

    /// Back to the seed's record shape (embedding and timestamp filled in).
    pub fn to_performance(&self) -> AgentPerformance {
        AgentPerformance {
            agent_id: self.agent_id.clone(),
            task_type: self.task_type.clone(),
            task_description: self.task_description.clone(),
            execution_time_ms: self.execution_time_ms,
            success_rate: self.success_rate,
            resource_usage: self.resource_usage.clone(),
            error_details: self.error_details.clone(),
            context_factors: self.context_factors.clone(),
            embedding: Some(self.embedding.clone()),
            timestamp: Some(self.timestamp),
            tpm_signature: self.tpm_signature.clone(),
            record_id: Some(self.record_id),
        }
    }
}

/// `t` truncated to whole microseconds, the precision both stores keep (so a signature over a
/// record still verifies after it is read back).
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Parses a batch of records from a JSON array or NDJSON (one object per line; blank lines
/// skipped). Errors name the record (line for NDJSON, position for an array) and the field.
pub fn parse_records(text: &str) -> Result<Vec<AgentPerformance>, LearnError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let values: Vec<serde_json::Value> =
            serde_json::from_str(trimmed).map_err(|e| LearnError::InvalidRecord {
                index: e.line(),
                field: "(json)".into(),
                reason: e.to_string(),
            })?;
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| parse_value(v, i + 1))
            .collect()
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, line)| {
                let value: serde_json::Value =
                    serde_json::from_str(line).map_err(|e| LearnError::InvalidRecord {
                        index: i + 1,
                        field: "(json)".into(),
                        reason: e.to_string(),
                    })?;
                parse_value(value, i + 1)
            })
            .collect()
    }
}

fn parse_value(value: serde_json::Value, index: usize) -> Result<AgentPerformance, LearnError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        // The path names the field of a bad value (`execution_time_ms` for -5); an unknown or
        // missing field is an error of the record itself, named in serde's message.
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = if path == "." || path.is_empty() {
            field_of(&message)
        } else {
            path
        };
        LearnError::InvalidRecord {
            index,
            field,
            reason: message,
        }
    })
}

/// Extracts the field serde names in its message (`unknown field `x``, `missing field `x``,
/// or a nested error such as an embedding's), falling back to `(record)`.
fn field_of(message: &str) -> String {
    if let Some(start) = message.find('`')
        && let Some(len) = message[start + 1..].find('`')
    {
        return message[start + 1..start + 1 + len].to_owned();
    }
    if message.contains("embedding") {
        return "embedding".into();
    }
    "(record)".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(extra: &str) -> String {
        format!(
            r#"{{"agent_id":"a","task_type":"t","task_description":"do it","execution_time_ms":5,"success_rate":1.0{extra}}}"#
        )
    }

    #[test]
    fn ndjson_and_arrays_parse_and_errors_name_line_and_field() {
        let text = format!("{}\n\n{}\n", line(""), line(""));
        assert_eq!(parse_records(&text).unwrap().len(), 2);
        let array = format!("[{}, {}]", line(""), line(""));
        assert_eq!(parse_records(&array).unwrap().len(), 2);

        let bad = format!("{}\n{}\n", line(""), line(r#","colour":"red""#));
        let err = parse_records(&bad).unwrap_err();
        assert!(
            matches!(&err, LearnError::InvalidRecord { index: 2, field, .. } if field == "colour"),
            "{err}"
        );
        let err = parse_records(&format!("{}\n{{not json\n", line(""))).unwrap_err();
        assert!(matches!(err, LearnError::InvalidRecord { index: 2, .. }));
        let err = parse_records(&line(r#","embedding":[1.0,2.0]"#)).unwrap_err();
        assert!(err.to_string().contains("256"), "{err}");
        // A bad value is named by its field, not by the value.
        let negative = line("").replace(r#""execution_time_ms":5"#, r#""execution_time_ms":-5"#);
        let err = parse_records(&negative).unwrap_err();
        assert!(
            matches!(&err, LearnError::InvalidRecord { index: 1, field, .. } if field == "execution_time_ms"),
            "{err}"
        );
        let nested = line(r#","context_factors":{"k":[1,2,{"x":null}]}"#);
        assert!(
            parse_records(&nested).is_ok(),
            "any JSON is a context factor"
        );
        let bad_rate = line("").replace(r#""success_rate":1.0"#, r#""success_rate":"high""#);
        let err = parse_records(&bad_rate).unwrap_err();
        assert!(
            matches!(&err, LearnError::InvalidRecord { field, .. } if field == "success_rate"),
            "{err}"
        );
    }

    #[test]
    fn prepare_fills_in_embedding_and_time_and_rejects_bad_values() {
        let enc = TaskEncoder::default();
        let now = Utc::now();
        let rec: AgentPerformance = serde_json::from_str(&line("")).unwrap();
        let stored = StoredRecord::prepare(rec.clone(), &enc, now, 1).unwrap();
        assert_eq!(stored.timestamp, to_micros(now));
        assert!((stored.embedding.norm() - 1.0).abs() < 1e-5);

        let mut empty = rec.clone();
        empty.task_description = "  ".into();
        let err = StoredRecord::prepare(empty, &enc, now, 7).unwrap_err();
        assert!(
            matches!(&err, LearnError::InvalidRecord { index: 7, field, .. } if field == "task_description"),
            "{err}"
        );
        let mut nul = rec.clone();
        nul.task_description = "a\0b".into();
        let err = StoredRecord::prepare(nul, &enc, now, 2).unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
        let mut rate = rec;
        rate.success_rate = 1.5;
        let err = StoredRecord::prepare(rate, &enc, now, 3).unwrap_err();
        assert!(
            err.to_string().starts_with("record 3: success_rate"),
            "{err}"
        );
    }
}
