//! Sync committees of a [`BeaconState`]: which committee an epoch uses,
//! where a validator sits in it and which subcommittees (subnets) that
//! puts it in (a validator can hold several positions), and the selection
//! of the next committee (`get_next_sync_committee`).

use super::containers::{PublicKeyBytes, SyncCommittee};
use super::preset::StatePreset;
use super::sampling::{sample_by_effective_balance, BalanceWeighting};
use super::{on_preset, BeaconState, StateError};
use crate::crypto::{aggregate_public_keys, PublicKey};
use crate::spec::config::DOMAIN_SYNC_COMMITTEE;
use crate::spec::{Epoch, ForkName, ValidatorIndex};

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

/// A sync committee owned rather than borrowed from a state, of either
/// preset: what [`BeaconState::get_next_sync_committee`] computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCommitteeKeys {
    /// `pubkeys`, `SYNC_COMMITTEE_SIZE` of them in committee order.
    pub pubkeys: Vec<PublicKeyBytes>,
    /// `aggregate_pubkey`: `eth_aggregate_pubkeys(pubkeys)`.
    pub aggregate_pubkey: PublicKeyBytes,
}

impl<'a> From<&'a SyncCommitteeKeys> for SyncCommitteeRef<'a> {
    fn from(keys: &'a SyncCommitteeKeys) -> Self {
        SyncCommitteeRef {
            pubkeys: &keys.pubkeys,
            aggregate_pubkey: &keys.aggregate_pubkey,
        }
    }
}

impl From<SyncCommitteeRef<'_>> for SyncCommitteeKeys {
    fn from(committee: SyncCommitteeRef<'_>) -> Self {
        SyncCommitteeKeys {
            pubkeys: committee.pubkeys.to_vec(),
            aggregate_pubkey: *committee.aggregate_pubkey,
        }
    }
}

/// Copies `keys` into a state's committee, whose length the preset fixes.
fn write_sync_committee<E: StatePreset>(
    target: &mut SyncCommittee<E>,
    keys: &SyncCommitteeKeys,
) -> Result<(), StateError> {
    if target.pubkeys.len() != keys.pubkeys.len() {
        return Err(StateError::SyncCommitteeSize {
            expected: target.pubkeys.len(),
            got: keys.pubkeys.len(),
        });
    }
    target.pubkeys.copy_from_slice(&keys.pubkeys);
    target.aggregate_pubkey = keys.aggregate_pubkey;
    Ok(())
}

impl BeaconState {
    /// `get_next_sync_committee_indices`: `SYNC_COMMITTEE_SIZE` validators
    /// (with possible duplicates) drawn by effective balance from those
    /// active at the next epoch, seeded by `get_seed(state, current_epoch +
    /// 1, DOMAIN_SYNC_COMMITTEE)`, with the fork's acceptance rule (a random
    /// byte up to deneb, a 16-bit value and `MAX_EFFECTIVE_BALANCE_ELECTRA`
    /// from electra on).
    pub fn get_next_sync_committee_indices(&self) -> Result<Vec<ValidatorIndex>, StateError> {
        let fork = self.fork_name();
        if fork == ForkName::Phase0 {
            return Err(StateError::NoSyncCommittees { fork });
        }
        let current_epoch = self.get_current_epoch();
        let epoch = current_epoch
            .checked_add(1)
            .ok_or(StateError::EpochOverflow {
                epoch: current_epoch,
            })?;
        let size = usize::try_from(self.preset.SYNC_COMMITTEE_SIZE).unwrap_or(usize::MAX);
        sample_by_effective_balance(
            self.validators(),
            &self.get_active_validator_indices(epoch),
            self.get_seed(epoch, DOMAIN_SYNC_COMMITTEE),
            self.preset.SHUFFLE_ROUND_COUNT,
            BalanceWeighting::of_fork(fork),
            size,
        )
        .map_err(|source| StateError::Sampling {
            purpose: "sync committee",
            epoch,
            source,
        })
    }

    /// `get_next_sync_committee`: the keys of
    /// [`get_next_sync_committee_indices`](Self::get_next_sync_committee_indices)
    /// and their aggregate (`eth_aggregate_pubkeys`). A key that is not a
    /// valid BLS public key is an error naming the validator.
    pub fn get_next_sync_committee(&self) -> Result<SyncCommitteeKeys, StateError> {
        let indices = self.get_next_sync_committee_indices()?;
        let validators = self.validators();
        // The indices were drawn from this registry, so they are in range.
        let pubkeys: Vec<PublicKeyBytes> = indices
            .iter()
            .map(|&index| validators[index as usize].pubkey)
            .collect();
        let points = indices
            .iter()
            .zip(&pubkeys)
            .enumerate()
            .map(|(position, (&index, pubkey))| {
                PublicKey::from_bytes(&pubkey.0).map_err(|source| {
                    StateError::InvalidSyncCommitteeKey {
                        index,
                        position,
                        source,
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let aggregate =
            aggregate_public_keys(&points).map_err(StateError::SyncCommitteeAggregate)?;
        Ok(SyncCommitteeKeys {
            pubkeys,
            aggregate_pubkey: PublicKeyBytes(aggregate.to_bytes()),
        })
    }

    /// Replaces both sync committees (genesis sets both to one committee; a
    /// period boundary moves next to current).
    pub(super) fn set_sync_committees(
        &mut self,
        current: &SyncCommitteeKeys,
        next: &SyncCommitteeKeys,
    ) -> Result<(), StateError> {
        let fork = self.fork_name();
        on_preset!(&mut self.state, s => {
            let (current_committee, next_committee) = s
                .sync_committees_mut()
                .ok_or(StateError::NoSyncCommittees { fork })?;
            write_sync_committee(current_committee, current)?;
            write_sync_committee(next_committee, next)
        })
    }

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
