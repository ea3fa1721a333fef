//! TPM 2.0 wire format (Part 2, big-endian) for the structures DSMIL emits or checks itself:
//! `TPMS_ATTEST` of a quote, `TPMT_SIGNATURE`, the ECC `TPMT_PUBLIC` that names a key, policy
//! digests, and the PCR file `tpm2_quote -o` writes. Both backends produce byte-identical
//! structures, so one verifier serves both and standard tools accept them.

use crate::values::{Digest, HashAlgorithm, PcrSelection};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// `TPM_GENERATED_VALUE`, the magic that opens every TPM-made attestation.
pub const TPM_GENERATED: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
pub const ST_ATTEST_QUOTE: u16 = 0x8018;
/// `TPM_ALG_ECDSA`.
pub const ALG_ECDSA: u16 = 0x0018;
/// `TPM_ALG_RSASSA`.
pub const ALG_RSASSA: u16 = 0x0014;
/// `TPM_ALG_RSAPSS`.
pub const ALG_RSAPSS: u16 = 0x0016;
/// `TPM_ALG_SHA256`.
pub const ALG_SHA256: u16 = 0x000B;
/// `TPM_ALG_NULL`.
pub const ALG_NULL: u16 = 0x0010;
/// `TPM_ALG_ECC`.
pub const ALG_ECC: u16 = 0x0023;
/// `TPM_ECC_NIST_P256`.
pub const ECC_NIST_P256: u16 = 0x0003;
/// `TPM_CC_PolicyPCR`.
pub const CC_POLICY_PCR: u32 = 0x0000_017F;
/// `TPM_CC_PolicyAuthValue` (PolicyPassword extends the same code).
pub const CC_POLICY_AUTH_VALUE: u32 = 0x0000_016B;

/// Object attributes of an attestation key: fixedTPM, fixedParent, sensitiveDataOrigin,
/// userWithAuth, restricted, sign.
pub const AK_ATTRIBUTES: u32 =
    0x0000_0002 | 0x0000_0010 | 0x0000_0020 | 0x0000_0040 | 0x0001_0000 | 0x0004_0000;

/// A structure that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// Input ended inside a field.
    #[error("{structure} ends after {at} bytes, inside {field}")]
    Truncated {
        /// The structure being read.
        structure: &'static str,
        /// The field being read.
        field: &'static str,
        /// Bytes consumed.
        at: usize,
    },
    /// A field holds a value DSMIL does not accept.
    #[error("{structure}: {field} is {value:#x}, expected {expected}")]
    Unexpected {
        /// The structure being read.
        structure: &'static str,
        /// The field.
        field: &'static str,
        /// What it holds.
        value: u64,
        /// What was expected.
        expected: &'static str,
    },
    /// Bytes left over after the structure.
    #[error("{structure} has {extra} trailing bytes")]
    Trailing {
        /// The structure.
        structure: &'static str,
        /// How many bytes remain.
        extra: usize,
    },
}

/// Big-endian writer.
#[derive(Debug, Default, Clone)]
pub struct Writer(Vec<u8>);

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends a byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    /// Appends a UINT16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a UINT32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a UINT64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends raw bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// Appends a TPM2B (UINT16 size, then the bytes). Buffers longer than 65,535 bytes are
    /// cut, which no TPM structure DSMIL writes comes near.
    pub fn tpm2b(&mut self, v: &[u8]) -> &mut Self {
        let len = v.len().min(usize::from(u16::MAX));
        self.u16(len as u16).bytes(&v[..len])
    }
    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Big-endian reader naming the structure in its errors.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    structure: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `data` as `structure`.
    pub fn new(structure: &'static str, data: &'a [u8]) -> Self {
        Self {
            data,
            at: 0,
            structure,
        }
    }
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(WireError::Truncated {
                structure: self.structure,
                field,
                at: self.at,
            });
        };
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }
    /// A byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, field)?[0])
    }
    /// A UINT16.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    /// A UINT32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A UINT64.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    /// `n` raw bytes.
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        self.take(n, field)
    }
    /// A TPM2B.
    pub fn tpm2b(&mut self, field: &'static str) -> Result<&'a [u8], WireError> {
        let n = self.u16(field)?;
        self.take(usize::from(n), field)
    }
    /// Fails unless `value == expected`.
    pub fn expect(
        &self,
        field: &'static str,
        value: u64,
        expected_value: u64,
        expected: &'static str,
    ) -> Result<(), WireError> {
        if value == expected_value {
            Ok(())
        } else {
            Err(WireError::Unexpected {
                structure: self.structure,
                field,
                value,
                expected,
            })
        }
    }
    /// Fails when bytes remain.
    pub fn end(&self) -> Result<(), WireError> {
        match self.data.len() - self.at {
            0 => Ok(()),
            extra => Err(WireError::Trailing {
                structure: self.structure,
                extra,
            }),
        }
    }
}

