//! `cargo xtask cluster-demo`: three dsmild nodes on a three-server JetStream cluster, all on
//! loopback, in the foreground — what the README's "Cluster" section walks through. Ctrl-C
//! stops everything (the servers and nodes share this process group).
//!
//! Everything lives under `target/cluster-demo/`: the servers' configs, stores and logs
//! (`nats/`), each node's configuration (`node-<x>.toml`, a ready example of a node's
//! `[cluster]` section), data dir and log. Node `a` hosts `echo`, `b` hosts `sleep`, `c` hosts
//! `echo` and `noop`, so a workflow submitted to any node runs where its agents are.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command};

use anyhow::{Context, Result, bail};
use dsmil_cluster::nats_server::{NatsCluster, NatsClusterSpec};

/// Builds dsmild and dsmilctl, starts the servers and the nodes, prints how to use them, and
/// waits until a node exits or Ctrl-C.
pub fn run(root: &Path) -> Result<()> {
    let dir = root.join("target").join("cluster-demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(root)
        .args(["build", "--bin", "dsmild", "--bin", "dsmilctl"])
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build of dsmild and dsmilctl failed ({status})");
    }
    let binary = crate::services::nats_binary(root)?;
    let mut spec = NatsClusterSpec::new(dir.join("nats"));
    spec.binary = Some(binary);
    spec.cluster_name = "dsmil-demo".into();
    let cluster = NatsCluster::start(spec).context("cannot start the NATS servers")?;
    eprintln!(
        "cluster-demo: nats-servers on {}",
        cluster.urls().join(", ")
    );
    let nodes = [
        ("a", 7701, "echo"),
        ("b", 7702, "sleep"),
        ("c", 7703, "echo\", \"noop"),
    ];
    let mut children: Vec<(String, Child)> = Vec::new();
    for (id, port, agents) in nodes {
        let config = dir.join(format!("node-{id}.toml"));
        let agents: String = agents
            .split("\", \"")
            .map(|a| format!("[[agents]]\nid = \"{a}\"\nkind = \"builtin\"\n\n"))
            .collect();
        let urls: Vec<String> = cluster.urls().iter().map(|u| format!("{u:?}")).collect();
        std::fs::write(
            &config,
            format!(
                "# Node {id} of the demo cluster (`cargo xtask cluster-demo`).\n{agents}\
                 [cluster]\nnats = [{}]\nname = \"demo\"\nnode_id = \"node-{id}\"\n\
                 token_file = {:?}\nlease_seconds = 2\n",
                urls.join(", "),
                cluster.token_file().display().to_string()
            ),
        )
        .with_context(|| format!("cannot write {}", config.display()))?;
        let log = File::create(dir.join(format!("node-{id}.log")))?;
        let child = Command::new(root.join("target/debug/dsmild"))
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join(format!("node-{id}-data")))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start node {id}"))?;
        children.push((id.to_owned(), child));
    }
    let d = dir.display();
    println!(
        "\nThree nodes, each on its own port, all on the same three NATS servers:\n\
         \n  node-a  http://127.0.0.1:7701  hosts echo\
         \n  node-b  http://127.0.0.1:7702  hosts sleep\
         \n  node-c  http://127.0.0.1:7703  hosts echo, noop\n\
         \nTry (tokens are in each node's data dir):\n\
         \n  target/debug/dsmilctl --url http://127.0.0.1:7701 --token-file {d}/node-a-data/api-token cluster status\
         \n  curl -s -H \"Authorization: Bearer $(cat {d}/node-a-data/api-token)\" \\\
         \n       -d '{{\"workflow_type\":\"demo\",\"execution_mode\":\"parallel\",\"tasks\":[\
         {{\"id\":\"s\",\"agent_id\":\"sleep\",\"task_description\":\"on b\",\"input_data\":{{\"ms\":2000}}}},\
         {{\"id\":\"n\",\"agent_id\":\"noop\",\"task_description\":\"on c\",\"input_data\":{{}}}}]}}' \\\
         \n       http://127.0.0.1:7701/api/workflows\
         \n  kill the node that owns a running workflow: another node takes it over within a lease\
         \n  open http://127.0.0.1:7702/#token=$(cat {d}/node-b-data/api-token) for the dashboard (node selector top right)\n\
         \nConfigurations: {d}/node-*.toml; logs: {d}/node-*.log, {d}/nats/n*/nats.log.\
         \nCtrl-C stops every node and server.\n"
    );
    // Until a node exits (Ctrl-C reaches all of them, and us).
    loop {
        for (id, child) in &mut children {
            if let Some(status) = child.try_wait()? {
                drop(cluster);
                bail!("node {id} exited ({status}); see {d}/node-{id}.log");
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
