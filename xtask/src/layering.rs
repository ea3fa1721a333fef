//! The dependency rule, checked from `cargo metadata`: the five layer crates depend on
//! `dsmil-core` and external crates only, never on each other; `dsmil-core` depends on no
//! DSMIL crate; the contract crate `dsmil-api` depends on core only; only the composers
//! (`dsmil-daemon`, the binaries, xtask) depend on layers. Every edge kind counts (normal,
//! build and dev), so each layer also tests alone.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The shared-vocabulary crate every layer may use.
pub const CORE: &str = "dsmil-core";
/// The layer crates.
pub const LAYERS: [&str; 6] = [
    "dsmil-tpm",
    "dsmil-learn",
    "dsmil-coord",
    "dsmil-accel",
    "dsmil-monitor",
    // Not a layer of the seed, but held to the same rule: core only, wired by the composer.
    "dsmil-cluster",
];
/// The wire contract: request, response and message types; like a layer, it may depend on
/// core only (it must not know any layer's internals).
pub const CONTRACT: &str = "dsmil-api";
/// Workspace members allowed to compose layers: the composer library, the binaries, xtask.
pub const COMPOSERS: [&str; 4] = ["dsmil-daemon", "dsmild", "dsmilctl", "xtask"];

/// Runs `cargo metadata` in `root` and fails naming every violating edge.
pub fn check_workspace(root: &Path) -> Result<()> {
    let metadata = cargo_metadata(root)?;
    let problems = violations(&metadata);
    if problems.is_empty() {
        eprintln!("layering: ok (layers depend on {CORE} only; {CORE} on no DSMIL crate)");
        return Ok(());
    }
    bail!(
        "the dependency rule is broken:\n  {}",
        problems.join("\n  ")
    )
}

/// `cargo metadata --no-deps` of the workspace at `root`.
pub fn cargo_metadata(root: &Path) -> Result<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(root)
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed in {}: {}",
            root.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("cargo metadata printed invalid JSON")
}

/// Every broken rule in `metadata`, one line each naming the edge.
pub fn violations(metadata: &Value) -> Vec<String> {
    let packages = metadata["packages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let members: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut problems = Vec::new();
    for package in packages {
        let Some(name) = package["name"].as_str() else {
            continue;
        };
        let deps: Vec<(&str, &str)> = package["dependencies"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|d| {
                let dep = d["name"].as_str()?;
                let kind = d["kind"].as_str().unwrap_or("normal");
                Some((dep, kind))
            })
            .filter(|(dep, _)| members.contains(dep))
            .collect();
        if name == CORE {
            for (dep, kind) in &deps {
                problems.push(format!(
                    "{CORE} -> {dep} ({kind} dependency): {CORE} may depend on no DSMIL crate"
                ));
            }
        } else if LAYERS.contains(&name) {
            for (dep, kind) in deps.iter().filter(|(dep, _)| *dep != CORE) {
                problems.push(format!(
                    "{name} -> {dep} ({kind} dependency): a layer may depend on {CORE} only; \
                     put the need behind a port in {CORE} and wire it in the composer (dsmil-daemon)"
                ));
            }
        } else if name == CONTRACT {
            for (dep, kind) in deps.iter().filter(|(dep, _)| *dep != CORE) {
                problems.push(format!(
                    "{name} -> {dep} ({kind} dependency): the contract may depend on {CORE} only; \
                     give the type its wire form in {CONTRACT} and convert in the composer"
                ));
            }
        } else if !COMPOSERS.contains(&name) {
            problems.push(format!(
                "{name}: unknown workspace member; add it to the layering rules in xtask/src/layering.rs"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn package(name: &str, deps: &[(&str, &str)]) -> Value {
        let deps: Vec<Value> = deps
            .iter()
            .map(|(n, k)| json!({"name": n, "kind": if *k == "normal" { Value::Null } else { json!(k) }}))
            .collect();
        json!({"name": name, "dependencies": deps})
    }

    fn check(packages: Vec<Value>, expected: &[&str]) {
        let got = violations(&json!({ "packages": packages }));
        assert_eq!(got.len(), expected.len(), "{got:#?}");
        for (line, want) in got.iter().zip(expected) {
            assert!(
                line.starts_with(want),
                "{line:?} should start with {want:?}"
            );
        }
    }

    #[test]
    fn the_intended_shape_passes() {
        check(
            vec![
                package(CORE, &[("serde", "normal")]),
                package("dsmil-tpm", &[(CORE, "normal"), ("tss-esapi", "normal")]),
                package("dsmil-learn", &[(CORE, "normal"), (CORE, "dev")]),
                package(
                    "dsmild",
                    &[
                        (CORE, "normal"),
                        ("dsmil-tpm", "normal"),
                        ("dsmil-learn", "normal"),
                    ],
                ),
                package("xtask", &[(CORE, "dev")]),
                package(CONTRACT, &[(CORE, "normal")]),
                package(
                    "dsmil-daemon",
                    &[
                        (CORE, "normal"),
                        (CONTRACT, "normal"),
                        ("dsmil-tpm", "normal"),
                    ],
                ),
            ],
            &[],
        );
    }

    #[test]
    fn wrong_edges_are_named() {
        check(
            vec![
                package(CORE, &[("dsmil-tpm", "normal")]),
                package("dsmil-tpm", &[(CORE, "normal")]),
                package(
                    "dsmil-coord",
                    &[(CORE, "normal"), ("dsmil-learn", "normal")],
                ),
                package("dsmil-learn", &[("dsmil-accel", "dev")]),
                package("dsmil-accel", &[("dsmil-monitor", "build")]),
                package("dsmil-monitor", &[(CONTRACT, "normal")]),
                package(CONTRACT, &[("dsmil-learn", "normal")]),
                package("dsmil-extra", &[]),
            ],
            &[
                "dsmil-core -> dsmil-tpm (normal dependency)",
                "dsmil-coord -> dsmil-learn (normal dependency)",
                "dsmil-learn -> dsmil-accel (dev dependency)",
                "dsmil-accel -> dsmil-monitor (build dependency)",
                "dsmil-monitor -> dsmil-api (normal dependency)",
                "dsmil-api -> dsmil-learn (normal dependency)",
                "dsmil-extra: unknown workspace member",
            ],
        );
    }

    #[test]
    fn external_crates_named_like_layers_are_not_edges() {
        // Only workspace members count; an external dependency is never a layer edge.
        check(
            vec![package(
                "dsmil-tpm",
                &[(CORE, "normal"), ("dsmil-learn", "normal")],
            )],
            &[],
        );
    }
}
