//! The periodic system collector task: samples, publishes `Event::SystemHealth`, backs off
//! exponentially while sampling fails and reports its state for `/api/status`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dsmil_core::{Event, EventBus, SystemHealth};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{CollectError, SystemCollector};

/// Something that produces system health samples: [`SystemCollector`], or a scripted source
/// in tests. Sampling may block briefly (file reads, `statvfs`); the runner calls it on
/// Tokio's blocking pool.
pub trait HealthSource: Send + 'static {
    /// Takes one sample.
    fn sample(&mut self) -> Result<SystemHealth, CollectError>;
}

impl HealthSource for SystemCollector {
    fn sample(&mut self) -> Result<SystemHealth, CollectError> {
        SystemCollector::sample(self)
    }
}

/// A background task was started outside a Tokio runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("no Tokio runtime is running; start the task from inside one")]
pub struct NoRuntime;

/// Upper bound of the back-off delay, whatever the interval: one minute.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Shortest sampling interval accepted; shorter ones are raised to it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The delay before the next sample after `consecutive_failures` failures in a row:
/// `interval` when there were none, otherwise `interval × 2ⁿ` capped at
/// `min(10 × interval, 60 s)` — but never below `interval` itself, so a long interval is
/// never shortened by failures.
pub fn backoff_delay(interval: Duration, consecutive_failures: u32) -> Duration {
    if consecutive_failures == 0 {
        return interval;
    }
    let cap = interval.saturating_mul(10).min(MAX_BACKOFF).max(interval);
    let factor = 1u32.checked_shl(consecutive_failures).unwrap_or(u32::MAX);
    interval.saturating_mul(factor).min(cap)
}

/// What the collector task has been doing, for `/api/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectorStatus {
    /// Whether the task is still running.
    pub running: bool,
    /// Samples taken and published.
    pub samples: u64,
    /// Failed samples since start.
    pub failures: u64,
    /// Failed samples in a row (0 when the last sample worked).
    pub consecutive_failures: u32,
    /// The last error, as text (kept after recovery, see `last_error_at`).
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// When the last sample succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The delay until the next sample, ms (grows while sampling fails).
    pub next_sample_in_ms: u64,
    /// The last successful sample.
    pub last_sample: Option<SystemHealth>,
}

/// Owns the collector task. Stop it with [`CollectorHandle::shutdown`]; dropping the handle
/// stops it too (at its next wake-up), so keep the handle for as long as it should run.
#[derive(Debug)]
#[must_use = "dropping the handle stops the collector"]
pub struct CollectorHandle {
    stop: watch::Sender<bool>,
    status: watch::Receiver<CollectorStatus>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl CollectorHandle {
    /// The current status.
    pub fn status(&self) -> CollectorStatus {
        self.status.borrow().clone()
    }

    /// A receiver of the status that can be cloned into request handlers; it sees every
    /// update (`changed().await`) and keeps the last status after the task ends.
    pub fn status_receiver(&self) -> watch::Receiver<CollectorStatus> {
        self.status.clone()
    }

    /// Asks the task to stop and waits until it has.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(task) = task else { return };
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "the system collector task ended abnormally");
        }
    }
}

/// Starts a task that samples `source` at once and then every `interval`, publishing each
/// sample as `Event::SystemHealth` on `bus`.
///
/// When a sample fails the error is logged (`warn`), nothing is published for that tick and
/// the next attempt waits [`backoff_delay`]; the first success restores the normal interval.
/// Delays are measured from the start of one attempt to the start of the next.
pub fn spawn_system_collector(
    source: impl HealthSource,
    interval: Duration,
    bus: EventBus,
) -> Result<CollectorHandle, NoRuntime> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| NoRuntime)?;
    let (stop, stop_rx) = watch::channel(false);
    let (status_tx, status) = watch::channel(CollectorStatus {
        running: true,
        ..CollectorStatus::default()
    });
    let task = runtime.spawn(run(
        source,
        interval.max(MIN_INTERVAL),
        bus,
        stop_rx,
        status_tx,
    ));
    Ok(CollectorHandle {
        stop,
        status,
        task: std::sync::Mutex::new(Some(task)),
    })
}

async fn run<S: HealthSource>(
    source: S,
    interval: Duration,
    bus: EventBus,
    mut stop: watch::Receiver<bool>,
    status: watch::Sender<CollectorStatus>,
) {
    let mut source = Some(source);
    loop {
        let started = Instant::now();
        let Some(mut s) = source.take() else {
            break;
        };
        let joined = tokio::task::spawn_blocking(move || {
            let result = s.sample();
            (s, result)
        })
        .await;
        let (s, result) = match joined {
            Ok(pair) => pair,
            Err(e) => {
                // Only a panic inside the source gets here; the source is lost with it.
                tracing::error!(error = %e, "the system health source panicked; collector stopped");
                status.send_modify(|st| {
                    st.last_error = Some(format!("the health source panicked: {e}"));
                    st.last_error_at = Some(Utc::now());
                });
                break;
            }
        };
        source = Some(s);
        let delay = match result {
            Ok(health) => {
                bus.publish(Event::SystemHealth(health.clone()));
                let delay = interval;
                status.send_modify(|st| {
                    if st.consecutive_failures > 0 {
                        tracing::info!(
                            after_failures = st.consecutive_failures,
                            "system health sampling recovered"
                        );
                    }
                    st.samples = st.samples.saturating_add(1);
                    st.consecutive_failures = 0;
                    st.last_success_at = Some(health.timestamp);
                    st.next_sample_in_ms = millis(delay);
                    st.last_sample = Some(health);
                });
                delay
            }
            Err(e) => {
                let mut delay = interval;
                status.send_modify(|st| {
                    st.failures = st.failures.saturating_add(1);
                    st.consecutive_failures = st.consecutive_failures.saturating_add(1);
                    delay = backoff_delay(interval, st.consecutive_failures);
                    tracing::warn!(
                        error = %e,
                        consecutive_failures = st.consecutive_failures,
                        retry_in_ms = millis(delay),
                        "system health sample failed"
                    );
                    st.last_error = Some(e.to_string());
                    st.last_error_at = Some(Utc::now());
                    st.next_sample_in_ms = millis(delay);
                });
                delay
            }
        };
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            _ = tokio::time::sleep_until(started + delay) => {}
        }
    }
    status.send_modify(|st| st.running = false);
}

/// Resolves when a stop is requested or the handle is dropped.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender (the handle) is gone: stop as well.
    let _ = stop.wait_for(|s| *s).await;
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
