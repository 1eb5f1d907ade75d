//! Balance-weighted sampling of validators, the loop shared by
//! `get_next_sync_committee_indices` and `compute_proposer_index`: walk the
//! candidates in shuffled order and keep each with a probability that grows
//! with its effective balance.
//!
//! The acceptance test is the fork's: up to deneb a random byte against
//! `MAX_EFFECTIVE_BALANCE`, from electra on a 16-bit random value against
//! `MAX_EFFECTIVE_BALANCE_ELECTRA` (`BalanceWeighting`).

use ethereum_hashing::hash_fixed;
use thiserror::Error;

use super::containers::Validator;
use super::shuffling::{compute_shuffled_index, shuffle_list, ShufflingError};
use crate::spec::config::{MAX_EFFECTIVE_BALANCE, MAX_EFFECTIVE_BALANCE_ELECTRA};
use crate::spec::{ForkName, Root, ValidatorIndex};

/// Candidates drawn one index at a time before the whole list is shuffled
/// instead. One `compute_shuffled_index` costs two hashes per round; a
/// proposer draw usually ends within `MAX_EFFECTIVE_BALANCE_ELECTRA /
/// effective_balance` (64 at 32 ETH) candidates, where shuffling a large
/// registry would cost far more, while a sync committee (hundreds of seats)
/// or an unlucky draw gets the whole-list shuffle, which costs one hash per
/// 256 positions per round.
const CANDIDATES_SHUFFLED_ONE_BY_ONE: u64 = 256;

/// Why a draw could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SamplingError {
    /// No active validator to draw from.
    #[error("there is no active validator to draw from")]
    NoCandidates,
    /// The candidates could not be shuffled.
    #[error(transparent)]
    Shuffling(#[from] ShufflingError),
    /// A candidate index is beyond the validator registry.
    #[error("candidate validator index {index} is not in the registry of {count} validators")]
    UnknownCandidate { index: ValidatorIndex, count: usize },
    /// The draw did not fill its seats within the bound on candidates.
    #[error(
        "drew {selected} of {wanted} validators in {candidates} candidates, the bound: \
         effective balances this low make the draw unbounded"
    )]
    Exhausted {
        wanted: usize,
        selected: usize,
        candidates: u64,
    },
}

/// The fork's acceptance test: `effective_balance * MAX_RANDOM >=
/// max_effective_balance * random`, with `random` read from
/// `hash(seed + uint_to_bytes(i // values_per_hash))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BalanceWeighting {
    /// Phase0 to deneb: the byte `i % 32` of the hash, `MAX_RANDOM_BYTE =
    /// 2**8 - 1`, against `MAX_EFFECTIVE_BALANCE`.
    RandomByte,
    /// Electra on: the little-endian 16-bit value at byte `i % 16 * 2`,
    /// `MAX_RANDOM_VALUE = 2**16 - 1`, against `MAX_EFFECTIVE_BALANCE_ELECTRA`.
    RandomValue16,
}

impl BalanceWeighting {
    /// The rule of `fork`.
    pub(crate) fn of_fork(fork: ForkName) -> Self {
        if fork >= ForkName::Electra {
            BalanceWeighting::RandomValue16
        } else {
            BalanceWeighting::RandomByte
        }
    }

    /// `MAX_RANDOM_BYTE` or `MAX_RANDOM_VALUE`.
    fn max_random(self) -> u64 {
        match self {
            BalanceWeighting::RandomByte => u64::from(u8::MAX),
            BalanceWeighting::RandomValue16 => u64::from(u16::MAX),
        }
    }

    fn max_effective_balance(self) -> u64 {
        match self {
            BalanceWeighting::RandomByte => MAX_EFFECTIVE_BALANCE,
            BalanceWeighting::RandomValue16 => MAX_EFFECTIVE_BALANCE_ELECTRA,
        }
    }

    /// How many random values one hash yields.
    fn values_per_hash(self) -> u64 {
        match self {
            BalanceWeighting::RandomByte => 32,
            BalanceWeighting::RandomValue16 => 16,
        }
    }

    /// The random value of candidate `i` in the hash of its block.
    fn random_value(self, hash: &[u8; 32], i: u64) -> u64 {
        // The remainders are below 32 and 16, so the offsets are in range.
        match self {
            BalanceWeighting::RandomByte => u64::from(hash[(i % 32) as usize]),
            BalanceWeighting::RandomValue16 => {
                let offset = (i % 16 * 2) as usize;
                u64::from(u16::from_le_bytes([hash[offset], hash[offset + 1]]))
            }
        }
    }

    /// The acceptance test, in u128 so that no effective balance overflows.
    fn accepts(self, effective_balance: u64, random: u64) -> bool {
        u128::from(effective_balance) * u128::from(self.max_random())
            >= u128::from(self.max_effective_balance()) * u128::from(random)
    }

