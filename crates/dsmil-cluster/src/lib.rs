//! `dsmil-cluster`: DSMIL on many hosts over NATS JetStream.
//!
//! - [`config`]: the `[cluster]` section (servers, prefix, node id, credentials, TLS, replicas,
//!   lease) and its validation;
//! - [`connect()`]: the authenticated, optionally TLS, connection to the servers;
//! - [`ClusterNode`]: one node assembled (what the composer starts for `[cluster]`);
//! - [`cancel`]: cancelling a workflow through any node (forwarded to its owner);
//! - [`dispatch`]: tasks run on the nodes hosting their agents ([`dispatch::ClusterDispatcher`],
//!   a [`dsmil_core::ports::TaskDispatcher`], and [`dispatch::TaskWorker`]);
//! - [`membership`]: heartbeats, who is live and hosts what, duplicate node ids refused;
//! - [`emergency`]: emergency stops that reach every node (`emergency_scope`);
//! - [`events`]: every node's bus events relayed to every node (rate-bounded);
//! - [`health`]: lost nodes and agents without a live host, for the alert engine;
//! - [`journal`]: the workflow journal as a replicated stream ([`JetStreamJournal`], a
//!   [`dsmil_core::ports::JournalStore`]);
//! - [`records`]: every node's performance records imported into every node's embedded store;
//! - [`witness`]: every node's signed audit heads checked and countersigned by the others;
//! - [`names`]: every subject, stream and bucket name, under the cluster's prefix;
//! - [`publish`]: publishing that survives server failures without duplicates;
//! - [`nats_server`]: starting and stopping nats-server processes (a JetStream cluster on
//!   loopback) for tests, benches and demos.
//!
//! The crate depends on `dsmil-core` only; the composer (`dsmil-daemon`) wires it in.
//!
//! Journaling a workflow to a JetStream cluster (the servers `cargo xtask services up`
//! starts; `examples/journal.rs` is this program):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use dsmil_cluster::{ClusterConfig, JetStreamJournal, Names, connect, known_servers};
//! use dsmil_core::ports::JournalStore;
//! use dsmil_core::{WorkflowId, WorkflowState};
//!
//! let config = ClusterConfig {
//!     nats: vec!["nats://127.0.0.1:4222".into()],
//!     token_file: Some("/etc/dsmil/nats.token".into()),
//!     ..ClusterConfig::default()
//! };
//! config.validate()?;
//! let client = connect(&config, &config.node_id()).await?;
//! let replicas = config.replicas_for(known_servers(&config, &client));
//! let js = async_nats::jetstream::new(client);
//! let journal = JetStreamJournal::open(js, Names::new(&config.name), replicas).await?;
//! let id = WorkflowId::new_random();
//! assert!(journal.get(id).await?.is_none());
//! # Ok(())
//! # }
//! ```

pub mod cancel;
pub mod config;
mod connect;
pub mod dispatch;
pub mod emergency;
mod error;
pub mod events;
pub mod health;
pub mod journal;
pub mod leases;
pub mod membership;
pub mod names;
pub mod nats_server;
mod node;
pub mod publish;
pub mod records;
pub mod witness;

pub use config::{ClusterConfig, ClusterSection, EmergencyScope};
pub use connect::{connect, known_servers};
pub use error::{BoxError, ClusterError};
pub use journal::JetStreamJournal;
pub use names::Names;
pub use node::{ClusterNode, ClusterStatus, MemberStatus};

/// Locks `m`; a poisoned lock (another thread panicked holding it) still guards valid data.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
