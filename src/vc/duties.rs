//! The duties a validator client selects aggregators for, as it keeps them
//! after checking what the beacon node sent: attestation duties (one per
//! validator and epoch) and sync committee duties (a validator's positions in
//! the sync committee, and the subcommittees they put it in).
//!
//! Everything here comes from the beacon node and is untrusted: a duty whose
//! slot is outside the epoch asked for, whose committee index or position is
//! out of range, or whose sync positions are outside the committee is refused
//! with a [`DutyError`] that names the validator and the value.

use std::collections::BTreeSet;

use crate::api::types::{AttesterDuty, SyncDuty as WireSyncDuty};
use crate::spec::signing::compute_epoch_at_slot;
use crate::spec::{CommitteeIndex, Epoch, Preset, Slot, ValidatorIndex};

/// Why a duty from the beacon node is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DutyError {
    /// The duty's slot is not in the epoch that was asked for.
    #[error("attester duty of validator {validator_index} at slot {slot} is not in epoch {epoch}")]
    SlotOutsideEpoch {
        /// The validator.
        validator_index: ValidatorIndex,
        /// The slot given.
        slot: Slot,
        /// The epoch asked for.
        epoch: Epoch,
    },
    /// `committee_index` is not below `committees_at_slot`, or that count is
    /// above `MAX_COMMITTEES_PER_SLOT`.
    #[error("attester duty of validator {validator_index} at slot {slot}: committee_index {committee_index} with committees_at_slot {committees_at_slot} (at most {max} committees per slot)")]
    CommitteeOutOfRange {
        /// The validator.
        validator_index: ValidatorIndex,
        /// The slot.
        slot: Slot,
        /// The committee index given.
        committee_index: CommitteeIndex,
        /// The count given.
        committees_at_slot: u64,
        /// `MAX_COMMITTEES_PER_SLOT`.
        max: u64,
    },
    /// The position in the committee is not below the committee's length.
    #[error("attester duty of validator {validator_index} at slot {slot}: position {position} in a committee of {committee_length}")]
    PositionOutOfRange {
        /// The validator.
        validator_index: ValidatorIndex,
        /// The slot.
        slot: Slot,
        /// `validator_committee_index`.
        position: u64,
        /// `committee_length`.
        committee_length: u64,
    },
    /// Sync positions that are none, too many, or outside the committee.
    #[error("sync duty of validator {validator_index}: positions {positions:?} are not 1..={size} positions below {size}")]
    SyncPositions {
        /// The validator.
        validator_index: ValidatorIndex,
        /// The positions given (the first few).
        positions: Vec<u64>,
        /// `SYNC_COMMITTEE_SIZE`.
        size: u64,
    },
}

/// An attestation duty: the committee the validator attests in at `slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttestationDuty {
    /// The validator.
    pub validator_index: ValidatorIndex,
    /// The attestation slot.
    pub slot: Slot,
    /// The committee within the slot.
    pub committee_index: CommitteeIndex,
    /// The committee's length (what `is_aggregator` divides by 16).
    pub committee_length: u64,
    /// The number of committees at the slot.
    pub committees_at_slot: u64,
    /// The validator's position in its committee.
    pub validator_committee_index: u64,
}

impl AttestationDuty {
    /// Checks a duty of the beacon node's reply for `epoch`.
    pub fn from_wire(
        duty: &AttesterDuty,
        epoch: Epoch,
        preset: &Preset,
    ) -> Result<Self, DutyError> {
        if compute_epoch_at_slot(duty.slot, preset) != epoch {
            return Err(DutyError::SlotOutsideEpoch {
                validator_index: duty.validator_index,
                slot: duty.slot,
                epoch,
            });
        }
        if duty.committee_index >= duty.committees_at_slot
            || duty.committees_at_slot > preset.MAX_COMMITTEES_PER_SLOT
        {
            return Err(DutyError::CommitteeOutOfRange {
                validator_index: duty.validator_index,
                slot: duty.slot,
                committee_index: duty.committee_index,
                committees_at_slot: duty.committees_at_slot,
                max: preset.MAX_COMMITTEES_PER_SLOT,
            });
        }
        if duty.validator_committee_index >= duty.committee_length {
            return Err(DutyError::PositionOutOfRange {
                validator_index: duty.validator_index,
                slot: duty.slot,
                position: duty.validator_committee_index,
                committee_length: duty.committee_length,
            });
        }
        Ok(AttestationDuty {
            validator_index: duty.validator_index,
            slot: duty.slot,
            committee_index: duty.committee_index,
            committee_length: duty.committee_length,
            committees_at_slot: duty.committees_at_slot,
            validator_committee_index: duty.validator_committee_index,
        })
    }
}

