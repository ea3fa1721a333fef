//! HTTPS agents against a server DSMIL did not write (Python's `http.server` with `ssl`),
//! with certificates made by `openssl`: a private CA trusted through `tls.ca`, an agent the
//! system roots do not know, and mutual TLS with a client certificate.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use dsmil_coord::agent::{Agent, AgentError, TaskInput};
use dsmil_coord::agents::HttpAgent;
use dsmil_coord::config::AgentTls;
use dsmil_core::{AgentId, TaskId};
use serde_json::json;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (Debian's openssl package; `cargo xtask services up` installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by it.
fn make_pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=dsmil test CA",
        ],
    );
    for (name, cn, ext) in [
        (
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "dsmild", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
}

/// The Python server, and its URL; killed when dropped.
struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path, client_ca: bool) -> Server {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/https/server.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(dir.join("server.pem"))
        .arg(dir.join("server.key"));
    if client_ca {
        cmd.arg(dir.join("ca.pem"));
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("python3 runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no port: {line:?}"));
    Server(child, format!("https://127.0.0.1:{port}/run"))
}

fn input() -> TaskInput {
    TaskInput {
        task_id: TaskId::new("t").unwrap(),
        task_description: "double it".into(),
        input_data: json!({"n": 21}),
        attempt: 1,
        timeout_ms: 10_000,
    }
}

fn agent(url: &str, tls: Option<AgentTls>) -> Result<HttpAgent, AgentError> {
    HttpAgent::configured(AgentId::new("secure").unwrap(), url, tls.as_ref())
}

/// Settings that trust only the CA bundle `ca`.
fn ca_only(ca: std::path::PathBuf) -> AgentTls {
    AgentTls {
        ca: Some(ca),
        cert: None,
        key: None,
    }
}

fn tls(dir: &Path, client: bool) -> AgentTls {
    AgentTls {
        ca: Some(dir.join("ca.pem")),
        cert: client.then(|| dir.join("client.pem")),
        key: client.then(|| dir.join("client.key")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_agents_trust_the_configured_ca_and_present_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());

    let server = serve(dir.path(), false);
    // Trusting the private CA: served.
    let out = agent(&server.1, Some(tls(dir.path(), false)))
        .unwrap()
        .run(&input())
        .await
        .unwrap();
    assert_eq!(out.result["doubled"], 42);
    // The system roots do not know that CA: refused during the handshake, with the reason.
    let err = agent(&server.1, None)
        .unwrap()
        .run(&input())
        .await
        .unwrap_err();
    let chain = dsmil_coord::error_chain(&err);
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
    drop(server);

    // Mutual TLS: without a client certificate the server refuses; with one it names us.
    let server = serve(dir.path(), true);
    let err = agent(&server.1, Some(tls(dir.path(), false)))
        .unwrap()
        .run(&input())
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::Transport { .. }), "{err}");
    let out = agent(&server.1, Some(tls(dir.path(), true)))
        .unwrap()
        .run(&input())
        .await
        .unwrap();
    assert_eq!(out.result["client"], "dsmild");
}

#[test]
fn unusable_tls_files_are_named_when_the_agent_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let url = "https://127.0.0.1:1/run";
    let err = agent(url, Some(ca_only(dir.path().join("nope.pem")))).unwrap_err();
    assert!(matches!(err, AgentError::TlsSetup { .. }), "{err}");
    assert!(dsmil_coord::error_chain(&err).contains("nope.pem"), "{err}");
    std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
    let err = agent(url, Some(ca_only(dir.path().join("empty.pem")))).unwrap_err();
    assert!(
        dsmil_coord::error_chain(&err).contains("no certificate"),
        "{err}"
    );
    assert!(!err.is_retryable());
}