/// Marshals a `TPML_PCR_SELECTION` holding one bank.
pub fn pcr_selection(sel: &PcrSelection) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(1)
        .u16(sel.bank.tpm_alg_id())
        .u8(3)
        .bytes(&sel.bitmap());
    w.finish()
}

/// The digest a TPM computes over selected PCR values (concatenated in index order).
pub fn pcr_digest(values: &[(u8, Digest)]) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut sorted: Vec<&(u8, Digest)> = values.iter().collect();
    sorted.sort_by_key(|(i, _)| *i);
    for (_, d) in sorted {
        h.update(d.as_bytes());
    }
    h.finalize().into()
}

/// A policy digest (SHA-256) built the way a TPM policy session builds it, so software and
/// hardware seals agree on what a policy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyDigest(pub [u8; 32]);

impl PolicyDigest {
    /// `TPM2_PolicyPCR` with the digest of the selected PCR values.
    pub fn pcr(self, sel: &PcrSelection, pcr_values_digest: &[u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(self.0);
        h.update(CC_POLICY_PCR.to_be_bytes());
        h.update(pcr_selection(sel));
        h.update(pcr_values_digest);
        Self(h.finalize().into())
    }

    /// `TPM2_PolicyPassword` / `TPM2_PolicyAuthValue`.
    pub fn password(self) -> Self {
        let mut h = Sha256::new();
        h.update(self.0);
        h.update(CC_POLICY_AUTH_VALUE.to_be_bytes());
        Self(h.finalize().into())
    }
}

/// The `TPMT_PUBLIC` of an ECC P-256 key with ECDSA-SHA256, SHA-256 name algorithm and the
/// given attributes; its name is what a quote's `qualifiedSigner` holds.
pub fn ecc_p256_public(attributes: u32, point: &[u8; 65]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u16(ALG_ECC)
        .u16(ALG_SHA256)
        .u32(attributes)
        .tpm2b(&[])
        .u16(ALG_NULL) // symmetric
        .u16(ALG_ECDSA)
        .u16(ALG_SHA256)
        .u16(ECC_NIST_P256)
        .u16(ALG_NULL) // kdf
        .tpm2b(&point[1..33])
        .tpm2b(&point[33..65]);
    w.finish()
}

/// `TPM2B_NAME` content of a public area: the name algorithm followed by the hash.
pub fn object_name(public_area: &[u8]) -> Vec<u8> {
    let mut name = ALG_SHA256.to_be_bytes().to_vec();
    name.extend_from_slice(&Sha256::digest(public_area));
    name
}

/// A qualified name: `nameAlg || SHA-256(parent's qualified name || name)` — what a TPM puts
/// in an attestation's `qualifiedSigner` for a key under `parent`.
pub fn qualified_name(parent_qualified_name: &[u8], name: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(parent_qualified_name);
    h.update(name);
    let mut out = ALG_SHA256.to_be_bytes().to_vec();
    out.extend_from_slice(&h.finalize());
    out
}

/// The clock part of an attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClockInfo {
    /// Milliseconds the TPM has been powered.
    pub clock: u64,
    /// TPM resets.
    pub reset_count: u32,
    /// TPM restarts.
    pub restart_count: u32,
    /// Whether the clock was not rolled back.
    pub safe: bool,
}

/// A parsed quote `TPMS_ATTEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteAttest {
    /// Name of the signing key.
    pub qualified_signer: Vec<u8>,
    /// The qualifying data (nonce) the caller gave.
    pub extra_data: Vec<u8>,
    /// Clock state.
    pub clock: ClockInfo,
    /// Firmware version.
    pub firmware_version: u64,
    /// The quoted selection, as (bank algorithm id, bitmap).
    pub selection: Vec<(u16, Vec<u8>)>,
    /// Digest of the selected PCR values.
    pub pcr_digest: Vec<u8>,
}

impl QuoteAttest {
    /// Marshals the `TPMS_ATTEST`.
    pub fn marshal(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(TPM_GENERATED)
            .u16(ST_ATTEST_QUOTE)
            .tpm2b(&self.qualified_signer)
            .tpm2b(&self.extra_data)
            .u64(self.clock.clock)
            .u32(self.clock.reset_count)
            .u32(self.clock.restart_count)
            .u8(u8::from(self.clock.safe))
            .u64(self.firmware_version)
            .u32(self.selection.len() as u32);
        for (alg, map) in &self.selection {
            w.u16(*alg).u8(map.len() as u8).bytes(map);
        }
        w.tpm2b(&self.pcr_digest);
        w.finish()
    }

