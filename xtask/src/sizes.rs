//! The file-size rule: no Rust source file under `crates/*/src` is over [`MAX_LINES`] lines, so
//! a module holds one concern (checked by `cargo xtask ci`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Longest source file allowed, in lines.
pub const MAX_LINES: usize = 700;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Fails naming every source file of `root`'s crates that is too long.
pub fn check(root: &Path) -> Result<()> {
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).context("cannot list crates/")? {
        let src = krate?.path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files)?;
        }
    }
    let mut long: Vec<String> = Vec::new();
    for f in &files {
        let lines = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read {}", f.display()))?
            .lines()
            .count();
        if lines > MAX_LINES {
            let shown = f.strip_prefix(root).unwrap_or(f);
            long.push(format!("{} has {lines} lines", shown.display()));
        }
    }
    if !long.is_empty() {
        long.sort();
        bail!(
            "source files over {MAX_LINES} lines (split them by concern):\n  {}",
            long.join("\n  ")
        );
    }
    eprintln!(
        "sizes: ok ({} source files, none over {MAX_LINES} lines)",
        files.len()
    );
    Ok(())
}
