//! `cargo xtask bench`: runs the criterion benchmarks of the workspace and prints one table in
//! which every project implementation stands beside the reference implementations measured in
//! the same run, with the ratio.
//!
//! Convention for bench authors: in a criterion group, name each function after the
//! implementation and each parameter after the case — `BenchmarkId::new("dsmil-avx512", "4KiB")`
//! — and set a `Throughput`. Implementations whose name starts with `dsmil-` are the project's;
//! every other name is a reference. A project row's `ratio` is its speed relative to the best
//! reference in the same (group, case): above 1 means faster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;

/// Flags of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Short warm-up and measurement, so the whole run stays within a few minutes.
    #[arg(long)]
    pub quick: bool,
    /// Also write the rows as a JSON array to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Where to draw the SVG chart [default: target/criterion/dsmil-bench.svg].
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
    /// Only these bench targets (any part of a target's name, e.g. `crypto`, `memory`) or
    /// criterion groups (e.g. `sha256_x16`); default: everything.
    #[arg(value_name = "GROUP")]
    pub groups: Vec<String>,
}

/// Environment variable naming the directory where benches that measure something other than
/// time (routing quality, latency percentiles) write their rows as JSON arrays of [`Row`]s.
pub const ROWS_DIR_VAR: &str = "DSMIL_BENCH_ROWS_DIR";

/// Bench targets that need `cargo xtask services` (PostgreSQL, swtpm, the nats-server binary).
const NEEDS_SERVICES: &[&str] = &["learn_store", "tpm_ops", "cluster"];

/// That directory, under `target/criterion`.
const ROWS_DIR: &str = "dsmil-rows";

/// Prefix that marks the project's own implementations.
pub const PROJECT_PREFIX: &str = "dsmil-";

/// One measured (group, case, implementation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Criterion group, e.g. `sha256_x16`.
    pub group: String,
    /// Case within the group, e.g. `4KiB`.
    pub case: String,
    /// Implementation, e.g. `dsmil-avx512` or `sha2`.
    #[serde(rename = "impl")]
    pub implementation: String,
    /// Unit of `value`: `GB/s`, `GFLOP/s` (groups named `*gemm*`), `Melem/s`, or `ns` (time per
    /// iteration) without throughput.
    pub unit: String,
    /// The measurement (higher is better for rates, lower for `ns`).
    pub value: f64,
    /// Best reference in the same group and case (project rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_impl: Option<String>,
    /// Speed relative to `baseline_impl`; above 1 is faster (project rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

/// Runs the benches and reports.
pub fn run(root: &Path, args: &BenchArgs) -> Result<()> {
    let targets = bench_targets(root)?;
    if targets.is_empty() {
        eprintln!(
            "bench: the workspace has no benchmark targets yet (they arrive with the layer crates)"
        );
        return write_json(args.json.as_deref(), &[]);
    }
    let (targets, group_filters) = select(targets, &args.groups);
    let started = SystemTime::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Benches that measure against PostgreSQL or swtpm get the services (and their features).
    let services = if targets
        .iter()
        .any(|(_, b)| NEEDS_SERVICES.contains(&b.as_str()))
    {
        crate::services::up(root)?
    } else {
        Default::default()
    };
    // The cluster bench runs Ray and Temporal beside dsmild when they install (else no row).
    let mut services = services;
    if targets.iter().any(|(_, b)| b == "cluster") {
        match crate::services::ray_python(root) {
            Ok(python) => {
                services.insert(
                    "DSMIL_BENCH_RAY_PYTHON".to_owned(),
                    python.display().to_string(),
                );
            }
            Err(err) => eprintln!("bench: no Ray reference row: {err:#}"),
        }
        match crate::services::temporal_python(root) {
            Ok((python, cli)) => {
                services.insert(
                    "DSMIL_BENCH_TEMPORAL_PYTHON".to_owned(),
                    python.display().to_string(),
                );
                services.insert(
                    "DSMIL_BENCH_TEMPORAL_CLI".to_owned(),
                    cli.display().to_string(),
                );
            }
            Err(err) => eprintln!("bench: no Temporal reference row: {err:#}"),
        }
    }
    for (package, bench) in &targets {
        eprintln!("bench: running {package}/{bench}");
        let mut cmd = Command::new(&cargo);
        let features: Vec<&str> = crate::cmd::SERVICE_FEATURES
            .iter()
            .filter_map(|f| f.strip_prefix(&format!("{package}/")))
            .collect();
        cmd.current_dir(root)
            .envs(&services)
            .env(
                ROWS_DIR_VAR,
                root.join("target").join("criterion").join(ROWS_DIR),
            )
            .env("DSMIL_BENCH_QUICK", if args.quick { "1" } else { "0" })
            .args(["bench", "-p", package, "--bench", bench]);
        if !features.is_empty() {
            cmd.arg("--features").arg(features.join(","));
        }
        cmd.arg("--")
            .arg("--noplot")
            // Criterion's own report goes to stderr; stdout carries only the final table.
            .stdout(std::process::Stdio::from(std::io::stderr()));
        if args.quick {
            cmd.args([
                "--warm-up-time",
                "0.3",
                "--measurement-time",
                "1",
                "--sample-size",
                "10",
            ]);
        }
        if !group_filters.is_empty() {
            cmd.arg(format!("^({})/", group_filters.join("|")));
        }
        let status = cmd
            .status()
            .with_context(|| format!("cannot run cargo bench for {bench}"))?;
        if !status.success() {
            bail!("cargo bench -p {package} --bench {bench} failed ({status})");
        }
    }
    let rows = collect(&root.join("target").join("criterion"), started)?;
    if rows.is_empty() {
        eprintln!("bench: no results matched {:?}", args.groups);
    }
    print!("{}", render_table(&rows));
    let svg = args.svg.clone().unwrap_or_else(|| {
        root.join("target")
            .join("criterion")
            .join("dsmil-bench.svg")
    });
    std::fs::write(&svg, render_svg(&rows))
        .with_context(|| format!("cannot write {}", svg.display()))?;
    eprintln!("bench: chart in {}", svg.display());
    write_json(args.json.as_deref(), &rows)
}

