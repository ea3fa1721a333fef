//! PCRs, quotes and sealing under PCR policies.

use super::*;

pub(super) fn hashing(bank: HashAlgorithm) -> HashingAlgorithm {
    match bank {
        HashAlgorithm::Sha1 => HashingAlgorithm::Sha1,
        HashAlgorithm::Sha256 => HashingAlgorithm::Sha256,
        HashAlgorithm::Sha384 => HashingAlgorithm::Sha384,
        HashAlgorithm::Sha512 => HashingAlgorithm::Sha512,
    }
}

pub(super) fn bank_of(alg: HashingAlgorithm) -> Option<HashAlgorithm> {
    match alg {
        HashingAlgorithm::Sha1 => Some(HashAlgorithm::Sha1),
        HashingAlgorithm::Sha256 => Some(HashAlgorithm::Sha256),
        HashingAlgorithm::Sha384 => Some(HashAlgorithm::Sha384),
        HashingAlgorithm::Sha512 => Some(HashAlgorithm::Sha512),
        _ => None,
    }
}

pub(super) fn pcr_index(slot: PcrSlot) -> u8 {
    u32::from(slot).trailing_zeros() as u8
}

pub(super) fn tss_selection(bank: HashAlgorithm, pcrs: &[u8]) -> BackendResult<PcrSelectionList> {
    let slots = pcrs
        .iter()
        .map(|&i| {
            1u32.checked_shl(u32::from(i))
                .and_then(|bit| PcrSlot::try_from(bit).ok())
                .ok_or_else(|| BackendError::invalid(format!("PCR index {i} is out of range")))
        })
        .collect::<BackendResult<Vec<_>>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(hashing(bank), &slots)
        .build()
        .map_err(|e| tss_err(e, "building the PCR selection"))
}

impl Conn {
    pub(super) fn pcr_read(
        &mut self,
        selection: &PcrSelection,
    ) -> BackendResult<Vec<(u8, Digest)>> {
        let bank = selection.bank;
        let mut remaining: Vec<u8> = selection.pcrs().collect();
        let mut values = Vec::with_capacity(remaining.len());
        while !remaining.is_empty() {
            let list = tss_selection(bank, &remaining)?;
            let (_, read, digests) = self
                .ctx
                .execute_without_session(|c| c.pcr_read(list))
                .map_err(|e| tss_err(e, "TPM2_PCR_Read"))?;
            let mut indexes = Vec::new();
            for sel in read.get_selections() {
                if sel.hashing_algorithm() == hashing(bank) {
                    indexes.extend(sel.selected().into_iter().map(pcr_index));
                }
            }
            indexes.sort_unstable();
            if indexes.is_empty() || indexes.len() != digests.len() {
                return Err(BackendError::tpm(
                    TpmResultCode::Value,
                    format!(
                        "the TPM returned no values for PCRs {remaining:?} of the {bank:?} bank (is the bank allocated?)"
                    ),
                ));
            }
            for (index, digest) in indexes.into_iter().zip(digests.value()) {
                let digest = Digest::new(bank, digest.value().to_vec()).map_err(|e| {
                    BackendError::tpm_caused(
                        TpmResultCode::Size,
                        format!("PCR {index} is no {bank:?} digest"),
                        e,
                    )
                })?;
                if let Some(pos) = remaining.iter().position(|&i| i == index) {
                    remaining.remove(pos);
                    values.push((index, digest));
                }
            }
        }
        values.sort_by_key(|(i, _)| *i);
        Ok(values)
    }

    pub(super) fn seal(&mut self, data: &[u8], policy: &SealPolicy) -> BackendResult<SealedBlob> {
        crate::backend::check_seal_data(data)?;
        let auth = policy
            .password
            .as_deref()
            .map(|p| auth_value(p, "the seal password"))
            .transpose()?;
        let mut digest = PolicyDigest::default();
        if let Some(sel) = &policy.pcrs {
            let values = self.pcr_read(sel)?;
            digest = digest.pcr(sel, &wire::pcr_digest(&values));
        }
        if policy.password.is_some() {
            digest = digest.password();
        }
        let has_policy = policy.pcrs.is_some() || policy.password.is_some();
        let auth_policy: &[u8] = if has_policy { &digest.0 } else { &[] };
        let public = templates::to_public(&templates::sealed_object(auth_policy, !has_policy))?;
        let sensitive =
            SensitiveData::try_from(data.to_vec()).map_err(|e| tss_err(e, "the sealed data"))?;
        let primary = self.primary;
        let created = password(&mut self.ctx, |c| {
            c.create(primary, public, auth, Some(sensitive), None, None)
        })
        .map_err(|e| tss_err(e, "sealing (TPM2_Create)"))?;
        Ok(SealedBlob {
            backend: "tss".into(),
            pcrs: policy.pcrs.clone(),
            password_required: policy.password.is_some(),
            policy_digest: digest.0.to_vec(),
            blob: templates::wrap(&created.out_public, &created.out_private)?,
        })
    }

    pub(super) fn unseal(
        &mut self,
        blob: &SealedBlob,
        password_value: Option<&[u8]>,
    ) -> BackendResult<Vec<u8>> {
        if blob.backend != "tss" {
            return Err(BackendError::invalid(format!(
                "the blob was sealed by the {:?} backend, not by a TPM through tss",
                blob.backend
            )));
        }
        let auth = auth_value(password_value.unwrap_or_default(), "the password")?;
        let pcrs = blob
            .pcrs
            .as_ref()
            .map(|sel| tss_selection(sel.bank, &sel.pcrs().collect::<Vec<_>>()))
            .transpose()?;
        let handle = self.load_temporary(&blob.blob)?;
        let mut session = None;
        let result = self.unseal_loaded(handle, blob, pcrs, auth, &mut session);
        if let Some(session) = session {
            flush(&mut self.ctx, SessionHandle::from(session).into());
        }
        flush(&mut self.ctx, handle.into());
        result
    }

