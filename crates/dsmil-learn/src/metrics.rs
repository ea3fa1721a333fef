//! The learning layer's figures for `/metrics`: records in the store, records waiting in the
//! outbox, agents with history.

use async_trait::async_trait;
use dsmil_core::ports::{MetricSet, MetricsSource};

use crate::engine::LearningEngine;

#[async_trait]
impl MetricsSource for LearningEngine {
    async fn collect(&self, out: &mut MetricSet) {
        let store = self.store();
        if let Ok(n) = store.count().await {
            out.gauge(
                "dsmil_learn_records",
                "Performance records in the learning store.",
                &[("backend", store.backend())],
                n as f64,
            );
        }
        if let Ok(n) = store.pending().await {
            out.gauge(
                "dsmil_learn_outbox_pending",
                "Records waiting in the outbox.",
                &[],
                n as f64,
            );
        }
        out.gauge(
            "dsmil_learn_known_agents",
            "Agents with history.",
            &[],
            self.known_agents().len() as f64,
        );
    }
}
