//! `cargo xtask openapi [--check]`: the OpenAPI 3.1 description of dsmild's API, generated from
//! the contract crate (`dsmil_api::openapi`), kept in `docs/openapi.json`. `--check` fails when
//! that file is not what the code generates (a route or type changed without it), then
//! validates it with an independent validator (`openapi-spec-validator`).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::services::pytools;

/// Where the description lives.
pub const FILE: &str = "docs/openapi.json";

/// Writes the description (or, with `check`, compares and validates it).
pub fn run(root: &Path, check: bool) -> Result<()> {
    let path = root.join(FILE);
    let generated = dsmil_api::openapi::to_pretty_json();
    if !check {
        std::fs::write(&path, &generated)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("openapi: wrote {}", path.display());
        return Ok(());
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != generated {
        let line = current
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| current.lines().count().min(generated.lines().count()));
        bail!(
            "{FILE} is not what the API contract generates (first difference at line {}); \
             run `cargo xtask openapi` and commit the result",
            line + 1
        );
    }
    validate(root, &path)?;
    eprintln!("openapi: {FILE} is current and valid OpenAPI 3.1");
    Ok(())
}

/// Validates `path` with `openapi-spec-validator` (OpenAPI 3.1 schema and semantics).
fn validate(root: &Path, path: &Path) -> Result<()> {
    let bin = pytools::ensure(root)?;
    let out = Command::new(bin.join("openapi-spec-validator"))
        .arg(path)
        .output()
        .context("cannot run openapi-spec-validator")?;
    if !out.status.success() {
        bail!(
            "openapi-spec-validator rejects {}:\n{}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
