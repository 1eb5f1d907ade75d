//! The committee cache of one epoch: the active validators are shuffled once,
//! then every beacon committee is a slice of that shuffled list, and every
//! validator's attester duty is one lookup away.
//!
//! The seed (`get_seed(state, epoch, DOMAIN_BEACON_ATTESTER)`) and the active
//! validator indices come from the state; this module only does the
//! arithmetic of `get_committee_count_per_slot`, `compute_committee` and
//! `get_beacon_committee` on them.

use std::num::NonZeroU32;

use thiserror::Error;

use super::shuffling::{shuffle_list, ShufflingError};
use crate::spec::{CommitteeIndex, Epoch, Preset, Root, Slot, ValidatorIndex};

/// The largest validator index the cache accepts, exclusive: 2^26. The
/// per-validator map is dense (4 bytes per registry entry up to the largest
/// active index), so this bounds it to 256 MiB; the mainnet registry is
/// about 2^21 today.
pub const MAX_CACHED_VALIDATOR_INDEX: ValidatorIndex = 1 << 26;

/// Why a committee cache could not be built or could not answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommitteeError {
    /// The active validators could not be shuffled.
    #[error("cannot shuffle the active validators: {0}")]
    Shuffling(#[from] ShufflingError),
    /// A preset constant that the committee arithmetic divides by is zero.
    #[error("preset constant {name} is 0")]
    ZeroPresetConstant { name: &'static str },
    /// The epoch's first slot or the committee count does not fit in a `u64`.
    #[error("epoch {epoch} with SLOTS_PER_EPOCH {slots_per_epoch} and {committees_per_slot} committees per slot overflows u64")]
    Overflow {
        epoch: Epoch,
        slots_per_epoch: u64,
        committees_per_slot: u64,
    },
    /// The active validator indices are not strictly ascending (the spec's
    /// `get_active_validator_indices` order, which also rules out duplicates).
    #[error("active validator index {index} at position {position} does not follow {previous}")]
    ActiveIndicesNotAscending {
        position: usize,
        previous: ValidatorIndex,
        index: ValidatorIndex,
    },
    /// An active validator index is at or above [`MAX_CACHED_VALIDATOR_INDEX`].
    #[error("validator index {index} is not below the cache's bound {MAX_CACHED_VALIDATOR_INDEX}")]
    ValidatorIndexTooLarge { index: ValidatorIndex },
    /// A committee of a slot of another epoch was asked for.
    #[error("slot {slot} is in epoch {slot_epoch}, not in the cached epoch {epoch}")]
    SlotOutsideEpoch {
        slot: Slot,
        slot_epoch: Epoch,
        epoch: Epoch,
    },
    /// The committee index is not below the number of committees per slot.
    #[error("committee index {index} at slot {slot} is not below committees_per_slot {committees_per_slot}")]
    CommitteeIndexOutOfRange {
        slot: Slot,
        index: CommitteeIndex,
        committees_per_slot: u64,
    },
}

/// Where a validator attests in the cached epoch: what the attester duties
/// endpoint returns and what `is_aggregator` needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttesterPosition {
    /// The slot of the validator's committee.
    pub slot: Slot,
    /// The committee's index within its slot.
    pub committee_index: CommitteeIndex,
    /// The number of members of the committee.
    pub committee_length: u64,
    /// The validator's position within the committee (its aggregation bit).
    pub position_in_committee: u64,
    /// The number of committees at the slot (`committees_per_slot`).
    pub committees_at_slot: u64,
}

/// One beacon committee of the cached epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeaconCommittee<'a> {
    /// The committee's slot.
    pub slot: Slot,
    /// The committee's index within its slot.
    pub index: CommitteeIndex,
    /// The validator indices in committee order.
    pub members: &'a [ValidatorIndex],
}

