//! TLS for client connections: the file paths a cluster is given, and a throw-away CA plus a
//! server certificate for `127.0.0.1`/`localhost` made with the `openssl` command (for tests).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::NatsServerError;
use super::os::write_private;

/// PEM files for TLS on client connections: the server presents `cert` (with `key`); clients
/// verify it against `ca`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate clients trust.
    pub ca: PathBuf,
    /// The server certificate (valid for 127.0.0.1 and localhost).
    pub cert: PathBuf,
    /// The server certificate's private key.
    pub key: PathBuf,
}

/// Days the throw-away certificates are valid.
const DAYS: &str = "7";

/// Writes a fresh throw-away CA (`ca.pem`, `ca.key`) and a server certificate signed by it for
/// `IP:127.0.0.1` and `DNS:localhost` (`server.pem`, `server.key`) into `dir`, using the
/// `openssl` command line (P-256 keys, valid for 7 days). Keys are mode 0600. For tests only:
/// the CA key sits beside the certificates.
pub fn write_test_tls(dir: &Path) -> Result<TlsFiles, NatsServerError> {
    fs::create_dir_all(dir).map_err(|e| NatsServerError::io("creating", dir, e))?;
    let ca = dir.join("ca.pem");
    let ca_key = dir.join("ca.key");
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let ext = dir.join("server.ext");
    // Created empty with mode 0600 first, so openssl writes the keys into private files.
    write_private(&ca_key, "")?;
    write_private(&key, "")?;
    openssl(
        "make the test CA",
        Command::new("openssl")
            .args(["req", "-x509", "-new", "-nodes", "-days", DAYS])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-subj", "/CN=DSMIL throw-away test CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca),
    )?;
    openssl(
        "make the server key and request",
        Command::new("openssl")
            .args(["req", "-new", "-nodes"])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-subj", "/CN=localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    )?;
    let extensions = "basicConstraints=critical,CA:FALSE\n\
                      keyUsage=critical,digitalSignature\n\
                      extendedKeyUsage=serverAuth\n\
                      subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    fs::write(&ext, extensions).map_err(|e| NatsServerError::io("writing", &ext, e))?;
    openssl(
        "sign the server certificate",
        Command::new("openssl")
            .args(["x509", "-req", "-days", DAYS, "-CAcreateserial"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert),
    )?;
    Ok(TlsFiles { ca, cert, key })
}

fn openssl(step: &'static str, cmd: &mut Command) -> Result<(), NatsServerError> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NatsServerError::OpensslSpawn { step, source })?;
    if output.status.success() {
        return Ok(());
    }
    Err(NatsServerError::Openssl {
        step,
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_server_certificate_verifies_against_the_ca_for_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_test_tls(dir.path()).unwrap();
        let verify = Command::new("openssl")
            .args(["verify", "-verify_ip", "127.0.0.1", "-CAfile"])
            .arg(&files.ca)
            .arg(&files.cert)
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
        let mode = fs::metadata(&files.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let key = fs::read_to_string(&files.key).unwrap();
        assert!(key.contains("PRIVATE KEY"), "{key}");
    }
}
