//! `dsmil_core::merkle` checked against two references for every pair of tree sizes up to 64:
//! the RFC's recursive definitions, transcribed below, and rozbb's `ct-merkle` (an independent
//! RFC 6962 log whose tree math is array-based rather than recursive) — roots and proofs byte
//! for byte, and each side's proofs verified by the other's verifier; then forks, logs cut
//! back, tampered proofs and `from > size`.

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof as CtConsistency, InclusionProof as CtInclusion, RootHash};
use dsmil_core::merkle::{
    Hash, consistency_proof, inclusion_proof, leaf_hash, root, split, verify_consistency,
    verify_inclusion,
};
use proptest::prelude::*;

/// RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 as written: over the entries themselves (the
/// leaf hash is inside MTH), recursive, `D[k1:k2]` as slices.
mod rfc9162 {
    use sha2::{Digest, Sha256};

    pub type Hash = [u8; 32];

    fn sha256(parts: &[&[u8]]) -> Hash {
        let mut h = Sha256::new();
        for part in parts {
            h.update(part);
        }
        h.finalize().into()
    }

    /// "k is the largest power of two smaller than n (i.e., k < n <= 2k)".
    fn k(n: usize) -> usize {
        let mut k = 1;
        while 2 * k < n {
            k *= 2;
        }
        k
    }

    /// `MTH({}) = SHA-256()`, `MTH({d(0)}) = SHA-256(0x00 || d(0))`,
    /// `MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`.
    pub fn mth(d: &[Vec<u8>]) -> Hash {
        match d.len() {
            0 => sha256(&[]),
            1 => sha256(&[&[0x00], &d[0]]),
            n => sha256(&[&[0x01], &mth(&d[..k(n)]), &mth(&d[k(n)..])]),
        }
    }

    /// `PATH(0, {d(0)}) = {}`; for `m < k`, `PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])`;
    /// for `m >= k`, `PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])`.
    pub fn path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
        let n = d.len();
        if n == 1 {
            return vec![];
        }
        let k = k(n);
        let (mut p, sibling) = if m < k {
            (path(m, &d[..k]), mth(&d[k..]))
        } else {
            (path(m - k, &d[k..]), mth(&d[..k]))
        };
        p.push(sibling);
        p
    }

    /// `PROOF(m, D[n]) = SUBPROOF(m, D[n], true)`.
    pub fn proof(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
        subproof(m, d, true)
    }

    /// `SUBPROOF(m, D[m], true) = {}`, `SUBPROOF(m, D[m], false) = {MTH(D[m])}`; for
    /// `m <= k`, `SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])`; for `m > k`,
    /// `SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])`.
    fn subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![mth(d)] };
        }
        let k = k(n);
        let (mut p, sibling) = if m <= k {
            (subproof(m, &d[..k], b), mth(&d[k..]))
        } else {
            (subproof(m - k, &d[k..], false), mth(&d[..k]))
        };
        p.push(sibling);
        p
    }
}

type Sha = sha2_v011::Sha256;
type CtTree = MemoryBackedTree<Sha, Vec<u8>>;

fn entries(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("entry {i}").into_bytes()).collect()
}

fn hashes_of(entries: &[Vec<u8>]) -> Vec<Hash> {
    entries.iter().map(|e| leaf_hash(e)).collect()
}

fn ct_root(root: &Hash, size: u64) -> RootHash<Sha> {
    RootHash::new((*root).into(), size)
}

fn flat(proof: &[Hash]) -> Vec<u8> {
    proof.concat()
}

fn unflat(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks(32)
        .map(|c| c.try_into().expect("32-byte digests"))
        .collect()
}

/// Our hashes as ct-merkle's digests.
fn digests(proof: &[Hash]) -> Vec<ct_merkle::digest::Output<Sha>> {
    proof.iter().map(|h| (*h).into()).collect()
}

/// What ct-merkle's verifier says of a consistency proof of ours.
fn ct_accepts(from: u64, size: u64, old: &Hash, new: &Hash, proof: &[Hash]) -> bool {
    let proof = CtConsistency::from_digests(digests(proof).iter());
    ct_root(new, size)
        .verify_consistency(&ct_root(old, from), &proof)
        .is_ok()
}

