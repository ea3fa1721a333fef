//! `GET /api/audit/proof/{seq}`: an entry's inclusion proof in the latest signed tree head
//! (RFC 9162), which `dsmilctl audit prove` checks locally.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The proof that one entry is in a signed tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's line, exactly as written.
    pub entry: String,
    /// Its leaf hash, hex.
    pub leaf: String,
    /// The size of the signed tree.
    pub tree_size: u64,
    /// The tree's root, hex.
    pub root: String,
    /// Sibling hashes from the leaf up, hex.
    pub proof: Vec<String>,
}
