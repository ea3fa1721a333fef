//! Retries: exponential backoff with full jitter, a predicate for what is retryable, and a
//! budget so retries cannot multiply load during an outage.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::agent::AgentError;

/// How many attempts and how long between them. It has no defaults of its own: an agent's
/// policy is built from its [`RetryConfig`](crate::config::RetryConfig) by
/// [`RetryConfig::policy`](crate::config::RetryConfig::policy), with the attempts its task asks
/// for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retries).
    pub max_attempts: u32,
    /// Backoff before the first retry.
    pub base_delay: Duration,
    /// Cap of any backoff.
    pub max_delay: Duration,
    /// Growth per retry.
    pub multiplier: f64,
    /// Spread of each delay (0–1): drawn from `[(1 − jitter) · ceiling, ceiling]`; 1.0 is
    /// "full jitter" (uniform in `[0, ceiling]`), which spreads retries of many clients best.
    pub jitter: f64,
}

impl RetryPolicy {
    /// The backoff cap before retry number `retry` (1 for the first retry):
    /// `min(max_delay, base_delay · multiplier^(retry−1))`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let growth = self
            .multiplier
            .max(1.0)
            .powi(retry.saturating_sub(1).min(64) as i32);
        let ms = (self.base_delay.as_secs_f64() * growth).min(self.max_delay.as_secs_f64());
        Duration::from_secs_f64(if ms.is_finite() {
            ms.max(0.0)
        } else {
            self.max_delay.as_secs_f64()
        })
    }

    /// The backoff before retry number `retry`, with `unit` (a number in [0, 1)) placing it
    /// in `[(1 − jitter) · ceiling, ceiling]`.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            1.0
        };
        self.ceiling(retry)
            .mul_f64(1.0 - jitter * (1.0 - unit.clamp(0.0, 1.0)))
    }
}

/// A token bucket limiting retries to a share of first attempts (plus a small floor per
/// second), as Finagle's and gRPC's retry budgets do: in an outage nearly every call fails, and
/// without a budget each would be tried `max_attempts` times.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    floor_per_second: f64,
    cap: f64,
    /// First attempts not yet credited: counted without a lock (every task makes one), turned
    /// into tokens when a retry asks.
    deposits: AtomicU64,
    state: Mutex<(f64, Instant)>,
}

impl RetryBudget {
    /// Allows retries up to `ratio` of first attempts (e.g. 0.2) plus `floor_per_second`,
    /// banking at most `cap` retries.
    pub fn new(ratio: f64, floor_per_second: f64, cap: f64) -> Self {
        Self {
            ratio: ratio.max(0.0),
            floor_per_second: floor_per_second.max(0.0),
            cap: cap.max(1.0),
            deposits: AtomicU64::new(0),
            state: Mutex::new((cap.max(1.0), Instant::now())),
        }
    }

    fn refill(&self, state: &mut (f64, Instant), now: Instant) {
        let elapsed = now.saturating_duration_since(state.1).as_secs_f64();
        let earned = self.deposits.swap(0, Ordering::AcqRel) as f64 * self.ratio;
        state.0 = (state.0 + elapsed * self.floor_per_second + earned).min(self.cap);
        state.1 = now;
    }

    /// Notes a first attempt (earns `ratio` of a retry).
    pub fn deposit(&self) {
        self.deposits.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn withdraw(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.refill(&mut s, Instant::now());
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Default for RetryBudget {
    /// 20% of first attempts, plus 10 retries per second, at most 100 banked.
    fn default() -> Self {
        Self::new(0.2, 10.0, 100.0)
    }
}

/// A random number in [0, 1) from the OS (jitter needs no more).
fn unit() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// What [`retry`] did.
#[derive(Debug)]
pub struct Attempts<T> {
    /// The last attempt's outcome.
    pub outcome: Result<T, AgentError>,
    /// Attempts made.
    pub attempts: u32,
}

/// Runs `attempt(n)` (n from 1) until it succeeds, fails with a non-retryable error, runs out
/// of attempts, or the budget refuses a retry (then the error is wrapped in
/// [`AgentError::RetryBudgetExhausted`]). Sleeps the jittered backoff between attempts.
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    budget: Option<&RetryBudget>,
    mut attempt: F,
) -> Attempts<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, AgentError>>,
{
    if let Some(b) = budget {
        b.deposit();
    }
    let max = policy.max_attempts.max(1);
    let mut n = 1;
    loop {
        let outcome = attempt(n).await;
        let err = match outcome {
            Ok(v) => {
                return Attempts {
                    outcome: Ok(v),
                    attempts: n,
                };
            }
            Err(e) => e,
        };
        if n >= max || !err.is_retryable() {
            return Attempts {
                outcome: Err(err),
                attempts: n,
            };
        }
        if let Some(b) = budget
            && !b.withdraw()
        {
            return Attempts {
                outcome: Err(AgentError::RetryBudgetExhausted(Box::new(err))),
                attempts: n,
            };
        }
        tokio::time::sleep(policy.delay(n, unit())).await;
        n += 1;
    }
}