/// Roots, inclusion proofs and consistency proofs of one growing log, every size 0..=`max`,
/// equal to the RFC's definitions and ct-merkle's, and accepted by both verifiers.
fn check_all_pairs(all: &[Vec<u8>]) {
    let leaves = hashes_of(all);
    let mut ct = CtTree::new();
    let mut roots = vec![root(&[])];
    assert_eq!(ct.root().as_bytes().as_slice(), roots[0], "empty tree");
    for n in 1..=all.len() {
        ct.push(all[n - 1].clone());
        let ours = root(&leaves[..n]);
        assert_eq!(ours, rfc9162::mth(&all[..n]), "MTH of {n}");
        assert_eq!(
            ct.root().as_bytes().as_slice(),
            ours,
            "ct-merkle root of {n}"
        );
        roots.push(ours);
        for i in 0..n {
            let proof = inclusion_proof(&leaves[..n], i).unwrap();
            assert_eq!(proof, rfc9162::path(i, &all[..n]), "PATH({i}, D[{n}])");
            let theirs = ct.prove_inclusion(i);
            assert_eq!(
                theirs.as_bytes(),
                flat(&proof),
                "ct-merkle inclusion {i} of {n}"
            );
            assert!(verify_inclusion(
                &leaves[i],
                i as u64,
                n as u64,
                &unflat(theirs.as_bytes()),
                &ours
            ));
            let ct_ok = ct_root(&ours, n as u64).verify_inclusion(
                &all[i],
                i as u64,
                &CtInclusion::from_digests(
                    proof.iter().map(|h| (*h).into()).collect::<Vec<_>>().iter(),
                ),
            );
            assert!(ct_ok.is_ok(), "ct-merkle rejects our inclusion {i} of {n}");
        }
        for (m, old_root) in roots.iter().enumerate().take(n + 1) {
            let proof = consistency_proof(&leaves[..n], m).unwrap();
            let (from, size) = (m as u64, n as u64);
            assert!(
                verify_consistency(from, size, old_root, &ours, &proof),
                "{m} -> {n}"
            );
            if m == 0 {
                // RFC 9162 defines PROOF for 0 < m only; ct-merkle refuses an empty old tree.
                assert!(proof.is_empty());
                continue;
            }
            assert_eq!(proof, rfc9162::proof(m, &all[..n]), "PROOF({m}, D[{n}])");
            let theirs = ct.prove_consistency(n - m);
            assert_eq!(
                theirs.as_bytes(),
                flat(&proof),
                "ct-merkle consistency {m} -> {n}"
            );
            assert!(verify_consistency(
                from,
                size,
                old_root,
                &ours,
                &unflat(theirs.as_bytes())
            ));
            assert!(
                ct_accepts(from, size, old_root, &ours, &proof),
                "ct-merkle rejects {m} -> {n}"
            );
        }
    }
}

#[test]
fn roots_and_proofs_equal_the_rfc_and_ct_merkle_for_every_pair_of_sizes_up_to_64() {
    check_all_pairs(&entries(64));
}

#[test]
fn a_forked_log_fails_unless_the_fork_is_after_the_old_tree() {
    let all = entries(64);
    let leaves = hashes_of(&all);
    for n in 1..=64usize {
        let to = root(&leaves[..n]);
        for m in 1..=n {
            let from = root(&leaves[..m]);
            let proof = consistency_proof(&leaves[..n], m).unwrap();
            for j in [0, m / 2, m - 1, n - 1] {
                let mut forked = leaves.clone();
                forked[j] = leaf_hash(format!("forged {j}").as_bytes());
                let forked_from = root(&forked[..m]);
                let forked_to = root(&forked[..n]);
                let forked_proof = consistency_proof(&forked[..n], m).unwrap();
                let (f, s) = (m as u64, n as u64);
                if j < m {
                    // The old tree itself differs: neither log's proof joins the two heads.
                    assert!(
                        !verify_consistency(f, s, &from, &forked_to, &forked_proof),
                        "{j}: {m} -> {n}"
                    );
                    assert!(!verify_consistency(f, s, &from, &forked_to, &proof));
                    assert!(!verify_consistency(f, s, &forked_from, &to, &proof));
                    if m < n {
                        assert!(!ct_accepts(f, s, &from, &forked_to, &forked_proof));
                        assert!(!ct_accepts(f, s, &forked_from, &to, &proof));
                    }
                } else {
                    // Only what came after the old head differs: a legitimate extension.
                    assert!(verify_consistency(f, s, &from, &forked_to, &forked_proof));
                }
            }
        }
        // A fork at the same size: two different roots for one size never verify.
        let mut forked = leaves[..n].to_vec();
        forked[n - 1] = leaf_hash(b"forged");
        assert!(!verify_consistency(
            n as u64,
            n as u64,
            &to,
            &root(&forked),
            &[]
        ));
    }
}

#[test]
fn a_log_cut_back_fails_and_regrown_after_a_cut_fails_too() {
    let all = entries(64);
    let leaves = hashes_of(&all);
    for seen in 1..=64usize {
        let seen_root = root(&leaves[..seen]);
        for cut in 0..seen {
            // Now shorter than the head a witness saw: no proof of any kind verifies.
            let short = root(&leaves[..cut]);
            let back = consistency_proof(&leaves[..seen], cut).unwrap();
            assert!(!verify_consistency(
                seen as u64,
                cut as u64,
                &seen_root,
                &short,
                &back
            ));
            assert!(!verify_consistency(
                seen as u64,
                cut as u64,
                &seen_root,
                &short,
                &[]
            ));
            assert!(
                consistency_proof(&leaves[..cut], seen).is_none(),
                "from > size refused"
            );
            if cut > 0 {
                let refused = ct_root(&short, cut as u64).verify_consistency(
                    &ct_root(&seen_root, seen as u64),
                    &CtConsistency::from_digests([].iter()),
                );
                assert!(refused.is_err());
            }
            // Cut back to `cut`, then grown past `seen` with other entries: a fork at `seen`.
            let mut regrown = leaves[..cut].to_vec();
            regrown.extend((cut..seen + 3).map(|i| leaf_hash(format!("rewritten {i}").as_bytes())));
            let size = regrown.len();
            let proof = consistency_proof(&regrown, seen).unwrap();
            assert!(!verify_consistency(
                seen as u64,
                size as u64,
                &seen_root,
                &root(&regrown),
                &proof
            ));
            assert!(!ct_accepts(
                seen as u64,
                size as u64,
                &seen_root,
                &root(&regrown),
                &proof
            ));
        }
    }
}