fn write_json(path: Option<&Path>, rows: &[Row]) -> Result<()> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(rows).context("cannot serialize rows")?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("bench: wrote {} rows to {}", rows.len(), path.display());
    }
    Ok(())
}

/// Splits the GROUP arguments: one that is part of a bench target's name (`crypto` selects
/// `crypto_hash` and `crypto_ciphers`, `memory` selects `memory`) picks targets; any other is a
/// criterion group name. Returns the targets to run and the group filters.
fn select(targets: Vec<(String, String)>, args: &[String]) -> (Vec<(String, String)>, Vec<String>) {
    let (target_args, group_args): (Vec<&String>, Vec<&String>) = args
        .iter()
        .partition(|a| targets.iter().any(|(_, bench)| bench.contains(a.as_str())));
    let chosen = if target_args.is_empty() {
        targets
    } else {
        targets
            .into_iter()
            .filter(|(_, bench)| target_args.iter().any(|a| bench.contains(a.as_str())))
            .collect()
    };
    (chosen, group_args.into_iter().cloned().collect())
}

/// (package, bench target) pairs of the workspace.
fn bench_targets(root: &Path) -> Result<Vec<(String, String)>> {
    let metadata = crate::layering::cargo_metadata(root)?;
    let mut out = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default();
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_bench = target["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bench"));
            if is_bench && let Some(bench) = target["name"].as_str() {
                out.push((name.to_owned(), bench.to_owned()));
            }
        }
    }
    Ok(out)
}

/// Reads every criterion result under `dir` written at or after `since` into rows, with
/// ratios filled in.
pub fn collect(dir: &Path, since: SystemTime) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    if dir.exists() {
        visit(dir, since, &mut rows)?;
    }
    rows.sort_by(|a, b| {
        (a.group.as_str(), a.case.as_str(), a.implementation.as_str()).cmp(&(
            b.group.as_str(),
            b.case.as_str(),
            b.implementation.as_str(),
        ))
    });
    add_ratios(&mut rows);
    Ok(rows)
}

fn visit(dir: &Path, since: SystemTime, rows: &mut Vec<Row>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            // Only `new/` holds this run's results; `base/` and `change/` are history.
            if path
                .file_name()
                .is_some_and(|n| n == "base" || n == "change")
            {
                continue;
            }
            visit(&path, since, rows)?;
        } else if path.parent().is_some_and(|p| p.ends_with(ROWS_DIR))
            && path.extension().is_some_and(|e| e == "json")
        {
            let fresh = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since);
            if fresh {
                rows.extend(read_rows(&path)?);
            }
        } else if path.file_name().is_some_and(|n| n == "benchmark.json")
            && path.parent().is_some_and(|p| p.ends_with("new"))
        {
            let fresh = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since);
            if fresh && let Some(row) = read_result(&path)? {
                rows.push(row);
            }
        }
    }
    Ok(())
}

