//! The connection: context, storage primary, the one cached key, loading and creating
//! objects, capabilities and random bytes.

use super::*;

/// A live connection: the `tss-esapi` context, the storage primary and the cached key.
pub(super) struct Conn {
    pub(super) ctx: Context,
    pub(super) primary: KeyHandle,
    /// The storage primary's qualified name: the parent part of every key's qualified name,
    /// and so of the `qualifiedSigner` of quotes.
    pub(super) primary_qualified_name: Vec<u8>,
    /// The last key loaded, by its wrapped bytes.
    pub(super) cached: Option<(Vec<u8>, KeyHandle)>,
}

/// Flushes a loaded object or session, logging (not failing) when the TPM refuses.
pub(super) fn flush(ctx: &mut Context, handle: ObjectHandle) {
    if let Err(e) = ctx.execute_without_session(|c| c.flush_context(handle)) {
        tracing::warn!(error = %e, "flushing a TPM handle failed");
    }
}

pub(super) fn password<T>(
    ctx: &mut Context,
    f: impl FnOnce(&mut Context) -> tss_esapi::Result<T>,
) -> tss_esapi::Result<T> {
    ctx.execute_with_session(Some(AuthSession::Password), f)
}

pub(super) fn sha256(data: &[u8]) -> BackendResult<TssDigest> {
    TssDigest::try_from(Sha256::digest(data).to_vec()).map_err(|e| tss_err(e, "hashing"))
}

pub(super) fn auth_value(value: &[u8], what: &str) -> BackendResult<Auth> {
    if value.len() > MAX_AUTH {
        return Err(BackendError::invalid(format!(
            "{what} is {} bytes; the TPM takes at most {MAX_AUTH}",
            value.len()
        )));
    }
    Auth::try_from(value.to_vec()).map_err(|e| tss_err(e, what))
}

pub(super) fn ascii_word(value: u32) -> String {
    value
        .to_be_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                ' '
            }
        })
        .collect()
}

pub(super) fn tpm_algorithm(alg: AlgorithmIdentifier) -> Option<TpmAlgorithm> {
    Some(match alg {
        AlgorithmIdentifier::Rsa => TpmAlgorithm::Rsa,
        AlgorithmIdentifier::Ecc => TpmAlgorithm::Ecc,
        AlgorithmIdentifier::Aes => TpmAlgorithm::Aes,
        AlgorithmIdentifier::Sha1 => TpmAlgorithm::Sha1,
        AlgorithmIdentifier::Sha256 => TpmAlgorithm::Sha256,
        AlgorithmIdentifier::Sha384 => TpmAlgorithm::Sha384,
        AlgorithmIdentifier::Sha512 => TpmAlgorithm::Sha512,
        AlgorithmIdentifier::Hmac => TpmAlgorithm::Hmac,
        AlgorithmIdentifier::EcDsa => TpmAlgorithm::Ecdsa,
        AlgorithmIdentifier::RsaSsa => TpmAlgorithm::Rsassa,
        AlgorithmIdentifier::RsaPss => TpmAlgorithm::Rsapss,
        AlgorithmIdentifier::Oaep => TpmAlgorithm::Oaep,
        AlgorithmIdentifier::Cfb => TpmAlgorithm::Cfb,
        AlgorithmIdentifier::Ctr => TpmAlgorithm::Ctr,
        AlgorithmIdentifier::KeyedHash => TpmAlgorithm::Keyedhash,
        _ => return None,
    })
}

/// Flushes every transient object and loaded session in the TPM. Only for TPMs without a
/// resource manager that this process uses exclusively (see the module docs).
pub(super) fn flush_leftovers(ctx: &mut Context) {
    for kind in [TPM2_HR_TRANSIENT, TPM2_HR_HMAC_SESSION] {
        for _ in 0..8 {
            let handles = match ctx
                .execute_without_session(|c| c.get_capability(CapabilityType::Handles, kind, 64))
            {
                Ok((CapabilityData::Handles(list), _)) => list.into_inner(),
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "listing leftover TPM handles failed");
                    break;
                }
            };
            if handles.is_empty() {
                break;
            }
            let mut flushed = 0;
            for handle in handles {
                match ctx.execute_without_session(|c| c.tr_from_tpm_public(handle)) {
                    Ok(object) => {
                        // tss-esapi registers a policy session to be closed, not flushed, and
                        // reports an error after the TPM flushed it: what counts is the TPM.
                        let _ = ctx.execute_without_session(|c| c.flush_context(object));
                        flushed += 1;
                    }
                    Err(e) => {
                        tracing::warn!(?handle, error = %e, "leftover TPM handle not flushable")
                    }
                }
            }
            tracing::info!(flushed, "flushed TPM handles left by an earlier client");
            if flushed == 0 {
                break;
            }
        }
    }
}

