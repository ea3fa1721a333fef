//! Programs the tests run against the project's output, written by others: `systemd-analyze`
//! (the unit file), `lintian` and `dpkg-shlibdeps` (the package), `zsh` and `fish` (the completion scripts) from
//! Debian, and Prometheus's `promtool` (metrics, rules), taken out of Debian's `prometheus`
//! package without installing it — installing would start a Prometheus server. Only installed,
//! never started.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::process;

/// Binaries installed from Debian, with their packages.
const DEBIAN: &[(&str, &str)] = &[
    ("/usr/bin/systemd-analyze", "systemd"),
    ("/usr/bin/lintian", "lintian"),
    ("/usr/bin/dpkg-shlibdeps", "dpkg-dev"),
    ("/usr/bin/deb-systemd-helper", "init-system-helpers"),
    ("/usr/bin/zsh", "zsh"),
    ("/usr/bin/fish", "fish"),
    ("/usr/bin/openssl", "openssl"),
];

/// Installs whichever of [`DEBIAN`] is missing.
pub fn ensure_installed() -> Result<()> {
    let missing: Vec<&str> = DEBIAN
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    process::apt_install(&missing, "test tools missing")?;
    if let Some((path, _)) = DEBIAN.iter().find(|(path, _)| !Path::new(path).exists()) {
        bail!("apt-get installed {missing:?} but {path} is still missing");
    }
    Ok(())
}

/// `promtool`: the system's when installed, else extracted from Debian's `prometheus` package
/// into `state/prometheus/`.
pub fn promtool(state: &Path) -> Result<PathBuf> {
    let system = Path::new("/usr/bin/promtool");
    if system.exists() {
        return Ok(system.to_owned());
    }
    let root = state.join("prometheus");
    let extracted = root.join("usr/bin/promtool");
    if extracted.exists() {
        return Ok(extracted);
    }
    let deb = process::apt_download("prometheus", &root.join("download"))?;
    process::run_to_stderr(
        std::process::Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&root),
        "dpkg-deb -x prometheus",
    )?;
    if !extracted.exists() {
        bail!("{} has no usr/bin/promtool", deb.display());
    }
    Ok(extracted)
}
