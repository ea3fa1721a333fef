//! Learning across hosts without a shared database: every node publishes the performance
//! records it stores to the stream `<P>_RECORDS` (subject `<p>.records.<node>`), and every node
//! reads the whole stream through its own durable consumer `records-<node>` into its embedded
//! store, so each node's router learns from every node's runs.
//!
//! - Publishing never blocks the learning engine: records wait in a bounded queue
//!   ([`QUEUE_BATCHES`]) and go out in batches of up to [`BATCH_MAX`]; what a full queue had to
//!   drop is counted ([`RecordsShare::dropped`]) and logged.
//! - Each batch carries a message id made of its records' ids, so a publish retried across a
//!   server failure is stored once; importing is idempotent on `record_id`, so a batch
//!   delivered twice stores nothing twice.
//! - A node that joins (or comes back) reads what it missed from where its consumer stopped;
//!   the stream keeps records for [`RETENTION`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, Config as PullConfig};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::Context;
use async_nats::jetstream::message::Message;
use async_nats::jetstream::{AckKind, stream};
use dsmil_core::learning::AgentPerformance;
use dsmil_core::ports::{RecordsImport, RecordsRelay};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::ClusterError;
use crate::lock;
use crate::names::Names;
use crate::publish::{DEFAULT_DEADLINE, idempotent, publish_durably};

/// Most records in one published batch.
pub const BATCH_MAX: usize = 256;
/// Batches (of any size) that may wait for publishing before new ones are dropped.
pub const QUEUE_BATCHES: usize = 4096;
/// How long the stream keeps records (what a node that was away longer cannot catch up on).
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Pause before a batch whose import failed is delivered again.
const RETRY_IMPORT: Duration = Duration::from_secs(1);

/// This node's share in the cluster's records: the relay the learning engine hands its
/// records to, and the import of every other node's.
pub struct RecordsShare {
    queue: std::sync::Mutex<Option<mpsc::Sender<Vec<AgentPerformance>>>>,
    dropped: AtomicU64,
    publisher: std::sync::Mutex<Option<JoinHandle<()>>>,
    importer: JoinHandle<()>,
}

/// How long [`RecordsShare::close`] waits for queued records to be published.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

impl std::fmt::Debug for RecordsShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordsShare")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl RecordsShare {
    /// Opens the records stream (creating it with `replicas` copies), starts publishing what
    /// this node `node` stores and importing what the others store into `import`.
    pub async fn start(
        js: Context,
        names: &Names,
        node: &str,
        replicas: usize,
        import: Arc<dyn RecordsImport>,
    ) -> Result<Arc<Self>, ClusterError> {
        let name = names.records_stream();
        let config = stream::Config {
            name: name.clone(),
            description: Some("DSMIL performance records of every node".to_owned()),
            subjects: vec![format!("{}.records.>", names.prefix())],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            max_age: RETENTION,
            ..Default::default()
        };
        let stream = idempotent(DEFAULT_DEADLINE, "create the records stream", || {
            js.get_or_create_stream(config.clone())
        })
        .await
        .map_err(ClusterError::js(format!(
            "create the records stream {name}"
        )))?;
        let durable = Names::records_consumer(node);
        let consumer_config = PullConfig {
            durable_name: Some(durable.clone()),
            description: Some(format!("records for node {node}")),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_deliver: -1,
            ..Default::default()
        };
        // Retried like the stream: right after the servers restart, a consumer request can
        // time out while the stream elects its leader.
        let consumer = idempotent(DEFAULT_DEADLINE, "create the records consumer", || {
            stream.get_or_create_consumer(&durable, consumer_config.clone())
        })
        .await
        .map_err(ClusterError::js(format!("create the consumer {durable}")))?;
        let (queue, outgoing) = mpsc::channel(QUEUE_BATCHES);
        let publisher = tokio::spawn(publish_loop(js, names.records_subject(node), outgoing));
        let importer = tokio::spawn(import_loop(consumer, names.records_subject(node), import));
        Ok(Arc::new(Self {
            queue: std::sync::Mutex::new(Some(queue)),
            dropped: AtomicU64::new(0),
            publisher: std::sync::Mutex::new(Some(publisher)),
            importer,
        }))
    }

    /// Records dropped because the publishing queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops importing, publishes what is queued (waiting up to [`CLOSE_WAIT`]) and stops
    /// publishing; records relayed afterwards are counted as dropped.
    pub async fn close(&self) {
        self.importer.abort();
        lock(&self.queue).take();
        let publisher = lock(&self.publisher).take();
        if let Some(mut publisher) = publisher
            && tokio::time::timeout(CLOSE_WAIT, &mut publisher)
                .await
                .is_err()
        {
            tracing::warn!("records still queued for the cluster at shutdown were not sent");
            publisher.abort();
        }
    }
}

