//! Witnessed audit logs (the Certificate Transparency witness model, applied to a fleet): every
//! node publishes each signed tree head of its own audit log, and every other node checks it
//! against the last head of that node it accepted — by signature, by the key it pinned at
//! first sight, and by an RFC 9162 consistency proof it asks the node for — and countersigns
//! it with an entry in its *own* audit log. A node whose log was cut back or forked cannot
//! produce that proof: its witnesses raise a critical `audit_log_inconsistent` security event.
//!
//! Where things are, in the KV bucket `<p>-witness`:
//! - `head.<node>`: the latest head `<node>` published ([`SignedTreeHead`], with its key);
//! - `cosig.<node>.<witness>`: what `<witness>` holds of `<node>`'s log ([`Cosignature`]): the
//!   last head it accepted, the last one it countersigned (and the entry of its own log that
//!   does), and a problem when the log stopped being consistent with it.
//!
//! Proofs are asked on `<p>.audit.proof.<node>` (request/reply). A countersignature is written
//! for the first head seen of a node and then at most every [`COSIGN_EVERY`]: each one is an
//! audit entry, which makes a new head of the witness's own log for the others to witness, and
//! countersigning every head would keep the nodes writing to each other forever. Every head is
//! still checked, and the accepted head follows it.

mod check;

pub use check::{Seen, Step, check_proof, step};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::kv::{self, Operation, Store};
use async_nats::jetstream::stream::StorageType;
use chrono::{DateTime, Utc};
use dsmil_core::monitoring::{AlertLevel, SecurityEvent};
use dsmil_core::ports::{
    AuditSink, ConsistencyProof, HeadVerifier, SignedTreeHead, TreeHeadSource,
};
use dsmil_core::{Event, EventBus};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::error::ClusterError;
use crate::names::Names;
use crate::publish::{DEFAULT_DEADLINE, idempotent, open_bucket};

/// How often a witness countersigns a node whose heads keep checking out.
pub const COSIGN_EVERY: Duration = Duration::from_secs(60);
/// How long a witness waits for a node's consistency proof.
pub const PROOF_WAIT: Duration = Duration::from_secs(5);
/// How often heads whose proof could not be had are tried again.
const RETRY: Duration = Duration::from_secs(2);

/// What a witness holds of one node's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cosignature {
    /// The node whose log it is.
    pub node: String,
    /// The witness.
    pub witness: String,
    /// The node's signing key (PEM), pinned at the first head seen.
    pub public_key: String,
    /// The last head accepted (signature, key and consistency checked).
    pub accepted: Option<Seen>,
    /// When it was accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// The last head countersigned.
    pub cosigned: Option<Seen>,
    /// When.
    pub cosigned_at: Option<DateTime<Utc>>,
    /// The witness's audit entry that countersigns it (its sequence number).
    pub audit_sequence: Option<u64>,
    /// That entry's chain hash.
    pub audit_entry_hash: Option<String>,
    /// Why the node's latest head could not be accepted (its log was cut back, forked, signed
    /// by another key, or badly signed); `None` while it checks out.
    pub problem: Option<String>,
    /// When the problem was found.
    pub problem_at: Option<DateTime<Utc>>,
}

/// One node's log as the cluster witnesses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WitnessedNode {
    /// The node.
    pub node: String,
    /// The latest head it published.
    pub head: Option<SignedTreeHead>,
    /// What each witness holds of it.
    pub witnesses: Vec<Cosignature>,
}

/// The request on `<p>.audit.proof.<node>`.
#[derive(Debug, Serialize, Deserialize)]
struct ProofRequest {
    from: u64,
    to: u64,
}

/// The answer.
#[derive(Debug, Serialize, Deserialize)]
struct ProofAnswer {
    proof: Option<ConsistencyProof>,
    error: Option<String>,
}

