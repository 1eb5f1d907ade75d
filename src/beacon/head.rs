//! The chain a loaded state stands for, as a beacon node reports it: its
//! head block root, the block root of any recent slot, the checkpoints an
//! attestation names, and the `head` event of each new state.
//!
//! The state-backed node has no blocks of its own; its chain is the one the
//! state records. The head block is `state.latest_block_header` with its
//! `state_root` filled as `process_slot` fills it (the state's own root while
//! it is still zero, as in a genesis state), so the head root is exactly what
//! `get_block_root_at_slot` returns for that slot once the state has moved
//! past it. A slot before the state's has the root
//! `get_block_root_at_slot(state, slot)` gives (the latest block at or before
//! it); the state's own slot has the head root. On the devnet's empty chain
//! every one of them is the genesis block's root.

use std::collections::HashSet;

use tree_hash::TreeHash;

use super::backend::LoadedState;
use crate::api::types::HeadEvent;
use crate::spec::signing::compute_epoch_at_slot;
use crate::spec::{Checkpoint, Epoch, Root, Slot};
use crate::state::BeaconState;

/// The block roots a state knows, computed once per state.
#[derive(Debug, Clone)]
pub struct ChainRoots {
    head: Root,
    /// The head root and every root of the `SLOTS_PER_HISTORICAL_ROOT` slots
    /// before the state's (the slots `get_block_root_at_slot` answers for).
    known: HashSet<Root>,
}

impl ChainRoots {
    /// The roots of `state`, whose own root is `state_root` (asked for only
    /// when the head block's header does not hold it yet).
    pub fn of(state: &BeaconState, state_root: impl FnOnce() -> Root) -> Self {
        let mut header = *state.latest_block_header();
        if header.state_root == Root::ZERO {
            header.state_root = state_root();
        }
        let head = header.tree_hash_root();
        let history = state.preset().SLOTS_PER_HISTORICAL_ROOT;
        let mut known: HashSet<Root> = (state.slot().saturating_sub(history)..state.slot())
            .filter_map(|slot| state.get_block_root_at_slot(slot))
            .collect();
        known.insert(head);
        ChainRoots { head, known }
    }

    /// The head block's root.
    pub fn head_block_root(&self) -> Root {
        self.head
    }

    /// Whether `root` is the root of a block of this chain that the state
    /// still records.
    pub fn is_known_block(&self, root: &Root) -> bool {
        self.known.contains(root)
    }
}

impl LoadedState {
    /// The block root at `slot`: the head root at the state's slot,
    /// `get_block_root_at_slot` before it, `None` after it or beyond the
    /// state's history.
    pub fn block_root_at_slot(&self, slot: Slot) -> Option<Root> {
        if slot == self.state.slot() {
            Some(self.chain_roots().head_block_root())
        } else {
            self.state.get_block_root_at_slot(slot)
        }
    }

    /// The root of epoch `epoch`'s checkpoint block: the block root at the
    /// epoch's start slot (the head root when the state is at that slot).
    pub fn checkpoint_root(&self, epoch: Epoch) -> Option<Root> {
        let start = epoch.checked_mul(self.state.preset().SLOTS_PER_EPOCH)?;
        self.block_root_at_slot(start)
    }

    /// The source an attestation of target epoch `epoch` must name
    /// (`process_attestation`): the current justified checkpoint for the
    /// state's current epoch, the previous one otherwise.
    pub fn justified_checkpoint_for(&self, epoch: Epoch) -> Checkpoint {
        if epoch == self.state.get_current_epoch() {
            self.state.current_justified_checkpoint()
        } else {
            self.state.previous_justified_checkpoint()
        }
    }

    /// The genesis block's root: the root at slot 0, or the head root while
    /// the head block is still the genesis block (a state at slot 0, or a
    /// chain without blocks that outgrew the state's history).
    fn genesis_block_root(&self) -> Root {
        self.block_root_at_slot(0)
            .or_else(|| {
                (self.state.latest_block_header().slot == 0)
                    .then(|| self.chain_roots().head_block_root())
            })
            .unwrap_or(Root::ZERO)
    }

    /// The block root at the last slot before `slot`, or the genesis block
    /// root when there is none (the Beacon API's rule for dependent roots).
    fn dependent_root(&self, start_slot: Option<Slot>) -> Root {
        start_slot
            .and_then(|slot| slot.checked_sub(1))
            .and_then(|slot| self.block_root_at_slot(slot))
            .unwrap_or_else(|| self.genesis_block_root())
    }

    /// The `head` event of this state, the head before it being at
    /// `previous_slot`.
    pub fn head_event(&self, previous_slot: Option<Slot>) -> HeadEvent {
        let state = &self.state;
        let preset = state.preset();
        let slot = state.slot();
        let epoch = state.get_current_epoch();
        let start = |epoch: Option<Epoch>| epoch?.checked_mul(preset.SLOTS_PER_EPOCH);
        HeadEvent {
            slot,
            block: self.chain_roots().head_block_root(),
            state: self.state_root(),
            epoch_transition: previous_slot
                .is_some_and(|previous| compute_epoch_at_slot(previous, preset) != epoch),
            previous_duty_dependent_root: self.dependent_root(start(epoch.checked_sub(1))),
            current_duty_dependent_root: self.dependent_root(start(Some(epoch))),
            execution_optimistic: false,
        }
    }
}
