//! [`Tpm`]: the async face of a backend. One thread owns the backend and serves a bounded
//! queue (a TPM executes one command at a time); every operation gets an operation id, its
//! execution time is measured on that thread and recorded with its result code in the
//! [`PerfMonitor`], and callers wait at most the configured timeout.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::config::TpmBackendSpec;
use crate::values::{Digest, EncryptionScheme, HashAlgorithm, KeyTemplate, PcrSelection};
use dsmil_core::EventBus;
use dsmil_core::ids::OperationId;
use dsmil_core::tpm::{TpmOperation, TpmResultCode};
use dsmil_core::{Signature, SignatureScheme};
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{BackendResult, TpmBackend};
use crate::error::{BackendError, TpmError};
use crate::keystore::KeyStore;
use crate::perf::{PerfMonitor, PerfSnapshot};
use crate::quote::Quote;
use crate::soft::SoftTpm;
use crate::types::{Capabilities, KeyBlob, KeyInfo, KeyPublic, NvSpec, SealPolicy, SealedBlob};

/// How the TPM thread is run.
#[derive(Debug, Clone)]
pub struct TpmOptions {
    /// Operations that may wait for the TPM before callers get `QueueFull`.
    pub queue_depth: usize,
    /// How long a caller waits for one operation (a hardware TPM creates RSA keys in seconds).
    pub timeout: Duration,
    /// Where TPM events are published.
    pub bus: Option<EventBus>,
}

impl Default for TpmOptions {
    fn default() -> Self {
        Self {
            queue_depth: 256,
            timeout: Duration::from_secs(60),
            bus: None,
        }
    }
}

/// A successful operation with its id and the time the TPM spent on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed<T> {
    /// The result.
    pub value: T,
    /// The operation's id (also in traces and events).
    pub operation_id: OperationId,
    /// Always `Success`; kept so callers can log the same fields for both outcomes.
    pub result_code: TpmResultCode,
    /// Time spent executing on the TPM thread (queueing excluded).
    pub execution_time: Duration,
}

/// What the TPM thread owns.
pub struct Worker {
    backend: Box<dyn TpmBackend>,
    keys: KeyStore,
}

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

const PENDING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED: u8 = 2;

struct Inner {
    tx: mpsc::Sender<Job>,
    perf: Arc<PerfMonitor>,
    capabilities: Capabilities,
    options: TpmOptions,
}

/// A TPM 2.0 (software or real), shareable and cheap to clone.
#[derive(Clone)]
pub struct Tpm {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tpm")
            .field("backend", &self.inner.capabilities.backend)
            .field("location", &self.inner.capabilities.location)
            .finish()
    }
}

fn sign_operation(key: &KeyBlob) -> TpmOperation {
    match key.template {
        KeyTemplate::Rsa2048Signing | KeyTemplate::Rsa2048Decryption => TpmOperation::SignRsa2048,
        _ => TpmOperation::SignEcc256,
    }
}

fn default_scheme(key: &KeyBlob) -> BackendResult<SignatureScheme> {
    match key.template {
        KeyTemplate::EccP256Signing => Ok(SignatureScheme::EcdsaP256Sha256),
        KeyTemplate::Rsa2048Signing => Ok(SignatureScheme::RsassaSha256),
        other => Err(BackendError::invalid(format!(
            "a {other:?} key cannot sign"
        ))),
    }
}

fn default_encryption(key: &KeyBlob) -> BackendResult<EncryptionScheme> {
    match key.template {
        KeyTemplate::Aes256 => Ok(EncryptionScheme::Aes256Cfb),
        KeyTemplate::Rsa2048Decryption => Ok(EncryptionScheme::RsaOaepSha256),
        other => Err(BackendError::invalid(format!(
            "a {other:?} key cannot encrypt"
        ))),
    }
}

