//! Witnessing ports: what a node's audit log shows its peers (signed tree heads and RFC 9162
//! consistency proofs between them) and how a peer checks a head's signature. Provided by the
//! TPM layer; the cluster's witnesses use them (the Certificate Transparency witness model).
//!
//! A witness keeps the last head it saw from each node. When a node publishes a new head, the
//! witness asks it for a consistency proof from the old size to the new one and checks it with
//! [`crate::merkle::verify_consistency`]: a log that was cut back or forked cannot produce one.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::ToSchema;

use super::PortError;
use super::signing::Signature;
use crate::merkle::Hash;

/// A signed tree head of an audit log: the first `tree_size` entries have Merkle root `root`,
/// signed at `time` by the node's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignedTreeHead {
    /// Entries the previous head covered (0 for the first).
    pub previous_size: u64,
    /// Entries covered.
    pub tree_size: u64,
    /// RFC 9162 Merkle root over their leaves.
    #[serde(with = "hash_hex")]
    #[schema(value_type = String, pattern = "^[0-9a-f]{64}$")]
    pub root: Hash,
    /// When it was signed.
    pub time: DateTime<Utc>,
    /// The signature over the head (its message is the provider's to define and check).
    #[schema(value_type = Object)]
    pub signature: Signature,
    /// The public key that verifies `signature`: PEM (SubjectPublicKeyInfo) for asymmetric
    /// keys, empty for HMAC keys (which a peer cannot check).
    pub public_key: String,
}

/// An RFC 9162 consistency proof: the tree of `from_size` entries with root `from_root` is a
/// prefix of the tree of `to_size` entries with root `to_root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProof {
    /// The older size.
    pub from_size: u64,
    /// The newer size.
    pub to_size: u64,
    /// Root of the first `from_size` entries.
    #[serde(with = "hash_hex")]
    #[schema(value_type = String, pattern = "^[0-9a-f]{64}$")]
    pub from_root: Hash,
    /// Root of the first `to_size` entries.
    #[serde(with = "hash_hex")]
    #[schema(value_type = String, pattern = "^[0-9a-f]{64}$")]
    pub to_root: Hash,
    /// The proof's node hashes, in the order of RFC 9162 §2.1.4.
    #[serde(with = "hashes_hex")]
    #[schema(value_type = Vec<String>)]
    pub proof: Vec<Hash>,
}

impl ConsistencyProof {
    /// Checks the proof against its own sizes and roots (a caller compares the roots with the
    /// heads it trusts).
    pub fn verify(&self) -> bool {
        crate::merkle::verify_consistency(
            self.from_size,
            self.to_size,
            &self.from_root,
            &self.to_root,
            &self.proof,
        )
    }
}

/// What a node's audit log shows its witnesses.
#[async_trait]
pub trait TreeHeadSource: Send + Sync {
    /// The latest signed tree head, if the log has signed one.
    fn latest_head(&self) -> Option<SignedTreeHead>;

    /// Told of every new signed tree head (the value is the latest one).
    fn watch_heads(&self) -> watch::Receiver<Option<SignedTreeHead>>;

    /// The consistency proof between the trees of `from` and `to` entries (`from ≤ to ≤`
    /// the latest signed size); `InvalidInput` names the bound that was broken.
    async fn consistency(&self, from: u64, to: u64) -> Result<ConsistencyProof, PortError>;
}

/// Checks another node's signed tree head.
#[async_trait]
pub trait HeadVerifier: Send + Sync {
    /// `Ok(true)` when `head.signature` is a valid signature of `head` by `head.public_key`,
    /// `Ok(false)` when it is not, `Err` when the check cannot be made (an HMAC head, a key
    /// or scheme the provider cannot read).
    async fn verify_head(&self, head: &SignedTreeHead) -> Result<bool, PortError>;
}

/// Serde for one hash as 64 lower-case hex digits.
mod hash_hex {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::merkle::Hash;

    pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::hex::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(D::Error::custom)
    }

    pub fn parse(text: &str) -> Result<Hash, String> {
        if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("{text:?} is not 64 lower-case hex digits"));
        }
        crate::hex::decode(text)
            .map_err(|e| e.to_string())?
            .try_into()
            .map_err(|_| format!("{text:?} is not 32 bytes"))
    }
}

/// Serde for a list of hashes, each as 64 lower-case hex digits.
mod hashes_hex {
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::merkle::Hash;

    pub fn serialize<S: Serializer>(hs: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(hs.len()))?;
        for h in hs {
            seq.serialize_element(&crate::hex::encode(h))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| super::hash_hex::parse(t).map_err(D::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SignatureScheme;

    #[test]
    fn heads_round_trip_with_hex_roots_and_bad_hex_is_refused() {
        let head = SignedTreeHead {
            previous_size: 0,
            tree_size: 3,
            root: [7; 32],
            time: Utc::now(),
            signature: Signature {
                scheme: SignatureScheme::EcdsaP256Sha256,
                key_name: "k".into(),
                bytes: vec![1, 2],
            },
            public_key: String::new(),
        };
        let json = serde_json::to_value(&head).unwrap();
        assert_eq!(json["root"], "07".repeat(32));
        assert_eq!(
            serde_json::from_value::<SignedTreeHead>(json.clone()).unwrap(),
            head
        );
        let mut bad = json;
        bad["root"] = serde_json::json!("0A".repeat(32));
        assert!(serde_json::from_value::<SignedTreeHead>(bad).is_err());
    }
}
