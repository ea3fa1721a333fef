//! The one multi-buffer manager of the SHA-2 kernels: queue messages with a tag, each lane
//! hashes one message, and a lane is refilled from the queue as soon as its message is done
//! (intel-ipsec-mb's pattern), so mixed sizes keep every lane busy.
//!
//! An algorithm supplies only its own parts through [`LaneHash`] — block and length-field
//! sizes, state word, initial state, the portable one-block compression, and which
//! compress-N-lanes kernel a [`Platform`] selects; padding, digests, one-shot hashing, the
//! portable fallback and the manager ([`Lanes`], [`hash_many`]) are written once, here.

use std::collections::VecDeque;

use super::padding;
use crate::Platform;

/// Most lanes any kernel uses (the manager keeps its per-step arrays on the stack).
pub const MAX_LANES: usize = 16;

/// A word of a SHA-2 chaining state, written big-endian into digests (`u32` for SHA-256,
/// `u64` for SHA-512).
pub trait StateWord: Copy + Default {
    /// Bytes per word.
    const BYTES: usize;
    /// Writes the word big-endian into `out` (`BYTES` long).
    fn write_be(self, out: &mut [u8]);
}

impl StateWord for u32 {
    const BYTES: usize = 4;
    fn write_be(self, out: &mut [u8]) {
        out.copy_from_slice(&self.to_be_bytes());
    }
}

impl StateWord for u64 {
    const BYTES: usize = 8;
    fn write_be(self, out: &mut [u8]) {
        out.copy_from_slice(&self.to_be_bytes());
    }
}

/// The chaining state of one message of `H`: eight words.
pub type State<H> = [<H as LaneHash>::Word; 8];

/// `true` when bit `lane` of `active` is set (lanes past 31 are never active).
#[inline(always)]
pub(crate) fn is_active(active: u32, lane: usize) -> bool {
    lane < 32 && (active >> lane) & 1 == 1
}

/// A Merkle–Damgård hash of the SHA-2 family with lane-parallel compression kernels: the
/// per-algorithm parts. Everything else is a provided method or lives in [`Lanes`].
pub trait LaneHash {
    /// Block length in bytes (64 for SHA-256, 128 for SHA-512).
    const BLOCK_LEN: usize;
    /// Bytes of the big-endian bit length that ends the padding (8 or 16).
    const LENGTH_LEN: usize;
    /// State word.
    type Word: StateWord;
    /// One block, as the portable compression takes it (`[u8; BLOCK_LEN]`).
    type Block: Copy + AsRef<[u8]> + AsMut<[u8]>;
    /// Digest bytes (`[u8; 8 * Word::BYTES]`).
    type Digest: Copy + AsMut<[u8]>;
    /// Initial hash value H(0).
    const INITIAL: State<Self>;
    /// A zeroed block.
    const ZERO_BLOCK: Self::Block;
    /// A zeroed digest.
    const ZERO_DIGEST: Self::Digest;

    /// Lanes the kernel `platform` selects runs at once (1 to [`MAX_LANES`]).
    fn lanes(platform: Platform) -> usize;

    /// Compresses `run` blocks of every lane whose bit is set in `active`, on the kernel
    /// `platform` selects; lane `i` continues message `inputs[i].0` at block `inputs[i].1`.
    /// Any number of lanes is correct; [`LaneHash::lanes`] of them is the fast case.
    fn compress_lanes(
        platform: Platform,
        states: &mut [State<Self>],
        inputs: &[(&[u8], usize)],
        run: usize,
        active: u32,
    );

    /// Compresses one block into `state`: the portable reference and fallback.
    fn compress_block(state: &mut State<Self>, block: &Self::Block);

    /// Blocks of the padded form of a `len`-byte message.
    fn block_count(len: usize) -> usize {
        padding::block_count(len, Self::BLOCK_LEN, Self::LENGTH_LEN)
    }

    /// Writes block `index` of the padded form of `msg` into `out` (`BLOCK_LEN` bytes).
    fn padded_block(msg: &[u8], index: usize, out: &mut [u8]) {
        padding::padded_block(msg, index, out, Self::LENGTH_LEN);
    }

    /// The digest of a finished state: its words big-endian.
    fn digest(state: &State<Self>) -> Self::Digest {
        let mut out = Self::ZERO_DIGEST;
        for (chunk, word) in out.as_mut().chunks_exact_mut(Self::Word::BYTES).zip(state) {
            word.write_be(chunk);
        }
        out
    }

    /// The digest of one message, on the portable compression.
    fn hash(message: &[u8]) -> Self::Digest {
        let mut state = [Self::INITIAL];
        compress_each::<Self>(
            &mut state,
            &[(message, 0)],
            Self::block_count(message.len()),
            1,
        );
        Self::digest(&state[0])
    }
}

