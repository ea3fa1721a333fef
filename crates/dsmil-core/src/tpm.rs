//! TPM vocabulary that crosses layers: the operations the TPM layer reports on the bus and
//! their result codes (seed `tpm_result_code_t`). Everything else about TPMs lives in
//! `dsmil-tpm`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// TPM response codes the project distinguishes (seed `tpm_result_code_t`), with their values
/// from the TPM 2.0 specification (Part 2, 6.6). Unknown codes keep their raw value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TpmResultCode {
    /// TPM_RC_SUCCESS.
    Success,
    /// TPM_RC_FAILURE: the TPM is in failure mode.
    Failure,
    /// TPM_RC_AUTH_FAIL: wrong authorisation value.
    AuthFail,
    /// TPM_RC_BAD_AUTH: authorisation failure without DA implications.
    BadAuth,
    /// TPM_RC_POLICY_FAIL: a policy check failed.
    PolicyFail,
    /// TPM_RC_PCR_CHANGED: PCRs changed since the policy was evaluated.
    PcrChanged,
    /// TPM_RC_OBJECT_MEMORY: out of object slots (flush transient objects).
    ObjectMemory,
    /// TPM_RC_SESSION_MEMORY: out of session slots.
    SessionMemory,
    /// TPM_RC_RETRY: the TPM was busy; try again.
    Retry,
    /// TPM_RC_CANCELED: the command was cancelled.
    Canceled,
    /// TPM_RC_NV_RANGE: offset/size outside the NV index.
    NvRange,
    /// TPM_RC_NV_LOCKED: the NV index is write- or read-locked.
    NvLocked,
    /// TPM_RC_NV_UNINITIALIZED: the NV index has never been written.
    NvUninitialized,
    /// TPM_RC_NV_DEFINED: the NV index already exists.
    NvDefined,
    /// TPM_RC_HANDLE: the handle is not loaded/defined.
    Handle,
    /// TPM_RC_VALUE: a parameter value is out of range.
    Value,
    /// TPM_RC_SIZE: a parameter size is wrong.
    Size,
    /// No answer in time (not a TPM code; reported by the driver).
    Timeout,
    /// Any other code, raw.
    Other(u32),
}

impl TpmResultCode {
    const TABLE: [(TpmResultCode, u32); 17] = [
        (TpmResultCode::Success, 0x000),
        (TpmResultCode::Failure, 0x101),
        (TpmResultCode::AuthFail, 0x08E),
        (TpmResultCode::BadAuth, 0x0A2),
        (TpmResultCode::PolicyFail, 0x09D),
        (TpmResultCode::PcrChanged, 0x128),
        (TpmResultCode::ObjectMemory, 0x902),
        (TpmResultCode::SessionMemory, 0x903),
        (TpmResultCode::Retry, 0x922),
        (TpmResultCode::Canceled, 0x909),
        (TpmResultCode::NvRange, 0x146),
        (TpmResultCode::NvLocked, 0x148),
        (TpmResultCode::NvUninitialized, 0x14A),
        (TpmResultCode::NvDefined, 0x14C),
        (TpmResultCode::Handle, 0x08B),
        (TpmResultCode::Value, 0x084),
        (TpmResultCode::Size, 0x095),
    ];

    /// Classifies a raw response code. Format-one codes (bit 7 set) carry a parameter, handle
    /// or session number in bits 8–11; those bits are masked off before matching.
    pub fn from_raw(raw: u32) -> Self {
        let base = if raw & 0x080 != 0 { raw & 0x0BF } else { raw };
        Self::TABLE
            .iter()
            .find(|(_, code)| *code == base)
            .map(|(rc, _)| *rc)
            .unwrap_or(TpmResultCode::Other(raw))
    }

    /// The base numeric code (the raw value for `Other`; `u32::MAX` for `Timeout`).
    pub fn raw(self) -> u32 {
        match self {
            TpmResultCode::Other(raw) => raw,
            TpmResultCode::Timeout => u32::MAX,
            rc => Self::TABLE
                .iter()
                .find(|(r, _)| *r == rc)
                .map(|(_, code)| *code)
                .unwrap_or(u32::MAX),
        }
    }

    /// Whether the command succeeded.
    pub fn is_success(self) -> bool {
        self == TpmResultCode::Success
    }
}

/// TPM operations that get their own latency histogram.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // Operation names.
pub enum TpmOperation {
    CreateKey,
    LoadKey,
    Seal,
    Unseal,
    SignEcc256,
    SignRsa2048,
    Verify,
    EncryptAes256,
    DecryptAes256,
    EncryptRsa,
    DecryptRsa,
    PcrExtend,
    PcrRead,
    Quote,
    NvDefine,
    NvWrite,
    NvRead,
    GetRandom,
    Capabilities,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn result_codes_classify_format_one_codes() {
        assert_eq!(TpmResultCode::from_raw(0), TpmResultCode::Success);
        // TPM_RC_AUTH_FAIL on session 1: 0x98E.
        assert_eq!(TpmResultCode::from_raw(0x98E), TpmResultCode::AuthFail);
        // TPM_RC_POLICY_FAIL on session 1: 0x99D.
        assert_eq!(TpmResultCode::from_raw(0x99D), TpmResultCode::PolicyFail);
        assert_eq!(TpmResultCode::from_raw(0x902), TpmResultCode::ObjectMemory);
        assert_eq!(TpmResultCode::from_raw(0x14C), TpmResultCode::NvDefined);
        assert_eq!(
            TpmResultCode::from_raw(0x1234_5678 & 0x7F),
            TpmResultCode::Other(0x78)
        );
        assert_eq!(TpmResultCode::PolicyFail.raw(), 0x09D);
    }

    proptest! {
        #[test]
        fn known_codes_round_trip(i in 0usize..17) {
            let (rc, raw) = TpmResultCode::TABLE[i];
            prop_assert_eq!(TpmResultCode::from_raw(raw), rc);
            prop_assert_eq!(rc.raw(), raw);
        }
    }
}
