//! Keys by label: each key's wrapped blob in `<dir>/<label>.json` (0600), written atomically,
//! tagged with the backend that made it so a key is never handed to the wrong TPM.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::BackendError;
use crate::types::{KeyBlob, KeyInfo};

#[derive(Serialize, Deserialize)]
struct KeyFile {
    backend: String,
    label: String,
    key: KeyBlob,
}

/// Checks a key label: 1–64 of `A-Z a-z 0-9 _ . -`, not starting with a dot.
pub fn validate_label(label: &str) -> Result<(), BackendError> {
    let ok = !label.is_empty()
        && label.len() <= 64
        && !label.starts_with('.')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(BackendError::invalid(format!(
            "key label {label:?} must be 1-64 characters of A-Z a-z 0-9 _ . - and not start with a dot"
        )))
    }
}

/// The key store of one backend.
#[derive(Debug)]
pub struct KeyStore {
    dir: PathBuf,
    backend: String,
    cache: HashMap<String, KeyBlob>,
}

impl KeyStore {
    /// Opens (creating, 0700) the store in `dir` for keys of `backend`.
    pub fn open(dir: &Path, backend: &str) -> Result<Self, BackendError> {
        crate::soft::files::ensure_dir(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            backend: backend.to_owned(),
            cache: HashMap::new(),
        })
    }

    fn path(&self, label: &str) -> PathBuf {
        self.dir.join(format!("{label}.json"))
    }

    /// The key named `label`.
    pub fn get(&mut self, label: &str) -> Result<KeyBlob, BackendError> {
        validate_label(label)?;
        if let Some(k) = self.cache.get(label) {
            return Ok(k.clone());
        }
        let path = self.path(label);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackendError::UnknownKey(label.to_owned()));
            }
            Err(e) => {
                return Err(BackendError::storage(
                    format!("cannot read {}", path.display()),
                    e,
                ));
            }
        };
        let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| {
            BackendError::storage(format!("{} is not a DSMIL key file", path.display()), e)
        })?;
        if file.backend != self.backend {
            return Err(BackendError::invalid(format!(
                "key {label:?} belongs to the {} backend, not {}",
                file.backend, self.backend
            )));
        }
        self.cache.insert(label.to_owned(), file.key.clone());
        Ok(file.key)
    }

    /// Whether `label` exists.
    pub fn contains(&mut self, label: &str) -> bool {
        self.get(label).is_ok()
    }

    /// Stores a new key; an existing label is refused.
    pub fn insert(&mut self, label: &str, key: KeyBlob) -> Result<KeyInfo, BackendError> {
        validate_label(label)?;
        let path = self.path(label);
        if path.exists() {
            return Err(BackendError::KeyExists(label.to_owned()));
        }
        let file = KeyFile {
            backend: self.backend.clone(),
            label: label.to_owned(),
            key,
        };
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| BackendError::storage(format!("cannot encode key {label:?}"), e))?;
        crate::soft::files::write_atomic(&path, &bytes)?;
        let info = self.info(label, &file.key);
        self.cache.insert(label.to_owned(), file.key);
        Ok(info)
    }

    /// The caller's view of a key.
    pub fn info(&self, label: &str, key: &KeyBlob) -> KeyInfo {
        KeyInfo {
            label: label.to_owned(),
            template: key.template,
            public: key.public.clone(),
            backend: self.backend.clone(),
        }
    }

    /// All stored keys, by label.
    pub fn list(&mut self) -> Result<Vec<KeyInfo>, BackendError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| BackendError::storage(format!("cannot list {}", self.dir.display()), e))?;
        let mut labels: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json").map(str::to_owned)
            })
            .collect();
        labels.sort();
        let mut out = Vec::new();
        for label in labels {
            if let Ok(key) = self.get(&label) {
                out.push(self.info(&label, &key));
            }
        }
        Ok(out)
    }
}
