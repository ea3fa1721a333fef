//! The circuit breaker: scenarios, and a property test of random call sequences against a small
//! model of the state machine.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dsmil_coord::resilience::{BreakerSettings, BreakerState, CircuitBreaker, Permit, Window};
use proptest::prelude::*;
use tokio::time::Instant;

fn settings() -> BreakerSettings {
    BreakerSettings {
        window: Window::Count(4),
        minimum_calls: 4,
        failure_rate_threshold: 0.5,
        slow_call_duration: Some(Duration::from_millis(100)),
        slow_call_rate_threshold: 1.0,
        open_duration: Duration::from_secs(10),
        half_open_permits: 2,
        probe_timeout: Duration::from_secs(5),
    }
}

fn ms(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

#[test]
fn opens_on_failure_rate_probes_and_closes() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let b = CircuitBreaker::new(
        settings(),
        Some(Box::new(move |t| log.lock().unwrap().push((t.from, t.to)))),
    );
    let t0 = Instant::now();
    for (i, ok) in [true, false, true, false].into_iter().enumerate() {
        let p = b.acquire_at(ms(t0, i as u64)).unwrap();
        p.record_at(ms(t0, i as u64 + 1), ok);
    }
    assert_eq!(b.state(), BreakerState::Open, "2 of 4 failed: 50% opens it");
    let refused = b.acquire_at(ms(t0, 5000)).unwrap_err();
    assert!(refused.retry_after > Duration::from_secs(4));
    // After the open duration: two probes pass, a third waits.
    let p1 = b.acquire_at(ms(t0, 10_010)).unwrap();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    let p2 = b.acquire_at(ms(t0, 10_011)).unwrap();
    assert!(b.acquire_at(ms(t0, 10_012)).is_err(), "probe limit");
    p1.record_at(ms(t0, 10_020), true);
    p2.record_at(ms(t0, 10_021), true);
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed)
        ]
    );
}

#[test]
fn a_probe_that_never_reports_does_not_leave_it_half_open() {
    let b = CircuitBreaker::new(settings(), None);
    let t0 = Instant::now();
    for i in 0..4 {
        b.acquire_at(ms(t0, i)).unwrap().record_at(ms(t0, i), false);
    }
    let stuck = b.acquire_at(ms(t0, 10_010)).unwrap();
    let _stuck2 = b.acquire_at(ms(t0, 10_011)).unwrap();
    assert!(b.acquire_at(ms(t0, 12_000)).is_err());
    // Past the probe timeout the silent probes count as failed: open again.
    assert!(b.acquire_at(ms(t0, 15_010)).is_err());
    assert_eq!(b.state(), BreakerState::Open);
    // Its late report is ignored.
    stuck.record_at(ms(t0, 15_011), true);
    assert_eq!(b.state(), BreakerState::Open);
    // A cancelled probe frees its slot.
    let p = b.acquire_at(ms(t0, 25_011)).unwrap();
    let q = b.acquire_at(ms(t0, 25_012)).unwrap();
    drop(q);
    let r = b.acquire_at(ms(t0, 25_013)).unwrap();
    p.record_at(ms(t0, 25_014), true);
    r.record_at(ms(t0, 25_015), true);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn slow_calls_and_time_windows() {
    let mut s = settings();
    s.slow_call_rate_threshold = 0.4;
    s.window = Window::Time(Duration::from_secs(1));
    let b = CircuitBreaker::new(s, None);
    let t0 = Instant::now();
    // Old failures fall out of a time window.
    for i in 0..3 {
        b.acquire_at(ms(t0, i)).unwrap().record_at(ms(t0, i), false);
    }
    for i in 0..4 {
        let at = 5000 + i * 10;
        b.acquire_at(ms(t0, at))
            .unwrap()
            .record_at(ms(t0, at + 1), true);
    }
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "the early failures are outside the window"
    );
    // Three slow successes among the seven calls of the last second: 43% ≥ 40% opens it.
    for i in 0..3 {
        let at = 5100 + i * 10;
        b.acquire_at(ms(t0, at))
            .unwrap()
            .record_at(ms(t0, at + 500), true);
    }
    assert_eq!(b.state(), BreakerState::Open);
    assert!(
        BreakerSettings {
            failure_rate_threshold: 0.0,
            ..settings()
        }
        .validate()
        .is_err()
    );
    assert!(
        BreakerSettings {
            window: Window::Count(0),
            ..settings()
        }
        .validate()
        .is_err()
    );
    assert!(settings().validate().is_ok());
}

