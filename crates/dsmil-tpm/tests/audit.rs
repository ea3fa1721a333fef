//! The audit log: batches, checkpoints, inclusion proofs, and that every kind of tampering is
//! caught and named; [`live`]: readers and faults while the writer syncs.

mod live;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dsmil_core::monitoring::{AlertLevel, SecurityEvent};
use dsmil_tpm::audit::merkle::verify_inclusion;
use dsmil_tpm::audit::record::{Line, body_bytes, entry_leaf, parse_hash};
use dsmil_tpm::audit::{AuditConfig, AuditError, AuditLog, verify_file};
use dsmil_tpm::soft_key::{P256Verifier, SoftEcdsaKey};

pub(super) fn event(n: usize) -> SecurityEvent {
    SecurityEvent {
        timestamp: Utc::now(),
        event_type: "test".into(),
        severity: AlertLevel::Info,
        source_component: "tests".into(),
        description: format!("event number {n}"),
        tpm_signature: None,
        affected_resources: vec![],
        response_actions: vec![],
    }
}

async fn filled(dir: &Path, n: usize, batch: u64) -> (AuditLog, Arc<SoftEcdsaKey>) {
    let key = Arc::new(SoftEcdsaKey::load_or_create(&dir.join("key.p8")).unwrap());
    let config = AuditConfig {
        batch_entries: batch,
        batch_interval: Duration::from_secs(3600),
        min_checkpoint_interval: Duration::ZERO,
        ..AuditConfig::default()
    };
    let (log, report) = AuditLog::open(&dir.join("audit.log"), key.clone(), config)
        .await
        .unwrap();
    assert_eq!(report.torn_bytes, 0);
    for i in 0..n {
        let r = log.append_event(event(i)).await.unwrap();
        assert_eq!(r.sequence, i as u64);
        if (i as u64 + 1).is_multiple_of(batch) {
            // Let the background closer sign the full batch before going on, so the layout
            // (a checkpoint after every `batch` entries) is the same in every run.
            wait_signed(&log, i as u64 + 1).await;
        }
    }
    (log, key)
}

