//! The layering check run for real: `cargo xtask layering` on this workspace passes, and on a
//! throw-away workspace with a deliberately wrong edge it fails naming that edge.

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

use std::path::Path;
use std::process::Command;

fn write_crate(root: &Path, name: &str, deps: &[&str]) {
    let dir = root.join("crates").join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let deps: String = deps
        .iter()
        .map(|d| format!("{d} = {{ path = \"../{d}\" }}\n"))
        .collect();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{deps}"),
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
}

fn layering(workspace: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["layering", "--workspace"])
        .arg(workspace)
        .output()
        .unwrap()
}

#[test]
fn this_workspace_obeys_the_rule() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = layering(root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_wrong_edge_fails_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"crates/*\"]\n",
    )
    .unwrap();
    write_crate(dir.path(), "dsmil-core", &[]);
    write_crate(dir.path(), "dsmil-tpm", &["dsmil-core"]);
    write_crate(dir.path(), "dsmil-coord", &["dsmil-core", "dsmil-tpm"]);
    write_crate(dir.path(), "dsmil-api", &["dsmil-core", "dsmil-coord"]);
    // The composer may depend on every layer and the contract.
    write_crate(
        dir.path(),
        "dsmil-daemon",
        &["dsmil-core", "dsmil-api", "dsmil-tpm", "dsmil-coord"],
    );
    let out = layering(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("dsmil-coord -> dsmil-tpm (normal dependency)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dsmil-api -> dsmil-coord (normal dependency)"),
        "{stderr}"
    );
    assert!(!stderr.contains("dsmil-daemon ->"), "{stderr}");
    assert!(!stderr.contains("dsmil-tpm -> dsmil-core"), "{stderr}");

    // Fixing the edges makes it pass.
    write_crate(dir.path(), "dsmil-coord", &["dsmil-core"]);
    write_crate(dir.path(), "dsmil-api", &["dsmil-core"]);
    let out = layering(dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
