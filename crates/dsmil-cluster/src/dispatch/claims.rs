//! Run claims: before a node runs a delivered task it claims the run's key in the KV bucket
//! `<p>-runs` (a create, so one node wins) and keeps the claim fresh while the run lasts. A
//! second delivery of the same run — JetStream delivers a message again when a consumer's
//! leader changes before the first delivery was replicated — finds the claim of a live holder
//! and leaves the run to it instead of running it a second time. A holder that died (its node
//! lost or restarted, or its claim not renewed for [`STALE_LEASES`] leases) is replaced: the
//! next delivery takes the claim over by compare-and-set, one attempt more. Once the result
//! is journaled the claim is marked done and the run never starts again (a delivery that does
//! not see the result yet waits for it); claims expire after an hour.
//!
//! The claim also counts the run's attempts, so a delivery that was only left to a live holder
//! spends none of the task's retry budget.

use std::time::{Duration, SystemTime};

use async_nats::jetstream::context::Context;
use async_nats::jetstream::kv::{self, CreateErrorKind, Store, UpdateErrorKind};
use async_nats::jetstream::stream::StorageType;
use serde::{Deserialize, Serialize};

use crate::error::ClusterError;
use crate::membership::Membership;
use crate::names::Names;
use crate::publish::{DEFAULT_DEADLINE, idempotent, open_bucket};

/// Leases after its last renewal that a claim counts as abandoned. A live holder renews every
/// third of a lease; the margin absorbs the clocks of the nodes and the NATS servers drifting
/// apart by up to a lease and a half (the claim's age is the server's write time against this
/// node's clock).
pub const STALE_LEASES: u32 = 2;

/// How long an unrenewed claim stays in the bucket: longer than any redelivery of a run whose
/// result is journaled (a later one finds the result in the journal first).
const CLAIM_MAX_AGE: Duration = Duration::from_secs(3600);

/// The holder of a run, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Holder {
    /// The node running it (empty: given up, free to take).
    node: String,
    /// That node's run of the process.
    instance: String,
    /// Runs started so far for this task, this one included.
    attempt: u32,
    /// The run's result is journaled: it never runs again.
    #[serde(default)]
    done: bool,
}

/// What claiming a delivered run came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node runs it now: attempt `attempt` (1 for a first run), claim revision
    /// `revision` (to renew it and mark it done).
    Mine {
        /// The claim's revision.
        revision: u64,
        /// Runs started for this task, this one included.
        attempt: u32,
        /// Nobody had claimed the run within the claims' lifetime, so it cannot have been
        /// journaled (a result is journaled under a claim): no need to look in the journal.
        fresh: bool,
    },
    /// A live holder runs it (node `0`): this delivery is left to it.
    Held(String),
    /// Its result is journaled (by node `0`): answer from the journal, never run it again.
    Done(String),
}

/// Whether a renewal kept the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Kept (the new revision).
    Kept(u64),
    /// Another node took it over (this node was judged gone): stop the run here.
    Lost,
    /// Not confirmed (NATS busy or unreachable): tried again at the next tick.
    Unconfirmed,
}

/// One node's run claims.
#[derive(Debug, Clone)]
pub struct Claims {
    bucket: Store,
    node: String,
    instance: String,
    lease: Duration,
}

