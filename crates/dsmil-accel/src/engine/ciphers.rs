//! Stream ciphers through the engine: the async face of [`crate::crypto`]'s ChaCha20 and
//! multi-key AES-CTR kernels. Buffers are owned so they can move to the compute pool; keys are
//! held in `Zeroizing` wrappers so they are wiped when the job is done.

use zeroize::Zeroizing;

use super::{AccelError, Engine, OpKind};
use crate::crypto::aes::{Aes256x16, CtrStream};
use crate::crypto::chacha20::{Chacha20Stream, chacha20_xor_many};

/// One ChaCha20 stream with owned data: `data` is XORed with the keystream of `(key, nonce)`
/// from block `counter` on.
pub struct OwnedChacha20Stream {
    /// 256-bit key, wiped on drop.
    pub key: Zeroizing<[u8; 32]>,
    /// 96-bit nonce.
    pub nonce: [u8; 12],
    /// Block counter of the first 64 bytes.
    pub counter: u32,
    /// Plaintext in, ciphertext out (or the reverse).
    pub data: Vec<u8>,
}

impl Engine {
    /// Encrypts (or decrypts) every stream on the compute pool; returns the buffers in order.
    pub async fn chacha20_xor_many(
        &self,
        streams: Vec<OwnedChacha20Stream>,
    ) -> Result<Vec<Vec<u8>>, AccelError> {
        let bytes = streams.iter().map(|s| s.data.len() as u64).sum();
        let done = self
            .run(OpKind::ChaCha20, bytes, move |platform| {
                let mut streams = streams;
                let mut views: Vec<Chacha20Stream<'_>> = streams
                    .iter_mut()
                    .map(|s| Chacha20Stream::new(&s.key, s.nonce, s.counter, &mut s.data))
                    .collect();
                chacha20_xor_many(platform, &mut views)?;
                drop(views);
                Ok(streams
                    .into_iter()
                    .map(|mut s| std::mem::take(&mut s.data))
                    .collect())
            })
            .await?;
        done.value
    }

    /// AES-256-CTR with one key per stream (up to 16): stream `i` (its first counter block and
    /// data) uses `keys[i]`. Returns the buffers in order.
    pub async fn aes256_ctr_xor_many(
        &self,
        keys: Vec<Zeroizing<[u8; 32]>>,
        streams: Vec<([u8; 16], Vec<u8>)>,
    ) -> Result<Vec<Vec<u8>>, AccelError> {
        let bytes = streams.iter().map(|(_, d)| d.len() as u64).sum();
        let done = self
            .run(OpKind::Aes, bytes, move |platform| {
                let raw: Vec<[u8; 32]> = keys.iter().map(|k| **k).collect();
                let raw = Zeroizing::new(raw);
                let cipher = Aes256x16::new(platform, &raw)?;
                let mut streams = streams;
                let mut views: Vec<CtrStream<'_>> = streams
                    .iter_mut()
                    .map(|(block, data)| CtrStream::new(*block, data))
                    .collect();
                cipher.ctr_xor_many(&mut views)?;
                drop(views);
                Ok(streams.into_iter().map(|(_, d)| d).collect())
            })
            .await?;
        done.value
    }
}
