//! What the log keeps in memory to prove inclusion and consistency without keeping every leaf:
//! the root of each complete chunk of [`CHUNK`] leaves and the byte offset where the chunk
//! starts in the file (40 bytes per 1,024 entries). A proof needs the leaves of at most two
//! chunks, which are read back from the file: for inclusion, the entry's own and the partial
//! one at the tree's edge; for consistency, the partial chunks at the edges of the older and
//! the newer tree. Every larger subtree either proof needs is made of whole chunks: a node of
//! more than a chunk's leaves starts at a multiple of the chunk size.

use std::collections::BTreeMap;

use super::merkle::{
    Hash, consistency_proof_by, empty_root, inclusion_proof_by, node_hash, root, split,
};

/// Height of a chunk's subtree: a chunk is `2^CHUNK_HEIGHT` leaves.
pub(crate) const CHUNK_HEIGHT: u32 = 10;
/// Leaves per chunk.
pub(crate) const CHUNK: u64 = 1 << CHUNK_HEIGHT;

/// Chunk roots and offsets of a growing log. The roots come from the log's own Merkle frontier
/// (the perfect subtree of height [`CHUNK_HEIGHT`] it forms every [`CHUNK`] leaves), so no
/// leaf is hashed twice.
#[derive(Debug, Clone)]
pub(crate) struct ChunkIndex {
    chunk: u64,
    /// Roots of the complete chunks, in order.
    roots: Vec<Hash>,
    /// Byte offset of the first entry line of every chunk begun (complete or not).
    offsets: Vec<u64>,
    /// Leaves so far.
    len: u64,
}

impl Default for ChunkIndex {
    fn default() -> Self {
        Self::with_chunk(CHUNK)
    }
}

/// The leaves to read back from the file for one proof: chunk number, byte offset of its
/// first entry, sequence number of that entry, and how many leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkRead {
    pub chunk: u64,
    pub offset: u64,
    pub first_seq: u64,
    pub count: u64,
}

/// Everything a proof needs from memory, copied out so the file is read without the lock.
#[derive(Debug, Clone)]
pub(crate) struct ProofPlan {
    chunk: u64,
    roots: Vec<Hash>,
    pub reads: Vec<ChunkRead>,
}

/// A leaf the plan did not load was needed (a bug, reported rather than a panic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MissingLeaves(pub u64);

impl ChunkIndex {
    /// An empty index with `chunk` leaves per chunk (a power of two; tests use small ones).
    pub fn with_chunk(chunk: u64) -> Self {
        debug_assert!(chunk.is_power_of_two());
        Self {
            chunk,
            roots: Vec::new(),
            offsets: Vec::new(),
            len: 0,
        }
    }

    /// Leaves so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Counts the leaf of the entry whose line starts at byte `offset`; `completed` is the
    /// root of the chunk this leaf completes (from the frontier), if it completes one.
    pub fn push(&mut self, offset: u64, completed: Option<Hash>) {
        if self.len.is_multiple_of(self.chunk) {
            self.offsets.push(offset);
        }
        self.len += 1;
        debug_assert_eq!(completed.is_some(), self.len.is_multiple_of(self.chunk));
        if let Some(root) = completed {
            self.roots.push(root);
        }
    }

    /// What proving entry `index` in the tree of the first `size` leaves needs
    /// (`index < size <= len`).
    pub fn plan(&self, index: u64, size: u64) -> ProofPlan {
        debug_assert!(index < size && size <= self.len());
        let mut chunks = vec![index / self.chunk];
        if !size.is_multiple_of(self.chunk) {
            chunks.push(size / self.chunk);
        }
        self.plan_reads(chunks, size)
    }

    /// What the consistency proof between the trees of the first `from` and `to` leaves needs
    /// (`from <= to <= len`): the leaves of the partial chunk at the edge of each tree.
    pub fn consistency_plan(&self, from: u64, to: u64) -> ProofPlan {
        debug_assert!(from <= to && to <= self.len());
        let chunks = [from, to]
            .into_iter()
            .filter(|edge| !edge.is_multiple_of(self.chunk))
            .map(|edge| edge / self.chunk)
            .collect();
        self.plan_reads(chunks, to)
    }

    /// The plan reading `chunks` (ascending) of the tree of the first `size` leaves, with the
    /// roots of its complete chunks.
    fn plan_reads(&self, mut chunks: Vec<u64>, size: u64) -> ProofPlan {
        let complete = (size / self.chunk) as usize;
        chunks.dedup();
        let reads = chunks
            .into_iter()
            .filter_map(|c| {
                let offset = *self.offsets.get(c as usize)?;
                let first_seq = c * self.chunk;
                Some(ChunkRead {
                    chunk: c,
                    offset,
                    first_seq,
                    count: self.chunk.min(size - first_seq),
                })
            })
            .collect();
        ProofPlan {
            chunk: self.chunk,
            roots: self.roots[..complete.min(self.roots.len())].to_vec(),
            reads,
        }
    }
}

impl ProofPlan {
    /// The root of the tree of `size` leaves and the inclusion proof of `index`, given the
    /// leaves of every chunk in [`ProofPlan::reads`] (by chunk number).
    pub fn prove(
        &self,
        index: u64,
        size: u64,
        loaded: &BTreeMap<u64, Vec<Hash>>,
    ) -> Result<(Hash, Vec<Hash>), MissingLeaves> {
        let subtree = |lo, hi| self.subtree(lo, hi, loaded);
        let proof = inclusion_proof_by(size, index, subtree)?;
        Ok((self.subtree(0, size, loaded)?, proof))
    }

