//! The DSMIL device bridge (seed `dsmil_tpm_bridge`): a registry of devices 0x8000–0x806B,
//! device attestation, per-device keys, device configuration sealed under an access policy,
//! signed security events and intrusion responses. Quarantined devices (0x8009, 0x800A,
//! 0x800B, 0x8019, 0x8029) are never written or configured: every such attempt is refused
//! with a policy violation, published, and audited.
//!
//! Nothing here blocks an async caller: the registry's reads never wait for its writes, and
//! file I/O and device writes run on the blocking pool.

mod attestation;
mod intrusion;
mod registry;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::values::{HashAlgorithm, KeyTemplate, PcrSelection};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use chrono::Utc;
use dsmil_core::device::DeviceId;
use dsmil_core::events::DeviceEvent;
use dsmil_core::monitoring::{AlertLevel, SecurityEvent};
use dsmil_core::ports::{AuditSink, PortError, Throttle};
use dsmil_core::{Event, EventBus};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

pub use attestation::{AttestationError, DeviceAttestation, qualifying_data};
pub use intrusion::{IntrusionAction, IntrusionPolicy};
pub use registry::DeviceRecord;

use crate::error::{Cause, TpmError};
use crate::tpm::Tpm;
use crate::types::{KeyInfo, KeyPublic, SealPolicy, SealedBlob};

/// Where device writes go. DSMIL hardware is reached through a platform driver this crate
/// does not ship; embedders implement this for theirs. [`MemoryDevices`] keeps the last
/// written bytes per device (tests, simulation). The bridge calls it on the blocking pool, so
/// a write may block.
pub trait DeviceIo: Send + Sync {
    /// Writes `data` to `device`; the error (the driver's own, or a message turned into one
    /// with `.into()`) becomes the source of [`BridgeError::Device`].
    fn write(&self, device: DeviceId, data: &[u8]) -> Result<(), Cause>;
}

/// Device I/O kept in memory: the last bytes written to each device.
#[derive(Debug, Default)]
pub struct MemoryDevices {
    written: Mutex<std::collections::BTreeMap<DeviceId, Vec<u8>>>,
}

impl MemoryDevices {
    /// Nothing written yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last bytes written to `device`.
    pub fn last_write(&self, device: DeviceId) -> Option<Vec<u8>> {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&device)
            .cloned()
    }

    /// How many devices were ever written.
    pub fn written_devices(&self) -> usize {
        self.written.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl DeviceIo for MemoryDevices {
    fn write(&self, device: DeviceId, data: &[u8]) -> Result<(), Cause> {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(device, data.to_vec());
        Ok(())
    }
}

/// Bridge settings.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Directory for the registry and sealed configurations.
    pub dir: PathBuf,
    /// The PCR intrusions extend and device configurations are sealed to (default 15: not
    /// resettable before reboot, unused by firmware).
    pub intrusion_pcr: u8,
    /// The PCRs quoted in attestations (default 0–7 and the intrusion PCR).
    pub attestation_pcrs: Vec<u32>,
    /// What to do per intrusion level.
    pub policy: IntrusionPolicy,
    /// Label of the attestation key.
    pub ak_label: String,
    /// Label of the key that signs security events.
    pub event_key_label: String,
}

impl BridgeConfig {
    /// Defaults with state in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            intrusion_pcr: 15,
            attestation_pcrs: vec![0, 1, 2, 3, 4, 5, 6, 7, 15],
            policy: IntrusionPolicy::default(),
            ak_label: "dsmil-ak".into(),
            event_key_label: "dsmil-bridge".into(),
        }
    }
}

