//! The swap-or-not shuffle of the consensus specs, which orders the active
//! validators of an epoch before they are cut into committees.
//!
//! Two forms with the same result:
//! - [`compute_shuffled_index`]: the phase0 spec function, one index at a time
//!   (two SHA-256 per round per index);
//! - [`shuffle_list`]: the whole list at once, so that afterwards
//!   `list[i] == original[compute_shuffled_index(i, n, seed)]` for every `i`,
//!   which is exactly the order `compute_committee` reads committees in. It
//!   costs one pivot hash per round and one source hash per 256 positions.
//!
//! Both accept at most [`MAX_SHUFFLE_LIST_SIZE`] elements.

use ethereum_hashing::hash_fixed;
use thiserror::Error;

/// The largest list (or `index_count`) either form accepts: 2^24, about 16.7
/// million validators. The spec allows more (its position blocks are uint32),
/// but this is eight times today's mainnet registry, keeps a shuffled list of
/// `u64` under 128 MiB and bounds the work an untrusted count can ask for.
pub const MAX_SHUFFLE_LIST_SIZE: u64 = 1 << 24;

/// Why a shuffle was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShufflingError {
    /// `compute_shuffled_index` was asked for an index outside the list.
    #[error("index {index} is not below the index count {index_count}")]
    IndexOutOfRange { index: u64, index_count: u64 },
    /// The list is longer than [`MAX_SHUFFLE_LIST_SIZE`].
    #[error("cannot shuffle {count} elements: the bound is {MAX_SHUFFLE_LIST_SIZE}")]
    ListTooLarge { count: u64 },
}

/// The spec's `compute_shuffled_index`: the position in the unshuffled list
/// whose element ends up at `index` of the shuffled one.
pub fn compute_shuffled_index(
    index: u64,
    index_count: u64,
    seed: &[u8; 32],
    shuffle_round_count: u8,
) -> Result<u64, ShufflingError> {
    check_size(index_count)?;
    if index >= index_count {
        return Err(ShufflingError::IndexOutOfRange { index, index_count });
    }
    let mut index = index;
    for round in 0..shuffle_round_count {
        let mut source = RoundSource::new(seed, round);
        // Both operands are below 2^24 (checked above), so this cannot overflow.
        let flip = (source.pivot(index_count) + index_count - index) % index_count;
        let position = index.max(flip);
        if source.bit(position) {
            index = flip;
        }
    }
    Ok(index)
}

/// Shuffles `list` in place so that `list[i]` becomes the element that was at
/// `compute_shuffled_index(i, list.len(), seed, shuffle_round_count)`.
///
/// Every round of the shuffle is an involution that swaps `i` with its `flip`
/// when the source bit of the larger of the two is set. `compute_shuffled_index`
/// applies rounds `0, 1, ..., R-1` to an index; permuting the list by a round
/// composes on the other side, so the list form applies them from `R-1` down to 0.
pub fn shuffle_list<T: Copy>(
    list: &mut [T],
    seed: &[u8; 32],
    shuffle_round_count: u8,
) -> Result<(), ShufflingError> {
    let count = list.len() as u64;
    check_size(count)?;
    if count <= 1 {
        return Ok(());
    }
    for round in (0..shuffle_round_count).rev() {
        let mut source = RoundSource::new(seed, round);
        // pivot < count <= 2^24, so it fits in usize.
        let pivot = source.pivot(count) as usize;
        // Pairs (a, b) with a + b == pivot cover 0..=pivot; pairs with
        // a + b == pivot + count cover the rest. Each pair is decided by b, the larger.
        swap_mirrored_pairs(list, &mut source, pivot, pivot);
        swap_mirrored_pairs(list, &mut source, pivot + list.len(), list.len() - 1);
    }
    Ok(())
}

fn check_size(count: u64) -> Result<(), ShufflingError> {
    if count > MAX_SHUFFLE_LIST_SIZE {
        return Err(ShufflingError::ListTooLarge { count });
    }
    Ok(())
}

/// For every `b` in `sum/2 + 1 ..= last`, swaps `list[sum - b]` with `list[b]`
/// if the round's source bit for position `b` is set. Walks one 256-position
/// block at a time so that each block costs one hash.
fn swap_mirrored_pairs<T: Copy>(list: &mut [T], source: &mut RoundSource, sum: usize, last: usize) {
    let mut first = sum / 2 + 1;
    while first <= last {
        let block_last = last.min(first | 0xff);
        let bits = source.block_bits(first >> 8);
        for b in first..=block_last {
            let a = sum - b;
            // A select rather than a branch: the bits are random, a branch would
            // be mispredicted half the time.
            let swap = (bits[(b & 0xff) >> 3] >> (b & 7)) & 1 == 1;
            let (x, y) = (list[a], list[b]);
            list[a] = if swap { y } else { x };
            list[b] = if swap { x } else { y };
        }
        first = block_last + 1;
    }
}

/// The hashes of one round: `hash(seed ‖ round)` for the pivot and
/// `hash(seed ‖ round ‖ uint32(position // 256))` for the source bits, the
/// latter cached for the last block asked for.
struct RoundSource {
    preimage: [u8; 37],
    block: Option<usize>,
    bits: [u8; 32],
}

impl RoundSource {
    fn new(seed: &[u8; 32], round: u8) -> Self {
        let mut preimage = [0u8; 37];
        preimage[..32].copy_from_slice(seed);
        preimage[32] = round;
        RoundSource {
            preimage,
            block: None,
            bits: [0; 32],
        }
    }

    /// `bytes_to_uint64(hash(seed ‖ round)[0:8]) % count`; `count` is not 0.
    fn pivot(&self, count: u64) -> u64 {
        let digest = hash_fixed(&self.preimage[..33]);
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(prefix) % count
    }

    /// The 256 source bits of positions `block * 256 ..= block * 256 + 255`.
    fn block_bits(&mut self, block: usize) -> [u8; 32] {
        if self.block != Some(block) {
            // Positions are below MAX_SHUFFLE_LIST_SIZE, so a block fits in u32.
            self.preimage[33..].copy_from_slice(&(block as u32).to_le_bytes());
            self.bits = hash_fixed(&self.preimage);
            self.block = Some(block);
        }
        self.bits
    }

    /// The source bit of `position` (below [`MAX_SHUFFLE_LIST_SIZE`]).
    fn bit(&mut self, position: u64) -> bool {
        let position = position as usize;
        let bits = self.block_bits(position >> 8);
        (bits[(position & 0xff) >> 3] >> (position & 7)) & 1 == 1
    }
}
