//! Multi-buffer hashing through the engine: the async face of [`crate::crypto`]'s SHA kernels,
//! run on the compute pool and counted under their own operation kinds.

use super::{AccelError, Engine, OpKind};
use crate::crypto::{sha256, sha512};

impl Engine {
    /// SHA-256 of each message, in order, on the compute pool.
    pub async fn sha256_many(&self, messages: Vec<Vec<u8>>) -> Result<Vec<[u8; 32]>, AccelError> {
        let bytes = messages.iter().map(|m| m.len() as u64).sum();
        let done = self
            .run(OpKind::Sha256, bytes, move |platform| {
                let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
                sha256::sha256_many(platform, &refs)
            })
            .await?;
        Ok(done.value)
    }

    /// SHA-512 of each message, in order, on the compute pool.
    pub async fn sha512_many(&self, messages: Vec<Vec<u8>>) -> Result<Vec<[u8; 64]>, AccelError> {
        let bytes = messages.iter().map(|m| m.len() as u64).sum();
        let done = self
            .run(OpKind::Sha512, bytes, move |platform| {
                let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
                sha512::sha512_many(platform, &refs)
            })
            .await?;
        Ok(done.value)
    }
}
