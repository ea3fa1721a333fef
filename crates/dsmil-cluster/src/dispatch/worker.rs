//! [`TaskWorker`]: pulls the tasks of the agents this node hosts and runs them through core's
//! [`TaskExecutor`] (coordination's bulkhead → breaker → retry → timeout path).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::Message;
use dsmil_core::AgentId;
use dsmil_core::ports::{FailureKind, TaskExecutor, TaskReport};
use futures_util::StreamExt as _;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, interval, sleep};

use super::claims::{Claim, Claims, Renewal};
use super::wire::{CancelMessage, DoneMessage, TaskMessage};
use crate::error::ClusterError;
use crate::journal::JetStreamJournal;
use crate::membership::Membership;
use crate::names::Names;
use crate::publish::{DEFAULT_DEADLINE, idempotent, publish_durably};

/// How long a cancelled run's key is remembered (a task still queued when its owner gave up).
const REMEMBER_CANCELLED: Duration = Duration::from_secs(600);
/// How long one pull waits for a task when there is none.
const LONG_POLL: Duration = Duration::from_secs(5);

/// Runs announced cancelled, and the runs in progress here (to stop them).
#[derive(Default)]
struct Cancels {
    cancelled: HashMap<String, Instant>,
    running: HashMap<String, Arc<Notify>>,
}

/// What every task handler of this node shares.
struct Shared {
    client: Client,
    names: Names,
    node: String,
    journal: JetStreamJournal,
    executor: Arc<dyn TaskExecutor>,
    membership: Arc<Membership>,
    claims: Claims,
    ack_wait: Duration,
    cancels: Mutex<Cancels>,
}

/// Whether a delivered run may start here.
enum Start<'a> {
    /// Its owner gave up on it.
    Cancelled,
    /// The same run runs here already: a second delivery of its message (a consumer's leader
    /// changed before the first delivery was recorded). The first run journals and acks it.
    Running,
    /// Registered as running here.
    Started(RunningHere<'a>),
}

/// A run registered as running on this node (so a second delivery here is left to it);
/// dropping it unregisters the run.
struct RunningHere<'a> {
    shared: &'a Shared,
    key: &'a str,
    /// Notified to stop the run.
    stop: Arc<Notify>,
}

impl Drop for RunningHere<'_> {
    fn drop(&mut self) {
        self.shared
            .cancels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running
            .remove(self.key);
    }
}

/// How long a pull loop waits before looking again while its agent's breaker is open here and
/// closed on another live host.
const BREAKER_WAIT: Duration = Duration::from_millis(250);

/// Pulls and runs the tasks of the agents this node hosts.
pub struct TaskWorker {
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for TaskWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskWorker")
            .field("agents", &(self.tasks.len().saturating_sub(1)))
            .finish()
    }
}

