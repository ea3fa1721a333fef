//! The text files of the package's `DEBIAN/` folder that depend on the build: `control`
//! (version, architecture, size, dependencies) and `conffiles`; and the Debian
//! changelog. Pure functions, so their shape is tested without building anything.

/// The package's name.
pub const PACKAGE: &str = "dsmil";
/// The maintainer named in `control` and the changelog.
pub const MAINTAINER: &str = "DSMIL developers <dsmil-maintainers@example.org>";
/// Configuration files dpkg keeps an administrator's edits of.
pub const CONFFILES: &[&str] = &["/etc/dsmil/dsmil.toml"];
/// Dependencies of the maintainer scripts, beside what `dpkg-shlibdeps` finds in the binaries.
pub const SCRIPT_DEPENDS: &[&str] = &["adduser"];
/// Packages that make the service more useful without being needed by it.
pub const SUGGESTS: &[&str] = &["tpm2-tools", "tpm-udev", "prometheus"];

/// What `control` says that changes from build to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlFields {
    /// The upstream version (the workspace's), e.g. `0.1.0`.
    pub upstream_version: String,
    /// `dpkg --print-architecture`, e.g. `amd64`.
    pub architecture: String,
    /// The unpacked size in KiB.
    pub installed_size_kib: u64,
    /// The shared-library dependencies, as `dpkg-shlibdeps` prints them.
    pub shlib_depends: String,
}

/// The Debian version: the upstream version with Debian revision 1.
pub fn debian_version(upstream: &str) -> String {
    format!("{upstream}-1")
}

/// The `DEBIAN/control` file.
pub fn control(fields: &ControlFields) -> String {
    let mut depends: Vec<String> = fields
        .shlib_depends
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    depends.extend(SCRIPT_DEPENDS.iter().map(|d| (*d).to_owned()));
    format!(
        "Package: {PACKAGE}\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: {MAINTAINER}\n\
         Installed-Size: {size}\n\
         Depends: {depends}\n\
         Suggests: {suggests}\n\
         Section: admin\n\
         Priority: optional\n\
         Description: agent orchestrator with a TPM-rooted audit trail\n \
         DSMIL runs agents (commands or HTTP services) in resilient workflows with\n \
         retries, timeouts and circuit breakers, learns which agent suits which task,\n \
         records every security event in an audit log whose tree heads a TPM 2.0 signs,\n \
         and streams its state to a live dashboard, a WebSocket and Prometheus.\n \
         .\n \
         This package holds the dsmild daemon (a systemd service, running as the\n \
         dsmil user with its state in /var/lib/dsmil) and the dsmilctl command line.\n",
        version = debian_version(&fields.upstream_version),
        arch = fields.architecture,
        size = fields.installed_size_kib,
        depends = depends.join(", "),
        suggests = SUGGESTS.join(", "),
    )
}

/// The `DEBIAN/conffiles` file.
pub fn conffiles() -> String {
    CONFFILES.iter().map(|f| format!("{f}\n")).collect()
}

/// `usr/share/doc/dsmil/changelog.Debian` (before gzip): one entry for this build. `date` is
/// RFC 2822, as `date -R` prints it.
pub fn changelog(upstream_version: &str, date: &str) -> String {
    format!(
        "{PACKAGE} ({version}) unstable; urgency=medium\n\n  \
         * Built from the DSMIL source tree by `cargo xtask package`.\n\n \
         -- {MAINTAINER}  {date}\n",
        version = debian_version(upstream_version)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> ControlFields {
        ControlFields {
            upstream_version: "0.1.0".into(),
            architecture: "amd64".into(),
            installed_size_kib: 51_234,
            shlib_depends: "libc6 (>= 2.34), libtss2-esys-3.0.2-0 (>= 3.0.1)".into(),
        }
    }

    #[test]
    fn control_has_the_fields_dpkg_needs_and_the_dependencies_joined() {
        let text = control(&fields());
        for line in [
            "Package: dsmil\n",
            "Version: 0.1.0-1\n",
            "Architecture: amd64\n",
            "Installed-Size: 51234\n",
            "Depends: libc6 (>= 2.34), libtss2-esys-3.0.2-0 (>= 3.0.1), adduser\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        // Continuation lines start with one space; a blank one is " .".
        let description = text.split("Description: ").nth(1).unwrap_or_default();
        for line in description.lines().skip(1) {
            assert!(line.starts_with(' ') && line.len() > 1, "bad line {line:?}");
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn no_shared_libraries_leaves_only_the_script_dependencies() {
        let text = control(&ControlFields {
            shlib_depends: String::new(),
            ..fields()
        });
        assert!(text.contains("Depends: adduser\n"), "{text}");
    }

    #[test]
    fn conffiles_and_changelog_follow_their_formats() {
        assert_eq!(conffiles(), "/etc/dsmil/dsmil.toml\n");
        let log = changelog("0.1.0", "Fri, 04 Dec 2026 06:00:00 +0000");
        assert!(log.starts_with("dsmil (0.1.0-1) unstable; urgency=medium\n\n  * "));
        assert!(log.ends_with(&format!(
            " -- {MAINTAINER}  Fri, 04 Dec 2026 06:00:00 +0000\n"
        )));
    }
}
