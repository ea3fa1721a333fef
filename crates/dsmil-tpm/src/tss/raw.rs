//! `TPM2_NV_WriteLock`, which `tss-esapi` 7.7 does not wrap ("Missing function: NV_WriteLock"),
//! called through the ESAPI C functions on a connection of its own.
//!
//! The caller must have closed its `tss-esapi` context first: without a resource manager
//! (swtpm, mssim, `/dev/tpm0`) the TPM serves one connection at a time.

use std::ffi::CString;
use std::ptr::null_mut;

use tss_esapi::structures::Auth;
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::tss2_esys::{
    ESYS_CONTEXT, ESYS_TR, ESYS_TR_NONE, ESYS_TR_PASSWORD, ESYS_TR_RH_OWNER, Esys_Finalize,
    Esys_Initialize, Esys_NV_WriteLock, Esys_TR_Close, Esys_TR_FromTPMPublic, Esys_TR_SetAuth,
    TPM2B_AUTH, TSS2_TCTI_CONTEXT, Tss2_TctiLdr_Finalize, Tss2_TctiLdr_Initialize,
};

use crate::error::BackendError;

use super::errors::{rc_err, tss_err};

/// A TCTI context, finalised on drop.
struct Tcti(*mut TSS2_TCTI_CONTEXT);

impl Drop for Tcti {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a successful `Tss2_TctiLdr_Initialize`, the ESYS
            // context using it is finalised before this guard drops (declared after it), and
            // `Tss2_TctiLdr_Finalize` nulls it, so it is finalised exactly once.
            unsafe { Tss2_TctiLdr_Finalize(&mut self.0) };
        }
    }
}

/// An ESYS context, finalised on drop.
struct Esys(*mut ESYS_CONTEXT);

impl Drop for Esys {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a successful `Esys_Initialize` and is finalised
            // exactly once (`Esys_Finalize` nulls it); its TCTI outlives it.
            unsafe { Esys_Finalize(&mut self.0) };
        }
    }
}

/// Write-locks NV `index`, authorised by the owner (empty owner auth) or, with `auth`, by the
/// index's own auth value; both through a password session.
pub(crate) fn nv_write_lock(
    tcti: &TctiNameConf,
    index: u32,
    auth: Option<&[u8]>,
) -> Result<(), BackendError> {
    let conf = CString::try_from(tcti.clone()).map_err(|e| tss_err(e, "naming the TCTI"))?;
    let auth: Option<TPM2B_AUTH> = auth
        .map(|a| {
            Auth::try_from(a.to_vec())
                .map(TPM2B_AUTH::from)
                .map_err(|e| tss_err(e, "the NV index auth value"))
        })
        .transpose()?;

    let mut tcti_ctx = Tcti(null_mut());
    // SAFETY: `conf` is a NUL-terminated string that outlives the call and `tcti_ctx.0` is a
    // valid place for the out-pointer.
    let rc = unsafe { Tss2_TctiLdr_Initialize(conf.as_ptr(), &mut tcti_ctx.0) };
    if rc != 0 {
        tcti_ctx.0 = null_mut();
        return Err(rc_err(rc, "opening a TCTI for TPM2_NV_WriteLock"));
    }
    let mut esys = Esys(null_mut());
    // SAFETY: `tcti_ctx.0` is an initialised TCTI that outlives `esys` (dropped after it);
    // a null ABI version asks for the library's own.
    let rc = unsafe { Esys_Initialize(&mut esys.0, tcti_ctx.0, null_mut()) };
    if rc != 0 {
        esys.0 = null_mut();
        return Err(rc_err(rc, "initialising ESAPI for TPM2_NV_WriteLock"));
    }
    let mut nv: ESYS_TR = ESYS_TR_NONE;
    // SAFETY: `esys.0` is an initialised context; `nv` is a valid out-parameter.
    let rc = unsafe {
        Esys_TR_FromTPMPublic(
            esys.0,
            index,
            ESYS_TR_NONE,
            ESYS_TR_NONE,
            ESYS_TR_NONE,
            &mut nv,
        )
    };
    if rc != 0 {
        return Err(rc_err(rc, &format!("reading NV index {index:#010x}")));
    }
    let auth_handle = match &auth {
        Some(value) => {
            // SAFETY: `nv` is a resource of `esys.0`; `value` is a valid TPM2B_AUTH that
            // ESAPI copies.
            let rc = unsafe { Esys_TR_SetAuth(esys.0, nv, value) };
            if rc != 0 {
                return Err(rc_err(rc, "setting the NV index auth value"));
            }
            nv
        }
        None => ESYS_TR_RH_OWNER,
    };
    // SAFETY: all handles belong to `esys.0` (or are ESAPI constants).
    let rc = unsafe {
        Esys_NV_WriteLock(
            esys.0,
            auth_handle,
            nv,
            ESYS_TR_PASSWORD,
            ESYS_TR_NONE,
            ESYS_TR_NONE,
        )
    };
    // SAFETY: `nv` is a resource of `esys.0`, closed once (the context is finalised next
    // anyway).
    let _ = unsafe { Esys_TR_Close(esys.0, &mut nv) };
    if rc != 0 {
        return Err(rc_err(rc, &format!("write-locking NV index {index:#010x}")));
    }
    Ok(())
}
