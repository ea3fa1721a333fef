//! The TPM performance monitor (seed `tpm_performance_monitor`): counters by result, and a
//! latency histogram per operation with ops/s, mean, p50, p95 and p99, published on the bus.
//!
//! Histograms are log-linear: eight buckets per power of two from 1 µs to about 2⁴⁰ µs (≈ 12
//! days), so a reported percentile is at most 9% above the true value, in constant memory.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use dsmil_core::events::TpmEvent;
use dsmil_core::tpm::{TpmOperation, TpmResultCode};
use dsmil_core::{Event, EventBus};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Counters of the seed's `tpm_performance_monitor` (latency percentiles come from the
/// TPM layer's histograms).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TpmPerfCounters {
    /// Operations started.
    pub total_operations: u64,
    /// Operations that returned success.
    pub successful_operations: u64,
    /// Operations that failed.
    pub failed_operations: u64,
    /// Failures because the TPM did not answer in time.
    pub timeout_errors: u64,
    /// Failures reported as TPM failure mode or transport errors.
    pub hardware_errors: u64,
    /// Policy check failures.
    pub policy_violations: u64,
    /// Authorisation failures.
    pub authentication_failures: u64,
}

impl TpmPerfCounters {
    /// Counts one finished operation under its result code.
    pub fn record(&mut self, rc: TpmResultCode) {
        self.total_operations += 1;
        if rc.is_success() {
            self.successful_operations += 1;
            return;
        }
        self.failed_operations += 1;
        match rc {
            TpmResultCode::Timeout | TpmResultCode::Retry => self.timeout_errors += 1,
            TpmResultCode::Failure => self.hardware_errors += 1,
            TpmResultCode::PolicyFail | TpmResultCode::PcrChanged => self.policy_violations += 1,
            TpmResultCode::AuthFail | TpmResultCode::BadAuth => self.authentication_failures += 1,
            _ => {}
        }
    }
}

const SUB_BUCKETS: usize = 8;
const OCTAVES: usize = 40;
const BUCKETS: usize = SUB_BUCKETS * OCTAVES + SUB_BUCKETS;

/// A latency histogram in microseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
    sum_us: u128,
    max_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            sum_us: 0,
            max_us: 0,
        }
    }
}

/// Bucket of a value: values below 8 µs get their own bucket; above, eight per octave.
fn bucket(us: u64) -> usize {
    if us < SUB_BUCKETS as u64 {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros() as usize; // ≥ 3
    let sub = ((us >> (octave - 3)) & 7) as usize;
    ((octave - 2) * SUB_BUCKETS + sub).min(BUCKETS - 1)
}

/// Largest value in bucket `b`.
fn upper(b: usize) -> u64 {
    if b < SUB_BUCKETS {
        return b as u64;
    }
    let octave = b / SUB_BUCKETS + 2;
    let sub = (b % SUB_BUCKETS) as u64;
    ((8 + sub + 1) << (octave - 3)) - 1
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket(us)] += 1;
        self.total += 1;
        self.sum_us += u128::from(us);
        self.max_us = self.max_us.max(us);
    }

    /// Recorded values.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Mean, µs.
    pub fn mean_us(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.total as f64
        }
    }

    /// Sum of every recorded value, µs.
    pub fn sum_us(&self) -> u128 {
        self.sum_us
    }

    /// Values known to be at most `bound_us` (buckets entirely below or at the bound) — the
    /// cumulative count of a Prometheus histogram bucket `le = bound`.
    pub fn count_at_most_us(&self, bound_us: u64) -> u64 {
        self.counts
            .iter()
            .enumerate()
            .take_while(|(b, _)| upper(*b) <= bound_us)
            .map(|(_, c)| c)
            .sum()
    }

    /// Largest value, µs.
    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// The `p`-th percentile (0–100), µs: the upper edge of the bucket holding it, capped at the
    /// maximum seen. 0 when empty.
    pub fn percentile_us(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * self.total as f64)
            .ceil()
            .max(1.0) as u64;
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(b).min(self.max_us);
            }
        }
        self.max_us
    }
}

/// One operation's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationStats {
    /// The operation.
    pub operation: TpmOperation,
    /// Times it ran.
    pub count: u64,
    /// Runs per second since the monitor started.
    pub ops_per_second: f64,
    /// Mean latency, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: u64,
    /// 95th percentile, µs.
    pub p95_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Slowest, µs.
    pub max_us: u64,
}

/// Everything the monitor knows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfSnapshot {
    /// Counters by result.
    pub counters: TpmPerfCounters,
    /// Per operation, in a stable order.
    pub operations: Vec<OperationStats>,
}

