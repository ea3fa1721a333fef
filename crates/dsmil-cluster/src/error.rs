//! The cluster's errors. Each names what was being done and keeps the cause (the NATS client's
//! error, an I/O error, a JSON error) as its [`source`](std::error::Error::source).

use std::path::PathBuf;

use thiserror::Error;

/// Any error kept as a cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the cluster could not do something.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// A credential or certificate file named in `[cluster]` could not be read.
    #[error("cluster.{field}: cannot read {}", path.display())]
    Credentials {
        /// The setting (`token_file`).
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The servers refused this node's credentials.
    #[error(
        "the NATS servers {urls} refused this node's credentials ({how}): check cluster.{field}"
    )]
    Refused {
        /// The servers tried.
        urls: String,
        /// How the node authenticated (`token from /etc/dsmil/nats.token`).
        how: String,
        /// The setting to check.
        field: &'static str,
        /// The client's error.
        #[source]
        source: async_nats::ConnectError,
    },
    /// No server could be reached.
    #[error("cannot connect to the NATS servers {urls}")]
    Connect {
        /// The servers tried.
        urls: String,
        /// The client's error.
        #[source]
        source: async_nats::ConnectError,
    },
    /// The server is too old for what the cluster uses.
    #[error(
        "the NATS server at {url} runs {version}; DSMIL's cluster needs nats-server 2.11 or later (per-message TTLs and delete markers)"
    )]
    ServerTooOld {
        /// The server.
        url: String,
        /// Its version.
        version: String,
    },
    /// Another live node already uses this node's id.
    #[error(
        "node id {node:?} is already in use by a live node of cluster {cluster:?} (instance {other}, heartbeat {seconds_ago:.1} s ago); give this node another `[cluster] node_id`, or stop the other one"
    )]
    DuplicateNode {
        /// The id.
        node: String,
        /// The cluster name.
        cluster: String,
        /// The other process's instance id.
        other: String,
        /// How long ago it last beat.
        seconds_ago: f64,
    },
    /// A JetStream operation failed.
    #[error("JetStream: cannot {action}")]
    JetStream {
        /// What was being done (`create the journal stream DSMIL_JOURNAL`).
        action: String,
        /// The client's error.
        #[source]
        source: BoxError,
    },
    /// A message could not be encoded or decoded.
    #[error("cannot {action}")]
    Codec {
        /// What (`decode a journal entry`).
        action: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A workflow's journal holds entries that cannot have been written by DSMIL in that order.
    #[error("the journal of workflow {workflow} is corrupt: {reason}")]
    Corrupt {
        /// The workflow.
        workflow: String,
        /// What is wrong.
        reason: String,
    },
    /// A workflow is owned by another node (this node lost or never had its lease).
    #[error("workflow {workflow} is not owned by this node ({node}){}", owner.as_ref().map(|o| format!("; {o} owns it")).unwrap_or_default())]
    NotOwner {
        /// The workflow.
        workflow: String,
        /// This node.
        node: String,
        /// Its owner, when known.
        owner: Option<String>,
    },
    /// A workflow's owner could not be asked to act on it.
    #[error("workflow {workflow} runs on node {owner}, which cannot be reached: {why}")]
    OwnerUnreachable {
        /// The workflow.
        workflow: String,
        /// Its owner.
        owner: String,
        /// What happened.
        why: String,
    },
}

impl ClusterError {
    /// A failed JetStream operation `action`.
    pub fn jetstream(action: impl Into<String>) -> impl FnOnce(BoxError) -> Self {
        let action = action.into();
        move |source| ClusterError::JetStream { action, source }
    }

    /// A failed JetStream operation `action` with a typed cause.
    pub fn js<E: Into<BoxError>>(action: impl Into<String>) -> impl FnOnce(E) -> Self {
        let action = action.into();
        move |e| ClusterError::JetStream {
            action,
            source: e.into(),
        }
    }

    /// A failed encoding or decoding `action`.
    pub fn codec(action: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Self {
        let action = action.into();
        move |source| ClusterError::Codec { action, source }
    }
}