async fn wait_signed(log: &AuditLog, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while log.signed() < n {
        assert!(std::time::Instant::now() < deadline, "batch never closed");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub(super) fn verifier(key: &SoftEcdsaKey) -> P256Verifier {
    P256Verifier::new(key.public_key())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_close_with_signed_tree_heads_and_entries_prove_inclusion() {
    let dir = tempfile::tempdir().unwrap();
    let (log, key) = filled(dir.path(), 10, 4).await;
    assert_eq!(log.signed(), 8, "two full batches are signed");
    log.checkpoint().await.unwrap();
    assert_eq!(log.signed(), 10);
    let summary = verify_file(log.path(), &verifier(&key)).await.unwrap();
    assert_eq!(
        (summary.entries, summary.checkpoints, summary.signed_entries),
        (10, 3, 10)
    );

    // Inclusion proofs check out against the signed root.
    let text = std::fs::read_to_string(log.path()).unwrap();
    let entry_line = text.lines().find(|l| l.contains("event number 6")).unwrap();
    let Line::Entry(entry) = serde_json::from_str::<Line>(entry_line).unwrap() else {
        panic!("not an entry")
    };
    let leaf = entry_leaf(&body_bytes(&entry.body));
    let proof = log.prove(6).await.unwrap().unwrap();
    let path: Vec<_> = proof.proof.iter().map(|h| parse_hash(h).unwrap()).collect();
    assert!(verify_inclusion(
        &leaf,
        6,
        proof.tree_size,
        &path,
        &parse_hash(&proof.root).unwrap()
    ));
    assert!(!verify_inclusion(
        &leaf,
        5,
        proof.tree_size,
        &path,
        &parse_hash(&proof.root).unwrap()
    ));
    assert!(log.prove(10).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_change_reordering_or_truncation_names_the_first_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let (log, key) = filled(dir.path(), 12, 4).await;
    log.checkpoint().await.unwrap();
    let path = log.path().to_owned();
    drop(log);
    let original = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let v = verifier(&key);
    let check = |text: String, expect: &'static str| {
        let path = path.clone();
        let v = v.clone();
        async move {
            std::fs::write(&path, text).unwrap();
            let err = verify_file(&path, &v).await.unwrap_err();
            assert!(
                err.to_string().contains(expect),
                "expected {expect:?} in: {err}"
            );
            err
        }
    };
    // A changed event (line 3 is entry 2).
    let changed = original.replacen("event number 2", "event number 9", 1);
    let err = check(changed, "was changed").await;
    assert_eq!((err.line, err.entry), (3, Some(2)));
    // Two entries swapped.
    let mut swapped = lines.clone();
    swapped.swap(0, 1);
    check(swapped.join("\n") + "\n", "sequence number").await;
    // An entry removed.
    let mut removed = lines.clone();
    removed.remove(6);
    check(removed.join("\n") + "\n", "expected").await;
    // Cut in the middle of the last line.
    check(original[..original.len() - 10].to_string(), "incomplete").await;
    // Entries cut off behind a checkpoint that covers them (the checkpoint kept).
    let mut cut: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.contains("event number 11"))
        .collect();
    cut.retain(|l| !l.contains("event number 10"));
    check(cut.join("\n") + "\n", "entries removed").await;
    // A log signed by someone else.
    std::fs::write(&path, &original).unwrap();
    let other = SoftEcdsaKey::load_or_create(&dir.path().join("other.p8")).unwrap();
    let err = verify_file(&path, &verifier(&other)).await.unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert!(verify_file(&path, &v).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_and_reported_and_a_damaged_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, key) = filled(dir.path(), 5, 100).await;
    log.checkpoint().await.unwrap();
    let path = log.path().to_owned();
    drop(log);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(r#"{"type":"entry","seq":5,"ti"#);
    std::fs::write(&path, &text).unwrap();
    let (log, report) = AuditLog::open(&path, key.clone(), AuditConfig::default())
        .await
        .unwrap();
    assert_eq!(report.entries, 5);
    assert!(report.torn_bytes > 0);
    log.append_event(event(5)).await.unwrap();
    log.checkpoint().await.unwrap();
    let summary = verify_file(&path, &verifier(&key)).await.unwrap();
    assert_eq!(summary.entries, 6);
    drop(log);

    let tampered =
        std::fs::read_to_string(&path)
            .unwrap()
            .replacen("event number 1", "event number 7", 1);
    std::fs::write(&path, tampered).unwrap();
    let err = AuditLog::open(&path, key, AuditConfig::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuditError::Damaged { error, .. } if error.line == 2),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_batch_is_signed_after_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(SoftEcdsaKey::load_or_create(&dir.path().join("key.p8")).unwrap());
    let config = AuditConfig {
        batch_entries: 1000,
        batch_interval: Duration::from_millis(50),
        ..AuditConfig::default()
    };
    let (log, _) = AuditLog::open(&dir.path().join("audit.log"), key, config)
        .await
        .unwrap();
    log.append_event(event(0)).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while log.signed() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the batch was never closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How a property-test log is damaged.
#[derive(Debug, Clone)]
enum Corruption {
    /// XOR one byte (position and mask taken modulo the file).
    Flip(usize, u8),
    /// Remove one line.
    Delete(usize),
    /// Swap two lines.
    Swap(usize, usize),
    /// Keep only a prefix.
    Truncate(usize),
}

fn corruption() -> impl proptest::strategy::Strategy<Value = Corruption> {
    use proptest::prelude::*;
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(p, m)| Corruption::Flip(p, m)),
        any::<usize>().prop_map(Corruption::Delete),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Corruption::Swap(a, b)),
        any::<usize>().prop_map(Corruption::Truncate),
    ]
}

fn corrupt(original: &[u8], c: &Corruption) -> Vec<u8> {
    let lines: Vec<&[u8]> = original.split_inclusive(|&b| b == b'\n').collect();
    match *c {
        Corruption::Flip(p, m) => {
            let mut out = original.to_vec();
            out[p % original.len()] ^= m;
            out
        }
        Corruption::Delete(i) => {
            let mut l = lines.clone();
            l.remove(i % lines.len());
            l.concat()
        }
        Corruption::Swap(a, b) => {
            let mut l = lines.clone();
            let (a, b) = (a % lines.len(), b % lines.len());
            let b = if a == b { (b + 1) % lines.len() } else { b };
            l.swap(a, b);
            l.concat()
        }
        Corruption::Truncate(n) => original[..n % original.len()].to_vec(),
    }
}

/// Whether `damaged` holds the same entries in the same order and the same checkpoints in the
/// same order, each still after every entry it covers — a checkpoint moved later is still a
/// true signed statement, so the verifier rightly accepts it.
fn checkpoint_only_moved_later(original: &[u8], damaged: &[u8]) -> bool {
    let parse = |bytes: &[u8]| -> Option<[Vec<String>; 2]> {
        let text = std::str::from_utf8(bytes).ok()?;
        if !text.ends_with('\n') {
            return None;
        }
        let (mut entries, mut checkpoints) = (vec![], vec![]);
        for line in text.lines() {
            match serde_json::from_str::<Line>(line).ok()? {
                Line::Entry(_) => entries.push(line.to_owned()),
                Line::Checkpoint(c) => {
                    if (c.tree_size as usize) > entries.len() {
                        return None;
                    }
                    checkpoints.push(line.to_owned());
                }
            }
        }
        Some([entries, checkpoints])
    };
    matches!((parse(original), parse(damaged)), (Some(a), Some(b)) if a == b)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

    /// Any flipped byte, removed or swapped line, or cut — anywhere in a random log — fails
    /// verification against the log's latest signed tree head.
    #[test]
    fn every_random_corruption_is_detected(
        entries in 1usize..24,
        batch in 1u64..6,
        damage in corruption(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let (log, key) = filled(dir.path(), entries, batch).await;
            log.checkpoint().await.unwrap();
            let head = log.tree_head().unwrap();
            let path = log.path().to_owned();
            drop(log);
            let v = verifier(&key);
            dsmil_tpm::audit::verify_file_against(&path, &v, Some(&head)).await.unwrap();
            let original = std::fs::read(&path).unwrap();
            let damaged = corrupt(&original, &damage);
            proptest::prop_assume!(damaged != original);
            proptest::prop_assume!(!checkpoint_only_moved_later(&original, &damaged));
            std::fs::write(&path, &damaged).unwrap();
            let result = dsmil_tpm::audit::verify_file_against(&path, &v, Some(&head)).await;
            let changed: Vec<String> = String::from_utf8_lossy(&damaged)
                .lines()
                .zip(String::from_utf8_lossy(&original).lines())
                .filter(|(d, o)| d != o)
                .map(|(d, o)| format!("{o}\n  became\n{d}"))
                .collect();
            proptest::prop_assert!(result.is_err(), "{damage:?} went unnoticed: {changed:?}");
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_log_cut_back_to_an_earlier_checkpoint_fails_only_against_the_trusted_head() {
    let dir = tempfile::tempdir().unwrap();
    let (log, key) = filled(dir.path(), 8, 4).await;
    let head = log.tree_head().unwrap();
    assert_eq!(head.tree_size, 8);
    assert_eq!(
        dsmil_tpm::audit::TreeHead::parse(&head.to_string()),
        Some(head)
    );
    let path = log.path().to_owned();
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    // Keep the first batch and its checkpoint: a well-formed, shorter log.
    let cut: String = text.split_inclusive('\n').take(5).collect();
    std::fs::write(&path, cut).unwrap();
    let v = verifier(&key);
    assert!(
        verify_file(&path, &v).await.is_ok(),
        "the file alone cannot tell"
    );
    let err = dsmil_tpm::audit::verify_file_against(&path, &v, Some(&head))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("trusted tree head"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_share_fsyncs_and_keep_one_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (log, key) = filled(dir.path(), 0, 256).await;
    let log = Arc::new(log);
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            log.append_event(event(i)).await.unwrap().sequence
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..2000).collect::<Vec<u64>>());
    log.checkpoint().await.unwrap();
    let summary = verify_file(log.path(), &verifier(&key)).await.unwrap();
    assert_eq!((summary.entries, summary.signed_entries), (2000, 2000));
    // A group larger than a batch is closed by one checkpoint covering all of it.
    assert!(summary.checkpoints >= 1);
}

/// Signs like the key it wraps, but only once more appends have completed than there are
/// writers (or the writers are done): at least one entry is then written between the moment
/// the checkpoint's size was taken and its line, so the checkpoint covers fewer entries than
/// precede it — as on a hardware TPM under load, deterministically.
struct LaggingSigner {
    key: Arc<SoftEcdsaKey>,
    appended: Arc<std::sync::atomic::AtomicU64>,
    writers: u64,
    done: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl dsmil_core::ports::Signer for LaggingSigner {
    fn key_name(&self) -> String {
        self.key.key_name()
    }
    fn scheme(&self) -> dsmil_core::SignatureScheme {
        self.key.scheme()
    }
    async fn sign(
        &self,
        message: &[u8],
    ) -> Result<dsmil_core::Signature, dsmil_core::ports::PortError> {
        use std::sync::atomic::Ordering::SeqCst;
        let start = self.appended.load(SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.appended.load(SeqCst) <= start + self.writers
            && !self.done.load(SeqCst)
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.key.sign(message).await
    }
}

/// A log longer than the proof chunks (1,024 entries), whose checkpoints lag behind the
/// appends, verifies offline, reopens, and proves any signed entry from chunk roots and leaves
/// read back from the file — including entries in the last, partial chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_logs_with_lagging_checkpoints_verify_reopen_and_prove() {
    use dsmil_core::ports::Signer;
    const N: usize = 2_600;
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(SoftEcdsaKey::load_or_create(&dir.path().join("key.p8")).unwrap());
    let config = AuditConfig {
        batch_entries: 64,
        batch_interval: Duration::from_millis(5),
        min_checkpoint_interval: Duration::ZERO,
        ..AuditConfig::default()
    };
    let path = dir.path().join("audit.log");
    let appended = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signer: Arc<dyn Signer> = Arc::new(LaggingSigner {
        key: key.clone(),
        appended: Arc::clone(&appended),
        writers: 8,
        done: Arc::clone(&done),
    });
    let (log, _) = AuditLog::open(&path, signer, config.clone()).await.unwrap();
    let log = Arc::new(log);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (log, appended) = (Arc::clone(&log), Arc::clone(&appended));
            tokio::spawn(async move {
                for i in (w..N).step_by(8) {
                    log.append_event(event(i)).await.unwrap();
                    appended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    log.checkpoint().await.unwrap();
    drop(log);

    // Checkpoints signed while the writers went on cover fewer entries than precede them.
    let text = std::fs::read_to_string(&path).unwrap();
    let (mut entries, mut lagging) = (0u64, 0);
    let (mut leaves, mut entry_lines) = (Vec::new(), Vec::new());
    for line in text.lines() {
        match serde_json::from_str::<Line>(line).unwrap() {
            Line::Entry(e) => {
                entries += 1;
                leaves.push(entry_leaf(&body_bytes(&e.body)));
                entry_lines.push(line);
            }
            Line::Checkpoint(c) => lagging += usize::from(c.tree_size < entries),
        }
    }
    assert!(lagging > 0, "no checkpoint lagged behind the appends");
    let summary = verify_file(&path, &verifier(&key)).await.unwrap();
    assert_eq!(
        (summary.entries, summary.signed_entries),
        (N as u64, N as u64)
    );

    let (log, report) = AuditLog::open(&path, key.clone(), config).await.unwrap();
    assert_eq!(report.entries, N as u64);
    let head = log.tree_head().unwrap();
    for seq in [0, 1, 511, 1023, 1024, 1500, 2047, 2048, 2100, N as u64 - 1] {
        let proof = log.prove(seq).await.unwrap().unwrap();
        assert_eq!(proof.tree_size, N as u64);
        assert_eq!(parse_hash(&proof.root), Some(head.root));
        assert_eq!(
            proof.entry, entry_lines[seq as usize],
            "the entry as written"
        );
        assert_eq!(parse_hash(&proof.leaf), Some(leaves[seq as usize]));
        proof.verify().unwrap();
        // Any part changed, and the proof no longer checks out.
        let mut wrong = proof.clone();
        wrong.seq = (seq + 1) % N as u64;
        assert!(wrong.verify().unwrap_err().contains("not entry"));
        let mut wrong = proof.clone();
        wrong.entry = entry_lines[((seq + 1) % N as u64) as usize].to_owned();
        assert!(wrong.verify().is_err());
        let mut wrong = proof.clone();
        wrong.root = dsmil_core::hex::encode(&[7u8; 32]);
        assert!(wrong.verify().unwrap_err().contains("does not lead"));
        let path: Vec<_> = proof.proof.iter().map(|h| parse_hash(h).unwrap()).collect();
        assert!(
            verify_inclusion(&leaves[seq as usize], seq, N as u64, &path, &head.root),
            "entry {seq}"
        );
    }
    assert!(log.prove(N as u64).await.unwrap().is_none());
}

/// A log verifies while appends go on (dsmild checks its TPM anchor this way at start). It
/// reads only the lines complete when it starts, so an append in progress cannot be taken for
/// a torn write (`live::readers_do_not_wait_for_a_held_fsync` holds an append between its
/// write and its `fsync` to show it); this checks the live path under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_log_verifies_while_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(SoftEcdsaKey::load_or_create(&dir.path().join("key.p8")).unwrap());
    let config = AuditConfig {
        batch_entries: 32,
        batch_interval: Duration::from_millis(2),
        min_checkpoint_interval: Duration::ZERO,
        ..AuditConfig::default()
    };
    let (log, _) = AuditLog::open(&dir.path().join("audit.log"), key.clone(), config)
        .await
        .unwrap();
    let log = Arc::new(log);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                for i in (w..2_000).step_by(4) {
                    log.append_event(event(i)).await.unwrap();
                }
            })
        })
        .collect();
    let mut seen = 0;
    while !writers.iter().all(|w| w.is_finished()) {
        let summary = log.verify_against(&verifier(&key), None).await.unwrap();
        assert!(summary.entries >= seen, "the log only grows");
        seen = summary.entries;
    }
    for w in writers {
        w.await.unwrap();
    }
    log.checkpoint().await.unwrap();
    let summary = log.verify_against(&verifier(&key), None).await.unwrap();
    assert_eq!((summary.entries, summary.signed_entries), (2_000, 2_000));
}

/// Consistency proofs between sizes on both sides of chunk edges (1,024 entries) verify
/// (RFC 9162 §2.1.4.2), carry the roots of the trees over the entries on disk, and the newer
/// root is the signed head's; sizes not signed, or reversed, have none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_proofs_across_chunks_verify_against_the_entries_on_disk() {
    use dsmil_tpm::audit::merkle::{root, verify_consistency};
    let dir = tempfile::tempdir().unwrap();
    let (log, _key) = filled(dir.path(), 2_100, 700).await;
    assert_eq!(log.signed(), 2_100);
    let text = std::fs::read_to_string(log.path()).unwrap();
    let leaves: Vec<_> = text
        .lines()
        .filter_map(|l| match serde_json::from_str::<Line>(l).unwrap() {
            Line::Entry(e) => Some(entry_leaf(&body_bytes(&e.body))),
            Line::Checkpoint(_) => None,
        })
        .collect();
    let head = log.tree_head().unwrap();
    let sizes = [
        0u64, 1, 700, 1_023, 1_024, 1_025, 1_400, 2_047, 2_048, 2_099, 2_100,
    ];
    for &to in &sizes {
        for &from in sizes.iter().filter(|&&f| f <= to) {
            let p = log
                .consistency(from, to)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{from} -> {to}"));
            assert_eq!(
                p.from_root,
                root(&leaves[..from as usize]),
                "{from} -> {to}"
            );
            assert_eq!(p.to_root, root(&leaves[..to as usize]), "{from} -> {to}");
            assert!(p.verify(), "{from} -> {to}");
            assert!(verify_consistency(
                from,
                to,
                &p.from_root,
                &p.to_root,
                &p.proof
            ));
            if from > 0 && from < to {
                let mut bad = p.clone();
                bad.from_root[0] ^= 1;
                assert!(!bad.verify(), "a forged older root fails: {from} -> {to}");
            }
        }
    }
    assert_eq!(
        log.consistency(700, 2_100).await.unwrap().unwrap().to_root,
        head.root
    );
    assert!(log.consistency(10, 2_101).await.unwrap().is_none());
    assert!(log.consistency(20, 10).await.unwrap().is_none());
}
