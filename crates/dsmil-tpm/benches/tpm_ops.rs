//! TPM operation rates and latencies on both backends beside tpm2-tools doing the same
//! operation, and the audit log's sustained event rate (group commit, TPM-signed checkpoints)
//! beside the seed's sign-every-event design on the same backend.
//!
//! The `tss` rows need the `tss` feature and swtpm (`cargo xtask bench tpm` provides both);
//! each backend gets its own swtpm. `DSMIL_BENCH_QUICK=1` shortens every measurement;
//! `DSMIL_TPM_BENCH=ops,audit,tools` picks sections (default all). Rows go to
//! `DSMIL_BENCH_ROWS_DIR` when set.

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
#[cfg(feature = "tss")]
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dsmil_core::monitoring::{AlertLevel, SecurityEvent};
use dsmil_tpm::audit::{AuditConfig, AuditLog, verify_file};
use dsmil_tpm::values::{HashAlgorithm, KeyTemplate, NvAttributes, PcrSelection};
use dsmil_tpm::{NvSpec, SealPolicy, Tpm, TpmOptions, TpmSigner};
use serde_json::{Value, json};

struct Bench {
    quick: bool,
    sections: Option<String>,
    rows: Vec<Value>,
}

impl Bench {
    fn wants(&self, section: &str) -> bool {
        self.sections
            .as_ref()
            .is_none_or(|s| s.split(',').any(|x| x == section))
    }

    fn row(&mut self, group: &str, case: &str, implementation: &str, unit: &str, value: f64) {
        println!("{group:<24} {case:<14} {implementation:<14} {value:>12.1} {unit}");
        self.rows.push(json!({"group": group, "case": case, "impl": implementation, "unit": unit, "value": value}));
    }

    /// Rate, p50 and p99 of one implementation on one backend.
    fn latencies(
        &mut self,
        group: &str,
        backend: &str,
        implementation: &str,
        mut samples: Vec<Duration>,
    ) {
        if samples.is_empty() {
            return;
        }
        samples.sort_unstable();
        let total: Duration = samples.iter().sum();
        let pick = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        self.row(
            group,
            &format!("{backend} ops/s"),
            implementation,
            "ops/s",
            samples.len() as f64 / total.as_secs_f64(),
        );
        self.row(
            group,
            &format!("{backend} p50"),
            implementation,
            "µs",
            pick(0.50).as_secs_f64() * 1e6,
        );
        self.row(
            group,
            &format!("{backend} p99"),
            implementation,
            "µs",
            pick(0.99).as_secs_f64() * 1e6,
        );
    }

    fn budget(&self) -> (Duration, usize) {
        if self.quick {
            (Duration::from_millis(400), 300)
        } else {
            (Duration::from_millis(1500), 3000)
        }
    }
}

/// Times `op` repeatedly within the budget.
async fn sample<F, Fut>(budget: (Duration, usize), mut op: F) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let mut out = Vec::new();
    while out.len() < budget.1 && (started.elapsed() < budget.0 || out.len() < 10) {
        let t = Instant::now();
        op(out.len()).await;
        out.push(t.elapsed());
    }
    out
}

const NV_INDEX: u32 = 0x0150_0BEC;

