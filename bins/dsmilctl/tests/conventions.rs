//! dsmilctl's command-line conventions on the real binary: distinct exit codes, named
//! contexts, shell completions (parsed by the real shells where installed), man pages and
//! `--version`.

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

mod common;

use std::net::TcpListener;
use std::process::Command;

use common::*;

#[test]
fn exit_codes_tell_usage_unreachable_unauthorised_and_failed_checks_apart() {
    assert_eq!(dsmilctl(&["--no-such-flag"]).status.code(), Some(2));
    assert_eq!(
        dsmilctl(&["audit"]).status.code(),
        Some(2),
        "missing subcommand"
    );

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("api-token");
    let out = dsmilctl(&["--token-file", token.to_str().unwrap(), "status"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "no token: {}",
        text(&out.stderr)
    );

    std::fs::write(&token, "t".repeat(64)).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = ctl_at(&format!("http://127.0.0.1:{port}"), &token, &["status"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "unreachable: {}",
        text(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"nowhere\"\n").unwrap();
    assert_eq!(
        dsmilctl(&["config", "check", bad.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );

    let Some(dsmild) = sibling_dsmild() else {
        return;
    };
    let (_daemon, url, real) = start_daemon(dsmild, "", dir.path());
    let out = ctl_at(&url, &real, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = ctl_at(&url, &token, &["status"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "wrong token: {}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
}

#[test]
fn contexts_name_daemons_and_the_current_one_is_used() {
    let Some(dsmild) = sibling_dsmild() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, url, token) = start_daemon(dsmild, "", dir.path());
    let xdg = dir.path().join("xdg");
    let ctl = |args: &[&str]| {
        command()
            .env("XDG_CONFIG_HOME", &xdg)
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = ctl(&[
        "context",
        "add",
        "lab",
        "--server",
        &url,
        "--token",
        token.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = ctl(&["context", "add", "gone", "--server", "http://127.0.0.1:9"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&ctl(&["context", "list"]).stdout);
    assert!(
        listed.contains("* lab"),
        "the first added is current: {listed}"
    );

    assert_eq!(
        ctl(&["status"]).status.code(),
        Some(0),
        "through the current context"
    );
    assert_eq!(
        ctl(&["--context", "gone", "status"]).status.code(),
        Some(4),
        "no token there"
    );
    assert!(ctl(&["context", "use", "gone"]).status.success());
    assert!(text(&ctl(&["context", "list"]).stdout).contains("* gone"));
    // A flag still wins over the context.
    let out = ctl(&[
        "--url",
        &url,
        "--token-file",
        token.to_str().unwrap(),
        "status",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = ctl(&["context", "use", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("known: gone, lab"),
        "{}",
        text(&out.stderr)
    );
    assert!(ctl(&["context", "remove", "gone"]).status.success());
    let v: serde_json::Value =
        serde_json::from_slice(&ctl(&["--json", "context", "list"]).stdout).unwrap();
    assert_eq!(v["current"], serde_json::Value::Null, "{v}");
    assert_eq!(v["contexts"]["lab"]["url"], url.as_str());
}

/// Whether `shell` is installed.
fn has(shell: &str) -> bool {
    Command::new(shell)
        .arg("-c")
        .arg("true")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn completions_parse_in_their_shells_and_man_pages_and_version_are_complete() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, check) in [("bash", "-n"), ("zsh", "-n"), ("fish", "--no-execute")] {
        let out = dsmilctl(&["completion", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = dir.path().join(format!("dsmilctl.{shell}"));
        std::fs::write(&script, &out.stdout).unwrap();
        assert!(
            text(&out.stdout).contains("context"),
            "{shell} completes subcommands"
        );
        if has(shell) {
            let parsed = Command::new(shell)
                .arg(check)
                .arg(&script)
                .output()
                .unwrap();
            assert!(parsed.status.success(), "{shell}: {}", text(&parsed.stderr));
        }
    }

    let man = dir.path().join("man");
    assert!(
        dsmilctl(&["generate-man", man.to_str().unwrap()])
            .status
            .success()
    );
    let page = std::fs::read_to_string(man.join("dsmilctl.1")).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH dsmilctl 1"),
        "{page}"
    );
    assert!(page.contains("Exit codes"), "the page documents them");
    for sub in [
        "dsmilctl-context-add.1",
        "dsmilctl-audit-verify.1",
        "dsmilctl-status.1",
    ] {
        assert!(man.join(sub).exists(), "{sub}");
    }
    assert!(
        !man.join("dsmilctl-generate-man.1").exists(),
        "hidden commands have no page"
    );

    let out = dsmilctl(&["--version"]);
    let version = text(&out.stdout);
    assert!(
        version.starts_with(&format!("dsmilctl {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert!(
        version.contains("(git ") && version.contains("features: "),
        "{version}"
    );
}
