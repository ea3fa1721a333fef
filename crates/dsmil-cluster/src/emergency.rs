//! Cluster-wide emergency stops: core's [`Throttle`] of a node, wrapped so that an emergency
//! stop (by the node's alert engine, or by an operator) reaches every node when its scope is
//! `cluster`: it is kept in the KV bucket `<p>-control` under `emergency`, which every node
//! watches (with history, so a node that starts or reconnects during it stops too). Each node applies it
//! through its own throttle, which cancels its workflows and audits the stop there.
//!
//! Clearing: a node's own (local) emergency is cleared by whoever set it; a cluster-wide one is
//! cleared on every node by a clear from any node (the announcement and the KV entry go), and a
//! remote clear never lifts a node's *own* local emergency.

use std::sync::{Arc, Mutex};

use async_nats::Client;
use async_nats::jetstream::kv::{self, Operation, Store};
use async_nats::jetstream::stream::StorageType;
use chrono::{DateTime, Utc};
use dsmil_core::ports::{PortError, Throttle};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::config::EmergencyScope;
use crate::error::ClusterError;
use crate::lock;
use crate::names::Names;
use crate::publish::{DEFAULT_DEADLINE, idempotent, open_bucket};

/// The key of the cluster-wide emergency in `<p>-control`.
const KEY: &str = "emergency";

/// A cluster-wide emergency stop in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEmergency {
    /// Why.
    pub reason: String,
    /// The node that stopped the cluster.
    pub from: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Where the emergency this node is in came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    None,
    /// This node's own, local.
    Local,
    /// A cluster-wide one (set here or elsewhere).
    Cluster,
}

/// A node's throttle with cluster-wide emergency stops.
pub struct ClusterThrottle {
    inner: Arc<dyn Throttle>,
    scope: EmergencyScope,
    node: String,
    bucket: Store,
    held: Arc<Mutex<Held>>,
    runtime: tokio::runtime::Handle,
    watcher: JoinHandle<()>,
}