    /// The most candidates a draw of `count` looks at:
    /// `(2 * count + 32) * (MAX_RANDOM + 1)`. A random value of 0 passes
    /// whatever the balance, so every candidate passes with probability at
    /// least `1 / (MAX_RANDOM + 1)`: even a registry of zero balances (where
    /// the spec's loop needs `count * (MAX_RANDOM + 1)` candidates on
    /// average) exceeds the bound with probability below e^-25 (Chernoff),
    /// and a real registry far less. The bound ends the loop on a crafted
    /// state instead of letting it run on.
    fn candidate_bound(self, count: usize) -> u64 {
        (count as u64)
            .saturating_mul(2)
            .saturating_add(32)
            .saturating_mul(self.max_random() + 1)
    }
}

/// The candidates in the order the spec visits them: candidate `i` is
/// `indices[compute_shuffled_index(i % n, n, seed)]`.
struct ShuffledCandidates<'a> {
    indices: &'a [ValidatorIndex],
    seed: [u8; 32],
    shuffle_round_count: u8,
    /// The whole shuffled list, once more than
    /// [`CANDIDATES_SHUFFLED_ONE_BY_ONE`] candidates were asked for.
    shuffled: Option<Vec<ValidatorIndex>>,
}

impl<'a> ShuffledCandidates<'a> {
    fn new(indices: &'a [ValidatorIndex], seed: Root, shuffle_round_count: u8) -> Self {
        ShuffledCandidates {
            indices,
            seed: seed.0,
            shuffle_round_count,
            shuffled: None,
        }
    }

    /// Candidate `i`; `indices` is not empty.
    fn get(&mut self, i: u64) -> Result<ValidatorIndex, ShufflingError> {
        let count = self.indices.len() as u64;
        let position = i % count;
        if self.shuffled.is_none() && i >= CANDIDATES_SHUFFLED_ONE_BY_ONE {
            // shuffle_list leaves list[p] == indices[compute_shuffled_index(p)].
            let mut list = self.indices.to_vec();
            shuffle_list(&mut list, &self.seed, self.shuffle_round_count)?;
            self.shuffled = Some(list);
        }
        // Both forms return a position below `count`, the list's length.
        Ok(match &self.shuffled {
            Some(list) => list[position as usize],
            None => {
                let shuffled =
                    compute_shuffled_index(position, count, &self.seed, self.shuffle_round_count)?;
                self.indices[shuffled as usize]
            }
        })
    }
}

/// The random values of successive candidates, one hash per block of
/// `values_per_hash` candidates.
struct RandomValues {
    weighting: BalanceWeighting,
    preimage: [u8; 40],
    block: Option<u64>,
    hash: [u8; 32],
}

impl RandomValues {
    fn new(weighting: BalanceWeighting, seed: Root) -> Self {
        let mut preimage = [0u8; 40];
        preimage[..32].copy_from_slice(seed.as_slice());
        RandomValues {
            weighting,
            preimage,
            block: None,
            hash: [0; 32],
        }
    }

    /// The random value of candidate `i`.
    fn get(&mut self, i: u64) -> u64 {
        let block = i / self.weighting.values_per_hash();
        if self.block != Some(block) {
            self.preimage[32..].copy_from_slice(&block.to_le_bytes());
            self.hash = hash_fixed(&self.preimage);
            self.block = Some(block);
        }
        self.weighting.random_value(&self.hash, i)
    }
}

/// Draws `count` validators from `indices` (with repetition), as
/// `get_next_sync_committee_indices` (`count = SYNC_COMMITTEE_SIZE`) and
/// `compute_proposer_index` (`count = 1`) do, with `validators` the registry
/// their effective balances come from.
pub(crate) fn sample_by_effective_balance(
    validators: &[Validator],
    indices: &[ValidatorIndex],
    seed: Root,
    shuffle_round_count: u8,
    weighting: BalanceWeighting,
    count: usize,
) -> Result<Vec<ValidatorIndex>, SamplingError> {
    let draw = Draw {
        validators,
        seed,
        shuffle_round_count,
        weighting,
    };
    draw.sample(indices, count, weighting.candidate_bound(count))
}

/// What a draw reads besides its candidates.
struct Draw<'a> {
    validators: &'a [Validator],
    seed: Root,
    shuffle_round_count: u8,
    weighting: BalanceWeighting,
}

