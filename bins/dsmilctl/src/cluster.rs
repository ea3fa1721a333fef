//! `dsmilctl cluster status`: the cluster as the daemon sees it, as a table like `kubectl get
//! nodes`.

use std::fmt::Write as _;

use dsmil_api::cluster::ClusterView;

/// Text form of `GET /api/cluster`.
pub fn status_text(v: &ClusterView) -> String {
    if !v.clustered {
        return "this dsmild runs on one host (no [cluster] section)".to_owned();
    }
    let mut out = format!(
        "cluster {}  node {}  replicas {}  server {}\n",
        v.cluster.as_deref().unwrap_or("?"),
        v.node_id.as_deref().unwrap_or("?"),
        v.replicas.unwrap_or(0),
        v.server.as_deref().unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "{:<20} {:<6} {:>10} {:<10} {:>9} AGENTS (in flight/capacity, breaker)",
        "NODE", "STATUS", "LAST SEEN", "VERSION", "WORKFLOWS"
    );
    for n in &v.nodes {
        let agents: Vec<String> = n
            .agents
            .iter()
            .map(|a| {
                let breaker = if a.breaker == "closed" {
                    String::new()
                } else {
                    format!(", {}", a.breaker)
                };
                format!("{} ({}/{}{breaker})", a.agent_id, a.in_flight, a.capacity)
            })
            .collect();
        let _ = writeln!(
            out,
            "{:<20} {:<6} {:>8}ms {:<10} {:>9} {}",
            n.node_id,
            if n.live { "live" } else { "lost" },
            n.last_seen_ms,
            n.version,
            n.workflows.len(),
            if agents.is_empty() {
                "-".to_owned()
            } else {
                agents.join(", ")
            }
        );
    }
    out.trim_end().to_owned()
}
