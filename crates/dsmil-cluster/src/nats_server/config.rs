//! Rendering one server's nats-server configuration file.
//!
//! Every server listens on 127.0.0.1 only: clients on its client port (token required, TLS
//! required when TLS files are given), peers on its route port (user and password required),
//! and the HTTP monitoring port (no secrets; `/healthz`, `/jsz`, `/varz`, `/routez`).

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::NatsServerError;
use super::tls::TlsFiles;

/// The three loopback ports one server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServerPorts {
    /// Client connections (`nats://127.0.0.1:<client>`).
    pub client: u16,
    /// Route connections from the other servers of the cluster.
    pub route: u16,
    /// HTTP monitoring (`/healthz`, `/jsz`, …).
    pub http: u16,
}

/// The user name and password the servers of one cluster authenticate their routes with, so
/// that no other process on the machine can join the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCredentials {
    /// Route user name.
    pub user: String,
    /// Route password (random, hex; distinct from the client token).
    pub password: String,
}

/// Everything one server's configuration file says.
#[derive(Debug, Clone)]
pub(crate) struct ServerConfig<'a> {
    /// `server_name` (`n0`, `n1`, …).
    pub name: &'a str,
    /// Its ports.
    pub ports: ServerPorts,
    /// Route ports of the other servers; empty for a one-server "cluster" (no cluster block).
    pub peer_route_ports: &'a [u16],
    /// `cluster.name`.
    pub cluster_name: &'a str,
    /// JetStream `store_dir`.
    pub store_dir: &'a Path,
    /// Where the server writes its pid.
    pub pid_file: &'a Path,
    /// The client token.
    pub token: &'a str,
    /// Route credentials (only used when there are peers).
    pub route: &'a RouteCredentials,
    /// `sync_interval: always` in the jetstream block.
    pub sync_always: bool,
    /// `max_memory_store` in bytes.
    pub max_memory_store: u64,
    /// `max_file_store` in bytes.
    pub max_file_store: u64,
    /// TLS for client connections.
    pub tls: Option<&'a TlsFiles>,
}

/// A double-quoted nats-server config string. Backslashes and quotes are escaped; control
/// characters are refused (`field` names the input in the error).
pub(crate) fn quote(field: &'static str, value: &str) -> Result<String, NatsServerError> {
    if let Some(bad) = value.chars().find(|c| c.is_control()) {
        return Err(NatsServerError::InvalidSpec {
            field,
            reason: format!("{value:?} holds the control character {bad:?}"),
        });
    }
    Ok(format!(
        "\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

fn quote_path(field: &'static str, path: &Path) -> Result<String, NatsServerError> {
    let text = path.to_str().ok_or_else(|| NatsServerError::InvalidSpec {
        field,
        reason: format!("{} is not valid UTF-8", path.display()),
    })?;
    quote(field, text)
}

impl ServerConfig<'_> {
    /// The configuration file's text.
    pub(crate) fn render(&self) -> Result<String, NatsServerError> {
        let mut out = String::new();
        let ports = self.ports;
        // `writeln!` into a String cannot fail.
        let _ = writeln!(
            out,
            "# Written by dsmil_cluster::nats_server; holds secrets (mode 0600)."
        );
        let _ = writeln!(out, "server_name: {}", quote("server name", self.name)?);
        let _ = writeln!(out, "listen: \"127.0.0.1:{}\"", ports.client);
        let _ = writeln!(out, "http: \"127.0.0.1:{}\"", ports.http);
        let _ = writeln!(out, "pid_file: {}", quote_path("root", self.pid_file)?);
        let _ = writeln!(out, "authorization {{");
        let _ = writeln!(out, "  token: {}", quote("token", self.token)?);
        let _ = writeln!(out, "}}");
        let _ = writeln!(out, "jetstream {{");
        let _ = writeln!(out, "  store_dir: {}", quote_path("root", self.store_dir)?);
        let _ = writeln!(out, "  max_memory_store: {}", self.max_memory_store);
        let _ = writeln!(out, "  max_file_store: {}", self.max_file_store);
        if self.sync_always {
            let _ = writeln!(out, "  sync_interval: always");
        }
        let _ = writeln!(out, "}}");
        if let Some(tls) = self.tls {
            let _ = writeln!(out, "tls {{");
            let _ = writeln!(out, "  cert_file: {}", quote_path("tls.cert", &tls.cert)?);
            let _ = writeln!(out, "  key_file: {}", quote_path("tls.key", &tls.key)?);
            let _ = writeln!(out, "  ca_file: {}", quote_path("tls.ca", &tls.ca)?);
            // The handshake on a busy two-core machine can take longer than the 2 s default.
            let _ = writeln!(out, "  timeout: 5");
            let _ = writeln!(out, "}}");
        }
        if !self.peer_route_ports.is_empty() {
            let user = &self.route.user;
            let password = &self.route.password;
            check_url_safe("route user", user)?;
            check_url_safe("route password", password)?;
            let _ = writeln!(out, "cluster {{");
            let _ = writeln!(out, "  name: {}", quote("cluster_name", self.cluster_name)?);
            let _ = writeln!(out, "  listen: \"127.0.0.1:{}\"", ports.route);
            let _ = writeln!(out, "  authorization {{");
            let _ = writeln!(out, "    user: {}", quote("route user", user)?);
            let _ = writeln!(out, "    password: {}", quote("route password", password)?);
            let _ = writeln!(out, "  }}");
            let _ = writeln!(out, "  routes: [");
            for port in self.peer_route_ports {
                let _ = writeln!(
                    out,
                    "    \"nats-route://{user}:{password}@127.0.0.1:{port}\""
                );
            }
            let _ = writeln!(out, "  ]");
            let _ = writeln!(out, "}}");
        }
        Ok(out)
    }
}

/// Route credentials travel inside `nats-route://user:password@host` URLs: only characters that
/// need no percent-encoding there are accepted.
fn check_url_safe(field: &'static str, value: &str) -> Result<(), NatsServerError> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(NatsServerError::InvalidSpec {
            field,
            reason: format!("{value:?} must be non-empty ASCII letters, digits or -._~"),
        })
    }
}

