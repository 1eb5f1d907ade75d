//! What a validator client or a middleware learns from its beacon node
//! before its first duty: the chain configuration, genesis and the head
//! state's fork, and what follows from them (the slot clock, the signing
//! roots of both selection proofs).

use super::attestation::AggregateAndProof;
use super::client::{BeaconNodeClient, ClientError};
use super::types::StateId;
use crate::spec::signing::{
    attestation_signing_root, compute_epoch_at_slot, selection_proof_signing_root,
    sync_selection_proof_signing_root,
};
use crate::spec::time::{SlotClock, SlotClockError};
use crate::spec::{AttestationData, ChainSpec, ConfigError, Fork, ForkName, Root, Slot};

/// Why the chain information could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum ChainInfoError {
    /// A call to the beacon node failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// `GET /eth/v1/config/spec` is not a configuration this crate reads.
    #[error("the beacon node's /eth/v1/config/spec is unusable: {0}")]
    Config(#[from] ConfigError),
    /// The configuration's slot duration is zero.
    #[error("the beacon node's configuration is unusable: {0}")]
    SlotClock(#[from] SlotClockError),
}

/// The chain a beacon node follows, as the signing of selection proofs needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    /// The node's configuration (preset, fork schedule, `SECONDS_PER_SLOT`).
    pub spec: ChainSpec,
    /// Genesis time, Unix seconds.
    pub genesis_time: u64,
    /// `genesis_validators_root`.
    pub genesis_validators_root: Root,
    /// The head state's `fork`, which [`get_domain`](crate::spec::signing::get_domain)
    /// takes for the epochs around the head.
    pub fork: Fork,
}

impl ChainInfo {
    /// Fetches `config/spec`, `beacon/genesis` and the head state's fork.
    pub async fn fetch(client: &BeaconNodeClient) -> Result<Self, ChainInfoError> {
        let config = client.config_spec().await?;
        let body = serde_json::json!({ "data": config }).to_string();
        let spec = ChainSpec::from_config_spec_json(&body)?;
        let genesis = client.genesis().await?;
        let fork = client.state_fork(StateId::Head).await?;
        let info = ChainInfo {
            spec,
            genesis_time: genesis.genesis_time,
            genesis_validators_root: genesis.genesis_validators_root,
            fork,
        };
        info.slot_clock()?;
        Ok(info)
    }

    /// The slot clock of this chain.
    pub fn slot_clock(&self) -> Result<SlotClock, SlotClockError> {
        SlotClock::new(self.genesis_time, self.spec.seconds_per_slot)
    }

    /// The root an attestation selection proof for `slot` signs (`get_slot_signature`).
    pub fn selection_proof_signing_root(&self, slot: Slot) -> Root {
        selection_proof_signing_root(
            slot,
            &self.fork,
            self.genesis_validators_root,
            &self.spec.preset,
        )
    }

    /// The root a sync selection proof for (`slot`, `subcommittee_index`) signs
    /// (`get_sync_committee_selection_proof`).
    pub fn sync_selection_proof_signing_root(&self, slot: Slot, subcommittee_index: u64) -> Root {
        sync_selection_proof_signing_root(
            slot,
            subcommittee_index,
            &self.fork,
            self.genesis_validators_root,
            &self.spec.preset,
        )
    }

    /// The signing root of an attestation of `data`.
    pub fn attestation_signing_root(&self, data: &AttestationData) -> Root {
        attestation_signing_root(data, &self.fork, self.genesis_validators_root)
    }

    /// The signing root of an `AggregateAndProof`.
    pub fn aggregate_and_proof_signing_root(&self, message: &AggregateAndProof) -> Root {
        message.signing_root(&self.fork, self.genesis_validators_root, &self.spec.preset)
    }

    /// The fork of the chain's schedule at `slot` (which decides the v1 or
    /// v2 form of the attestation endpoints).
    pub fn fork_at_slot(&self, slot: Slot) -> ForkName {
        self.spec
            .fork_name_at_epoch(compute_epoch_at_slot(slot, &self.spec.preset))
    }
}
