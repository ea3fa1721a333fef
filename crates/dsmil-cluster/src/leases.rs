//! Who owns which workflow, and taking over the workflows of a node that stopped.
//!
//! Every workflow has a lease in the bucket `<p>-leases`: its key is the workflow id, its value
//! the owner ([`Lease`]). The journal creates it with the workflow (a compare-and-set on an
//! absent key), so no workflow is ever without an owner. The owner renews it every
//! [`TICKS`]th of a lease, each renewal a compare-and-set on the revision it wrote last.
//!
//! Every node watches the bucket. A lease that has not changed for one lease (measured on the
//! watcher's clock, when the change arrived), or that its owner released, is claimed by
//! compare-and-set on the revision seen, so exactly one node wins, and the winner resumes the
//! workflow from the journal through core's [`WorkflowHost`]: finished tasks are kept, a task
//! in flight on a live host is answered from the journal (its run key is unchanged), the rest
//! run. An owner whose renewal finds another node's lease stops running the workflow here
//! without journaling more ([`WorkflowHost::abandon`]). A finished workflow's lease is deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::Context;
use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, Store, UpdateErrorKind};
use async_nats::jetstream::stream::StorageType;
use dsmil_core::WorkflowId;
use dsmil_core::ports::{Adoption, JournalStore, WorkflowHost};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::{Instant, interval};

use crate::error::ClusterError;
use crate::lock;
use crate::names::Names;
use crate::publish::{DEFAULT_DEADLINE, open_bucket};

/// Renewals and checks per lease.
pub const TICKS: u32 = 4;

/// A workflow's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The owning node's id; empty when released (anyone may claim it at once).
    pub owner: String,
    /// The owning process's instance (a restarted node is a new instance).
    pub instance: String,
}

/// A lease as this node last saw it change.
#[derive(Debug, Clone)]
struct Observed {
    lease: Lease,
    revision: u64,
    at: Instant,
}

/// A lease this node holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    revision: u64,
    /// Since when the workflow has not been running here (created but not started yet, or
    /// finished and its lease not yet deleted).
    idle_since: Option<Instant>,
}

/// What the lease loop stops when a workflow is taken away: the dispatcher's runs of it must
/// not be cancelled (the new owner waits for them).
pub trait Release: Send + Sync {
    /// Workflow `id` is no longer this node's.
    fn release(&self, id: WorkflowId);
}

/// This node's leases and its view of everyone's.
pub struct Leases {
    bucket: Store,
    me: Lease,
    lease: Duration,
    held: Mutex<HashMap<WorkflowId, Held>>,
    observed: Arc<Mutex<HashMap<WorkflowId, Observed>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("node", &self.me.owner)
            .finish_non_exhaustive()
    }
}

