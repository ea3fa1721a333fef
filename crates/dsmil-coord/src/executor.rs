//! [`LocalExecutor`]: core's `TaskExecutor` port on this node's registry — how the cluster runs a
//! task it pulled for an agent hosted here, through the same bulkhead → breaker → retry →
//! timeout path ([`run_task`]) a single host uses.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dsmil_core::ports::{FailureKind, HostedAgent, TaskExecutor, TaskReport, TaskRequest};

use crate::registry::AgentRegistry;
use crate::resilience::BreakerState;
use crate::runner::{TaskRun, run_task};

/// Runs tasks on the agents of a registry.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    registry: Arc<AgentRegistry>,
}

impl LocalExecutor {
    /// An executor over `registry`.
    pub fn new(registry: Arc<AgentRegistry>) -> Self {
        Self { registry }
    }

    /// Runs `request` on the registry's agent, or reports that it is not registered here.
    pub async fn run(&self, request: &TaskRequest) -> TaskReport {
        let Some(rt) = self.registry.get(&request.agent_id) else {
            return TaskReport::refused(
                FailureKind::Failed,
                format!("agent {} is not registered on this node", request.agent_id),
            );
        };
        let run = TaskRun {
            task_id: request.task_id.clone(),
            task_description: request.task_description.clone(),
            input_data: request.input_data.clone(),
            timeout: Duration::from_millis(request.timeout_ms),
            retries: request.retries,
        };
        run_task(&rt, self.registry.budget(), &run).await.report()
    }
}

/// The name a breaker state is reported under.
fn breaker_name(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half_open",
    }
}

#[async_trait]
impl TaskExecutor for LocalExecutor {
    fn hosted(&self) -> Vec<HostedAgent> {
        self.registry
            .info()
            .into_iter()
            .map(|a| HostedAgent {
                agent_id: a.id,
                capacity: a.max_concurrency,
                in_flight: a.max_concurrency.saturating_sub(a.available),
                breaker: breaker_name(a.breaker).to_owned(),
            })
            .collect()
    }

    async fn execute(&self, request: &TaskRequest) -> TaskReport {
        self.run(request).await
    }
}
