//! Operation families ([`OpKind`]) and their counters ([`OpCounters`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// A family of accelerator operations; its [`OpKind::name`] keys the counters and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Memory copy.
    Copy,
    /// Memory set / fill.
    Set,
    /// Memory compare.
    Compare,
    /// Indexed gather.
    Gather,
    /// Dot products.
    Dot,
    /// Element-wise vector arithmetic.
    VectorAdd,
    /// Statistics (sum, mean, variance, min/max).
    Statistics,
    /// Matrix multiplication.
    Matmul,
    /// Similarity top-k.
    TopK,
    /// Scans over quantised vectors.
    QuantizedScan,
    /// SHA-256 hashing.
    Sha256,
    /// SHA-512 hashing.
    Sha512,
    /// AES encryption / decryption.
    Aes,
    /// ChaCha20 encryption / decryption.
    #[serde(rename = "chacha20")]
    ChaCha20,
    /// Anything else.
    Other,
}

impl OpKind {
    /// Every kind, in order.
    pub const ALL: [OpKind; 15] = [
        OpKind::Copy,
        OpKind::Set,
        OpKind::Compare,
        OpKind::Gather,
        OpKind::Dot,
        OpKind::VectorAdd,
        OpKind::Statistics,
        OpKind::Matmul,
        OpKind::TopK,
        OpKind::QuantizedScan,
        OpKind::Sha256,
        OpKind::Sha512,
        OpKind::Aes,
        OpKind::ChaCha20,
        OpKind::Other,
    ];

    /// The snake_case name used as the counter key and the event's kernel name.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Copy => "copy",
            OpKind::Set => "set",
            OpKind::Compare => "compare",
            OpKind::Gather => "gather",
            OpKind::Dot => "dot",
            OpKind::VectorAdd => "vector_add",
            OpKind::Statistics => "statistics",
            OpKind::Matmul => "matmul",
            OpKind::TopK => "top_k",
            OpKind::QuantizedScan => "quantized_scan",
            OpKind::Sha256 => "sha256",
            OpKind::Sha512 => "sha512",
            OpKind::Aes => "aes",
            OpKind::ChaCha20 => "chacha20",
            OpKind::Other => "other",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the engine has done for one [`OpKind`] since start (or the last reset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OpCounters {
    /// Jobs that completed (returned a value).
    pub ops: u64,
    /// Jobs that panicked.
    pub failures: u64,
    /// Bytes declared by the completed jobs.
    pub bytes: u64,
    /// Time workers spent running jobs of this kind, completed or failed.
    pub busy_nanos: u64,
    /// `bytes` per second of busy time (0 when nothing ran).
    pub throughput_bytes_per_second: f64,
}

/// Minimum time between two throughput events of one kind.
pub const EVENT_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
struct Raw {
    ops: u64,
    failures: u64,
    bytes: u64,
    busy_nanos: u64,
    last_event: Option<Instant>,
    /// `bytes` and `busy_nanos` when the last event was due: the next event's throughput is
    /// over what ran since.
    reported_bytes: u64,
    reported_busy_nanos: u64,
}

impl Raw {
    fn snapshot(&self) -> OpCounters {
        let throughput = if self.busy_nanos == 0 {
            0.0
        } else {
            self.bytes as f64 / (self.busy_nanos as f64 / 1e9)
        };
        OpCounters {
            ops: self.ops,
            failures: self.failures,
            bytes: self.bytes,
            busy_nanos: self.busy_nanos,
            throughput_bytes_per_second: throughput,
        }
    }
}

/// The engine's counters, shared by the workers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    kinds: Mutex<BTreeMap<OpKind, Raw>>,
}

impl Counters {
    /// Records one finished job. When an event is due (at most one per kind per
    /// [`EVENT_INTERVAL`]) returns the kind's throughput since its previous event — bytes per
    /// second of busy time — so a live chart shows the present, not the average since start.
    pub(crate) fn record(
        &self,
        kind: OpKind,
        bytes: u64,
        busy: Duration,
        succeeded: bool,
        now: Instant,
    ) -> Option<f64> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        let raw = kinds.entry(kind).or_default();
        if succeeded {
            raw.ops += 1;
            raw.bytes = raw.bytes.saturating_add(bytes);
        } else {
            raw.failures += 1;
        }
        let nanos = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX);
        raw.busy_nanos = raw.busy_nanos.saturating_add(nanos);
        let due = raw
            .last_event
            .is_none_or(|last| now.duration_since(last) >= EVENT_INTERVAL);
        if !due {
            return None;
        }
        raw.last_event = Some(now);
        let bytes = raw.bytes - raw.reported_bytes;
        let busy = raw.busy_nanos - raw.reported_busy_nanos;
        (raw.reported_bytes, raw.reported_busy_nanos) = (raw.bytes, raw.busy_nanos);
        Some(if busy == 0 {
            0.0
        } else {
            bytes as f64 / (busy as f64 / 1e9)
        })
    }

    /// Every kind that ran at least one job.
    pub(crate) fn snapshot(&self) -> BTreeMap<&'static str, OpCounters> {
        let kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        kinds
            .iter()
            .map(|(k, raw)| (k.name(), raw.snapshot()))
            .collect()
    }

    /// Forgets everything (the seed's `reset_performance_counters`).
    pub(crate) fn reset(&self) {
        self.kinds.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        let names: std::collections::BTreeSet<_> = OpKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), OpKind::ALL.len());
        for k in OpKind::ALL {
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::from(k.name())
            );
        }
    }

    #[test]
    fn counters_accumulate_and_rate_limit_events() {
        let c = Counters::default();
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let first = c.record(OpKind::Dot, 1000, second, true, t0).unwrap();
        assert_eq!(first, 1000.0);
        assert!(
            c.record(OpKind::Dot, 1000, second, false, t0 + EVENT_INTERVAL / 2)
                .is_none()
        );
        assert!(
            c.record(OpKind::Sha256, 64, second, true, t0).is_some(),
            "per kind"
        );
        // Since the first event: one failed second and one second that did 3000 bytes.
        let later = c
            .record(OpKind::Dot, 3000, second, true, t0 + EVENT_INTERVAL)
            .unwrap();
        assert_eq!(later, 1500.0);
        let dot = c.snapshot()["dot"];
        assert_eq!((dot.ops, dot.failures, dot.bytes), (2, 1, 4000));
        assert_eq!(dot.busy_nanos, 3_000_000_000);
        assert_eq!(dot.throughput_bytes_per_second, 4000.0 / 3.0, "since start");
        let snap = c.snapshot();
        assert_eq!(snap.keys().copied().collect::<Vec<_>>(), ["dot", "sha256"]);
        c.reset();
        assert!(c.snapshot().is_empty());
    }
}