/// Rows a bench wrote itself (a JSON array of `{group, case, impl, unit, value}`).
fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let values: Vec<Value> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON array", path.display()))?;
    values
        .iter()
        .map(|v| {
            let field = |name: &str| {
                v[name]
                    .as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("{}: a row lacks {name:?}", path.display()))
            };
            Ok(Row {
                group: field("group")?,
                case: field("case")?,
                implementation: field("impl")?,
                unit: field("unit")?,
                value: v["value"]
                    .as_f64()
                    .with_context(|| format!("{}: a row lacks a numeric value", path.display()))?,
                baseline_impl: None,
                ratio: None,
            })
        })
        .collect()
}

/// Whether larger values of `unit` are better (rates, rewards) or smaller (times, memory,
/// CPU use).
fn higher_is_better(unit: &str) -> bool {
    !matches!(
        unit,
        "ns" | "µs" | "us" | "ms" | "s" | "KiB" | "MiB" | "% CPU"
    )
}

/// One row from `…/new/benchmark.json` and its sibling `estimates.json`.
fn read_result(benchmark_json: &Path) -> Result<Option<Row>> {
    let read = |p: &Path| -> Result<Value> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))
    };
    let bench = read(benchmark_json)?;
    let estimates = read(&benchmark_json.with_file_name("estimates.json"))?;
    let (Some(group), Some(implementation)) =
        (bench["group_id"].as_str(), bench["function_id"].as_str())
    else {
        return Ok(None);
    };
    let case = bench["value_str"].as_str().unwrap_or("-").to_owned();
    let Some(mean_ns) = estimates["mean"]["point_estimate"]
        .as_f64()
        .filter(|v| *v > 0.0)
    else {
        return Ok(None);
    };
    let (unit, value) = match &bench["throughput"] {
        Value::Object(t) if t.contains_key("Bytes") || t.contains_key("BytesDecimal") => {
            let bytes = t
                .get("Bytes")
                .or_else(|| t.get("BytesDecimal"))
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            ("GB/s", bytes / mean_ns)
        }
        // Matrix products count floating-point operations as their elements.
        Value::Object(t) if t.contains_key("Elements") && group.contains("gemm") => {
            let flops = t["Elements"].as_f64().unwrap_or(0.0);
            ("GFLOP/s", flops / mean_ns)
        }
        Value::Object(t) if t.contains_key("Elements") => {
            let elements = t["Elements"].as_f64().unwrap_or(0.0);
            ("Melem/s", elements / mean_ns * 1e3)
        }
        _ => ("ns", mean_ns),
    };
    Ok(Some(Row {
        group: group.to_owned(),
        case,
        implementation: implementation.to_owned(),
        unit: unit.to_owned(),
        value,
        baseline_impl: None,
        ratio: None,
    }))
}

/// Fills `baseline_impl` and `ratio` of project rows against the best reference of their
/// (group, case).
pub fn add_ratios(rows: &mut [Row]) {
    let mut best: BTreeMap<(String, String), (String, f64, bool)> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| !r.implementation.starts_with(PROJECT_PREFIX))
    {
        let higher_is_better = higher_is_better(&r.unit);
        let key = (r.group.clone(), r.case.clone());
        let better = match best.get(&key) {
            None => true,
            Some((_, v, _)) => {
                if higher_is_better {
                    r.value > *v
                } else {
                    r.value < *v
                }
            }
        };
        if better {
            best.insert(key, (r.implementation.clone(), r.value, higher_is_better));
        }
    }
    for r in rows
        .iter_mut()
        .filter(|r| r.implementation.starts_with(PROJECT_PREFIX))
    {
        if let Some((name, v, higher)) = best.get(&(r.group.clone(), r.case.clone())) {
            r.baseline_impl = Some(name.clone());
            r.ratio = Some(if *higher { r.value / v } else { v / r.value });
        }
    }
}

/// The table printed after a run.
pub fn render_table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<20} {:<12} {:<22} {:>12} {:<8} {:<22} {:>7}\n",
        "group", "case", "impl", "value", "unit", "vs", "ratio"
    );
    for r in rows {
        out += &format!(
            "{:<20} {:<12} {:<22} {:>12.3} {:<8} {:<22} {:>7}\n",
            r.group,
            r.case,
            r.implementation,
            r.value,
            r.unit,
            r.baseline_impl.as_deref().unwrap_or(""),
            r.ratio.map(|x| format!("{x:.2}x")).unwrap_or_default()
        );
    }
    out
}