/// A cluster name nats-server accepts (it refuses spaces): letters, digits, `-`, `_`, `.`.
pub(crate) fn check_cluster_name(name: &str) -> Result<(), NatsServerError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(NatsServerError::InvalidSpec {
            field: "cluster_name",
            reason: format!("{name:?} must be non-empty ASCII letters, digits, '-', '_' or '.'"),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn route() -> RouteCredentials {
        RouteCredentials {
            user: "dsmil-route".to_owned(),
            password: "5ec7e7".to_owned(),
        }
    }

    fn config<'a>(peers: &'a [u16], route: &'a RouteCredentials) -> ServerConfig<'a> {
        ServerConfig {
            name: "n1",
            ports: ServerPorts {
                client: 4001,
                route: 6001,
                http: 8001,
            },
            peer_route_ports: peers,
            cluster_name: "dsmil-test",
            store_dir: Path::new("/r/n1/store"),
            pid_file: Path::new("/r/n1/nats.pid"),
            token: "70ce11",
            route,
            sync_always: false,
            max_memory_store: 1 << 20,
            max_file_store: 1 << 30,
            tls: None,
        }
    }

    #[test]
    fn a_cluster_member_listens_on_loopback_with_token_and_route_credentials() {
        let route = route();
        let text = config(&[6000, 6002], &route).render().unwrap();
        let expected = r#"# Written by dsmil_cluster::nats_server; holds secrets (mode 0600).
server_name: "n1"
listen: "127.0.0.1:4001"
http: "127.0.0.1:8001"
pid_file: "/r/n1/nats.pid"
authorization {
  token: "70ce11"
}
jetstream {
  store_dir: "/r/n1/store"
  max_memory_store: 1048576
  max_file_store: 1073741824
}
cluster {
  name: "dsmil-test"
  listen: "127.0.0.1:6001"
  authorization {
    user: "dsmil-route"
    password: "5ec7e7"
  }
  routes: [
    "nats-route://dsmil-route:5ec7e7@127.0.0.1:6000"
    "nats-route://dsmil-route:5ec7e7@127.0.0.1:6002"
  ]
}
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn sync_always_goes_in_the_jetstream_block() {
        let route = route();
        let mut cfg = config(&[6000], &route);
        cfg.sync_always = true;
        let text = cfg.render().unwrap();
        assert!(
            text.contains("  max_file_store: 1073741824\n  sync_interval: always\n}\n"),
            "{text}"
        );
        assert!(
            !config(&[6000], &route)
                .render()
                .unwrap()
                .contains("sync_interval")
        );
    }

    #[test]
    fn tls_files_make_a_tls_block() {
        let route = route();
        let tls = TlsFiles {
            ca: PathBuf::from("/t/ca.pem"),
            cert: PathBuf::from("/t/server.pem"),
            key: PathBuf::from("/t/server.key"),
        };
        let mut cfg = config(&[6000], &route);
        cfg.tls = Some(&tls);
        let text = cfg.render().unwrap();
        assert!(
            text.contains(
                "tls {\n  cert_file: \"/t/server.pem\"\n  key_file: \"/t/server.key\"\n  \
                 ca_file: \"/t/ca.pem\"\n  timeout: 5\n}\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_single_server_has_no_cluster_block() {
        let route = route();
        let text = config(&[], &route).render().unwrap();
        assert!(
            !text.contains("cluster {") && !text.contains("routes"),
            "{text}"
        );
        assert!(!text.contains(&route.password), "{text}");
    }

    #[test]
    fn strings_are_escaped_and_control_characters_refused() {
        assert_eq!(quote("f", "plain").unwrap(), "\"plain\"");
        assert_eq!(quote("f", r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
        let err = quote("root", "a\nb").unwrap_err();
        assert!(err.to_string().contains("root"), "{err}");
    }

    #[test]
    fn cluster_names_and_route_credentials_are_checked() {
        for good in ["dsmil-test", "a.b_c-1"] {
            check_cluster_name(good).unwrap();
        }
        for bad in ["", "has space", "quote\"", "ümlaut"] {
            let err = check_cluster_name(bad).unwrap_err();
            assert!(err.to_string().contains("cluster_name"), "{err}");
        }
        let route = RouteCredentials {
            user: "a@b".to_owned(),
            password: "x".to_owned(),
        };
        let err = config(&[6000], &route).render().unwrap_err();
        assert!(err.to_string().contains("route user"), "{err}");
    }
}
