//! The task encoder: text, type and context → one 256-d unit vector, deterministically.
//!
//! Signed feature hashing (the "hashing trick") of:
//! - word unigrams (weight 1.0) and bigrams (0.7) of the lower-cased description, split on
//!   anything that is not a letter or digit — bigrams keep some word order;
//! - character trigrams of each word with boundary marks (`#log#` → `#lo`, `log`, `og#`, weight
//!   0.35) — they make inflections and small typos land close (`hash`/`hashes`);
//! - the task type as one feature (`type:hash`, weight 2.0), so tasks of one kind cluster;
//! - each context entry as `ctx:key=value` (weight 0.8); numbers are bucketed by magnitude
//!   (`ctx:size~2^12`), so 4000 and 4096 share a feature and 4 does not.
//!
//! Each feature is hashed with 64-bit FNV-1a (stable across runs, platforms and Rust versions):
//! the low bits pick one of the 256 components, bit 63 picks the sign, so unrelated features
//! cancel on average instead of piling up. Repeated features get sublinear weight
//! (`1 + ln(count)`), and the vector is L2-normalised, so cosine similarity equals the dot
//! product. No model, no download, no state.

use std::collections::BTreeMap;

use dsmil_core::workflow::Metadata;
use dsmil_core::{EMBEDDING_DIM, Embedding};
use thiserror::Error;

/// Why a task could not be encoded.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EncodeError {
    /// The description has no letters or digits.
    #[error("task_description must contain at least one letter or digit")]
    EmptyDescription,
    /// The result was not a valid embedding (cannot happen for finite weights; kept typed).
    #[error(transparent)]
    Embedding(#[from] dsmil_core::EmbeddingError),
}

/// Feature weights of the encoder. The defaults are documented in the module text.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEncoder {
    /// Word unigrams.
    pub unigram_weight: f32,
    /// Word bigrams.
    pub bigram_weight: f32,
    /// Character trigrams.
    pub trigram_weight: f32,
    /// The task type feature.
    pub type_weight: f32,
    /// Each context entry.
    pub context_weight: f32,
}

impl Default for TaskEncoder {
    fn default() -> Self {
        Self {
            unigram_weight: 1.0,
            bigram_weight: 0.7,
            trigram_weight: 0.35,
            type_weight: 2.0,
            context_weight: 0.8,
        }
    }
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Lower-cased words of `text` (runs of letters and digits).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The feature of one context value: numbers by power-of-two bucket, the rest as text.
fn context_feature(key: &str, value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(0.0) => format!("ctx:{key}=0"),
            Some(x) if x.is_finite() => {
                let sign = if x < 0.0 { "-" } else { "" };
                format!("ctx:{key}~{sign}2^{}", x.abs().log2().round() as i64)
            }
            _ => format!("ctx:{key}=nan"),
        },
        serde_json::Value::String(s) => format!("ctx:{key}={}", s.to_lowercase()),
        other => format!("ctx:{key}={other}"),
    }
}