impl Leases {
    /// Opens the lease bucket (creating it with `replicas` copies) for node `node`, process
    /// `instance`, and starts watching it.
    pub async fn open(
        js: &Context,
        names: &Names,
        node: &str,
        instance: &str,
        replicas: usize,
        lease: Duration,
    ) -> Result<Arc<Self>, ClusterError> {
        let name = names.leases_bucket();
        let config = kv::Config {
            bucket: name.clone(),
            description: "DSMIL workflow owners".to_owned(),
            history: 1,
            storage: StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        let bucket = open_bucket(js, config, DEFAULT_DEADLINE).await?;
        let mut watch = bucket
            .watch_all()
            .await
            .map_err(ClusterError::js(format!("watch the bucket {name}")))?;
        let observed: Arc<Mutex<HashMap<WorkflowId, Observed>>> = Arc::default();
        let watcher = {
            let observed = Arc::clone(&observed);
            tokio::spawn(async move {
                while let Some(entry) = watch.next().await {
                    let Ok(entry) = entry else { continue };
                    let Ok(id) = entry.key.parse::<WorkflowId>() else {
                        continue;
                    };
                    let mut observed = lock(&observed);
                    match entry.operation {
                        Operation::Put => match serde_json::from_slice::<Lease>(&entry.value) {
                            Ok(lease) => {
                                observed.insert(
                                    id,
                                    Observed {
                                        lease,
                                        revision: entry.revision,
                                        at: Instant::now(),
                                    },
                                );
                            }
                            Err(err) => tracing::warn!(workflow = %id, error = %err, "bad lease"),
                        },
                        Operation::Delete | Operation::Purge => {
                            observed.remove(&id);
                        }
                    }
                }
            })
        };
        Ok(Arc::new(Self {
            bucket,
            me: Lease {
                owner: node.to_owned(),
                instance: instance.to_owned(),
            },
            lease,
            held: Mutex::default(),
            observed,
            tasks: Mutex::new(vec![watcher]),
        }))
    }

    fn encode(lease: &Lease) -> Result<bytes::Bytes, ClusterError> {
        serde_json::to_vec(lease)
            .map(Into::into)
            .map_err(ClusterError::codec("encode a lease"))
    }

    /// Takes the lease of a new workflow `id` (before it is journaled). Refused when another
    /// node holds it.
    pub async fn take_new(&self, id: WorkflowId) -> Result<(), ClusterError> {
        let value = Self::encode(&self.me)?;
        let revision = match self.bucket.create(id.to_string(), value).await {
            Ok(revision) => revision,
            Err(err) if err.kind() == CreateErrorKind::AlreadyExists => {
                // A retried create whose first attempt landed finds this node's own lease.
                let entry = self
                    .bucket
                    .entry(id.to_string())
                    .await
                    .map_err(ClusterError::js(format!("read the lease of {id}")))?;
                let current = entry
                    .as_ref()
                    .and_then(|e| serde_json::from_slice::<Lease>(&e.value).ok());
                match (entry, current) {
                    (Some(e), Some(lease)) if lease == self.me => e.revision,
                    (_, lease) => {
                        return Err(ClusterError::NotOwner {
                            workflow: id.to_string(),
                            node: self.me.owner.clone(),
                            owner: lease.map(|l| l.owner),
                        });
                    }
                }
            }
            Err(err) => {
                return Err(ClusterError::js(format!("take the lease of {id}"))(err));
            }
        };
        lock(&self.held).insert(
            id,
            Held {
                revision,
                idle_since: None,
            },
        );
        Ok(())
    }

    /// Every workflow with a lease now, read from the bucket (not this node's view): the
    /// unfinished workflows, and finished ones whose lease is not deleted yet.
    pub async fn workflows(&self) -> Result<Vec<WorkflowId>, ClusterError> {
        use futures_util::TryStreamExt as _;
        let keys: Vec<String> = self
            .bucket
            .keys()
            .await
            .map_err(ClusterError::js("list the workflow leases"))?
            .try_collect()
            .await
            .map_err(ClusterError::js("list the workflow leases"))?;
        Ok(keys.iter().filter_map(|k| k.parse().ok()).collect())
    }

    /// The owner of workflow `id` as last seen, if it has a lease.
    pub fn owner(&self, id: WorkflowId) -> Option<String> {
        lock(&self.observed)
            .get(&id)
            .map(|o| o.lease.owner.clone())
            .filter(|o| !o.is_empty())
    }

    /// The workflows each node owns, as last seen.
    pub fn owners(&self) -> HashMap<String, Vec<WorkflowId>> {
        let mut out: HashMap<String, Vec<WorkflowId>> = HashMap::new();
        for (id, o) in lock(&self.observed).iter() {
            if !o.lease.owner.is_empty() {
                out.entry(o.lease.owner.clone()).or_default().push(*id);
            }
        }
        for ids in out.values_mut() {
            ids.sort();
        }
        out
    }

    /// Starts renewing this node's leases and claiming expired ones for `host`.
    pub fn serve(
        self: &Arc<Self>,
        host: Arc<dyn WorkflowHost>,
        journal: Arc<dyn JournalStore>,
        release: Arc<dyn Release>,
    ) {
        let leases = Arc::clone(self);
        let task = tokio::spawn(async move {
            let mut tick = interval(leases.lease / TICKS);
            loop {
                tick.tick().await;
                leases
                    .renew(host.as_ref(), journal.as_ref(), release.as_ref())
                    .await;
                leases.claim(host.as_ref()).await;
            }
        });
        lock(&self.tasks).push(task);
    }

    /// Renews the leases of the workflows running here; deletes those of finished ones; lets
    /// go of those another node took.
    async fn renew(
        &self,
        host: &dyn WorkflowHost,
        journal: &dyn JournalStore,
        release: &dyn Release,
    ) {
        let running: std::collections::HashSet<WorkflowId> = host.running().into_iter().collect();
        let held: Vec<(WorkflowId, Held)> =
            lock(&self.held).iter().map(|(k, v)| (*k, *v)).collect();
        let Ok(value) = Self::encode(&self.me) else {
            return;
        };
        for (id, mut h) in held {
            if running.contains(&id) {
                h.idle_since = None;
            } else {
                let idle = *h.idle_since.get_or_insert_with(Instant::now);
                if idle.elapsed() >= self.lease {
                    if !self.settle_idle(id, h, host, journal).await {
                        continue;
                    }
                    // Kept (resumed, waiting for its agents, or unreadable): asked again after
                    // another lease, renewed meanwhile.
                    h.idle_since = Some(Instant::now());
                }
            }
            lock(&self.held).insert(id, h);
            match self
                .bucket
                .update(id.to_string(), value.clone(), h.revision)
                .await
            {
                Ok(revision) => {
                    if let Some(held) = lock(&self.held).get_mut(&id) {
                        held.revision = revision;
                    }
                }
                Err(err) if err.kind() == UpdateErrorKind::WrongLastRevision => {
                    tracing::warn!(workflow = %id, "another node took this workflow over; stopping it here");
                    lock(&self.held).remove(&id);
                    release.release(id);
                    host.abandon(id);
                }
                Err(err) => tracing::debug!(workflow = %id, error = %err, "cannot renew a lease"),
            }
        }
    }

    /// A held workflow that has not run here for a lease: finished (its lease is deleted),
    /// never started or waiting for its agents (it is resumed here), or impossible to resume
    /// (its lease is handed back). `true` while this node keeps it.
    async fn settle_idle(
        &self,
        id: WorkflowId,
        h: Held,
        host: &dyn WorkflowHost,
        journal: &dyn JournalStore,
    ) -> bool {
        let finished = match journal.get(id).await {
            Ok(record) => record.is_none_or(|r| r.state.is_terminal()),
            Err(err) => {
                tracing::debug!(workflow = %id, error = %err, "cannot read a workflow");
                return true;
            }
        };
        if finished {
            match self
                .bucket
                .delete_expect_revision(id.to_string(), Some(h.revision))
                .await
            {
                Ok(()) => {
                    lock(&self.held).remove(&id);
                }
                Err(err) => tracing::debug!(workflow = %id, error = %err, "cannot delete a lease"),
            }
            return false;
        }
        match host.adopt(id).await {
            Ok(Adoption::Started) => {
                tracing::info!(workflow = %id, "resumed a workflow this node owns");
                true
            }
            Ok(Adoption::Nothing) => true,
            Ok(Adoption::Waiting(why)) => {
                tracing::debug!(workflow = %id, why, "still waiting to resume a workflow");
                true
            }
            Err(err) => {
                tracing::warn!(workflow = %id, error = %err, "cannot resume a workflow this node owns; releasing it");
                self.release_one(id).await;
                false
            }
        }
    }

    /// Claims the leases that expired or were released, and resumes their workflows here.
    async fn claim(&self, host: &dyn WorkflowHost) {
        let expired: Vec<(WorkflowId, Observed)> = {
            let held = lock(&self.held);
            lock(&self.observed)
                .iter()
                .filter(|(id, o)| {
                    !held.contains_key(id)
                        && (o.lease.owner.is_empty() || o.at.elapsed() >= self.lease)
                })
                .map(|(id, o)| (*id, o.clone()))
                .collect()
        };
        let Ok(value) = Self::encode(&self.me) else {
            return;
        };
        for (id, seen) in expired {
            let Ok(revision) = self
                .bucket
                .update(id.to_string(), value.clone(), seen.revision)
                .await
            else {
                continue; // Another node claimed it first, or NATS is unreachable.
            };
            lock(&self.held).insert(
                id,
                Held {
                    revision,
                    idle_since: None,
                },
            );
            match host.adopt(id).await {
                Ok(Adoption::Started) => {
                    tracing::info!(workflow = %id, from = seen.lease.owner, "took over a workflow")
                }
                // Finished or unknown: its lease goes at the next renewal (idle for a lease).
                Ok(Adoption::Nothing) => {}
                // Kept and asked again after a lease (see `settle_idle`).
                Ok(Adoption::Waiting(why)) => {
                    tracing::info!(workflow = %id, from = seen.lease.owner, why, "took over a workflow; waiting for its agents to be announced");
                }
                Err(err) => {
                    tracing::warn!(workflow = %id, error = %err, "cannot take over a workflow; releasing it");
                    self.release_one(id).await;
                }
            }
        }
    }

    /// Hands lease `id` back (owner empty) so another node claims it at once.
    async fn release_one(&self, id: WorkflowId) {
        let Some(h) = lock(&self.held).remove(&id) else {
            return;
        };
        let released = Lease {
            owner: String::new(),
            instance: String::new(),
        };
        let Ok(value) = Self::encode(&released) else {
            return;
        };
        if let Err(err) = self.bucket.update(id.to_string(), value, h.revision).await {
            tracing::debug!(workflow = %id, error = %err, "cannot release a lease");
        }
    }

    /// Stops renewing and claiming, and hands back the leases of the workflows still running
    /// here after `release` stopped their runs from being cancelled, so another node resumes
    /// them at once instead of after a lease.
    pub async fn release_all(&self, host: &dyn WorkflowHost, release: &dyn Release) {
        self.stop();
        let held: Vec<WorkflowId> = lock(&self.held).keys().copied().collect();
        for id in held {
            release.release(id);
            host.abandon(id);
            self.release_one(id).await;
        }
    }

    fn stop(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        self.stop();
    }
}
