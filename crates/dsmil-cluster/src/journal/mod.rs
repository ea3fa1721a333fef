//! The workflow journal on JetStream: [`JetStreamJournal`] implements core's
//! [`JournalStore`], so the coordinator journals to a replicated stream exactly as it journals to
//! its SQLite file, and any node can read back and resume what another node wrote.
//!
//! Layout (names from [`Names`]):
//! - stream `<P>_JOURNAL`, file storage, `replicas` copies, subjects
//!   `<p>.journal.<workflow>.{created,state,result.<task>.<replica>,finished}`; every entry is
//!   one JSON [`Entry`]. A write returns once the stream's leader has it acknowledged by a
//!   quorum of the replicas (Raft): a server lost afterwards loses nothing.
//! - bucket `<p>-workflows`: one key per unfinished workflow (its creation time), put before its
//!   creation entry and deleted after its end, so [`JournalStore::unfinished`] reads a few
//!   keys instead of the whole stream. A workflow whose key exists but whose creation entry does
//!   not (the writer died between the two) is skipped and its key removed. A journal
//!   [`with_leases`](JetStreamJournal::with_leases) (a cluster node's) uses the workflow leases
//!   instead — taken before the creation entry, deleted by their owner after the end — and
//!   leaves the bucket alone: two writes fewer per workflow.
//!
//! Reads go to the stream's leader (`STREAM.MSG.GET`, not direct gets that a lagging follower
//! may answer), so a node resuming a workflow sees every acknowledged entry.

mod entry;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::Context;
use async_nats::jetstream::kv::{self, Store};
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind, Stream};
use async_trait::async_trait;
use chrono::Utc;
use dsmil_core::ports::{JournalError, JournalStore, TaskReport, TaskRequest, WorkflowRecord};
use dsmil_core::{AgentResult, WorkflowId, WorkflowResult, WorkflowSpec, WorkflowState};

use crate::error::ClusterError;
use crate::leases::Leases;
use crate::names::Names;
use crate::publish::{DEFAULT_DEADLINE, idempotent, open_bucket, publish_durably};
pub use entry::{Entry, Run};

/// How long the stream remembers message ids to drop a republished entry (a publish retried
/// after a lost acknowledgement).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How old an index entry without a creation entry must be before it is taken for the trace of
/// a writer that died between the two writes (rather than a creation under way).
const ORPHAN_AGE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The workflow journal in a replicated JetStream stream.
#[derive(Clone)]
pub struct JetStreamJournal {
    js: Context,
    names: Names,
    stream: Stream<()>,
    index: Store,
    deadline: Duration,
    leases: Option<Arc<Leases>>,
}

impl std::fmt::Debug for JetStreamJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamJournal")
            .field("stream", &self.names.journal_stream())
            .finish_non_exhaustive()
    }
}

impl JetStreamJournal {
    /// This journal for a node that owns what it creates: each new workflow's lease is taken
    /// before the workflow is journaled (see [`crate::leases`]).
    #[must_use]
    pub fn with_leases(mut self, leases: Arc<Leases>) -> Self {
        self.leases = Some(leases);
        self
    }

