//! NV indices: define, chunked write and read, write lock, undefine.

use super::*;

pub(super) fn check_nv_index(index: u32) -> BackendResult<NvIndexTpmHandle> {
    if !(NV_INDEX_FIRST..=NV_INDEX_LAST).contains(&index) {
        return Err(BackendError::invalid(format!(
            "NV index {index:#010x} is outside the owner range {NV_INDEX_FIRST:#010x}-{NV_INDEX_LAST:#010x}"
        )));
    }
    NvIndexTpmHandle::new(index).map_err(|e| tss_err(e, "naming the NV index"))
}

impl Conn {
    /// Opens an ESAPI handle on an NV index; the caller closes it with [`Conn::close_nv`].
    pub(super) fn open_nv(&mut self, index: u32) -> BackendResult<NvIndexHandle> {
        let tpm_handle = check_nv_index(index)?;
        let handle = self
            .ctx
            .execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::NvIndex(tpm_handle)))
            .map_err(|e| tss_err(e, &format!("opening NV index {index:#010x}")))?;
        Ok(NvIndexHandle::from(handle))
    }

    pub(super) fn close_nv(&mut self, handle: NvIndexHandle) {
        let mut object = ObjectHandle::from(handle);
        if let Err(e) = self.ctx.tr_close(&mut object) {
            tracing::warn!(error = %e, "closing an NV index handle failed");
        }
    }

    /// Who authorises an NV read or write: the index itself with `auth` as its value (set on
    /// the handle), or the owner hierarchy when no value is given.
    fn nv_auth(&mut self, handle: NvIndexHandle, auth: Option<Auth>) -> BackendResult<NvAuth> {
        match auth {
            Some(auth) => {
                self.ctx
                    .tr_set_auth(handle.into(), auth)
                    .map_err(|e| tss_err(e, "setting the NV index auth value"))?;
                Ok(NvAuth::NvIndex(handle))
            }
            None => Ok(NvAuth::Owner),
        }
    }

    pub(super) fn nv_buffer_max(&mut self) -> usize {
        match self.ctx.get_tpm_property(PropertyTag::NvBufferMax) {
            Ok(Some(n)) if n > 0 => (n as usize).min(MAX_NV_BUFFER),
            _ => 1024,
        }
    }

    pub(super) fn nv_define(&mut self, spec: &NvSpec) -> BackendResult<()> {
        spec.validate().map_err(BackendError::invalid)?;
        let tpm_handle = check_nv_index(spec.index)?;
        let auth = spec
            .auth
            .as_deref()
            .map(|a| auth_value(a, "the NV index auth value"))
            .transpose()?;
        let NvAttributes {
            owner_write,
            owner_read,
            auth_write,
            auth_read,
            write_once,
            write_locked,
            no_da,
        } = spec.attributes;
        let attributes = NvIndexAttributesBuilder::new()
            .with_owner_write(owner_write)
            .with_owner_read(owner_read)
            .with_auth_write(auth_write)
            .with_auth_read(auth_read)
            .with_write_define(write_once)
            .with_write_stclear(write_locked)
            .with_no_da(no_da)
            .build()
            .map_err(|e| tss_err(e, "the NV attributes"))?;
        let public = NvPublicBuilder::new()
            .with_nv_index(tpm_handle)
            .with_index_name_algorithm(HashingAlgorithm::Sha256)
            .with_index_attributes(attributes)
            .with_data_area_size(usize::from(spec.size))
            .build()
            .map_err(|e| tss_err(e, "the NV public area"))?;
        let handle = password(&mut self.ctx, |c| {
            c.nv_define_space(Provision::Owner, auth, public)
        })
        .map_err(|e| tss_err(e, &format!("TPM2_NV_DefineSpace of {:#010x}", spec.index)))?;
        self.close_nv(handle);
        Ok(())
    }

    /// Writes and reports whether the index must now be write-locked (write-once indexes).
    pub(super) fn nv_write(
        &mut self,
        index: u32,
        offset: u16,
        data: &[u8],
        auth: Option<&[u8]>,
    ) -> BackendResult<bool> {
        if usize::from(offset) + data.len() > usize::from(u16::MAX) {
            return Err(BackendError::invalid(format!(
                "{} bytes at offset {offset} run past the largest NV offset",
                data.len()
            )));
        }
        let auth = auth
            .map(|a| auth_value(a, "the NV index auth value"))
            .transpose()?;
        let chunk = self.nv_buffer_max();
        let handle = self.open_nv(index)?;
        let result = (|| {
            let (public, _) = self
                .ctx
                .execute_without_session(|c| c.nv_read_public(handle))
                .map_err(|e| tss_err(e, "TPM2_NV_ReadPublic"))?;
            let auth_handle = self.nv_auth(handle, auth)?;
            let mut pieces: Vec<&[u8]> = data.chunks(chunk).collect();
            if pieces.is_empty() {
                pieces.push(&[]);
            }
            let mut at = offset;
            for piece in pieces {
                let buffer =
                    MaxNvBuffer::try_from(piece.to_vec()).map_err(|e| tss_err(e, "an NV chunk"))?;
                password(&mut self.ctx, |c| {
                    c.nv_write(auth_handle, handle, buffer, at)
                })
                .map_err(|e| {
                    tss_err(e, &format!("TPM2_NV_Write of {index:#010x} at offset {at}"))
                })?;
                at += piece.len() as u16; // bounded by the check above
            }
            Ok(public.attributes().write_define())
        })();
        self.close_nv(handle);
        result
    }

    pub(super) fn nv_read(
        &mut self,
        index: u32,
        offset: u16,
        len: u16,
        auth: Option<&[u8]>,
    ) -> BackendResult<Vec<u8>> {
        let auth = auth
            .map(|a| auth_value(a, "the NV index auth value"))
            .transpose()?;
        let chunk = self.nv_buffer_max();
        let handle = self.open_nv(index)?;
        let result = (|| {
            let auth_handle = self.nv_auth(handle, auth)?;
            let mut out = Vec::with_capacity(usize::from(len));
            while out.len() < usize::from(len) {
                let at = usize::from(offset) + out.len();
                let at = u16::try_from(at).map_err(|_| {
                    BackendError::invalid(format!(
                        "{len} bytes at offset {offset} run past the largest NV offset"
                    ))
                })?;
                let size = (usize::from(len) - out.len()).min(chunk) as u16;
                let data = password(&mut self.ctx, |c| c.nv_read(auth_handle, handle, size, at))
                    .map_err(|e| {
                        tss_err(e, &format!("TPM2_NV_Read of {index:#010x} at offset {at}"))
                    })?;
                if data.value().is_empty() {
                    return Err(BackendError::tpm(
                        TpmResultCode::Size,
                        "TPM2_NV_Read returned no bytes",
                    ));
                }
                out.extend_from_slice(data.value());
            }
            out.truncate(usize::from(len));
            Ok(out)
        })();
        self.close_nv(handle);
        result
    }

    pub(super) fn nv_undefine(&mut self, index: u32) -> BackendResult<()> {
        let handle = self.open_nv(index)?;
        match password(&mut self.ctx, |c| {
            c.nv_undefine_space(Provision::Owner, handle)
        }) {
            Ok(()) => Ok(()), // the handle is closed with the index
            Err(e) => {
                self.close_nv(handle);
                Err(tss_err(
                    e,
                    &format!("TPM2_NV_UndefineSpace of {index:#010x}"),
                ))
            }
        }
    }
}
