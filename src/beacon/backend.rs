//! The beacon-node side's view of the chain: one loaded `BeaconState` with the
//! committee caches of its previous, current and next epoch, replaced whole
//! when a newer state arrives, and the [`SelectionBackend`] over it that the
//! `is_aggregator` filter and the read-only Beacon API answer from. Each
//! replacement by a state of another slot is announced to
//! [`StateBackend::subscribe_heads`] subscribers (the `head` event stream).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use tokio::sync::broadcast;

use super::head::ChainRoots;
use crate::api::{BackendError, BeaconCommittees, SelectionBackend, SlotContext};
use crate::crypto::PublicKey;
use crate::spec::{ChainSpec, Preset, Root, Slot, ValidatorIndex};
use crate::state::epoch_caches::{EpochCommittees, EpochCommitteesError};
use crate::state::BeaconState;

/// Head changes a lagging subscriber may fall behind by before it misses
/// some (each held change keeps its state alive until every subscriber saw it).
const HEAD_CHANNEL_CAPACITY: usize = 16;

/// A state and everything derived from it once: the committees at load, the
/// roots on first use.
#[derive(Debug)]
pub struct LoadedState {
    /// The decoded state.
    pub state: BeaconState,
    /// The committees of the state's previous, current and next epoch.
    pub committees: EpochCommittees,
    state_root: OnceLock<Root>,
    chain_roots: OnceLock<ChainRoots>,
}

impl LoadedState {
    /// Builds the three committee caches of `state` (three shuffles: call it
    /// off the async executor for mainnet-size states).
    pub fn new(state: BeaconState) -> Result<Self, EpochCommitteesError> {
        let committees = EpochCommittees::from_state(&state)?;
        Ok(LoadedState {
            state,
            committees,
            state_root: OnceLock::new(),
            chain_roots: OnceLock::new(),
        })
    }

    /// `hash_tree_root(state)`, computed on first use (a whole-state hash:
    /// call it off the async executor).
    pub fn state_root(&self) -> Root {
        *self.state_root.get_or_init(|| self.state.hash_tree_root())
    }

    /// The head block root and the block roots the state records, computed
    /// on first use (off the async executor: a genesis state's head root
    /// needs the state's root).
    pub fn chain_roots(&self) -> &ChainRoots {
        self.chain_roots
            .get_or_init(|| ChainRoots::of(&self.state, || self.state_root()))
    }
}

/// A new state of the backend: what `head` events are made of.
#[derive(Debug, Clone)]
pub struct HeadUpdate {
    /// The slot of the state it replaced (`None` for the first state).
    pub previous_slot: Option<Slot>,
    /// The new state.
    pub loaded: Arc<LoadedState>,
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
    heads: broadcast::Sender<HeadUpdate>,
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
            heads: broadcast::channel(HEAD_CHANNEL_CAPACITY).0,
        }
    }

    /// The chain configuration.
    pub fn spec(&self) -> &Arc<ChainSpec> {
        &self.spec
    }

    /// Replaces the state every later request answers from and, when its
    /// slot differs from the state it replaces, tells the head subscribers.
    pub fn set_state(&self, loaded: LoadedState) {
        let loaded = Arc::new(loaded);
        let previous = match self.loaded.write() {
            Ok(mut slot) => slot.replace(Arc::clone(&loaded)),
            Err(poisoned) => poisoned.into_inner().replace(Arc::clone(&loaded)),
        };
        let previous_slot = previous.map(|previous| previous.state.slot());
        if previous_slot != Some(loaded.state.slot()) {
            // No subscriber is not an error: the update is dropped.
            let _ = self.heads.send(HeadUpdate {
                previous_slot,
                loaded,
            });
        }
    }

    /// A receiver of every later state change to a new slot, in order (a
    /// receiver more than 16 changes behind misses the oldest).
    pub fn subscribe_heads(&self) -> broadcast::Receiver<HeadUpdate> {
        self.heads.subscribe()
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
