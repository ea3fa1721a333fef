//! The workflow host port: what the cluster asks of the coordinator on its node — to take over
//! a workflow whose owner died, to let go of one another node now owns, to cancel one a user
//! cancelled through another node. Provided by coordination, used by the cluster.

use async_trait::async_trait;

use super::PortError;
use crate::ids::WorkflowId;

/// The local coordinator, as the cluster sees it.
#[async_trait]
pub trait WorkflowHost: Send + Sync {
    /// Resumes workflow `id` here from its journal (this node claimed it): finished tasks are
    /// kept, the others run. `Ok(false)` when the journal shows it finished or it runs here
    /// already.
    async fn adopt(&self, id: WorkflowId) -> Result<bool, PortError>;

    /// Stops running `id` here without journaling anything more (another node owns it now);
    /// `false` if it does not run here.
    fn abandon(&self, id: WorkflowId) -> bool;

    /// Cancels `id` if it runs here; `false` if it does not.
    fn cancel(&self, id: WorkflowId) -> bool;

    /// The workflows running here.
    fn running(&self) -> Vec<WorkflowId>;
}
