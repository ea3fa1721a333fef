//! The DSMIL bridge on the software TPM: quarantine refusals, offline attestation, key
//! provisioning, sealed configuration and intrusion responses.

use std::sync::Arc;

use dsmil_core::device::{DeviceId, QUARANTINED_DEVICES};
use dsmil_core::monitoring::AlertLevel;
use dsmil_core::ports::{MemoryAuditSink, RecordingThrottle, Verifier};
use dsmil_core::tpm::TpmResultCode;
use dsmil_core::{Event, EventBus};
use dsmil_tpm::bridge::{
    AttestationError, BridgeConfig, BridgeError, DeviceAttestation, DsmilBridge, IntrusionAction,
    MemoryDevices, verify_event_signature,
};
use dsmil_tpm::soft_key::P256Verifier;
use dsmil_tpm::{KeyPublic, QuoteError, Tpm, TpmError, TpmOptions};

struct Fixture {
    bridge: DsmilBridge,
    io: Arc<MemoryDevices>,
    audit: Arc<MemoryAuditSink>,
    bus: EventBus,
    throttle: Arc<RecordingThrottle>,
    tpm: Tpm,
    dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let tpm = Tpm::open_soft(&dir.path().join("tpm"), TpmOptions::default()).unwrap();
    open(dir, tpm)
}

fn open(dir: tempfile::TempDir, tpm: Tpm) -> Fixture {
    let io = Arc::new(MemoryDevices::new());
    let audit = Arc::new(MemoryAuditSink::new());
    let bus = EventBus::new(1024);
    let throttle = Arc::new(RecordingThrottle::new());
    let bridge = DsmilBridge::open(
        tpm.clone(),
        BridgeConfig::new(&dir.path().join("bridge")),
        io.clone(),
    )
    .unwrap()
    .with_audit(audit.clone())
    .with_bus(bus.clone())
    .with_throttle(throttle.clone());
    Fixture {
        bridge,
        io,
        audit,
        bus,
        throttle,
        tpm,
        dir,
    }
}

fn dev(raw: u16) -> DeviceId {
    DeviceId::new(u32::from(raw)).unwrap()
}

#[tokio::test]
async fn quarantined_devices_are_never_written_or_configured() {
    let f = fixture();
    let mut events = f.bus.subscribe();
    for raw in QUARANTINED_DEVICES {
        let d = dev(raw);
        for attempt in 0..3 {
            let err = match attempt {
                0 => f.bridge.write(d, b"wipe").await.unwrap_err(),
                1 => f.bridge.provision_key(d).await.unwrap_err(),
                _ => f.bridge.seal_config(d, b"cfg", None).await.unwrap_err(),
            };
            assert!(matches!(err, BridgeError::PolicyViolation(_)), "{err}");
            assert!(err.to_string().contains("quarantined"), "{err}");
        }
        assert_eq!(f.io.last_write(d), None);
        assert!(f.bridge.device(d).quarantined);
        assert_eq!(f.bridge.device(d).key_label, None);
    }
    assert_eq!(f.io.written_devices(), 0);
    // Every refusal is audited as a signed critical security event.
    let audited = f.audit.events();
    assert_eq!(audited.len(), 15);
    let key = f.bridge.event_key().await.unwrap();
    for e in &audited {
        assert_eq!(e.event_type, "quarantine_violation");
        assert_eq!(e.severity, AlertLevel::Critical);
        assert!(verify_event_signature(e, &key), "signature of {e:?}");
        let mut forged = e.clone();
        forged.description.push('!');
        assert!(!verify_event_signature(&forged, &key));
    }
    // ... and published, with a refused device event.
    let (mut security, mut refused) = (0, 0);
    while let Ok(Some(p)) = events.try_recv() {
        match &*p.event {
            Event::Security(s) if s.event_type == "quarantine_violation" => security += 1,
            Event::Device(d) if !d.allowed => refused += 1,
            _ => {}
        }
    }
    assert_eq!((security, refused), (15, 15));
}

#[tokio::test]
async fn ordinary_devices_are_written_and_published() {
    let f = fixture();
    let mut events = f.bus.subscribe();
    f.bridge.write(dev(0x8000), b"\x01\x02").await.unwrap();
    assert_eq!(f.io.last_write(dev(0x8000)), Some(vec![1, 2]));
    let p = events.try_recv().unwrap().unwrap();
    let Event::Device(d) = &*p.event else {
        panic!("{p:?}")
    };
    assert!(d.allowed && d.action == "write" && d.device == dev(0x8000));
    assert_eq!(f.bridge.devices().len(), 108);
}