    /// The roots of the trees of the first `from` and `to` leaves and the consistency proof
    /// between them, given the leaves of every chunk in [`ProofPlan::reads`] of
    /// [`ChunkIndex::consistency_plan`].
    pub fn consistency(
        &self,
        from: u64,
        to: u64,
        loaded: &BTreeMap<u64, Vec<Hash>>,
    ) -> Result<(Hash, Hash, Vec<Hash>), MissingLeaves> {
        let root_of = |size: u64| match size {
            0 => Ok(empty_root()),
            _ => self.subtree(0, size, loaded),
        };
        let proof = consistency_proof_by(from, to, |lo, hi| self.subtree(lo, hi, loaded))?;
        Ok((root_of(from)?, root_of(to)?, proof))
    }

    /// The root over leaves `lo..hi` (a node of the tree, or the whole tree of the first
    /// `hi` leaves).
    fn subtree(
        &self,
        lo: u64,
        hi: u64,
        loaded: &BTreeMap<u64, Vec<Hash>>,
    ) -> Result<Hash, MissingLeaves> {
        let c = lo / self.chunk;
        if lo.is_multiple_of(self.chunk)
            && hi - lo == self.chunk
            && let Some(r) = self.roots.get(c as usize)
        {
            return Ok(*r);
        }
        if (hi - 1) / self.chunk == c {
            let leaves = loaded.get(&c).ok_or(MissingLeaves(c))?;
            let start = (lo - c * self.chunk) as usize;
            let end = (hi - c * self.chunk) as usize;
            return leaves.get(start..end).map(root).ok_or(MissingLeaves(c));
        }
        let k = split(hi - lo);
        Ok(node_hash(
            &self.subtree(lo, lo + k, loaded)?,
            &self.subtree(lo + k, hi, loaded)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::merkle::{
        Frontier, consistency_proof, inclusion_proof, leaf_hash, verify_consistency,
        verify_inclusion,
    };

    /// An index of chunks of 4 leaves over `all`, fed from a frontier as the log feeds it.
    fn index_of(all: &[Hash], offset: impl Fn(u64) -> u64) -> ChunkIndex {
        let mut frontier = Frontier::default();
        let mut index = ChunkIndex::with_chunk(4);
        for (i, leaf) in all.iter().enumerate() {
            let mut completed = None;
            frontier.push_observing(*leaf, |height, node| {
                if height == 2 {
                    completed = Some(*node);
                }
            });
            index.push(offset(i as u64), completed);
        }
        index
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    /// Every index of every tree size, and every prefix size, against the all-leaves proof —
    /// with chunks of 4 so that trees span many chunks; only the planned chunks are loaded.
    #[test]
    fn chunked_proofs_equal_proofs_over_all_leaves() {
        let all = leaves(70);
        let index = index_of(&all, |i| 1000 + i * 10);
        assert_eq!(index.len(), 70);
        for size in 1..=70u64 {
            for i in 0..size {
                let plan = index.plan(i, size);
                assert!(plan.reads.len() <= 2);
                let loaded: BTreeMap<u64, Vec<Hash>> = plan
                    .reads
                    .iter()
                    .map(|r| {
                        assert_eq!(r.offset, 1000 + r.first_seq * 10, "offset of the chunk");
                        let from = r.first_seq as usize;
                        (r.chunk, all[from..from + r.count as usize].to_vec())
                    })
                    .collect();
                let (got_root, proof) = plan.prove(i, size, &loaded).unwrap();
                let prefix = &all[..size as usize];
                assert_eq!(got_root, root(prefix), "size {size}");
                assert_eq!(Some(proof.clone()), inclusion_proof(prefix, i as usize));
                assert!(verify_inclusion(
                    &all[i as usize],
                    i,
                    size,
                    &proof,
                    &got_root
                ));
            }
        }
    }

    /// Every pair of tree sizes up to 70, with chunks of 4: the roots and proof from at most
    /// two chunks' leaves equal those over all leaves.
    #[test]
    fn chunked_consistency_proofs_equal_proofs_over_all_leaves() {
        let all = leaves(70);
        let index = index_of(&all, |i| 1000 + i * 10);
        for to in 0..=70u64 {
            for from in 0..=to {
                let plan = index.consistency_plan(from, to);
                assert!(plan.reads.len() <= 2, "{from} -> {to}");
                let loaded: BTreeMap<u64, Vec<Hash>> = plan
                    .reads
                    .iter()
                    .map(|r| {
                        let first = r.first_seq as usize;
                        (r.chunk, all[first..first + r.count as usize].to_vec())
                    })
                    .collect();
                let (from_root, to_root, proof) = plan.consistency(from, to, &loaded).unwrap();
                assert_eq!(from_root, root(&all[..from as usize]), "{from} -> {to}");
                assert_eq!(to_root, root(&all[..to as usize]), "{from} -> {to}");
                assert_eq!(
                    Some(proof.clone()),
                    consistency_proof(&all[..to as usize], from as usize),
                    "{from} -> {to}"
                );
                assert!(verify_consistency(from, to, &from_root, &to_root, &proof));
            }
        }
    }

    #[test]
    fn a_chunk_not_loaded_is_an_error_not_a_panic() {
        let index = index_of(&leaves(10), |i| i);
        let plan = index.plan(5, 10);
        assert_eq!(
            plan.reads.iter().map(|r| r.chunk).collect::<Vec<_>>(),
            [1, 2]
        );
        let missing = plan.prove(5, 10, &BTreeMap::new()).unwrap_err();
        assert!([1, 2].contains(&missing.0), "{missing:?}");
        let plan = index.consistency_plan(5, 10);
        assert_eq!(
            plan.reads.iter().map(|r| r.chunk).collect::<Vec<_>>(),
            [1, 2]
        );
        let missing = plan.consistency(5, 10, &BTreeMap::new()).unwrap_err();
        assert!([1, 2].contains(&missing.0), "{missing:?}");
    }
}