impl TaskEncoder {
    /// Embeds a task. `context` may be `None`; its keys are visited in sorted order, so equal
    /// maps always give equal embeddings.
    pub fn encode(
        &self,
        description: &str,
        task_type: &str,
        context: Option<&Metadata>,
    ) -> Result<Embedding, EncodeError> {
        let words = words(description);
        if words.is_empty() {
            return Err(EncodeError::EmptyDescription);
        }
        // Feature → (weight, count); BTreeMap keeps the accumulation order fixed.
        let mut features: BTreeMap<String, (f32, u32)> = BTreeMap::new();
        let mut add = |feature: String, weight: f32| {
            let entry = features.entry(feature).or_insert((weight, 0));
            entry.1 += 1;
        };
        for w in &words {
            add(format!("w:{w}"), self.unigram_weight);
            let marked: Vec<char> = format!("#{w}#").chars().collect();
            for tri in marked.windows(3) {
                add(
                    format!("c:{}", tri.iter().collect::<String>()),
                    self.trigram_weight,
                );
            }
        }
        for pair in words.windows(2) {
            add(format!("b:{} {}", pair[0], pair[1]), self.bigram_weight);
        }
        let task_type = task_type.trim().to_lowercase();
        if !task_type.is_empty() {
            add(format!("type:{task_type}"), self.type_weight);
        }
        if let Some(context) = context {
            let sorted: BTreeMap<&String, &serde_json::Value> = context.iter().collect();
            for (key, value) in sorted {
                add(
                    context_feature(&key.to_lowercase(), value),
                    self.context_weight,
                );
            }
        }
        let mut v = vec![0f32; EMBEDDING_DIM];
        for (feature, (weight, count)) in &features {
            let h = fnv1a(feature.as_bytes());
            let index = (h % EMBEDDING_DIM as u64) as usize;
            let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
            v[index] += sign * weight * (1.0 + (*count as f32).ln());
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            for x in &mut v {
                *x /= norm;
            }
        }
        Ok(Embedding::new(v)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cos(a: &Embedding, b: &Embedding) -> f32 {
        a.as_slice()
            .iter()
            .zip(b.as_slice())
            .map(|(x, y)| x * y)
            .sum()
    }

    fn enc(text: &str, ty: &str) -> Embedding {
        TaskEncoder::default().encode(text, ty, None).unwrap()
    }

    #[test]
    fn empty_descriptions_are_refused() {
        let e = TaskEncoder::default();
        assert_eq!(e.encode("", "x", None), Err(EncodeError::EmptyDescription));
        assert_eq!(
            e.encode("  ?! ", "x", None),
            Err(EncodeError::EmptyDescription)
        );
    }

    #[test]
    fn stable_across_runs_golden_values() {
        // Fixed by the FNV-1a hashing: any change to the features or hashing shows here, which
        // would silently invalidate every stored embedding.
        let e = enc("Hash the audit log", "hash");
        let nonzero: Vec<(usize, i32)> = e
            .as_slice()
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .take(4)
            .map(|(i, v)| (i, (v * 1e4).round() as i32))
            .collect();
        assert_eq!(nonzero, GOLDEN);
    }

    /// The first four non-zero components of `enc("Hash the audit log", "hash")`, ×10⁴.
    const GOLDEN: [(usize, i32); 4] = [(4, -1030), (8, 1030), (15, 1030), (40, -1030)];

    #[test]
    fn related_tasks_are_closer_than_unrelated_ones() {
        let a = enc("hash the audit log files", "hash");
        let b = enc("compute hashes of the audit logs", "hash");
        let c = enc("render the dashboard chart", "ui");
        assert!(
            cos(&a, &b) > cos(&a, &c) + 0.2,
            "{} vs {}",
            cos(&a, &b),
            cos(&a, &c)
        );
        // The type alone pulls tasks together.
        assert!(
            cos(&enc("alpha", "build"), &enc("omega", "build"))
                > cos(&enc("alpha", "build"), &enc("omega", "test"))
        );
    }

    #[test]
    fn context_numbers_bucket_by_magnitude() {
        let e = TaskEncoder::default();
        let ctx = |n: f64| {
            serde_json::json!({ "size": n })
                .as_object()
                .cloned()
                .unwrap()
        };
        let a = e.encode("copy", "io", Some(&ctx(4000.0))).unwrap();
        let b = e.encode("copy", "io", Some(&ctx(4096.0))).unwrap();
        let c = e.encode("copy", "io", Some(&ctx(4.0))).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    proptest! {
        #[test]
        fn deterministic_and_normalised(text in "[a-zA-Z0-9 ,.]{0,200}", ty in "[a-z]{0,10}") {
            let e = TaskEncoder::default();
            match e.encode(&text, &ty, None) {
                Ok(v) => {
                    prop_assert_eq!(&v, &e.encode(&text, &ty, None).unwrap());
                    prop_assert!((v.norm() - 1.0).abs() < 1e-4);
                }
                Err(err) => prop_assert_eq!(err, EncodeError::EmptyDescription),
            }
        }

        #[test]
        fn never_panics_on_any_text(text in "\\PC{0,300}", ty in "\\PC{0,20}") {
            let _ = TaskEncoder::default().encode(&text, &ty, None);
        }
    }
}
