//! Running a task on whichever node hosts its agent: [`ClusterDispatcher`] is core's
//! [`TaskDispatcher`] for the workflow's owner, [`TaskWorker`] the side that runs tasks for
//! the agents a node hosts.
//!
//! The protocol:
//! 1. The owner publishes a [`wire::TaskMessage`] to `<p>.tasks.<agent>` in the work-queue
//!    stream `<P>_TASKS`, with the run's key as message id (a republished run is dropped by
//!    the stream), and waits.
//! 2. Every node hosting the agent pulls from one durable consumer `tasks-<agent>`: a message
//!    goes to one node at a time, and only as many are pulled as the agent has free slots
//!    there (its bulkhead). While the task runs the node sends progress acknowledgements; a
//!    node that dies stops sending them, and the stream delivers the task again to another
//!    host after the acknowledgement wait (one lease).
//! 3. The node that ran it journals the result with the run ([`JetStreamJournal::record_run`],
//!    once per run), tells the owner on `<p>.done.<owner>`, then acknowledges the message. A
//!    redelivered task whose run is already journaled is not run again: its report is sent
//!    once more.
//! 4. The owner takes the report from the done message or, if that was lost, from the journal
//!    (polled every second). If it stops waiting (cancelled), it announces the run on
//!    `<p>.taskcancel` and whoever runs it stops.

pub mod claims;
pub mod wire;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::context::Context;
use async_nats::jetstream::stream::{self, Stream};
use async_trait::async_trait;
use dsmil_core::AgentId;
use dsmil_core::ports::{
    Dispatched, FailureKind, PortError, TaskDispatcher, TaskReport, TaskRequest,
};
use futures_util::StreamExt as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, interval};

use crate::error::ClusterError;
use crate::journal::JetStreamJournal;
use crate::membership::{LIVE_LEASES, Membership};
use crate::names::Names;
use crate::publish::{DEFAULT_DEADLINE, idempotent, publish_durably};
use wire::{CancelMessage, DoneMessage, TaskMessage, run_key};
pub use worker::TaskWorker;

/// How long the stream remembers a run's key to drop a republished task.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How often a waiting owner looks in the journal for a report whose done message was lost.
const POLL: Duration = Duration::from_secs(1);

/// Opens (creating or updating) the work-queue stream of tasks.
pub async fn tasks_stream(
    js: &Context,
    names: &Names,
    replicas: usize,
) -> Result<Stream, ClusterError> {
    let name = names.tasks_stream();
    let config = stream::Config {
        name: name.clone(),
        description: Some("DSMIL tasks waiting for a node hosting their agent".to_owned()),
        subjects: vec![format!("{}.tasks.>", names.prefix())],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    idempotent(DEFAULT_DEADLINE, "create the tasks stream", || {
        js.create_or_update_stream(config.clone())
    })
    .await
    .map_err(ClusterError::js(format!("create the tasks stream {name}")))?;
    js.get_stream(&name)
        .await
        .map_err(ClusterError::js(format!("open the tasks stream {name}")))
}

/// Runs of this node's workflows waiting for their reports.
type Pending = Mutex<HashMap<String, oneshot::Sender<TaskReport>>>;

/// Core's [`TaskDispatcher`] over the cluster: tasks run on the nodes hosting their agents.
pub struct ClusterDispatcher {
    client: Client,
    js: Context,
    names: Names,
    node: String,
    journal: JetStreamJournal,
    membership: Arc<Membership>,
    lease: Duration,
    pending: Arc<Pending>,
    /// Workflows another node owns now: their dropped runs are not cancelled.
    released: Mutex<std::collections::HashSet<dsmil_core::WorkflowId>>,
    listener: JoinHandle<()>,
}

impl std::fmt::Debug for ClusterDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterDispatcher")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl ClusterDispatcher {
    /// Dispatches for node `node`, listening for reports on `<p>.done.<node>`.
    pub async fn start(
        client: Client,
        js: Context,
        names: Names,
        node: &str,
        journal: JetStreamJournal,
        membership: Arc<Membership>,
        lease: Duration,
    ) -> Result<Self, ClusterError> {
        let subject = names.done_subject(node);
        let mut done = client
            .subscribe(subject.clone())
            .await
            .map_err(ClusterError::js(format!("subscribe to {subject}")))?;
        let pending: Arc<Pending> = Arc::default();
        let listener = {
            let pending = Arc::clone(&pending);
            tokio::spawn(async move {
                while let Some(message) = done.next().await {
                    let Ok(done) = serde_json::from_slice::<DoneMessage>(&message.payload) else {
                        tracing::warn!("undecodable task report on the done subject");
                        continue;
                    };
                    let waiter = pending
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&done.key);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(done.report);
                    }
                }
            })
        };
        Ok(Self {
            client,
            js,
            names,
            node: node.to_owned(),
            journal,
            membership,
            lease,
            pending,
            released: Mutex::default(),
            listener,
        })
    }

    /// Waits for the run's report: from its done message, else from the journal; gives up
    /// when no live node has hosted the agent for [`LIVE_LEASES`] leases.
    async fn wait(
        &self,
        request: &TaskRequest,
        mut report: oneshot::Receiver<TaskReport>,
    ) -> Dispatched {
        let mut poll = interval(POLL);
        poll.tick().await;
        let mut hosted_at = Instant::now();
        loop {
            tokio::select! {
                got = &mut report => match got {
                    Ok(report) => return Dispatched { report, journaled: true },
                    // Replaced by a second dispatch of the same run: the journal decides.
                    Err(_) => break,
                },
                _ = poll.tick() => {
                    if let Some(done) = self.look(request, &mut hosted_at).await {
                        return done;
                    }
                }
            }
        }
        loop {
            poll.tick().await;
            if let Some(done) = self.look(request, &mut hosted_at).await {
                return done;
            }
        }
    }

    /// One look in the journal for the run's report, and at whether its agent still has a
    /// live host (`hosted_at`: when one was last seen).
    async fn look(&self, request: &TaskRequest, hosted_at: &mut Instant) -> Option<Dispatched> {
        match self.journal.find_run(request).await {
            Ok(Some(report)) => {
                return Some(Dispatched {
                    report,
                    journaled: true,
                });
            }
            Ok(None) => {}
            Err(err) => tracing::debug!(error = %err, "cannot poll the journal"),
        }
        if !self.membership.hosts(&request.agent_id).is_empty() {
            *hosted_at = Instant::now();
            return None;
        }
        let limit = self.lease * LIVE_LEASES;
        (hosted_at.elapsed() > limit).then(|| Dispatched {
            report: TaskReport::refused(
                FailureKind::Failed,
                format!(
                    "no live node hosts agent {} (none has for {} s)",
                    request.agent_id,
                    limit.as_secs()
                ),
            ),
            journaled: false,
        })
    }
}

