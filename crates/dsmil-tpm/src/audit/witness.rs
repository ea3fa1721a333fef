//! The audit log as its witnesses see it: core's [`TreeHeadSource`] over an [`AuditLog`]
//! (signed tree heads carrying the signer's public key as PEM, and consistency proofs), and
//! core's [`HeadVerifier`] for P-256 heads — what another node needs to check this node's log
//! without trusting it.

use std::sync::Arc;

use async_trait::async_trait;
use dsmil_core::ports::{
    ConsistencyProof, HeadVerifier, PortError, SignatureScheme, SignedTreeHead, TreeHeadSource,
    Verifier as _,
};
use tokio::sync::watch;

use super::AuditLog;
use super::record::checkpoint_message;
use crate::der::{SpkiKey, ecc_p256_spki, pem, pem_decode, spki_key};
use crate::soft_key::P256Verifier;

/// An audit log whose heads name their signer's public key.
pub struct WitnessedLog {
    log: Arc<AuditLog>,
    public_key: String,
    heads: watch::Sender<Option<SignedTreeHead>>,
    forward: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for WitnessedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessedLog")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl Drop for WitnessedLog {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

impl WitnessedLog {
    /// `log`, whose checkpoints are signed by the P-256 key with uncompressed SEC1 point
    /// `point`. Starts forwarding its heads (on the current tokio runtime).
    pub fn new(log: Arc<AuditLog>, point: &[u8]) -> Self {
        let public_key = pem("PUBLIC KEY", &ecc_p256_spki(point));
        let with_key = |h: Option<SignedTreeHead>| {
            h.map(|mut h| {
                h.public_key.clone_from(&public_key);
                h
            })
        };
        let mut source = log.watch_heads();
        let (heads, _) = watch::channel(with_key(source.borrow_and_update().clone()));
        let sender = heads.clone();
        let key = public_key.clone();
        let forward = tokio::spawn(async move {
            while source.changed().await.is_ok() {
                let head = source.borrow_and_update().clone().map(|mut h| {
                    h.public_key.clone_from(&key);
                    h
                });
                sender.send_replace(head);
            }
        });
        Self {
            log,
            public_key,
            heads,
            forward,
        }
    }

    /// The signer's public key, PEM.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }
}

#[async_trait]
impl TreeHeadSource for WitnessedLog {
    fn latest_head(&self) -> Option<SignedTreeHead> {
        self.heads.borrow().clone()
    }

    fn watch_heads(&self) -> watch::Receiver<Option<SignedTreeHead>> {
        self.heads.subscribe()
    }

    async fn consistency(&self, from: u64, to: u64) -> Result<ConsistencyProof, PortError> {
        let signed = self.log.signed();
        if from > to || to > signed {
            return Err(PortError::InvalidInput(format!(
                "no consistency proof from {from} to {to} entries: expected from ≤ to ≤ {signed} (the latest signed tree head)"
            )));
        }
        self.log
            .consistency(from, to)
            .await
            .map_err(|e| PortError::Backend(crate::error::chain(&e)))?
            .ok_or_else(|| {
                PortError::InvalidInput(format!("no consistency proof from {from} to {to} entries"))
            })
    }
}

/// Checks P-256 signed tree heads by the key they carry (the witness separately decides
/// whether that key is the node's).
#[derive(Debug, Default, Clone, Copy)]
pub struct P256HeadVerifier;

#[async_trait]
impl HeadVerifier for P256HeadVerifier {
    async fn verify_head(&self, head: &SignedTreeHead) -> Result<bool, PortError> {
        if head.signature.scheme != SignatureScheme::EcdsaP256Sha256 {
            return Err(PortError::InvalidInput(format!(
                "a {:?} head cannot be checked by a peer",
                head.signature.scheme
            )));
        }
        let point = pem_decode("PUBLIC KEY", &head.public_key)
            .and_then(|der| spki_key(&der))
            .and_then(|key| match key {
                SpkiKey::EccP256(point) => Some(point),
                SpkiKey::Rsa(_) => None,
            })
            .ok_or_else(|| {
                PortError::InvalidInput("the head's public_key is not a P-256 PEM key".into())
            })?;
        let message = checkpoint_message(
            head.previous_size,
            head.tree_size,
            &head.root,
            &head.time,
            &head.signature.key_name,
        );
        P256Verifier::new(point)
            .verify(&message, &head.signature)
            .await
    }
}
