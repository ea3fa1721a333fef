//! Who is in the cluster and what they host: each node beats its [`NodeInfo`] into the bucket
//! `<p>-nodes` every third of a lease, and watches the bucket to know the others. A node is
//! live while its last beat arrived less than [`LIVE_LEASES`] leases ago (measured on this
//! node's clock when the beat was received, so clocks need not agree). Joining with the id of
//! a node that still beats is refused ([`ClusterError::DuplicateNode`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::context::Context;
use async_nats::jetstream::kv::{self, Operation, Store};
use async_nats::jetstream::stream::StorageType;
use chrono::{DateTime, Utc};
use dsmil_core::AgentId;
use dsmil_core::ports::{HostedAgent, TaskExecutor};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

use crate::error::ClusterError;
use crate::names::Names;
use crate::publish::open_bucket;

/// How many leases without a beat make a node lost.
pub const LIVE_LEASES: u32 = 3;

/// How much later than this node another node may reconnect after an outage: the NATS
/// client's longest delay between reconnection attempts.
pub const PEER_RECONNECT_LAG: Duration = Duration::from_secs(4);

/// What a node announces about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its id (`[cluster] node_id`).
    pub node_id: String,
    /// This run of the process (a new id at every start): tells a restarted node from a
    /// second process using the same id.
    pub instance: String,
    /// Its DSMIL version.
    pub version: String,
    /// When this run started.
    pub started_at: DateTime<Utc>,
    /// When it sent this beat (its own clock; liveness uses the receiver's).
    pub beat_at: DateTime<Utc>,
    /// The agents it hosts, with load and breaker state.
    pub agents: Vec<HostedAgent>,
}

/// A node as this node sees it.
#[derive(Debug, Clone)]
pub struct Member {
    /// What it announced last.
    pub info: NodeInfo,
    /// When that beat arrived here.
    pub seen: Instant,
}

/// This node's membership: its heartbeat and its view of the others.
pub struct Membership {
    node: String,
    instance: String,
    lease: Duration,
    bucket: Store,
    view: Arc<Mutex<BTreeMap<String, Member>>>,
    /// Since when this node's beats have gone through without a failure (`None` while they
    /// fail: NATS is unreachable).
    connected_since: Arc<Mutex<Option<Instant>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// Joins as `node`, announcing the agents `executor` hosts, beating every `lease / 3`.
    /// Refuses when another live process beats under the same id.
    pub async fn join(
        js: &Context,
        names: &Names,
        node: &str,
        replicas: usize,
        lease: Duration,
        executor: Arc<dyn TaskExecutor>,
    ) -> Result<Self, ClusterError> {
        let bucket_name = names.nodes_bucket();
        let config = kv::Config {
            bucket: bucket_name.clone(),
            description: "DSMIL node heartbeats".to_owned(),
            history: 1,
            // A node gone for good disappears on its own.
            max_age: lease * 20,
            storage: StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        let bucket = open_bucket(js, config, lease * 4).await?;
        let instance = uuid::Uuid::new_v4().to_string();
        refuse_duplicate(&bucket, names, node, &instance, lease).await?;

        let started_at = Utc::now();
        let beat = {
            let (node, instance) = (node.to_owned(), instance.clone());
            move || NodeInfo {
                node_id: node.clone(),
                instance: instance.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                started_at,
                beat_at: Utc::now(),
                agents: executor.hosted(),
            }
        };
        put(&bucket, &beat()).await?;
        let view = Arc::new(Mutex::new(BTreeMap::new()));
        let mut watch = bucket
            .watch_all()
            .await
            .map_err(ClusterError::js(format!("watch the bucket {bucket_name}")))?;
        let watcher = {
            let view = Arc::clone(&view);
            tokio::spawn(async move {
                while let Some(entry) = watch.next().await {
                    let Ok(entry) = entry else { continue };
                    let mut view = view.lock().unwrap_or_else(PoisonError::into_inner);
                    match entry.operation {
                        Operation::Put => match serde_json::from_slice::<NodeInfo>(&entry.value) {
                            Ok(info) => {
                                view.insert(
                                    entry.key.clone(),
                                    Member {
                                        info,
                                        seen: Instant::now(),
                                    },
                                );
                            }
                            Err(err) => {
                                tracing::warn!(key = entry.key, error = %err, "bad node heartbeat");
                            }
                        },
                        Operation::Delete | Operation::Purge => {
                            view.remove(&entry.key);
                        }
                    }
                }
            })
        };
        let connected_since = Arc::new(Mutex::new(Some(Instant::now())));
        let beater_bucket = bucket.clone();
        let beater = {
            let connected_since = Arc::clone(&connected_since);
            tokio::spawn(async move {
                let mut last_sent = Instant::now();
                loop {
                    sleep(lease / 3).await;
                    let sent = put(&beater_bucket, &beat()).await;
                    let mut since = connected_since
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    match sent {
                        Ok(()) => {
                            // A gap of more than a lease between beats that went through is an
                            // outage too, even if no beat failed outright.
                            if last_sent.elapsed() > lease {
                                *since = None;
                            }
                            since.get_or_insert_with(Instant::now);
                            last_sent = Instant::now();
                        }
                        Err(err) => {
                            *since = None;
                            tracing::warn!(error = %err, "cannot send this node's heartbeat");
                        }
                    }
                }
            })
        };
        Ok(Self {
            node: node.to_owned(),
            instance,
            lease,
            bucket,
            view,
            connected_since,
            tasks: Mutex::new(vec![watcher, beater]),
        })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// This run's instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The cluster's lease (heartbeats come every third of it).
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Every node seen, live or not, with whether it is live.
    pub fn members(&self) -> Vec<(Member, bool)> {
        let limit = self.lease * LIVE_LEASES;
        self.view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|m| (m.clone(), m.seen.elapsed() < limit))
            .collect()
    }

    /// The live nodes hosting `agent`.
    pub fn hosts(&self, agent: &AgentId) -> Vec<String> {
        self.members()
            .into_iter()
            .filter(|(m, live)| *live && m.info.agents.iter().any(|a| &a.agent_id == agent))
            .map(|(m, _)| m.info.node_id)
            .collect()
    }

    /// Every agent some live node hosts.
    pub fn agents(&self) -> Vec<AgentId> {
        let mut agents: Vec<AgentId> = self
            .members()
            .into_iter()
            .filter(|(_, live)| *live)
            .flat_map(|(m, _)| m.info.agents.into_iter().map(|a| a.agent_id))
            .collect();
        agents.sort();
        agents.dedup();
        agents
    }

    /// Whether this node has been connected long enough to have heard every live node: its
    /// beats have gone through for [`LIVE_LEASES`] leases (the time after which a silent node
    /// counts as lost) plus [`PEER_RECONNECT_LAG`], so an agent missing from
    /// [`Membership::agents`] is really unhosted, not hosted by a node that reconnects later.
    pub fn settled(&self) -> bool {
        self.connected_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|t| t.elapsed() >= self.lease * LIVE_LEASES + PEER_RECONNECT_LAG)
    }

