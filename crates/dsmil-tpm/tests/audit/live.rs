//! The audit log while its writer syncs: readers never wait for an `fsync`, and a failed sync
//! cuts its lines off the file and fails every append (or checkpoint) it carried. A
//! [`SyncHook`] holds or fails the writer's sync on purpose; the tests wait on flags it sets,
//! never on time.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use dsmil_core::ports::{MetricSet, MetricsSource, SampleValue};
use dsmil_tpm::audit::record::Line;
use dsmil_tpm::audit::{AuditConfig, AuditError, AuditLog, SyncHook, verify_file};
use dsmil_tpm::soft_key::SoftEcdsaKey;

use super::{event, verifier};

/// The longest the gate holds a sync, so that a regression (a reader waiting for the writer)
/// fails the test instead of hanging it. Nothing is measured against it.
const HOLD_LIMIT: Duration = Duration::from_secs(10);

/// Holds or fails the writer's next sync, and says whether a sync is being held.
#[derive(Default)]
struct Gate {
    /// Hold the next sync until released.
    hold_next: AtomicBool,
    /// Fail every sync with an I/O error until cleared.
    fail: AtomicBool,
    /// Whether the writer is inside the hook, holding a sync.
    held: AtomicBool,
    /// Set by `release`; what the held sync waits for.
    released: Mutex<bool>,
    wake: Condvar,
    /// Signalled when a sync starts being held.
    entered: tokio::sync::Notify,
}

impl Gate {
    fn hook(self: &Arc<Self>) -> SyncHook {
        let gate = Arc::clone(self);
        SyncHook::new(move || {
            if gate.fail.load(SeqCst) {
                return Err(std::io::Error::other("disk on fire"));
            }
            if gate.hold_next.swap(false, SeqCst) {
                gate.held.store(true, SeqCst);
                gate.entered.notify_one();
                let released = gate.released.lock().unwrap();
                let (mut released, _) = gate
                    .wake
                    .wait_timeout_while(released, HOLD_LIMIT, |r| !*r)
                    .unwrap();
                *released = false;
                gate.held.store(false, SeqCst);
            }
            Ok(())
        })
    }

    fn release(&self) {
        *self.released.lock().unwrap() = true;
        self.wake.notify_all();
    }
}

/// A log whose batches close only when asked (`checkpoint`), syncing through `gate`.
async fn gated_log(dir: &std::path::Path, gate: &Arc<Gate>) -> (Arc<AuditLog>, Arc<SoftEcdsaKey>) {
    let key = Arc::new(SoftEcdsaKey::load_or_create(&dir.join("key.p8")).unwrap());
    let config = AuditConfig {
        batch_entries: 1 << 40,
        batch_interval: Duration::from_secs(3600),
        min_checkpoint_interval: Duration::ZERO,
        before_sync: Some(gate.hook()),
    };
    let (log, _) = AuditLog::open(&dir.join("audit.log"), key.clone(), config)
        .await
        .unwrap();
    (Arc::new(log), key)
}

