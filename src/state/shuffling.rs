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
/// applies rounds `0, 1, ..., R-1` to an index; permuting a list by a round
/// composes on the other side, so the list form applies them from `R-1` down to 0.
pub fn shuffle_list(
    list: &mut [u64],
    seed: &[u8; 32],
    shuffle_round_count: u8,
) -> Result<(), ShufflingError> {
    let count = list.len();
    check_size(count as u64)?;
    if count <= 1 {
        return Ok(());
    }
    for round in (0..shuffle_round_count).rev() {
        let mut source = RoundSource::new(seed, round);
        // pivot < count <= 2^24, so it fits in usize.
        let pivot = source.pivot(count as u64) as usize;
        // Pairs (a, b) with a + b == pivot cover 0..=pivot; pairs with
        // a + b == pivot + count cover the rest. Each pair is decided by b, the larger.
        swap_mirrored_pairs(list, &mut source, pivot, pivot);
        swap_mirrored_pairs(list, &mut source, pivot + count, count - 1);
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
fn swap_mirrored_pairs(list: &mut [u64], source: &mut RoundSource, sum: usize, last: usize) {
    let mut first = sum / 2 + 1;
    while first <= last {
        let block_last = last.min(first | 0xff);
        let len = block_last - first + 1;
        let bits = source.block_bits(first >> 8);
        // b > sum / 2 > sum - b, so the partners of this block all lie below
        // `first`: two disjoint slices of equal length.
        let (below, above) = list.split_at_mut(first);
        let low = &mut below[sum - block_last..][..len];
        let high = &mut above[..len];
        swap_selected(low, high, &bits, first & 0xff);
        first = block_last + 1;
    }
}

/// Swaps `high[k]` with `low[len - 1 - k]` where bit `offset + k` of `bits`
/// is set: bit by bit up to a byte boundary, then a byte (8 pairs) at a time,
/// then bit by bit for the rest.
fn swap_selected(low: &mut [u64], high: &mut [u64], bits: &[u8; 32], offset: usize) {
    let head = ((8 - offset % 8) % 8).min(high.len());
    let (high_head, high) = high.split_at_mut(head);
    let (low, low_head) = low.split_at_mut(low.len() - head);
    swap_bit_by_bit(low_head, high_head, bits, offset);

    let offset = offset + head;
    let tail_offset = offset + high.len() / 8 * 8;
    let mut high_bytes = high.chunks_exact_mut(8);
    let mut low_bytes = low.rchunks_exact_mut(8);
    let bytes = bits.iter().skip(offset / 8);
    for ((high, low), &byte) in (&mut high_bytes).zip(&mut low_bytes).zip(bytes) {
        for j in 0..8 {
            swap_masked(&mut low[7 - j], &mut high[j], byte >> j);
        }
    }
    let (low_tail, high_tail) = (low_bytes.into_remainder(), high_bytes.into_remainder());
    swap_bit_by_bit(low_tail, high_tail, bits, tail_offset);
}

/// [`swap_selected`] for a few pairs, one bit at a time (`offset + len <= 256`).
fn swap_bit_by_bit(low: &mut [u64], high: &mut [u64], bits: &[u8; 32], offset: usize) {
    for (k, (high, low)) in high.iter_mut().zip(low.iter_mut().rev()).enumerate() {
        let bit = offset + k;
        swap_masked(low, high, bits[bit >> 3] >> (bit & 7));
    }
}

/// Swaps `low` and `high` if the lowest bit of `bit` is set, without a branch:
/// the bits are random, so a branch would be mispredicted half the time (LLVM
/// turns an `if` select into one here, and the loop ran several times slower).
fn swap_masked(low: &mut u64, high: &mut u64, bit: u8) {
    let mask = 0u64.wrapping_sub(u64::from(bit & 1));
    let difference = (*low ^ *high) & mask;
    *low ^= difference;
    *high ^= difference;
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
