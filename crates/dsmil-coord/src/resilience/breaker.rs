//! Circuit breaker: stop calling an agent that keeps failing, try it again after a while.
//!
//! - **Closed**: calls pass; their outcomes fill a sliding window — the last N calls
//!   ([`Window::Count`]) or the calls of the last T ([`Window::Time`]). Once the window holds at
//!   least `minimum_calls`, a failure rate or slow-call rate at or above its threshold opens
//!   the circuit.
//! - **Open**: calls are refused (with the time left) for `open_duration`.
//! - **Half-open**: up to `half_open_permits` probe calls pass; all of them succeeding closes
//!   the circuit, any failing (or slow) re-opens it. A probe that never reports back does not
//!   leave the breaker stuck: after `probe_timeout` it counts as failed. A probe whose caller
//!   gave up (dropped its [`Permit`]) frees its slot.
//!
//! Outcomes of calls admitted in an earlier state are ignored. Time is passed in, so the state
//! machine is deterministic under test; [`CircuitBreaker::acquire`] and [`Permit::record`] use
//! tokio's clock (pausable in tests).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Which calls the closed state judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// The last N calls.
    Count(u32),
    /// The calls that ended within the last duration.
    Time(Duration),
}

/// Breaker tuning. It has no defaults of its own: an agent's breaker is built from its
/// [`CircuitBreakerConfig`](crate::config::CircuitBreakerConfig) (whose defaults are the seed's)
/// by [`CircuitBreakerConfig::to_settings`](crate::config::CircuitBreakerConfig::to_settings);
/// code that uses [`CircuitBreaker`] alone fills in every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerSettings {
    /// The sliding window.
    pub window: Window,
    /// Calls the window must hold before rates are judged.
    pub minimum_calls: u32,
    /// Failure share (0–1] that opens the circuit.
    pub failure_rate_threshold: f64,
    /// A successful call slower than this is slow; `None`: no call is slow (the seed's
    /// breaker has no slow-call rule).
    pub slow_call_duration: Option<Duration>,
    /// Slow-call share (0–1] that opens the circuit.
    pub slow_call_rate_threshold: f64,
    /// How long the circuit stays open.
    pub open_duration: Duration,
    /// Probe calls in half-open state; all must succeed to close.
    pub half_open_permits: u32,
    /// A probe not reported after this counts as failed.
    pub probe_timeout: Duration,
}

impl BreakerSettings {
    /// Checks the ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let rate = |name: &str, v: f64| {
            if v > 0.0 && v <= 1.0 {
                Ok(())
            } else {
                Err(format!(
                    "{name} is {v}; expected a share above 0 and at most 1"
                ))
            }
        };
        rate("failure_rate_threshold", self.failure_rate_threshold)?;
        rate("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        match self.window {
            Window::Count(0) => return Err("window: a count window needs at least 1 call".into()),
            Window::Time(d) if d.is_zero() => {
                return Err("window: a time window must be longer than 0".into());
            }
            _ => {}
        }
        if self.minimum_calls == 0 {
            return Err("minimum_calls must be at least 1".into());
        }
        if let Window::Count(n) = self.window
            && self.minimum_calls > n
        {
            return Err(format!(
                "minimum_calls is {}, more than the window of {n} calls can hold: the circuit could never open",
                self.minimum_calls
            ));
        }
        const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);
        for (name, d) in [
            ("open_duration", self.open_duration),
            ("probe_timeout", self.probe_timeout),
            (
                "slow_call_duration",
                self.slow_call_duration.unwrap_or_default(),
            ),
        ] {
            if d > LONGEST {
                return Err(format!("{name} is longer than a year"));
            }
        }
        if let Window::Time(d) = self.window
            && d > LONGEST
        {
            return Err("window is longer than a year".into());
        }
        if self.half_open_permits == 0 {
            return Err("half_open_permits must be at least 1".into());
        }
        if self.probe_timeout.is_zero() {
            return Err("probe_timeout must be longer than 0".into());
        }
        Ok(())
    }
}

/// The breaker's state, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are refused.
    Open,
    /// Probe calls pass.
    HalfOpen,
}

