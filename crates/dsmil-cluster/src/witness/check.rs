//! What a witness concludes from a node's new signed tree head, given the last head of that
//! node it accepted: nothing new, a head to check by a consistency proof, or a log that was
//! cut back or forked. Pure logic, tested without a cluster.

use dsmil_core::merkle::Hash;
use dsmil_core::ports::{ConsistencyProof, SignedTreeHead};
use serde::{Deserialize, Serialize};

/// The part of a head a witness remembers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Entries covered.
    pub tree_size: u64,
    /// Their Merkle root.
    #[serde(with = "hex32")]
    pub root: Hash,
}

impl From<&SignedTreeHead> for Seen {
    fn from(h: &SignedTreeHead) -> Self {
        Self {
            tree_size: h.tree_size,
            root: h.root,
        }
    }
}

/// What to do with a new head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The head is the one accepted already.
    Known,
    /// The first head seen of this node: accepted as it is (trust on first use).
    First,
    /// Ask the node for the consistency proof from the accepted size to the new one.
    Prove {
        /// The accepted size.
        from: u64,
        /// The new size.
        to: u64,
    },
    /// The log is inconsistent with what was accepted; the reason in words.
    Inconsistent(String),
}

/// The step for `new` after `accepted`.
pub fn step(accepted: Option<&Seen>, new: &SignedTreeHead) -> Step {
    let Some(old) = accepted else {
        return Step::First;
    };
    use std::cmp::Ordering::*;
    match new.tree_size.cmp(&old.tree_size) {
        Less => Step::Inconsistent(format!(
            "its log was cut back: it now signs {} entries, after a head of {} entries was witnessed",
            new.tree_size, old.tree_size
        )),
        Equal if new.root == old.root => Step::Known,
        Equal => Step::Inconsistent(format!(
            "its log forked: a head of {} entries with another root than the one witnessed",
            new.tree_size
        )),
        Greater => Step::Prove {
            from: old.tree_size,
            to: new.tree_size,
        },
    }
}

/// Checks the node's answer to [`Step::Prove`]: the proof must join exactly the accepted
/// head and the new one, and verify.
pub fn check_proof(
    accepted: &Seen,
    new: &SignedTreeHead,
    proof: &ConsistencyProof,
) -> Result<(), String> {
    if proof.from_size != accepted.tree_size || proof.to_size != new.tree_size {
        return Err(format!(
            "it answered a proof from {} to {} entries when {} to {} was asked",
            proof.from_size, proof.to_size, accepted.tree_size, new.tree_size
        ));
    }
    if proof.from_root != accepted.root {
        return Err(format!(
            "its log forked: its tree of {} entries no longer has the root that was witnessed",
            accepted.tree_size
        ));
    }
    if proof.to_root != new.root {
        return Err("its proof ends at another root than the head it signed".into());
    }
    if !proof.verify() {
        return Err(format!(
            "its log forked: no valid consistency proof joins the witnessed head of {} entries to its head of {}",
            accepted.tree_size, new.tree_size
        ));
    }
    Ok(())
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&dsmil_core::hex::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        dsmil_core::hex::decode(&text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| D::Error::custom("expected 64 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsmil_core::merkle::{consistency_proof, leaf_hash, root};
    use dsmil_core::ports::{Signature, SignatureScheme};

    fn leaves(n: usize, salt: u8) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&[salt, i as u8])).collect()
    }

    fn head(leaves: &[Hash]) -> SignedTreeHead {
        SignedTreeHead {
            previous_size: 0,
            tree_size: leaves.len() as u64,
            root: root(leaves),
            time: chrono::Utc::now(),
            signature: Signature {
                scheme: SignatureScheme::EcdsaP256Sha256,
                key_name: "k".into(),
                bytes: vec![],
            },
            public_key: String::new(),
        }
    }

    fn proof(leaves: &[Hash], from: usize) -> ConsistencyProof {
        ConsistencyProof {
            from_size: from as u64,
            to_size: leaves.len() as u64,
            from_root: root(&leaves[..from]),
            to_root: root(leaves),
            proof: consistency_proof(leaves, from).unwrap(),
        }
    }

    #[test]
    fn growth_is_proved_cut_backs_and_forks_are_refused() {
        let log = leaves(20, 0);
        let seen = Seen::from(&head(&log[..10]));
        assert_eq!(step(None, &head(&log[..10])), Step::First);
        assert_eq!(step(Some(&seen), &head(&log[..10])), Step::Known);
        assert_eq!(
            step(Some(&seen), &head(&log)),
            Step::Prove { from: 10, to: 20 }
        );
        check_proof(&seen, &head(&log), &proof(&log, 10)).unwrap();

        // Cut back to 6 entries.
        assert!(
            matches!(step(Some(&seen), &head(&log[..6])), Step::Inconsistent(r) if r.contains("cut back"))
        );
        // The same size, another history.
        let other = leaves(20, 1);
        assert!(
            matches!(step(Some(&seen), &head(&other[..10])), Step::Inconsistent(r) if r.contains("forked"))
        );
        // A longer log whose first 10 entries differ: its honest proof starts at another root.
        let err = check_proof(&seen, &head(&other), &proof(&other, 10)).unwrap_err();
        assert!(err.contains("forked"), "{err}");
        // A proof forged to start at the witnessed root does not verify.
        let mut forged = proof(&other, 10);
        forged.from_root = seen.root;
        let err = check_proof(&seen, &head(&other), &forged).unwrap_err();
        assert!(err.contains("no valid consistency proof"), "{err}");
        // A proof of other sizes than asked.
        assert!(check_proof(&seen, &head(&log), &proof(&log, 9)).is_err());
    }
}