#[test]
fn tampered_proofs_fail() {
    let leaves = hashes_of(&entries(64));
    let forged = leaf_hash(b"forged");
    for n in 1..=64usize {
        let to = root(&leaves[..n]);
        for m in 0..=n {
            let from = root(&leaves[..m]);
            let proof = consistency_proof(&leaves[..n], m).unwrap();
            let (f, s) = (m as u64, n as u64);
            let refused = |p: &[Hash]| !verify_consistency(f, s, &from, &to, p);
            let mut longer = proof.clone();
            longer.push(forged);
            assert!(refused(&longer), "extra hash: {m} -> {n}");
            let mut first = proof.clone();
            first.insert(0, forged);
            assert!(refused(&first), "hash prepended: {m} -> {n}");
            for i in 0..proof.len() {
                for bit in [0, 7 * 8 + 3, 31 * 8 + 7] {
                    let mut bad = proof.clone();
                    bad[i][bit / 8] ^= 1 << (bit % 8);
                    assert!(refused(&bad), "bit {bit} of hash {i}: {m} -> {n}");
                    assert!(!ct_accepts(f, s, &from, &to, &bad) || m == 0);
                }
                let mut shorter = proof.clone();
                shorter.remove(i);
                assert!(refused(&shorter), "hash {i} dropped: {m} -> {n}");
                if i + 1 < proof.len() {
                    let mut swapped = proof.clone();
                    swapped.swap(i, i + 1);
                    assert!(
                        refused(&swapped),
                        "hashes {i} and {} swapped: {m} -> {n}",
                        i + 1
                    );
                }
            }
            // Another old root (even for the empty tree), or another new root, with the honest
            // proof. (Every root extends the empty tree: from 0 the new root is not checked.)
            assert!(
                !verify_consistency(f, s, &forged, &to, &proof),
                "{m} -> {n}"
            );
            if 0 < m && m < n {
                assert!(
                    !verify_consistency(f, s, &from, &forged, &proof),
                    "{m} -> {n}"
                );
            }
        }
    }
}

#[test]
fn the_sizes_come_from_the_heads_not_the_proof() {
    // The one-hash proof from 2 to 4 entries also joins the same roots as "2 to 3": only the
    // signed sizes tell them apart (why verify_consistency's doc says so).
    let leaves = hashes_of(&entries(4));
    let proof = consistency_proof(&leaves, 2).unwrap();
    let (from, to) = (root(&leaves[..2]), root(&leaves));
    assert!(verify_consistency(2, 4, &from, &to, &proof));
    assert!(verify_consistency(2, 3, &from, &to, &proof));
}

#[test]
fn split_is_the_largest_power_of_two_below_n_for_every_size() {
    for n in 2..=4100u64 {
        let k = split(n);
        assert!(k.is_power_of_two() && k < n && n <= 2 * k, "n={n} k={k}");
    }
    assert_eq!(split(u64::MAX), 1 << 63);
    assert_eq!(split((1 << 63) + 1), 1 << 63);
    assert_eq!(split(1 << 63), 1 << 62);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Larger logs than the exhaustive test, at random sizes: the same three agree.
    #[test]
    fn larger_logs_agree_with_the_rfc_and_ct_merkle(n in 65usize..1200, m_frac in 0.0f64..=1.0) {
        let all = entries(n);
        let leaves = hashes_of(&all);
        let m = ((n as f64 * m_frac) as usize).clamp(1, n);
        let mut ct = CtTree::new();
        for e in &all {
            ct.push(e.clone());
        }
        let ours = root(&leaves);
        let theirs = ct.root();
        prop_assert_eq!(theirs.as_bytes().as_slice(), ours.as_slice());
        let proof = consistency_proof(&leaves, m).unwrap();
        prop_assert_eq!(&proof, &rfc9162::proof(m, &all));
        let (theirs, ours_flat) = (ct.prove_consistency(n - m), flat(&proof));
        prop_assert_eq!(theirs.as_bytes(), ours_flat.as_slice());
        prop_assert!(verify_consistency(m as u64, n as u64, &root(&leaves[..m]), &ours, &proof));
        let i = m - 1;
        let (theirs, ours_flat) = (ct.prove_inclusion(i), flat(&inclusion_proof(&leaves, i).unwrap()));
        prop_assert_eq!(theirs.as_bytes(), ours_flat.as_slice());
    }
}
