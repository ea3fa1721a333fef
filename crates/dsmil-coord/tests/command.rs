//! Command agents with real processes: results, failures, bounded output, and timeouts that
//! kill the whole process group.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dsmil_coord::agent::{Agent, AgentError, TaskInput};
use dsmil_coord::agents::CommandAgent;
use dsmil_core::{AgentId, TaskId};
use serde_json::json;

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn input() -> TaskInput {
    TaskInput {
        task_id: TaskId::new("t1").unwrap(),
        task_description: "do the thing".into(),
        input_data: json!({"n": 41}),
        attempt: 1,
        timeout_ms: 5000,
    }
}

fn agent(program: PathBuf) -> CommandAgent {
    CommandAgent::new(AgentId::new("cmd").unwrap(), program, Vec::new())
}

#[tokio::test]
async fn the_task_goes_in_on_stdin_and_the_result_comes_out_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    // `cat` answers the task itself: the result is what the agent was given.
    let echo = agent(script(dir.path(), "echo", "cat"));
    let out = echo.run(&input()).await.unwrap();
    assert_eq!(out.result["input_data"], json!({"n": 41}));
    assert_eq!(out.result["task_description"], "do the thing");
    let ok = agent(script(
        dir.path(),
        "ok",
        r#"cat >/dev/null; echo '{"result": {"answer": 42}, "resource_usage": {"cpu": 0.25}}'"#,
    ));
    let out = ok.run(&input()).await.unwrap();
    assert_eq!(out.result, json!({"answer": 42}));
    assert_eq!(out.resource_usage["cpu"], 0.25);
    let args = CommandAgent::new(
        AgentId::new("args").unwrap(),
        "/bin/echo",
        vec![r#"{"result": 7}"#.into()],
    );
    assert_eq!(args.run(&input()).await.unwrap().result, json!(7));
}

#[tokio::test]
async fn failures_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = agent(script(dir.path(), "garbage", "echo this is not json"));
    let err = garbage.run(&input()).await.unwrap_err();
    assert!(
        matches!(&err, AgentError::InvalidOutput { reason, source: Some(_) } if reason.contains("this is not json")),
        "{err}"
    );
    assert!(!err.is_retryable());

    let exit = agent(script(
        dir.path(),
        "exit3",
        "echo 'disk on fire' >&2; exit 3",
    ));
    let err = exit.run(&input()).await.unwrap_err();
    assert!(
        matches!(&err, AgentError::Exit { code: Some(3), stderr } if stderr == "disk on fire"),
        "{err}"
    );
    assert!(err.is_retryable());

    let reported = agent(script(
        dir.path(),
        "reported",
        r#"echo '{"success": false, "error": "bad input", "terminal": true}'"#,
    ));
    let err = reported.run(&input()).await.unwrap_err();
    assert!(
        matches!(&err, AgentError::Reported { message, terminal: true } if message == "bad input"),
        "{err}"
    );

    let missing = agent(dir.path().join("no-such-program"));
    let err = missing.run(&input()).await.unwrap_err();
    assert!(
        matches!(&err, AgentError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "the I/O error is kept: {err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_background_grandchild_neither_stalls_the_result_nor_survives() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // The grandchild inherits stdout and would hold it open for 1000 s.
    let body = format!(
        "sleep 1000 & echo $! > {}; echo '{{\"result\": 5}}'",
        pid_file.display()
    );
    let leaky = agent(script(dir.path(), "leaky", &body));
    let out = tokio::time::timeout(Duration::from_secs(20), leaky.run(&input())).await;
    assert_eq!(
        out.expect("the result came back without waiting for the grandchild")
            .unwrap()
            .result,
        json!(5)
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the grandchild survived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn huge_stderr_is_drained_and_quoted_briefly_and_huge_stdout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 10 MB of stderr would block a child whose pipe is not drained.
    let noisy = agent(script(
        dir.path(),
        "noisy",
        "head -c 10000000 /dev/zero | tr '\\0' e >&2; echo '{\"result\": 1}'",
    ));
    assert_eq!(noisy.run(&input()).await.unwrap().result, json!(1));
    let noisy_fail = agent(script(
        dir.path(),
        "noisy-fail",
        "head -c 10000000 /dev/zero | tr '\\0' e >&2; exit 1",
    ));
    let err = noisy_fail.run(&input()).await.unwrap_err();
    let AgentError::Exit { stderr, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        stderr.len() < 5000 && stderr.contains("more bytes"),
        "{}",
        stderr.len()
    );
    let flood = agent(script(
        dir.path(),
        "flood",
        "head -c 20000000 /dev/zero | tr '\\0' 1",
    ));
    let err = flood.run(&input()).await.unwrap_err();
    assert!(
        matches!(&err, AgentError::InvalidOutput { reason, .. } if reason.contains("at most")),
        "{err}"
    );
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.split_whitespace().nth(2).is_none_or(|s| s != "Z"),
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let body = format!(
        "sleep 1000 & echo $! > {p}; echo $$ >> {p}; wait",
        p = pids.display()
    );
    let stuck = agent(script(dir.path(), "stuck", &body));
    let run = tokio::time::timeout(Duration::from_millis(500), stuck.run(&input())).await;
    assert!(run.is_err(), "the attempt timed out");
    let text = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<i32> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{text}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            std::time::Instant::now() < deadline,
            "processes {pids:?} survived the timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
