//! Connecting to the NATS servers with the credentials and TLS settings of `[cluster]`; the
//! client reconnects on its own afterwards (and fails over between servers), so only the first
//! connection can fail.

use std::path::Path;
use std::time::Duration;

use async_nats::{Client, ConnectErrorKind, ConnectOptions};

use crate::config::ClusterConfig;
use crate::error::ClusterError;

/// Reads a secret file named by setting `field`, trimmed.
fn read_secret(field: &'static str, path: &Path) -> Result<String, ClusterError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClusterError::Credentials {
        field,
        path: path.to_owned(),
        source,
    })?;
    warn_if_readable_by_others(field, path);
    Ok(text.trim().to_owned())
}

/// Warns (never logs the secret) when a secret file is readable by group or others.
fn warn_if_readable_by_others(field: &'static str, path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            setting = field,
            file = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "a NATS secret file is readable by other users; chmod 600 it"
        );
    }
}

/// How the node authenticates, for messages (never the secret itself).
fn describe(config: &ClusterConfig) -> (String, &'static str) {
    if let Some(p) = &config.token_file {
        (format!("token from {}", p.display()), "token_file")
    } else if let Some(p) = &config.nkey_seed_file {
        (format!("nkey seed from {}", p.display()), "nkey_seed_file")
    } else if let Some(u) = &config.user {
        (format!("user {u:?}"), "password_file")
    } else {
        ("no credentials".into(), "token_file")
    }
}

/// Connects as node `node` (the connection's name is `dsmild-<node>`).
pub async fn connect(config: &ClusterConfig, node: &str) -> Result<Client, ClusterError> {
    let mut options = ConnectOptions::new()
        .name(format!("dsmild-{node}"))
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(5)))
        // Nodes publish a lot; a burst must not be refused by a small client buffer.
        .client_capacity(65_536)
        .subscription_capacity(65_536)
        .max_reconnects(None);
    if let Some(p) = &config.token_file {
        options = options.token(read_secret("token_file", p)?);
    } else if let Some(p) = &config.nkey_seed_file {
        options = options.nkey(read_secret("nkey_seed_file", p)?);
    } else if let (Some(user), Some(p)) = (&config.user, &config.password_file) {
        options = options.user_and_password(user.clone(), read_secret("password_file", p)?);
    }
    if let Some(ca) = &config.tls_ca {
        check_readable("tls_ca", ca)?;
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        check_readable("tls_cert", cert)?;
        check_readable("tls_key", key)?;
        options = options
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    let urls = config.nats.join(", ");
    let addrs: Vec<async_nats::ServerAddr> =
        config.nats.iter().filter_map(|u| u.parse().ok()).collect();
    let client = options
        .connect(addrs)
        .await
        .map_err(|source| match source.kind() {
            ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                let (how, field) = describe(config);
                ClusterError::Refused {
                    urls: urls.clone(),
                    how,
                    field,
                    source,
                }
            }
            _ => ClusterError::Connect {
                urls: urls.clone(),
                source,
            },
        })?;
    let info = client.server_info();
    if !version_at_least(&info.version, (2, 11)) {
        return Err(ClusterError::ServerTooOld {
            url: config.nats.first().cloned().unwrap_or_default(),
            version: info.version,
        });
    }
    Ok(client)
}

/// Fails with the setting's name when a TLS file cannot be read.
fn check_readable(field: &'static str, path: &Path) -> Result<(), ClusterError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|source| ClusterError::Credentials {
            field,
            path: path.to_owned(),
            source,
        })
}

/// The servers of the cluster the client reached: the configured URLs and the ones the server
/// announced, each once.
pub fn known_servers(config: &ClusterConfig, client: &Client) -> usize {
    let mut urls: Vec<String> = config.nats.clone();
    urls.extend(client.server_info().connect_urls);
    let mut hosts: Vec<String> = urls
        .iter()
        .map(|u| u.rsplit("://").next().unwrap_or(u).to_owned())
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts.len().max(1)
}

/// Whether version text `v` (`2.15.1`, `v2.11.0-beta`) is at least `min`.
fn version_at_least(v: &str, min: (u32, u32)) -> bool {
    let mut parts = v.trim_start_matches('v').split(['.', '-']);
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    match (major, minor) {
        (Some(a), Some(b)) => (a, b) >= min,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert!(version_at_least("2.15.1", (2, 11)));
        assert!(version_at_least("v2.11.0-beta.1", (2, 11)));
        assert!(!version_at_least("2.9.10", (2, 11)));
        assert!(!version_at_least("garbage", (2, 11)));
        assert!(version_at_least("3.0.0", (2, 11)));
    }
}