impl TaskWorker {
    /// Starts pulling for every agent `executor` hosts, as node `node`; a task not
    /// acknowledged within `lease` (its node died) is delivered again. Run claims are kept
    /// with `replicas` copies.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        client: Client,
        tasks: async_nats::jetstream::stream::Stream,
        names: Names,
        node: &str,
        replicas: usize,
        journal: JetStreamJournal,
        executor: Arc<dyn TaskExecutor>,
        membership: Arc<Membership>,
    ) -> Result<Self, ClusterError> {
        let lease = membership.lease();
        let cancel_subject = names.task_cancel_subject();
        let mut cancels = client
            .subscribe(cancel_subject.clone())
            .await
            .map_err(ClusterError::js(format!("subscribe to {cancel_subject}")))?;
        let claims = Claims::open(
            &async_nats::jetstream::new(client.clone()),
            &names,
            &membership,
            replicas,
        )
        .await?;
        let shared = Arc::new(Shared {
            client,
            names: names.clone(),
            node: node.to_owned(),
            journal,
            executor: Arc::clone(&executor),
            membership,
            claims,
            ack_wait: lease,
            cancels: Mutex::default(),
        });
        let mut handles = Vec::new();
        handles.push({
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                while let Some(message) = cancels.next().await {
                    if let Ok(cancel) = serde_json::from_slice::<CancelMessage>(&message.payload) {
                        shared.cancel(cancel.key);
                    }
                }
            })
        });
        for agent in executor.hosted() {
            let name = names.task_consumer(&agent.agent_id);
            let config = pull::Config {
                durable_name: Some(name.clone()),
                description: Some(format!("tasks for agent {}", agent.agent_id)),
                filter_subject: names.task_subject(&agent.agent_id),
                ack_policy: AckPolicy::Explicit,
                ack_wait: lease,
                max_deliver: -1,
                max_ack_pending: 100_000,
                ..Default::default()
            };
            // Retried: right after the servers restart, a consumer request can time out while
            // the stream elects its leader.
            let consumer: PullConsumer =
                idempotent(DEFAULT_DEADLINE, "create a task consumer", || {
                    tasks.get_or_create_consumer(&name, config.clone())
                })
                .await
                .map_err(ClusterError::js(format!("create the consumer {name}")))?;
            let slots = Arc::new(Semaphore::new(agent.capacity.max(1)));
            let shared = Arc::clone(&shared);
            handles.push(tokio::spawn(pull_loop(
                shared,
                agent.agent_id,
                consumer,
                slots,
            )));
        }
        Ok(Self { tasks: handles })
    }

    /// Stops pulling; runs in progress are dropped (their tasks are delivered to another
    /// host after the acknowledgement wait).
    pub fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for TaskWorker {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// Marks run `key` cancelled and stops it if it runs here.
    fn cancel(&self, key: String) {
        let mut cancels = self.cancels.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        cancels
            .cancelled
            .retain(|_, at| now.duration_since(*at) < REMEMBER_CANCELLED);
        if let Some(stop) = cancels.running.get(&key) {
            stop.notify_one();
        }
        cancels.cancelled.insert(key, now);
    }

    /// Registers run `key` as running here, unless it was cancelled or runs here already.
    fn start_run<'a>(&'a self, key: &'a str) -> Start<'a> {
        let mut cancels = self.cancels.lock().unwrap_or_else(PoisonError::into_inner);
        if cancels.cancelled.contains_key(key) {
            return Start::Cancelled;
        }
        if cancels.running.contains_key(key) {
            return Start::Running;
        }
        let stop = Arc::new(Notify::new());
        cancels.running.insert(key.to_owned(), Arc::clone(&stop));
        Start::Started(RunningHere {
            shared: self,
            key,
            stop,
        })
    }

    /// Tells the owner how run `key` went (best effort: the owner also polls the journal).
    async fn tell_owner(&self, owner: &str, key: &str, report: &TaskReport) {
        let done = DoneMessage {
            key: key.to_owned(),
            report: report.clone(),
        };
        let Ok(payload) = serde_json::to_vec(&done) else {
            return;
        };
        if let Err(err) = self
            .client
            .publish(self.names.done_subject(owner), payload.into())
            .await
        {
            tracing::debug!(error = %err, "cannot send a task report to its owner");
        }
    }
}

/// Pulls tasks while the agent has free slots here: one long poll for the first, then as many
/// more as there are free slots without waiting.
/// The runs live in the loop's [`JoinSet`]: stopping the loop stops them.
async fn pull_loop(
    shared: Arc<Shared>,
    agent: AgentId,
    consumer: PullConsumer,
    slots: Arc<Semaphore>,
) {
    let mut running = JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        let Ok(first) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        if shared.defer(&agent) {
            drop(first);
            sleep(BREAKER_WAIT).await;
            continue;
        }
        let batch = consumer
            .batch()
            .max_messages(1)
            .expires(LONG_POLL)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(err) => {
                tracing::warn!(error = %err, "cannot pull tasks; retrying");
                sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(Ok(message)) = batch.next().await else {
            continue;
        };
        running.spawn(handle(Arc::clone(&shared), message, first));
        let free = slots.available_permits();
        if free == 0 {
            continue;
        }
        let Ok(mut more) = consumer.fetch().max_messages(free).messages().await else {
            continue;
        };
        while let Some(Ok(message)) = more.next().await {
            match Arc::clone(&slots).try_acquire_owned() {
                Ok(slot) => {
                    running.spawn(handle(Arc::clone(&shared), message, slot));
                }
                // Cannot happen (this loop is the only taker); the task is delivered again.
                Err(_) => {
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                }
            }
        }
    }
}

