//! PCR quotes: what a TPM signs about its PCRs, checked offline with nothing but the
//! attestation key's public half, and written in the files `tpm2_checkquote` reads.

use std::path::Path;

use crate::values::{Digest, HashAlgorithm};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::types::KeyPublic;
use crate::wire::{self, QuoteAttest, TpmtSignature, WireError};

/// A quote: the marshalled `TPMS_ATTEST`, its `TPMT_SIGNATURE`, the PCR values it covers and
/// the attestation key's public half.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The PCR bank quoted.
    pub bank: HashAlgorithm,
    /// The PCR values, by index, read together with the quote.
    pub pcr_values: Vec<(u8, Digest)>,
    /// `TPMS_ATTEST` bytes (what `tpm2_quote -m` writes).
    #[serde(with = "dsmil_core::hex::serde_bytes")]
    pub attest: Vec<u8>,
    /// `TPMT_SIGNATURE` bytes (what `tpm2_quote -s` writes).
    #[serde(with = "dsmil_core::hex::serde_bytes")]
    pub signature: Vec<u8>,
    /// The attestation key.
    pub ak_public: KeyPublic,
    /// Qualified name of the attestation key's parent, when the signer field of the
    /// attestation is the key's qualified name (real TPMs) rather than its name (the software
    /// TPM).
    #[serde(default, with = "opt_hex")]
    pub ak_parent_qualified_name: Option<Vec<u8>>,
}

mod opt_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&dsmil_core::hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| dsmil_core::hex::decode(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Why a quote does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuoteError {
    /// The attestation or signature is malformed.
    #[error("malformed quote: {0}")]
    Malformed(#[from] WireError),
    /// The qualifying data is not the expected nonce.
    #[error(
        "the quote's qualifying data is not the expected nonce (replayed or for another request)"
    )]
    NonceMismatch,
    /// The PCR values given do not hash to the quoted digest.
    #[error("the PCR values do not match the quoted PCR digest")]
    PcrDigestMismatch,
    /// The PCR values given are not the quoted selection.
    #[error("the PCR values cover other PCRs than the quote selected")]
    SelectionMismatch,
    /// The signer named in the quote is not the attestation key given.
    #[error("the quote names another signing key than the attestation key given")]
    SignerMismatch,
    /// The signature does not verify with the attestation key.
    #[error("the quote's signature does not verify with the attestation key")]
    BadSignature,
    /// The attestation key is not an ECC P-256 key.
    #[error("quotes are verified with ECC P-256 attestation keys only")]
    UnsupportedKey,
}

impl Quote {
    /// Checks everything a remote verifier checks: signature by the attestation key over the
    /// attestation, the signer's name, the nonce, and that the PCR values hash to the quoted
    /// digest. Returns the parsed attestation.
    pub fn verify(&self, nonce: &[u8]) -> Result<QuoteAttest, QuoteError> {
        let attest = QuoteAttest::parse(&self.attest)?;
        let point = self
            .ak_public
            .ecc_point()
            .ok_or(QuoteError::UnsupportedKey)?;
        let TpmtSignature::Ecdsa { r, s } = TpmtSignature::parse(&self.signature)? else {
            return Err(QuoteError::UnsupportedKey);
        };
        let mut fixed = [0u8; 64];
        if r.len() > 32 || s.len() > 32 {
            return Err(QuoteError::BadSignature);
        }
        fixed[32 - r.len()..32].copy_from_slice(&r);
        fixed[64 - s.len()..].copy_from_slice(&s);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(&self.attest, &fixed)
            .map_err(|_| QuoteError::BadSignature)?;
        let name = wire::object_name(&wire::ecc_p256_public(wire::AK_ATTRIBUTES, &point));
        let signer = match &self.ak_parent_qualified_name {
            Some(parent) => wire::qualified_name(parent, &name),
            None => name,
        };
        if attest.qualified_signer != signer {
            return Err(QuoteError::SignerMismatch);
        }
        if attest.extra_data != nonce {
            return Err(QuoteError::NonceMismatch);
        }
        let mut map = vec![0u8; 3];
        for (i, _) in &self.pcr_values {
            map[usize::from(*i / 8)] |= 1 << (*i % 8);
        }
        if attest.selection != vec![(self.bank.tpm_alg_id(), map)] {
            return Err(QuoteError::SelectionMismatch);
        }
        if attest.pcr_digest != wire::pcr_digest(&self.pcr_values) {
            return Err(QuoteError::PcrDigestMismatch);
        }
        Ok(attest)
    }

    /// Writes `quote.msg`, `quote.sig`, `quote.pcrs` and `ak.pub.pem` into `dir` — the
    /// files `tpm2_checkquote -m quote.msg -s quote.sig -f quote.pcrs -u ak.pub.pem -g sha256
    /// -q NONCE` verifies.
    pub fn write_tpm2_tools_files(&self, dir: &Path) -> std::io::Result<()> {
        let pem = self.ak_public.pem().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "symmetric attestation key",
            )
        })?;
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("quote.msg"), &self.attest)?;
        std::fs::write(dir.join("quote.sig"), &self.signature)?;
        std::fs::write(
            dir.join("quote.pcrs"),
            wire::tpm2_tools_pcrs(self.bank, &self.pcr_values),
        )?;
        std::fs::write(dir.join("ak.pub.pem"), pem)?;
        Ok(())
    }
}
