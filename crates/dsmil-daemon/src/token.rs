//! The API token: created on first start as `DATA_DIR/api-token` (mode 0600), read after.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Context, DaemonError, Result};

/// File name of the token inside the data dir.
pub const TOKEN_FILE: &str = "api-token";
/// Random bytes in a new token (hex-encoded: 64 characters).
const TOKEN_BYTES: usize = 32;
/// Shortest token accepted from an existing file.
const MIN_TOKEN_CHARS: usize = 32;

/// The token and where it is stored.
pub struct ApiToken {
    /// The secret itself. Never logged.
    pub secret: String,
    /// The file holding it.
    pub path: PathBuf,
    /// Whether this start created it.
    pub created: bool,
}

/// Reads the token from `data_dir`, creating it (0600) if absent. An existing file readable by
/// group or others is tightened to 0600 with a warning.
pub fn load_or_create(data_dir: &Path) -> Result<ApiToken> {
    let path = data_dir.join(TOKEN_FILE);
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| std::io::Error::other(e.to_string()))
        .context("cannot read system randomness for a new API token")?;
    let fresh = dsmil_core::hex::encode(&bytes);
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(fresh.as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write API token {}", path.display()))?;
            Ok(ApiToken {
                secret: fresh,
                path,
                created: true,
            })
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read_existing(path),
        Err(e) => Err(e).with_context(|| format!("cannot create API token {}", path.display())),
    }
}

fn read_existing(path: PathBuf) -> Result<ApiToken> {
    let meta = fs::metadata(&path).with_context(|| format!("cannot stat {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "API token file was readable by others; tightening it to 0600"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot chmod {}", path.display()))?;
    }
    let secret = fs::read_to_string(&path)
        .with_context(|| format!("cannot read API token {}", path.display()))?
        .trim()
        .to_owned();
    if secret.len() < MIN_TOKEN_CHARS || !secret.chars().all(|c| c.is_ascii_graphic()) {
        return Err(DaemonError::Refused(format!(
            "API token file {} is invalid (expected at least {MIN_TOKEN_CHARS} printable \
             characters); delete it and restart to create a new one",
            path.display()
        )));
    }
    Ok(ApiToken {
        secret,
        path,
        created: false,
    })
}

/// Compares two tokens in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert!(first.created);
        assert_eq!(first.secret.len(), 64);
        let mode = fs::metadata(&first.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = load_or_create(dir.path()).unwrap();
        assert!(!second.created);
        assert_eq!(second.secret, first.secret);
    }

    #[test]
    fn loose_permissions_are_tightened_and_short_tokens_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE);
        fs::write(&path, "x".repeat(40)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        load_or_create(dir.path()).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::write(&path, "short").unwrap();
        let err = load_or_create(dir.path()).err().unwrap().to_string();
        assert!(err.contains("is invalid"), "{err}");
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