    /// Opens the journal of the cluster named by `names`, creating its stream and index bucket
    /// with `replicas` copies when they do not exist (and updating their settings when they do).
    pub async fn open(js: Context, names: Names, replicas: usize) -> Result<Self, ClusterError> {
        let stream_name = names.journal_stream();
        let config = stream::Config {
            name: stream_name.clone(),
            description: Some("DSMIL workflow journal".to_owned()),
            subjects: vec![format!("{}.journal.>", names.prefix())],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            duplicate_window: DUPLICATE_WINDOW,
            retention: stream::RetentionPolicy::Limits,
            ..Default::default()
        };
        // Servers that just started may not have elected a JetStream leader yet: retried.
        idempotent(DEFAULT_DEADLINE, "create the journal stream", || {
            js.create_or_update_stream(config.clone())
        })
        .await
        .map_err(ClusterError::js(format!(
            "create the journal stream {stream_name}"
        )))?;
        let stream = js
            .get_stream_no_info(&stream_name)
            .await
            .map_err(ClusterError::js(format!(
                "open the journal stream {stream_name}"
            )))?;
        let bucket = names.workflows_bucket();
        let kv_config = kv::Config {
            bucket: bucket.clone(),
            description: "DSMIL unfinished workflows".to_owned(),
            history: 1,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        let index = open_bucket(&js, kv_config, DEFAULT_DEADLINE).await?;
        Ok(Self {
            js,
            names,
            stream,
            index,
            deadline: DEFAULT_DEADLINE,
            leases: None,
        })
    }

    /// Appends `entry` to `subject` and waits for the quorum's acknowledgement, retrying (with
    /// one message id, so the entry is stored once) through server failures.
    async fn append(&self, subject: String, entry: &Entry) -> Result<(), ClusterError> {
        let payload =
            serde_json::to_vec(entry).map_err(ClusterError::codec("encode a journal entry"))?;
        let msg_id = uuid::Uuid::new_v4().to_string();
        publish_durably(&self.js, &subject, payload.into(), &msg_id, self.deadline)
            .await
            .map_err(ClusterError::js(format!("journal to {subject}")))?;
        Ok(())
    }

    /// Every entry of workflow `id`, in stream order; empty when it was never created.
    async fn entries(&self, id: WorkflowId) -> Result<Vec<Entry>, ClusterError> {
        let filter = self.names.journal_all(id);
        let mut out = Vec::new();
        let mut next = 1;
        loop {
            let found = idempotent(self.deadline, "read the journal", || async {
                match self
                    .stream
                    .get_first_raw_message_by_subject(&filter, next)
                    .await
                {
                    Ok(message) => Ok(Some(message)),
                    Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
                    Err(err) => Err(err),
                }
            })
            .await
            .map_err(ClusterError::js(format!("read the journal of {id}")))?;
            let Some(message) = found else {
                return Ok(out);
            };
            next = message.sequence + 1;
            out.push(Entry::decode(&message.payload)?);
        }
    }

    /// Journals the result of a run this node made for the owner of workflow `request`'s
    /// workflow: once per run (the run's message id), however often it is retried or the task
    /// redelivered.
    pub async fn record_run(
        &self,
        request: &TaskRequest,
        report: &TaskReport,
        node: &str,
    ) -> Result<(), ClusterError> {
        let replica = request.replica.unwrap_or(0);
        let subject = self
            .names
            .journal_result(request.workflow_id, &request.task_id, replica);
        let entry = Entry::Result {
            result: report.agent_result(request),
            run: Some(Run {
                generation: request.generation,
                node: node.to_owned(),
                report: report.clone(),
            }),
        };
        let payload =
            serde_json::to_vec(&entry).map_err(ClusterError::codec("encode a journal entry"))?;
        let msg_id = Names::result_msg_id(
            request.workflow_id,
            &request.task_id,
            replica,
            request.generation,
        );
        publish_durably(&self.js, &subject, payload.into(), &msg_id, self.deadline)
            .await
            .map_err(ClusterError::js(format!("journal to {subject}")))?;
        Ok(())
    }

    /// The report of run `request` (its workflow, task, replica and generation) when some node
    /// journaled it; read from the stream's leader.
    pub async fn find_run(
        &self,
        request: &TaskRequest,
    ) -> Result<Option<TaskReport>, ClusterError> {
        let subject = self.names.journal_result(
            request.workflow_id,
            &request.task_id,
            request.replica.unwrap_or(0),
        );
        let found = idempotent(self.deadline, "read a task's result", || async {
            match self.stream.get_last_raw_message_by_subject(&subject).await {
                Ok(message) => Ok(Some(message)),
                Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
                Err(err) => Err(err),
            }
        })
        .await
        .map_err(ClusterError::js(format!("read {subject}")))?;
        let Some(message) = found else {
            return Ok(None);
        };
        Ok(match Entry::decode(&message.payload)? {
            Entry::Result { run: Some(run), .. } if run.generation == request.generation => {
                Some(run.report)
            }
            _ => None,
        })
    }

    /// True when workflow `id` was indexed before `cutoff` (false when unknown or unreadable).
    async fn indexed_before(&self, id: WorkflowId, cutoff: chrono::DateTime<Utc>) -> bool {
        let Ok(Some(value)) = self.index.get(id.to_string()).await else {
            return false;
        };
        std::str::from_utf8(&value)
            .ok()
            .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
            .is_some_and(|at| at < cutoff)
    }

    /// Removes workflow `id` from the index of unfinished workflows (with leases there is
    /// nothing to remove: the lease is deleted by its owner once the workflow is finished).
    async fn unindex(&self, id: WorkflowId) -> Result<(), ClusterError> {
        if self.leases.is_some() {
            return Ok(());
        }
        let key = id.to_string();
        idempotent(self.deadline, "unindex a workflow", || {
            self.index.delete(&key)
        })
        .await
        .map_err(ClusterError::js(format!("unindex finished workflow {id}")))
    }
}

/// A cluster error as a journal error (kept whole as its cause).
fn journal(err: ClusterError) -> JournalError {
    JournalError::new(err)
}

#[async_trait]
impl JournalStore for JetStreamJournal {
    async fn create(
        &self,
        id: WorkflowId,
        spec: &WorkflowSpec,
        state: WorkflowState,
    ) -> Result<(), JournalError> {
        let at = Utc::now();
        if let Some(leases) = &self.leases {
            // The lease is the workflow's index entry.
            leases.take_new(id).await.map_err(journal)?;
        } else {
            let (key, value) = (id.to_string(), at.to_rfc3339());
            idempotent(self.deadline, "index a workflow", || {
                self.index.put(&key, value.clone().into())
            })
            .await
            .map_err(|e| journal(ClusterError::js(format!("index workflow {id}"))(e)))?;
        }
        let entry = Entry::Created {
            spec: spec.clone(),
            state,
            at,
        };
        self.append(self.names.journal_created(id), &entry)
            .await
            .map_err(journal)
    }