    /// Unseals a loaded sealed object; a policy session it starts is left in `session` for
    /// the caller to flush.
    pub(super) fn unseal_loaded(
        &mut self,
        handle: KeyHandle,
        blob: &SealedBlob,
        pcrs: Option<PcrSelectionList>,
        auth: Auth,
        session: &mut Option<AuthSession>,
    ) -> BackendResult<Vec<u8>> {
        let ctx = &mut self.ctx;
        ctx.tr_set_auth(handle.into(), auth)
            .map_err(|e| tss_err(e, "setting the object's auth value"))?;
        if pcrs.is_none() && !blob.password_required {
            let data = password(ctx, |c| c.unseal(handle.into()))
                .map_err(|e| tss_err(e, "TPM2_Unseal"))?;
            return Ok(data.value().to_vec());
        }
        let started = ctx
            .execute_without_session(|c| {
                c.start_auth_session(
                    None,
                    None,
                    None,
                    SessionType::Policy,
                    SymmetricDefinition::Null,
                    HashingAlgorithm::Sha256,
                )
            })
            .map_err(|e| tss_err(e, "starting a policy session"))?
            .ok_or_else(|| BackendError::Transport {
                detail: "the TPM returned no policy session".into(),
                source: None,
            })?;
        *session = Some(started);
        let (attributes, mask) = SessionAttributesBuilder::new()
            .with_continue_session(true)
            .build();
        ctx.tr_sess_set_attributes(started, attributes, mask)
            .map_err(|e| tss_err(e, "setting the session attributes"))?;
        let policy_session =
            PolicySession::try_from(started).map_err(|e| tss_err(e, "the policy session"))?;
        if let Some(list) = pcrs {
            ctx.execute_without_session(|c| {
                c.policy_pcr(policy_session, TssDigest::default(), list)
            })
            .map_err(|e| tss_err(e, "TPM2_PolicyPCR"))?;
        }
        if blob.password_required {
            ctx.execute_without_session(|c| c.policy_password(policy_session))
                .map_err(|e| tss_err(e, "TPM2_PolicyPassword"))?;
        }
        let data = ctx
            .execute_with_session(Some(started), |c| c.unseal(handle.into()))
            .map_err(|e| tss_err(e, "TPM2_Unseal"))?;
        Ok(data.value().to_vec())
    }

    pub(super) fn pcr_extend(&mut self, index: u8, digest: &Digest) -> BackendResult<()> {
        let pcr = PcrHandle::try_from(u32::from(index))
            .ok()
            .filter(|_| index < crate::values::PCR_COUNT)
            .ok_or_else(|| {
                BackendError::invalid(format!(
                    "PCR index {index} is out of range; PCRs are numbered 0-23"
                ))
            })?;
        let mut values = DigestValues::new();
        values.set(
            hashing(digest.algorithm()),
            TssDigest::try_from(digest.as_bytes().to_vec())
                .map_err(|e| tss_err(e, "the digest"))?,
        );
        password(&mut self.ctx, |c| c.pcr_extend(pcr, values))
            .map_err(|e| tss_err(e, &format!("TPM2_PCR_Extend of PCR {index}")))
    }

    pub(super) fn quote(
        &mut self,
        ak: &KeyBlob,
        selection: &PcrSelection,
        qualifying_data: &[u8],
    ) -> BackendResult<Quote> {
        crate::backend::check_quote_args(ak, qualifying_data)?;
        let pcrs: Vec<u8> = selection.pcrs().collect();
        let handle = self.load(&ak.wrapped)?;
        for _ in 0..QUOTE_ATTEMPTS {
            let values = self.pcr_read(selection)?;
            let list = tss_selection(selection.bank, &pcrs)?;
            let data = Data::try_from(qualifying_data.to_vec())
                .map_err(|e| tss_err(e, "the qualifying data"))?;
            let (attest, signature) = password(&mut self.ctx, |c| {
                c.quote(handle, data, TssSignatureScheme::Null, list)
            })
            .map_err(|e| tss_err(e, "TPM2_Quote"))?;
            let attest = attest
                .marshall()
                .map_err(|e| tss_err(e, "marshalling the attestation"))?;
            let parsed = QuoteAttest::parse(&attest).map_err(|e| {
                BackendError::tpm_caused(
                    TpmResultCode::Value,
                    "TPM2_Quote returned an attestation that does not parse",
                    e,
                )
            })?;
            if parsed.pcr_digest != wire::pcr_digest(&values) {
                continue; // a PCR changed between the read and the quote
            }
            let Signature::EcDsa(sig) = signature else {
                return Err(BackendError::invalid(format!(
                    "the attestation key signed with {:?}, not ECDSA",
                    signature.algorithm()
                )));
            };
            let signature = TpmtSignature::Ecdsa {
                r: templates::pad(sig.signature_r().value(), 32),
                s: templates::pad(sig.signature_s().value(), 32),
            };
            return Ok(Quote {
                bank: selection.bank,
                pcr_values: values,
                attest,
                signature: signature.marshal(),
                ak_public: ak.public.clone(),
                ak_parent_qualified_name: Some(self.primary_qualified_name.clone()),
            });
        }
        Err(BackendError::tpm(
            TpmResultCode::PcrChanged,
            format!("the quoted PCRs changed during each of {QUOTE_ATTEMPTS} attempts"),
        ))
    }
}
