//! Sync committees of a [`BeaconState`]: which committee an epoch uses,
//! where a validator sits in it and which subcommittees (subnets) that
//! puts it in. A validator can hold several positions.

use super::containers::PublicKeyBytes;
use super::{on_preset, BeaconState, StateError};
use crate::spec::{Epoch, ValidatorIndex};

/// Which of the state's two sync committees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncPeriod {
    /// `state.current_sync_committee`: the period of the state's epoch.
    Current,
    /// `state.next_sync_committee`: the period after it.
    Next,
}

/// A borrowed sync committee of either preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncCommitteeRef<'a> {
    pubkeys: &'a [PublicKeyBytes],
    aggregate_pubkey: &'a PublicKeyBytes,
}

impl<'a> SyncCommitteeRef<'a> {
    /// `sync_committee.pubkeys`, `SYNC_COMMITTEE_SIZE` of them in order.
    pub fn pubkeys(&self) -> &'a [PublicKeyBytes] {
        self.pubkeys
    }

    /// `sync_committee.aggregate_pubkey`.
    pub fn aggregate_pubkey(&self) -> &'a PublicKeyBytes {
        self.aggregate_pubkey
    }
}

impl BeaconState {
    /// `state.current_sync_committee`; `None` before altair.
    pub fn current_sync_committee(&self) -> Option<SyncCommitteeRef<'_>> {
        self.sync_committee(SyncPeriod::Current).ok()
    }

    /// `state.next_sync_committee`; `None` before altair.
    pub fn next_sync_committee(&self) -> Option<SyncCommitteeRef<'_>> {
        self.sync_committee(SyncPeriod::Next).ok()
    }

    /// The sync committee of `period`, or an error for a phase0 state.
    pub fn sync_committee(&self, period: SyncPeriod) -> Result<SyncCommitteeRef<'_>, StateError> {
        on_preset!(&self.state, s => {
            let (current, next) = s
                .sync_committees()
                .ok_or(StateError::NoSyncCommittees { fork: s.fork_name() })?;
            let committee = match period {
                SyncPeriod::Current => current,
                SyncPeriod::Next => next,
            };
            Ok(SyncCommitteeRef {
                pubkeys: &committee.pubkeys,
                aggregate_pubkey: &committee.aggregate_pubkey,
            })
        })
    }

    /// The committee that signs in `epoch`: the current one for the state's
    /// own sync committee period, the next one for the period after.
    pub fn sync_period_of_epoch(&self, epoch: Epoch) -> Result<SyncPeriod, StateError> {
        let epochs_per_period = self.preset.EPOCHS_PER_SYNC_COMMITTEE_PERIOD;
        let state_epoch = self.get_current_epoch();
        let current_period = state_epoch / epochs_per_period;
        let period = epoch / epochs_per_period;
        match period.checked_sub(current_period) {
            Some(0) => Ok(SyncPeriod::Current),
            Some(1) => Ok(SyncPeriod::Next),
            _ => Err(StateError::SyncPeriodOutOfRange {
                epoch,
                period,
                state_epoch,
                current_period,
            }),
        }
    }

    /// Every position (0..SYNC_COMMITTEE_SIZE) of the validator in the sync
    /// committee of `period`; empty if it is not a member.
    pub fn sync_committee_positions(
        &self,
        validator_index: ValidatorIndex,
        period: SyncPeriod,
    ) -> Result<Vec<u64>, StateError> {
        let committee = self.sync_committee(period)?;
        let pubkey = self
            .validator(validator_index)
            .ok_or(StateError::UnknownValidator {
                index: validator_index,
                count: self.validators().len(),
            })?
            .pubkey;
        Ok((0..)
            .zip(committee.pubkeys())
            .filter(|(_, member)| **member == pubkey)
            .map(|(position, _)| position)
            .collect())
    }

    /// The subcommittees (sync subnets) the validator belongs to in
    /// `period`: each position divided by
    /// `SYNC_COMMITTEE_SIZE / SYNC_COMMITTEE_SUBNET_COUNT`, sorted, without
    /// duplicates.
    pub fn sync_subcommittee_indices(
        &self,
        validator_index: ValidatorIndex,
        period: SyncPeriod,
    ) -> Result<Vec<u64>, StateError> {
        let subcommittee_size = self.sync_subcommittee_size();
        let mut indices: Vec<u64> = self
            .sync_committee_positions(validator_index, period)?
            .into_iter()
            .map(|position| position / subcommittee_size)
            .collect();
        indices.sort_unstable();
        indices.dedup();
        Ok(indices)
    }

    /// `SYNC_COMMITTEE_SIZE // SYNC_COMMITTEE_SUBNET_COUNT`.
    pub fn sync_subcommittee_size(&self) -> u64 {
        (self.preset.SYNC_COMMITTEE_SIZE / self.preset.SYNC_COMMITTEE_SUBNET_COUNT).max(1)
    }

    /// The validator index of every member of the sync committee of
    /// `period`, in committee order.
    pub fn sync_committee_validator_indices(
        &self,
        period: SyncPeriod,
    ) -> Result<Vec<ValidatorIndex>, StateError> {
        self.sync_committee(period)?
            .pubkeys()
            .iter()
            .enumerate()
            .map(|(position, pubkey)| {
                self.validator_index_by_pubkey(pubkey)
                    .ok_or(StateError::SyncMemberNotInRegistry {
                        pubkey: *pubkey,
                        position,
                    })
            })
            .collect()
    }
}
