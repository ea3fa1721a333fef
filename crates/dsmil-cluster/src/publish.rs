//! Publishing to a stream so that nothing is lost and nothing is written twice while servers
//! fail: every message carries a message id (the stream drops a second copy within its
//! duplicate window), and a publish whose acknowledgement does not come — a server killed, a
//! stream leader being elected — is sent again with the same id until it is acknowledged or
//! the deadline passes.

use std::time::Duration;

use async_nats::jetstream::context::{Context, PublishErrorKind};
use async_nats::jetstream::kv;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use bytes::Bytes;
use tokio::time::{Instant, sleep};

use crate::error::ClusterError;

/// How long a publish keeps retrying by default: longer than a stream leader election (a few
/// seconds) and a server restart.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(20);

/// Publishes `payload` to `subject` with message id `msg_id`, retrying lost or refused
/// acknowledgements until `deadline` has passed; returns the acknowledgement (`duplicate` is
/// true when an earlier attempt had already been stored).
pub async fn publish_durably(
    js: &Context,
    subject: &str,
    payload: Bytes,
    msg_id: &str,
    deadline: Duration,
) -> Result<PublishAck, async_nats::jetstream::context::PublishError> {
    let until = Instant::now() + deadline;
    let mut pause = Duration::from_millis(25);
    loop {
        let message = PublishMessage::build()
            .payload(payload.clone())
            .message_id(msg_id);
        let outcome = match js.send_publish(subject.to_owned(), message).await {
            Ok(ack) => ack.await,
            Err(err) => Err(err),
        };
        match outcome {
            Ok(ack) => return Ok(ack),
            Err(err) if retriable(&err.kind()) && Instant::now() + pause < until => {
                tracing::debug!(subject, error = %err, "publish not acknowledged; retrying");
                sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(err) => return Err(err),
        }
    }
}

/// Runs an idempotent operation (a key-value put or delete) until it succeeds or `deadline`
/// has passed, pausing between attempts; returns the last error.
pub async fn idempotent<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    deadline: Duration,
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> Result<T, E> {
    let until = Instant::now() + deadline;
    let mut pause = Duration::from_millis(25);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) if Instant::now() + pause < until => {
                tracing::debug!(what, error = %err, "retrying");
                sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(err) => return Err(err),
        }
    }
}

/// Opens the key-value bucket `config` describes, creating it or updating its settings,
/// retrying through server failures until `deadline`; the error names the bucket.
pub async fn open_bucket(
    js: &Context,
    config: kv::Config,
    deadline: Duration,
) -> Result<kv::Store, ClusterError> {
    let name = config.bucket.clone();
    idempotent(deadline, "create a bucket", || {
        js.create_or_update_key_value(config.clone())
    })
    .await
    .map_err(ClusterError::js(format!("create the bucket {name}")))
}

/// Whether a failed publish may succeed when sent again: no acknowledgement in time, no stream
/// answering (a leader being elected answers "no responders"), a connection lost, a temporary
/// server error. Not a message too large or a failed expectation.
fn retriable(kind: &PublishErrorKind) -> bool {
    matches!(
        kind,
        PublishErrorKind::TimedOut
            | PublishErrorKind::StreamNotFound
            | PublishErrorKind::BrokenPipe
            | PublishErrorKind::Other
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(retriable(&PublishErrorKind::TimedOut));
        assert!(retriable(&PublishErrorKind::StreamNotFound));
        assert!(!retriable(&PublishErrorKind::MaxPayloadExceeded));
        assert!(!retriable(&PublishErrorKind::WrongLastSequence));
    }
}
