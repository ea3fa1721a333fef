//! Non-volatile indices of the software TPM: defined with a size and attributes, persisted
//! atomically in `nv.json`, with the TPM's checks and response codes (range, authorisation,
//! uninitialised reads, write-once locking, total space).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::values::NvAttributes;
use dsmil_core::tpm::TpmResultCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::files;
use crate::error::BackendError;
use crate::types::NvSpec;

/// NV space for all indices together (bytes).
pub const NV_CAPACITY: u32 = 16 * 1024;

const RC_NV_AUTHORIZATION: u32 = 0x149;
const RC_NV_SPACE: u32 = 0x14B;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Index {
    size: u16,
    attributes: NvAttributes,
    #[serde(default, with = "dsmil_core::hex::serde_bytes")]
    auth_hash: Vec<u8>,
    #[serde(with = "dsmil_core::hex::serde_bytes")]
    data: Vec<u8>,
    written: bool,
}

/// The NV indices, loaded from and saved to one file.
#[derive(Debug)]
pub struct NvStore {
    path: PathBuf,
    indices: BTreeMap<u32, Index>,
}

fn auth_hash(auth: &[u8]) -> Vec<u8> {
    Sha256::digest(auth).to_vec()
}

fn undefined(index: u32) -> BackendError {
    BackendError::tpm(
        TpmResultCode::Handle,
        format!("NV index {index:#010x} is not defined"),
    )
}

impl NvStore {
    /// Loads `path` (an absent file is an empty store).
    pub fn open(path: &Path) -> Result<Self, BackendError> {
        let indices = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                BackendError::storage(format!("{} is not valid NV state", path.display()), e)
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(BackendError::storage(
                    format!("cannot read {}", path.display()),
                    e,
                ));
            }
        };
        Ok(Self {
            path: path.to_owned(),
            indices,
        })
    }

    fn save(&self) -> Result<(), BackendError> {
        let bytes = serde_json::to_vec(&self.indices)
            .map_err(|e| BackendError::storage("cannot encode NV state", e))?;
        files::write_atomic(&self.path, &bytes)
    }

    /// Bytes used by all indices.
    pub fn used(&self) -> u32 {
        self.indices.values().map(|i| u32::from(i.size)).sum()
    }

    /// `TPM2_NV_DefineSpace`.
    pub fn define(&mut self, spec: &NvSpec) -> Result<(), BackendError> {
        spec.validate().map_err(BackendError::invalid)?;
        if self.indices.contains_key(&spec.index) {
            return Err(BackendError::tpm(
                TpmResultCode::NvDefined,
                format!("NV index {:#010x} is already defined", spec.index),
            ));
        }
        if self.used() + u32::from(spec.size) > NV_CAPACITY {
            return Err(BackendError::tpm(
                TpmResultCode::Other(RC_NV_SPACE),
                format!(
                    "NV space exhausted: {} of {NV_CAPACITY} bytes used, {} more asked",
                    self.used(),
                    spec.size
                ),
            ));
        }
        self.indices.insert(
            spec.index,
            Index {
                size: spec.size,
                attributes: spec.attributes,
                auth_hash: spec.auth.as_deref().map(auth_hash).unwrap_or_default(),
                data: vec![0xFF; usize::from(spec.size)],
                written: false,
            },
        );
        if let Err(e) = self.save() {
            self.indices.remove(&spec.index);
            return Err(e);
        }
        Ok(())
    }

    fn authorise(
        idx: &Index,
        index: u32,
        auth: Option<&[u8]>,
        write: bool,
    ) -> Result<(), BackendError> {
        let a = &idx.attributes;
        let (owner_ok, auth_ok) = if write {
            (a.owner_write, a.auth_write)
        } else {
            (a.owner_read, a.auth_read)
        };
        let verb = if write { "written" } else { "read" };
        match auth {
            None if owner_ok => Ok(()),
            None => Err(BackendError::tpm(
                TpmResultCode::Other(RC_NV_AUTHORIZATION),
                format!("NV index {index:#010x} cannot be {verb} with owner authorisation"),
            )),
            Some(_) if !auth_ok => Err(BackendError::tpm(
                TpmResultCode::Other(RC_NV_AUTHORIZATION),
                format!("NV index {index:#010x} cannot be {verb} with its own authorisation"),
            )),
            Some(value) => {
                let given = auth_hash(value);
                if aws_lc_rs::constant_time::verify_slices_are_equal(&given, &idx.auth_hash).is_ok()
                {
                    Ok(())
                } else {
                    Err(BackendError::tpm(
                        TpmResultCode::AuthFail,
                        format!("wrong authorisation value for NV index {index:#010x}"),
                    ))
                }
            }
        }
    }

    fn range(idx: &Index, index: u32, offset: u16, len: usize) -> Result<(), BackendError> {
        if usize::from(offset) + len > usize::from(idx.size) {
            return Err(BackendError::tpm(
                TpmResultCode::NvRange,
                format!(
                    "{len} bytes at offset {offset} do not fit NV index {index:#010x} of {} bytes",
                    idx.size
                ),
            ));
        }
        Ok(())
    }

    /// `TPM2_NV_Write`.
    pub fn write(
        &mut self,
        index: u32,
        offset: u16,
        data: &[u8],
        auth: Option<&[u8]>,
    ) -> Result<(), BackendError> {
        let idx = self.indices.get(&index).ok_or_else(|| undefined(index))?;
        Self::authorise(idx, index, auth, true)?;
        Self::range(idx, index, offset, data.len())?;
        if idx.attributes.write_once && idx.written {
            return Err(BackendError::tpm(
                TpmResultCode::NvLocked,
                format!("NV index {index:#010x} is write-once and was written"),
            ));
        }
        let previous = idx.clone();
        let idx = self
            .indices
            .get_mut(&index)
            .ok_or_else(|| undefined(index))?;
        let start = usize::from(offset);
        idx.data[start..start + data.len()].copy_from_slice(data);
        idx.written = true;
        if let Err(e) = self.save() {
            self.indices.insert(index, previous);
            return Err(e);
        }
        Ok(())
    }

    /// `TPM2_NV_Read`.
    pub fn read(
        &self,
        index: u32,
        offset: u16,
        len: u16,
        auth: Option<&[u8]>,
    ) -> Result<Vec<u8>, BackendError> {
        let idx = self.indices.get(&index).ok_or_else(|| undefined(index))?;
        Self::authorise(idx, index, auth, false)?;
        Self::range(idx, index, offset, usize::from(len))?;
        if !idx.written {
            return Err(BackendError::tpm(
                TpmResultCode::NvUninitialized,
                format!("NV index {index:#010x} has never been written"),
            ));
        }
        let start = usize::from(offset);
        Ok(idx.data[start..start + usize::from(len)].to_vec())
    }

    /// `TPM2_NV_UndefineSpace`.
    pub fn undefine(&mut self, index: u32) -> Result<(), BackendError> {
        let previous = self
            .indices
            .remove(&index)
            .ok_or_else(|| undefined(index))?;
        if let Err(e) = self.save() {
            self.indices.insert(index, previous);
            return Err(e);
        }
        Ok(())
    }
}