async fn backend_ops(b: &mut Bench, backend: &str, tpm: &Tpm) {
    let budget = b.budget();
    tpm.create_key("ecc", KeyTemplate::EccP256Signing)
        .await
        .unwrap();
    tpm.create_key("rsa", KeyTemplate::Rsa2048Signing)
        .await
        .unwrap();
    tpm.create_key("aes", KeyTemplate::Aes256).await.unwrap();
    tpm.create_attestation_key("ak").await.unwrap();
    tpm.nv_define(NvSpec {
        index: NV_INDEX,
        size: 32,
        attributes: NvAttributes::owner_rw(),
        auth: None,
    })
    .await
    .unwrap();
    let msg = [7u8; 64];
    let s = sample(budget, |_| async {
        tpm.sign("ecc", &msg).await.unwrap();
    })
    .await;
    b.latencies(
        "tpm_sign_ecdsa_p256",
        backend,
        &format!("dsmil-{backend}"),
        s,
    );
    let s = sample(budget, |_| async {
        tpm.sign("rsa", &msg).await.unwrap();
    })
    .await;
    b.latencies("tpm_sign_rsa2048", backend, &format!("dsmil-{backend}"), s);
    let plain = [1u8; 1024];
    let s = sample(budget, |_| async {
        tpm.encrypt("aes", &plain).await.unwrap();
    })
    .await;
    b.latencies(
        "tpm_encrypt_aes256_1k",
        backend,
        &format!("dsmil-{backend}"),
        s,
    );
    let s = sample(budget, |i| async move {
        tpm.pcr_extend_data(16, &i.to_le_bytes()).await.unwrap();
    })
    .await;
    b.latencies("tpm_pcr_extend", backend, &format!("dsmil-{backend}"), s);
    let data = [9u8; 32];
    let s = sample(budget, |_| async {
        tpm.nv_write(NV_INDEX, 0, &data, None).await.unwrap();
    })
    .await;
    b.latencies("tpm_nv_write_32", backend, &format!("dsmil-{backend}"), s);
    let s = sample(budget, |_| async {
        tpm.get_random(32).await.unwrap();
    })
    .await;
    b.latencies("tpm_get_random_32", backend, &format!("dsmil-{backend}"), s);
    let sel = PcrSelection::new(HashAlgorithm::Sha256, [0, 1, 7]).unwrap();
    let s = sample(budget, |_| async {
        tpm.quote("ak", &sel, b"nonce").await.unwrap();
    })
    .await;
    b.latencies("tpm_quote", backend, &format!("dsmil-{backend}"), s);
    let blob = tpm
        .seal(
            b"0123456789abcdef0123456789abcdef",
            SealPolicy {
                pcrs: Some(sel.clone()),
                password: None,
            },
        )
        .await
        .unwrap()
        .value;
    let s = sample(budget, |_| async {
        tpm.unseal(&blob, None).await.unwrap();
    })
    .await;
    b.latencies(
        "tpm_unseal_pcr_policy",
        backend,
        &format!("dsmil-{backend}"),
        s,
    );
}

fn event(i: u64) -> SecurityEvent {
    let mut e = SecurityEvent::new("bench", AlertLevel::Info, "bench", format!("event {i}"));
    e.affected_resources = vec!["device:0x8000".into()];
    e
}

/// Sustained appends from many tasks with batching and group commit; every event's time to
/// be covered by a signed checkpoint is sampled.
async fn audit_batched(b: &mut Bench, backend: &str, signer: Arc<TpmSigner>, dir: &Path) {
    let run_for = if b.quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(4)
    };
    let (log, _) = AuditLog::open(
        &dir.join(format!("batched-{backend}.log")),
        signer.clone(),
        AuditConfig::default(),
    )
    .await
    .unwrap();
    let log = Arc::new(log);
    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicU64::new(0));
    // Coverage: a watcher notes when `signed()` passes each sampled sequence number.
    let watcher = {
        let (log, stop) = (log.clone(), stop.clone());
        tokio::spawn(async move {
            let mut marks: Vec<(Instant, u64)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                marks.push((Instant::now(), log.signed()));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            for _ in 0..1500 {
                marks.push((Instant::now(), log.signed()));
                if log.signed() == log.len() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            marks
        })
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..512 {
        let (log, stop, appended) = (log.clone(), stop.clone(), appended.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = log.append_event(event(i)).await.unwrap();
                if r.sequence % 97 == 0 {
                    samples.push((r.sequence, Instant::now()));
                }
                appended.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            samples
        }));
    }
    tokio::time::sleep(run_for).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    let marks = watcher.await.unwrap();
    let rate = appended.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64();
    let mut coverage: Vec<f64> = samples
        .iter()
        .filter_map(|(seq, t)| {
            marks
                .iter()
                .find(|(when, signed)| *signed > *seq && when >= t)
                .map(|(when, _)| when.duration_since(*t).as_secs_f64() * 1e3)
        })
        .collect();
    coverage.sort_by(f64::total_cmp);
    b.row("audit_append", backend, "dsmil-batched", "events/s", rate);
    if let Some(max) = coverage.last() {
        let p99 = coverage[((coverage.len() as f64 * 0.99) as usize).min(coverage.len() - 1)];
        b.row(
            "audit_signed_within",
            &format!("{backend} p99"),
            "dsmil-batched",
            "ms",
            p99,
        );
        b.row(
            "audit_signed_within",
            &format!("{backend} max"),
            "dsmil-batched",
            "ms",
            *max,
        );
    }
    // What that log costs to read back: reopening it (dsmild's start) and verifying it offline
    // (`dsmilctl audit verify`), both streaming the file.
    let path = log.path().to_owned();
    let entries = log.len() as f64;
    drop(log);
    let started = Instant::now();
    let (reopened, _) = AuditLog::open(&path, signer.clone(), AuditConfig::default())
        .await
        .unwrap();
    let reopen = started.elapsed().as_secs_f64();
    drop(reopened);
    b.row(
        "audit_reopen",
        backend,
        "dsmil",
        "entries/s",
        entries / reopen,
    );
    let started = Instant::now();
    let summary = verify_file(&path, signer.as_ref()).await.unwrap();
    let verify = started.elapsed().as_secs_f64();
    b.row(
        "audit_verify",
        backend,
        "dsmil",
        "entries/s",
        summary.entries as f64 / verify,
    );
}