impl std::fmt::Debug for ClusterThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterThrottle")
            .field("scope", &self.scope)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Drop for ClusterThrottle {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl ClusterThrottle {
    /// Wraps `inner` (node `node`'s coordinator) for `scope`, applies a cluster-wide emergency
    /// already in force, and follows those set and cleared from now on.
    pub async fn start(
        client: Client,
        names: &Names,
        node: &str,
        replicas: usize,
        scope: EmergencyScope,
        inner: Arc<dyn Throttle>,
    ) -> Result<Self, ClusterError> {
        let js = async_nats::jetstream::new(client);
        let name = names.control_bucket();
        let config = kv::Config {
            bucket: name.clone(),
            description: "DSMIL cluster-wide settings in force".to_owned(),
            history: 1,
            storage: StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        let bucket = open_bucket(&js, config, DEFAULT_DEADLINE).await?;
        // With history: the emergency in force (if any) arrives first.
        let mut watch = bucket
            .watch_with_history(KEY)
            .await
            .map_err(ClusterError::js(format!("watch {name}")))?;
        let held = Arc::new(Mutex::new(Held::None));
        let watcher = {
            let held = Arc::clone(&held);
            let inner = Arc::clone(&inner);
            let me = node.to_owned();
            tokio::spawn(async move {
                while let Some(entry) = watch.next().await {
                    let Ok(entry) = entry else { continue };
                    match entry.operation {
                        Operation::Put => {
                            let Ok(e) = serde_json::from_slice::<ClusterEmergency>(&entry.value)
                            else {
                                continue;
                            };
                            let already = *lock(&held) == Held::Cluster;
                            *lock(&held) = Held::Cluster;
                            if !already && e.from != me {
                                tracing::warn!(
                                    from = e.from,
                                    reason = e.reason,
                                    "cluster-wide emergency stop"
                                );
                                inner.emergency_stop(&format!(
                                    "cluster-wide emergency stop from node {}: {}",
                                    e.from, e.reason
                                ));
                            }
                        }
                        Operation::Delete | Operation::Purge => {
                            let mut h = lock(&held);
                            if *h == Held::Cluster {
                                *h = Held::None;
                                drop(h);
                                tracing::info!("the cluster-wide emergency stop was cleared");
                                inner.clear_emergency();
                            }
                        }
                    }
                }
            })
        };
        Ok(Self {
            inner,
            scope,
            node: node.to_owned(),
            bucket,
            held,
            runtime: tokio::runtime::Handle::current(),
            watcher,
        })
    }

    /// The scope stops have when none is asked for (`[cluster] emergency_scope`).
    pub fn default_scope(&self) -> EmergencyScope {
        self.scope
    }

    /// Stops this node, and records who holds the stop; for a cluster-wide stop, the entry
    /// to store in the control bucket.
    fn begin(&self, reason: &str, scope: EmergencyScope) -> Option<Vec<u8>> {
        {
            let mut h = lock(&self.held);
            match scope {
                EmergencyScope::Local if *h == Held::None => *h = Held::Local,
                EmergencyScope::Local => {}
                EmergencyScope::Cluster => *h = Held::Cluster,
            }
        }
        self.inner.emergency_stop(reason);
        (scope == EmergencyScope::Cluster).then(|| {
            serde_json::to_vec(&ClusterEmergency {
                reason: reason.to_owned(),
                from: self.node.clone(),
                at: Utc::now(),
            })
            .unwrap_or_default()
        })
    }

    /// Stops with `scope`: locally, or on every node (kept in the control bucket until
    /// cleared). Returns once a cluster-wide stop is stored.
    pub async fn stop(&self, reason: &str, scope: EmergencyScope) -> Result<(), ClusterError> {
        let Some(value) = self.begin(reason, scope) else {
            return Ok(());
        };
        idempotent(DEFAULT_DEADLINE, "announce an emergency stop", || {
            self.bucket.put(KEY, value.clone().into())
        })
        .await
        .map_err(ClusterError::js("store the cluster-wide emergency stop"))?;
        Ok(())
    }

    /// Clears this node's emergency; a cluster-wide one is cleared on every node.
    pub async fn clear(&self) -> Result<(), ClusterError> {
        let was = std::mem::replace(&mut *lock(&self.held), Held::None);
        self.inner.clear_emergency();
        if was == Held::Cluster {
            idempotent(DEFAULT_DEADLINE, "clear the emergency stop", || {
                self.bucket.delete(KEY)
            })
            .await
            .map_err(ClusterError::js("clear the cluster-wide emergency stop"))?;
        }
        Ok(())
    }

    /// The cluster-wide emergency in force, if any.
    pub async fn in_force(&self) -> Result<Option<ClusterEmergency>, ClusterError> {
        let value = self
            .bucket
            .get(KEY)
            .await
            .map_err(ClusterError::js("read the cluster-wide emergency stop"))?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }
}

/// The alert engine's emergency responses go through here: with `emergency_scope = "cluster"`
/// they stop (and clear) every node.
impl Throttle for ClusterThrottle {
    fn reduce_agent_concurrency(&self, factor: f64) -> Result<(), PortError> {
        self.inner.reduce_agent_concurrency(factor)
    }

    fn pause_non_critical(&self) {
        self.inner.pause_non_critical();
    }

    fn resume_non_critical(&self) {
        self.inner.resume_non_critical();
    }

    fn emergency_stop(&self, reason: &str) {
        let Some(value) = self.begin(reason, self.scope) else {
            return;
        };
        let bucket = self.bucket.clone();
        self.runtime.spawn(async move {
            let put = idempotent(DEFAULT_DEADLINE, "announce an emergency stop", || {
                bucket.put(KEY, value.clone().into())
            })
            .await;
            if let Err(err) = put {
                tracing::error!(error = %err, "cannot announce the emergency stop to the cluster");
            }
        });
    }

    fn clear_emergency(&self) {
        let was = std::mem::replace(&mut *lock(&self.held), Held::None);
        self.inner.clear_emergency();
        if was == Held::Cluster {
            let bucket = self.bucket.clone();
            self.runtime.spawn(async move {
                let deleted = idempotent(DEFAULT_DEADLINE, "clear the emergency stop", || {
                    bucket.delete(KEY)
                })
                .await;
                if let Err(err) = deleted {
                    tracing::error!(error = %err, "cannot clear the cluster-wide emergency stop");
                }
            });
        }
    }
}