#[tokio::test]
async fn attestation_verifies_offline_and_binds_device_state_and_nonce() {
    let f = fixture();
    let state = br#"{"temperature":41,"mode":"normal"}"#;
    let att = f
        .bridge
        .attest(dev(0x8005), state, b"verifier-nonce")
        .await
        .unwrap();
    let trusted = f.bridge.attestation_key().await.unwrap();
    // Shipped as JSON to a verifier that has only the trusted AK public key.
    let json = serde_json::to_string(&att).unwrap();
    let received: DeviceAttestation = serde_json::from_str(&json).unwrap();
    received
        .verify(&trusted, b"verifier-nonce", Some(state))
        .unwrap();
    received.verify(&trusted, b"verifier-nonce", None).unwrap();
    assert_eq!(
        received.verify(&trusted, b"other-nonce", None).unwrap_err(),
        AttestationError::NonceMismatch
    );
    assert_eq!(
        received
            .verify(&trusted, b"verifier-nonce", Some(b"other state"))
            .unwrap_err(),
        AttestationError::StateMismatch
    );
    // Claiming the quote for another device, or another state, breaks the binding.
    let mut other = received.clone();
    other.device = dev(0x8006);
    assert_eq!(
        other.verify(&trusted, b"verifier-nonce", None).unwrap_err(),
        AttestationError::Quote(QuoteError::NonceMismatch)
    );
    let mut other = received.clone();
    other.state_digest[0] ^= 1;
    assert!(other.verify(&trusted, b"verifier-nonce", None).is_err());
    // A key the verifier does not trust is refused.
    let stranger = KeyPublic::EccP256 { point: vec![4; 65] };
    assert_eq!(
        received
            .verify(&stranger, b"verifier-nonce", None)
            .unwrap_err(),
        AttestationError::UntrustedKey
    );
    // Quarantined devices can be attested (reading is allowed).
    f.bridge.attest(dev(0x8009), b"state", b"n").await.unwrap();
}

#[tokio::test]
async fn device_keys_are_provisioned_once_and_persist() {
    let f = fixture();
    let key = f.bridge.provision_key(dev(0x8001)).await.unwrap();
    assert_eq!(key.label, "device-8001");
    let again = f.bridge.provision_key(dev(0x8001)).await.unwrap();
    assert_eq!(again.public, key.public);
    let sig = f
        .bridge
        .sign_for_device(dev(0x8001), b"telemetry")
        .await
        .unwrap();
    let KeyPublic::EccP256 { point } = key.public.clone() else {
        panic!()
    };
    assert!(
        P256Verifier::new(point)
            .verify(b"telemetry", &sig)
            .await
            .unwrap()
    );
    assert!(matches!(
        f.bridge
            .sign_for_device(dev(0x8002), b"x")
            .await
            .unwrap_err(),
        BridgeError::NotFound(_)
    ));
    // A new bridge over the same directory and TPM knows the mapping.
    let Fixture { dir, tpm, .. } = f;
    let f = open(dir, tpm);
    assert_eq!(
        f.bridge.device(dev(0x8001)).key_label.as_deref(),
        Some("device-8001")
    );
    f.bridge
        .sign_for_device(dev(0x8001), b"after restart")
        .await
        .unwrap();
}

#[tokio::test]
async fn an_intrusion_locks_configuration_and_makes_sealed_configs_unavailable() {
    let f = fixture();
    let config: Vec<u8> = (0..1000u32).map(|i| (i % 200) as u8).collect();
    f.bridge
        .seal_config(dev(0x8002), &config, Some(b"ops-pw"))
        .await
        .unwrap();
    assert!(f.bridge.device(dev(0x8002)).config_sealed);
    assert_eq!(
        f.bridge
            .unseal_config(dev(0x8002), Some(b"ops-pw"))
            .await
            .unwrap(),
        config
    );
    assert!(
        f.bridge
            .unseal_config(dev(0x8002), Some(b"wrong"))
            .await
            .is_err()
    );
    // The file on disk does not contain the configuration.
    let on_disk = std::fs::read(f.dir.path().join("bridge/configs/8002.json")).unwrap();
    assert!(!on_disk.windows(16).any(|w| w == &config[100..116]));

    let response = f
        .bridge
        .respond_to_intrusion(Some(dev(0x8002)), AlertLevel::Critical, "chassis opened")
        .await
        .unwrap();
    assert_eq!(
        response.actions,
        vec![
            IntrusionAction::Log,
            IntrusionAction::Alert,
            IntrusionAction::LockConfiguration,
            IntrusionAction::ExtendPcr
        ]
    );
    assert!(verify_event_signature(
        &response.event,
        &f.bridge.event_key().await.unwrap()
    ));
    let err = f
        .bridge
        .unseal_config(dev(0x8002), Some(b"ops-pw"))
        .await
        .unwrap_err();
    let BridgeError::Tpm(tpm_err @ TpmError::Failed { .. }) = &err else {
        panic!("{err}")
    };
    assert_eq!(tpm_err.result_code(), TpmResultCode::PolicyFail);
    assert!(f.bridge.device(dev(0x8002)).config_locked);
    assert!(matches!(
        f.bridge
            .seal_config(dev(0x8002), b"new", None)
            .await
            .unwrap_err(),
        BridgeError::PolicyViolation(_)
    ));
    // Other devices stay configurable; an operator unlocks the device.
    f.bridge
        .seal_config(dev(0x8003), b"fine", None)
        .await
        .unwrap();
    f.bridge.unlock_config(dev(0x8002)).await.unwrap();
    f.bridge
        .seal_config(dev(0x8002), b"resealed", None)
        .await
        .unwrap();
    assert_eq!(
        f.bridge.unseal_config(dev(0x8002), None).await.unwrap(),
        b"resealed"
    );
    assert_eq!(
        f.throttle.state().emergency,
        None,
        "critical is not an emergency"
    );
}

