//! Block proposers of a [`BeaconState`]: `compute_proposer_index`, the
//! proposers of a whole epoch (`get_beacon_proposer_indices`) and fulu's
//! `proposer_lookahead` (`initialize_proposer_lookahead`).

use ethereum_hashing::hash_fixed;

use super::sampling::{sample_by_effective_balance, BalanceWeighting, SamplingError};
use super::{on_preset, BeaconState, StateError};
use crate::spec::config::DOMAIN_BEACON_PROPOSER;
use crate::spec::{Epoch, Root, Slot, ValidatorIndex};

impl BeaconState {
    /// `compute_proposer_index(state, indices, seed)`: one validator drawn
    /// from `indices` by effective balance, with the state's fork rule.
    pub fn compute_proposer_index(
        &self,
        indices: &[ValidatorIndex],
        seed: Root,
    ) -> Result<ValidatorIndex, SamplingError> {
        let drawn = sample_by_effective_balance(
            self.validators(),
            indices,
            seed,
            self.preset.SHUFFLE_ROUND_COUNT,
            BalanceWeighting::of_fork(self.fork_name()),
            1,
        )?;
        // A successful draw of one holds exactly one.
        Ok(drawn[0])
    }

    /// `get_beacon_proposer_indices(state, epoch)` (fulu): the proposer of
    /// every slot of `epoch`, each drawn from the validators active at
    /// `epoch` with the seed `hash(get_seed(state, epoch,
    /// DOMAIN_BEACON_PROPOSER) + uint_to_bytes(slot))`. Before fulu this is
    /// what `get_beacon_proposer_index` gives at each of those slots.
    pub fn get_beacon_proposer_indices(
        &self,
        epoch: Epoch,
    ) -> Result<Vec<ValidatorIndex>, StateError> {
        let slots_per_epoch = self.preset.SLOTS_PER_EPOCH;
        let start_slot = epoch
            .checked_mul(slots_per_epoch)
            .filter(|start| start.checked_add(slots_per_epoch).is_some())
            .ok_or(StateError::SlotOverflow { epoch })?;
        let indices = self.get_active_validator_indices(epoch);
        let epoch_seed = self.get_seed(epoch, DOMAIN_BEACON_PROPOSER);
        (start_slot..start_slot + slots_per_epoch)
            .map(|slot| {
                self.compute_proposer_index(&indices, proposer_seed(epoch_seed, slot))
                    .map_err(|source| StateError::Sampling {
                        purpose: "proposers",
                        epoch,
                        source,
                    })
            })
            .collect()
    }

    /// `initialize_proposer_lookahead`: the proposers of the current epoch
    /// and the `MIN_SEED_LOOKAHEAD` epochs after it, in slot order (what
    /// fulu's `state.proposer_lookahead` holds).
    pub fn initialize_proposer_lookahead(&self) -> Result<Vec<ValidatorIndex>, StateError> {
        let current_epoch = self.get_current_epoch();
        let mut lookahead = Vec::new();
        for offset in 0..=self.preset.MIN_SEED_LOOKAHEAD {
            let epoch = current_epoch
                .checked_add(offset)
                .ok_or(StateError::EpochOverflow {
                    epoch: current_epoch,
                })?;
            lookahead.extend(self.get_beacon_proposer_indices(epoch)?);
        }
        Ok(lookahead)
    }

    /// `state.proposer_lookahead`: the proposers from the start of the
    /// current epoch on; `None` before fulu.
    pub fn proposer_lookahead(&self) -> Option<&[ValidatorIndex]> {
        on_preset!(&self.state, s => s.proposer_lookahead())
    }

    /// Replaces fulu's `proposer_lookahead`, whose length the preset fixes.
    pub(super) fn set_proposer_lookahead(
        &mut self,
        lookahead: &[ValidatorIndex],
    ) -> Result<(), StateError> {
        let fork = self.fork_name();
        on_preset!(&mut self.state, s => {
            let target = s
                .proposer_lookahead_mut()
                .ok_or(StateError::NoProposerLookahead { fork })?;
            if target.len() != lookahead.len() {
                return Err(StateError::ProposerLookaheadSize {
                    expected: target.len(),
                    got: lookahead.len(),
                });
            }
            target.copy_from_slice(lookahead);
            Ok(())
        })
    }
}

/// The seed of one slot's proposer draw: `hash(epoch_seed + uint_to_bytes(slot))`.
fn proposer_seed(epoch_seed: Root, slot: Slot) -> Root {
    let mut preimage = [0u8; 40];
    preimage[..32].copy_from_slice(epoch_seed.as_slice());
    preimage[32..].copy_from_slice(&slot.to_le_bytes());
    Root::from(hash_fixed(&preimage))
}
