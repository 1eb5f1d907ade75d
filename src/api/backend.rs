//! The `SelectionBackend` trait: what the `is_aggregator` endpoint needs to
//! know about the chain (committees, the selection-proof fork, validator
//! public keys, the current slot), so that a node with its own committee
//! cache plugs in behind an `Arc<dyn SelectionBackend>` without copying state.

use std::sync::Arc;

use crate::crypto::PublicKey;
use crate::spec::{CommitteeIndex, Epoch, Fork, Preset, Root, Slot, ValidatorIndex};

/// Why a backend cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The backend has nothing to answer from yet (e.g. no state loaded); the
    /// endpoint answers 503 with this message.
    #[error("{0}")]
    NotReady(String),
    /// The slot's epoch is not the previous, current or next epoch of the
    /// backend's state, so its committees are unknown; the endpoint names the
    /// item in a 400.
    #[error("slot {slot} is outside the previous, current and next epoch of the beacon state at epoch {state_epoch}")]
    SlotOutOfRange {
        /// The slot that was asked for.
        slot: Slot,
        /// The epoch of the backend's state.
        state_epoch: Epoch,
    },
    /// Anything else; the endpoint answers 500 with this message.
    #[error("internal backend error: {0}")]
    Internal(String),
}

/// The beacon committees of one or more epochs, looked up in place.
///
/// A committee cache implements this once per epoch (or once for its three
/// epochs), so that every [`SlotContext`] shares it through an `Arc`.
pub trait BeaconCommittees: Send + Sync {
    /// `get_beacon_committee(state, slot, index)`: the members of committee
    /// `index` at `slot` in committee order, or `None` if the cache does not
    /// hold that committee.
    fn get_beacon_committee(&self, slot: Slot, index: CommitteeIndex) -> Option<&[ValidatorIndex]>;
}

/// What one slot's selection proofs are checked against.
#[derive(Clone)]
pub struct SlotContext {
    /// `get_committee_count_per_slot(state, compute_epoch_at_slot(slot))`.
    pub committees_per_slot: u64,
    /// The committees of the slot's epoch.
    pub committees: Arc<dyn BeaconCommittees>,
    /// The state's `fork`; with `genesis_validators_root` it gives the
    /// `DOMAIN_SELECTION_PROOF` domain of the slot's epoch.
    pub fork: Fork,
    /// The state's `genesis_validators_root`.
    pub genesis_validators_root: Root,
}

/// The chain knowledge behind `POST /eth/v1/validator/is_aggregator`.
///
/// Implementations must be cheap to query: the endpoint calls
/// [`selection_context`](Self::selection_context) once per distinct slot of a
/// request and [`validator_pubkey`](Self::validator_pubkey) once per item.
pub trait SelectionBackend: Send + Sync {
    /// The committees, committee count and fork for `slot`. Returns
    /// [`BackendError::SlotOutOfRange`] for a slot whose epoch is not the
    /// previous, current or next epoch of the backend's state, and
    /// [`BackendError::NotReady`] while there is no state.
    fn selection_context(&self, slot: Slot) -> Result<SlotContext, BackendError>;

    /// The public key of the validator with registry index `index`, or `None`
    /// if the registry has no such validator.
    fn validator_pubkey(&self, index: ValidatorIndex) -> Option<PublicKey>;

    /// The slot of the backend's state (or the wall-clock slot); `None` while
    /// the backend has no state, which the endpoint answers with 503 before it
    /// reads the request body.
    fn current_slot(&self) -> Option<Slot>;

    /// The preset (`SLOTS_PER_EPOCH`, `TARGET_AGGREGATORS_PER_COMMITTEE`) of
    /// the backend's chain.
    fn preset(&self) -> &Preset;
}