/// A sync committee duty for one period: every position the validator holds
/// and the subcommittees (sync subnets) they put it in. The validator selects
/// a sync aggregator once per slot *and subcommittee*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCommitteeDuty {
    /// The validator.
    pub validator_index: ValidatorIndex,
    /// Its positions in the sync committee, as the node listed them.
    pub positions: Vec<u64>,
    /// `position // (SYNC_COMMITTEE_SIZE // SYNC_COMMITTEE_SUBNET_COUNT)` of
    /// each position, sorted, without repeats.
    pub subcommittees: Vec<u64>,
}

impl SyncCommitteeDuty {
    /// Checks a sync duty of the beacon node's reply.
    pub fn from_wire(duty: &WireSyncDuty, preset: &Preset) -> Result<Self, DutyError> {
        let positions = &duty.validator_sync_committee_indices;
        let size = preset.SYNC_COMMITTEE_SIZE;
        let subcommittees =
            sync_subcommittees(positions, preset).ok_or_else(|| DutyError::SyncPositions {
                validator_index: duty.validator_index,
                positions: positions.iter().take(8).copied().collect(),
                size,
            })?;
        Ok(SyncCommitteeDuty {
            validator_index: duty.validator_index,
            positions: positions.clone(),
            subcommittees,
        })
    }
}

/// The sync subcommittees of `positions`: each position divided by
/// `SYNC_COMMITTEE_SIZE // SYNC_COMMITTEE_SUBNET_COUNT`, sorted, without
/// repeats. `None` for no positions, more than `SYNC_COMMITTEE_SIZE`, or one
/// outside the committee.
pub fn sync_subcommittees(positions: &[u64], preset: &Preset) -> Option<Vec<u64>> {
    let size = preset.SYNC_COMMITTEE_SIZE;
    if positions.is_empty() || positions.len() as u64 > size {
        return None;
    }
    let subcommittee_size = size
        .checked_div(preset.SYNC_COMMITTEE_SUBNET_COUNT)
        .unwrap_or(0)
        .max(1);
    positions
        .iter()
        .map(|&position| (position < size).then_some(position / subcommittee_size))
        .collect::<Option<BTreeSet<u64>>>()
        .map(|set| set.into_iter().collect())
}

/// The `until_epoch` of a sync committee subscription made in `epoch`: the
/// first epoch of the next sync committee period.
pub fn sync_until_epoch(epoch: Epoch, preset: &Preset) -> Epoch {
    let period_length = preset.EPOCHS_PER_SYNC_COMMITTEE_PERIOD.max(1);
    (epoch / period_length)
        .saturating_add(1)
        .saturating_mul(period_length)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::PublicKeyBytes;

    fn wire(slot: Slot, committee_index: u64, committees: u64, position: u64) -> AttesterDuty {
        AttesterDuty {
            pubkey: PublicKeyBytes([0; 48]),
            validator_index: 9,
            committee_index,
            committee_length: 64,
            committees_at_slot: committees,
            validator_committee_index: position,
            slot,
        }
    }

    #[test]
    fn attester_duties_are_checked_against_the_epoch_and_their_committee() {
        let preset = Preset::minimal();
        let duty = AttestationDuty::from_wire(&wire(43, 3, 4, 63), 5, &preset).unwrap();
        assert_eq!((duty.slot, duty.committee_index), (43, 3));
        let refused = [
            wire(48, 0, 4, 0),
            wire(43, 4, 4, 0),
            wire(43, 0, 5, 0),
            wire(43, 0, 4, 64),
        ];
        for bad in refused {
            let error = AttestationDuty::from_wire(&bad, 5, &preset).unwrap_err();
            assert!(error.to_string().contains("validator 9"), "{error}");
        }
    }

    #[test]
    fn sync_positions_give_subcommittees_once_each() {
        // Mainnet: 512 positions, 4 subnets of 128.
        let mainnet = Preset::mainnet();
        assert_eq!(
            sync_subcommittees(&[5, 127, 128, 511, 130], &mainnet),
            Some(vec![0, 1, 3])
        );
        assert_eq!(sync_subcommittees(&[512], &mainnet), None);
        assert_eq!(sync_subcommittees(&[], &mainnet), None);
        // Minimal: 32 positions, 4 subnets of 8.
        assert_eq!(
            sync_subcommittees(&[7, 8, 31], &Preset::minimal()),
            Some(vec![0, 1, 3])
        );
    }

    #[test]
    fn a_sync_subscription_lasts_until_the_next_period() {
        let minimal = Preset::minimal();
        assert_eq!(minimal.EPOCHS_PER_SYNC_COMMITTEE_PERIOD, 8);
        assert_eq!(sync_until_epoch(0, &minimal), 8);
        assert_eq!(sync_until_epoch(7, &minimal), 8);
        assert_eq!(sync_until_epoch(8, &minimal), 16);
        assert_eq!(sync_until_epoch(u64::MAX, &minimal), u64::MAX);
    }
}
