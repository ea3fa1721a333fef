//! The breaker built from only the seed's three fields behaves as the seed's `CircuitBreaker`:
//! a port of the seed's class (below) and the real breaker are driven through the same random
//! call sequences — outcomes, call durations up to 12 s (within the seed's 30 s task timeout;
//! the seed has no slow-call rule), time passing — and must agree on every admission and every
//! state.

use std::time::Duration;

use dsmil_coord::config::CircuitBreakerConfig;
use dsmil_coord::resilience::{BreakerState, CircuitBreaker};
use proptest::prelude::*;
use tokio::time::Instant;

/// The seed's `CircuitBreaker`, line for line (times in ms).
struct SeedBreaker {
    failure_threshold: u32,
    recovery_timeout_ms: u64,
    success_threshold: u32,
    failure_count: u32,
    success_count: u32,
    last_failure_time: Option<u64>,
    state: BreakerState,
}

impl SeedBreaker {
    fn new(failure_threshold: u32, recovery_timeout_ms: u64, success_threshold: u32) -> Self {
        Self {
            failure_threshold,
            recovery_timeout_ms,
            success_threshold,
            failure_count: 0,
            success_count: 0,
            last_failure_time: None,
            state: BreakerState::Closed,
        }
    }

    /// `call_async`'s admission: false where the seed raises `CircuitBreakerOpenException`.
    fn admit(&mut self, now: u64) -> bool {
        if self.state == BreakerState::Open {
            let should_reset = self
                .last_failure_time
                .is_none_or(|t| now - t >= self.recovery_timeout_ms);
            if !should_reset {
                return false;
            }
            self.state = BreakerState::HalfOpen;
            self.success_count = 0;
        }
        true
    }

    fn on_success(&mut self) {
        match self.state {
            BreakerState::HalfOpen => {
                self.success_count += 1;
                if self.success_count >= self.success_threshold {
                    self.state = BreakerState::Closed;
                    self.failure_count = 0;
                }
            }
            BreakerState::Closed => self.failure_count = 0,
            BreakerState::Open => {}
        }
    }

    fn on_failure(&mut self, now: u64) {
        self.failure_count += 1;
        self.last_failure_time = Some(now);
        if self.failure_count >= self.failure_threshold {
            self.state = BreakerState::Open;
        }
    }
}

/// One call: does it succeed, how long it takes (ms), and the pause before the next.
#[derive(Debug, Clone)]
struct Call {
    success: bool,
    took_ms: u64,
    pause_ms: u64,
}

fn call() -> impl Strategy<Value = Call> {
    (
        prop::bool::weighted(0.45),
        prop_oneof![Just(5u64), Just(2_000), Just(12_000)],
        prop_oneof![Just(0u64), Just(1_000), Just(20_000), Just(61_000)],
    )
        .prop_map(|(success, took_ms, pause_ms)| Call {
            success,
            took_ms,
            pause_ms,
        })
}

fn seed_fields() -> impl Strategy<Value = (u32, u64, u32)> {
    (1u32..6, prop_oneof![Just(10_000u64), Just(60_000)], 1u32..4)
}

proptest! {
    #[test]
    fn only_the_seeds_fields_give_the_seeds_state_sequence(
        (failures, recovery_ms, successes) in seed_fields(),
        calls in proptest::collection::vec(call(), 1..80),
    ) {
        let config = CircuitBreakerConfig {
            failure_threshold: failures,
            recovery_timeout_seconds: recovery_ms as f64 / 1000.0,
            success_threshold: successes,
            ..CircuitBreakerConfig::default()
        };
        let breaker = CircuitBreaker::new(config.to_settings().unwrap(), None);
        let mut seed = SeedBreaker::new(failures, recovery_ms, successes);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut now = 0u64;
        for (i, c) in calls.iter().enumerate() {
            let admitted = seed.admit(now);
            let permit = breaker.acquire_at(at(now));
            prop_assert_eq!(permit.is_ok(), admitted, "admission of call {} at {} ms", i, now);
            if let Ok(permit) = permit {
                now += c.took_ms;
                permit.record_at(at(now), c.success);
                if c.success { seed.on_success() } else { seed.on_failure(now) }
            }
            prop_assert_eq!(breaker.state(), seed.state, "state after call {} at {} ms", i, now);
            now += c.pause_ms;
        }
    }
}

/// The case: five successful 12-second calls (within the 30 s task timeout) leave the
/// seed's breaker closed; they opened ours for 60 s while a slow-call rule was on by default.
#[test]
fn slow_successes_do_not_open_the_seeds_breaker() {
    let settings = CircuitBreakerConfig::default().to_settings().unwrap();
    assert_eq!(settings.slow_call_duration, None);
    let breaker = CircuitBreaker::new(settings, None);
    let t0 = Instant::now();
    let mut now = t0;
    for _ in 0..5 {
        let permit = breaker.acquire_at(now).unwrap();
        now += Duration::from_secs(12);
        permit.record_at(now, true);
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert!(breaker.acquire_at(now).is_ok());
}
