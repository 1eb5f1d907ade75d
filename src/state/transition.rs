//! Advancing a [`BeaconState`] through empty slots, as a chain without
//! blocks does: the spec's `process_slots`, reduced to the fields this crate
//! reads.
//!
//! Per slot, `process_slot` records the latest block's root in
//! `block_roots` (filling the header's `state_root` first if it is still
//! zero, as after genesis or a block). At each epoch's last slot,
//! `process_epoch` runs `process_randao_mixes_reset`,
//! `process_sync_committee_updates` (altair on) and
//! `process_proposer_lookahead` (fulu). That is all committees, sync
//! committees, proposers and dependent roots depend on.
//!
//! Skipped, because nothing here reads them and an empty chain carries no
//! attestations: `state_roots` (a whole-state hash per slot), and the rest of
//! `process_epoch` (justification and finalization, inactivity scores,
//! rewards and penalties, registry updates, slashings, eth1 data reset,
//! pending deposits and consolidations, effective balance updates,
//! historical summaries, participation flags). So the registry, balances
//! and the active sets stay as they were, and the state's root is not the
//! root a full client would reach.

use thiserror::Error;
use tree_hash::TreeHash;

use super::sync_committee::{SyncCommitteeKeys, SyncPeriod};
use super::{on_preset, BeaconState, StateError};
use crate::spec::{Epoch, Root, Slot};

/// The most epoch boundaries one [`BeaconState::advance_empty_slots`] call
/// crosses: 256, one mainnet sync committee period (27 hours of mainnet,
/// 3.4 hours of minimal time). Each boundary costs at most a sync committee
/// draw and a fulu lookahead epoch; a caller that fell further behind calls
/// again.
pub const MAX_EPOCHS_PER_ADVANCE: u64 = 256;

/// Why a state could not be advanced.
#[derive(Debug, Error)]
pub enum AdvanceError {
    /// The target is before the state's slot.
    #[error("cannot advance the state at slot {slot} back to slot {target}")]
    TargetBeforeState { slot: Slot, target: Slot },
    /// The target is more than [`MAX_EPOCHS_PER_ADVANCE`] epochs ahead.
    #[error(
        "advancing from slot {slot} to slot {target} crosses {epochs} epoch boundaries; \
         one call crosses at most {MAX_EPOCHS_PER_ADVANCE}"
    )]
    TooFar {
        slot: Slot,
        target: Slot,
        epochs: u64,
    },
    /// The epoch processing of the state failed.
    #[error("epoch processing at slot {slot}: {source}")]
    EpochProcessing { slot: Slot, source: StateError },
}

impl BeaconState {
    /// Advances the state through empty slots to `target_slot`: the spec's
    /// `process_slots` for the fields the module documentation lists. A target equal to the state's slot changes nothing; an earlier
    /// one, or one more than [`MAX_EPOCHS_PER_ADVANCE`] epochs ahead, is an
    /// error. On error the state is unchanged.
    pub fn advance_empty_slots(&mut self, target_slot: Slot) -> Result<(), AdvanceError> {
        let slot = self.slot();
        if target_slot < slot {
            return Err(AdvanceError::TargetBeforeState {
                slot,
                target: target_slot,
            });
        }
        let slots_per_epoch = self.preset.SLOTS_PER_EPOCH;
        let epochs = target_slot / slots_per_epoch - slot / slots_per_epoch;
        if epochs > MAX_EPOCHS_PER_ADVANCE {
            return Err(AdvanceError::TooFar {
                slot,
                target: target_slot,
                epochs,
            });
        }
        let mut advanced = self.clone();
        while advanced.slot() < target_slot {
            advanced.process_slot();
            let slot = advanced.slot();
            // slot < target_slot, so slot + 1 cannot overflow.
            if (slot + 1) % slots_per_epoch == 0 {
                advanced
                    .process_epoch()
                    .map_err(|source| AdvanceError::EpochProcessing { slot, source })?;
            }
            on_preset!(&mut advanced.state, s => *s.slot_mut() = slot + 1);
        }
        *self = advanced;
        Ok(())
    }

    /// `process_slot` without `state_roots`: the header gets the state root
    /// if it has none yet, and its root becomes this slot's block root.
    fn process_slot(&mut self) {
        let slot = self.slot();
        let header_state_root = on_preset!(&self.state, s => s.latest_block_header().state_root);
        let previous_state_root = (header_state_root == Root::ZERO).then(|| self.hash_tree_root());
        on_preset!(&mut self.state, s => {
            if let Some(root) = previous_state_root {
                s.latest_block_header_mut().state_root = root;
            }
            let block_root = s.latest_block_header().tree_hash_root();
            let roots = s.block_roots_mut();
            // The vector has SLOTS_PER_HISTORICAL_ROOT (non-zero) entries.
            let index = (slot % roots.len() as u64) as usize;
            roots[index] = block_root;
        });
    }

    /// The parts of `process_epoch` that an empty chain's committees,
    /// sync committees and proposers depend on, in the spec's order.
    fn process_epoch(&mut self) -> Result<(), StateError> {
        self.process_randao_mixes_reset();
        self.process_sync_committee_updates()?;
        self.process_proposer_lookahead()
    }

    /// `process_randao_mixes_reset`: the next epoch's mix starts as the
    /// current one (no block mixes a reveal into it).
    fn process_randao_mixes_reset(&mut self) {
        let current_epoch = self.get_current_epoch();
        let mix = self.get_randao_mix(current_epoch);
        on_preset!(&mut self.state, s => {
            let mixes = s.randao_mixes_mut();
            // EPOCHS_PER_HISTORICAL_VECTOR is non-zero; the epoch of a slot
            // is far below u64::MAX, so the next one does not overflow.
            let index = ((current_epoch + 1) % mixes.len() as u64) as usize;
            mixes[index] = mix;
        });
    }

    /// `process_sync_committee_updates`: at the end of a sync committee
    /// period the next committee becomes the current one and a new next one
    /// is drawn. Nothing before altair.
    fn process_sync_committee_updates(&mut self) -> Result<(), StateError> {
        let Ok(next) = self.sync_committee(SyncPeriod::Next) else {
            return Ok(());
        };
        let next_epoch: Epoch = self.get_current_epoch() + 1;
        if next_epoch % self.preset.EPOCHS_PER_SYNC_COMMITTEE_PERIOD != 0 {
            return Ok(());
        }
        let current = SyncCommitteeKeys::from(next);
        let next = self.get_next_sync_committee()?;
        self.set_sync_committees(&current, &next)
    }

    /// `process_proposer_lookahead` (fulu): the lookahead drops the current
    /// epoch's proposers and appends those of epoch `current + MIN_SEED_LOOKAHEAD + 1`.
    fn process_proposer_lookahead(&mut self) -> Result<(), StateError> {
        let Some(lookahead) = self.proposer_lookahead() else {
            return Ok(());
        };
        let slots_per_epoch = usize::try_from(self.preset.SLOTS_PER_EPOCH).unwrap_or(usize::MAX);
        let mut shifted = lookahead
            .get(slots_per_epoch..)
            .unwrap_or_default()
            .to_vec();
        let epoch = self.get_current_epoch() + self.preset.MIN_SEED_LOOKAHEAD + 1;
        shifted.extend(self.get_beacon_proposer_indices(epoch)?);
        self.set_proposer_lookahead(&shifted)
    }
}
