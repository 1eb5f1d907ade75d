//! The devnet's beacon chain: a genesis state of interop validators served
//! by the project's state-backed beacon node, and moved through empty slots
//! as the slot clock ticks.
//!
//! The chain has no blocks: at each slot the state's slot advances and, at
//! each epoch boundary, the randao mix is carried forward (as an empty chain
//! does), the sync committees rotate at a period boundary and fulu's proposer
//! lookahead shifts (`BeaconState::advance_empty_slots`). So the committees
//! of every later epoch are exactly those of such a chain; nothing else a
//! block would change (attestations, rewards, deposits) happens.

use std::sync::Arc;

use crate::api::filters::Limits;
use crate::beacon::backend::LoadedState;
use crate::beacon::sidecar::{Sidecar, SidecarConfig, SidecarError, SidecarSource};
use crate::spec::time::{unix_now, SlotClock};
use crate::spec::{ChainSpec, ForkName, Slot};
use crate::state::{interop_genesis_state, AdvanceError, GenesisError};

/// Why the chain could not start or advance.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The genesis state could not be made.
    #[error("cannot make the genesis state: {0}")]
    Genesis(#[from] GenesisError),
    /// The beacon node could not start.
    #[error("cannot start the devnet's beacon node: {0}")]
    BeaconNode(#[from] SidecarError),
    /// The state could not be moved to the slot.
    #[error("cannot advance the chain to slot {slot}: {source}")]
    Advance {
        /// The slot asked for.
        slot: Slot,
        /// Why.
        source: AdvanceError,
    },
    /// The beacon node holds no state (it always does once started).
    #[error("the devnet's beacon node holds no state: {0}")]
    NoState(String),
    /// The committees of the advanced state could not be computed.
    #[error("cannot compute the committees at slot {slot}: {reason}")]
    Committees {
        /// The slot of the state.
        slot: Slot,
        /// Why.
        reason: String,
    },
}

/// The devnet's chain: the beacon node serving it holds its one state.
pub struct DevnetChain {
    node: Sidecar,
}

/// A task moving a chain along the slot clock; dropping it stops it.
pub struct ChainTicker(tokio::task::JoinHandle<()>);

impl Drop for ChainTicker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl DevnetChain {
    /// Makes the genesis state of `validators` interop validators at `fork`
    /// (active from genesis in `spec`) and serves it on 127.0.0.1.
    pub async fn start(
        spec: ChainSpec,
        fork: ForkName,
        validators: u64,
        genesis_time: u64,
    ) -> Result<Self, ChainError> {
        let genesis = {
            let spec = spec.clone();
            tokio::task::spawn_blocking(move || {
                interop_genesis_state(&spec, fork, validators, genesis_time)
            })
            .await
            .map_err(|e| ChainError::Committees {
                slot: 0,
                reason: e.to_string(),
            })??
        };
        let node = Sidecar::start(SidecarConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            source: SidecarSource::State(Box::new(genesis)),
            spec,
            limits: Limits::default(),
        })
        .await?;
        Ok(DevnetChain { node })
    }

    /// The beacon node's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.node.addr())
    }

    /// The beacon node (its subscription log is read by the report).
    pub fn node(&self) -> &Sidecar {
        &self.node
    }

    /// The chain's state now, with its committees.
    pub fn loaded(&self) -> Result<Arc<LoadedState>, ChainError> {
        self.node
            .backend()
            .loaded()
            .map_err(|error| ChainError::NoState(error.to_string()))
    }

    /// Moves the chain through empty slots to `slot` and serves that state.
    pub async fn advance_to(&self, slot: Slot) -> Result<Arc<LoadedState>, ChainError> {
        let current = self.loaded()?;
        if current.state.slot() == slot {
            return Ok(current);
        }
        let mut state = current.state.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            state
                .advance_empty_slots(slot)
                .map_err(|source| ChainError::Advance { slot, source })?;
            LoadedState::new(state).map_err(|e| ChainError::Committees {
                slot,
                reason: e.to_string(),
            })
        })
        .await
        .map_err(|e| ChainError::Committees {
            slot,
            reason: e.to_string(),
        })??;
        self.node.backend().set_state(loaded);
        self.loaded()
    }

    /// Moves the chain to each slot a quarter of a slot before it starts,
    /// as a beacon node advances its head state ahead of the slot, so that
    /// clients asking at a slot's start find the chain there.
    pub fn follow_clock(self: &Arc<Self>, clock: SlotClock) -> ChainTicker {
        let chain = Arc::clone(self);
        let lead = clock.slot_duration() / 4;
        ChainTicker(tokio::spawn(async move {
            let Ok(mut slot) = chain.loaded().map(|loaded| loaded.state.slot()) else {
                return;
            };
            loop {
                slot = slot.saturating_add(1);
                let at = clock.slot_start(slot).saturating_sub(lead);
                tokio::time::sleep(at.saturating_sub(unix_now())).await;
                if let Err(error) = chain.advance_to(slot).await {
                    tracing::error!(%error, "the devnet chain stopped");
                    return;
                }
            }
        }))
    }
}
