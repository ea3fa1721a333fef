//! Files of the software TPM: the root key (0600, created once) and atomically replaced state.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::BackendError;

fn storage(path: &Path, what: &str, e: std::io::Error) -> BackendError {
    BackendError::storage(format!("cannot {what} {}", path.display()), e)
}

/// Creates `dir` (0700) if missing.
pub fn ensure_dir(dir: &Path) -> Result<(), BackendError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| storage(dir, "create", e))
}

/// Reads the 32-byte root key at `path`, creating it from the OS RNG when missing. A key file
/// readable by others is tightened to 0600; one of the wrong length is refused.
pub fn load_or_create_root_key(path: &Path) -> Result<[u8; 32], BackendError> {
    if path.exists() {
        let meta = fs::metadata(path).map_err(|e| storage(path, "stat", e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                .map_err(|e| storage(path, "restrict", e))?;
        }
        let bytes = fs::read(path).map_err(|e| storage(path, "read", e))?;
        return bytes
            .as_slice()
            .try_into()
            .map_err(|_| BackendError::Storage {
                detail: format!(
                    "{} holds {} bytes; a software TPM root key is 32 bytes",
                    path.display(),
                    bytes.len()
                ),
                source: None,
            });
    }
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key)
        .map_err(|e| BackendError::storage("the system RNG failed to make a root key", e))?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| storage(path, "create", e))?;
    f.write_all(&key).map_err(|e| storage(path, "write", e))?;
    f.sync_all().map_err(|e| storage(path, "sync", e))?;
    Ok(key)
}

/// Replaces `path` with `bytes` atomically (temporary file, fsync, rename, fsync of the dir),
/// mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BackendError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| storage(&tmp, "create", e))?;
        f.write_all(bytes).map_err(|e| storage(&tmp, "write", e))?;
        f.sync_all().map_err(|e| storage(&tmp, "sync", e))?;
    }
    fs::rename(&tmp, path).map_err(|e| storage(path, "replace", e))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| storage(dir, "sync", e))?;
    }
    Ok(())
}