/// This node as a publisher of its heads, a prover of its log and a witness of the others'.
pub struct Witness {
    bucket: Store,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness").finish_non_exhaustive()
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

/// What the witnessing task needs.
struct Ctx {
    client: Client,
    names: Names,
    me: String,
    bucket: Store,
    verifier: Arc<dyn HeadVerifier>,
    audit: Arc<dyn AuditSink>,
    bus: EventBus,
}

fn cosig_key(node: &str, witness: &str) -> String {
    format!("cosig.{node}.{witness}")
}

impl Witness {
    /// Starts publishing node `me`'s heads from `source`, answering proof requests from it,
    /// and witnessing the other nodes' heads (checked with `verifier`, countersigned in
    /// `audit`, problems published on `bus` and in `audit`).
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        client: Client,
        names: &Names,
        me: &str,
        replicas: usize,
        source: Arc<dyn TreeHeadSource>,
        verifier: Arc<dyn HeadVerifier>,
        audit: Arc<dyn AuditSink>,
        bus: EventBus,
    ) -> Result<Self, ClusterError> {
        let js = async_nats::jetstream::new(client.clone());
        let name = names.witness_bucket();
        let config = kv::Config {
            bucket: name.clone(),
            description: "DSMIL signed tree heads and their witnesses".to_owned(),
            history: 1,
            storage: StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        let bucket = open_bucket(&js, config, DEFAULT_DEADLINE).await?;
        let subject = names.proof_subject(me);
        let requests = client
            .subscribe(subject.clone())
            .await
            .map_err(ClusterError::js(format!("subscribe to {subject}")))?;
        let heads = bucket
            .watch_with_history("head.*")
            .await
            .map_err(ClusterError::js(format!("watch the heads in {name}")))?;
        let prover = tokio::spawn(answer_proofs(client.clone(), requests, Arc::clone(&source)));
        let publisher = tokio::spawn(publish_heads(bucket.clone(), me.to_owned(), source));
        let ctx = Ctx {
            client,
            names: names.clone(),
            me: me.to_owned(),
            bucket: bucket.clone(),
            verifier,
            audit,
            bus,
        };
        let witness = tokio::spawn(witness_heads(ctx, heads));
        Ok(Self {
            bucket,
            tasks: vec![prover, publisher, witness],
        })
    }

    /// Every node's latest head and what each witness holds of it, by node.
    pub async fn view(&self) -> Result<Vec<WitnessedNode>, ClusterError> {
        fn record<'a>(
            nodes: &'a mut BTreeMap<String, WitnessedNode>,
            node: &str,
        ) -> &'a mut WitnessedNode {
            nodes
                .entry(node.to_owned())
                .or_insert_with(|| WitnessedNode {
                    node: node.to_owned(),
                    head: None,
                    witnesses: Vec::new(),
                })
        }
        let mut nodes = BTreeMap::new();
        let mut keys = self
            .bucket
            .keys()
            .await
            .map_err(ClusterError::js("list the witness bucket"))?;
        while let Some(key) = keys.next().await {
            let Ok(key) = key else { continue };
            let Ok(Some(value)) = self.bucket.get(&key).await else {
                continue;
            };
            if let Some(node) = key.strip_prefix("head.") {
                record(&mut nodes, node).head = serde_json::from_slice(&value).ok();
            } else if let Some(rest) = key.strip_prefix("cosig.")
                && let Some((node, _)) = rest.split_once('.')
                && let Ok(cosig) = serde_json::from_slice::<Cosignature>(&value)
            {
                record(&mut nodes, node).witnesses.push(cosig);
            }
        }
        let mut out: Vec<WitnessedNode> = nodes.into_values().collect();
        for n in &mut out {
            n.witnesses.sort_by(|a, b| a.witness.cmp(&b.witness));
        }
        Ok(out)
    }
}

/// Puts every new head of this node in `head.<me>` (the current one first).
async fn publish_heads(bucket: Store, me: String, source: Arc<dyn TreeHeadSource>) {
    let mut heads = source.watch_heads();
    loop {
        let head = heads.borrow_and_update().clone();
        if let Some(head) = head
            && let Ok(value) = serde_json::to_vec(&head)
        {
            let key = format!("head.{me}");
            let put = idempotent(DEFAULT_DEADLINE, "publish a signed tree head", || {
                bucket.put(&key, value.clone().into())
            })
            .await;
            if let Err(err) = put {
                tracing::warn!(error = %err, size = head.tree_size, "cannot publish a signed tree head");
            }
        }
        if heads.changed().await.is_err() {
            return;
        }
    }
}