/// The model: the same rules, written as plainly as possible.
#[derive(Debug, Clone, PartialEq)]
enum M {
    Closed(Vec<(bool, bool)>),
    Open(u64),
    Half { out: Vec<(usize, u64)>, ok: u32 },
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Ok(usize),
    Fail(usize),
    Slow(usize),
    Drop(usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Acquire),
        2 => (0usize..8).prop_map(Op::Ok),
        2 => (0usize..8).prop_map(Op::Fail),
        1 => (0usize..8).prop_map(Op::Slow),
        1 => (0usize..8).prop_map(Op::Drop),
        1 => prop_oneof![Just(1u64), Just(3_000), Just(6_000), Just(11_000)].prop_map(Op::Wait),
    ]
}

proptest! {
    #[test]
    fn matches_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let s = settings();
        let b = CircuitBreaker::new(s.clone(), None);
        let t0 = Instant::now();
        let mut now = 0u64;
        let mut m = M::Closed(Vec::new());
        let mut epoch = 0u64;
        // Held permits: (real, epoch at admission, probe id in the model).
        let mut held: Vec<(Permit, u64, Option<usize>, u64)> = Vec::new();
        let mut next_probe = 0usize;
        let open_ms = s.open_duration.as_millis() as u64;
        let probe_ms = s.probe_timeout.as_millis() as u64;
        for op in ops {
            match op {
                Op::Wait(d) => now += d,
                Op::Acquire => {
                    // Model admission.
                    if let M::Open(until) = m && now >= until {
                        m = M::Half { out: vec![], ok: 0 };
                        epoch += 1;
                    }
                    let mut expired = false;
                    if let M::Half { out, .. } = &m {
                        expired = out.iter().any(|(_, at)| now - at >= probe_ms);
                    }
                    if expired {
                        m = M::Open(now + open_ms);
                        epoch += 1;
                    }
                    let want = match &mut m {
                        M::Closed(_) => Some(None),
                        M::Open(_) => None,
                        M::Half { out, ok } => {
                            if out.len() + *ok as usize >= 2 { None } else {
                                out.push((next_probe, now));
                                next_probe += 1;
                                Some(Some(next_probe - 1))
                            }
                        }
                    };
                    let got = b.acquire_at(ms(t0, now));
                    prop_assert_eq!(got.is_ok(), want.is_some(), "admission at {} in {:?}", now, m);
                    if let (Ok(p), Some(probe)) = (got, want) {
                        held.push((p, epoch, probe, now));
                    }
                }
                Op::Ok(i) | Op::Fail(i) | Op::Slow(i) | Op::Drop(i) => {
                    if held.is_empty() { continue; }
                    let (permit, at_epoch, probe, start_ms) = held.remove(i % held.len());
                    let (success, took) = match op {
                        Op::Ok(_) => (true, 1),
                        Op::Fail(_) => (false, 1),
                        Op::Slow(_) => (true, 500),
                        _ => {
                            drop(permit);
                            if at_epoch == epoch && let (M::Half { out, .. }, Some(id)) = (&mut m, probe) {
                                out.retain(|(p, _)| *p != id);
                            }
                            continue;
                        }
                    };
                    // Reported `took` ms after admission, or now if that is later.
                    let end_ms = now.max(start_ms + took);
                    permit.record_at(ms(t0, end_ms), success);
                    now = end_ms;
                    let slow = success && end_ms - start_ms > 100;
                    if at_epoch != epoch { continue; }
                    match (&mut m, probe) {
                        (M::Closed(calls), None) => {
                            calls.push((!success, slow));
                            if calls.len() > 4 { calls.remove(0); }
                            let fails = calls.iter().filter(|c| c.0).count();
                            let slows = calls.iter().filter(|c| c.1).count();
                            if calls.len() >= 4 && (fails * 2 >= calls.len() || slows == calls.len()) {
                                m = M::Open(now + open_ms);
                                epoch += 1;
                            }
                        }
                        (M::Half { out, ok }, Some(id)) if out.iter().any(|(p, _)| *p == id) => {
                            out.retain(|(p, _)| *p != id);
                            if success && !slow {
                                *ok += 1;
                                if *ok >= 2 { m = M::Closed(Vec::new()); epoch += 1; }
                            } else {
                                m = M::Open(now + open_ms);
                                epoch += 1;
                            }
                        }
                        _ => {}
                    }
                }
            }
            let want = match m {
                M::Closed(_) => BreakerState::Closed,
                M::Open(_) => BreakerState::Open,
                M::Half { .. } => BreakerState::HalfOpen,
            };
            prop_assert_eq!(b.state(), want);
        }
    }
}