/// While an append's `fsync` is held, everything an async handler asks a live log —
/// `len`, `signed`, `tree_head`, `status`, the metrics, a proof, a verification of what is
/// on disk, a checkpoint with nothing to sign — answers, from the state before the append;
/// then the append completes with the next sequence number and the hash of its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_do_not_wait_for_a_held_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    let (log, key) = gated_log(dir.path(), &gate).await;
    for i in 0..3 {
        log.append_event(event(i)).await.unwrap();
    }
    log.checkpoint().await.unwrap();
    let before = log.status();
    assert_eq!((before.entries, before.signed), (3, 3));
    let head = before.tree_head.unwrap();

    gate.hold_next.store(true, SeqCst);
    let append = tokio::spawn({
        let log = Arc::clone(&log);
        async move { log.append_event(event(3)).await }
    });
    // The writer has written the entry's line and is now held before its fsync.
    gate.entered.notified().await;
    assert!(gate.held.load(SeqCst));

    let reads = tokio::spawn({
        let (log, key) = (Arc::clone(&log), Arc::clone(&key));
        async move {
            let mut metrics = MetricSet::new();
            log.collect(&mut metrics).await;
            let proof = log.prove(1).await.unwrap();
            let verified = log.verify_against(&verifier(&key), Some(&head)).await;
            log.checkpoint().await.unwrap();
            (
                (log.len(), log.signed(), log.tree_head(), log.is_empty()),
                log.status(),
                metrics,
                proof,
                verified,
            )
        }
    });
    let ((len, signed, tree_head, empty), status, metrics, proof, verified) = reads.await.unwrap();
    assert!(
        gate.held.load(SeqCst),
        "every read returned while the fsync was still held"
    );
    assert!(!append.is_finished(), "the append waits for its fsync");
    assert_eq!((len, signed, tree_head, empty), (3, 3, Some(head), false));
    assert_eq!(status, before);
    let entries = &metrics.family("dsmil_audit_entries").unwrap().samples;
    assert_eq!(entries[0].value, SampleValue::Number(3.0));
    let proof = proof.unwrap();
    proof.verify().unwrap();
    assert_eq!((proof.seq, proof.tree_size), (1, 3));
    let verified = verified.unwrap();
    assert_eq!(
        (verified.entries, verified.signed_entries),
        (3, 3),
        "the written but unsynced line is not read (nor taken for a torn write)"
    );

    gate.release();
    let receipt = append.await.unwrap().unwrap();
    assert_eq!(receipt.sequence, 3);
    assert_eq!(log.len(), 4);
    let text = std::fs::read_to_string(log.path()).unwrap();
    let Line::Entry(last) = serde_json::from_str(text.lines().last().unwrap()).unwrap() else {
        panic!("the last line is not the entry")
    };
    assert_eq!((last.body.seq, last.hash), (3, receipt.entry_hash));
    log.checkpoint().await.unwrap();
    let summary = verify_file(log.path(), &verifier(&key)).await.unwrap();
    assert_eq!((summary.entries, summary.signed_entries), (4, 4));
}

/// A sync that fails fails every append it carried, with the I/O error as the source, and
/// leaves the file as it was; a failed checkpoint likewise. The log goes on afterwards with
/// the next sequence number, and verifies and reopens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_cuts_its_lines_off_and_fails_every_append_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    let (log, key) = gated_log(dir.path(), &gate).await;
    for i in 0..2 {
        log.append_event(event(i)).await.unwrap();
    }
    log.checkpoint().await.unwrap();
    let size = std::fs::metadata(log.path()).unwrap().len();

    gate.fail.store(true, SeqCst);
    let appends: Vec<_> = (0..5)
        .map(|i| {
            let log = Arc::clone(&log);
            tokio::spawn(async move { log.append_event(event(100 + i)).await })
        })
        .collect();
    for a in appends {
        let err = a.await.unwrap().unwrap_err();
        let AuditError::Io { source, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(source.to_string(), "disk on fire");
        let cause = std::error::Error::source(&err).unwrap();
        assert_eq!(cause.to_string(), "disk on fire", "{err}");
    }
    assert_eq!(std::fs::metadata(log.path()).unwrap().len(), size);
    assert_eq!(log.len(), 2);

    // An unsigned entry, then a checkpoint whose sync fails: nothing is signed or written.
    gate.fail.store(false, SeqCst);
    let receipt = log.append_event(event(2)).await.unwrap();
    assert_eq!(receipt.sequence, 2, "the failed appends took no numbers");
    let size = std::fs::metadata(log.path()).unwrap().len();
    gate.fail.store(true, SeqCst);
    let err = log.checkpoint().await.unwrap_err();
    assert!(
        matches!(&err, AuditError::Io { action, .. } if action.contains("checkpoint")),
        "{err}"
    );
    assert_eq!(std::fs::metadata(log.path()).unwrap().len(), size);
    assert_eq!(log.signed(), 2);

    gate.fail.store(false, SeqCst);
    log.checkpoint().await.unwrap();
    assert_eq!(log.signed(), 3);
    let path = log.path().to_owned();
    let summary = verify_file(&path, &verifier(&key)).await.unwrap();
    assert_eq!((summary.entries, summary.signed_entries), (3, 3));
    drop(log);
    let (reopened, report) = AuditLog::open(&path, key, AuditConfig::default())
        .await
        .unwrap();
    assert_eq!((report.entries, report.torn_bytes), (3, 0));
    assert_eq!(reopened.tree_head().map(|h| h.tree_size), Some(3));
}
