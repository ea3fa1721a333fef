//! Chromium and ChromeDriver from Debian, for the dashboard's browser test
//! (`bins/dsmild/tests/dashboard.rs`). Not a long-running service: the test starts
//! ChromeDriver itself (and ChromeDriver starts a headless Chromium), so there is nothing to
//! start, record or stop here — only to install.

use std::path::Path;

use anyhow::{Result, bail};

use super::process;

/// The paths the test uses.
const BINARIES: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromedriver"];
/// Debian packages that provide them.
const PACKAGES: &[&str] = &["chromium", "chromium-driver"];

/// Installs Chromium and ChromeDriver when either binary is missing.
pub fn ensure_installed() -> Result<()> {
    let missing: Vec<&str> = BINARIES
        .iter()
        .copied()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    process::apt_install(PACKAGES, &format!("missing {}", missing.join(", ")))?;
    if let Some(path) = BINARIES.iter().find(|path| !Path::new(path).exists()) {
        bail!("apt-get installed {PACKAGES:?} but {path} is still missing");
    }
    Ok(())
}
