//! The coordinator's figures for `/metrics`: workflows running and ended, each agent's free
//! slots, circuit state, task outcomes and task durations.

use async_trait::async_trait;
use dsmil_core::ports::{MetricSet, MetricsSource};

use crate::resilience::BreakerState;
use crate::workflow::Coordinator;
use crate::workflow::stats::DURATION_BUCKETS;

/// The breaker states, as `dsmil_agent_circuit_state`'s `state` label says them.
const BREAKER_STATES: [(BreakerState, &str); 3] = [
    (BreakerState::Closed, "closed"),
    (BreakerState::Open, "open"),
    (BreakerState::HalfOpen, "half_open"),
];

#[async_trait]
impl MetricsSource for Coordinator {
    async fn collect(&self, out: &mut MetricSet) {
        out.gauge(
            "dsmil_workflows_active",
            "Workflows running now.",
            &[],
            self.active().len() as f64,
        );
        for a in self.registry().info() {
            let id = a.id.to_string();
            out.gauge(
                "dsmil_agent_available_slots",
                "Free concurrency slots per agent.",
                &[("agent", &id)],
                a.available as f64,
            );
            out.gauge(
                "dsmil_agent_circuit_open",
                "1 while an agent's circuit breaker is not closed.",
                &[("agent", &id)],
                f64::from(u8::from(a.breaker != BreakerState::Closed)),
            );
            for (state, label) in BREAKER_STATES {
                out.gauge(
                    "dsmil_agent_circuit_state",
                    "1 for the state an agent's circuit breaker is in, 0 for the others.",
                    &[("agent", &id), ("state", label)],
                    f64::from(u8::from(a.breaker == state)),
                );
            }
        }
        let stats = self.stats();
        for (state, n) in stats.workflows() {
            out.counter(
                "dsmil_workflows_total",
                "Workflows that ended since start, by end state.",
                &[("state", state)],
                n as f64,
            );
        }
        for (agent, s) in stats.agents() {
            let id = agent.to_string();
            for (outcome, n) in &s.outcomes {
                out.counter(
                    "dsmil_agent_tasks_total",
                    "Tasks per agent since start, by outcome (completed, failed, skipped, cancelled).",
                    &[("agent", &id), ("outcome", outcome)],
                    *n as f64,
                );
            }
            out.histogram(
                "dsmil_task_duration_seconds",
                "Agent time of the tasks that ran, per agent.",
                &[("agent", &id)],
                DURATION_BUCKETS.iter().copied().zip(s.buckets).collect(),
                s.sum_seconds,
                s.count,
            );
        }
    }
}
