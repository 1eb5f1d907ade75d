//! The ground truth the devnet checks the cluster against: what each
//! distributed validator would decide if its key were not split. It comes
//! from the chain's state and the validator's whole interop key only (never
//! from a middleware or a validator client): the committee of the validator's
//! attestation duty, the selection proof of the whole key, and the spec's
//! `is_aggregator`; likewise for each sync subcommittee the validator sits in.

use crate::beacon::backend::LoadedState;
use crate::crypto::interop::interop_secret_key;
use crate::spec::selection::{is_aggregator, is_sync_committee_aggregator};
use crate::spec::signing::{selection_proof_signing_root, sync_selection_proof_signing_root};
use crate::spec::{CommitteeIndex, Epoch, Preset, Slot, ValidatorIndex};
use crate::state::BeaconState;

/// Why the ground truth of an epoch cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    /// The state does not hold the epoch's committees.
    #[error("the state at slot {slot} has no committees of epoch {epoch}: {reason}")]
    Committees {
        /// The state's slot.
        slot: Slot,
        /// The epoch asked for.
        epoch: Epoch,
        /// Why.
        reason: String,
    },
    /// The state has no sync committee of the epoch.
    #[error("the state at slot {slot} has no sync committee of epoch {epoch}: {reason}")]
    SyncCommittee {
        /// The state's slot.
        slot: Slot,
        /// The epoch asked for.
        epoch: Epoch,
        /// Why.
        reason: String,
    },
}

/// What a duty is, as the ground truth and the report name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DutyId {
    /// An attestation aggregation duty.
    Attestation,
    /// A sync committee contribution duty in one subcommittee.
    Sync {
        /// The subcommittee.
        subcommittee_index: u64,
    },
}

/// One duty's ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truth {
    /// The slot's epoch.
    pub epoch: Epoch,
    /// The duty's slot.
    pub slot: Slot,
    /// The validator.
    pub validator_index: ValidatorIndex,
    /// Attestation or sync (with its subcommittee).
    pub duty: DutyId,
    /// The attestation duty's committee and its length.
    pub committee: Option<(CommitteeIndex, u64)>,
    /// What the undivided key decides.
    pub is_aggregator: bool,
}

impl Truth {
    /// What a client decides on `selection_proof` for this duty: the spec's
    /// rule with the duty's committee length, or the sync rule.
    pub fn decides(&self, selection_proof: &[u8; 96], preset: &Preset) -> bool {
        match self.committee {
            Some((_, committee_length)) => is_aggregator(committee_length, selection_proof, preset),
            None => is_sync_committee_aggregator(selection_proof, preset),
        }
    }
}

/// The ground truth of `epoch` (the current epoch of the loaded state) for
/// the distributed `validators`: one attestation duty each (when active), and
/// one sync duty per slot of the epoch and subcommittee they sit in.
pub fn ground_truth(
    loaded: &LoadedState,
    epoch: Epoch,
    validators: &[ValidatorIndex],
) -> Result<Vec<Truth>, TruthError> {
    let state = &loaded.state;
    let slot = state.slot();
    let cache = loaded
        .committees
        .for_epoch(epoch)
        .map_err(|e| TruthError::Committees {
            slot,
            epoch,
            reason: e.to_string(),
        })?;
    let preset = state.preset();
    let (fork, root) = (state.fork(), state.genesis_validators_root());
    let mut truths = Vec::new();
    for &validator_index in validators {
        let secret = interop_secret_key(validator_index);
        if let Some(position) = cache.attester_position(validator_index) {
            let signing_root = selection_proof_signing_root(position.slot, &fork, root, preset);
            let proof = secret.sign(signing_root.as_slice()).to_bytes();
            truths.push(Truth {
                epoch,
                slot: position.slot,
                validator_index,
                duty: DutyId::Attestation,
                committee: Some((position.committee_index, position.committee_length)),
                is_aggregator: is_aggregator(position.committee_length, &proof, preset),
            });
        }
        for subcommittee_index in sync_subcommittees(state, epoch, validator_index)? {
            for slot in epoch_slots(epoch, preset.SLOTS_PER_EPOCH) {
                let signing_root = sync_selection_proof_signing_root(
                    slot,
                    subcommittee_index,
                    &fork,
                    root,
                    preset,
                );
                let proof = secret.sign(signing_root.as_slice()).to_bytes();
                truths.push(Truth {
                    epoch,
                    slot,
                    validator_index,
                    duty: DutyId::Sync { subcommittee_index },
                    committee: None,
                    is_aggregator: is_sync_committee_aggregator(&proof, preset),
                });
            }
        }
    }
    truths.sort_by_key(|truth| (truth.slot, truth.validator_index, truth.duty));
    Ok(truths)
}

/// The sync subcommittees `validator_index` sits in during `epoch`.
fn sync_subcommittees(
    state: &BeaconState,
    epoch: Epoch,
    validator_index: ValidatorIndex,
) -> Result<Vec<u64>, TruthError> {
    let sync_error = |reason: String| TruthError::SyncCommittee {
        slot: state.slot(),
        epoch,
        reason,
    };
    if state.current_sync_committee().is_none() {
        return Ok(Vec::new());
    }
    let period = state
        .sync_period_of_epoch(epoch)
        .map_err(|e| sync_error(e.to_string()))?;
    state
        .sync_subcommittee_indices(validator_index, period)
        .map_err(|e| sync_error(e.to_string()))
}

/// The slots of `epoch`.
fn epoch_slots(epoch: Epoch, slots_per_epoch: u64) -> impl Iterator<Item = Slot> {
    let start = epoch.saturating_mul(slots_per_epoch);
    start..start.saturating_add(slots_per_epoch)
}