/// Every beacon committee of one epoch, computed from one shuffle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeCache {
    epoch: Epoch,
    start_slot: Slot,
    slots_per_epoch: u64,
    committees_per_slot: u64,
    /// `committees_per_slot * slots_per_epoch`, checked at construction.
    committee_count: u64,
    /// The active validators in `compute_committee` order.
    shuffling: Vec<ValidatorIndex>,
    /// `shuffling_positions[v] = 1 + position of v in shuffling`, for active
    /// `v`; positions fit in u32 because the list length is bounded by 2^24.
    shuffling_positions: Vec<Option<NonZeroU32>>,
}

/// The spec's `get_committee_count_per_slot` for `active_validator_count`
/// active validators: `max(1, min(MAX_COMMITTEES_PER_SLOT, active //
/// SLOTS_PER_EPOCH // TARGET_COMMITTEE_SIZE))`.
pub fn get_committee_count_per_slot(
    active_validator_count: u64,
    preset: &Preset,
) -> Result<u64, CommitteeError> {
    let per_slot = active_validator_count
        .checked_div(preset.SLOTS_PER_EPOCH)
        .ok_or(CommitteeError::ZeroPresetConstant {
            name: "SLOTS_PER_EPOCH",
        })?
        .checked_div(preset.TARGET_COMMITTEE_SIZE)
        .ok_or(CommitteeError::ZeroPresetConstant {
            name: "TARGET_COMMITTEE_SIZE",
        })?;
    Ok(per_slot.min(preset.MAX_COMMITTEES_PER_SLOT).max(1))
}

impl CommitteeCache {
    /// Shuffles `active_validator_indices` (strictly ascending, as the spec's
    /// `get_active_validator_indices` returns them) with `seed` and builds the
    /// committees of `epoch`.
    pub fn new(
        epoch: Epoch,
        active_validator_indices: Vec<ValidatorIndex>,
        seed: Root,
        preset: &Preset,
    ) -> Result<Self, CommitteeError> {
        check_active_indices(&active_validator_indices)?;
        let committees_per_slot =
            get_committee_count_per_slot(active_validator_indices.len() as u64, preset)?;
        let overflow = || CommitteeError::Overflow {
            epoch,
            slots_per_epoch: preset.SLOTS_PER_EPOCH,
            committees_per_slot,
        };
        let start_slot = epoch
            .checked_mul(preset.SLOTS_PER_EPOCH)
            .filter(|start| start.checked_add(preset.SLOTS_PER_EPOCH - 1).is_some())
            .ok_or_else(overflow)?;
        let committee_count = committees_per_slot
            .checked_mul(preset.SLOTS_PER_EPOCH)
            .ok_or_else(overflow)?;

        let mut shuffling = active_validator_indices;
        shuffle_list(&mut shuffling, &seed.0, preset.SHUFFLE_ROUND_COUNT)?;
        let shuffling_positions = position_map(&shuffling);
        Ok(CommitteeCache {
            epoch,
            start_slot,
            slots_per_epoch: preset.SLOTS_PER_EPOCH,
            committees_per_slot,
            committee_count,
            shuffling,
            shuffling_positions,
        })
    }

    /// The cached epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The number of active validators of the epoch.
    pub fn active_validator_count(&self) -> usize {
        self.shuffling.len()
    }

    /// `get_committee_count_per_slot` of the epoch.
    pub fn committees_per_slot(&self) -> u64 {
        self.committees_per_slot
    }

    /// The spec's `get_beacon_committee(state, slot, index)`.
    pub fn get_beacon_committee(
        &self,
        slot: Slot,
        index: CommitteeIndex,
    ) -> Result<&[ValidatorIndex], CommitteeError> {
        let slot_offset = self.slot_offset(slot)?;
        if index >= self.committees_per_slot {
            return Err(CommitteeError::CommitteeIndexOutOfRange {
                slot,
                index,
                committees_per_slot: self.committees_per_slot,
            });
        }
        // Both factors are below their checked product `committee_count`.
        Ok(self.committee(slot_offset * self.committees_per_slot + index))
    }

