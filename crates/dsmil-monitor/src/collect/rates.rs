//! Sliding-window rates over the events other layers publish on the bus (agent failure rate,
//! agent response time, security events per minute), and counters by event kind since start.
//!
//! Time is passed in explicitly ([`EventRates::observe`] and [`EventRates::snapshot`] take an
//! [`Instant`]), so the window arithmetic is deterministic in tests.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dsmil_core::monitoring::ActivityType;
use dsmil_core::{AlertLevel, Event};
use serde::{Deserialize, Serialize};

/// Default length of the sliding window: one minute, as in the seed.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(60);

/// At most this many entries are kept per series in the window, whatever the event rate; when
/// more arrive the oldest are dropped (the rates then cover a shorter, most recent span).
pub const MAX_WINDOW_ENTRIES: usize = 100_000;

/// The `source_component` of events the monitor itself publishes. Those are counted but kept
/// out of the security event rate, so the monitor's own responses cannot feed its alerts.
pub const MONITOR_COMPONENT: &str = "monitor";

/// Counts per [`AlertLevel`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelCounts {
    /// Info.
    pub info: u64,
    /// Warning.
    pub warning: u64,
    /// Critical.
    pub critical: u64,
    /// Emergency.
    pub emergency: u64,
}

impl LevelCounts {
    /// Adds one at `level`.
    pub fn add(&mut self, level: AlertLevel) {
        let slot = match level {
            AlertLevel::Info => &mut self.info,
            AlertLevel::Warning => &mut self.warning,
            AlertLevel::Critical => &mut self.critical,
            AlertLevel::Emergency => &mut self.emergency,
        };
        *slot = slot.saturating_add(1);
    }

    /// The count at `level`.
    pub fn get(&self, level: AlertLevel) -> u64 {
        match level {
            AlertLevel::Info => self.info,
            AlertLevel::Warning => self.warning,
            AlertLevel::Critical => self.critical,
            AlertLevel::Emergency => self.emergency,
        }
    }
}

/// Events seen since start, by kind (for Prometheus counters). The kind names returned by
/// [`EventCounters::by_kind`] are the `type` tags events carry on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounters {
    /// `system_health` events.
    pub system_health: u64,
    /// Agent task starts.
    pub agent_task_start: u64,
    /// Agent task completions.
    pub agent_task_complete: u64,
    /// Agent task failures.
    pub agent_task_fail: u64,
    /// `workflow` events.
    pub workflow: u64,
    /// `security` events, by severity.
    pub security: LevelCounts,
    /// `tpm` events.
    pub tpm: u64,
    /// `device` events.
    pub device: u64,
    /// `device` events that were refused (`allowed == false`).
    pub device_refused: u64,
    /// `accel` events.
    pub accel: u64,
    /// `alert` events, by level.
    pub alert: LevelCounts,
}

impl EventCounters {
    /// Counts one event.
    pub fn count(&mut self, event: &Event) {
        let bump = |n: &mut u64| *n = n.saturating_add(1);
        match event {
            Event::SystemHealth(_) => bump(&mut self.system_health),
            Event::AgentActivity(a) => match a.activity_type {
                ActivityType::TaskStart => bump(&mut self.agent_task_start),
                ActivityType::TaskComplete => bump(&mut self.agent_task_complete),
                ActivityType::TaskFail => bump(&mut self.agent_task_fail),
            },
            Event::Workflow(_) => bump(&mut self.workflow),
            Event::Security(s) => self.security.add(s.severity),
            Event::Tpm(_) => bump(&mut self.tpm),
            Event::Device(d) => {
                bump(&mut self.device);
                if !d.allowed {
                    bump(&mut self.device_refused);
                }
            }
            Event::Accel(_) => bump(&mut self.accel),
            Event::Alert(a) => self.alert.add(a.alert_level),
            // Not counted: a node's periodic view of the cluster, not something that happened.
            Event::Cluster(_) => {}
        }
    }

    /// Totals per event kind, named as the event's wire `type` tag (`system_health`,
    /// `agent_activity`, `workflow`, `security`, `tpm`, `device`, `accel`, `alert`).
    pub fn by_kind(&self) -> [(&'static str, u64); 8] {
        let sum = |c: &LevelCounts| {
            [c.info, c.warning, c.critical, c.emergency]
                .iter()
                .fold(0u64, |a, b| a.saturating_add(*b))
        };
        [
            ("system_health", self.system_health),
            (
                "agent_activity",
                self.agent_task_start
                    .saturating_add(self.agent_task_complete)
                    .saturating_add(self.agent_task_fail),
            ),
            ("workflow", self.workflow),
            ("security", sum(&self.security)),
            ("tpm", self.tpm),
            ("device", self.device),
            ("accel", self.accel),
            ("alert", sum(&self.alert)),
        ]
    }

    /// Every event counted.
    pub fn total(&self) -> u64 {
        self.by_kind()
            .iter()
            .fold(0u64, |a, (_, n)| a.saturating_add(*n))
    }
}

/// The rates over the window at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatesSnapshot {
    /// Length of the window, seconds.
    pub window_seconds: f64,
    /// Agent task completions in the window.
    pub agent_completions: u64,
    /// Agent task failures in the window.
    pub agent_failures: u64,
    /// failures / (completions + failures), 0–1; `None` when there was neither.
    pub agent_failure_rate: Option<f64>,
    /// How many completions and failures in the window carried a `duration_ms`.
    pub agent_response_samples: u64,
    /// Mean `duration_ms` of those, ms; `None` without samples. This is the value the
    /// `agent_response_time_ms` alert uses (the seed's average response time).
    pub agent_response_time_mean_ms: Option<f64>,
    /// 95th percentile (nearest rank) of those, ms; `None` without samples. For dashboards.
    pub agent_response_time_p95_ms: Option<f64>,
    /// Security events in the window (those the monitor published itself excluded).
    pub security_events: u64,
    /// `security_events` scaled to one minute.
    pub security_events_per_minute: f64,
}

