//! The multi-buffer manager shared by the SHA kernels: queue messages with a tag, each lane
//! hashes one message, and a lane is refilled from the queue as soon as its message is done
//! (intel-ipsec-mb's pattern), so mixed sizes keep every lane busy.

use std::collections::VecDeque;

use crate::Platform;

/// Most lanes any kernel uses (the manager keeps its per-step arrays on the stack).
pub const MAX_LANES: usize = 16;

/// A hash with a lane-parallel compression function.
pub trait LaneHash {
    /// Lanes per call of the SIMD kernel (at most [`MAX_LANES`]).
    const LANES: usize;
    /// Chaining state of one message.
    type State: Copy + Default;
    /// Digest of one message.
    type Digest: Copy;
    /// State before the first block.
    fn initial() -> Self::State;
    /// Padded blocks of a message of `len` bytes.
    fn block_count(len: usize) -> usize;
    /// Compresses `run` blocks of every lane whose bit is set in `active`; lane `i` continues
    /// message `inputs[i].0` at block `inputs[i].1`.
    fn compress(
        platform: Platform,
        states: &mut [Self::State],
        inputs: &[(&[u8], usize)],
        run: usize,
        active: u32,
    );
    /// The digest of a finished state.
    fn digest(state: &Self::State) -> Self::Digest;
}

struct Lane<'a, S, T> {
    tag: T,
    message: &'a [u8],
    next_block: usize,
    blocks: usize,
    state: S,
}

/// Hashes queued messages `LANES` at a time; see the module documentation.
pub struct Lanes<'a, H: LaneHash, T> {
    platform: Platform,
    queue: VecDeque<(T, &'a [u8])>,
    lanes: Vec<Option<Lane<'a, H::State, T>>>,
    done: Vec<(T, H::Digest)>,
}

impl<'a, H: LaneHash, T> Lanes<'a, H, T> {
    /// An empty manager running on `platform`.
    pub fn new(platform: Platform) -> Self {
        Self {
            platform,
            queue: VecDeque::new(),
            lanes: (0..H::LANES.min(MAX_LANES)).map(|_| None).collect(),
            done: Vec::new(),
        }
    }

    /// Queues `message` under `tag`; hashing starts once every lane can be filled.
    pub fn push(&mut self, tag: T, message: &'a [u8]) {
        self.queue.push_back((tag, message));
        if self.queue.len() >= H::LANES {
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
                state: H::initial(),
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
        let lanes = H::LANES.min(MAX_LANES);
        let mut states = [H::State::default(); MAX_LANES];
        let mut inputs: [(&[u8], usize); MAX_LANES] = [(&[], 0); MAX_LANES];
        let mut active = 0u32;
        for (i, lane) in self.lanes.iter().enumerate() {
            if let Some(l) = lane {
                states[i] = l.state;
                inputs[i] = (l.message, l.next_block);
                active |= 1 << i;
            }
        }
        H::compress(
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

/// The portable fallback of every [`LaneHash::compress`]: each active lane's `run` blocks, one
/// lane at a time, padded with `pad` and compressed with `compress` (generic, so both are
/// inlined: this is the hot loop on machines without SIMD paths).
pub(crate) fn compress_each<S, const B: usize>(
    states: &mut [S],
    inputs: &[(&[u8], usize)],
    run: usize,
    active: u32,
    pad: impl Fn(&[u8], usize, &mut [u8; B]),
    compress: impl Fn(&mut S, &[u8; B]),
) {
    let mut block = [0u8; B];
    for (i, (state, (msg, first))) in states.iter_mut().zip(inputs).enumerate() {
        if active & (1 << i) != 0 {
            for b in 0..run {
                pad(msg, first + b, &mut block);
                compress(state, &block);
            }
        }
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