/// Tries to connect to a software TPM this many times: swtpm and the simulator serve one
/// client at a time over TCP, and a connection made while the previous client's is still being
/// closed fails with a TCTI I/O error.
const SOFTWARE_CONNECT_TRIES: u32 = 5;

/// A TSS context on `conf`; for a software TPM, I/O errors are retried with a short backoff
/// (a hardware TPM's device either opens or does not).
fn context(conf: &TctiNameConf, software: bool) -> BackendResult<Context> {
    let mut delay = std::time::Duration::from_millis(20);
    let mut tries = 1;
    loop {
        match Context::new(conf.clone()) {
            Ok(ctx) => return Ok(ctx),
            Err(e) if software && tries < SOFTWARE_CONNECT_TRIES && is_tcti_io_error(&e) => {
                tracing::debug!(error = %e, tries, "software TPM busy; connecting again");
                std::thread::sleep(delay);
                delay *= 2;
                tries += 1;
            }
            Err(e) => return Err(BackendError::transport("connecting to the TPM", e)),
        }
    }
}

/// Whether `e` is the TCTI layer's I/O error (`TSS2_TCTI_RC_IO_ERROR`, 0x000A000A).
fn is_tcti_io_error(e: &tss_esapi::Error) -> bool {
    const TCTI_IO_ERROR: u32 = 0x000A_000A;
    matches!(e, tss_esapi::Error::Tss2Error(rc)
        if *rc == tss_esapi::constants::response_code::Tss2ResponseCode::from(TCTI_IO_ERROR))
}

impl Conn {
    pub(super) fn open(conf: &TctiNameConf, software: bool) -> BackendResult<Conn> {
        let mut ctx = context(conf, software)?;
        if software {
            flush_leftovers(&mut ctx);
        }
        let public = templates::to_public(&templates::storage_key())?;
        let primary = password(&mut ctx, |c| {
            c.create_primary(Hierarchy::Owner, public, None, None, None, None)
        })
        .map_err(|e| tss_err(e, "creating the storage primary (TPM2_CreatePrimary)"))?
        .key_handle;
        let name = match ctx.execute_without_session(|c| c.tr_get_name(primary.into())) {
            Ok(name) => name,
            Err(e) => {
                flush(&mut ctx, primary.into());
                return Err(tss_err(e, "reading the storage primary's name"));
            }
        };
        Ok(Conn {
            primary_qualified_name: wire::qualified_name(
                &TPM2_RH_OWNER.to_be_bytes(),
                name.value(),
            ),
            ctx,
            primary,
            cached: None,
        })
    }

    /// Loads a wrapped key into the cache slot (flushing the previous one) unless it is the
    /// key already cached.
    pub(super) fn load(&mut self, wrapped: &[u8]) -> BackendResult<KeyHandle> {
        if let Some((blob, handle)) = &self.cached
            && blob.as_slice() == wrapped
        {
            return Ok(*handle);
        }
        if let Some((_, old)) = self.cached.take() {
            flush(&mut self.ctx, old.into());
        }
        let handle = self.load_temporary(wrapped)?;
        self.cached = Some((wrapped.to_vec(), handle));
        Ok(handle)
    }

    /// Loads a wrapped object; the caller flushes it.
    pub(super) fn load_temporary(&mut self, wrapped: &[u8]) -> BackendResult<KeyHandle> {
        let (public, private) = templates::unwrap_blob(wrapped)?;
        let primary = self.primary;
        password(&mut self.ctx, |c| c.load(primary, private, public))
            .map_err(|e| tss_err(e, "loading the key (TPM2_Load)"))
    }

    pub(super) fn create(
        &mut self,
        template: &[u8],
        what: &str,
    ) -> BackendResult<(Vec<u8>, KeyPublic, Vec<u8>)> {
        let public = templates::to_public(template)?;
        let primary = self.primary;
        let created = password(&mut self.ctx, |c| {
            c.create(primary, public, None, None, None, None)
        })
        .map_err(|e| tss_err(e, &format!("creating {what} (TPM2_Create)")))?;
        let wrapped = templates::wrap(&created.out_public, &created.out_private)?;
        let public_area = created
            .out_public
            .marshall()
            .map_err(|e| tss_err(e, "marshalling the public area"))?;
        Ok((
            wrapped,
            templates::key_public(&created.out_public),
            public_area,
        ))
    }