/// Why a bridge operation failed.
#[derive(Debug, Error)]
pub enum BridgeError {
    /// DSMIL policy refused it (quarantined device, locked configuration).
    #[error("policy violation: {0}")]
    PolicyViolation(String),
    /// DSMIL policy refused it, and recording the refusal as a security event failed: the
    /// operation did not happen, but no audit entry says so.
    #[error("policy violation: {refusal}; the refusal could not be recorded in the audit log")]
    PolicyViolationUnrecorded {
        /// Why the operation was refused.
        refusal: String,
        /// Why recording the refusal failed.
        #[source]
        source: Box<BridgeError>,
    },
    /// The TPM failed.
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// The device has no key or configuration yet.
    #[error("{0}")]
    NotFound(String),
    /// The device driver failed.
    #[error("device {device} write failed")]
    Device {
        /// The device.
        device: DeviceId,
        /// The driver's error.
        #[source]
        source: Cause,
    },
    /// Reading or writing the bridge's files (or sealing and opening their contents) failed.
    #[error("{detail}")]
    Storage {
        /// What failed, naming the file.
        detail: String,
        /// The I/O, JSON, crypto or join error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// A [`BridgeConfig`] setting is out of range.
    #[error("invalid bridge configuration: {detail}")]
    Config {
        /// Which setting, and what was expected.
        detail: String,
        /// The value's own error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// Appending a security event to the audit log failed (the event was signed and, when
    /// alerting, published).
    #[error("cannot append the security event to the audit log")]
    Audit(#[source] PortError),
}

/// A device configuration sealed under the access policy: a data key sealed by the TPM (to
/// the intrusion PCR and an optional password) and the configuration encrypted with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SealedConfig {
    device: DeviceId,
    key: SealedBlob,
    #[serde(with = "dsmil_core::hex::serde_bytes")]
    ciphertext: Vec<u8>,
}

/// What an intrusion response did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntrusionResponse {
    /// The steps taken, in order.
    pub actions: Vec<IntrusionAction>,
    /// The signed event recorded.
    pub event: SecurityEvent,
}

/// The DSMIL–TPM bridge.
pub struct DsmilBridge {
    tpm: Tpm,
    config: BridgeConfig,
    registry: registry::Registry,
    io: Arc<dyn DeviceIo>,
    audit: Option<Arc<dyn AuditSink>>,
    bus: Option<EventBus>,
    throttle: Option<Arc<dyn Throttle>>,
}

impl std::fmt::Debug for DsmilBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DsmilBridge")
            .field("dir", &self.config.dir)
            .finish()
    }
}

/// A storage failure: `detail` names what failed, `source` says why.
fn storage(detail: impl Into<String>, source: impl Into<Cause>) -> BridgeError {
    BridgeError::Storage {
        detail: detail.into(),
        source: Some(source.into()),
    }
}

/// The PCR selection of `pcrs` in the SHA-256 bank, or which setting is out of range.
fn selection(
    setting: &str,
    pcrs: impl IntoIterator<Item = u32>,
) -> Result<PcrSelection, BridgeError> {
    PcrSelection::new(HashAlgorithm::Sha256, pcrs).map_err(|e| BridgeError::Config {
        detail: format!("{setting} is not a PCR selection"),
        source: Some(e.into()),
    })
}

/// Runs blocking file I/O on the blocking pool, naming `what` if the task does not finish.
async fn blocking<T: Send + 'static>(
    what: String,
    f: impl FnOnce() -> Result<T, BridgeError> + Send + 'static,
) -> Result<T, BridgeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| storage(format!("{what} did not finish"), e))?
}

impl DsmilBridge {
    /// Opens the bridge (registry in `config.dir`) on `tpm`, writing devices through `io`.
    pub fn open(
        tpm: Tpm,
        config: BridgeConfig,
        io: Arc<dyn DeviceIo>,
    ) -> Result<Self, BridgeError> {
        for dir in [config.dir.clone(), config.dir.join("configs")] {
            crate::soft::files::ensure_dir(&dir)
                .map_err(|e| storage(format!("cannot create {}", dir.display()), e))?;
        }
        if config.intrusion_pcr >= crate::values::PCR_COUNT {
            return Err(BridgeError::Config {
                detail: format!(
                    "intrusion PCR {} is out of range; PCRs are numbered 0-23",
                    config.intrusion_pcr
                ),
                source: None,
            });
        }
        let registry = registry::Registry::open(&config.dir.join("registry.json"))?;
        Ok(Self {
            tpm,
            config,
            registry,
            io,
            audit: None,
            bus: None,
            throttle: None,
        })
    }