    /// Every committee of the epoch, ordered by slot and then index.
    pub fn committees(&self) -> impl Iterator<Item = BeaconCommittee<'_>> + '_ {
        (0..self.committee_count).map(move |number| BeaconCommittee {
            slot: self.start_slot + number / self.committees_per_slot,
            index: number % self.committees_per_slot,
            members: self.committee(number),
        })
    }

    /// The committee `validator_index` attests in during the cached epoch, or
    /// `None` if it is not active in it. Constant time.
    pub fn attester_position(&self, validator_index: ValidatorIndex) -> Option<AttesterPosition> {
        let entry = self
            .shuffling_positions
            .get(usize::try_from(validator_index).ok()?)?;
        let position = u64::from(entry.as_ref()?.get()) - 1;
        let number = self.committee_containing(position);
        let start = self.committee_start(number);
        Some(AttesterPosition {
            slot: self.start_slot + number / self.committees_per_slot,
            committee_index: number % self.committees_per_slot,
            committee_length: self.committee_start(number + 1) - start,
            position_in_committee: position - start,
            committees_at_slot: self.committees_per_slot,
        })
    }

    fn slot_offset(&self, slot: Slot) -> Result<u64, CommitteeError> {
        let slot_epoch = slot / self.slots_per_epoch;
        if slot_epoch != self.epoch {
            return Err(CommitteeError::SlotOutsideEpoch {
                slot,
                slot_epoch,
                epoch: self.epoch,
            });
        }
        Ok(slot % self.slots_per_epoch)
    }

    /// Committee `number` (`0..committee_count`, in slot-then-index order):
    /// the spec's `compute_committee` slice.
    fn committee(&self, number: u64) -> &[ValidatorIndex] {
        let start = self.committee_start(number) as usize;
        let end = self.committee_start(number + 1) as usize;
        &self.shuffling[start..end]
    }

    /// `len * number // committee_count`, in u128 so the product cannot overflow.
    /// For `number <= committee_count` the result is at most `len`.
    fn committee_start(&self, number: u64) -> u64 {
        let len = self.shuffling.len() as u128;
        (len * u128::from(number) / u128::from(self.committee_count)) as u64
    }

    /// The committee number whose slice holds shuffled `position`: the largest
    /// `k` with `committee_start(k) <= position`, i.e. `k * len < (position + 1)
    /// * count`, which is `((position + 1) * count - 1) // len`.
    fn committee_containing(&self, position: u64) -> u64 {
        let len = self.shuffling.len() as u128;
        let count = u128::from(self.committee_count);
        (((u128::from(position) + 1) * count - 1) / len) as u64
    }
}

/// Checks that the active indices are strictly ascending and below
/// [`MAX_CACHED_VALIDATOR_INDEX`], which bounds the position map.
fn check_active_indices(active_validator_indices: &[ValidatorIndex]) -> Result<(), CommitteeError> {
    for (position, pair) in active_validator_indices.windows(2).enumerate() {
        if pair[0] >= pair[1] {
            return Err(CommitteeError::ActiveIndicesNotAscending {
                position: position + 1,
                previous: pair[0],
                index: pair[1],
            });
        }
    }
    match active_validator_indices.last() {
        Some(&index) if index >= MAX_CACHED_VALIDATOR_INDEX => {
            Err(CommitteeError::ValidatorIndexTooLarge { index })
        }
        _ => Ok(()),
    }
}

/// The dense map from validator index to 1 + its position in `shuffling`.
fn position_map(shuffling: &[ValidatorIndex]) -> Vec<Option<NonZeroU32>> {
    // Indices are below MAX_CACHED_VALIDATOR_INDEX and positions below
    // MAX_SHUFFLE_LIST_SIZE (both checked before the shuffle), so the casts
    // are lossless and the map indexing in bounds.
    let len = shuffling
        .iter()
        .max()
        .map_or(0, |&largest| largest as usize + 1);
    let mut positions = vec![None; len];
    for (position, &validator) in shuffling.iter().enumerate() {
        positions[validator as usize] = NonZeroU32::new(position as u32 + 1);
    }
    positions
}
