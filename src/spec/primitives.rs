//! Consensus primitives: the names a spec reader expects, as Rust types.

use serde::{Deserialize, Serialize};
use serde_utils::quoted_u64::require_quotes as quoted_u64;
use ssz_derive::{Decode, Encode};
use tree_hash_derive::TreeHash;

/// A slot number.
pub type Slot = u64;
/// An epoch number.
pub type Epoch = u64;
/// An index into the validator registry.
pub type ValidatorIndex = u64;
/// The index of a beacon committee within its slot.
pub type CommitteeIndex = u64;
/// A 32-byte SSZ root.
pub type Root = tree_hash::Hash256;
/// A 32-byte signature domain.
pub type Domain = tree_hash::Hash256;
/// A 4-byte fork version.
pub type Version = [u8; 4];
/// A 4-byte domain type.
pub type DomainType = [u8; 4];

/// `FAR_FUTURE_EPOCH`.
pub const FAR_FUTURE_EPOCH: Epoch = u64::MAX;
/// `GENESIS_EPOCH`.
pub const GENESIS_EPOCH: Epoch = 0;

/// The `Fork` container of the consensus specs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode, TreeHash)]
pub struct Fork {
    pub previous_version: Version,
    pub current_version: Version,
    pub epoch: Epoch,
}

/// The `ForkData` container, hashed into every domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, TreeHash)]
pub struct ForkData {
    pub current_version: Version,
    pub genesis_validators_root: Root,
}

/// The `SigningData` container: what a BLS signature actually signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, TreeHash)]
pub struct SigningData {
    pub object_root: Root,
    pub domain: Domain,
}

/// The `SyncAggregatorSelectionData` container signed by a sync selection proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, TreeHash)]
pub struct SyncAggregatorSelectionData {
    pub slot: Slot,
    pub subcommittee_index: u64,
}

/// The `Checkpoint` container: an epoch and the block root at its start.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Encode,
    Decode,
    TreeHash,
    Serialize,
    Deserialize,
)]
pub struct Checkpoint {
    #[serde(with = "quoted_u64")]
    pub epoch: Epoch,
    #[serde(with = "super::hex::root")]
    pub root: Root,
}

/// The `AttestationData` container: what an attestation votes for. From
/// electra on, `index` is always 0 (the committee travels beside the data).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Encode,
    Decode,
    TreeHash,
    Serialize,
    Deserialize,
)]
pub struct AttestationData {
    #[serde(with = "quoted_u64")]
    pub slot: Slot,
    #[serde(with = "quoted_u64")]
    pub index: CommitteeIndex,
    #[serde(with = "super::hex::root")]
    pub beacon_block_root: Root,
    pub source: Checkpoint,
    pub target: Checkpoint,
}
