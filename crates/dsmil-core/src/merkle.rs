//! The Merkle tree of RFC 9162 (Certificate Transparency 2.0): leaf hash `SHA-256(0x00 ‖ d)`,
//! node hash `SHA-256(0x01 ‖ left ‖ right)`, a tree of n leaves split at the largest power of
//! two below n; inclusion and consistency proofs and their verification.
//!
//! Pure functions over hashes, in core so that whoever checks a proof (a witness on another
//! node, an offline auditor) needs no more than this module; the audit log builds the proofs.

use sha2::{Digest, Sha256};

/// A SHA-256 value.
pub type Hash = [u8; 32];

/// The hash of an empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The leaf hash of `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// The interior node hash of two children.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Largest power of two strictly below `n` (n ≥ 2; 1 for smaller `n`): where RFC 9162 splits a
/// tree of `n` leaves. Constant time, and total for every `u64`.
pub fn split(n: u64) -> u64 {
    if n <= 2 {
        return 1;
    }
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// The root of the tree over `leaves` (leaf hashes).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The roots of the perfect subtrees that make up a growing tree (a "compact range"): the
/// root of the whole tree in O(log n) after every append, without keeping interior nodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frontier {
    /// (height, root) of each perfect subtree, left to right, heights strictly decreasing.
    stack: Vec<(u32, Hash)>,
    size: u64,
}

impl Frontier {
    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.push_observing(leaf, |_, _| {});
    }

    /// Appends a leaf hash and shows `formed` every perfect subtree completed by it, as
    /// (height, root): the subtree of height `h` over the last `2^h` leaves forms exactly when
    /// the size becomes a multiple of `2^h`.
    pub fn push_observing(&mut self, leaf: Hash, mut formed: impl FnMut(u32, &Hash)) {
        let mut node = (0u32, leaf);
        while let Some(&(h, left)) = self.stack.last() {
            if h != node.0 {
                break;
            }
            self.stack.pop();
            node = (h + 1, node_hash(&left, &node.1));
            formed(node.0, &node.1);
        }
        self.stack.push(node);
        self.size += 1;
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root over every leaf so far (equal to [`root`] of them).
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// The inclusion proof of leaf `index` in the tree over `leaves` (sibling hashes, bottom up);
/// `None` when `index` is out of range.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let subtree = |lo: u64, hi: u64| {
        Ok::<_, std::convert::Infallible>(root(&leaves[lo as usize..hi as usize]))
    };
    match inclusion_proof_by(leaves.len() as u64, index as u64, subtree) {
        Ok(proof) => Some(proof),
        Err(never) => match never {},
    }
}

/// The inclusion proof of leaf `index` (< `size`) in the tree of `size` leaves, with the root of
/// each sibling subtree — the leaves `lo..hi` — asked of `subtree`. For a tree too large to keep
/// every leaf: the caller answers from whatever it stores (roots of complete chunks, leaves
/// read back from disk). Every range asked for is a node of the tree: it starts at a multiple
/// of the largest power of two below its length, so it never straddles an aligned block
/// unless it covers it whole.
pub fn inclusion_proof_by<E>(
    size: u64,
    index: u64,
    mut subtree: impl FnMut(u64, u64) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    let mut out = Vec::new();
    let (mut lo, mut hi) = (0, size);
    // Top down, then reversed: the proof lists siblings bottom up.
    while hi - lo > 1 {
        let k = split(hi - lo);
        if index < lo + k {
            out.push(subtree(lo + k, hi)?);
            hi = lo + k;
        } else {
            out.push(subtree(lo, lo + k)?);
            lo += k;
        }
    }
    out.reverse();
    Ok(out)
}

/// Checks that `leaf` is entry `index` of the tree of `size` leaves with root `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// The consistency proof between the trees of the first `from` and all `size` leaves
/// (`from ≤ size`), RFC 9162 §2.1.4.1, with each subtree root — the leaves `lo..hi` — asked of
/// `subtree` (as in [`inclusion_proof_by`]). Empty when `from` is 0 or equals `size`: every tree
/// extends the empty one and itself. The caller checks `from ≤ size` (a larger `from` gets the
/// empty proof, which [`verify_consistency`] refuses for it); [`consistency_proof`] does.
pub fn consistency_proof_by<E>(
    from: u64,
    size: u64,
    mut subtree: impl FnMut(u64, u64) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    let mut out = Vec::new();
    if from == 0 || from >= size {
        return Ok(out);
    }
    // SUBPROOF(m, D[lo..hi], b), unrolled: each level adds the sibling subtree after the
    // proof of the side that holds the old tree's edge, so the list is built top down and
    // reversed.
    let (mut lo, mut hi, mut m, mut whole) = (0u64, size, from, true);
    while m != hi - lo {
        let k = split(hi - lo);
        if m <= k {
            out.push(subtree(lo + k, hi)?);
            hi = lo + k;
        } else {
            out.push(subtree(lo, lo + k)?);
            lo += k;
            m -= k;
            whole = false;
        }
    }
    if !whole {
        out.push(subtree(lo, hi)?);
    }
    out.reverse();
    Ok(out)
}