impl Draw<'_> {
    /// The spec's loop, stopped with an error after `bound` candidates.
    fn sample(
        &self,
        indices: &[ValidatorIndex],
        count: usize,
        bound: u64,
    ) -> Result<Vec<ValidatorIndex>, SamplingError> {
        if indices.is_empty() {
            return Err(SamplingError::NoCandidates);
        }
        let mut candidates = ShuffledCandidates::new(indices, self.seed, self.shuffle_round_count);
        let mut random = RandomValues::new(self.weighting, self.seed);
        let mut selected = Vec::new();
        let mut i = 0;
        while selected.len() < count {
            if i == bound {
                return Err(SamplingError::Exhausted {
                    wanted: count,
                    selected: selected.len(),
                    candidates: bound,
                });
            }
            let candidate = candidates.get(i)?;
            if self
                .weighting
                .accepts(self.effective_balance(candidate)?, random.get(i))
            {
                selected.push(candidate);
            }
            i += 1;
        }
        Ok(selected)
    }

    fn effective_balance(&self, index: ValidatorIndex) -> Result<u64, SamplingError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.validators.get(i))
            .map(|v| v.effective_balance)
            .ok_or(SamplingError::UnknownCandidate {
                index,
                count: self.validators.len(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::containers::PublicKeyBytes;

    fn validators(balances: &[u64]) -> Vec<Validator> {
        balances
            .iter()
            .map(|&effective_balance| Validator {
                effective_balance,
                ..Validator::pending(PublicKeyBytes::default())
            })
            .collect()
    }

    /// The spec's loop written out literally: `compute_shuffled_index` for
    /// every candidate and a fresh hash for every random value.
    fn literal_spec_loop(
        validators: &[Validator],
        indices: &[u64],
        seed: Root,
        weighting: BalanceWeighting,
        count: usize,
    ) -> (Vec<u64>, u64) {
        let n = indices.len() as u64;
        let mut out = Vec::new();
        let mut i = 0u64;
        while out.len() < count {
            let shuffled = compute_shuffled_index(i % n, n, &seed.0, 10).unwrap();
            let candidate = indices[shuffled as usize];
            let mut preimage = seed.0.to_vec();
            preimage.extend_from_slice(&(i / weighting.values_per_hash()).to_le_bytes());
            let hash = hash_fixed(&preimage);
            let random = weighting.random_value(&hash, i);
            let balance = validators[candidate as usize].effective_balance;
            if weighting.accepts(balance, random) {
                out.push(candidate);
            }
            i += 1;
        }
        (out, i)
    }

    #[test]
    fn both_rules_equal_the_literal_loop_past_the_switch_to_a_whole_list_shuffle() {
        // Low balances make the draw run past CANDIDATES_SHUFFLED_ONE_BY_ONE.
        let balances: Vec<u64> = (0..300).map(|i| (i % 7) * 1_000_000_000).collect();
        let registry = validators(&balances);
        let indices: Vec<u64> = (0..300).filter(|i| i % 5 != 0).collect();
        let seed = Root::repeat_byte(0x5a);
        for weighting in [
            BalanceWeighting::RandomByte,
            BalanceWeighting::RandomValue16,
        ] {
            let ours =
                sample_by_effective_balance(&registry, &indices, seed, 10, weighting, 40).unwrap();
            let (literal, candidates) = literal_spec_loop(&registry, &indices, seed, weighting, 40);
            assert_eq!(ours, literal, "{weighting:?}");
            assert!(candidates > CANDIDATES_SHUFFLED_ONE_BY_ONE, "{candidates}");
        }
    }

    #[test]
    fn the_16_bit_value_is_little_endian_and_the_byte_is_indexed_mod_32() {
        let mut hash = [0u8; 32];
        hash[6] = 0x34;
        hash[7] = 0x12;
        assert_eq!(
            BalanceWeighting::RandomValue16.random_value(&hash, 3),
            0x1234
        );
        assert_eq!(
            BalanceWeighting::RandomValue16.random_value(&hash, 19),
            0x1234
        );
        assert_eq!(BalanceWeighting::RandomByte.random_value(&hash, 38), 0x34);
    }

    #[test]
    fn acceptance_is_exact_at_the_boundary_and_never_overflows() {
        let rule = BalanceWeighting::RandomValue16;
        // 32 ETH * 65535 >= 2048 ETH * r  <=>  r <= 1023.98...
        assert!(rule.accepts(32_000_000_000, 1023));
        assert!(!rule.accepts(32_000_000_000, 1024));
        assert!(rule.accepts(u64::MAX, u64::from(u16::MAX)));
        assert!(BalanceWeighting::RandomByte.accepts(0, 0));
        assert!(!BalanceWeighting::RandomByte.accepts(0, 1));
    }

    #[test]
    fn the_bound_ends_a_draw_that_balances_starve() {
        let registry = validators(&[0; 4]);
        let draw = Draw {
            validators: &registry,
            seed: Root::ZERO,
            shuffle_round_count: 10,
            weighting: BalanceWeighting::RandomByte,
        };
        // Zero balances pass only on a zero byte: about 1 candidate in 256.
        assert_eq!(
            draw.sample(&[0, 1, 2, 3], 2, 5),
            Err(SamplingError::Exhausted {
                wanted: 2,
                selected: 0,
                candidates: 5
            })
        );
        // Within the real bound the same crafted registry fills its seats.
        let bound = BalanceWeighting::RandomByte.candidate_bound(64);
        assert_eq!(bound, 160 * 256);
        assert_eq!(draw.sample(&[0, 1, 2, 3], 64, bound).unwrap().len(), 64);
    }

    #[test]
    fn no_candidates_and_unknown_candidates_are_errors() {
        let registry = validators(&[32_000_000_000; 2]);
        let weighting = BalanceWeighting::RandomByte;
        assert_eq!(
            sample_by_effective_balance(&registry, &[], Root::ZERO, 10, weighting, 1),
            Err(SamplingError::NoCandidates)
        );
        assert_eq!(
            sample_by_effective_balance(&registry, &[5], Root::ZERO, 10, weighting, 1),
            Err(SamplingError::UnknownCandidate { index: 5, count: 2 })
        );
    }
}