    /// Parses a quote `TPMS_ATTEST`; anything else (another attestation type, no magic) fails.
    pub fn parse(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new("TPMS_ATTEST", data);
        let magic = r.u32("magic")?;
        r.expect(
            "magic",
            magic.into(),
            TPM_GENERATED.into(),
            "TPM_GENERATED_VALUE",
        )?;
        let kind = r.u16("type")?;
        r.expect(
            "type",
            kind.into(),
            ST_ATTEST_QUOTE.into(),
            "TPM_ST_ATTEST_QUOTE",
        )?;
        let qualified_signer = r.tpm2b("qualifiedSigner")?.to_vec();
        let extra_data = r.tpm2b("extraData")?.to_vec();
        let clock = ClockInfo {
            clock: r.u64("clockInfo.clock")?,
            reset_count: r.u32("clockInfo.resetCount")?,
            restart_count: r.u32("clockInfo.restartCount")?,
            safe: r.u8("clockInfo.safe")? != 0,
        };
        let firmware_version = r.u64("firmwareVersion")?;
        let count = r.u32("pcrSelect.count")?;
        if count > 16 {
            return Err(WireError::Unexpected {
                structure: "TPMS_ATTEST",
                field: "pcrSelect.count",
                value: count.into(),
                expected: "at most 16 banks",
            });
        }
        let mut selection = Vec::new();
        for _ in 0..count {
            let alg = r.u16("pcrSelections.hash")?;
            let size = r.u8("pcrSelections.sizeofSelect")?;
            selection.push((
                alg,
                r.bytes(usize::from(size), "pcrSelections.pcrSelect")?
                    .to_vec(),
            ));
        }
        let pcr_digest = r.tpm2b("pcrDigest")?.to_vec();
        r.end()?;
        Ok(Self {
            qualified_signer,
            extra_data,
            clock,
            firmware_version,
            selection,
            pcr_digest,
        })
    }
}

/// A `TPMT_SIGNATURE` DSMIL handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpmtSignature {
    /// ECDSA with SHA-256: the two 32-byte integers.
    Ecdsa {
        /// r.
        r: Vec<u8>,
        /// s.
        s: Vec<u8>,
    },
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rsassa(Vec<u8>),
    /// RSA-PSS with SHA-256.
    Rsapss(Vec<u8>),
}

impl TpmtSignature {
    /// Marshals the signature.
    pub fn marshal(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            TpmtSignature::Ecdsa { r, s } => {
                w.u16(ALG_ECDSA).u16(ALG_SHA256).tpm2b(r).tpm2b(s);
            }
            TpmtSignature::Rsassa(sig) => {
                w.u16(ALG_RSASSA).u16(ALG_SHA256).tpm2b(sig);
            }
            TpmtSignature::Rsapss(sig) => {
                w.u16(ALG_RSAPSS).u16(ALG_SHA256).tpm2b(sig);
            }
        }
        w.finish()
    }

    /// Parses a SHA-256 ECDSA, RSASSA or RSA-PSS signature.
    pub fn parse(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new("TPMT_SIGNATURE", data);
        let alg = r.u16("sigAlg")?;
        let hash = r.u16("hash")?;
        r.expect("hash", hash.into(), ALG_SHA256.into(), "TPM_ALG_SHA256")?;
        let sig = match alg {
            ALG_ECDSA => TpmtSignature::Ecdsa {
                r: r.tpm2b("signatureR")?.to_vec(),
                s: r.tpm2b("signatureS")?.to_vec(),
            },
            ALG_RSASSA => TpmtSignature::Rsassa(r.tpm2b("sig")?.to_vec()),
            ALG_RSAPSS => TpmtSignature::Rsapss(r.tpm2b("sig")?.to_vec()),
            other => {
                return Err(WireError::Unexpected {
                    structure: "TPMT_SIGNATURE",
                    field: "sigAlg",
                    value: other.into(),
                    expected: "ECDSA, RSASSA or RSAPSS",
                });
            }
        };
        r.end()?;
        Ok(sig)
    }
}