/// Counts and times TPM operations.
#[derive(Debug)]
pub struct PerfMonitor {
    started: Instant,
    state: Mutex<(TpmPerfCounters, BTreeMap<TpmOperation, LatencyHistogram>)>,
    bus: Option<EventBus>,
}

impl PerfMonitor {
    /// A monitor; every recorded operation is also published on `bus` when given.
    pub fn new(bus: Option<EventBus>) -> Self {
        Self {
            started: Instant::now(),
            state: Mutex::new((TpmPerfCounters::default(), BTreeMap::new())),
            bus,
        }
    }

    /// Records one finished operation.
    pub fn record(&self, operation: TpmOperation, result: TpmResultCode, latency: Duration) {
        {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.0.record(result);
            s.1.entry(operation).or_default().record(latency);
        }
        if let Some(bus) = &self.bus {
            bus.publish(Event::Tpm(TpmEvent {
                timestamp: Utc::now(),
                operation,
                result,
                execution_time_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            }));
        }
    }

    /// A copy of every operation's histogram (for exporters such as Prometheus).
    pub fn histograms(&self) -> BTreeMap<TpmOperation, LatencyHistogram> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// The figures now.
    pub fn snapshot(&self) -> PerfSnapshot {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        PerfSnapshot {
            counters: s.0,
            operations: s
                .1
                .iter()
                .map(|(op, h)| OperationStats {
                    operation: *op,
                    count: h.count(),
                    ops_per_second: h.count() as f64 / elapsed,
                    mean_us: h.mean_us(),
                    p50_us: h.percentile_us(50.0),
                    p95_us: h.percentile_us(95.0),
                    p99_us: h.percentile_us(99.0),
                    max_us: h.max_us(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sort_failures() {
        let mut c = TpmPerfCounters::default();
        for rc in [
            TpmResultCode::Success,
            TpmResultCode::AuthFail,
            TpmResultCode::PolicyFail,
            TpmResultCode::Timeout,
            TpmResultCode::Failure,
            TpmResultCode::NvRange,
        ] {
            c.record(rc);
        }
        assert_eq!(c.total_operations, 6);
        assert_eq!(c.successful_operations, 1);
        assert_eq!(c.failed_operations, 5);
        assert_eq!(
            (
                c.authentication_failures,
                c.policy_violations,
                c.timeout_errors,
                c.hardware_errors
            ),
            (1, 1, 1, 1)
        );
    }
    use proptest::prelude::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for us in [
            0u64,
            1,
            7,
            8,
            9,
            15,
            16,
            17,
            100,
            1000,
            123_456,
            10_000_000,
            u64::MAX / 2,
        ] {
            let b = bucket(us);
            assert!(b >= last, "{us}");
            last = b;
            assert!(
                upper(b) >= us || b == BUCKETS - 1,
                "{us} above the edge {} of bucket {b}",
                upper(b)
            );
        }
    }

    #[test]
    fn counters_sort_failures_by_kind() {
        let m = PerfMonitor::new(None);
        m.record(
            TpmOperation::SignEcc256,
            TpmResultCode::Success,
            Duration::from_millis(2),
        );
        m.record(
            TpmOperation::SignEcc256,
            TpmResultCode::PolicyFail,
            Duration::from_millis(3),
        );
        m.record(
            TpmOperation::GetRandom,
            TpmResultCode::AuthFail,
            Duration::from_micros(40),
        );
        let s = m.snapshot();
        assert_eq!(
            (
                s.counters.total_operations,
                s.counters.successful_operations
            ),
            (3, 1)
        );
        assert_eq!(
            (
                s.counters.policy_violations,
                s.counters.authentication_failures
            ),
            (1, 1)
        );
        assert_eq!(s.operations.len(), 2);
        let sign = s
            .operations
            .iter()
            .find(|o| o.operation == TpmOperation::SignEcc256)
            .unwrap();
        assert_eq!(sign.count, 2);
        assert_eq!(sign.max_us, 3000);
    }

    proptest! {
        #[test]
        fn percentiles_are_within_a_ninth_above_the_truth(
            values in proptest::collection::vec(0u64..50_000_000, 1..300), p in 1f64..100.0,
        ) {
            let mut h = LatencyHistogram::default();
            for v in &values {
                h.record(Duration::from_micros(*v));
            }
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
            let truth = sorted[rank - 1];
            let got = h.percentile_us(p);
            prop_assert!(got >= truth, "p{} got {} truth {}", p, got, truth);
            prop_assert!(got as f64 <= truth as f64 * 1.125 + 1.0, "p{} got {} truth {}", p, got, truth);
        }
    }
}