    /// Stops beating and removes this node's entry (a clean leave: the others see it go at
    /// once instead of after [`LIVE_LEASES`] leases).
    pub async fn leave(&self) {
        self.stop();
        if let Err(err) = self.bucket.delete(&self.node).await {
            tracing::warn!(error = %err, "cannot remove this node's heartbeat");
        }
    }
}

impl Membership {
    /// Stops beating and watching.
    fn stop(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes one heartbeat.
async fn put(bucket: &Store, info: &NodeInfo) -> Result<(), ClusterError> {
    let value = serde_json::to_vec(info).map_err(ClusterError::codec("encode a heartbeat"))?;
    bucket
        .put(&info.node_id, value.into())
        .await
        .map_err(ClusterError::js("send this node's heartbeat"))?;
    Ok(())
}

/// Refuses to join as `node` while another instance beats under that id: an entry from another
/// instance is watched for a lease and a second; if it was renewed meanwhile, its process is
/// alive. (A node restarted after a crash finds its own old entry, which stops changing.)
async fn refuse_duplicate(
    bucket: &Store,
    names: &Names,
    node: &str,
    instance: &str,
    lease: Duration,
) -> Result<(), ClusterError> {
    let read = || async {
        bucket
            .entry(node)
            .await
            .map_err(ClusterError::js("read this node's heartbeat"))
    };
    let Some(first) = read().await? else {
        return Ok(());
    };
    if first.operation != Operation::Put {
        return Ok(());
    }
    let Ok(info) = serde_json::from_slice::<NodeInfo>(&first.value) else {
        return Ok(());
    };
    if info.instance == instance {
        return Ok(());
    }
    sleep(lease + Duration::from_secs(1)).await;
    match read().await? {
        Some(now) if now.operation == Operation::Put && now.revision != first.revision => {
            let latest = serde_json::from_slice::<NodeInfo>(&now.value).unwrap_or(info);
            Err(ClusterError::DuplicateNode {
                node: node.to_owned(),
                cluster: names.prefix().to_owned(),
                other: latest.instance,
                seconds_ago: (Utc::now() - latest.beat_at).as_seconds_f64().max(0.0),
            })
        }
        _ => Ok(()),
    }
}
