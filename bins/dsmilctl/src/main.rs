//! `dsmilctl`, the command-line client of dsmild's API, and offline tools.

mod audit;
mod client;
mod cluster;
mod context;
mod exit;
mod learn;
mod output;
mod run;
mod tpm;
mod watch;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use dsmil_daemon::config::DaemonConfig;
use serde::Serialize;

use crate::client::Target;

/// `--version`: the version and the git revision built from.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("DSMIL_GIT_REV"),
    ")\nfeatures: none (dsmilctl has no optional features)"
);

/// Talk to a running dsmild, or check files offline.
///
/// Exit codes: 0 done, 1 a check failed (or another error), 2 usage, 3 daemon unreachable,
/// 4 token refused or missing.
#[derive(Debug, Parser)]
#[command(name = "dsmilctl", version, long_version = LONG_VERSION)]
struct Cli {
    /// Base URL of dsmild [default: the context's, else http://127.0.0.1:8765].
    #[arg(long, env = "DSMIL_URL", global = true)]
    url: Option<String>,

    /// File holding the API token [default: the context's, else the first that exists of
    /// ./dsmil-data/api-token and /var/lib/dsmil/api-token].
    #[arg(long, env = "DSMIL_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,

    /// A named context (`dsmilctl context list`) instead of the current one.
    #[arg(long, env = "DSMIL_CONTEXT", global = true)]
    context: Option<String>,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what the daemon runs: version, uptime, TPM and store backends, agents.
    Status,
    /// The cluster this daemon is a node of: its nodes, whether each is live, what each hosts.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Run a workflow (TOML or JSON), printing each task as it finishes; exit 1 if it fails.
    Run {
        /// The workflow spec.
        file: PathBuf,
    },
    /// Check an audit log offline, or prove an entry is in it.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Performance history and agent predictions.
    Learn {
        #[command(subcommand)]
        action: LearnAction,
    },
    /// Tails the live WebSocket stream: metrics, alerts, emergencies.
    Watch {
        /// Metric types to follow, comma-separated (system_health, agent_activity,
        /// security_event, dsmil_device, tpm_event, avx512_performance,
        /// workflow_coordination); default: all. Alerts and emergencies always come.
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        /// Stop after N messages.
        #[arg(long)]
        count: Option<u64>,
        /// Keep reconnecting when the daemon goes away.
        #[arg(long)]
        follow: bool,
    },
    /// The daemon's TPM: what it is, and quotes for remote attestation.
    Tpm {
        #[command(subcommand)]
        action: TpmAction,
    },
    /// Work with dsmild configuration files (offline).
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Named daemons (URL and token file), one of them current, like kubectl's contexts.
    Context {
        #[command(subcommand)]
        action: ContextAction,
    },
    /// Print a shell completion script (e.g. `dsmilctl completion bash >
    /// /etc/bash_completion.d/dsmilctl`).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages (dsmilctl.1 and one per subcommand) into a folder (packaging).
    #[command(hide = true)]
    GenerateMan {
        /// The folder.
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ContextAction {
    /// Add (or replace) a context.
    Add {
        /// Its name.
        name: String,
        /// The daemon's base URL.
        #[arg(long = "server", value_name = "URL")]
        server: String,
        /// Its token file.
        #[arg(long = "token", value_name = "PATH")]
        token: Option<PathBuf>,
        /// Make it current.
        #[arg(long = "use")]
        make_current: bool,
    },
    /// Make a context current.
    Use {
        /// Its name.
        name: String,
    },
    /// List the contexts; `*` marks the current one.
    List,
    /// Remove a context.
    Remove {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ClusterAction {
    /// List the nodes as the daemon sees them.
    Status,
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Validate a configuration file exactly as dsmild would; exit 1 naming the bad field.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// Print a configuration file with every default.
    Default,
    /// Print Prometheus alerting rules for the alert thresholds of the file (the defaults without
    /// a file), for `promtool check rules` and a Prometheus `rule_files:` entry.
    PrometheusRules {
        /// The TOML file.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Verify chain, Merkle roots and signatures; exit 1 naming the first bad entry.
    Verify {
        /// The audit dir (`DATA_DIR/audit`) or its `audit.log`.
        path: PathBuf,
        /// A signed tree head you trust from elsewhere, `SIZE:ROOT` (e.g. from `dsmilctl tpm
        /// info`'s audit anchor or an earlier verification): the log must contain it, which
        /// catches a log cut back to an earlier checkpoint.
        #[arg(long)]
        head: Option<String>,
    },
    /// Fetch from the daemon the proof that entry SEQ is in its latest signed tree head, and
    /// check it here; exit 1 if it does not check out.
    Prove {
        /// The entry's sequence number.
        seq: u64,
        /// A tree head you trust, `SIZE:ROOT`: the proof must be against exactly it.
        #[arg(long)]
        head: Option<String>,
    },
    /// Fetch from the daemon the RFC 9162 consistency proof that its log of FROM entries is a
    /// prefix of its log of TO entries, and check it here; exit 1 if it does not check out.
    Consistency {
        /// The older size (e.g. a tree head you noted earlier).
        #[arg(long)]
        from: u64,
        /// The newer size. Default: the latest signed tree head.
        #[arg(long)]
        to: Option<u64>,
        /// The root you trust for the older size (64 hex digits): the proof must start at it.
        #[arg(long)]
        from_root: Option<String>,
    },
    /// Every node's latest signed audit head and who witnessed it (in a cluster); exit 1 when
    /// a witness reports a node's log inconsistent.
    Witnesses,
}

#[derive(Debug, Subcommand)]
enum TpmAction {
    /// Backend, hardware rooting, vendor, firmware, algorithms, PCR banks, keys.
    Info,
    /// Quotes PCRs and writes quote.msg, quote.sig, quote.pcrs and ak.pub.pem for
    /// tpm2_checkquote.
    Quote {
        /// PCRs of the SHA-256 bank, e.g. 0,1,7.
        #[arg(long)]
        pcrs: String,
        /// Qualifying data (the verifier's nonce), hex, at most 64 bytes.
        #[arg(long)]
        nonce: String,
        /// Directory to write the four files into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum LearnAction {
    /// Import performance records from an NDJSON file (checked first: a bad line sends nothing).
    Import {
        /// One record per line (seed field names, see CONTRACTS.md).
        file: PathBuf,
        /// Records per request; each request is stored all-or-nothing.
        #[arg(long, default_value_t = 5000)]
        batch: usize,
    },
    /// Ask which agent should run a task.
    Predict {
        /// The task in words.
        text: String,
        /// Conditions as a JSON object, e.g. '{"size": 4096}'.
        #[arg(long)]
        context: Option<String>,
        /// Kind of task.
        #[arg(long)]
        task_type: Option<String>,
        /// An agent not to choose (repeatable).
        #[arg(long = "exclude", value_name = "AGENT")]
        exclude: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(err) = run(&cli) {
        eprintln!("dsmilctl: {}", dsmil_core::report::chain(err.as_ref()));
        std::process::exit(exit::code(&err));
    }
}

/// What `config check` found.
#[derive(Debug, Serialize)]
struct ConfigChecked {
    file: PathBuf,
    valid: bool,
    agents: usize,
    listen: std::net::SocketAddr,
    tpm: String,
}

fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Context { action } => return contexts(cli, action),
        Command::Completion { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "dsmilctl",
                &mut std::io::stdout(),
            );
            return Ok(());
        }
        Command::GenerateMan { out } => return man_pages(out),
        _ => {}
    }
    let (url, token_file) = context::resolve(
        cli.url.as_deref(),
        cli.token_file.as_deref(),
        cli.context.as_deref(),
    )?;
    let target = Target::new(&url, &token_file);
    match &cli.command {
        Command::Context { .. } | Command::Completion { .. } | Command::GenerateMan { .. } => {}
        Command::Status => {
            let status = target.connect()?.status()?;
            output::print(cli.json, &status, output::status_text);
        }
        Command::Cluster {
            action: ClusterAction::Status,
        } => {
            let view = target.connect()?.cluster()?;
            output::print(cli.json, &view, cluster::status_text);
        }
        Command::Audit {
            action: AuditAction::Verify { path, head },
        } => {
            let summary = audit::verify(path, head.as_deref())?;
            output::print(cli.json, &summary, audit::text);
        }
        Command::Audit {
            action: AuditAction::Prove { seq, head },
        } => {
            let proof = audit::prove(&target.connect()?, *seq, head.as_deref())?;
            output::print(cli.json, &proof, audit::prove_text);
        }
        Command::Audit {
            action:
                AuditAction::Consistency {
                    from,
                    to,
                    from_root,
                },
        } => {
            let proof = audit::consistency(&target.connect()?, *from, *to, from_root.as_deref())?;
            output::print(cli.json, &proof, audit::consistency_text);
        }
        Command::Audit {
            action: AuditAction::Witnesses,
        } => {
            let view = target.connect()?.audit_witnesses()?;
            output::print(cli.json, &view, audit::witnesses_text);
            if view
                .nodes
                .iter()
                .any(|n| n.witnesses.iter().any(|w| w.problem.is_some()))
            {
                std::process::exit(1);
            }
        }
        Command::Watch {
            types,
            count,
            follow,
        } => {
            watch::watch(
                &target.connect()?,
                &watch::WatchOptions {
                    types: types.clone(),
                    json: cli.json,
                    count: *count,
                    follow: *follow,
                },
            )?;
        }
        Command::Tpm { action } => {
            let client = target.connect()?;
            match action {
                TpmAction::Info => {
                    let info = client.tpm_info()?;
                    output::print(cli.json, &info, tpm::info_text);
                }
                TpmAction::Quote { pcrs, nonce, out } => {
                    let summary = tpm::quote(&client, pcrs, nonce, out)?;
                    output::print(cli.json, &summary, tpm::quote_text);
                }
            }
        }
        Command::Run { file } => {
            let record = run::run(&target.connect()?, file, cli.json)?;
            output::print(cli.json, &record, run::text);
            if record.state != dsmil_api::workflows::WorkflowState::Completed {
                std::process::exit(1);
            }
        }
        Command::Learn { action } => {
            let client = target.connect()?;
            match action {
                LearnAction::Import { file, batch } => {
                    let summary = learn::import(&client, file, *batch)?;
                    output::print(cli.json, &summary, learn::import_text);
                }
                LearnAction::Predict {
                    text,
                    context,
                    task_type,
                    exclude,
                } => {
                    let p = learn::predict(
                        &client,
                        text,
                        context.as_deref(),
                        task_type.as_deref(),
                        exclude,
                    )?;
                    output::print(cli.json, &p, learn::prediction_text);
                }
            }
        }
        Command::Config { action } => match action {
            ConfigAction::Check { file } => {
                let config = DaemonConfig::read_toml_file(file)?;
                config.validate()?;
                let summary = ConfigChecked {
                    file: file.clone(),
                    valid: true,
                    agents: config.coord.agents.len(),
                    listen: config.daemon.listen,
                    tpm: config.tpm.tpm.to_string(),
                };
                output::print(cli.json, &summary, |s| {
                    format!("{}: valid ({} agents)", s.file.display(), s.agents)
                });
            }
            ConfigAction::PrometheusRules { file } => {
                let config = match file {
                    Some(f) => {
                        let c = DaemonConfig::read_toml_file(f)?;
                        c.validate()?;
                        c
                    }
                    None => DaemonConfig::default(),
                };
                print!(
                    "{}",
                    dsmil_monitor::prometheus_rules::prometheus_rules(&config.monitor.alerts)
                );
            }
            ConfigAction::Default => {
                if cli.json {
                    output::print(true, &DaemonConfig::default(), |_| String::new());
                } else {
                    print!("{}", dsmil_daemon::config::template::default_toml());
                }
            }
        },
    }
    Ok(())
}

/// `dsmilctl context …`.
fn contexts(cli: &Cli, action: &ContextAction) -> Result<()> {
    let path = context::file()?;
    let mut all = context::Contexts::load(&path)?;
    match action {
        ContextAction::Add {
            name,
            server,
            token,
            make_current,
        } => {
            dsmil_api::client::Client::new(server, "")
                .map_err(anyhow::Error::from)
                .map_err(|e| e.context(format!("--server {server:?}")))?;
            let token_file = match token {
                Some(t) => Some(
                    std::path::absolute(t)
                        .map_err(|e| anyhow::anyhow!("--token {}: {e}", t.display()))?,
                ),
                None => None,
            };
            all.contexts.insert(
                name.clone(),
                context::Context {
                    url: server.clone(),
                    token_file,
                },
            );
            if *make_current || all.current.is_none() {
                all.current = Some(name.clone());
            }
            all.save(&path)?;
            eprintln!("context {name:?} saved in {}", path.display());
        }
        ContextAction::Use { name } => {
            all.use_context(name)?;
            all.save(&path)?;
            eprintln!("switched to context {name:?}");
        }
        ContextAction::Remove { name } => {
            all.remove(name)?;
            all.save(&path)?;
        }
        ContextAction::List => {
            output::print(cli.json, &all, |all| {
                let mut out = format!("{:<2}{:<16} {:<32} TOKEN FILE\n", "", "NAME", "SERVER");
                for (name, c) in &all.contexts {
                    let mark = if all.current.as_deref() == Some(name) {
                        "*"
                    } else {
                        ""
                    };
                    let token = c
                        .token_file
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "(default)".into());
                    out.push_str(&format!("{mark:<2}{name:<16} {:<32} {token}\n", c.url));
                }
                out.trim_end().to_owned()
            });
        }
    }
    Ok(())
}

/// Writes dsmilctl.1 and a page per subcommand (`dsmilctl-audit.1`, `dsmilctl-audit-verify.1`)
/// into `out`.
fn man_pages(out: &std::path::Path) -> Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    clap_mangen::generate_to(Cli::command(), out)
        .map_err(|e| anyhow::anyhow!("cannot write man pages into {}: {e}", out.display()))
}
