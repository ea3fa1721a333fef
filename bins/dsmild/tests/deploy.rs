//! The files users load beside the daemon, checked by the tools that load them: the systemd
//! unit (`systemd-analyze verify`), the Prometheus rules (`promtool check rules` and `promtool
//! test rules`, and equal to what `dsmilctl config prometheus-rules` generates), the Grafana
//! dashboard (every query names a metric the daemon exports).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Whether a test tool is missing although services are required.
fn skip(tool: &str) -> bool {
    let required = std::env::var(dsmil_core::testenv::REQUIRE_VAR).is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{tool} is missing; `cargo xtask services up` installs it"
    );
    eprintln!("skipping: no {tool}");
    true
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() && skip("systemd-analyze") {
        return;
    }
    let unit = deploy().join("systemd/dsmild.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for directive in [
        "Type=notify",
        "WatchdogSec=",
        "StateDirectory=dsmil",
        "ConfigurationDirectory=dsmil",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "DeviceAllow=/dev/tpmrm0 rw",
        "ExecStart=/usr/bin/dsmild\n",
    ] {
        assert!(text.contains(directive), "{directive}");
    }
    // The installed path does not exist here: verify the unit around the binary just built.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("dsmild.service");
    std::fs::write(
        &local,
        text.replace(
            "ExecStart=/usr/bin/dsmild",
            &format!("ExecStart={}", env!("CARGO_BIN_EXE_dsmild")),
        ),
    )
    .unwrap();
    let out = std::process::Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&local)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_prometheus_rules_are_the_generated_defaults_and_pass_promtool() {
    let rules = deploy().join("prometheus/dsmil.rules.yml");
    let text = std::fs::read_to_string(&rules).unwrap();
    let generated = dsmil_monitor::prometheus_rules::prometheus_rules(
        &dsmil_monitor::config::AlertThresholds::default(),
    );
    assert!(
        text == generated,
        "deploy/prometheus/dsmil.rules.yml is not current: \
         `dsmilctl config prometheus-rules > deploy/prometheus/dsmil.rules.yml`"
    );
    let Some(promtool) = crate::service::promtool() else {
        skip("promtool");
        return;
    };
    for args in [
        &["check", "rules", "dsmil.rules.yml"][..],
        &["test", "rules", "dsmil.rules.test.yml"][..],
    ] {
        let out = std::process::Command::new(&promtool)
            .args(args)
            .current_dir(deploy().join("prometheus"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Families exported only where the host has what they measure.
const CONDITIONAL: &[&str] = &[
    // Only with thermal sensors (none in most VMs).
    "dsmil_temperature_max_celsius",
];

/// Every `dsmil_*`/`process_*` name in the dashboard's queries is a family of `scrape` (a
/// histogram's `_bucket`, `_sum` and `_count` count as the histogram).
pub fn every_dashboard_query_names_an_exported_metric(scrape: &str) {
    let families: BTreeSet<&str> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let text = std::fs::read_to_string(deploy().join("grafana/dsmil.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut checked = 0;
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("dsmil_") || w.starts_with("process_"))
                .collect();
            assert!(!names.is_empty() || expr.starts_with("up"), "{expr}");
            for name in names {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| families.contains(b)))
                    .unwrap_or(name);
                assert!(
                    families.contains(base) || CONDITIONAL.contains(&base),
                    "panel {}: {name} is not exported",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 30, "{checked} names checked");
    for area in [
        "Health",
        "Agents",
        "Workflows",
        "TPM and audit",
        "Learning and accelerator",
    ] {
        assert!(panels.iter().any(|p| p["title"] == area), "no {area} row");
    }
}