/// Runs one delivered task: hand it over when this node's breaker is open, skip it when it was
/// cancelled, claim its run (leave it to a live node running it; answer from the journal when
/// it already ran); otherwise run it with progress acknowledgements, journal the result, tell
/// the owner, acknowledge.
async fn handle(shared: Arc<Shared>, message: Message, _slot: OwnedSemaphorePermit) {
    let task = match serde_json::from_slice::<TaskMessage>(&message.payload) {
        Ok(task) => task,
        Err(err) => {
            tracing::warn!(error = %err, "dropping an undecodable task message");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    // Pulled just before this node's breaker opened: another host with a closed breaker
    // takes it, as a new message (so the hand-over spends none of its retries).
    if shared.defer(&task.request.agent_id) {
        let to = shared.names.task_subject(&task.request.agent_id);
        let id = format!("defer.{}", uuid::Uuid::new_v4());
        match publish_durably(
            &shared.js(),
            &to,
            message.payload.clone(),
            &id,
            DEFAULT_DEADLINE,
        )
        .await
        {
            Ok(_) => {
                tracing::debug!(task = %task.request.task_id, "breaker open here: task handed to another host");
                let _ = message.double_ack().await;
                return;
            }
            Err(err) => tracing::debug!(error = %err, "cannot hand a task over; running it here"),
        }
    }
    let running = match shared.start_run(&task.key) {
        Start::Started(running) => running,
        Start::Running => {
            tracing::debug!(task = %task.request.task_id, "a second delivery of a run in progress here; left to it");
            return;
        }
        Start::Cancelled => {
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let Some(mut held) = claim(&shared, &task, &message).await else {
        return;
    };
    // Each earlier run that ended without a result (its node died, or could not reach the
    // journal) spent an attempt of the task's retry budget.
    let mut request = task.request.clone();
    let Some(left) = retries_left(request.retries, held.attempt) else {
        let spent = held.attempt.saturating_sub(1);
        let times = if spent == 1 {
            "once".to_owned()
        } else {
            format!("{spent} times")
        };
        let mut report = TaskReport::refused(
            FailureKind::Failed,
            format!(
                "task {} already ran {times} without a result (the nodes running it stopped): its {} retries are spent",
                request.task_id, request.retries
            ),
        );
        report.attempts = spent;
        report.node = Some(shared.node.clone());
        report.deliveries = held.attempt;
        finish(&shared, &task, &message, &report, &mut held).await;
        return;
    };
    request.retries = left;
    let run = shared.executor.execute(&request);
    tokio::pin!(run);
    let mut progress = interval(shared.ack_wait / 3);
    progress.tick().await;
    let outcome = loop {
        tokio::select! {
            report = &mut run => break Outcome::Ran(report),
            _ = progress.tick() => {
                let _ = message.ack_with(AckKind::Progress).await;
                if !held.renew(&shared, &task.key).await {
                    break Outcome::Lost;
                }
            }
            _ = running.stop.notified() => break Outcome::Stopped,
        }
    };
    match outcome {
        Outcome::Ran(mut report) => {
            report.node = Some(shared.node.clone());
            report.deliveries = held.attempt;
            finish(&shared, &task, &message, &report, &mut held).await;
        }
        Outcome::Stopped => {
            let _ = message.ack_with(AckKind::Term).await;
            shared
                .claims
                .give_up(&task.key, held.revision, held.attempt)
                .await;
        }
        Outcome::Lost => {
            tracing::warn!(task = %task.request.task_id, "another node took this run over (this node was cut off); stopped here");
        }
    }
}

/// Claims the run of a delivered task for this node (see [`super::claims`]). `None` when it
/// is not to run here: a live node runs it (the delivery is left to it), it already ran (the
/// delivery is answered from the journal), or NATS could not say (the delivery comes back).
async fn claim(shared: &Shared, task: &TaskMessage, message: &Message) -> Option<Held> {
    let live = |node: &str, instance: &str| shared.is_live(node, instance);
    match shared.claims.take(&task.key, live).await {
        // Fresh: nobody claimed it, so no result is journaled.
        Ok(Claim::Mine {
            revision,
            attempt,
            fresh: true,
        }) => Some(Held { revision, attempt }),
        // Taken over from a holder that is gone: it may have journaled the result first.
        Ok(Claim::Mine {
            revision, attempt, ..
        }) => match answered(shared, task, message).await {
            Journaled::No => Some(Held { revision, attempt }),
            Journaled::Answered => {
                shared.claims.done(&task.key, revision, attempt).await;
                None
            }
            Journaled::Unknown => {
                // Not run without knowing: the claim goes back as it was taken.
                shared
                    .claims
                    .give_up(&task.key, revision, attempt.saturating_sub(1))
                    .await;
                nak(message, Duration::from_secs(1)).await;
                None
            }
        },
        Ok(Claim::Held(holder)) => {
            tracing::debug!(task = %task.request.task_id, holder, "a delivery of a run another node runs; left to it");
            None
        }
        Ok(Claim::Done(by)) => {
            if !matches!(answered(shared, task, message).await, Journaled::Answered) {
                // Journaled an instant ago, or the journal could not be read: look again.
                tracing::debug!(task = %task.request.task_id, by, "a delivery of a finished run whose result is not readable yet");
                nak(message, Duration::from_millis(200)).await;
            }
            None
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot claim a task's run; the task waits");
            nak(message, Duration::from_secs(1)).await;
            None
        }
    }
}

/// Sends `message` back, to be delivered again after `delay`.
async fn nak(message: &Message, delay: Duration) {
    let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
}

/// What the journal says of a delivered run.
enum Journaled {
    /// Its result is there: the owner was told again and the message acknowledged.
    Answered,
    /// Not there.
    No,
    /// The journal could not be read.
    Unknown,
}

/// Answers a delivery from the journal when its run's result is there.
async fn answered(shared: &Shared, task: &TaskMessage, message: &Message) -> Journaled {
    match shared.journal.find_run(&task.request).await {
        Ok(Some(report)) => {
            shared.tell_owner(&task.owner, &task.key, &report).await;
            let _ = message.double_ack().await;
            Journaled::Answered
        }
        Ok(None) => Journaled::No,
        Err(err) => {
            tracing::warn!(error = %err, "cannot check the journal for a task's result");
            Journaled::Unknown
        }
    }
}

/// How a run here ended.
enum Outcome {
    /// It ran to a report.
    Ran(TaskReport),
    /// Its owner cancelled it.
    Stopped,
    /// Its claim was taken over by another node: the run goes on there.
    Lost,
}

/// This node's claim on a run it runs.
struct Held {
    revision: u64,
    attempt: u32,
}

impl Held {
    /// Renews the claim; `false` when another node took it over.
    async fn renew(&mut self, shared: &Shared, key: &str) -> bool {
        match shared.claims.renew(key, self.revision, self.attempt).await {
            Renewal::Kept(revision) => {
                self.revision = revision;
                true
            }
            Renewal::Unconfirmed => true,
            Renewal::Lost => false,
        }
    }
}

impl Shared {
    /// Whether node `node` runs as `instance` and is live, as its heartbeats say: `None` when
    /// this node has not heard of `node` (yet); `Some(false)` when it is lost or restarted.
    fn is_live(&self, node: &str, instance: &str) -> Option<bool> {
        self.membership
            .members()
            .iter()
            .find(|(m, _)| m.info.node_id == node)
            .map(|(m, live)| *live && m.info.instance == instance)
    }

    /// Whether `agent`'s tasks should go to another host: its breaker is open here and not on
    /// some other live host (as their heartbeats last said). With every host's breaker open
    /// the task stays here and is refused as it would be on one host.
    fn defer(&self, agent: &AgentId) -> bool {
        let open_here = self
            .executor
            .hosted()
            .iter()
            .any(|a| &a.agent_id == agent && a.breaker == "open");
        open_here
            && self.membership.members().iter().any(|(m, live)| {
                *live
                    && m.info.node_id != self.node
                    && m.info
                        .agents
                        .iter()
                        .any(|a| &a.agent_id == agent && a.breaker != "open")
            })
    }

    fn js(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client.clone())
    }
}

/// The retries a run may still make when it is run `attempt` of a task allowed `retries`
/// retries: every earlier run spent one attempt. `None` when none is left.
pub(crate) fn retries_left(retries: u32, attempt: u32) -> Option<u32> {
    retries.checked_sub(attempt.saturating_sub(1))
}

/// Journals the run's `report`, tells the owner, acknowledges the task and marks the run's
/// claim done; a report that cannot be journaled has the task delivered again (the claim
/// given up, so the next delivery runs it at once). Progress acknowledgements and claim renewals go on
/// while the result is being journaled: a journal write retried through a server failure (a
/// stream leader being elected) can take longer than the acknowledgement wait, and the task
/// must not be run again elsewhere before its result is journaled.
async fn finish(
    shared: &Shared,
    task: &TaskMessage,
    message: &Message,
    report: &TaskReport,
    held: &mut Held,
) {
    let record = shared
        .journal
        .record_run(&task.request, report, &shared.node);
    tokio::pin!(record);
    let mut progress = interval(shared.ack_wait / 3);
    progress.tick().await;
    let recorded = loop {
        tokio::select! {
            r = &mut record => break r,
            _ = progress.tick() => {
                let _ = message.ack_with(AckKind::Progress).await;
                held.renew(shared, &task.key).await;
            }
        }
    };
    if let Err(err) = recorded {
        tracing::warn!(error = %err, "cannot journal a task result; the task is delivered again");
        shared
            .claims
            .give_up(&task.key, held.revision, held.attempt)
            .await;
        nak(message, Duration::from_secs(1)).await;
        return;
    }
    shared.tell_owner(&task.owner, &task.key, report).await;
    if let Err(err) = message.double_ack().await {
        // Journaled: a redelivery finds the run and only reports it again.
        tracing::debug!(error = %err, "task acknowledgement not confirmed");
    }
    shared
        .claims
        .done(&task.key, held.revision, held.attempt)
        .await;
}

#[cfg(test)]
mod tests {
    use super::retries_left;

    #[test]
    fn each_earlier_run_spends_a_retry() {
        assert_eq!(retries_left(3, 1), Some(3));
        assert_eq!(retries_left(3, 2), Some(2));
        assert_eq!(retries_left(3, 4), Some(0));
        assert_eq!(retries_left(3, 5), None);
        assert_eq!(retries_left(0, 1), Some(0));
        assert_eq!(retries_left(0, 2), None);
        assert_eq!(retries_left(0, 0), Some(0));
    }
}