impl Tpm {
    /// Starts the TPM thread: `factory` creates the backend on that thread (so backends that
    /// cannot move between threads work), keys are kept in `key_dir`.
    pub fn start<F>(factory: F, key_dir: &Path, options: TpmOptions) -> Result<Self, TpmError>
    where
        F: FnOnce() -> BackendResult<Box<dyn TpmBackend>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Job>(options.queue_depth.max(1));
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let key_dir = key_dir.to_owned();
        std::thread::Builder::new()
            .name("dsmil-tpm".into())
            .spawn(move || {
                let started = (|| {
                    let mut backend = factory()?;
                    let caps = backend.capabilities()?;
                    let keys = KeyStore::open(&key_dir, backend.name())?;
                    Ok::<_, BackendError>((Worker { backend, keys }, caps))
                })();
                let mut worker = match started {
                    Ok((worker, caps)) => {
                        let _ = ready_tx.send(Ok(caps));
                        worker
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Some(job) = rx.blocking_recv() {
                    job(&mut worker);
                }
            })
            .map_err(|e| TpmError::Start {
                step: "cannot start the TPM thread",
                source: e.into(),
            })?;
        let capabilities = ready_rx
            .recv()
            .map_err(|_| TpmError::Unavailable("the TPM thread stopped while starting".into()))?
            .map_err(|e| TpmError::Start {
                step: "its backend or key store could not be opened",
                source: e.into(),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                tx,
                perf: Arc::new(PerfMonitor::new(options.bus.clone())),
                capabilities,
                options,
            }),
        })
    }

    /// The software TPM with its state (and keys) in `state_dir`.
    pub fn open_soft(state_dir: &Path, options: TpmOptions) -> Result<Self, TpmError> {
        let dir = state_dir.to_owned();
        Self::start(
            move || Ok(Box::new(SoftTpm::open(&dir)?) as Box<dyn TpmBackend>),
            &state_dir.join("keys"),
            options,
        )
    }

    /// A real TPM or swtpm through tss-esapi at `tcti`, keys in `key_dir`.
    #[cfg(feature = "tss")]
    pub fn open_tss(tcti: &str, key_dir: &Path, options: TpmOptions) -> Result<Self, TpmError> {
        let tcti = tcti.to_owned();
        Self::start(
            move || Ok(Box::new(crate::tss::TssBackend::connect(&tcti)?) as Box<dyn TpmBackend>),
            key_dir,
            options,
        )
    }

    /// The backend `spec` names, with state under `data_dir`: the software TPM in
    /// `data_dir/soft-tpm`, tss keys in `data_dir/tpm-keys`.
    pub fn open(
        spec: &TpmBackendSpec,
        data_dir: &Path,
        options: TpmOptions,
    ) -> Result<Self, TpmError> {
        match spec {
            TpmBackendSpec::Soft => Self::open_soft(&data_dir.join("soft-tpm"), options),
            #[cfg(feature = "tss")]
            TpmBackendSpec::Tss { tcti } => {
                Self::open_tss(tcti, &data_dir.join("tpm-keys"), options)
            }
            #[cfg(not(feature = "tss"))]
            TpmBackendSpec::Tss { .. } => Err(TpmError::Unavailable(
                "this build has no tss backend; rebuild with the `tss` feature (needs libtss2-dev)"
                    .into(),
            )),
        }
    }

    /// What the TPM reported when it started.
    pub fn capabilities(&self) -> &Capabilities {
        &self.inner.capabilities
    }

    /// "soft" or "tss".
    pub fn backend_name(&self) -> &str {
        &self.inner.capabilities.backend
    }

    /// Whether keys live in a hardware TPM.
    pub fn hardware_rooted(&self) -> bool {
        self.inner.capabilities.hardware_rooted
    }

    /// The performance monitor.
    pub fn perf(&self) -> &Arc<PerfMonitor> {
        &self.inner.perf
    }

    /// Counters and latency percentiles.
    pub fn perf_snapshot(&self) -> PerfSnapshot {
        self.inner.perf.snapshot()
    }

    /// Runs `f` on the TPM thread as operation `op` (which `f` may refine, e.g. to the
    /// signing algorithm of the key it loads).
    async fn run<T, F>(&self, op: TpmOperation, f: F) -> Result<Completed<T>, TpmError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Worker, &mut TpmOperation) -> BackendResult<T> + Send + 'static,
    {
        let id = OperationId::next();
        let state = Arc::new(AtomicU8::new(PENDING));
        let (reply_tx, reply_rx) = oneshot::channel();
        let perf = self.inner.perf.clone();
        let job_state = state.clone();
        let job: Job = Box::new(move |worker| {
            let mut op = op;
            let started = Instant::now();
            let result = f(worker, &mut op);
            let elapsed = started.elapsed();
            let rc = match &result {
                Ok(_) => TpmResultCode::Success,
                Err(e) => e.result_code(),
            };
            if job_state
                .compare_exchange(PENDING, DONE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                perf.record(op, rc, elapsed);
            }
            tracing::debug!(operation = ?op, id = %id, result = ?rc, us = elapsed.as_micros() as u64, "tpm operation");
            let _ = reply_tx.send((op, elapsed, result));
        });
        self.inner.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                TpmError::QueueFull(self.inner.options.queue_depth)
            }
            mpsc::error::TrySendError::Closed(_) => {
                TpmError::Unavailable("the TPM thread has stopped".into())
            }
        })?;
        let timeout = self.inner.options.timeout;
        match tokio::time::timeout(timeout, reply_rx).await {
            Ok(Ok((op, elapsed, result))) => result
                .map(|value| Completed {
                    value,
                    operation_id: id,
                    result_code: TpmResultCode::Success,
                    execution_time: elapsed,
                })
                .map_err(|source| TpmError::Failed {
                    operation: op,
                    operation_id: id,
                    source,
                }),
            Ok(Err(_)) => Err(TpmError::Unavailable("the TPM thread stopped".into())),
            Err(_) => {
                if state
                    .compare_exchange(PENDING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.inner.perf.record(op, TpmResultCode::Timeout, timeout);
                }
                Err(TpmError::Timeout {
                    operation: op,
                    operation_id: id,
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                })
            }
        }
    }

    /// Asks the TPM for its capabilities again.
    pub async fn query_capabilities(&self) -> Result<Completed<Capabilities>, TpmError> {
        self.run(TpmOperation::Capabilities, |w, _| w.backend.capabilities())
            .await
    }

    /// Creates a key from `template` and stores it as `label` (an existing label is refused).
    pub async fn create_key(
        &self,
        label: &str,
        template: KeyTemplate,
    ) -> Result<Completed<KeyInfo>, TpmError> {
        let label = label.to_owned();
        self.run(TpmOperation::CreateKey, move |w, _| {
            crate::keystore::validate_label(&label)?;
            if w.keys.contains(&label) {
                return Err(BackendError::KeyExists(label));
            }
            let key = w.backend.create_key(template)?;
            w.keys.insert(&label, key)
        })
        .await
    }

    /// Creates a restricted ECC P-256 attestation key for quotes, stored as `label`.
    pub async fn create_attestation_key(
        &self,
        label: &str,
    ) -> Result<Completed<KeyInfo>, TpmError> {
        let label = label.to_owned();
        self.run(TpmOperation::CreateKey, move |w, _| {
            crate::keystore::validate_label(&label)?;
            if w.keys.contains(&label) {
                return Err(BackendError::KeyExists(label));
            }
            let key = w.backend.create_attestation_key()?;
            w.keys.insert(&label, key)
        })
        .await
    }

    /// The key `label`, creating it from `template` when missing (a stored key of another
    /// template is an error). The look-up and the creation are one job on the TPM thread, so
    /// callers racing on first use all get the one key (counted as a load, or as a creation for
    /// the caller that made it).
    pub async fn ensure_key(
        &self,
        label: &str,
        template: KeyTemplate,
    ) -> Result<KeyInfo, TpmError> {
        let label = label.to_owned();
        let key = self
            .run(TpmOperation::LoadKey, move |w, op| {
                match w.keys.get(&label) {
                    Ok(key) if key.template == template => return Ok(w.keys.info(&label, &key)),
                    Ok(key) => {
                        return Err(BackendError::invalid(format!(
                            "key {label:?} exists as {:?}, not {template:?}",
                            key.template
                        )));
                    }
                    Err(BackendError::UnknownKey(_)) => {}
                    Err(e) => return Err(e),
                }
                *op = TpmOperation::CreateKey;
                let key = w.backend.create_key(template)?;
                w.keys.insert(&label, key)
            })
            .await?;
        Ok(key.value)
    }

    /// The attestation key `label`, creating it when missing, in one job on the TPM thread as
    /// [`Tpm::ensure_key`] does.
    pub async fn ensure_attestation_key(&self, label: &str) -> Result<KeyInfo, TpmError> {
        let label = label.to_owned();
        let key = self
            .run(TpmOperation::LoadKey, move |w, op| {
                match w.keys.get(&label) {
                    Ok(key) => return Ok(w.keys.info(&label, &key)),
                    Err(BackendError::UnknownKey(_)) => {}
                    Err(e) => return Err(e),
                }
                *op = TpmOperation::CreateKey;
                let key = w.backend.create_attestation_key()?;
                w.keys.insert(&label, key)
            })
            .await?;
        Ok(key.value)
    }

    /// The stored key `label`.
    pub async fn key(&self, label: &str) -> Result<Completed<KeyInfo>, TpmError> {
        let label = label.to_owned();
        self.run(TpmOperation::LoadKey, move |w, _| {
            let key = w.keys.get(&label)?;
            Ok(w.keys.info(&label, &key))
        })
        .await
    }

    /// All stored keys.
    pub async fn keys(&self) -> Result<Completed<Vec<KeyInfo>>, TpmError> {
        self.run(TpmOperation::LoadKey, |w, _| w.keys.list()).await
    }

    /// Signs `message` with the key's default scheme (ECDSA P-256 or RSASSA).
    pub async fn sign(
        &self,
        label: &str,
        message: &[u8],
    ) -> Result<Completed<Signature>, TpmError> {
        self.sign_with(label, None, message).await
    }

    /// Signs with an explicit scheme (e.g. RSA-PSS).
    pub async fn sign_with(
        &self,
        label: &str,
        scheme: Option<SignatureScheme>,
        message: &[u8],
    ) -> Result<Completed<Signature>, TpmError> {
        let label = label.to_owned();
        let message = message.to_vec();
        self.run(TpmOperation::SignEcc256, move |w, op| {
            let key = w.keys.get(&label)?;
            *op = sign_operation(&key);
            let scheme = match scheme {
                Some(s) => s,
                None => default_scheme(&key)?,
            };
            let bytes = w.backend.sign(&key, scheme, &message)?;
            Ok(Signature {
                scheme,
                key_name: label,
                bytes,
            })
        })
        .await
    }

    /// Verifies a signature with the stored key `label` (on the TPM for the tss backend).
    pub async fn verify(
        &self,
        label: &str,
        message: &[u8],
        signature: &Signature,
    ) -> Result<Completed<bool>, TpmError> {
        let label = label.to_owned();
        let message = message.to_vec();
        let signature = signature.clone();
        self.run(TpmOperation::Verify, move |w, _| {
            let key = w.keys.get(&label)?;
            w.backend
                .verify(&key, signature.scheme, &message, &signature.bytes)
        })
        .await
    }

    /// Encrypts with the key's scheme (AES-256-CFB → `iv || ciphertext`; RSA-OAEP).
    pub async fn encrypt(
        &self,
        label: &str,
        plaintext: &[u8],
    ) -> Result<Completed<Vec<u8>>, TpmError> {
        self.cipher(label, plaintext, true).await
    }

    /// Decrypts what `encrypt` made with the same key.
    pub async fn decrypt(
        &self,
        label: &str,
        ciphertext: &[u8],
    ) -> Result<Completed<Vec<u8>>, TpmError> {
        self.cipher(label, ciphertext, false).await
    }

    /// Encryption or decryption with the key's scheme, measured as the operation it is.
    async fn cipher(
        &self,
        label: &str,
        input: &[u8],
        encrypt: bool,
    ) -> Result<Completed<Vec<u8>>, TpmError> {
        let label = label.to_owned();
        let input = input.to_vec();
        let aes_op = if encrypt {
            TpmOperation::EncryptAes256
        } else {
            TpmOperation::DecryptAes256
        };
        self.run(aes_op, move |w, op| {
            let key = w.keys.get(&label)?;
            let scheme = default_encryption(&key)?;
            if scheme == EncryptionScheme::RsaOaepSha256 {
                *op = if encrypt {
                    TpmOperation::EncryptRsa
                } else {
                    TpmOperation::DecryptRsa
                };
            }
            if encrypt {
                w.backend.encrypt(&key, scheme, &input)
            } else {
                w.backend.decrypt(&key, scheme, &input)
            }
        })
        .await
    }

    /// Seals up to 128 bytes under `policy`.
    pub async fn seal(
        &self,
        data: &[u8],
        policy: SealPolicy,
    ) -> Result<Completed<SealedBlob>, TpmError> {
        let data = data.to_vec();
        self.run(TpmOperation::Seal, move |w, _| {
            w.backend.seal(&data, &policy)
        })
        .await
    }

    /// Unseals a blob this TPM sealed.
    pub async fn unseal(
        &self,
        blob: &SealedBlob,
        password: Option<&[u8]>,
    ) -> Result<Completed<Vec<u8>>, TpmError> {
        let blob = blob.clone();
        let password = password.map(<[u8]>::to_vec);
        self.run(TpmOperation::Unseal, move |w, _| {
            w.backend.unseal(&blob, password.as_deref())
        })
        .await
    }

    /// Extends PCR `index` with `digest`.
    pub async fn pcr_extend(&self, index: u8, digest: Digest) -> Result<Completed<()>, TpmError> {
        self.run(TpmOperation::PcrExtend, move |w, _| {
            w.backend.pcr_extend(index, &digest)
        })
        .await
    }

    /// Extends PCR `index` (SHA-256 bank) with the SHA-256 of `data` — how measurements are
    /// usually recorded.
    pub async fn pcr_extend_data(&self, index: u8, data: &[u8]) -> Result<Completed<()>, TpmError> {
        let measured = Sha256::digest(data).to_vec();
        self.run(TpmOperation::PcrExtend, move |w, _| {
            let digest = Digest::new(HashAlgorithm::Sha256, measured).map_err(|e| {
                BackendError::invalid_caused("the measurement is no SHA-256 digest", e)
            })?;
            w.backend.pcr_extend(index, &digest)
        })
        .await
    }

    /// Reads the selected PCRs.
    pub async fn pcr_read(
        &self,
        selection: &PcrSelection,
    ) -> Result<Completed<Vec<(u8, Digest)>>, TpmError> {
        let selection = selection.clone();
        self.run(TpmOperation::PcrRead, move |w, _| {
            w.backend.pcr_read(&selection)
        })
        .await
    }

    /// Quotes `selection` with the attestation key `ak_label`, binding `nonce` (≤ 64 bytes).
    pub async fn quote(
        &self,
        ak_label: &str,
        selection: &PcrSelection,
        nonce: &[u8],
    ) -> Result<Completed<Quote>, TpmError> {
        let label = ak_label.to_owned();
        let selection = selection.clone();
        let nonce = nonce.to_vec();
        self.run(TpmOperation::Quote, move |w, _| {
            let key = w.keys.get(&label)?;
            w.backend.quote(&key, &selection, &nonce)
        })
        .await
    }

    /// Defines an NV index.
    pub async fn nv_define(&self, spec: NvSpec) -> Result<Completed<()>, TpmError> {
        self.run(TpmOperation::NvDefine, move |w, _| {
            spec.validate().map_err(BackendError::invalid)?;
            w.backend.nv_define(&spec)
        })
        .await
    }

    /// Writes `data` at `offset` (owner authorisation when `auth` is `None`).
    pub async fn nv_write(
        &self,
        index: u32,
        offset: u16,
        data: &[u8],
        auth: Option<&[u8]>,
    ) -> Result<Completed<()>, TpmError> {
        let data = data.to_vec();
        let auth = auth.map(<[u8]>::to_vec);
        self.run(TpmOperation::NvWrite, move |w, _| {
            w.backend.nv_write(index, offset, &data, auth.as_deref())
        })
        .await
    }

    /// Reads `len` bytes at `offset`.
    pub async fn nv_read(
        &self,
        index: u32,
        offset: u16,
        len: u16,
        auth: Option<&[u8]>,
    ) -> Result<Completed<Vec<u8>>, TpmError> {
        let auth = auth.map(<[u8]>::to_vec);
        self.run(TpmOperation::NvRead, move |w, _| {
            w.backend.nv_read(index, offset, len, auth.as_deref())
        })
        .await
    }

    /// Deletes an NV index.
    pub async fn nv_undefine(&self, index: u32) -> Result<Completed<()>, TpmError> {
        self.run(TpmOperation::NvDefine, move |w, _| {
            w.backend.nv_undefine(index)
        })
        .await
    }

    /// `len` random bytes from the TPM (any length; the backend loops over the TPM's 32-byte
    /// limit). At most 1 MiB per call.
    pub async fn get_random(&self, len: usize) -> Result<Completed<Vec<u8>>, TpmError> {
        self.run(TpmOperation::GetRandom, move |w, _| {
            if len > 1 << 20 {
                return Err(BackendError::invalid(format!(
                    "{len} random bytes asked; at most 1 MiB per call"
                )));
            }
            w.backend.get_random(len)
        })
        .await
    }

    /// The public half of key `label`.
    pub async fn public_key(&self, label: &str) -> Result<KeyPublic, TpmError> {
        Ok(self.key(label).await?.value.public)
    }
}
