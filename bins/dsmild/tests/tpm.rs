//! dsmild's TPM surface on a real daemon: `/api/tpm/info`, quotes that `tpm2_checkquote`
//! accepts, DSMIL devices through the bridge (quarantine → 403), and the audit anchor that
//! catches a log cut back while the daemon was down. Run on the software TPM and, with the
//! `tss` feature, on swtpm.

use std::path::Path;

use crate::common::Daemon;
use dsmil_tpm::bridge::DeviceAttestation;
use dsmil_tpm::der::base64_decode;
use nix::sys::signal::Signal;

fn token(data: &Path) -> String {
    std::fs::read_to_string(data.join("api-token"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Extra dsmild arguments for the backend under test, and what keeps it alive.
struct Backend {
    args: Vec<String>,
    #[cfg(feature = "tss")]
    _swtpm: Option<dsmil_tpm::swtpm::Swtpm>,
    name: &'static str,
}

fn soft() -> Backend {
    Backend {
        args: vec![],
        #[cfg(feature = "tss")]
        _swtpm: None,
        name: "soft",
    }
}

#[cfg(feature = "tss")]
fn tss(dir: &Path) -> Option<Backend> {
    if !dsmil_tpm::swtpm::available() {
        assert!(
            std::env::var(dsmil_core::testenv::REQUIRE_VAR).as_deref() != Ok("1"),
            "swtpm is required"
        );
        return None;
    }
    let swtpm = dsmil_tpm::swtpm::Swtpm::spawn(&dir.join("swtpm")).unwrap();
    Some(Backend {
        args: vec!["--tpm".into(), format!("tss:{}", swtpm.tcti())],
        _swtpm: Some(swtpm),
        name: "tss",
    })
}

fn start(data: &Path, backend: &Backend) -> Daemon {
    let args: Vec<&str> = backend.args.iter().map(String::as_str).collect();
    Daemon::start(data, &args)
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn info_quote_and_devices(backend: Backend, dir: &Path) {
    let data = dir.join("data");
    let daemon = start(&data, &backend);
    let token = token(&data);

    let (status, info) = daemon.get("/api/tpm/info", Some(&token));
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["backend"], backend.name);
    assert_eq!(info["hardware_rooted"], false);
    assert!(
        info["pcr_banks"]
            .as_array()
            .unwrap()
            .contains(&"sha256".into())
    );
    let labels: Vec<&str> = info["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["label"].as_str().unwrap())
        .collect();
    assert!(labels.contains(&"dsmil-audit"), "{labels:?}");
    let (_, status_doc) = daemon.get("/api/status", Some(&token));
    assert_eq!(status_doc["tpm"]["backend"], backend.name);
    assert_eq!(status_doc["tpm"]["hardware_rooted"], false);
    let (status, _) = daemon.get("/api/tpm/info", None);
    assert_eq!(status, 401);
    // Audit proofs: token required, the entry number checked, unsigned entries named.
    let (status, _) = daemon.get("/api/audit/proof/0", None);
    assert_eq!(status, 401);
    let (status, e) = daemon.get("/api/audit/proof/first", Some(&token));
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("invalid_sequence")),
        "{e}"
    );
    let (status, e) = daemon.get("/api/audit/proof/4000000000", Some(&token));
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("not_signed")),
        "{e}"
    );

    // A quote, written the way dsmilctl does, that tpm2_checkquote accepts.
    let (status, q) = daemon.post(
        "/api/tpm/quote",
        &token,
        r#"{"pcrs":[0,1,7,15],"nonce":"C0FFEE42"}"#,
    );
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["nonce"], "c0ffee42");
    assert_eq!(q["pcrs"]["values"].as_object().unwrap().len(), 4);
    let out = dir.join("quote");
    std::fs::create_dir_all(&out).unwrap();
    for (field, file) in [
        ("message", "quote.msg"),
        ("signature", "quote.sig"),
        ("pcrs_file", "quote.pcrs"),
    ] {
        let bytes = base64_decode(q[field].as_str().unwrap()).unwrap();
        std::fs::write(out.join(file), bytes).unwrap();
    }
    std::fs::write(out.join("ak.pub.pem"), q["ak_pem"].as_str().unwrap()).unwrap();
    let quote: dsmil_tpm::Quote = serde_json::from_value(q["quote"].clone()).unwrap();
    quote.verify(&[0xc0, 0xff, 0xee, 0x42]).unwrap();
    if which("tpm2_checkquote") {
        let status = std::process::Command::new("tpm2_checkquote")
            .current_dir(&out)
            .args(["-u", "ak.pub.pem", "-m", "quote.msg", "-s", "quote.sig"])
            .args(["-f", "quote.pcrs", "-g", "sha256", "-q", "c0ffee42"])
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "tpm2_checkquote: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    // Bad requests name the problem.
    for (body, code) in [
        (r#"{"pcrs":[24],"nonce":""}"#, "invalid_pcrs"),
        (r#"{"pcrs":[],"nonce":""}"#, "invalid_pcrs"),
        (r#"{"pcrs":[0],"nonce":"xyz"}"#, "invalid_hex"),
        (r#"{"pcrs":[0],"nnonce":"00"}"#, "invalid_json"),
    ] {
        let (status, e) = daemon.post("/api/tpm/quote", &token, body);
        assert_eq!(
            (status, e["error"]["code"].as_str().unwrap()),
            (400, code),
            "{body}: {e}"
        );
    }
    let long_nonce = format!(r#"{{"pcrs":[0],"nonce":"{}"}}"#, "00".repeat(65));
    let (status, e) = daemon.post("/api/tpm/quote", &token, &long_nonce);
    assert_eq!(status, 400, "{e}");

    // Devices: quarantined ones are refused with 403, others written; attestation verifies.
    let (status, e) = daemon.post("/api/devices/0x8009/write", &token, r#"{"data":"00ff"}"#);
    assert_eq!(status, 403, "{e}");
    assert_eq!(e["error"]["code"], "policy_violation");
    let (status, _) = daemon.post("/api/devices/0x8000/write", &token, r#"{"data":"00ff"}"#);
    assert_eq!(status, 200);
    let (status, e) = daemon.post("/api/devices/0x9000/write", &token, r#"{"data":"00"}"#);
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("invalid_device"))
    );
    let (_, list) = daemon.get("/api/devices", Some(&token));
    let devices = list["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 108);
    assert_eq!(
        devices.iter().filter(|d| d["quarantined"] == true).count(),
        5
    );
    let (status, a) = daemon.post(
        "/api/devices/0x8005/attest",
        &token,
        r#"{"nonce":"0102","state":"{\"mode\":\"normal\"}"}"#,
    );
    assert_eq!(status, 200, "{a}");
    let att: DeviceAttestation = serde_json::from_value(a["attestation"].clone()).unwrap();
    att.verify(
        &att.quote.ak_public.clone(),
        &[1, 2],
        Some(br#"{"mode":"normal"}"#),
    )
    .unwrap();
    assert_eq!(att.quote.ak_public.pem().as_deref(), a["ak_pem"].as_str());

    let (status, stderr) = daemon.stop(Signal::SIGTERM);
    assert!(status.success(), "{stderr}");
    // The refused write is in the audit log, signed by the TPM key.
    let log = std::fs::read_to_string(data.join("audit/audit.log")).unwrap();
    assert!(log.contains("quarantine_violation"), "{log}");
    assert!(
        log.contains(&format!("tpm-{}:dsmil-audit", backend.name)),
        "{log}"
    );
    if backend.name == "soft" {
        assert!(stderr.contains("NOT hardware-rooted"), "{stderr}");
    }
}

fn anchor_catches_a_log_cut_back(backend: Backend, dir: &Path) {
    let data = dir.join("data");
    let write_quarantined = |daemon: &Daemon, token: &str| {
        let (status, _) = daemon.post("/api/devices/0x800A/write", token, r#"{"data":"00"}"#);
        assert_eq!(status, 403);
    };
    let daemon = start(&data, &backend);
    let token = token(&data);
    write_quarantined(&daemon, &token);
    write_quarantined(&daemon, &token);
    assert!(daemon.stop(Signal::SIGTERM).0.success());
    let log_path = data.join("audit/audit.log");
    let first = std::fs::read_to_string(&log_path).unwrap();

    let daemon = start(&data, &backend);
    write_quarantined(&daemon, &token);
    let (status, stderr) = daemon.stop(Signal::SIGTERM);
    assert!(status.success());
    assert!(
        !stderr.contains("does not match its TPM anchor"),
        "{stderr}"
    );

    // Cut the log back to what it was after the first run: well-formed, but shorter than the
    // tree head anchored in the TPM.
    std::fs::write(&log_path, &first).unwrap();
    let daemon = start(&data, &backend);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap();
        if log.contains("audit_log_tampered") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no tamper entry: {log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (_, stderr) = daemon.stop(Signal::SIGTERM);
    assert!(stderr.contains("does not match its TPM anchor"), "{stderr}");
}

#[test]
fn soft_tpm_info_quote_and_devices() {
    let dir = tempfile::tempdir().unwrap();
    info_quote_and_devices(soft(), dir.path());
}

#[test]
fn soft_tpm_anchor_catches_a_log_cut_back() {
    let dir = tempfile::tempdir().unwrap();
    anchor_catches_a_log_cut_back(soft(), dir.path());
}

#[cfg(feature = "tss")]
#[test]
fn swtpm_info_quote_and_devices() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(b) = tss(dir.path()) {
        info_quote_and_devices(b, dir.path());
    }
}

#[cfg(feature = "tss")]
#[test]
fn swtpm_anchor_catches_a_log_cut_back() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(b) = tss(dir.path()) {
        anchor_catches_a_log_cut_back(b, dir.path());
    }
}