    pub(super) fn get_random(&mut self, len: usize) -> BackendResult<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        let mut empty_answers = 0;
        while out.len() < len {
            let want = (len - out.len()).min(RANDOM_CHUNK);
            let got = self
                .ctx
                .execute_without_session(|c| c.get_random(want))
                .map_err(|e| tss_err(e, "TPM2_GetRandom"))?;
            if got.value().is_empty() {
                empty_answers += 1;
                if empty_answers > 3 {
                    return Err(BackendError::tpm(
                        TpmResultCode::Failure,
                        "TPM2_GetRandom keeps returning no bytes",
                    ));
                }
            }
            let take = got.value().len().min(len - out.len());
            out.extend_from_slice(&got.value()[..take]);
        }
        Ok(out)
    }

    pub(super) fn capabilities(
        &mut self,
        tcti: &str,
        software: bool,
    ) -> BackendResult<Capabilities> {
        let prop = |ctx: &mut Context, tag: PropertyTag| -> BackendResult<u32> {
            ctx.get_tpm_property(tag)
                .map(|v| v.unwrap_or(0))
                .map_err(|e| tss_err(e, &format!("TPM2_GetCapability({tag:?})")))
        };
        let ctx = &mut self.ctx;
        let manufacturer = ascii_word(prop(ctx, PropertyTag::Manufacturer)?);
        let mut vendor = String::new();
        for tag in [
            PropertyTag::VendorString1,
            PropertyTag::VendorString2,
            PropertyTag::VendorString3,
            PropertyTag::VendorString4,
        ] {
            let word = prop(ctx, tag)?;
            vendor.extend(
                word.to_be_bytes()
                    .iter()
                    .filter(|&&b| b != 0)
                    .map(|&b| char::from(b)),
            );
        }
        let fw1 = prop(ctx, PropertyTag::FirmwareVersion1)?;
        let fw2 = prop(ctx, PropertyTag::FirmwareVersion2)?;
        let firmware_version = format!(
            "{}.{}.{}.{}",
            fw1 >> 16,
            fw1 & 0xFFFF,
            fw2 >> 16,
            fw2 & 0xFFFF
        );
        let max_nv_index_size = prop(ctx, PropertyTag::NvIndexMax)?;
        let max_nv_buffer = prop(ctx, PropertyTag::NvBufferMax)?;

        let mut algorithms = Vec::new();
        let mut next = u32::from(tss_esapi::constants::tss::TPM2_ALG_FIRST);
        for _ in 0..16 {
            let (data, more) = ctx
                .execute_without_session(|c| c.get_capability(CapabilityType::Algorithms, next, 64))
                .map_err(|e| tss_err(e, "TPM2_GetCapability(TPM_CAP_ALGS)"))?;
            let CapabilityData::Algorithms(list) = data else {
                break;
            };
            let mut last = None;
            for alg in list.iter() {
                last = Some(u16::from(alg.algorithm_identifier()));
                if let Some(a) = tpm_algorithm(alg.algorithm_identifier()) {
                    algorithms.push(a);
                }
            }
            match (more, last) {
                (true, Some(last)) => next = u32::from(last) + 1,
                _ => break,
            }
        }
        algorithms.sort_unstable();
        algorithms.dedup();

        let (data, _) = ctx
            .execute_without_session(|c| c.get_capability(CapabilityType::AssignedPcr, 0, 16))
            .map_err(|e| tss_err(e, "TPM2_GetCapability(TPM_CAP_PCRS)"))?;
        let mut pcr_banks = Vec::new();
        if let CapabilityData::AssignedPcr(list) = data {
            for sel in list.get_selections() {
                if !sel.is_empty()
                    && let Some(bank) = bank_of(sel.hashing_algorithm())
                {
                    pcr_banks.push(bank);
                }
            }
        }
        pcr_banks.sort_unstable();
        pcr_banks.dedup();

        Ok(Capabilities {
            backend: "tss".into(),
            hardware_rooted: !software,
            manufacturer,
            vendor: vendor.trim().to_owned(),
            firmware_version,
            algorithms,
            pcr_banks,
            max_nv_index_size,
            max_nv_buffer,
            nv_space_bytes: None,
            location: tcti.to_owned(),
        })
    }
}

#[cfg(test)]
mod connect_tests {
    use super::is_tcti_io_error;
    use tss_esapi::constants::response_code::Tss2ResponseCode;

    #[test]
    fn only_the_tcti_io_error_is_retried() {
        let io = tss_esapi::Error::Tss2Error(Tss2ResponseCode::from(0x000A_000A));
        assert!(is_tcti_io_error(&io));
        // The same error number from another layer, and a TPM error, are not.
        let other_layer = tss_esapi::Error::Tss2Error(Tss2ResponseCode::from(0x0007_000A));
        assert!(!is_tcti_io_error(&other_layer));
        let tpm = tss_esapi::Error::Tss2Error(Tss2ResponseCode::from(0x0000_0101));
        assert!(!is_tcti_io_error(&tpm));
    }
}
