//! Cancelling a workflow through any node: the node asked forwards the request to the
//! workflow's owner (request/reply on `<p>.cancel.<owner>`), which cancels it where it runs.
//!
//! Only the owner runs a workflow, so only the owner can cancel it; every node answers on its
//! own subject for the workflows its coordinator runs. A request to an owner that is gone finds
//! no responder at once (NATS says so) and is reported as such: its workflows are claimed by
//! another node within a lease, and the cancellation can be asked for again then.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, RequestErrorKind};
use dsmil_core::WorkflowId;
use dsmil_core::ports::WorkflowHost;
use futures_util::StreamExt as _;
use tokio::task::JoinHandle;

use crate::error::ClusterError;
use crate::names::Names;

/// How long a forwarded cancellation waits for the owner's answer.
pub const ANSWER_WAIT: Duration = Duration::from_secs(3);

/// The owner's answer, as JSON on the reply subject.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Answer {
    cancelled: bool,
}

/// Answers cancellation requests for the workflows `host` runs, on this node's subject.
pub async fn serve(
    client: Client,
    names: &Names,
    node: &str,
    host: Arc<dyn WorkflowHost>,
) -> Result<JoinHandle<()>, ClusterError> {
    let subject = names.cancel_subject(node);
    let mut requests = client
        .subscribe(subject.clone())
        .await
        .map_err(ClusterError::js(format!("subscribe to {subject}")))?;
    Ok(tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let Some(reply) = request.reply else { continue };
            let cancelled = std::str::from_utf8(&request.payload)
                .ok()
                .and_then(|s| s.parse::<WorkflowId>().ok())
                .is_some_and(|id| {
                    let cancelled = host.cancel(id);
                    if cancelled {
                        tracing::info!(workflow = %id, "cancelled at another node's request");
                    }
                    cancelled
                });
            let Ok(body) = serde_json::to_vec(&Answer { cancelled }) else {
                continue;
            };
            if let Err(err) = client.publish(reply, body.into()).await {
                tracing::debug!(error = %err, "cannot answer a cancellation request");
            }
        }
    }))
}

/// Asks node `owner` to cancel workflow `id`: whether it was running there.
pub async fn forward(
    client: &Client,
    names: &Names,
    owner: &str,
    id: WorkflowId,
) -> Result<bool, ClusterError> {
    let subject = names.cancel_subject(owner);
    let request = client.request(subject, id.to_string().into_bytes().into());
    let answer = match tokio::time::timeout(ANSWER_WAIT, request).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(err)) if err.kind() == RequestErrorKind::NoResponders => {
            return Err(ClusterError::OwnerUnreachable {
                workflow: id.to_string(),
                owner: owner.to_owned(),
                why: "it is not connected (its workflows are taken over within a lease)".into(),
            });
        }
        Ok(Err(err)) => {
            return Err(ClusterError::js(format!(
                "ask node {owner} to cancel workflow {id}"
            ))(err));
        }
        Err(_) => {
            return Err(ClusterError::OwnerUnreachable {
                workflow: id.to_string(),
                owner: owner.to_owned(),
                why: format!("it did not answer within {} s", ANSWER_WAIT.as_secs()),
            });
        }
    };
    let answer: Answer = serde_json::from_slice(&answer.payload)
        .map_err(ClusterError::codec("decode a cancellation answer"))?;
    Ok(answer.cancelled)
}
