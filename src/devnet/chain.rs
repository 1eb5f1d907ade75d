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

use std::sync::Mutex;

use crate::api::filters::Limits;
use crate::beacon::backend::LoadedState;
use crate::beacon::sidecar::{Sidecar, SidecarConfig, SidecarError, SidecarSource};
use crate::spec::time::{unix_now, SlotClock};
use crate::spec::{ChainSpec, ForkName, Slot};
use crate::state::{interop_genesis_state, AdvanceError, BeaconState, GenesisError};

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
    /// The committees of the advanced state could not be computed.
    #[error("cannot compute the committees at slot {slot}: {reason}")]
    Committees {
        /// The slot of the state.
        slot: Slot,
        /// Why.
        reason: String,
    },
}

/// The devnet's chain and the beacon node serving it.
pub struct DevnetChain {
    node: Sidecar,
    state: Mutex<BeaconState>,
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
            source: SidecarSource::State(Box::new(genesis.clone())),
            spec,
            limits: Limits::default(),
        })
        .await?;
        Ok(DevnetChain {
            node,
            state: Mutex::new(genesis),
        })
    }

    /// The beacon node's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.node.addr())
    }

    /// The beacon node (its subscription log is read by the report).
    pub fn node(&self) -> &Sidecar {
        &self.node
    }

    /// The chain's state now.
    pub fn state(&self) -> BeaconState {
        self.lock().clone()
    }

    /// Moves the chain through empty slots to `slot` and serves that state.
    pub async fn advance_to(&self, slot: Slot) -> Result<BeaconState, ChainError> {
        let mut state = self.state();
        let advanced = tokio::task::spawn_blocking(move || {
            state
                .advance_empty_slots(slot)
                .map_err(|source| ChainError::Advance { slot, source })?;
            let loaded = LoadedState::new(state.clone()).map_err(|e| ChainError::Committees {
                slot,
                reason: e.to_string(),
            })?;
            Ok::<_, ChainError>((state, loaded))
        })
        .await
        .map_err(|e| ChainError::Committees {
            slot,
            reason: e.to_string(),
        })??;
        let (state, loaded) = advanced;
        *self.lock() = state.clone();
        self.node.backend().set_state(loaded);
        Ok(state)
    }

    /// Moves the chain to each slot a quarter of a slot before it starts,
    /// as a beacon node advances its head state ahead of the slot, so that
    /// clients asking at a slot's start find the chain there.
    pub fn follow_clock(self: &std::sync::Arc<Self>, clock: SlotClock) -> ChainTicker {
        let chain = std::sync::Arc::clone(self);
        let lead = clock.slot_duration() / 4;
        ChainTicker(tokio::spawn(async move {
            let mut slot = chain.state().slot();
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

    fn lock(&self) -> std::sync::MutexGuard<'_, BeaconState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
