//! Domains and signing roots (`compute_domain`, `get_domain`,
//! `compute_signing_root`), and the signing roots of what a distributed
//! validator combines: the two selection proofs and the attestation (the
//! `AggregateAndProof`'s is beside its container, in `api::attestation`).

use tree_hash::TreeHash;

use super::config::{
    Preset, DOMAIN_BEACON_ATTESTER, DOMAIN_SELECTION_PROOF, DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF,
};
use super::primitives::{
    AttestationData, Domain, DomainType, Epoch, Fork, ForkData, Root, SigningData, Slot,
    SyncAggregatorSelectionData, Version,
};

/// `compute_epoch_at_slot`.
pub fn compute_epoch_at_slot(slot: Slot, preset: &Preset) -> Epoch {
    // SLOTS_PER_EPOCH is a preset constant, never zero.
    slot / preset.SLOTS_PER_EPOCH.max(1)
}

/// `compute_fork_data_root`: the root of `ForkData(current_version, genesis_validators_root)`.
pub fn compute_fork_data_root(current_version: Version, genesis_validators_root: Root) -> Root {
    ForkData {
        current_version,
        genesis_validators_root,
    }
    .tree_hash_root()
}

/// `compute_domain`: the domain type followed by the first 28 bytes of the fork data root.
pub fn compute_domain(
    domain_type: DomainType,
    fork_version: Version,
    genesis_validators_root: Root,
) -> Domain {
    let fork_data_root = compute_fork_data_root(fork_version, genesis_validators_root);
    let mut domain = [0u8; 32];
    domain[..4].copy_from_slice(&domain_type);
    domain[4..].copy_from_slice(&fork_data_root.as_slice()[..28]);
    Domain::from(domain)
}

/// `get_domain`: the domain of `domain_type` at `epoch`, taking the fork's
/// previous version for epochs before the fork.
pub fn get_domain(
    fork: &Fork,
    genesis_validators_root: Root,
    domain_type: DomainType,
    epoch: Epoch,
) -> Domain {
    let fork_version = if epoch < fork.epoch {
        fork.previous_version
    } else {
        fork.current_version
    };
    compute_domain(domain_type, fork_version, genesis_validators_root)
}

/// `compute_signing_root`: the root of `SigningData(hash_tree_root(object), domain)`.
pub fn compute_signing_root<T: TreeHash>(object: &T, domain: Domain) -> Root {
    SigningData {
        object_root: object.tree_hash_root(),
        domain,
    }
    .tree_hash_root()
}

/// The signing root of an attestation selection proof (`get_slot_signature`):
/// the slot as `uint64`, under `DOMAIN_SELECTION_PROOF` of the slot's epoch.
pub fn selection_proof_signing_root(
    slot: Slot,
    fork: &Fork,
    genesis_validators_root: Root,
    preset: &Preset,
) -> Root {
    let epoch = compute_epoch_at_slot(slot, preset);
    let domain = get_domain(fork, genesis_validators_root, DOMAIN_SELECTION_PROOF, epoch);
    compute_signing_root(&slot, domain)
}

/// The signing root of a sync-committee selection proof
/// (`get_sync_committee_selection_proof`): `SyncAggregatorSelectionData(slot,
/// subcommittee_index)` under `DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF`.
pub fn sync_selection_proof_signing_root(
    slot: Slot,
    subcommittee_index: u64,
    fork: &Fork,
    genesis_validators_root: Root,
    preset: &Preset,
) -> Root {
    let epoch = compute_epoch_at_slot(slot, preset);
    let domain = get_domain(
        fork,
        genesis_validators_root,
        DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF,
        epoch,
    );
    let data = SyncAggregatorSelectionData {
        slot,
        subcommittee_index,
    };
    compute_signing_root(&data, domain)
}

/// The signing root of an attestation (`get_attestation_signature`): the
/// `AttestationData` under `DOMAIN_BEACON_ATTESTER` of its target epoch.
pub fn attestation_signing_root(
    data: &AttestationData,
    fork: &Fork,
    genesis_validators_root: Root,
) -> Root {
    let domain = get_domain(
        fork,
        genesis_validators_root,
        DOMAIN_BEACON_ATTESTER,
        data.target.epoch,
    );
    compute_signing_root(data, domain)
}
