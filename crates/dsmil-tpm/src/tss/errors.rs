//! `tss-esapi` errors as [`BackendError`]s: TPM response codes keep their code (and the raw
//! value in the detail), transport failures become [`BackendError::Transport`], parameters the
//! wrapper refuses become [`BackendError::InvalidInput`]; each keeps the `tss-esapi` error as
//! its source.

use dsmil_core::tpm::TpmResultCode;
use tss_esapi::constants::response_code::Tss2ResponseCode;
use tss_esapi::{Error as TssError, WrapperErrorKind};

use crate::error::BackendError;

/// The TSS layer of a response code (bits 16–23).
const LAYER_SHIFT: u32 = 16;
/// The TPM itself.
const LAYER_TPM: u32 = 0;
/// The TCTI (transport).
const LAYER_TCTI: u32 = 10;
/// A resource manager passing on a TPM code.
const LAYER_RESMGR_TPM: u32 = 11;

/// The raw `TSS2_RC` of a response code. `tss-esapi` 7.7 keeps it private but prints it as
/// `Response code value: 0x…` in the `Display` of the inner code.
pub(crate) fn raw_rc(rc: Tss2ResponseCode) -> Option<u32> {
    let text = match rc {
        Tss2ResponseCode::Success => return Some(0),
        Tss2ResponseCode::FormatZero(code) => code.to_string(),
        Tss2ResponseCode::FormatOne(code) => code.to_string(),
    };
    let hex = text.rsplit("0x").next()?;
    u32::from_str_radix(hex.trim(), 16).ok()
}

/// Classifies a raw `TSS2_RC` from any layer.
pub(crate) fn rc_err(raw: u32, what: &str) -> BackendError {
    let layer = (raw >> LAYER_SHIFT) & 0xFF;
    match layer {
        LAYER_TPM | LAYER_RESMGR_TPM => {
            let code = raw & 0xFFF;
            BackendError::tpm(
                TpmResultCode::from_raw(code),
                format!("{what} (TPM response code {code:#05x})"),
            )
        }
        LAYER_TCTI => BackendError::Transport {
            detail: format!("{what}: TCTI error {raw:#x}"),
            source: None,
        },
        _ => BackendError::tpm(
            TpmResultCode::Other(raw),
            format!("{what}: TSS error {raw:#x} (layer {layer})"),
        ),
    }
}

/// Converts a `tss-esapi` error raised while doing `what`, keeping it as the source.
pub(crate) fn tss_err(e: TssError, what: &str) -> BackendError {
    match e {
        TssError::Tss2Error(rc) => match raw_rc(rc) {
            Some(raw) => with_source(rc_err(raw, what), e),
            None => BackendError::tpm_caused(
                TpmResultCode::Other(u32::MAX),
                format!("{what}: an unrecognised response code"),
                e,
            ),
        },
        TssError::WrapperError(
            WrapperErrorKind::WrongParamSize
            | WrapperErrorKind::ParamsMissing
            | WrapperErrorKind::InconsistentParams
            | WrapperErrorKind::UnsupportedParam
            | WrapperErrorKind::InvalidParam,
        ) => BackendError::invalid_caused(format!("tss-esapi refused {what}"), e),
        TssError::WrapperError(_) => BackendError::transport(what, e),
    }
}

/// `err` (a classified response code) with `e` as its source.
fn with_source(err: BackendError, e: TssError) -> BackendError {
    match err {
        BackendError::Tpm {
            rc, raw, detail, ..
        } => BackendError::Tpm {
            rc,
            raw,
            detail,
            source: Some(e.into()),
        },
        BackendError::Transport { detail, .. } => BackendError::transport(detail, e),
        other => other,
    }
}

/// The base TPM response code (format-one parameter/handle/session bits masked) of a
/// `tss-esapi` error, when the TPM produced it.
pub(crate) fn base_code(e: &TssError) -> Option<u32> {
    let TssError::Tss2Error(rc) = e else {
        return None;
    };
    let raw = raw_rc(*rc)?;
    if !matches!((raw >> LAYER_SHIFT) & 0xFF, LAYER_TPM | LAYER_RESMGR_TPM) {
        return None;
    }
    let code = raw & 0xFFF;
    Some(if code & 0x080 != 0 {
        code & 0x0BF
    } else {
        code
    })
}

#[cfg(test)]
mod unit {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn raw_codes_survive_and_classify() {
        // TPM_RC_POLICY_FAIL on session 1.
        let e = TssError::Tss2Error(Tss2ResponseCode::from(0x99d));
        assert_eq!(raw_rc(Tss2ResponseCode::from(0x99d)), Some(0x99d));
        let err = tss_err(e, "unsealing");
        assert_eq!(err.result_code(), TpmResultCode::PolicyFail);
        assert!(err.to_string().contains("0x99d"), "{err}");
        assert_eq!(
            std::error::Error::source(&err).and_then(|s| s.downcast_ref::<TssError>()),
            Some(&e)
        );
        // TPM_RC_NV_LOCKED (format zero), passed on by a resource manager.
        let err = rc_err(0x000b_0148, "writing");
        assert_eq!(err.result_code(), TpmResultCode::NvLocked);
        // Object memory (a warning).
        assert_eq!(
            rc_err(0x902, "x").result_code(),
            TpmResultCode::ObjectMemory
        );
        // A TCTI failure is a transport error.
        assert!(matches!(
            rc_err(0x000a_000a, "x"),
            BackendError::Transport { .. }
        ));
        // An ESYS error keeps its full raw value.
        assert_eq!(
            rc_err(0x0007_000b, "x").result_code(),
            TpmResultCode::Other(0x0007_000b)
        );
        // TPM_RC_SIGNATURE on parameter 2.
        assert_eq!(
            base_code(&TssError::Tss2Error(Tss2ResponseCode::from(0x2db))),
            Some(0x09b)
        );
        let err = tss_err(
            TssError::WrapperError(WrapperErrorKind::WrongParamSize),
            "the IV",
        );
        assert!(matches!(err, BackendError::InvalidInput(_)), "{err}");
        assert_eq!(err.to_string(), "tss-esapi refused the IV");
        assert_eq!(err.result_code(), TpmResultCode::Value);
        assert!(
            std::error::Error::source(&err)
                .and_then(|s| s.downcast_ref::<TssError>())
                .is_some(),
            "the tss-esapi error is kept"
        );
    }
}