    /// Appends security events to `audit`.
    pub fn with_audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Publishes device and security events on `bus`.
    pub fn with_bus(mut self, bus: EventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Stops work through `throttle` on emergencies.
    pub fn with_throttle(mut self, throttle: Arc<dyn Throttle>) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// The record of every device, in id order (never waits for a registry write).
    pub fn devices(&self) -> Vec<DeviceRecord> {
        self.registry.all()
    }

    /// One device's record (never waits for a registry write).
    pub fn device(&self, device: DeviceId) -> DeviceRecord {
        self.registry.record(device)
    }

    fn publish_device(&self, device: DeviceId, action: &str, allowed: bool) {
        if let Some(bus) = &self.bus {
            bus.publish(Event::Device(DeviceEvent {
                timestamp: Utc::now(),
                device,
                action: action.to_owned(),
                allowed,
            }));
        }
    }

    /// Signs `event` with the bridge key (canonical JSON without the signature field),
    /// publishes it and appends it to the audit log.
    pub async fn record_security_event(
        &self,
        event: SecurityEvent,
    ) -> Result<SecurityEvent, BridgeError> {
        self.record_with(event, self.audit.clone(), self.bus.clone())
            .await
    }

    /// The public key that verifies security-event signatures.
    pub async fn event_key(&self) -> Result<KeyPublic, BridgeError> {
        Ok(self
            .tpm
            .ensure_key(&self.config.event_key_label, KeyTemplate::EccP256Signing)
            .await?
            .public)
    }

    /// Refuses writes and configuration of quarantined devices: a policy violation,
    /// published and audited as a critical security event.
    async fn check_writable(&self, device: DeviceId, action: &str) -> Result<(), BridgeError> {
        if let Err(e) = device.check_writable() {
            self.publish_device(device, action, false);
            let mut event = SecurityEvent::new(
                "quarantine_violation",
                AlertLevel::Critical,
                "dsmil-bridge",
                format!("{action} on quarantined device {device} refused"),
            );
            event.affected_resources = vec![device.to_string()];
            event.response_actions = vec!["refused".into()];
            // The refusal stands even if recording it fails, and then says so.
            if let Err(record_err) = self.record_security_event(event).await {
                tracing::error!(%device, error = %record_err, "could not record a quarantine violation");
                return Err(BridgeError::PolicyViolationUnrecorded {
                    refusal: e.to_string(),
                    source: Box::new(record_err),
                });
            }
            return Err(BridgeError::PolicyViolation(e.to_string()));
        }
        Ok(())
    }

    async fn check_unlocked(&self, device: DeviceId, action: &str) -> Result<(), BridgeError> {
        if self.registry.record(device).config_locked {
            self.publish_device(device, action, false);
            return Err(BridgeError::PolicyViolation(format!(
                "configuration of device {device} is locked after an intrusion response; unlock it first"
            )));
        }
        Ok(())
    }

    /// Writes `data` to a device through the driver, on the blocking pool (refused for
    /// quarantined devices).
    pub async fn write(&self, device: DeviceId, data: &[u8]) -> Result<(), BridgeError> {
        self.check_writable(device, "write").await?;
        let (io, data) = (Arc::clone(&self.io), data.to_vec());
        blocking(format!("the write to device {device}"), move || {
            io.write(device, &data)
                .map_err(|source| BridgeError::Device { device, source })
        })
        .await?;
        self.publish_device(device, "write", true);
        Ok(())
    }

    /// Provisions a device key (ECC P-256, label `device-8000`…) and records the mapping.
    /// Provisioning again returns the existing key.
    pub async fn provision_key(&self, device: DeviceId) -> Result<KeyInfo, BridgeError> {
        self.check_writable(device, "provision_key").await?;
        self.check_unlocked(device, "provision_key").await?;
        let label = format!("device-{:04x}", device.get());
        let key = self
            .tpm
            .ensure_key(&label, KeyTemplate::EccP256Signing)
            .await?;
        self.registry.set_key(device, &label).await?;
        self.publish_device(device, "provision_key", true);
        Ok(key)
    }

    /// Signs `message` with the device's provisioned key.
    pub async fn sign_for_device(
        &self,
        device: DeviceId,
        message: &[u8],
    ) -> Result<dsmil_core::Signature, BridgeError> {
        let label = self.registry.record(device).key_label.ok_or_else(|| {
            BridgeError::NotFound(format!("device {device} has no provisioned key"))
        })?;
        Ok(self.tpm.sign(&label, message).await?.value)
    }

    fn config_path(&self, device: DeviceId) -> PathBuf {
        self.config
            .dir
            .join("configs")
            .join(format!("{:04x}.json", device.get()))
    }

    /// Seals a device's configuration: only this TPM, while the intrusion PCR is unchanged
    /// (and with `password`, when given), can open it.
    pub async fn seal_config(
        &self,
        device: DeviceId,
        config: &[u8],
        password: Option<&[u8]>,
    ) -> Result<(), BridgeError> {
        self.check_writable(device, "seal_config").await?;
        self.check_unlocked(device, "seal_config").await?;
        let data_key = self.tpm.get_random(32).await?.value;
        let policy = SealPolicy {
            pcrs: Some(selection(
                "intrusion_pcr",
                [u32::from(self.config.intrusion_pcr)],
            )?),
            password: password.map(<[u8]>::to_vec),
        };
        let key = self.tpm.seal(&data_key, policy).await?.value;
        let ciphertext = aead(&data_key, device, config, true)?;
        let sealed = SealedConfig {
            device,
            key,
            ciphertext,
        };
        let bytes = serde_json::to_vec_pretty(&sealed)
            .map_err(|e| storage("cannot encode a sealed configuration", e))?;
        let path = self.config_path(device);
        blocking(format!("writing {}", path.display()), move || {
            crate::soft::files::write_atomic(&path, &bytes)
                .map_err(|e| storage("cannot write a sealed configuration", e))
        })
        .await?;
        self.registry.set_config_sealed(device, true).await?;
        self.publish_device(device, "seal_config", true);
        Ok(())
    }

    /// Opens a sealed configuration (fails with the TPM's policy error after an intrusion
    /// extended the PCR).
    pub async fn unseal_config(
        &self,
        device: DeviceId,
        password: Option<&[u8]>,
    ) -> Result<Vec<u8>, BridgeError> {
        let path = self.config_path(device);
        let file = path.clone();
        let bytes = blocking(format!("reading {}", path.display()), move || {
            std::fs::read(&file).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    BridgeError::NotFound(format!("device {device} has no sealed configuration"))
                } else {
                    storage(format!("cannot read {}", file.display()), e)
                }
            })
        })
        .await?;
        let sealed: SealedConfig = serde_json::from_slice(&bytes).map_err(|e| {
            storage(
                format!("{} is not a sealed configuration", path.display()),
                e,
            )
        })?;
        if sealed.device != device {
            return Err(BridgeError::Storage {
                detail: format!("{} belongs to device {}", path.display(), sealed.device),
                source: None,
            });
        }
        let data_key = self.tpm.unseal(&sealed.key, password).await?.value;
        let plain = aead(&data_key, device, &sealed.ciphertext, false)?;
        self.publish_device(device, "unseal_config", true);
        Ok(plain)
    }

    /// Attests a device: quotes the attestation PCRs with qualifying data binding the device,
    /// the SHA-256 of `reported_state` and `nonce`.
    pub async fn attest(
        &self,
        device: DeviceId,
        reported_state: &[u8],
        nonce: &[u8],
    ) -> Result<DeviceAttestation, BridgeError> {
        self.tpm
            .ensure_attestation_key(&self.config.ak_label)
            .await?;
        let state_digest: [u8; 32] = Sha256::digest(reported_state).into();
        let selection = selection(
            "attestation_pcrs",
            self.config.attestation_pcrs.iter().copied(),
        )?;
        let qd = qualifying_data(device, &state_digest, nonce);
        let quote = self
            .tpm
            .quote(&self.config.ak_label, &selection, &qd)
            .await?
            .value;
        self.publish_device(device, "attest", true);
        Ok(DeviceAttestation {
            device,
            state_digest: state_digest.to_vec(),
            nonce: nonce.to_vec(),
            quote,
        })
    }

    /// The attestation key verifiers should trust.
    pub async fn attestation_key(&self) -> Result<KeyPublic, BridgeError> {
        Ok(self
            .tpm
            .ensure_attestation_key(&self.config.ak_label)
            .await?
            .public)
    }

    /// Lifts a configuration lock (an operator decision after an intrusion was handled).
    pub async fn unlock_config(&self, device: DeviceId) -> Result<(), BridgeError> {
        self.check_writable(device, "unlock_config").await?;
        self.registry.set_locked(Some(device), false).await?;
        let mut event = SecurityEvent::new(
            "configuration_unlocked",
            AlertLevel::Warning,
            "dsmil-bridge",
            format!("configuration of device {device} unlocked"),
        );
        event.affected_resources = vec![device.to_string()];
        self.record_security_event(event).await?;
        Ok(())
    }

    /// Runs the intrusion policy for `level`: log, alert, lock configuration (of `device`, or
    /// of every device), extend the intrusion PCR, emergency stop.
    pub async fn respond_to_intrusion(
        &self,
        device: Option<DeviceId>,
        level: AlertLevel,
        description: &str,
    ) -> Result<IntrusionResponse, BridgeError> {
        let actions = self.config.policy.for_level(level).to_vec();
        let mut event =
            SecurityEvent::new("intrusion_detected", level, "dsmil-bridge", description);
        event.affected_resources = device.map(|d| vec![d.to_string()]).unwrap_or_default();
        for action in &actions {
            match action {
                IntrusionAction::Log | IntrusionAction::Alert => {}
                IntrusionAction::LockConfiguration => {
                    self.registry.set_locked(device, true).await?;
                }
                IntrusionAction::ExtendPcr => {
                    let measurement = serde_json::to_vec(&event)
                        .map_err(|e| storage("cannot encode the intrusion event", e))?;
                    self.tpm
                        .pcr_extend_data(self.config.intrusion_pcr, &measurement)
                        .await?;
                }
                IntrusionAction::Emergency => {
                    if let Some(t) = &self.throttle {
                        t.emergency_stop(description);
                    }
                }
            }
            event.response_actions.push(
                serde_json::to_value(action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            );
        }
        let logged = actions.contains(&IntrusionAction::Log);
        let alerted = actions.contains(&IntrusionAction::Alert);
        let event = if logged || alerted {
            let audit = if logged { self.audit.clone() } else { None };
            let bus = if alerted { self.bus.clone() } else { None };
            self.record_with(event, audit, bus).await?
        } else {
            event
        };
        Ok(IntrusionResponse { actions, event })
    }

    async fn record_with(
        &self,
        mut event: SecurityEvent,
        audit: Option<Arc<dyn AuditSink>>,
        bus: Option<EventBus>,
    ) -> Result<SecurityEvent, BridgeError> {
        event.tpm_signature = None;
        let message = serde_json::to_vec(&event)
            .map_err(|e| storage("cannot encode the security event", e))?;
        self.tpm
            .ensure_key(&self.config.event_key_label, KeyTemplate::EccP256Signing)
            .await?;
        let sig = self
            .tpm
            .sign(&self.config.event_key_label, &message)
            .await?
            .value;
        event.tpm_signature = Some(dsmil_core::hex::encode(&sig.bytes));
        if let Some(bus) = bus {
            bus.publish(Event::Security(event.clone()));
        }
        if let Some(audit) = audit {
            audit
                .append(event.clone())
                .await
                .map_err(BridgeError::Audit)?;
        }
        Ok(event)
    }
}

