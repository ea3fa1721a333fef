//! The device registry: what the bridge knows about each device (provisioned key, sealed
//! configuration, configuration lock), persisted atomically in `registry.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

#[derive(Debug)]
pub(super) struct Registry {
    path: PathBuf,
    records: BTreeMap<u16, DeviceRecord>,
}

impl Registry {
    pub(super) fn open(path: &Path) -> Result<Self, BridgeError> {
        let records = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                BridgeError::Storage(format!("{} is not a device registry: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(BridgeError::Storage(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(Self {
            path: path.to_owned(),
            records,
        })
    }

    pub(super) fn record(&self, device: DeviceId) -> DeviceRecord {
        let mut r = self.records.get(&device.get()).cloned().unwrap_or_default();
        r.device = Some(device);
        r.quarantined = device.is_quarantined();
        r
    }

    fn update(
        &mut self,
        devices: Vec<DeviceId>,
        f: impl Fn(&mut DeviceRecord),
    ) -> Result<(), BridgeError> {
        let previous = self.records.clone();
        for d in devices {
            let r = self.records.entry(d.get()).or_default();
            f(r);
            r.device = None;
        }
        let bytes = serde_json::to_vec_pretty(&self.records)
            .map_err(|e| BridgeError::Storage(e.to_string()))?;
        if let Err(e) = crate::soft::files::write_atomic(&self.path, &bytes) {
            self.records = previous;
            return Err(BridgeError::Storage(e.to_string()));
        }
        Ok(())
    }

    pub(super) fn set_key(&mut self, device: DeviceId, label: &str) -> Result<(), BridgeError> {
        self.update(vec![device], |r| r.key_label = Some(label.to_owned()))
    }

    pub(super) fn set_config_sealed(
        &mut self,
        device: DeviceId,
        sealed: bool,
    ) -> Result<(), BridgeError> {
        self.update(vec![device], |r| r.config_sealed = sealed)
    }

    /// Locks or unlocks one device, or every device when `device` is `None`.
    pub(super) fn set_locked(
        &mut self,
        device: Option<DeviceId>,
        locked: bool,
    ) -> Result<(), BridgeError> {
        let devices = match device {
            Some(d) => vec![d],
            None => DeviceId::all().collect(),
        };
        self.update(devices, |r| r.config_locked = locked)
    }
}
