//! The workflow host port: what the cluster asks of the coordinator on its node — to take over
//! a workflow whose owner died, to let go of one another node now owns, to cancel one a user
//! cancelled through another node. Provided by coordination, used by the cluster.

use async_trait::async_trait;

use super::PortError;
use crate::ids::WorkflowId;

/// What taking a workflow over came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// It runs here now.
    Started,
    /// Nothing to run: the journal shows it finished (or does not know it), or it runs here
    /// already.
    Nothing,
    /// Not yet: what it needs is not known to be there (its agents are not hosted by any node
    /// this node has heard from since it connected). The claimer keeps the workflow and asks
    /// again later; nothing was journaled.
    Waiting(String),
}

/// The local coordinator, as the cluster sees it.
#[async_trait]
pub trait WorkflowHost: Send + Sync {
    /// Resumes workflow `id` here from its journal (this node claimed it): finished tasks are
    /// kept, the others run.
    async fn adopt(&self, id: WorkflowId) -> Result<Adoption, PortError>;

    /// Stops running `id` here without journaling anything more (another node owns it now);
    /// `false` if it does not run here.
    fn abandon(&self, id: WorkflowId) -> bool;

    /// Cancels `id` if it runs here; `false` if it does not.
    fn cancel(&self, id: WorkflowId) -> bool;

    /// The workflows running here.
    fn running(&self) -> Vec<WorkflowId>;
}
