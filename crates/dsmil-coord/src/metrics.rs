//! The coordinator's figures for `/metrics`: workflows running, each agent's free slots and
//! whether its circuit is open.

use async_trait::async_trait;
use dsmil_core::ports::{MetricSet, MetricsSource};

use crate::resilience::BreakerState;
use crate::workflow::Coordinator;

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
        }
    }
}