#[tokio::test]
async fn emergencies_stop_work_and_info_only_logs() {
    let f = fixture();
    let mut events = f.bus.subscribe();
    let info = f
        .bridge
        .respond_to_intrusion(None, AlertLevel::Info, "port scan")
        .await
        .unwrap();
    assert_eq!(info.actions, vec![IntrusionAction::Log]);
    assert_eq!(f.audit.events().len(), 1);
    assert!(events.try_recv().unwrap().is_none(), "info is not alerted");

    let emergency = f
        .bridge
        .respond_to_intrusion(None, AlertLevel::Emergency, "tamper switch")
        .await
        .unwrap();
    assert!(emergency.actions.contains(&IntrusionAction::Emergency));
    assert_eq!(
        f.throttle.state().emergency.as_deref(),
        Some("tamper switch")
    );
    // Without a device, every device's configuration is locked.
    assert!(f.bridge.devices().iter().all(|d| d.config_locked));
    assert_eq!(f.audit.events().len(), 2);
    assert!(f.audit.verify_chain().is_ok());
}

/// An audit log that refuses every entry, as a full disk would.
struct FailingAudit;

#[async_trait::async_trait]
impl dsmil_core::ports::AuditSink for FailingAudit {
    async fn append(
        &self,
        _event: dsmil_core::monitoring::SecurityEvent,
    ) -> Result<dsmil_core::ports::AuditReceipt, dsmil_core::ports::PortError> {
        Err(dsmil_core::ports::PortError::Unavailable(
            "no space left on device".into(),
        ))
    }
}

/// Many callers on first use of a label get one key: the look-up and the creation are one
/// job (they raced, and late callers failed with "a key named … already exists").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_use_creates_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let tpm = Tpm::open_soft(&dir.path().join("tpm"), TpmOptions::default()).unwrap();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let tpm = tpm.clone();
        callers.spawn(async move {
            let key = tpm
                .ensure_key("shared", dsmil_tpm::KeyTemplate::EccP256Signing)
                .await?;
            let ak = tpm.ensure_attestation_key("shared-ak").await?;
            Ok::<_, TpmError>((key.public, ak.public))
        });
    }
    let mut publics = Vec::new();
    while let Some(joined) = callers.join_next().await {
        publics.push(joined.unwrap().expect("every caller gets the key"));
    }
    assert!(
        publics.windows(2).all(|w| w[0] == w[1]),
        "one key, not many"
    );
    let labels = tpm.keys().await.unwrap().value;
    assert_eq!(labels.len(), 2, "{labels:?}");
}

/// Eight quarantined writes on a fresh data dir, together: eight refusals, eight audit entries
/// (the bridge's event key is created on first use, which raced).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refusals_on_a_fresh_dir_are_all_audited() {
    for _ in 0..5 {
        let f = fixture();
        let shared = Arc::new(f.bridge);
        let device = dev(QUARANTINED_DEVICES[0]);
        let mut writes = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let bridge = shared.clone();
            writes.spawn(async move { bridge.write(device, b"wipe").await });
        }
        while let Some(joined) = writes.join_next().await {
            let err = joined.unwrap().unwrap_err();
            assert!(matches!(err, BridgeError::PolicyViolation(_)), "{err}");
        }
        assert_eq!(f.audit.events().len(), 8);
        assert_eq!(f.io.written_devices(), 0);
    }
}

/// A refusal whose audit entry could not be written is still a refusal, and says it is not
/// recorded.
#[tokio::test]
async fn a_refusal_the_audit_log_refuses_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let tpm = Tpm::open_soft(&dir.path().join("tpm"), TpmOptions::default()).unwrap();
    let io = Arc::new(MemoryDevices::new());
    let bridge = DsmilBridge::open(
        tpm,
        BridgeConfig::new(&dir.path().join("bridge")),
        io.clone(),
    )
    .unwrap()
    .with_audit(Arc::new(FailingAudit));
    let device = dev(QUARANTINED_DEVICES[1]);
    let err = bridge.write(device, b"wipe").await.unwrap_err();
    assert!(
        matches!(err, BridgeError::PolicyViolationUnrecorded { .. }),
        "{err}"
    );
    let chain = dsmil_core::report::chain(&err);
    assert!(chain.contains("quarantined"), "{chain}");
    assert!(chain.contains("could not be recorded"), "{chain}");
    assert!(chain.contains("no space left on device"), "{chain}");
    assert_eq!(io.last_write(device), None);
}
