//! [`ClusterNode`]: one node of a cluster, assembled — the connection, the journal, the node's
//! membership, the task worker for the agents it hosts, and the dispatcher its coordinator
//! runs tasks through. What the composer builds when `[cluster]` is configured.

use std::sync::Arc;

use async_nats::Client;
use dsmil_core::ports::{
    AuditSink, HeadVerifier, JournalStore, RecordsImport, TaskDispatcher, TaskExecutor, Throttle,
    TreeHeadSource, WorkflowHost,
};
use dsmil_core::{EventBus, WorkflowId};
use serde::{Deserialize, Serialize};

use tokio::task::JoinHandle;

use crate::cancel;
use crate::config::{ClusterConfig, EmergencyScope};
use crate::connect::{connect, known_servers};
use crate::dispatch::{ClusterDispatcher, TaskWorker, tasks_stream};
use crate::emergency::ClusterThrottle;
use crate::error::ClusterError;
use crate::events::{EventRelay, RelayStats};
use crate::journal::JetStreamJournal;
use crate::leases::{Leases, Release};
use crate::lock;
use crate::membership::{Membership, NodeInfo};
use crate::names::Names;
use crate::records::RecordsShare;
use crate::witness::{Witness, WitnessedNode};

/// One node of a cluster.
pub struct ClusterNode {
    name: String,
    node: String,
    replicas: usize,
    client: Client,
    journal: JetStreamJournal,
    membership: Arc<Membership>,
    dispatcher: Arc<ClusterDispatcher>,
    worker: std::sync::Mutex<TaskWorker>,
    leases: Arc<Leases>,
    names: Names,
    host: std::sync::Mutex<Option<Arc<dyn WorkflowHost>>>,
    cancels: std::sync::Mutex<Option<JoinHandle<()>>>,
    records: std::sync::Mutex<Option<Arc<RecordsShare>>>,
    events: std::sync::Mutex<Option<EventRelay>>,
    events_per_second: u32,
    witness: std::sync::Mutex<Option<Arc<Witness>>>,
    emergency_scope: EmergencyScope,
    throttle: std::sync::Mutex<Option<Arc<ClusterThrottle>>>,
    health: std::sync::Mutex<Option<JoinHandle<()>>>,
    lease: std::time::Duration,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("cluster", &self.name)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// A node as the cluster view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// What it announced last.
    #[serde(flatten)]
    pub info: NodeInfo,
    /// Whether its heartbeat is current.
    pub live: bool,
    /// Milliseconds since its last heartbeat arrived here.
    pub last_seen_ms: u64,
    /// The unfinished workflows it owns, as this node last saw their leases.
    pub workflows: Vec<WorkflowId>,
}

/// The cluster as this node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The cluster's name (its prefix).
    pub cluster: String,
    /// This node's id.
    pub node_id: String,
    /// Copies kept of the journal and the task queue.
    pub replicas: usize,
    /// The NATS server this node is connected to now.
    pub server: String,
    /// Every node seen, this one included.
    pub members: Vec<MemberStatus>,
}