/// The consistency proof between the tree over `leaves[..from]` and the tree over `leaves`;
/// `None` when `from` is larger than `leaves`.
pub fn consistency_proof(leaves: &[Hash], from: usize) -> Option<Vec<Hash>> {
    if from > leaves.len() {
        return None;
    }
    let subtree = |lo: u64, hi: u64| {
        Ok::<_, std::convert::Infallible>(root(&leaves[lo as usize..hi as usize]))
    };
    match consistency_proof_by(from as u64, leaves.len() as u64, subtree) {
        Ok(proof) => Some(proof),
        Err(never) => match never {},
    }
}

/// Checks that the tree of `from` leaves with root `from_root` is a prefix of the tree of
/// `size` leaves with root `to_root` (RFC 9162 §2.1.4.2). The empty tree (root
/// [`empty_root`]) is a prefix of every tree, with an empty proof; a tree is consistent with
/// itself when the roots are equal and the proof is empty; `from > size` never verifies.
///
/// The proof binds the roots, not the sizes: the same hashes can verify for more than one pair
/// of sizes (the one-hash proof from 2 to 4 leaves also verifies as a proof from 2 to 3 leaves
/// between the same two roots). Take `from` and `size` from the signed tree heads being
/// compared, never from whoever sent the proof.
pub fn verify_consistency(
    from: u64,
    size: u64,
    from_root: &Hash,
    to_root: &Hash,
    proof: &[Hash],
) -> bool {
    if from > size {
        return false;
    }
    if from == 0 {
        return proof.is_empty() && *from_root == empty_root();
    }
    if from == size {
        return proof.is_empty() && from_root == to_root;
    }
    let mut path = proof.iter();
    let first = if from.is_power_of_two() {
        from_root
    } else {
        match path.next() {
            Some(h) => h,
            None => return false,
        }
    };
    let (mut fn_, mut sn) = (from - 1, size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr == *from_root && sr == *to_root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn small_trees_have_the_shapes_of_the_rfc() {
        assert_eq!(root(&[]), empty_root());
        let l = leaves(3);
        assert_eq!(root(&l[..1]), l[0]);
        assert_eq!(root(&l[..2]), node_hash(&l[0], &l[1]));
        // Three leaves: split at 2.
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
        // The empty-tree hash is SHA-256("").
        assert_eq!(empty_root()[..4], [0xe3, 0xb0, 0xc4, 0x42],);
    }

    #[test]
    fn the_frontier_tracks_the_root_of_every_size() {
        let l = leaves(70);
        let mut f = Frontier::default();
        assert_eq!(f.root(), empty_root());
        for (i, leaf) in l.iter().enumerate() {
            f.push(*leaf);
            assert_eq!(f.root(), root(&l[..=i]), "size {}", i + 1);
        }
        assert_eq!(f.size(), 70);
    }

    #[test]
    fn every_proof_verifies_and_any_change_breaks_it() {
        for n in 1..=40 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let proof = inclusion_proof(&l, i).unwrap();
                assert!(
                    verify_inclusion(&l[i], i as u64, n as u64, &proof, &r),
                    "n={n} i={i}"
                );
                // Wrong leaf, index, size or root: refused.
                let other = leaf_hash(b"forged");
                assert!(!verify_inclusion(&other, i as u64, n as u64, &proof, &r));
                if n > 1 {
                    assert!(
                        !verify_inclusion(&l[i], ((i + 1) % n) as u64, n as u64, &proof, &r),
                        "n={n} i={i}"
                    );
                }
                // Against the root of a different tree (one more entry): refused.
                let bigger = root(&leaves(n + 1));
                assert!(
                    !verify_inclusion(&l[i], i as u64, n as u64 + 1, &proof, &bigger) || n + 1 == 1
                );
                let mut bad = proof.clone();
                if let Some(first) = bad.first_mut() {
                    first[0] ^= 1;
                    assert!(!verify_inclusion(&l[i], i as u64, n as u64, &bad, &r));
                }
            }
            assert!(inclusion_proof(&l, n).is_none());
        }
    }

    #[test]
    fn consistency_proofs_verify_between_every_pair_of_sizes() {
        let l = leaves(40);
        for n in 0..=40 {
            let to = root(&l[..n]);
            for m in 0..=n {
                let from = root(&l[..m]);
                let proof = consistency_proof(&l[..n], m).unwrap();
                assert!(
                    verify_consistency(m as u64, n as u64, &from, &to, &proof),
                    "m={m} n={n}"
                );
                if m > 0 && m < n {
                    // A different old tree (a fork) or new root is refused.
                    let forged = root(&leaves(m + 1)[1..]);
                    assert!(!verify_consistency(
                        m as u64, n as u64, &forged, &to, &proof
                    ));
                    assert!(!verify_consistency(
                        m as u64, n as u64, &from, &forged, &proof
                    ));
                    let mut bad = proof.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_consistency(m as u64, n as u64, &from, &to, &bad));
                }
            }
        }
    }
}
