//! `DSMIL_ACCEL_FORCE` selects the path for the whole process, and refuses what the machine
//! cannot run. One test in its own binary, because it changes the process environment.

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

use dsmil_accel::{FORCE_VAR, Platform, PlatformError};
use dsmil_core::KernelPath;

fn set(value: &str) {
    // SAFETY: this test binary has a single test, so no other thread reads the environment.
    unsafe { std::env::set_var(FORCE_VAR, value) };
}

#[test]
fn force_variable_selects_validates_and_refuses() {
    for p in Platform::available() {
        set(&p.path().to_string());
        assert_eq!(Platform::detect(), Ok(p));
    }
    set("sse");
    assert!(matches!(
        Platform::detect(),
        Err(PlatformError::BadValue { .. })
    ));
    for path in [KernelPath::Avx2, KernelPath::Avx512] {
        if Platform::for_path(path).is_none() {
            set(&path.to_string());
            assert_eq!(Platform::detect(), Err(PlatformError::Unsupported(path)));
        }
    }
    set("");
    assert_eq!(Platform::detect(), Ok(Platform::best()));
}
