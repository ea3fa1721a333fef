//! The JetStream journal against real servers: core's journal suite (the one the SQLite journal
//! passes) on the shared three-server cluster, indexed by its own bucket and by workflow
//! leases; a journal written through one server read back through another; and, on a cluster
//! of the test's own, workflows journaled while a server is killed and after every server
//! restarted keep every entry exactly once.

use std::sync::Arc;
use std::time::Duration;

use dsmil_cluster::{ClusterError, JetStreamJournal, Names, connect};
use dsmil_core::conformance::journal::{finished, result, run_all, spec, survives_reopen};
use dsmil_core::ports::JournalStore;
use dsmil_core::{WorkflowId, WorkflowState};
use tokio::task::block_in_place;

use crate::support::{cleanup, config, jetstream, own_cluster, prefix, shared};

#[tokio::test(flavor = "multi_thread")]
async fn the_jetstream_journal_passes_the_journal_suite() {
    let Some((urls, token)) = shared() else {
        return;
    };
    let names = Names::new(&prefix());
    let config = config(&urls, &token, names.prefix());
    let js = jetstream(&config).await;
    let journal = JetStreamJournal::open(js.clone(), names.clone(), 3)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    run_all(&journal).await;
    cleanup(&js, &names).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_jetstream_journal_indexed_by_leases_passes_the_journal_suite() {
    let Some((urls, token)) = shared() else {
        return;
    };
    let names = Names::new(&prefix());
    let config = config(&urls, &token, names.prefix());
    let js = jetstream(&config).await;
    let leases = dsmil_cluster::leases::Leases::open(
        &js,
        &names,
        "suite",
        "suite-instance",
        3,
        Duration::from_secs(5),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let journal = JetStreamJournal::open(js.clone(), names.clone(), 3)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .with_leases(leases);
    run_all(&journal).await;
    // The lease is the index: the unfinished-workflow bucket was never written.
    let index = js
        .get_key_value(names.workflows_bucket())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = index.status().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.values(), 0);
    cleanup(&js, &names).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_one_server_journaled_another_reads_back() {
    let Some((urls, token)) = shared() else {
        return;
    };
    let names = Names::new(&prefix());
    // Each handle talks to one server only.
    let first = config(&urls[..1], &token, names.prefix());
    let second = config(&urls[urls.len() - 1..], &token, names.prefix());
    let js = jetstream(&first).await;
    let writer: Arc<dyn JournalStore> = Arc::new(
        JetStreamJournal::open(js.clone(), names.clone(), 3)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let reopen_names = names.clone();
    survives_reopen(writer, async move || {
        let js = jetstream(&second).await;
        let journal = JetStreamJournal::open(js, reopen_names, 3)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Arc::new(journal) as Arc<dyn JournalStore>
    })
    .await;
    cleanup(&js, &names).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_is_refused_naming_the_setting() {
    let Some((urls, _)) = shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-token").unwrap();
    let err = connect(&config(&urls, &wrong, "t"), "test-node")
        .await
        .expect_err("a wrong token must be refused");
    assert!(matches!(err, ClusterError::Refused { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("token_file") && text.contains("wrong.token"),
        "{text}"
    );
    assert!(!text.contains("not-the-token"), "the secret is not shown");

    let missing = dir.path().join("absent.token");
    let err = connect(&config(&urls, &missing, "t"), "test-node")
        .await
        .expect_err("a missing token file is an error");
    assert!(
        err.to_string().contains("cluster.token_file") && err.to_string().contains("absent"),
        "{err}"
    );
}

/// Workflows journaled by concurrent writers while one server is killed, then read back after
/// every server was stopped and started again: every entry is there, once, in order.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_lost_or_doubled_when_servers_die_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut cluster) = own_cluster(dir.path()) else {
        return;
    };
    let names = Names::new("fail");
    let config = config(&cluster.urls(), cluster.token_file(), names.prefix());
    let journal = Arc::new(
        JetStreamJournal::open(jetstream(&config).await, names.clone(), 3)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    const WORKFLOWS: usize = 12;
    const RESULTS: usize = 15;
    let ids: Vec<WorkflowId> = (0..WORKFLOWS).map(|_| WorkflowId::new_random()).collect();
    let writers: Vec<_> = ids
        .iter()
        .map(|&id| {
            let journal = journal.clone();
            tokio::spawn(async move {
                journal
                    .create(id, &spec("failover"), WorkflowState::Running)
                    .await
                    .unwrap_or_else(|e| panic!("create: {e}"));
                for i in 0..RESULTS {
                    journal
                        .task_result(id, &result(&format!("t{i}"), None, true))
                        .await
                        .unwrap_or_else(|e| panic!("task_result {i} of {id}: {e}"));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    // Mid-load: the first server dies.
    tokio::time::sleep(Duration::from_millis(120)).await;
    block_in_place(|| cluster.kill(0)).unwrap_or_else(|e| panic!("{e}"));
    for writer in writers {
        writer.await.unwrap_or_else(|e| panic!("writer: {e}"));
    }
    block_in_place(|| cluster.restart(0)).unwrap_or_else(|e| panic!("{e}"));
    // Everything finishes, then every server stops and starts again.
    for &id in &ids[..WORKFLOWS / 2] {
        let results = (0..RESULTS)
            .map(|i| result(&format!("t{i}"), None, true))
            .collect();
        journal
            .finish(&finished(id, true, results))
            .await
            .unwrap_or_else(|e| panic!("finish: {e}"));
    }
    drop(journal);
    block_in_place(|| {
        cluster.stop_all()?;
        cluster.restart_all()
    })
    .unwrap_or_else(|e| panic!("{e}"));

    let journal = JetStreamJournal::open(jetstream(&config).await, names, 3)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let expected: Vec<_> = (0..RESULTS)
        .map(|i| result(&format!("t{i}"), None, true))
        .collect();
    for (n, &id) in ids.iter().enumerate() {
        let record = journal
            .get(id)
            .await
            .unwrap_or_else(|e| panic!("get: {e}"))
            .unwrap_or_else(|| panic!("workflow {n} lost"));
        assert_eq!(
            record.results, expected,
            "workflow {n}: each result once, in order"
        );
        let done = n < WORKFLOWS / 2;
        assert_eq!(record.result.is_some(), done, "workflow {n}");
    }
    let unfinished: Vec<_> = journal
        .unfinished()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|r| r.workflow_id)
        .collect();
    assert_eq!(unfinished.len(), WORKFLOWS / 2);
    assert!(
        ids[WORKFLOWS / 2..]
            .iter()
            .all(|id| unfinished.contains(id))
    );
}