impl ClusterNode {
    /// Joins the cluster `config` describes (validated by the caller), hosting the agents
    /// `executor` runs. Refuses a node id a live node uses.
    pub async fn start(
        config: &ClusterConfig,
        executor: Arc<dyn TaskExecutor>,
    ) -> Result<Self, ClusterError> {
        let node = config.node_id();
        let client = connect(config, &node).await?;
        let replicas = config.replicas_for(known_servers(config, &client));
        let js = async_nats::jetstream::new(client.clone());
        let names = Names::new(&config.name);
        let lease = config.lease();
        let membership = Arc::new(
            Membership::join(&js, &names, &node, replicas, lease, Arc::clone(&executor)).await?,
        );
        let leases =
            Leases::open(&js, &names, &node, membership.instance(), replicas, lease).await?;
        let journal = JetStreamJournal::open(js.clone(), names.clone(), replicas)
            .await?
            .with_leases(Arc::clone(&leases));
        let tasks = tasks_stream(&js, &names, replicas).await?;
        let worker = TaskWorker::start(
            client.clone(),
            tasks,
            names.clone(),
            &node,
            replicas,
            journal.clone(),
            executor,
            Arc::clone(&membership),
        )
        .await?;
        let dispatcher = Arc::new(
            ClusterDispatcher::start(
                client.clone(),
                js,
                names.clone(),
                &node,
                journal.clone(),
                Arc::clone(&membership),
                lease,
            )
            .await?,
        );
        tracing::info!(node, cluster = config.name, replicas, "joined the cluster");
        Ok(Self {
            name: config.name.clone(),
            node,
            replicas,
            client,
            journal,
            membership,
            dispatcher,
            worker: std::sync::Mutex::new(worker),
            leases,
            names,
            host: std::sync::Mutex::new(None),
            cancels: std::sync::Mutex::new(None),
            records: std::sync::Mutex::new(None),
            events: std::sync::Mutex::new(None),
            events_per_second: config.events_per_second,
            witness: std::sync::Mutex::new(None),
            emergency_scope: config.emergency_scope,
            throttle: std::sync::Mutex::new(None),
            health: std::sync::Mutex::new(None),
            lease,
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// The replicated journal, for the coordinator.
    pub fn journal(&self) -> Arc<dyn JournalStore> {
        Arc::new(self.journal.clone())
    }

    /// The dispatcher, for the coordinator.
    pub fn dispatcher(&self) -> Arc<dyn TaskDispatcher> {
        Arc::clone(&self.dispatcher) as Arc<dyn TaskDispatcher>
    }

    /// Starts owning workflows for `host` (this node's coordinator): renewing the leases of
    /// those it runs, taking over those whose owner stopped, cancelling them when another node
    /// is asked to.
    pub async fn serve_workflows(&self, host: Arc<dyn WorkflowHost>) -> Result<(), ClusterError> {
        let cancels = cancel::serve(
            self.client.clone(),
            &self.names,
            &self.node,
            Arc::clone(&host),
        )
        .await?;
        self.leases.serve(
            Arc::clone(&host),
            self.journal(),
            Arc::clone(&self.dispatcher) as Arc<dyn Release>,
        );
        *lock(&self.cancels) = Some(cancels);
        *lock(&self.host) = Some(host);
        Ok(())
    }

    /// Cancels workflow `id` wherever it runs: here, or on its owner (asked through NATS).
    /// `false` when no node runs it.
    pub async fn cancel(&self, id: WorkflowId) -> Result<bool, ClusterError> {
        let host = lock(&self.host).clone();
        if host.is_some_and(|h| h.cancel(id)) {
            return Ok(true);
        }
        match self.leases.owner(id) {
            Some(owner) if owner != self.node => {
                cancel::forward(&self.client, &self.names, &owner, id).await
            }
            _ => Ok(false),
        }
    }

    /// Shares performance records with the other nodes (for nodes that each keep their own
    /// embedded store): the relay to hand this node's records to; every other node's records
    /// are stored through `import`.
    pub async fn share_records(
        &self,
        import: Arc<dyn RecordsImport>,
    ) -> Result<Arc<RecordsShare>, ClusterError> {
        let js = async_nats::jetstream::new(self.client.clone());
        let share = RecordsShare::start(js, &self.names, &self.node, self.replicas, import).await?;
        *lock(&self.records) = Some(Arc::clone(&share));
        Ok(share)
    }

    /// Relays this node's events on `bus` to the other nodes (at most `events_per_second` of
    /// each kind) and theirs onto `bus`, marked with the node they happened on; publishes the
    /// cluster's health on `bus` every lease (for cluster alerts).
    pub async fn relay_events(&self, bus: &EventBus) -> Result<(), ClusterError> {
        let relay = EventRelay::start(
            self.client.clone(),
            &self.names,
            &self.node,
            bus,
            self.events_per_second,
            self.replicas,
        )
        .await?;
        *lock(&self.events) = Some(relay);
        *lock(&self.health) = Some(crate::health::spawn(
            Arc::clone(&self.membership),
            bus.clone(),
            self.lease,
        ));
        Ok(())
    }

    /// What the event relay has done (`None` when events are not relayed).
    pub fn relay_stats(&self) -> Option<RelayStats> {
        lock(&self.events).as_ref().map(EventRelay::stats)
    }

    /// Publishes this node's signed audit heads from `source`, answers proof requests about its
    /// log, and witnesses the other nodes' logs: heads checked with `verifier`, countersigned
    /// in `audit`, an inconsistent log reported on `bus` and in `audit`.
    pub async fn witness(
        &self,
        source: Arc<dyn TreeHeadSource>,
        verifier: Arc<dyn HeadVerifier>,
        audit: Arc<dyn AuditSink>,
        bus: EventBus,
    ) -> Result<(), ClusterError> {
        let witness = Witness::start(
            self.client.clone(),
            &self.names,
            &self.node,
            self.replicas,
            source,
            verifier,
            audit,
            bus,
        )
        .await?;
        *lock(&self.witness) = Some(Arc::new(witness));
        Ok(())
    }

    /// Every node's latest audit head and what each witness holds of it (`None` when this
    /// node does not witness).
    pub async fn witnesses(&self) -> Option<Result<Vec<WitnessedNode>, ClusterError>> {
        let witness = lock(&self.witness).clone()?;
        Some(witness.view().await)
    }

    /// Wraps this node's throttle (`inner`, its coordinator) so that emergency stops follow
    /// `[cluster] emergency_scope` and cluster-wide stops from any node reach this one.
    pub async fn throttle(
        &self,
        inner: Arc<dyn Throttle>,
    ) -> Result<Arc<ClusterThrottle>, ClusterError> {
        let throttle = Arc::new(
            ClusterThrottle::start(
                self.client.clone(),
                &self.names,
                &self.node,
                self.replicas,
                self.emergency_scope,
                inner,
            )
            .await?,
        );
        *lock(&self.throttle) = Some(Arc::clone(&throttle));
        Ok(throttle)
    }

    /// The cluster-aware throttle, once [`ClusterNode::throttle`] made it.
    pub fn emergency(&self) -> Option<Arc<ClusterThrottle>> {
        lock(&self.throttle).clone()
    }

    /// The owner of workflow `id`, as this node last saw its lease.
    pub fn owner(&self, id: WorkflowId) -> Option<String> {
        self.leases.owner(id)
    }

    /// The cluster as this node sees it now.
    pub fn status(&self) -> ClusterStatus {
        let info = self.client.server_info();
        let mut owners = self.leases.owners();
        ClusterStatus {
            cluster: self.name.clone(),
            node_id: self.node.clone(),
            replicas: self.replicas,
            server: format!("{} ({}:{})", info.server_name, info.host, info.port),
            members: self
                .membership
                .members()
                .into_iter()
                .map(|(member, live)| MemberStatus {
                    last_seen_ms: u64::try_from(member.seen.elapsed().as_millis())
                        .unwrap_or(u64::MAX),
                    workflows: owners.remove(&member.info.node_id).unwrap_or_default(),
                    info: member.info,
                    live,
                })
                .collect(),
        }
    }

    /// Leaves the cluster: hands back the leases of workflows still running here (another node
    /// resumes them at once), stops pulling tasks, removes this node's heartbeat, flushes what is
    /// still buffered.
    pub async fn shutdown(&self) {
        if let Some(cancels) = lock(&self.cancels).take() {
            cancels.abort();
        }
        let host = lock(&self.host).take();
        if let Some(host) = host {
            self.leases
                .release_all(host.as_ref(), self.dispatcher.as_ref())
                .await;
        }
        lock(&self.worker).stop();
        lock(&self.witness).take();
        lock(&self.throttle).take();
        if let Some(health) = lock(&self.health).take() {
            health.abort();
        }
        if let Some(mut events) = lock(&self.events).take() {
            events.stop();
        }
        let records = lock(&self.records).take();
        if let Some(records) = records {
            records.close().await;
        }
        self.membership.leave().await;
        if let Err(err) = self.client.flush().await {
            tracing::debug!(error = %err, "cannot flush the NATS connection");
        }
    }
}