/// The seed's design: every event signed by the TPM, then written and synced on its own.
async fn audit_sign_every_event(b: &mut Bench, backend: &str, tpm: &Tpm, dir: &Path) {
    use std::io::Write;
    let run_for = if b.quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(2)
    };
    tpm.ensure_key("audit", KeyTemplate::EccP256Signing)
        .await
        .unwrap();
    let mut file = std::fs::File::create(dir.join(format!("every-{backend}.log"))).unwrap();
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < run_for {
        let mut e = event(n);
        let sig = tpm
            .sign("audit", &serde_json::to_vec(&e).unwrap())
            .await
            .unwrap()
            .value;
        e.tpm_signature = Some(dsmil_core::hex::encode(&sig.bytes));
        let mut line = serde_json::to_vec(&e).unwrap();
        line.push(b'\n');
        file.write_all(&line).unwrap();
        file.sync_data().unwrap();
        n += 1;
    }
    b.row(
        "audit_append",
        backend,
        "seed-sign-every-event",
        "events/s",
        n as f64 / started.elapsed().as_secs_f64(),
    );
}

/// tpm2-tools doing the same operations against its own swtpm (one process per operation,
/// keys made persistent so no context files pile up in the TPM's three object slots).
#[cfg(feature = "tss")]
fn tpm2_tools(b: &mut Bench, dir: &Path) {
    let tools_dir = dir.join("tools");
    std::fs::create_dir_all(&tools_dir).unwrap();
    let swtpm = dsmil_tpm::swtpm::Swtpm::spawn(&tools_dir.join("state")).unwrap();
    let tcti = swtpm.tcti();
    let run = |args: &[&str]| {
        let out = Command::new(args[0])
            .args(&args[1..])
            .current_dir(&tools_dir)
            .env("TPM2TOOLS_TCTI", &tcti)
            .env("TSS2_LOG", "all+none")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "tpm2_createprimary",
        "-C",
        "o",
        "-g",
        "sha256",
        "-G",
        "ecc",
        "-c",
        "prim.ctx",
        "-Q",
    ]);
    run(&[
        "tpm2_evictcontrol",
        "-C",
        "o",
        "-c",
        "prim.ctx",
        "0x81000010",
        "-Q",
    ]);
    run(&["tpm2_flushcontext", "-t"]);
    for (alg, attrs, handle) in [
        (
            "ecc:ecdsa-sha256",
            "sign|fixedtpm|fixedparent|sensitivedataorigin|userwithauth",
            "0x81000011",
        ),
        (
            "rsa2048:rsassa-sha256",
            "sign|fixedtpm|fixedparent|sensitivedataorigin|userwithauth",
            "0x81000012",
        ),
        (
            "aes256cfb",
            "sign|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth",
            "0x81000013",
        ),
        (
            "ecc:ecdsa-sha256:null",
            "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign",
            "0x81000014",
        ),
    ] {
        run(&[
            "tpm2_create",
            "-C",
            "0x81000010",
            "-G",
            alg,
            "-a",
            attrs,
            "-u",
            "k.pub",
            "-r",
            "k.priv",
            "-Q",
        ]);
        run(&[
            "tpm2_load",
            "-C",
            "0x81000010",
            "-u",
            "k.pub",
            "-r",
            "k.priv",
            "-c",
            "k.ctx",
            "-Q",
        ]);
        run(&["tpm2_evictcontrol", "-C", "o", "-c", "k.ctx", handle, "-Q"]);
        run(&["tpm2_flushcontext", "-t"]);
    }
    std::fs::write(tools_dir.join("msg"), [7u8; 64]).unwrap();
    std::fs::write(tools_dir.join("plain"), [1u8; 1024]).unwrap();
    std::fs::write(tools_dir.join("nv"), [9u8; 32]).unwrap();
    std::fs::write(tools_dir.join("iv"), [0u8; 16]).unwrap();
    run(&[
        "tpm2_nvdefine",
        "0x01500bed",
        "-C",
        "o",
        "-s",
        "32",
        "-a",
        "ownerread|ownerwrite",
    ]);
    let count = if b.quick { 10 } else { 40 };
    let time = |args: &[&str]| -> Vec<Duration> {
        (0..count)
            .map(|_| {
                let t = Instant::now();
                run(args);
                t.elapsed()
            })
            .collect()
    };
    let cases: [(&str, Vec<&str>); 7] = [
        (
            "tpm_sign_ecdsa_p256",
            vec![
                "tpm2_sign",
                "-c",
                "0x81000011",
                "-g",
                "sha256",
                "-o",
                "sig",
                "msg",
            ],
        ),
        (
            "tpm_sign_rsa2048",
            vec![
                "tpm2_sign",
                "-c",
                "0x81000012",
                "-g",
                "sha256",
                "-o",
                "sig",
                "msg",
            ],
        ),
        (
            "tpm_encrypt_aes256_1k",
            vec![
                "tpm2_encryptdecrypt",
                "-c",
                "0x81000013",
                "-t",
                "iv",
                "-o",
                "out",
                "plain",
            ],
        ),
        (
            "tpm_pcr_extend",
            vec![
                "tpm2_pcrextend",
                "16:sha256=0000000000000000000000000000000000000000000000000000000000000001",
            ],
        ),
        (
            "tpm_nv_write_32",
            vec!["tpm2_nvwrite", "0x01500bed", "-C", "o", "-i", "nv"],
        ),
        (
            "tpm_get_random_32",
            vec!["tpm2_getrandom", "32", "-o", "rnd"],
        ),
        (
            "tpm_quote",
            vec![
                "tpm2_quote",
                "-c",
                "0x81000014",
                "-l",
                "sha256:0,1,7",
                "-q",
                "6e6f6e6365",
                "-m",
                "q.msg",
                "-s",
                "q.sig",
                "-g",
                "sha256",
            ],
        ),
    ];
    for (group, args) in cases {
        let samples = time(&args);
        b.latencies(group, "swtpm", "tpm2-tools", samples);
    }
}