impl Drop for ClusterDispatcher {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Announces an abandoned run when the dispatch future is dropped before its report came.
struct Abandon<'a> {
    dispatcher: &'a ClusterDispatcher,
    key: String,
    workflow: dsmil_core::WorkflowId,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        self.dispatcher
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
        let released = self
            .dispatcher
            .released
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&self.workflow);
        if !self.armed || released {
            return;
        }
        let (client, subject) = (
            self.dispatcher.client.clone(),
            self.dispatcher.names.task_cancel_subject(),
        );
        let Ok(payload) = serde_json::to_vec(&CancelMessage {
            key: self.key.clone(),
        }) else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(err) = client.publish(subject, payload.into()).await {
                    tracing::warn!(error = %err, "cannot announce an abandoned task run");
                }
            });
        }
    }
}

impl crate::leases::Release for ClusterDispatcher {
    fn release(&self, id: dsmil_core::WorkflowId) {
        self.released
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
    }
}

#[async_trait]
impl TaskDispatcher for ClusterDispatcher {
    fn agents(&self) -> Vec<AgentId> {
        self.membership.agents()
    }

    fn knows_every_agent(&self) -> bool {
        self.membership.settled()
    }

    async fn dispatch(&self, request: TaskRequest) -> Result<Dispatched, PortError> {
        let key = run_key(&request);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), tx);
        let mut abandon = Abandon {
            dispatcher: self,
            key: key.clone(),
            workflow: request.workflow_id,
            armed: false,
        };
        let message = TaskMessage {
            key: key.clone(),
            owner: self.node.clone(),
            request: request.clone(),
        };
        let payload = serde_json::to_vec(&message)
            .map_err(|e| PortError::InvalidInput(format!("cannot encode the task: {e}")))?;
        let subject = self.names.task_subject(&request.agent_id);
        abandon.armed = true;
        publish_durably(&self.js, &subject, payload.into(), &key, DEFAULT_DEADLINE)
            .await
            .map_err(|e| {
                PortError::Unavailable(format!(
                    "cannot hand task {} over to the cluster ({subject}): {}",
                    request.task_id,
                    dsmil_core::report::chain(&e)
                ))
            })?;
        let outcome = self.wait(&request, rx).await;
        // A run given up on (no live host) is announced, so a host that comes back skips it.
        abandon.armed = !outcome.journaled;
        Ok(outcome)
    }
}
