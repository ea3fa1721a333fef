//! The `[cluster]` section of dsmild's configuration: where the NATS servers are, how this node
//! authenticates, what it is called, how many copies JetStream keeps and how long a lease lasts.
//! Without the section nothing of the cluster runs (one host: SQLite journal, in-process bus).
//! [`ClusterConfig::validate`] names the field of the first problem (`cluster.node_id`).

use std::path::PathBuf;
use std::time::Duration;

use dsmil_core::validate::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The cluster's part of dsmild's configuration file (the top-level `[cluster]` table).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// Run as a node of a cluster over NATS JetStream. Default: absent (one host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
}

impl ClusterSection {
    /// Checks the `[cluster]` table when there is one.
    pub fn validate(&self) -> Result<(), FieldError> {
        match &self.cluster {
            Some(c) => c.validate().map_err(|e| e.within("cluster.")),
            None => Ok(()),
        }
    }
}

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:4222`, `tls://host:4222`); the client fails over between
    /// them and learns the others from the servers. Required.
    #[schema(example = json!(["nats://127.0.0.1:4222"]))]
    pub nats: Vec<String>,
    /// Prefix of every subject, stream and bucket, so two clusters can share a NATS deployment
    /// (letters, digits, `_`, `-`; at most 32). Default: `dsmil`.
    pub name: String,
    /// This node's id, unique in the cluster (letters, digits, `_`, `-`; at most 64); a second
    /// node with the same id is refused. Default: the host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// File holding the token to authenticate with. At most one of `token_file`,
    /// `nkey_seed_file` and `user` + `password_file`. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub token_file: Option<PathBuf>,
    /// File holding an nkey seed (`SU…`) to authenticate with. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub nkey_seed_file: Option<PathBuf>,
    /// User name to authenticate with (with `password_file`). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// File holding `user`'s password. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA that signed the servers' certificates: the connection requires TLS
    /// and checks the server against it. Default: none (plain TCP, for loopback).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients (with `tls_key`). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub tls_key: Option<PathBuf>,
    /// Copies JetStream keeps of every stream and bucket (1–5). Default: 3, or the number of
    /// servers when there are fewer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<usize>,
    /// Seconds a workflow's lease lasts without renewal (1–300): a dead owner's workflows are
    /// taken over that long after its last renewal, a task whose node died is delivered again
    /// after it, and a node that misses heartbeats for three leases is reported lost.
    /// Default: 5.
    pub lease_seconds: u64,
    /// Most events of each kind (`system_health`, `agent_activity`, …) this node relays to
    /// the other nodes per second (1–100000); more are dropped and counted, never queued, so
    /// a busy node cannot flood the cluster or slow its own bus. Alerts and emergencies are
    /// always relayed. Default: 200.
    pub events_per_second: u32,
    /// What an emergency stop of this node's alert engine stops: `local` (this node) or
    /// `cluster` (every node; cleared on every node when it is cleared). An operator can ask
    /// for either through the API whatever this says. Default: `local`.
    pub emergency_scope: EmergencyScope,
}

/// How far an emergency stop reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmergencyScope {
    /// This node only.
    #[default]
    Local,
    /// Every node of the cluster.
    Cluster,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nats: Vec::new(),
            name: "dsmil".into(),
            node_id: None,
            token_file: None,
            nkey_seed_file: None,
            user: None,
            password_file: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            replicas: None,
            lease_seconds: 5,
            events_per_second: 200,
            emergency_scope: EmergencyScope::Local,
        }
    }
}

/// Whether `s` is a name the cluster can put in subjects, stream, consumer and bucket names.
fn valid_name(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > max {
        return Err(format!(
            "is {} bytes long; at most {max} are allowed",
            s.len()
        ));
    }
    match s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
    {
        Some(c) => Err(format!(
            "{s:?} contains {c:?}; only letters, digits, '_' and '-' are allowed"
        )),
        None => Ok(()),
    }
}

impl ClusterConfig {
    /// How long a lease lasts.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }

    /// This node's id: `node_id`, or the host name (made a valid id: other characters become
    /// `-`).
    pub fn node_id(&self) -> String {
        if let Some(id) = &self.node_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .unwrap_or_default();
        let id: String = host
            .trim()
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        if id.is_empty() { "node".into() } else { id }
    }

    /// The replicas to ask for when `servers` servers are known.
    pub fn replicas_for(&self, servers: usize) -> usize {
        self.replicas.unwrap_or_else(|| servers.clamp(1, 3))
    }

