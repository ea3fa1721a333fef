//! What the log keeps in memory to prove inclusion without keeping every leaf: the root of
//! each complete chunk of [`CHUNK`] leaves and the byte offset where the chunk starts in the
//! file (40 bytes per 1,024 entries). A proof needs the leaves of at most two chunks — the
//! entry's own and the partial one at the tree's edge — which are read back from the file;
//! every larger sibling subtree is made of whole chunks.

use std::collections::BTreeMap;

use super::merkle::{Hash, inclusion_proof_by, node_hash, root, split};

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
        let complete = (size / self.chunk) as usize;
        let mut chunks = vec![index / self.chunk];
        if !size.is_multiple_of(self.chunk) {
            chunks.push(size / self.chunk);
        }
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

    /// The root over leaves `lo..hi` (a node of the tree).
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
    use crate::audit::merkle::{Frontier, inclusion_proof, leaf_hash, verify_inclusion};

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
    }
}
