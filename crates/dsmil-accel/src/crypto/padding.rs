//! Merkle–Damgård padding shared by SHA-256 (64-byte blocks, 8-byte length) and SHA-512
//! (128-byte blocks, 16-byte length): `message ‖ 0x80 ‖ 0… ‖ bit length, big-endian`.

/// Blocks of `block` bytes in the padded form of a `len`-byte message whose length field is
/// `length_field` bytes.
pub(crate) fn block_count(len: usize, block: usize, length_field: usize) -> usize {
    (len + 1 + length_field).div_ceil(block)
}

/// Writes block `index` of the padded message into `out` (whose length is the block size).
pub(crate) fn padded_block(msg: &[u8], index: usize, out: &mut [u8], length_field: usize) {
    let block = out.len();
    let start = index * block;
    if start + block <= msg.len() {
        out.copy_from_slice(&msg[start..start + block]);
        return;
    }
    out.fill(0);
    if start < msg.len() {
        out[..msg.len() - start].copy_from_slice(&msg[start..]);
    }
    if (start..start + block).contains(&msg.len()) {
        out[msg.len() - start] = 0x80;
    }
    if index + 1 == block_count(msg.len(), block, length_field) {
        let bits = (msg.len() as u128) * 8;
        out[block - length_field..].copy_from_slice(&bits.to_be_bytes()[16 - length_field..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_around_the_boundaries() {
        for (len, blocks) in [
            (0, 1),
            (55, 1),
            (56, 2),
            (63, 2),
            (64, 2),
            (119, 2),
            (120, 3),
        ] {
            assert_eq!(block_count(len, 64, 8), blocks, "len {len}");
        }
        for (len, blocks) in [(0, 1), (111, 1), (112, 2), (128, 2), (239, 2), (240, 3)] {
            assert_eq!(block_count(len, 128, 16), blocks, "len {len}");
        }
        let mut out = [0u8; 64];
        padded_block(b"abc", 0, &mut out, 8);
        assert_eq!(&out[..4], b"abc\x80");
        assert_eq!(out[63], 24);
    }
}