/// A change of state and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Before.
    pub from: BreakerState,
    /// After.
    pub to: BreakerState,
    /// Why, in words.
    pub reason: String,
}

/// A call refused by an open circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Time until a call may pass again (0 when probes are merely all taken).
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Call {
    at: Instant,
    failed: bool,
    slow: bool,
}

#[derive(Debug)]
enum State {
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen {
        outstanding: Vec<(u64, Instant)>,
        successes: u32,
    },
}

#[derive(Debug)]
struct Inner {
    state: State,
    calls: VecDeque<Call>,
    epoch: u64,
    next_probe: u64,
}

type Listener = dyn Fn(Transition) + Send + Sync;

/// A circuit breaker for one agent.
pub struct CircuitBreaker {
    settings: BreakerSettings,
    inner: Mutex<Inner>,
    listener: Option<Box<Listener>>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("settings", &self.settings)
            .field("state", &self.state())
            .finish()
    }
}

/// Admission of one call; report its outcome with [`Permit::record`]. Dropping it unreported
/// (the call was cancelled) records nothing and frees a probe slot.
#[derive(Debug)]
pub struct Permit {
    breaker: Arc<CircuitBreaker>,
    epoch: u64,
    probe: Option<u64>,
    started: Instant,
    done: bool,
}

impl Permit {
    /// When the call was admitted.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Records the outcome at tokio's current time.
    pub fn record(self, success: bool) {
        self.record_at(Instant::now(), success);
    }