/// Writes PCR values in the layout `tpm2_quote -o` (tpm2-tools 5) uses and `tpm2_checkquote
/// -f` reads: a host-order `TPML_PCR_SELECTION` struct (16 slots of 8 bytes), a UINT32 count
/// of `TPML_DIGEST` structs, then each struct (UINT32 count, 8 slots of UINT16 size + 64
/// bytes). Host order is little-endian on every platform DSMIL builds for.
pub fn tpm2_tools_pcrs(bank: HashAlgorithm, values: &[(u8, Digest)]) -> Vec<u8> {
    let mut sorted: Vec<&(u8, Digest)> = values.iter().collect();
    sorted.sort_by_key(|(i, _)| *i);
    let mut map = [0u8; 4];
    for (i, _) in &sorted {
        map[usize::from(*i / 8)] |= 1 << (*i % 8);
    }
    let mut out = Vec::with_capacity(136 + 532 * sorted.len().div_ceil(8));
    out.extend_from_slice(&1u32.to_le_bytes());
    for slot in 0..16 {
        if slot == 0 {
            out.extend_from_slice(&bank.tpm_alg_id().to_le_bytes());
            out.push(3);
            out.extend_from_slice(&map);
            out.push(0); // padding
        } else {
            out.extend_from_slice(&[0; 8]);
        }
    }
    let chunks: Vec<_> = sorted.chunks(8).collect();
    out.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
    for chunk in chunks {
        out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        for slot in 0..8 {
            let mut buf = [0u8; 66];
            if let Some((_, d)) = chunk.get(slot) {
                let b = d.as_bytes();
                buf[..2].copy_from_slice(&(b.len() as u16).to_le_bytes());
                buf[2..2 + b.len()].copy_from_slice(b);
            }
            out.extend_from_slice(&buf);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn zeros() -> Digest {
        Digest::new(HashAlgorithm::Sha256, vec![0; 32]).unwrap()
    }

    #[test]
    fn attest_round_trips_and_matches_a_swtpm_quote() {
        // A quote swtpm made for PCRs 0,1,7 (all zero) with nonce abcdef01.
        let swtpm = dsmil_core::hex::decode(
            "ff5443478018002200 0b9308fd2339acdd9f6e5838116194e5b1c1c2a9aefeeaa03b4e6a5c32ecfbb22d\
             0004abcdef01000000000000 28c991af4c2a8e4554ff0101585122f930bfa700000001000b0383\
             000000202ea9ab9198d1638007400cd2c3bef1cc745b864b76011a0e1bc52180ac6452d4"
                .replace(' ', "")
                .as_str(),
        )
        .unwrap();
        let parsed = QuoteAttest::parse(&swtpm).unwrap();
        assert_eq!(parsed.extra_data, vec![0xab, 0xcd, 0xef, 0x01]);
        assert_eq!(parsed.clock.clock, 10441);
        assert_eq!(parsed.selection, vec![(ALG_SHA256, vec![0x83, 0, 0])]);
        let values: Vec<(u8, Digest)> = [0, 1, 7].into_iter().map(|i| (i, zeros())).collect();
        assert_eq!(parsed.pcr_digest, pcr_digest(&values).to_vec());
        assert_eq!(parsed.marshal(), swtpm);
        for cut in 0..swtpm.len() {
            assert!(QuoteAttest::parse(&swtpm[..cut]).is_err());
        }
    }

    #[test]
    fn pcrs_file_matches_tpm2_tools_layout() {
        let values: Vec<(u8, Digest)> = [0, 1, 7].into_iter().map(|i| (i, zeros())).collect();
        let file = tpm2_tools_pcrs(HashAlgorithm::Sha256, &values);
        assert_eq!(file.len(), 668);
        assert_eq!(&file[..8], &[1, 0, 0, 0, 0x0b, 0, 3, 0x83]);
        assert_eq!(&file[0x84..0x8e], &[1, 0, 0, 0, 3, 0, 0, 0, 0x20, 0]);
    }

    #[test]
    fn signature_round_trips_and_rejects_other_hashes() {
        let sig = TpmtSignature::Ecdsa {
            r: vec![1; 32],
            s: vec![2; 32],
        };
        assert_eq!(TpmtSignature::parse(&sig.marshal()).unwrap(), sig);
        let mut sha1 = sig.marshal();
        sha1[3] = 0x04;
        assert!(TpmtSignature::parse(&sha1).is_err());
    }

    #[test]
    fn policy_digests_match_tpm2_tools() {
        // Same construction as tpm2_policypcr: PolicyPCR over SHA-256 PCR 7 = zeros.
        let sel = PcrSelection::new(HashAlgorithm::Sha256, [7]).unwrap();
        // Golden values from tpm2_policypcr -l sha256:7 and tpm2_policypassword on swtpm.
        let d = PolicyDigest::default().pcr(&sel, &pcr_digest(&[(7, zeros())]));
        assert_eq!(
            dsmil_core::hex::encode(&d.0),
            "8b5682d81b29435d08d79278150611dc7e5923b2fefcce684a09577b40130a8b"
        );
        assert_eq!(
            dsmil_core::hex::encode(&d.password().0),
            "b8db92fae7c1e0c588e7352d2fc10f27c7b384e32f706a520cb10bf7ffee8970"
        );
    }
}