/// Answers consistency-proof requests about this node's log.
async fn answer_proofs(
    client: Client,
    mut requests: async_nats::Subscriber,
    source: Arc<dyn TreeHeadSource>,
) {
    while let Some(request) = requests.next().await {
        let Some(reply) = request.reply else { continue };
        let answer = match serde_json::from_slice::<ProofRequest>(&request.payload) {
            Ok(r) => match source.consistency(r.from, r.to).await {
                Ok(proof) => ProofAnswer {
                    proof: Some(proof),
                    error: None,
                },
                Err(err) => ProofAnswer {
                    proof: None,
                    error: Some(err.to_string()),
                },
            },
            Err(err) => ProofAnswer {
                proof: None,
                error: Some(format!("not a proof request: {err}")),
            },
        };
        let Ok(body) = serde_json::to_vec(&answer) else {
            continue;
        };
        if let Err(err) = client.publish(reply, body.into()).await {
            tracing::debug!(error = %err, "cannot answer a proof request");
        }
    }
}

/// Witnesses every head the other nodes publish; heads whose proof could not be had are tried
/// again every [`RETRY`].
async fn witness_heads(ctx: Ctx, mut heads: kv::Watch) {
    let mut waiting: HashMap<String, SignedTreeHead> = HashMap::new();
    let mut retry = tokio::time::interval(RETRY);
    loop {
        tokio::select! {
            entry = heads.next() => {
                let Some(entry) = entry else { return };
                let Ok(entry) = entry else { continue };
                if entry.operation != Operation::Put {
                    continue;
                }
                let Some(node) = entry.key.strip_prefix("head.") else { continue };
                if node == ctx.me {
                    continue;
                }
                match serde_json::from_slice::<SignedTreeHead>(&entry.value) {
                    Ok(head) => {
                        waiting.remove(node);
                        if !ctx.witness(node, &head).await {
                            waiting.insert(node.to_owned(), head);
                        }
                    }
                    Err(err) => tracing::warn!(node, error = %err, "an undecodable signed tree head"),
                }
            }
            _ = retry.tick() => {
                let due: Vec<(String, SignedTreeHead)> = waiting.drain().collect();
                for (node, head) in due {
                    if !ctx.witness(&node, &head).await {
                        waiting.insert(node, head);
                    }
                }
            }
        }
    }
}

impl Ctx {
    /// Checks `head` of `node`; false when it must be tried again (the proof could not be had).
    async fn witness(&self, node: &str, head: &SignedTreeHead) -> bool {
        let key = cosig_key(node, &self.me);
        let held: Option<Cosignature> = match self.bucket.get(&key).await {
            Ok(v) => v.and_then(|v| serde_json::from_slice(&v).ok()),
            Err(err) => {
                tracing::debug!(node, error = %err, "cannot read a cosignature");
                return false;
            }
        };
        let held = held.unwrap_or_else(|| Cosignature {
            node: node.to_owned(),
            witness: self.me.clone(),
            public_key: head.public_key.clone(),
            accepted: None,
            accepted_at: None,
            cosigned: None,
            cosigned_at: None,
            audit_sequence: None,
            audit_entry_hash: None,
            problem: None,
            problem_at: None,
        });
        match self.verifier.verify_head(head).await {
            Ok(true) => {}
            Ok(false) => {
                return self
                    .inconsistent(&key, held, head, "its head's signature does not verify")
                    .await;
            }
            Err(err) => {
                let why = format!("its head's signature cannot be checked: {err}");
                return self.inconsistent(&key, held, head, &why).await;
            }
        }
        if held.public_key != head.public_key {
            return self
                .inconsistent(
                    &key,
                    held,
                    head,
                    "its head is signed by another key than before",
                )
                .await;
        }
        match step(held.accepted.as_ref(), head) {
            Step::Known => true,
            Step::First => self.accept(&key, held, head).await,
            Step::Inconsistent(why) => self.inconsistent(&key, held, head, &why).await,
            Step::Prove { from, to } => match self.ask_proof(node, from, to).await {
                Ok(proof) => {
                    let accepted = held.accepted.unwrap_or(Seen::from(head));
                    match check_proof(&accepted, head, &proof) {
                        Ok(()) => self.accept(&key, held, head).await,
                        Err(why) => self.inconsistent(&key, held, head, &why).await,
                    }
                }
                Err(err) => {
                    tracing::debug!(node, error = %err, "no consistency proof yet; trying again");
                    false
                }
            },
        }
    }

