//! The beacon-node side's view of the chain: one loaded `BeaconState` with the
//! committee caches of its previous, current and next epoch, replaced whole
//! when a newer state arrives, and the [`SelectionBackend`] over it that the
//! `is_aggregator` filter and the read-only Beacon API answer from.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::api::{BackendError, BeaconCommittees, SelectionBackend, SlotContext};
use crate::crypto::PublicKey;
use crate::spec::{ChainSpec, Preset, Slot, ValidatorIndex};
use crate::state::epoch_caches::{EpochCommittees, EpochCommitteesError};
use crate::state::BeaconState;

/// A state and everything derived from it once, at load.
#[derive(Debug)]
pub struct LoadedState {
    /// The decoded state.
    pub state: BeaconState,
    /// The committees of the state's previous, current and next epoch.
    pub committees: EpochCommittees,
}

impl LoadedState {
    /// Builds the three committee caches of `state` (three shuffles: call it
    /// off the async executor for mainnet-size states).
    pub fn new(state: BeaconState) -> Result<Self, EpochCommitteesError> {
        let committees = EpochCommittees::from_state(&state)?;
        Ok(LoadedState { state, committees })
    }
}

/// The state a beacon-node-side service answers from, shared by its routes.
///
/// Decompressed validator public keys are cached across states: a registry
/// index keeps its key for ever, and decompressing with the subgroup check
/// costs about as much as a third of a signature verification.
pub struct StateBackend {
    spec: Arc<ChainSpec>,
    /// Why there is no state yet, for the 503 while `loaded` is `None`.
    waiting_for: RwLock<String>,
    loaded: RwLock<Option<Arc<LoadedState>>>,
    pubkeys: RwLock<HashMap<ValidatorIndex, PublicKey>>,
}

impl std::fmt::Debug for StateBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateBackend")
            .field("config", &self.spec.config_name)
            .field("state_slot", &self.loaded().ok().map(|l| l.state.slot()))
            .finish_non_exhaustive()
    }
}

impl StateBackend {
    /// A backend with no state yet; `waiting_for` says why (it becomes the
    /// message of the 503 that requests get until a state is set).
    pub fn new(spec: Arc<ChainSpec>, waiting_for: impl Into<String>) -> Self {
        StateBackend {
            spec,
            waiting_for: RwLock::new(waiting_for.into()),
            loaded: RwLock::new(None),
            pubkeys: RwLock::new(HashMap::new()),
        }
    }

    /// The chain configuration.
    pub fn spec(&self) -> &Arc<ChainSpec> {
        &self.spec
    }

    /// Replaces the state every later request answers from.
    pub fn set_state(&self, loaded: LoadedState) {
        let loaded = Arc::new(loaded);
        match self.loaded.write() {
            Ok(mut slot) => *slot = Some(loaded),
            Err(poisoned) => *poisoned.into_inner() = Some(loaded),
        }
    }

    /// Records why no state is loaded (shown in the 503) while none is.
    pub fn set_waiting_for(&self, reason: impl Into<String>) {
        match self.waiting_for.write() {
            Ok(mut slot) => *slot = reason.into(),
            Err(poisoned) => *poisoned.into_inner() = reason.into(),
        }
    }

    /// The current state, or [`BackendError::NotReady`] saying why there is none.
    pub fn loaded(&self) -> Result<Arc<LoadedState>, BackendError> {
        let current = match self.loaded.read() {
            Ok(slot) => slot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        current.ok_or_else(|| {
            let reason = match self.waiting_for.read() {
                Ok(reason) => reason.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            BackendError::NotReady(format!("no beacon state loaded yet: {reason}"))
        })
    }

    fn cached_pubkey(&self, index: ValidatorIndex) -> Option<PublicKey> {
        match self.pubkeys.read() {
            Ok(map) => map.get(&index).copied(),
            Err(poisoned) => poisoned.into_inner().get(&index).copied(),
        }
    }

    fn cache_pubkey(&self, index: ValidatorIndex, pubkey: PublicKey) {
        match self.pubkeys.write() {
            Ok(mut map) => map.insert(index, pubkey),
            Err(poisoned) => poisoned.into_inner().insert(index, pubkey),
        };
    }
}

impl SelectionBackend for StateBackend {
    fn selection_context(&self, slot: Slot) -> Result<SlotContext, BackendError> {
        let loaded = self.loaded()?;
        let cache = loaded
            .committees
            .for_slot(slot)
            .map_err(|_| BackendError::SlotOutOfRange {
                slot,
                state_epoch: loaded.state.get_current_epoch(),
            })?;
        Ok(SlotContext {
            committees_per_slot: cache.committees_per_slot(),
            committees: Arc::clone(cache) as Arc<dyn BeaconCommittees>,
            fork: loaded.state.fork(),
            genesis_validators_root: loaded.state.genesis_validators_root(),
        })
    }

    fn validator_pubkey(&self, index: ValidatorIndex) -> Option<PublicKey> {
        if let Some(pubkey) = self.cached_pubkey(index) {
            return Some(pubkey);
        }
        let loaded = self.loaded().ok()?;
        let pubkey = PublicKey::from_bytes(&loaded.state.validator(index)?.pubkey.0).ok()?;
        self.cache_pubkey(index, pubkey);
        Some(pubkey)
    }

    fn current_slot(&self) -> Result<Slot, BackendError> {
        self.loaded().map(|loaded| loaded.state.slot())
    }

    fn preset(&self) -> &Preset {
        &self.spec.preset
    }
}
