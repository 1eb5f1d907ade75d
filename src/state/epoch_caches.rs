//! The committees one state determines: those of its previous, current and
//! next epoch (the shuffling of epoch e is fixed by the state at epoch e-1, so
//! one state serves all three). Built once, shared behind `Arc`.

use std::sync::Arc;

use super::committee_cache::{CommitteeCache, CommitteeError};
use super::BeaconState;
use crate::spec::config::DOMAIN_BEACON_ATTESTER;
use crate::spec::{CommitteeIndex, Epoch, Slot, ValidatorIndex};

/// Errors of looking up a committee in [`EpochCommittees`].
#[derive(Debug, thiserror::Error)]
pub enum EpochCommitteesError {
    #[error(
        "epoch {epoch} is outside the epochs {previous}..={next} that the state at slot {state_slot} determines"
    )]
    EpochOutOfRange {
        epoch: Epoch,
        previous: Epoch,
        next: Epoch,
        state_slot: Slot,
    },
    #[error("the state's next epoch overflows: current epoch {0}")]
    EpochOverflow(Epoch),
    #[error(transparent)]
    Committee(#[from] CommitteeError),
}

/// The committee caches of a state's previous, current and next epoch.
#[derive(Debug, Clone)]
pub struct EpochCommittees {
    state_slot: Slot,
    slots_per_epoch: u64,
    previous: Arc<CommitteeCache>,
    current: Arc<CommitteeCache>,
    next: Arc<CommitteeCache>,
}

impl EpochCommittees {
    /// Shuffles the active set of each of the three epochs once.
    pub fn from_state(state: &BeaconState) -> Result<Self, EpochCommitteesError> {
        let current_epoch = state.get_current_epoch();
        let next_epoch = current_epoch
            .checked_add(1)
            .ok_or(EpochCommitteesError::EpochOverflow(current_epoch))?;
        let current = Arc::new(committee_cache_at(state, current_epoch)?);
        let previous_epoch = state.get_previous_epoch();
        let previous = if previous_epoch == current_epoch {
            // At genesis the previous epoch is the current one.
            Arc::clone(&current)
        } else {
            Arc::new(committee_cache_at(state, previous_epoch)?)
        };
        let next = Arc::new(committee_cache_at(state, next_epoch)?);
        Ok(EpochCommittees {
            state_slot: state.slot(),
            slots_per_epoch: state.preset().SLOTS_PER_EPOCH,
            previous,
            current,
            next,
        })
    }

    /// The cache of `epoch`, which must be the previous, current or next epoch.
    pub fn for_epoch(&self, epoch: Epoch) -> Result<&Arc<CommitteeCache>, EpochCommitteesError> {
        [&self.previous, &self.current, &self.next]
            .into_iter()
            .find(|cache| cache.epoch() == epoch)
            .ok_or(EpochCommitteesError::EpochOutOfRange {
                epoch,
                previous: self.previous.epoch(),
                next: self.next.epoch(),
                state_slot: self.state_slot,
            })
    }

    /// The cache of the epoch of `slot`.
    pub fn for_slot(&self, slot: Slot) -> Result<&Arc<CommitteeCache>, EpochCommitteesError> {
        // SLOTS_PER_EPOCH comes from a preset, which never holds zero.
        self.for_epoch(slot / self.slots_per_epoch.max(1))
    }

    /// `get_beacon_committee(state, slot, index)` for a slot of any of the three epochs.
    pub fn get_beacon_committee(
        &self,
        slot: Slot,
        index: CommitteeIndex,
    ) -> Result<&[ValidatorIndex], EpochCommitteesError> {
        Ok(self.for_slot(slot)?.get_beacon_committee(slot, index)?)
    }

    /// The caches, previous epoch first.
    pub fn all(&self) -> [&Arc<CommitteeCache>; 3] {
        [&self.previous, &self.current, &self.next]
    }
}

/// The committee cache of `epoch` as the state determines it.
pub fn committee_cache_at(
    state: &BeaconState,
    epoch: Epoch,
) -> Result<CommitteeCache, CommitteeError> {
    let seed = state.get_seed(epoch, DOMAIN_BEACON_ATTESTER);
    CommitteeCache::new(
        epoch,
        state.get_active_validator_indices(epoch),
        seed,
        state.preset(),
    )
}
