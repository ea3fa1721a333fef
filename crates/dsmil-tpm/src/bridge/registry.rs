//! The device registry: what the bridge knows about each device (provisioned key, sealed
//! configuration, configuration lock), persisted atomically in `registry.json`.
//!
//! Reads never wait for the file: the records live behind a lock that is held only to copy
//! them out or to swap in a new set. An update (change, write, fsync, swap) runs on the
//! blocking pool, serialised by a second lock that only updates take, so an async caller —
//! the `/api/devices` handler — is never parked behind an fsync, and an update dropped by its
//! caller still finishes with memory matching the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use dsmil_core::device::DeviceId;
use serde::{Deserialize, Serialize};

use super::BridgeError;

/// What the bridge records about one device.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The device (filled in when read).
    #[serde(skip)]
    pub device: Option<DeviceId>,
    /// Whether it is quarantined (never written).
    #[serde(default)]
    pub quarantined: bool,
    /// Label of its TPM key, once provisioned.
    #[serde(default)]
    pub key_label: Option<String>,
    /// Whether a sealed configuration exists.
    #[serde(default)]
    pub config_sealed: bool,
    /// Whether configuration changes are locked (after an intrusion response).
    #[serde(default)]
    pub config_locked: bool,
}

type Records = BTreeMap<u16, DeviceRecord>;

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// The records as last written; held only to copy or replace them.
    records: Mutex<Records>,
    /// Serialises updates (held across the write, on the blocking pool only).
    writing: Mutex<()>,
}

/// The registry; cheap to read from async code.
#[derive(Debug)]
pub(super) struct Registry {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    pub(super) fn open(path: &Path) -> Result<Self, BridgeError> {
        let records = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| BridgeError::Storage {
                detail: format!("{} is not a device registry", path.display()),
                source: Some(e.into()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(BridgeError::Storage {
                    detail: format!("cannot read {}", path.display()),
                    source: Some(e.into()),
                });
            }
        };
        Ok(Self {
            shared: Arc::new(Shared {
                path: path.to_owned(),
                records: Mutex::new(records),
                writing: Mutex::new(()),
            }),
        })
    }

    fn fill(records: &Records, device: DeviceId) -> DeviceRecord {
        let mut r = records.get(&device.get()).cloned().unwrap_or_default();
        r.device = Some(device);
        r.quarantined = device.is_quarantined();
        r
    }

    /// One device's record.
    pub(super) fn record(&self, device: DeviceId) -> DeviceRecord {
        Self::fill(&lock(&self.shared.records), device)
    }

    /// Every device's record, in id order, from one consistent state.
    pub(super) fn all(&self) -> Vec<DeviceRecord> {
        let records = lock(&self.shared.records);
        DeviceId::all().map(|d| Self::fill(&records, d)).collect()
    }

    /// Applies `f` to `devices`, writes the result and only then makes it visible; on a
    /// failed write nothing changes.
    async fn update(
        &self,
        devices: Vec<DeviceId>,
        f: impl Fn(&mut DeviceRecord) + Send + 'static,
    ) -> Result<(), BridgeError> {
        let shared = Arc::clone(&self.shared);
        let path = shared.path.clone();
        tokio::task::spawn_blocking(move || shared.update(&devices, f))
            .await
            .map_err(|e| BridgeError::Storage {
                detail: format!("updating {} did not finish", path.display()),
                source: Some(e.into()),
            })?
    }

    pub(super) async fn set_key(&self, device: DeviceId, label: &str) -> Result<(), BridgeError> {
        let label = label.to_owned();
        self.update(vec![device], move |r| r.key_label = Some(label.clone()))
            .await
    }

    pub(super) async fn set_config_sealed(
        &self,
        device: DeviceId,
        sealed: bool,
    ) -> Result<(), BridgeError> {
        self.update(vec![device], move |r| r.config_sealed = sealed)
            .await
    }

    /// Locks or unlocks one device, or every device when `device` is `None`.
    pub(super) async fn set_locked(
        &self,
        device: Option<DeviceId>,
        locked: bool,
    ) -> Result<(), BridgeError> {
        let devices = match device {
            Some(d) => vec![d],
            None => DeviceId::all().collect(),
        };
        self.update(devices, move |r| r.config_locked = locked)
            .await
    }
}

impl Shared {
    /// Runs on the blocking pool: change a copy, write it, swap it in.
    fn update(
        &self,
        devices: &[DeviceId],
        f: impl Fn(&mut DeviceRecord),
    ) -> Result<(), BridgeError> {
        let _one = lock(&self.writing);
        let mut next = lock(&self.records).clone();
        for d in devices {
            let r = next.entry(d.get()).or_default();
            f(r);
            r.device = None;
        }
        let bytes = serde_json::to_vec_pretty(&next).map_err(|e| BridgeError::Storage {
            detail: "cannot encode the device registry".into(),
            source: Some(e.into()),
        })?;
        crate::soft::files::write_atomic(&self.path, &bytes).map_err(|e| BridgeError::Storage {
            detail: "cannot write the device registry".into(),
            source: Some(e.into()),
        })?;
        *lock(&self.records) = next;
        Ok(())
    }
}
