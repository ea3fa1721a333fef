//! `cargo xtask` — the DSMIL build system.
//!
//! Everything a contributor or CI runs more than once lives here as a subcommand:
//! `ci` (format, lint, layering, docs, licenses, then `test`), `test` (provision real
//! services, run every test, tear the services down), `services up|down|status`, `layering`,
//! `openapi`, `bench` and `package` (the Debian package).

mod bench;
mod cluster_demo;
mod cmd;
mod layering;
mod openapi;
mod package;
mod services;
mod sizes;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Command line of `cargo xtask`.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "DSMIL build system", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything CI checks: fmt, clippy, layering, docs, cargo-deny, `test`, then the package.
    Ci,
    /// Provision swtpm and PostgreSQL+pgvector, run every test, tear the services down.
    Test {
        /// Extra arguments passed to `cargo test` after `--`.
        #[arg(last = true)]
        cargo_test_args: Vec<String>,
    },
    /// Start, stop or show the services the tests use.
    Services {
        #[command(subcommand)]
        action: ServicesAction,
    },
    /// Check the dependency rule: layer crates depend on dsmil-core only.
    Layering {
        /// Workspace to check [default: this one].
        #[arg(long, value_name = "DIR")]
        workspace: Option<PathBuf>,
    },
    /// Run the criterion benchmarks and print project kernels beside their references.
    Bench(bench::BenchArgs),
    /// Three dsmild nodes on a three-server JetStream cluster on loopback, in the foreground
    /// (Ctrl-C stops them).
    ClusterDemo,
    /// Build the Debian package (target/debian/dsmil_VERSION_ARCH.deb) and check it with
    /// lintian; `--install-check` also installs, runs and purges it.
    Package(package::PackageArgs),
    /// Write docs/openapi.json from the API contract (`--check`: fail if it is not current,
    /// and validate it as OpenAPI 3.1).
    Openapi {
        /// Compare and validate instead of writing.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ServicesAction {
    /// Install what is missing and start every service (idempotent).
    Up,
    /// Stop every service this workspace started.
    Down,
    /// Show which services run and the environment they export.
    Status,
}

fn main() {
    let cli = Cli::parse();
    if let Err(err) = run(cli) {
        eprintln!("xtask: error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = workspace_root();
    match cli.command {
        Command::Ci => cmd::ci(&root),
        Command::Test { cargo_test_args } => cmd::test(&root, &cargo_test_args),
        Command::Services { action } => match action {
            ServicesAction::Up => {
                let env = services::up(&root)?;
                services::print_env(&env);
                Ok(())
            }
            ServicesAction::Down => services::down(&root),
            ServicesAction::Status => services::status(&root),
        },
        Command::Layering { workspace } => {
            layering::check_workspace(workspace.as_deref().unwrap_or(&root))
        }
        Command::Bench(args) => bench::run(&root, &args),
        Command::ClusterDemo => cluster_demo::run(&root),
        Command::Openapi { check } => openapi::run(&root, check),
        Command::Package(args) => package::run(&root, &args).map(|_| ()),
    }
}

/// The workspace root: xtask lives one level below it.
fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}