    async fn transition(
        &self,
        id: WorkflowId,
        state: WorkflowState,
        detail: &str,
    ) -> Result<(), JournalError> {
        let entry = Entry::State {
            state,
            detail: detail.to_owned(),
            at: Utc::now(),
        };
        self.append(self.names.journal_state(id), &entry)
            .await
            .map_err(journal)?;
        if state.is_terminal() {
            self.unindex(id).await.map_err(journal)?;
        }
        Ok(())
    }

    async fn task_result(&self, id: WorkflowId, result: &AgentResult) -> Result<(), JournalError> {
        let subject = self
            .names
            .journal_result(id, &result.task_id, result.replica());
        let entry = Entry::Result {
            result: result.clone(),
            run: None,
        };
        self.append(subject, &entry).await.map_err(journal)
    }

    async fn finish(&self, result: &WorkflowResult) -> Result<(), JournalError> {
        let id = result.workflow_id;
        let entry = Entry::Finished {
            result: result.clone(),
            at: Utc::now(),
        };
        self.append(self.names.journal_finished(id), &entry)
            .await
            .map_err(journal)?;
        self.unindex(id).await.map_err(journal)
    }

    async fn get(&self, id: WorkflowId) -> Result<Option<WorkflowRecord>, JournalError> {
        let entries = self.entries(id).await.map_err(journal)?;
        entry::record(id, entries).map_err(journal)
    }

    async fn unfinished(&self) -> Result<Vec<WorkflowRecord>, JournalError> {
        use futures_util::TryStreamExt as _;
        if let Some(leases) = &self.leases {
            let mut out = Vec::new();
            for id in leases.workflows().await.map_err(journal)? {
                if let Some(record) = self.get(id).await?
                    && !record.state.is_terminal()
                {
                    out.push(record);
                }
            }
            out.sort_by_key(|r| r.created_at);
            return Ok(out);
        }
        let keys: Vec<String> = self
            .index
            .keys()
            .await
            .map_err(|e| journal(ClusterError::js("list unfinished workflows")(e)))?
            .try_collect()
            .await
            .map_err(|e| journal(ClusterError::js("list unfinished workflows")(e)))?;
        let now = Utc::now();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let Ok(id) = key.parse::<WorkflowId>() else {
                tracing::warn!(key, "not a workflow id in the unfinished-workflow index");
                continue;
            };
            match self.get(id).await? {
                Some(record) if !record.state.is_terminal() => out.push(record),
                Some(_) => self.unindex(id).await.map_err(journal)?,
                None => {
                    // Indexed, not created: being created right now, or its writer died between
                    // the two writes — only an old one is dropped.
                    if self.indexed_before(id, now - ORPHAN_AGE).await {
                        tracing::info!(workflow = %id, "dropping an index entry without a journal");
                        self.unindex(id).await.map_err(journal)?;
                    }
                }
            }
        }
        out.sort_by_key(|r| r.created_at);
        Ok(out)
    }
}
