//! Command agents: a program per attempt, the task as JSON on stdin, the result as JSON on
//! stdout.
//!
//! The program runs in its own process group; when the attempt ends — the program exited, or
//! the attempt timed out or was cancelled (its future dropped) — the whole group is killed, so no
//! grandchild outlives its task or holds its output open. The program also gets SIGKILL when
//! the daemon dies (`PR_SET_PDEATHSIG`), so a crashed daemon leaves no agent running. stdout is capped at [`MAX_STDOUT_BYTES`]; stderr is drained completely but only its
//! first [`ERROR_QUOTE_BYTES`](crate::agent::ERROR_QUOTE_BYTES) are kept for errors.

use std::path::PathBuf;
use std::process::Stdio;

use crate::config::AgentKind;
use async_trait::async_trait;
use dsmil_core::AgentId;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::agent::{
    Agent, AgentError, AgentOutput, ERROR_QUOTE_BYTES, TaskInput, parse_answer, quote,
};

/// Largest stdout accepted from a command agent.
pub const MAX_STDOUT_BYTES: usize = 16 << 20;

/// An agent that runs a program.
#[derive(Debug, Clone)]
pub struct CommandAgent {
    id: AgentId,
    program: PathBuf,
    args: Vec<String>,
}

impl CommandAgent {
    /// Starts the program in its own process group. A program file that is still open for
    /// writing somewhere (just installed, or inherited by a process another thread was forking)
    /// fails with "text file busy" for a moment: that is retried briefly.
    async fn spawn(&self) -> std::io::Result<tokio::process::Child> {
        let mut tries = 0;
        let parent = nix::unistd::getpid();
        loop {
            let mut command = Command::new(&self.program);
            command
                .args(&self.args)
                .process_group(0)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            // SAFETY: the closure runs in the forked child before exec, where only
            // async-signal-safe calls are allowed: prctl(2) and getppid(2) are plain system
            // calls, and nothing here allocates or takes a lock.
            unsafe {
                command.pre_exec(move || die_with_parent(parent));
            }
            let result = command.spawn();
            match result {
                Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                other => return other,
            }
        }
    }

    /// An agent `id` running `program` with `args`.
    pub fn new(id: AgentId, program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Self {
            id,
            program: program.into(),
            args,
        }
    }
}

/// In the child before exec: asks the kernel for SIGKILL when the thread that forked it ends
/// (a daemon killed with -9 no longer leaves its agents running beside the copies its recovery
/// starts), and fails the spawn if the daemon is already gone. The runtime's worker threads
/// that spawn agents live as long as the daemon does.
fn die_with_parent(parent: Pid) -> std::io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
    if nix::unistd::getppid() != parent {
        return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
    }
    Ok(())
}

/// Kills the process group when dropped: the attempt's end, whatever ended it.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // The group may already be gone; nothing to do then.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// Reads all of `from`, keeping at most `keep` bytes; returns them and the total length.
async fn read_capped(
    mut from: impl AsyncRead + Unpin,
    keep: usize,
) -> std::io::Result<(Vec<u8>, usize)> {
    let mut kept = Vec::new();
    let mut total = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok((kept, total));
        }
        total += n;
        if kept.len() < keep {
            let take = n.min(keep - kept.len());
            kept.extend_from_slice(&buf[..take]);
        }
    }
}

#[async_trait]
impl Agent for CommandAgent {
    fn id(&self) -> &AgentId {
        &self.id
    }

    fn kind(&self) -> AgentKind {
        AgentKind::Command
    }

    async fn run(&self, input: &TaskInput) -> Result<AgentOutput, AgentError> {
        let spawn_error = |source: std::io::Error| AgentError::Spawn {
            program: self.program.display().to_string(),
            source,
        };
        let missing_pipe = |which: &str| {
            spawn_error(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                format!("no {which} pipe"),
            ))
        };
        let mut child = self.spawn().await.map_err(spawn_error)?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        let _group = GroupGuard(pgid);
        let payload = serde_json::to_vec(input).map_err(AgentError::Encode)?;
        let mut stdin = child.stdin.take().ok_or_else(|| missing_pipe("stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| missing_pipe("stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| missing_pipe("stderr"))?;
        let write = async move {
            // A program that exits without reading its input is not an error by itself.
            let _ = stdin.write_all(&payload).await;
            let _ = stdin.shutdown().await;
        };
        // When the program exits, whatever it left in its group is killed, so a background
        // grandchild holding stdout open cannot stall the result.
        let wait = async {
            let status = child.wait().await;
            if let Some(pgid) = pgid {
                let _ = killpg(pgid, Signal::SIGKILL);
            }
            status
        };
        let (_, out, err, status) = tokio::join!(
            write,
            read_capped(stdout, MAX_STDOUT_BYTES + 1),
            read_capped(stderr, ERROR_QUOTE_BYTES),
            wait
        );
        let status = status.map_err(|e| AgentError::transport("waiting for the program", e))?;
        let (out, out_len) = out.map_err(|e| AgentError::transport("reading stdout", e))?;
        let (err, err_len) = err.map_err(|e| AgentError::transport("reading stderr", e))?;
        let mut stderr_text = quote(&err, ERROR_QUOTE_BYTES);
        if err_len > ERROR_QUOTE_BYTES && !stderr_text.contains("more bytes") {
            stderr_text.push_str(&format!(" … ({} more bytes)", err_len - ERROR_QUOTE_BYTES));
        }
        if !status.success() {
            return Err(AgentError::Exit {
                code: status.code(),
                stderr: stderr_text,
            });
        }
        if out_len > MAX_STDOUT_BYTES {
            return Err(AgentError::InvalidOutput {
                reason: format!(
                    "stdout is {out_len} bytes; at most {MAX_STDOUT_BYTES} are accepted"
                ),
                source: None,
            });
        }
        let value: serde_json::Value =
            serde_json::from_slice(&out).map_err(|e| AgentError::InvalidOutput {
                reason: format!("stdout is not JSON: {}", quote(&out, 200)),
                source: Some(e),
            })?;
        parse_answer(value)
    }
}