impl Claims {
    /// Opens (creating) `<p>-runs` with `replicas` copies for this node.
    pub async fn open(
        js: &Context,
        names: &Names,
        membership: &Membership,
        replicas: usize,
    ) -> Result<Self, ClusterError> {
        let config = kv::Config {
            bucket: names.runs_bucket(),
            description: "DSMIL run claims (which node runs a delivered task)".to_owned(),
            history: 1,
            max_age: CLAIM_MAX_AGE,
            storage: StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        let bucket = open_bucket(js, config, DEFAULT_DEADLINE).await?;
        Ok(Self {
            bucket,
            node: membership.node().to_owned(),
            instance: membership.instance().to_owned(),
            lease: membership.lease(),
        })
    }

    /// This node as the holder of attempt `attempt`.
    fn me(&self, attempt: u32, done: bool) -> Holder {
        Holder {
            node: self.node.clone(),
            instance: self.instance.clone(),
            attempt,
            done,
        }
    }

    /// Claims run `key`: at once when nobody holds it; taken over when its holder is gone
    /// (`live` says whether a node's instance is live: `None` when this node has not heard of
    /// the node — then only the claim's age tells); otherwise left to its holder.
    /// `Err` when NATS cannot answer (the delivery waits).
    pub async fn take(
        &self,
        run: &str,
        live: impl Fn(&str, &str) -> Option<bool>,
    ) -> Result<Claim, ClusterError> {
        let key = &claim_key(run);
        // One try: "already exists" is an answer, not a failure to retry; any other error has
        // the delivery wait and come again.
        match self.bucket.create(key, encode(&self.me(1, false))?).await {
            Ok(revision) => {
                return Ok(Claim::Mine {
                    revision,
                    attempt: 1,
                    fresh: true,
                });
            }
            Err(err) if err.kind() == CreateErrorKind::AlreadyExists => {}
            Err(err) => return Err(ClusterError::js(format!("claim run {key}"))(err)),
        }
        let entry = idempotent(DEFAULT_DEADLINE, "read a run claim", || {
            self.bucket.entry(key)
        })
        .await
        .map_err(ClusterError::js(format!("read the claim of {key}")))?;
        let Some(entry) = entry else {
            // Expired between the create and the read (an hour unrenewed): the next delivery
            // claims it afresh.
            return Ok(Claim::Held(String::new()));
        };
        let holder = serde_json::from_slice::<Holder>(&entry.value).ok();
        let attempt = holder.as_ref().map_or(0, |h| h.attempt);
        let age = SystemTime::now()
            .duration_since(SystemTime::from(entry.created))
            .unwrap_or_default();
        let next = match &holder {
            Some(h) if h.done => return Ok(Claim::Done(h.node.clone())),
            // Its own (a create whose answer was lost: the delivery was sent back and came
            // again, nothing ran): the same attempt.
            Some(h) if h.node == self.node && h.instance == self.instance => attempt.max(1),
            // Unknown to this node's view (it may have just started): its age decides.
            Some(h)
                if !h.node.is_empty()
                    && live(&h.node, &h.instance) != Some(false)
                    && age < self.lease * STALE_LEASES =>
            {
                return Ok(Claim::Held(h.node.clone()));
            }
            _ => attempt.saturating_add(1),
        };
        match self
            .bucket
            .update(key, encode(&self.me(next, false))?, entry.revision)
            .await
        {
            Ok(revision) => Ok(Claim::Mine {
                revision,
                attempt: next,
                fresh: false,
            }),
            // Another delivery took it over first.
            Err(err) if err.kind() == UpdateErrorKind::WrongLastRevision => {
                Ok(Claim::Held(holder.map(|h| h.node).unwrap_or_default()))
            }
            Err(err) => Err(ClusterError::js(format!("take over the claim of {key}"))(
                err,
            )),
        }
    }

    /// Renews claim `run` held at `revision` for attempt `attempt`.
    pub async fn renew(&self, run: &str, revision: u64, attempt: u32) -> Renewal {
        let key = &claim_key(run);
        let Ok(value) = encode(&self.me(attempt, false)) else {
            return Renewal::Unconfirmed;
        };
        match self.bucket.update(key, value, revision).await {
            Ok(next) => Renewal::Kept(next),
            Err(err) if err.kind() == UpdateErrorKind::WrongLastRevision => Renewal::Lost,
            Err(err) => {
                tracing::debug!(key, error = %err, "cannot renew a run claim");
                Renewal::Unconfirmed
            }
        }
    }

    /// Gives claim `run` up without a result (the run could not be journaled): the next
    /// delivery takes it at once as attempt `attempt + 1`.
    pub async fn give_up(&self, run: &str, revision: u64, attempt: u32) {
        let free = Holder {
            node: String::new(),
            instance: String::new(),
            attempt,
            done: false,
        };
        self.settle(run, revision, &free, "give a run claim up")
            .await;
    }

    /// Marks claim `run` done (its result is journaled): a later delivery that does not find
    /// the result yet waits for it instead of running the task again.
    pub async fn done(&self, run: &str, revision: u64, attempt: u32) {
        self.settle(
            run,
            revision,
            &self.me(attempt, true),
            "mark a run claim done",
        )
        .await;
    }

    /// Writes the claim's last state (best effort: a claim left behind goes stale).
    async fn settle(&self, run: &str, revision: u64, holder: &Holder, what: &str) {
        let key = &claim_key(run);
        let Ok(value) = encode(holder) else {
            return;
        };
        if let Err(err) = self.bucket.update(key, value, revision).await {
            tracing::debug!(key, error = %err, "cannot {what}");
        }
    }
}

fn encode(holder: &Holder) -> Result<bytes::Bytes, ClusterError> {
    serde_json::to_vec(holder)
        .map(Into::into)
        .map_err(ClusterError::codec("encode a run claim"))
}

/// Run key `run` as a key-value key: characters a key may not hold are written `=XX` (hex),
/// `=` itself included, so two runs never share a key.
fn claim_key(run: &str) -> String {
    let mut key = String::with_capacity(run.len());
    for byte in run.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            key.push(char::from(byte));
        } else {
            key.push_str(&format!("={byte:02X}"));
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::claim_key;

    #[test]
    fn run_keys_become_valid_distinct_bucket_keys() {
        assert_eq!(claim_key("t.a-b.c_d.0.1"), "t.a-b.c_d.0.1");
        assert_eq!(claim_key("t.x.a~b.0.1"), "t.x.a=7Eb.0.1");
        assert_ne!(claim_key("a=7E"), claim_key("a~"));
        assert_eq!(claim_key("é"), "=C3=A9");
    }
}
