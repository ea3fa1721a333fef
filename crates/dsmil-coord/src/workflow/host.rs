//! [`Host`]: core's `WorkflowHost` port on a [`Coordinator`] — what the cluster asks of the
//! coordinator on its node (take a workflow over, let one go, cancel one, list what runs).

use std::sync::Arc;

use async_trait::async_trait;
use dsmil_core::WorkflowId;
use dsmil_core::ports::{Adoption, PortError, WorkflowHost};

use super::{Coordinator, Takeover, WorkflowError};

/// The coordinator as a cluster's workflow host.
#[derive(Debug, Clone)]
pub struct Host(pub Arc<Coordinator>);

#[async_trait]
impl WorkflowHost for Host {
    async fn adopt(&self, id: WorkflowId) -> Result<Adoption, PortError> {
        match self.0.adopt(id).await {
            Ok(Takeover::Started(_)) => Ok(Adoption::Started),
            Ok(Takeover::Nothing) => Ok(Adoption::Nothing),
            Ok(Takeover::Waiting(why)) => Ok(Adoption::Waiting(why)),
            Err(e @ (WorkflowError::ShuttingDown | WorkflowError::Emergency(_))) => {
                Err(PortError::Unavailable(e.to_string()))
            }
            Err(e) => Err(PortError::Backend(crate::error_chain(&e))),
        }
    }

    fn abandon(&self, id: WorkflowId) -> bool {
        self.0.abandon(id)
    }

    fn cancel(&self, id: WorkflowId) -> bool {
        self.0.cancel(id)
    }

    fn running(&self) -> Vec<WorkflowId> {
        self.0.active()
    }
}
