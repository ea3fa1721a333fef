//! What the cluster tests share: the JetStream cluster `cargo xtask services up` started, a
//! unique prefix per test (so tests share the cluster without sharing names), and clusters of
//! their own for tests that kill servers.

use std::path::{Path, PathBuf};

use dsmil_cluster::nats_server::{NatsBinary, NatsCluster, NatsClusterSpec};
use dsmil_cluster::{ClusterConfig, Names, connect};
use dsmil_core::testenv::{NATS_TOKEN_FILE_VAR, NATS_URLS_VAR, REQUIRE_VAR, service_from_env};
use tokio::task::block_in_place;

/// The shared cluster's URLs and token file; `None` (the test skips) when `services up` did
/// not run and services are not required.
pub fn shared() -> Option<(Vec<String>, PathBuf)> {
    let urls = service_from_env(NATS_URLS_VAR).unwrap_or_else(|e| panic!("{e}"))?;
    let token = service_from_env(NATS_TOKEN_FILE_VAR).unwrap_or_else(|e| panic!("{e}"))?;
    Some((
        urls.split(',').map(str::to_owned).collect(),
        PathBuf::from(token),
    ))
}

/// A fresh prefix: `t` and 10 random hex digits.
pub fn prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// A `[cluster]` configuration for `urls` with `token_file` and prefix `name`.
pub fn config(urls: &[String], token_file: &Path, name: &str) -> ClusterConfig {
    ClusterConfig {
        nats: urls.to_vec(),
        name: name.to_owned(),
        node_id: Some("test-node".to_owned()),
        token_file: Some(token_file.to_owned()),
        ..ClusterConfig::default()
    }
}

/// A JetStream context over a fresh connection made as the daemon makes it.
pub async fn jetstream(config: &ClusterConfig) -> async_nats::jetstream::Context {
    let client = connect(config, "test-node")
        .await
        .unwrap_or_else(|e| panic!("connecting: {e}"));
    async_nats::jetstream::new(client)
}

/// Deletes every stream of prefix `names` (what a test leaves in the shared cluster).
pub async fn cleanup(js: &async_nats::jetstream::Context, names: &Names) {
    use futures_util::TryStreamExt as _;
    let upper = names.prefix().to_uppercase();
    let streams: Vec<String> = js
        .stream_names()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("listing streams: {e}"));
    for name in streams {
        let ours = name.starts_with(&format!("{upper}_"))
            || name.starts_with(&format!("KV_{}-", names.prefix()));
        if ours {
            let _ = js.delete_stream(&name).await;
        }
    }
}

/// A three-server cluster of the test's own (it may kill its servers); `None` when there is no
/// nats-server and services are not required.
pub fn own_cluster(root: &Path) -> Option<NatsCluster> {
    let binary = match NatsBinary::find() {
        Ok(binary) => binary,
        Err(err) if std::env::var(REQUIRE_VAR).is_ok_and(|v| v.trim() == "1") => {
            panic!("{REQUIRE_VAR}=1 but no usable nats-server: {err}")
        }
        Err(err) => {
            eprintln!("skipping: {err}");
            return None;
        }
    };
    let mut spec = NatsClusterSpec::new(root);
    spec.binary = Some(binary.path);
    Some(block_in_place(|| NatsCluster::start(spec)).unwrap_or_else(|e| panic!("{e}")))
}