    /// Checks every field; the error names it (relative to the table: `node_id`).
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.nats.is_empty() {
            return Err(FieldError::new(
                "nats",
                "is empty; list at least one server URL, e.g. [\"nats://127.0.0.1:4222\"]",
            ));
        }
        for (i, url) in self.nats.iter().enumerate() {
            let scheme_ok = ["nats://", "tls://", "ws://", "wss://"]
                .iter()
                .any(|s| url.starts_with(s));
            let rest = url.split_once("://").map(|(_, r)| r).unwrap_or_default();
            if !scheme_ok || rest.is_empty() || rest.contains(char::is_whitespace) {
                return Err(FieldError::new(
                    format!("nats[{i}]"),
                    format!(
                        "{url:?} is not a server URL; expected nats://host:port or tls://host:port"
                    ),
                ));
            }
        }
        valid_name(&self.name, 32).map_err(|r| FieldError::new("name", r))?;
        if let Some(id) = &self.node_id {
            valid_name(id, 64).map_err(|r| FieldError::new("node_id", r))?;
        }
        let methods = [
            self.token_file.is_some(),
            self.nkey_seed_file.is_some(),
            self.user.is_some() || self.password_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(FieldError::new(
                "token_file",
                "more than one way to authenticate is set; use one of token_file, nkey_seed_file, or user with password_file",
            ));
        }
        match (&self.user, &self.password_file) {
            (Some(_), None) => {
                return Err(FieldError::new("password_file", "is required with `user`"));
            }
            (None, Some(_)) => {
                return Err(FieldError::new("user", "is required with `password_file`"));
            }
            _ => {}
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(FieldError::new("tls_key", "is required with `tls_cert`"));
            }
            (None, Some(_)) => {
                return Err(FieldError::new("tls_cert", "is required with `tls_key`"));
            }
            _ => {}
        }
        if let Some(r) = self.replicas
            && !(1..=5).contains(&r)
        {
            return Err(FieldError::new(
                "replicas",
                format!("is {r}; expected 1 to 5"),
            ));
        }
        if !(1..=300).contains(&self.lease_seconds) {
            return Err(FieldError::new(
                "lease_seconds",
                format!("is {}; expected 1 to 300", self.lease_seconds),
            ));
        }
        if !(1..=100_000).contains(&self.events_per_second) {
            return Err(FieldError::new(
                "events_per_second",
                format!("is {}; expected 1 to 100000", self.events_per_second),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClusterConfig {
        ClusterConfig {
            nats: vec!["nats://127.0.0.1:4222".into()],
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn defaults_validate_once_servers_are_named() {
        assert_eq!(
            ClusterConfig::default().validate().unwrap_err().field,
            "nats"
        );
        config().validate().unwrap();
        assert_eq!(config().lease(), Duration::from_secs(5));
        assert_eq!(config().replicas_for(1), 1);
        assert_eq!(config().replicas_for(5), 3);
        assert!(!config().node_id().is_empty());
    }

    /// A change that breaks a configuration.
    type Breakage = Box<dyn Fn(&mut ClusterConfig)>;

    #[test]
    fn each_problem_names_its_field() {
        let cases: Vec<(Breakage, &str)> = vec![
            (
                Box::new(|c| c.nats = vec!["localhost:4222".into()]),
                "nats[0]",
            ),
            (Box::new(|c| c.name = "a.b".into()), "name"),
            (Box::new(|c| c.node_id = Some("x y".into())), "node_id"),
            (Box::new(|c| c.node_id = Some(String::new())), "node_id"),
            (
                Box::new(|c| {
                    c.token_file = Some("t".into());
                    c.nkey_seed_file = Some("n".into());
                }),
                "token_file",
            ),
            (Box::new(|c| c.user = Some("u".into())), "password_file"),
            (Box::new(|c| c.password_file = Some("p".into())), "user"),
            (Box::new(|c| c.tls_cert = Some("c".into())), "tls_key"),
            (Box::new(|c| c.replicas = Some(7)), "replicas"),
            (Box::new(|c| c.lease_seconds = 0), "lease_seconds"),
            (Box::new(|c| c.events_per_second = 0), "events_per_second"),
        ];
        for (change, field) in cases {
            let mut c = config();
            change(&mut c);
            let err = c.validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        let section = ClusterSection {
            cluster: Some(ClusterConfig {
                lease_seconds: 0,
                ..config()
            }),
        };
        assert_eq!(
            section.validate().unwrap_err().field,
            "cluster.lease_seconds"
        );
    }

    #[test]
    fn the_section_reads_from_toml() {
        let section: ClusterSection = toml::from_str(
            "[cluster]\nnats = [\"nats://127.0.0.1:4222\"]\nnode_id = \"a\"\nlease_seconds = 3\n",
        )
        .unwrap();
        let c = section.cluster.unwrap();
        assert_eq!(c.node_id(), "a");
        assert_eq!(c.lease_seconds, 3);
        assert_eq!(c.name, "dsmil");
        assert!(toml::from_str::<ClusterSection>("[cluster]\nnats = []\nbogus = 1\n").is_err());
    }
}
