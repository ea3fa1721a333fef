//! Retries with paused tokio time: attempts, backoff bounds, what stops retrying, the budget.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dsmil_coord::agent::AgentError;
use dsmil_coord::resilience::{RetryBudget, RetryPolicy, retry};
use proptest::prelude::*;
use tokio::time::Instant;

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(1000),
        multiplier: 2.0,
        jitter: 1.0,
    }
}

fn flaky() -> AgentError {
    AgentError::Exit {
        code: Some(1),
        stderr: String::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn retries_until_success_within_the_backoff_bounds() {
    let calls = AtomicU32::new(0);
    let started = Instant::now();
    let out = retry(&policy(), None, |n| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { if n < 4 { Err(flaky()) } else { Ok(n) } }
    })
    .await;
    assert_eq!(out.outcome.unwrap(), 4);
    assert_eq!(out.attempts, 4);
    // Full jitter: the three waits are each at most 100, 200 and 400 ms.
    assert!(
        started.elapsed() <= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn terminal_failures_and_exhausted_attempts_stop_it() {
    let out = retry(&policy(), None, |_| async {
        Err::<(), _>(AgentError::Reported {
            message: "bad input".into(),
            terminal: true,
        })
    })
    .await;
    assert_eq!(out.attempts, 1);
    let out = retry(&policy(), None, |_| async { Err::<(), _>(flaky()) }).await;
    assert_eq!(out.attempts, 5);
    assert!(
        matches!(
            &out.outcome,
            Err(AgentError::Exit { code: Some(1), stderr }) if stderr.is_empty()
        ),
        "{:?}",
        out.outcome
    );
}

#[tokio::test(start_paused = true)]
async fn the_budget_caps_retries_in_an_outage() {
    // 10% of first attempts, no floor, 2 banked.
    let budget = RetryBudget::new(0.1, 0.0, 2.0);
    let mut retries = 0;
    for _ in 0..50 {
        let out = retry(&policy(), Some(&budget), |_| async {
            Err::<(), _>(flaky())
        })
        .await;
        retries += out.attempts - 1;
        if out.attempts < 5 {
            assert!(matches!(
                out.outcome,
                Err(AgentError::RetryBudgetExhausted(_))
            ));
        }
    }
    // Without a budget: 50 × 4 = 200 retries. With it: the 2 banked plus 10% of 50 calls.
    assert!(retries <= 2 + 5 + 1, "{retries} retries");
    assert!(retries >= 2);
}

proptest! {
    #[test]
    fn delays_stay_within_the_jitter_band_and_ceilings_grow_to_the_cap(retry in 1u32..100, unit in 0f64..1.0, jitter in 0f64..=1.0) {
        let p = RetryPolicy { jitter, ..policy() };
        let d = p.delay(retry, unit);
        prop_assert!(d <= p.ceiling(retry));
        prop_assert!(d.as_secs_f64() >= p.ceiling(retry).as_secs_f64() * (1.0 - jitter) - 1e-9);
        prop_assert!(p.ceiling(retry) <= p.max_delay);
        prop_assert!(p.ceiling(retry) <= p.ceiling(retry + 1));
    }
}
