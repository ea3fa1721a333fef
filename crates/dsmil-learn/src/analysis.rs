//! Statistics over stored history: per-agent trends and anomalies.
//!
//! Pure functions over records, so both stores give the same answers.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use dsmil_core::AgentId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::record::TaskSummary;

/// Summary statistics of one metric over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricTrend {
    /// Mean value.
    pub mean: f64,
    /// Least-squares slope, in units per hour (positive: rising).
    pub slope_per_hour: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Which way an agent is heading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrendDirection {
    /// Success rising or time falling, beyond noise.
    Improving,
    /// Success falling or time rising, beyond noise.
    Degrading,
    /// Neither.
    Stable,
    /// Too few runs to tell (fewer than [`MIN_TREND_SAMPLES`]).
    InsufficientData,
}

/// Fewest runs a trend is computed from.
pub const MIN_TREND_SAMPLES: usize = 3;

/// Answer of `analyze_performance_trends` (seed name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendReport {
    /// The agent.
    pub agent_id: AgentId,
    /// The window, in hours back from now.
    pub time_window_hours: u32,
    /// Runs in the window.
    pub samples: usize,
    /// Success rate statistics.
    pub success_rate: Option<MetricTrend>,
    /// Execution time statistics, ms.
    pub execution_time_ms: Option<MetricTrend>,
    /// The verdict.
    pub direction: TrendDirection,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Least-squares slope of `(x, y)` pairs; 0 when x does not vary.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= f64::EPSILON { 0.0 } else { sxy / sxx }
}

fn metric(points: &[(f64, f64)]) -> MetricTrend {
    let mut values: Vec<f64> = points.iter().map(|p| p.1).collect();
    values.sort_by(f64::total_cmp);
    MetricTrend {
        mean: values.iter().sum::<f64>() / values.len().max(1) as f64,
        slope_per_hour: slope(points),
        p50: percentile(&values, 50.0),
        p95: percentile(&values, 95.0),
        p99: percentile(&values, 99.0),
    }
}

/// Whether a slope moves the metric by more than `relative` of its mean over the window.
fn significant(trend: &MetricTrend, span_hours: f64, floor: f64, relative: f64) -> i8 {
    let change = trend.slope_per_hour * span_hours;
    let scale = trend.mean.abs().max(floor);
    if change > relative * scale {
        1
    } else if change < -relative * scale {
        -1
    } else {
        0
    }
}

/// Trend of `records` (one agent's runs in the window, any order) as of `now`.
pub fn trend(
    agent_id: AgentId,
    time_window_hours: u32,
    records: &[TaskSummary],
    now: DateTime<Utc>,
) -> TrendReport {
    let hours = |t: DateTime<Utc>| (t - now).num_milliseconds() as f64 / 3_600_000.0;
    let success: Vec<(f64, f64)> = records
        .iter()
        .map(|r| (hours(r.timestamp), r.success_rate))
        .collect();
    let time: Vec<(f64, f64)> = records
        .iter()
        .map(|r| (hours(r.timestamp), r.execution_time_ms as f64))
        .collect();
    if records.len() < MIN_TREND_SAMPLES {
        return TrendReport {
            agent_id,
            time_window_hours,
            samples: records.len(),
            success_rate: (!records.is_empty()).then(|| metric(&success)),
            execution_time_ms: (!records.is_empty()).then(|| metric(&time)),
            direction: TrendDirection::InsufficientData,
        };
    }
    let (lo, hi) = success.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    let span = (hi - lo).max(1e-9);
    let s = metric(&success);
    let t = metric(&time);
    // A change of 10% of the mean across the window counts (success uses a 0.1 floor).
    let vote = significant(&s, span, 0.1, 0.1) - significant(&t, span, 1.0, 0.1);
    let direction = match vote.signum() {
        1 => TrendDirection::Improving,
        -1 => TrendDirection::Degrading,
        _ => TrendDirection::Stable,
    };
    TrendReport {
        agent_id,
        time_window_hours,
        samples: records.len(),
        success_rate: Some(s),
        execution_time_ms: Some(t),
        direction,
    }
}

/// Which metric of a run was unusual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyMetric {
    /// Wall time.
    ExecutionTimeMs,
    /// Success rate.
    SuccessRate,
}