/// Escapes text for SVG.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A bar chart: one block per (group, case), one bar per implementation scaled to the best in
/// the block (for `ns`, the fastest gets the longest bar); project bars in blue, references grey.
pub fn render_svg(rows: &[Row]) -> String {
    const BAR: usize = 16;
    const LABEL: usize = 260;
    const WIDTH: usize = 900;
    let mut blocks: Vec<(&str, &str, Vec<&Row>)> = Vec::new();
    for r in rows {
        match blocks.last_mut() {
            Some((g, c, list)) if *g == r.group && *c == r.case => list.push(r),
            _ => blocks.push((&r.group, &r.case, vec![r])),
        }
    }
    let height = 40
        + blocks
            .iter()
            .map(|(_, _, l)| 28 + l.len() * (BAR + 4))
            .sum::<usize>();
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">cargo xtask bench: dsmil (blue) beside references (grey), same run</text>\n"
    );
    let mut y = 40;
    for (group, case, list) in &blocks {
        out += &format!(
            "<text x=\"10\" y=\"{}\" font-weight=\"bold\">{} / {}</text>\n",
            y + 16,
            xml(group),
            xml(case)
        );
        y += 24;
        let speed = |r: &Row| {
            if r.unit == "ns" {
                1.0 / r.value
            } else {
                r.value
            }
        };
        let best = list
            .iter()
            .map(|r| speed(r))
            .fold(f64::MIN_POSITIVE, f64::max);
        for r in list {
            let len = ((speed(r) / best) * (WIDTH - LABEL - 140) as f64).max(1.0) as usize;
            let fill = if r.implementation.starts_with(PROJECT_PREFIX) {
                "#2b6cb0"
            } else {
                "#a0aec0"
            };
            let ratio = r.ratio.map(|x| format!(" ({x:.2}x)")).unwrap_or_default();
            out += &format!(
                "<text x=\"20\" y=\"{ty}\">{name}</text><rect x=\"{LABEL}\" y=\"{y}\" width=\"{len}\" height=\"{BAR}\" fill=\"{fill}\"/>\
                 <text x=\"{tx}\" y=\"{ty}\">{value:.2} {unit}{ratio}</text>\n",
                ty = y + 12,
                name = xml(&r.implementation),
                tx = LABEL + len + 6,
                value = r.value,
                unit = xml(&r.unit),
            );
            y += BAR + 4;
        }
    }
    out + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write_result(
        root: &Path,
        group: &str,
        implementation: &str,
        case: &str,
        throughput: Value,
        mean_ns: f64,
    ) {
        let dir = root.join(group).join(implementation).join(case).join("new");
        std::fs::create_dir_all(&dir).unwrap();
        let bench = json!({"group_id": group, "function_id": implementation, "value_str": case, "throughput": throughput});
        std::fs::write(dir.join("benchmark.json"), bench.to_string()).unwrap();
        let est = json!({"mean": {"point_estimate": mean_ns}});
        std::fs::write(dir.join("estimates.json"), est.to_string()).unwrap();
    }

    #[test]
    fn rows_get_units_and_ratios_against_the_best_reference() {
        let dir = tempfile::tempdir().unwrap();
        let since = SystemTime::now() - std::time::Duration::from_secs(5);
        // 4096 bytes in 1000 ns = 4.096 GB/s; in 2000 ns = 2.048 GB/s; in 4000 ns = 1.024 GB/s.
        write_result(
            dir.path(),
            "sha256_x16",
            "dsmil-avx512",
            "4KiB",
            json!({"Bytes": 4096}),
            1000.0,
        );
        write_result(
            dir.path(),
            "sha256_x16",
            "sha2",
            "4KiB",
            json!({"Bytes": 4096}),
            2000.0,
        );
        write_result(
            dir.path(),
            "sha256_x16",
            "ring",
            "4KiB",
            json!({"Bytes": 4096}),
            4000.0,
        );
        write_result(
            dir.path(),
            "topk",
            "dsmil-scalar",
            "10k",
            json!({"Elements": 10000}),
            1e6,
        );
        write_result(
            dir.path(),
            "topk",
            "ndarray",
            "10k",
            json!({"Elements": 10000}),
            5e5,
        );
        write_result(
            dir.path(),
            "sgemm",
            "dsmil",
            "256",
            json!({"Elements": 2 * 256 * 256 * 256}),
            1e5,
        );
        write_result(dir.path(), "latency", "dsmil-x", "one", Value::Null, 300.0);
        write_result(dir.path(), "latency", "libx", "one", Value::Null, 600.0);
        let rows = collect(dir.path(), since).unwrap();
        assert_eq!(rows.len(), 8);
        let gemm = rows.iter().find(|r| r.group == "sgemm").unwrap();
        assert_eq!(gemm.unit, "GFLOP/s");
        assert!((gemm.value - 2.0 * 256f64.powi(3) / 1e5).abs() < 1e-9);
        let get = |g: &str, i: &str| {
            rows.iter()
                .find(|r| r.group == g && r.implementation == i)
                .unwrap()
        };

        let ours = get("sha256_x16", "dsmil-avx512");
        assert_eq!(ours.unit, "GB/s");
        assert!((ours.value - 4.096).abs() < 1e-9);
        assert_eq!(ours.baseline_impl.as_deref(), Some("sha2"));
        assert!((ours.ratio.unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(get("sha256_x16", "sha2").ratio, None);

        let topk = get("topk", "dsmil-scalar");
        assert_eq!(topk.unit, "Melem/s");
        assert!((topk.value - 10.0).abs() < 1e-9);
        assert!(
            (topk.ratio.unwrap() - 0.5).abs() < 1e-9,
            "slower than the reference shows below 1"
        );

        let lat = get("latency", "dsmil-x");
        assert_eq!(lat.unit, "ns");
        assert!(
            (lat.ratio.unwrap() - 2.0).abs() < 1e-9,
            "half the time is twice as fast"
        );

        let json = serde_json::to_value(ours).unwrap();
        assert_eq!(json["impl"], "dsmil-avx512");
        assert_eq!(json["baseline_impl"], "sha2");
        assert!(render_table(&rows).contains("2.00x"));
        let svg = render_svg(&rows);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(
            svg.matches("<rect x=").count(),
            rows.len(),
            "one bar per row"
        );
        assert!(svg.contains("sha256_x16 / 4KiB") && svg.contains("(2.00x)"));
    }

    #[test]
    fn arguments_select_targets_or_groups() {
        let targets: Vec<(String, String)> = ["crypto_hash", "crypto_ciphers", "memory", "math"]
            .iter()
            .map(|b| ("dsmil-accel".to_owned(), (*b).to_owned()))
            .collect();
        let names = |t: &[(String, String)]| t.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>();
        let (t, g) = select(targets.clone(), &["crypto".into()]);
        assert_eq!(names(&t), vec!["crypto_hash", "crypto_ciphers"]);
        assert!(g.is_empty());
        let (t, g) = select(targets.clone(), &["sgemm".into(), "memory".into()]);
        assert_eq!(names(&t), vec!["memory"]);
        assert_eq!(g, vec!["sgemm".to_owned()]);
        let (t, g) = select(targets, &["copy".into()]);
        assert_eq!(t.len(), 4);
        assert_eq!(g, vec!["copy".to_owned()]);
    }

    #[test]
    fn results_from_earlier_runs_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write_result(dir.path(), "g", "dsmil-a", "c", json!({"Bytes": 1}), 1.0);
        let later = SystemTime::now() + std::time::Duration::from_secs(3600);
        assert!(collect(dir.path(), later).unwrap().is_empty());
    }

    #[test]
    fn rows_written_by_benches_join_the_table_and_times_rank_lower_as_better() {
        let dir = tempfile::tempdir().unwrap();
        let rows_dir = dir.path().join(ROWS_DIR);
        std::fs::create_dir_all(&rows_dir).unwrap();
        let rows = json!([
            {"group": "predict", "case": "p99", "impl": "dsmil-embedded", "unit": "ms", "value": 1.0},
            {"group": "predict", "case": "p99", "impl": "pgvector", "unit": "ms", "value": 4.0},
            {"group": "predict", "case": "p99", "impl": "flat", "unit": "ms", "value": 2.0},
            {"group": "quality", "case": "all", "impl": "dsmil-router", "unit": "reward", "value": 0.9},
            {"group": "quality", "case": "all", "impl": "oracle", "unit": "reward", "value": 1.0}
        ]);
        std::fs::write(rows_dir.join("x.json"), rows.to_string()).unwrap();
        std::fs::write(rows_dir.join("broken.txt"), "ignored").unwrap();
        let since = SystemTime::now() - std::time::Duration::from_secs(60);
        let got = collect(dir.path(), since).unwrap();
        assert_eq!(got.len(), 5);
        let p = got
            .iter()
            .find(|r| r.implementation == "dsmil-embedded")
            .unwrap();
        assert_eq!(p.baseline_impl.as_deref(), Some("flat"));
        assert_eq!(p.ratio, Some(2.0));
        let q = got
            .iter()
            .find(|r| r.implementation == "dsmil-router")
            .unwrap();
        assert!((q.ratio.unwrap() - 0.9).abs() < 1e-12);
        std::fs::write(rows_dir.join("bad.json"), r#"[{"group": "g"}]"#).unwrap();
        let err = collect(dir.path(), since).unwrap_err();
        assert!(format!("{err:#}").contains("lacks"), "{err:#}");
    }
}