/// The portable fallback of every [`LaneHash::compress_lanes`]: each active lane's `run`
/// blocks, one lane at a time (generic, so padding and compression are inlined: this is the
/// hot loop on machines without SIMD paths).
pub(crate) fn compress_each<H: LaneHash + ?Sized>(
    states: &mut [State<H>],
    inputs: &[(&[u8], usize)],
    run: usize,
    active: u32,
) {
    let mut block = H::ZERO_BLOCK;
    for (i, (state, (msg, first))) in states.iter_mut().zip(inputs).enumerate() {
        if is_active(active, i) {
            for b in 0..run {
                H::padded_block(msg, first + b, block.as_mut());
                H::compress_block(state, &block);
            }
        }
    }
}

struct Lane<'a, S, T> {
    tag: T,
    message: &'a [u8],
    next_block: usize,
    blocks: usize,
    state: S,
}

/// Hashes queued messages as many at a time as the platform's kernel has lanes; see the
/// module documentation.
pub struct Lanes<'a, H: LaneHash, T> {
    platform: Platform,
    queue: VecDeque<(T, &'a [u8])>,
    lanes: Vec<Option<Lane<'a, State<H>, T>>>,
    done: Vec<(T, H::Digest)>,
}

impl<'a, H: LaneHash, T> Lanes<'a, H, T> {
    /// An empty manager running on the kernel `platform` selects.
    pub fn new(platform: Platform) -> Self {
        let lanes = H::lanes(platform).clamp(1, MAX_LANES);
        Self {
            platform,
            queue: VecDeque::new(),
            lanes: (0..lanes).map(|_| None).collect(),
            done: Vec::new(),
        }
    }

    /// How many messages are hashed at once.
    pub fn lane_count(&self) -> usize {
        self.lanes.len()
    }

    /// Queues `message` under `tag`; hashing starts once every lane can be filled.
    pub fn push(&mut self, tag: T, message: &'a [u8]) {
        self.queue.push_back((tag, message));
        if self.queue.len() >= self.lanes.len() {
            self.run_while_full();
        }
    }

    /// Digests finished so far, taken out of the manager.
    pub fn take_finished(&mut self) -> Vec<(T, H::Digest)> {
        std::mem::take(&mut self.done)
    }

    /// Hashes everything still queued or in flight and returns every digest not yet taken.
    pub fn finish(mut self) -> Vec<(T, H::Digest)> {
        loop {
            self.refill();
            if !self.step() {
                break;
            }
        }
        self.done
    }

    /// Runs while all lanes have work (partially filled lanes wait for more messages).
    fn run_while_full(&mut self) {
        loop {
            self.refill();
            if self.lanes.iter().any(Option::is_none) || !self.step() {
                break;
            }
        }
    }

    fn refill(&mut self) {
        for slot in self.lanes.iter_mut().filter(|l| l.is_none()) {
            let Some((tag, message)) = self.queue.pop_front() else {
                break;
            };
            *slot = Some(Lane {
                tag,
                message,
                next_block: 0,
                blocks: H::block_count(message.len()),
                state: H::INITIAL,
            });
        }
    }

    /// Compresses as many blocks as every active lane still has (at least one); `false` when
    /// no lane is active.
    fn step(&mut self) -> bool {
        let Some(run) = self
            .lanes
            .iter()
            .flatten()
            .map(|l| l.blocks - l.next_block)
            .min()
        else {
            return false;
        };
        let lanes = self.lanes.len();
        let mut states: [State<H>; MAX_LANES] = [H::INITIAL; MAX_LANES];
        let mut inputs: [(&[u8], usize); MAX_LANES] = [(&[], 0); MAX_LANES];
        let mut active = 0u32;
        for (i, lane) in self.lanes.iter().enumerate() {
            if let Some(l) = lane {
                states[i] = l.state;
                inputs[i] = (l.message, l.next_block);
                active |= 1 << i;
            }
        }
        H::compress_lanes(
            self.platform,
            &mut states[..lanes],
            &inputs[..lanes],
            run,
            active,
        );
        for (i, slot) in self.lanes.iter_mut().enumerate() {
            if let Some(l) = slot {
                l.state = states[i];
                l.next_block += run;
                if l.next_block == l.blocks
                    && let Some(l) = slot.take()
                {
                    self.done.push((l.tag, H::digest(&l.state)));
                }
            }
        }
        true
    }
}

/// Digests of `messages`, in order, through a [`Lanes`] manager.
pub fn hash_many<H: LaneHash>(platform: Platform, messages: &[&[u8]]) -> Vec<H::Digest> {
    let mut lanes: Lanes<'_, H, usize> = Lanes::new(platform);
    let mut out: Vec<Option<H::Digest>> = vec![None; messages.len()];
    for (i, m) in messages.iter().enumerate() {
        lanes.push(i, m);
        for (j, d) in lanes.take_finished() {
            out[j] = Some(d);
        }
    }
    for (j, d) in lanes.finish() {
        out[j] = Some(d);
    }
    // Every message was queued and every queued message finishes, so all slots are filled.
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_past_the_mask_are_inactive() {
        assert!(is_active(0b101, 0) && !is_active(0b101, 1) && is_active(0b101, 2));
        assert!(!is_active(u32::MAX, 32) && !is_active(u32::MAX, 100));
        assert!(is_active(u32::MAX, 31));
    }
}