/// One run that deviates from its agent's recent behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The run.
    pub record_id: Uuid,
    /// Its agent.
    pub agent_id: AgentId,
    /// Its task type.
    pub task_type: String,
    /// When it ran.
    pub timestamp: DateTime<Utc>,
    /// The unusual metric.
    pub metric: AnomalyMetric,
    /// Its value.
    pub value: f64,
    /// Mean of the agent's preceding runs (the rolling window).
    pub baseline_mean: f64,
    /// Their standard deviation (with a floor, see [`AnomalySettings`]).
    pub baseline_std_dev: f64,
    /// `(value − mean) / std_dev`.
    pub z_score: f64,
}

/// Knobs of anomaly detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalySettings {
    /// |z| above this is an anomaly. Seed default: 2.0.
    pub threshold_std_devs: f64,
    /// Preceding runs per agent the baseline is computed over. Default: 50.
    pub window: usize,
    /// Fewest preceding runs before a run is judged. Default: 10.
    pub min_baseline: usize,
    /// Smallest standard deviation used for time, ms (a perfectly steady agent still has a
    /// scale). Default: 1.0.
    pub time_std_floor_ms: f64,
    /// Smallest standard deviation used for success rate. Default: 0.01.
    pub success_std_floor: f64,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        Self {
            threshold_std_devs: 2.0,
            window: 50,
            min_baseline: 10,
            time_std_floor_ms: 1.0,
            success_std_floor: 0.01,
        }
    }
}

/// A sliding window with running sums.
struct Rolling {
    values: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
}

impl Rolling {
    fn new() -> Self {
        Self {
            values: VecDeque::new(),
            sum: 0.0,
            sum_sq: 0.0,
        }
    }

    fn push(&mut self, v: f64, cap: usize) {
        self.values.push_back(v);
        self.sum += v;
        self.sum_sq += v * v;
        while self.values.len() > cap {
            if let Some(old) = self.values.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
    }

    fn mean_std(&self) -> (f64, f64) {
        let n = self.values.len() as f64;
        // Recomputed exactly rather than from the running sums, which drift with cancellation.
        let mean = self.values.iter().sum::<f64>() / n;
        let var = self.values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        (mean, var.max(0.0).sqrt())
    }
}

/// Runs in `records` whose time or success deviates from their agent's preceding runs by more
/// than the threshold; ordered by |z|, largest first.
pub fn anomalies(records: &[TaskSummary], settings: &AnomalySettings) -> Vec<Anomaly> {
    let mut by_agent: BTreeMap<&AgentId, Vec<&TaskSummary>> = BTreeMap::new();
    for r in records {
        by_agent.entry(&r.agent_id).or_default().push(r);
    }
    let window = settings.window.max(2);
    let mut found = Vec::new();
    for runs in by_agent.values_mut() {
        runs.sort_by_key(|r| r.timestamp);
        let mut time = Rolling::new();
        let mut success = Rolling::new();
        for r in runs.iter() {
            let t = r.execution_time_ms as f64;
            if time.values.len() >= settings.min_baseline.max(2) {
                for (metric, value, rolling, floor) in [
                    (
                        AnomalyMetric::ExecutionTimeMs,
                        t,
                        &time,
                        settings.time_std_floor_ms,
                    ),
                    (
                        AnomalyMetric::SuccessRate,
                        r.success_rate,
                        &success,
                        settings.success_std_floor,
                    ),
                ] {
                    let (mean, std) = rolling.mean_std();
                    let std = std.max(floor).max(f64::MIN_POSITIVE);
                    let z = (value - mean) / std;
                    if z.is_finite() && z.abs() > settings.threshold_std_devs {
                        found.push(Anomaly {
                            record_id: r.record_id,
                            agent_id: r.agent_id.clone(),
                            task_type: r.task_type.clone(),
                            timestamp: r.timestamp,
                            metric,
                            value,
                            baseline_mean: mean,
                            baseline_std_dev: std,
                            z_score: z,
                        });
                    }
                }
            }
            time.push(t, window);
            success.push(r.success_rate, window);
        }
    }
    found.sort_by(|a, b| b.z_score.abs().total_cmp(&a.z_score.abs()));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_slopes() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        let pts: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i), 3.0 * f64::from(i) + 1.0))
            .collect();
        assert!((slope(&pts) - 3.0).abs() < 1e-12);
        assert_eq!(slope(&[(1.0, 2.0), (1.0, 5.0)]), 0.0);
    }
}