    async fn ask_proof(&self, node: &str, from: u64, to: u64) -> Result<ConsistencyProof, String> {
        let body = serde_json::to_vec(&ProofRequest { from, to }).map_err(|e| e.to_string())?;
        let request = self
            .client
            .request(self.names.proof_subject(node), body.into());
        let reply = tokio::time::timeout(PROOF_WAIT, request)
            .await
            .map_err(|_| format!("node {node} did not answer within {PROOF_WAIT:?}"))?
            .map_err(|e| e.to_string())?;
        let answer: ProofAnswer =
            serde_json::from_slice(&reply.payload).map_err(|e| e.to_string())?;
        match (answer.proof, answer.error) {
            (Some(proof), _) => Ok(proof),
            (None, error) => Err(error.unwrap_or_else(|| "an empty answer".into())),
        }
    }

    /// Accepts `head` (and countersigns it when the last countersignature is old enough).
    async fn accept(&self, key: &str, mut held: Cosignature, head: &SignedTreeHead) -> bool {
        let now = Utc::now();
        held.accepted = Some(Seen::from(head));
        held.accepted_at = Some(now);
        if held.problem.take().is_some() {
            held.problem_at = None;
        }
        let due = held
            .cosigned_at
            .is_none_or(|at| (now - at).to_std().unwrap_or_default() >= COSIGN_EVERY);
        if due {
            let mut event = SecurityEvent::new(
                "audit_head_witnessed",
                AlertLevel::Info,
                "cluster",
                format!(
                    "witnessed node {}'s audit log at {} entries (root {}), consistent with every head of it seen before",
                    held.node,
                    head.tree_size,
                    dsmil_core::hex::encode(&head.root)
                ),
            );
            event.affected_resources = vec![format!("node:{}", held.node)];
            match self.audit.append(event).await {
                Ok(receipt) => {
                    held.cosigned = Some(Seen::from(head));
                    held.cosigned_at = Some(now);
                    held.audit_sequence = Some(receipt.sequence);
                    held.audit_entry_hash = Some(receipt.entry_hash);
                }
                Err(err) => {
                    tracing::warn!(node = held.node, error = %err, "cannot countersign a head")
                }
            }
        }
        self.store(key, &held).await
    }

    /// Records and reports (once per problem) that `head` is inconsistent with what was
    /// accepted; the accepted head stays, so later heads are judged against it too.
    async fn inconsistent(
        &self,
        key: &str,
        mut held: Cosignature,
        head: &SignedTreeHead,
        why: &str,
    ) -> bool {
        let first = held.problem.is_none();
        held.problem = Some(why.to_owned());
        if first {
            held.problem_at = Some(Utc::now());
            let mut event = SecurityEvent::new(
                "audit_log_inconsistent",
                AlertLevel::Critical,
                "cluster",
                format!(
                    "node {}'s audit log is not consistent with what this node witnessed: {why} (its head: {} entries, root {})",
                    held.node,
                    head.tree_size,
                    dsmil_core::hex::encode(&head.root)
                ),
            );
            event.affected_resources = vec![format!("node:{}", held.node)];
            tracing::error!(
                node = held.node,
                why,
                "a node's audit log is inconsistent with what was witnessed"
            );
            self.bus.publish(Event::Security(event.clone()));
            if let Err(err) = self.audit.append(event).await {
                tracing::error!(error = %err, "cannot record an inconsistent audit log");
            }
        }
        self.store(key, &held).await
    }

    async fn store(&self, key: &str, held: &Cosignature) -> bool {
        let Ok(value) = serde_json::to_vec(held) else {
            return true;
        };
        match self.bucket.put(key, value.into()).await {
            Ok(_) => true,
            Err(err) => {
                tracing::debug!(error = %err, "cannot store a cosignature; trying again");
                false
            }
        }
    }
}
