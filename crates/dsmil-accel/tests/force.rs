//! `DSMIL_ACCEL_FORCE` selects the platform for the whole process and refuses what the machine
//! cannot run. The harness never changes its own environment (other tests read it from other
//! threads): each value is tried in a child run of this test binary, which runs only
//! [`detect_follows_the_variable`] and prints what [`Platform::detect`] returned. The parser
//! itself is tested beside it (`src/platform/force.rs`).

use std::process::Command;

use dsmil_accel::{CryptoExtension, FORCE_VAR, ForceSpecError, Platform, PlatformError};
use dsmil_core::KernelPath;

/// The test a child run executes.
const CHILD: &str = "force::detect_follows_the_variable";
/// Marks the line a child prints.
const MARK: &str = "detected: ";

/// `detect()` agrees with the variable as this process sees it — the parent's value in a child
/// run, the user's in a normal one — and prints its result for the parent.
#[test]
fn detect_follows_the_variable() {
    let expected = match std::env::var(FORCE_VAR) {
        Ok(value) => Platform::from_force(&value),
        Err(std::env::VarError::NotPresent) => Ok(Platform::best()),
        Err(std::env::VarError::NotUnicode(raw)) => Err(PlatformError::BadValue {
            value: raw.to_string_lossy().into_owned(),
            source: ForceSpecError::NotUnicode,
        }),
    };
    let detected = Platform::detect();
    assert_eq!(detected, expected);
    println!("{MARK}{detected:?}");
}

/// What `detect()` returns in a child run with the variable set to `value` (unset for `None`).
fn detect_in_child(value: Option<&std::ffi::OsStr>) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([CHILD, "--exact", "--nocapture", "--test-threads=1"]);
    match value {
        Some(v) => command.env(FORCE_VAR, v),
        None => command.env_remove(FORCE_VAR),
    };
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child run with {value:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        // libtest prints `test … ... ` first, on the same line.
        .find_map(|l| l.split_once(MARK).map(|(_, result)| result))
        .unwrap_or_else(|| panic!("child run with {value:?} printed no result:\n{stdout}"))
        .to_owned()
}

fn check(value: &str, expected: Result<Platform, PlatformError>) {
    assert_eq!(
        detect_in_child(Some(value.as_ref())),
        format!("{expected:?}"),
        "{FORCE_VAR}={value:?}"
    );
}

#[test]
fn force_variable_selects_validates_and_refuses() {
    assert_eq!(
        detect_in_child(None),
        format!("{:?}", Ok::<_, PlatformError>(Platform::best()))
    );
    check("", Ok(Platform::best()));
    for p in Platform::available() {
        check(&p.path().to_string(), Ok(p));
    }
    check(
        "sse",
        Err(PlatformError::BadValue {
            value: "sse".into(),
            source: ForceSpecError::UnknownItem("sse".into()),
        }),
    );
    for path in [KernelPath::Avx2, KernelPath::Avx512] {
        if Platform::for_path(path).is_none() {
            check(&path.to_string(), Err(PlatformError::Unsupported(path)));
        }
    }
    // Crypto extensions, each on its own.
    check(
        "-sha_ni",
        Ok(Platform::best().without(CryptoExtension::ShaNi)),
    );
    match Platform::avx512() {
        Some(p) => check(
            "avx512,-sha_ni,-vaes",
            Ok(p.without(CryptoExtension::ShaNi)
                .without(CryptoExtension::Vaes)),
        ),
        None => check(
            "avx512,-vaes",
            Err(PlatformError::Unsupported(KernelPath::Avx512)),
        ),
    }
    for extension in CryptoExtension::ALL {
        let value = format!("portable,+{extension}");
        match Platform::portable().with(extension) {
            Some(p) => check(&value, Ok(p)),
            None if extension == CryptoExtension::Vaes => check(
                &value,
                Err(PlatformError::BadValue {
                    value: value.clone(),
                    source: ForceSpecError::VaesNeedsAvx512(KernelPath::Portable),
                }),
            ),
            None => check(&value, Err(PlatformError::UnsupportedExtension(extension))),
        }
    }
}

#[cfg(unix)]
#[test]
fn a_value_that_is_not_utf8_is_refused() {
    use std::os::unix::ffi::OsStrExt as _;
    let raw = std::ffi::OsStr::from_bytes(b"avx\xff");
    let expected: Result<Platform, _> = Err(PlatformError::BadValue {
        value: raw.to_string_lossy().into_owned(),
        source: ForceSpecError::NotUnicode,
    });
    assert_eq!(detect_in_child(Some(raw)), format!("{expected:?}"));
}