impl Drop for RecordsShare {
    fn drop(&mut self) {
        self.importer.abort();
        if let Some(publisher) = lock(&self.publisher).take() {
            publisher.abort();
        }
    }
}

impl RecordsRelay for RecordsShare {
    fn relay(&self, records: Vec<AgentPerformance>) {
        if records.is_empty() {
            return;
        }
        let n = records.len() as u64;
        let sent = lock(&self.queue)
            .as_ref()
            .is_some_and(|q| q.try_send(records).is_ok());
        if !sent {
            let total = self.dropped.fetch_add(n, Ordering::Relaxed) + n;
            tracing::warn!(
                dropped = n,
                total,
                "the records queue to the cluster is full or closed; these records stay on this node only"
            );
        }
    }
}

/// The message id of a batch: its first and last record ids (unique) and its size, so the
/// same batch sent again has the same id.
fn batch_id(records: &[AgentPerformance]) -> String {
    let id = |r: Option<&AgentPerformance>| r.and_then(|r| r.record_id).unwrap_or_default();
    format!(
        "rec.{}.{}.{}",
        id(records.first()),
        id(records.last()),
        records.len()
    )
}

async fn publish_loop(
    js: Context,
    subject: String,
    mut outgoing: mpsc::Receiver<Vec<AgentPerformance>>,
) {
    let mut waiting: Vec<Vec<AgentPerformance>> = Vec::new();
    while outgoing.recv_many(&mut waiting, 64).await > 0 {
        let records: Vec<AgentPerformance> = waiting.drain(..).flatten().collect();
        for batch in records.chunks(BATCH_MAX) {
            let payload = match serde_json::to_vec(batch) {
                Ok(p) => p,
                Err(err) => {
                    tracing::error!(error = %err, "cannot encode records for the cluster");
                    continue;
                }
            };
            let id = batch_id(batch);
            if let Err(err) =
                publish_durably(&js, &subject, payload.into(), &id, DEFAULT_DEADLINE).await
            {
                tracing::warn!(records = batch.len(), error = %err,
                    "cannot publish records to the cluster; they stay on this node only");
            }
        }
    }
}

async fn import_loop(
    consumer: async_nats::jetstream::consumer::Consumer<pull::Config>,
    own: String,
    import: Arc<dyn RecordsImport>,
) {
    loop {
        let mut messages = match consumer.messages().await {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the records stream; retrying");
                tokio::time::sleep(RETRY_IMPORT).await;
                continue;
            }
        };
        while let Some(message) = messages.next().await {
            let Ok(message) = message else {
                break; // The pull stream is re-created.
            };
            import_one(&message, &own, import.as_ref()).await;
        }
    }
}

/// Imports one batch (skipping this node's own) and acknowledges it; a batch the store could
/// not take is delivered again; one that cannot be decoded is dropped with an error.
async fn import_one(message: &Message, own: &str, import: &dyn RecordsImport) {
    let ack = if message.subject.as_str() == own {
        AckKind::Ack
    } else {
        match serde_json::from_slice::<Vec<AgentPerformance>>(&message.payload) {
            Ok(records) => match import.import(records).await {
                Ok(new) => {
                    tracing::debug!(new, from = %message.subject, "imported records");
                    AckKind::Ack
                }
                Err(err) => {
                    tracing::warn!(error = %err, from = %message.subject,
                        "cannot store records from the cluster; retrying");
                    AckKind::Nak(Some(RETRY_IMPORT))
                }
            },
            Err(err) => {
                tracing::error!(error = %err, from = %message.subject,
                    "dropping an undecodable records batch");
                AckKind::Term
            }
        }
    };
    if let Err(err) = message.ack_with(ack).await {
        tracing::debug!(error = %err, "cannot acknowledge a records batch");
    }
}