#[derive(Debug, Clone, Copy)]
struct Outcome {
    at: Instant,
    failed: bool,
    duration_ms: Option<u64>,
}

/// Sliding-window aggregator fed with every bus event.
#[derive(Debug, Clone)]
pub struct EventRates {
    window: Duration,
    outcomes: VecDeque<Outcome>,
    security: VecDeque<Instant>,
    counters: EventCounters,
}

impl Default for EventRates {
    fn default() -> Self {
        Self::new(DEFAULT_RATE_WINDOW)
    }
}

impl EventRates {
    /// An empty aggregator over a window of `window` (a zero window is raised to 1 ms).
    pub fn new(window: Duration) -> Self {
        Self {
            window: window.max(Duration::from_millis(1)),
            outcomes: VecDeque::new(),
            security: VecDeque::new(),
            counters: EventCounters::default(),
        }
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Takes `event`, seen at `now`, into the counters and, if it is an agent completion or
    /// failure or a security event, into the window. Entries older than the window are
    /// dropped.
    pub fn observe(&mut self, event: &Event, now: Instant) {
        self.counters.count(event);
        match event {
            Event::AgentActivity(a) => {
                let failed = match a.activity_type {
                    ActivityType::TaskStart => return,
                    ActivityType::TaskComplete => false,
                    ActivityType::TaskFail => true,
                };
                push_bounded(
                    &mut self.outcomes,
                    Outcome {
                        at: now,
                        failed,
                        duration_ms: a.duration_ms,
                    },
                );
            }
            Event::Security(s) if s.source_component != MONITOR_COMPONENT => {
                push_bounded(&mut self.security, now);
            }
            _ => {}
        }
        self.prune(now);
    }

    /// Drops entries that fell out of the window at `now`.
    pub fn prune(&mut self, now: Instant) {
        let window = self.window;
        let expired = |at: Instant| now.saturating_duration_since(at) >= window;
        while self.outcomes.front().is_some_and(|o| expired(o.at)) {
            self.outcomes.pop_front();
        }
        while self.security.front().is_some_and(|at| expired(*at)) {
            self.security.pop_front();
        }
    }

    /// The rates over the window ending at `now`: an entry seen at `t` counts while
    /// `now − t < window`.
    pub fn snapshot(&self, now: Instant) -> RatesSnapshot {
        let in_window = |at: Instant| now.saturating_duration_since(at) < self.window;
        let mut completions = 0u64;
        let mut failures = 0u64;
        let mut durations = Vec::new();
        for o in self.outcomes.iter().filter(|o| in_window(o.at)) {
            if o.failed {
                failures += 1;
            } else {
                completions += 1;
            }
            if let Some(d) = o.duration_ms {
                durations.push(d);
            }
        }
        let outcomes = completions + failures;
        let agent_failure_rate = (outcomes > 0).then(|| failures as f64 / outcomes as f64);
        durations.sort_unstable();
        let mean = (!durations.is_empty())
            .then(|| durations.iter().map(|d| *d as f64).sum::<f64>() / durations.len() as f64);
        let p95 = (!durations.is_empty()).then(|| {
            // Nearest rank: the smallest value with at least 95 % of the samples at or below.
            let rank = (durations.len() as f64 * 0.95).ceil() as usize;
            let index = rank.saturating_sub(1).min(durations.len() - 1);
            durations.get(index).copied().unwrap_or(0) as f64
        });
        let security_events = self.security.iter().filter(|at| in_window(**at)).count() as u64;
        let window_seconds = self.window.as_secs_f64();
        RatesSnapshot {
            window_seconds,
            agent_completions: completions,
            agent_failures: failures,
            agent_failure_rate,
            agent_response_samples: durations.len() as u64,
            agent_response_time_mean_ms: mean,
            agent_response_time_p95_ms: p95,
            security_events,
            security_events_per_minute: security_events as f64 * 60.0 / window_seconds,
        }
    }

    /// Events seen since start, by kind.
    pub fn counters(&self) -> &EventCounters {
        &self.counters
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T) {
    if queue.len() >= MAX_WINDOW_ENTRIES {
        queue.pop_front();
    }
    queue.push_back(item);
}