    /// Records the outcome at `now`.
    pub fn record_at(mut self, now: Instant, success: bool) {
        self.done = true;
        let duration = now.saturating_duration_since(self.started);
        self.breaker
            .on_result(self.epoch, self.probe, now, success, duration);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done
            && let Some(id) = self.probe
        {
            self.breaker.release_probe(self.epoch, id);
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker; `listener` hears every transition (e.g. to publish it on the bus).
    pub fn new(settings: BreakerSettings, listener: Option<Box<Listener>>) -> Arc<Self> {
        Arc::new(Self {
            settings,
            inner: Mutex::new(Inner {
                state: State::Closed,
                calls: VecDeque::new(),
                epoch: 0,
                next_probe: 0,
            }),
            listener,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &BreakerSettings {
        &self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state (an open circuit whose time is up still reads `Open` until a call
    /// arrives).
    pub fn state(&self) -> BreakerState {
        match self.lock().state {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Admits a call now (tokio's clock).
    pub fn acquire(self: &Arc<Self>) -> Result<Permit, Rejected> {
        self.acquire_at(Instant::now())
    }

    /// Admits a call at `now`, or refuses it.
    pub fn acquire_at(self: &Arc<Self>, now: Instant) -> Result<Permit, Rejected> {
        let mut transitions = Vec::new();
        let result = {
            let mut inner = self.lock();
            if let State::Open { until } = inner.state {
                if now < until {
                    return Err(Rejected {
                        retry_after: until - now,
                    });
                }
                self.enter(
                    &mut inner,
                    State::HalfOpen {
                        outstanding: Vec::new(),
                        successes: 0,
                    },
                    "open duration elapsed",
                    &mut transitions,
                );
            }
            // Probes that never reported count as failures.
            let expired = match &inner.state {
                State::HalfOpen { outstanding, .. } => outstanding.iter().any(|(_, at)| {
                    now.saturating_duration_since(*at) >= self.settings.probe_timeout
                }),
                _ => false,
            };
            if expired {
                let until = now + self.settings.open_duration;
                self.enter(
                    &mut inner,
                    State::Open { until },
                    "a probe call did not report back in time",
                    &mut transitions,
                );
                Err(Rejected {
                    retry_after: self.settings.open_duration,
                })
            } else {
                let epoch = inner.epoch;
                let permits = self.settings.half_open_permits as usize;
                let probe_timeout = self.settings.probe_timeout;
                let next = inner.next_probe;
                let admitted = match &mut inner.state {
                    State::Closed => Ok(None),
                    State::HalfOpen {
                        outstanding,
                        successes,
                    } => {
                        if outstanding.len() + *successes as usize >= permits {
                            let oldest = outstanding.iter().map(|(_, at)| *at).min().unwrap_or(now);
                            Err(Rejected {
                                retry_after: (oldest + probe_timeout)
                                    .saturating_duration_since(now),
                            })
                        } else {
                            outstanding.push((next, now));
                            Ok(Some(next))
                        }
                    }
                    State::Open { until } => Err(Rejected {
                        retry_after: until.saturating_duration_since(now),
                    }),
                };
                if let Ok(Some(_)) = admitted {
                    inner.next_probe += 1;
                }
                admitted.map(|probe| Permit {
                    breaker: Arc::clone(self),
                    epoch,
                    probe,
                    started: now,
                    done: false,
                })
            }
        };
        self.announce(transitions);
        result
    }

    fn enter(
        &self,
        inner: &mut Inner,
        next: State,
        reason: &str,
        transitions: &mut Vec<Transition>,
    ) {
        let name = |s: &State| match s {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        };
        transitions.push(Transition {
            from: name(&inner.state),
            to: name(&next),
            reason: reason.to_owned(),
        });
        inner.state = next;
        inner.epoch += 1;
        inner.calls.clear();
    }

    fn announce(&self, transitions: Vec<Transition>) {
        if let Some(listener) = &self.listener {
            for t in transitions {
                listener(t);
            }
        }
    }

    fn release_probe(&self, epoch: u64, id: u64) {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return;
        }
        if let State::HalfOpen { outstanding, .. } = &mut inner.state {
            outstanding.retain(|(p, _)| *p != id);
        }
    }

    fn on_result(
        &self,
        epoch: u64,
        probe: Option<u64>,
        now: Instant,
        success: bool,
        duration: Duration,
    ) {
        let slow = self
            .settings
            .slow_call_duration
            .is_some_and(|limit| duration > limit);
        let mut transitions = Vec::new();
        {
            let mut inner = self.lock();
            if inner.epoch != epoch {
                return;
            }
            match (&mut inner.state, probe) {
                (State::Closed, None) => {
                    inner.calls.push_back(Call {
                        at: now,
                        failed: !success,
                        slow: success && slow,
                    });
                    match self.settings.window {
                        Window::Count(n) => {
                            while inner.calls.len() > n as usize {
                                inner.calls.pop_front();
                            }
                        }
                        Window::Time(span) => {
                            while inner
                                .calls
                                .front()
                                .is_some_and(|c| now.saturating_duration_since(c.at) > span)
                            {
                                inner.calls.pop_front();
                            }
                        }
                    }
                    let n = inner.calls.len();
                    if n >= self.settings.minimum_calls as usize {
                        let failed =
                            inner.calls.iter().filter(|c| c.failed).count() as f64 / n as f64;
                        let slowed =
                            inner.calls.iter().filter(|c| c.slow).count() as f64 / n as f64;
                        let reason = if failed >= self.settings.failure_rate_threshold {
                            Some(format!(
                                "failure rate {:.0}% over {n} calls",
                                failed * 100.0
                            ))
                        } else if slowed >= self.settings.slow_call_rate_threshold {
                            Some(format!(
                                "slow-call rate {:.0}% over {n} calls",
                                slowed * 100.0
                            ))
                        } else {
                            None
                        };
                        if let Some(reason) = reason {
                            let until = now + self.settings.open_duration;
                            self.enter(
                                &mut inner,
                                State::Open { until },
                                &reason,
                                &mut transitions,
                            );
                        }
                    }
                }
                (
                    State::HalfOpen {
                        outstanding,
                        successes,
                    },
                    Some(id),
                ) => {
                    if !outstanding.iter().any(|(p, _)| *p == id) {
                        return;
                    }
                    outstanding.retain(|(p, _)| *p != id);
                    if success && !slow {
                        *successes += 1;
                        if *successes >= self.settings.half_open_permits {
                            self.enter(
                                &mut inner,
                                State::Closed,
                                "every probe call succeeded",
                                &mut transitions,
                            );
                        }
                    } else {
                        let until = now + self.settings.open_duration;
                        let reason = if success {
                            "a probe call was slow"
                        } else {
                            "a probe call failed"
                        };
                        self.enter(&mut inner, State::Open { until }, reason, &mut transitions);
                    }
                }
                _ => {}
            }
        }
        self.announce(transitions);
    }
}