fn main() {
    let quick = std::env::var("DSMIL_BENCH_QUICK").is_ok_and(|v| v == "1");
    let mut b = Bench {
        quick,
        sections: std::env::var("DSMIL_TPM_BENCH").ok(),
        rows: Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let soft = Tpm::open_soft(&dir.path().join("soft"), TpmOptions::default()).unwrap();
        if b.wants("ops") {
            backend_ops(&mut b, "soft", &soft).await;
        }
        if b.wants("audit") {
            let signer = Arc::new(TpmSigner::ensure(soft.clone(), "audit").await.unwrap());
            audit_batched(&mut b, "soft", signer, dir.path()).await;
            audit_sign_every_event(&mut b, "soft", &soft, dir.path()).await;
        }

        #[cfg(feature = "tss")]
        if dsmil_tpm::swtpm::available() {
            let swtpm = dsmil_tpm::swtpm::Swtpm::spawn(&dir.path().join("swtpm")).unwrap();
            let tpm = Tpm::open_tss(
                &swtpm.tcti(),
                &dir.path().join("tss-keys"),
                TpmOptions::default(),
            )
            .unwrap();
            if b.wants("ops") {
                backend_ops(&mut b, "swtpm", &tpm).await;
            }
            if b.wants("audit") {
                let signer = Arc::new(TpmSigner::ensure(tpm.clone(), "audit").await.unwrap());
                audit_batched(&mut b, "swtpm", signer, dir.path()).await;
                audit_sign_every_event(&mut b, "swtpm", &tpm, dir.path()).await;
            }
            drop(tpm);
            if b.wants("tools") {
                tpm2_tools(&mut b, dir.path());
            }
        } else {
            eprintln!("swtpm is not installed: the swtpm rows are skipped");
        }
        #[cfg(not(feature = "tss"))]
        eprintln!("built without the `tss` feature: the swtpm rows are skipped");
    });
    if let Ok(dir) = std::env::var("DSMIL_BENCH_ROWS_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            Path::new(&dir).join("tpm_ops.json"),
            serde_json::to_string_pretty(&b.rows).unwrap(),
        )
        .unwrap();
    }
}