/// Checks a security event's signature with the bridge's event key.
pub fn verify_event_signature(event: &SecurityEvent, event_key: &KeyPublic) -> bool {
    let (Some(sig_hex), Some(point)) = (&event.tpm_signature, event_key.ecc_point()) else {
        return false;
    };
    let Ok(sig) = dsmil_core::hex::decode(sig_hex) else {
        return false;
    };
    let mut unsigned = event.clone();
    unsigned.tpm_signature = None;
    let Ok(message) = serde_json::to_vec(&unsigned) else {
        return false;
    };
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        point,
    )
    .verify(&message, &sig)
    .is_ok()
}

/// AES-256-GCM with the device id as associated data: `nonce || ciphertext || tag`.
fn aead(key: &[u8], device: DeviceId, data: &[u8], encrypt: bool) -> Result<Vec<u8>, BridgeError> {
    let key = UnboundKey::new(&AES_256_GCM, key)
        .map_err(|e| storage("the sealed data key is no AES-256 key", e))?;
    let key = LessSafeKey::new(key);
    let aad = device.get().to_be_bytes();
    if encrypt {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|e| storage("the system RNG failed", e))?;
        let mut buf = data.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|e| storage("encrypting the configuration failed", e))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    } else {
        if data.len() < NONCE_LEN + 16 {
            return Err(BridgeError::Storage {
                detail: "sealed configuration is truncated".into(),
                source: None,
            });
        }
        let (nonce, body) = data.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|e| storage("the sealed configuration's nonce", e))?;
        let mut buf = body.to_vec();
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|e| {
                storage(
                    "sealed configuration was altered or belongs to another device",
                    e,
                )
            })?;
        Ok(plain.to_vec())
    }
}
