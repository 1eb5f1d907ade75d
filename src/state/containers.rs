//! The SSZ containers a `BeaconState` is made of, other than the state
//! itself: validators, headers, checkpoints, sync committees, execution
//! payload headers and the electra queues.

use std::fmt;

use alloy_primitives::U256;
use ssz_derive::{Decode, Encode};
use ssz_types::typenum::{U256 as U256Len, U32};
use ssz_types::{BitList, FixedVector, VariableList};
use tree_hash::{PackedEncoding, TreeHash, TreeHashType};
use tree_hash_derive::TreeHash;

use super::preset::StatePreset;
pub use crate::spec::{AttestationData, Checkpoint};
use crate::spec::{Epoch, Root, Slot, ValidatorIndex, FAR_FUTURE_EPOCH};

/// The length of a BLS public key (`BLSPubkey`).
pub const PUBLIC_KEY_BYTES_LEN: usize = 48;

/// A BLS public key as stored in the state: 48 compressed bytes, not
/// checked to be a valid curve point (decoding a state must not pay for
/// point decompression of every validator).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
#[ssz(struct_behaviour = "transparent")]
pub struct PublicKeyBytes(pub [u8; PUBLIC_KEY_BYTES_LEN]);

impl TreeHash for PublicKeyBytes {
    fn tree_hash_type() -> TreeHashType {
        <[u8; PUBLIC_KEY_BYTES_LEN]>::tree_hash_type()
    }

    fn tree_hash_packed_encoding(&self) -> PackedEncoding {
        self.0.tree_hash_packed_encoding()
    }

    fn tree_hash_packing_factor() -> usize {
        <[u8; PUBLIC_KEY_BYTES_LEN]>::tree_hash_packing_factor()
    }

    fn tree_hash_root(&self) -> Root {
        self.0.tree_hash_root()
    }
}

impl Default for PublicKeyBytes {
    /// All zeros: the empty slot of a default sync committee, not a key.
    fn default() -> Self {
        PublicKeyBytes([0; PUBLIC_KEY_BYTES_LEN])
    }
}

impl fmt::Display for PublicKeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The `Validator` record; the same in every fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, TreeHash)]
pub struct Validator {
    pub pubkey: PublicKeyBytes,
    pub withdrawal_credentials: Root,
    pub effective_balance: u64,
    pub slashed: bool,
    pub activation_eligibility_epoch: Epoch,
    pub activation_epoch: Epoch,
    pub exit_epoch: Epoch,
    pub withdrawable_epoch: Epoch,
}

impl Validator {
    /// `is_active_validator`: activated at or before `epoch`, not yet exited.
    pub fn is_active_validator(&self, epoch: Epoch) -> bool {
        self.activation_epoch <= epoch && epoch < self.exit_epoch
    }

    /// A validator that never entered the activation queue, for building
    /// test and benchmark states.
    pub fn pending(pubkey: PublicKeyBytes) -> Self {
        Validator {
            pubkey,
            withdrawal_credentials: Root::ZERO,
            effective_balance: 0,
            slashed: false,
            activation_eligibility_epoch: FAR_FUTURE_EPOCH,
            activation_epoch: FAR_FUTURE_EPOCH,
            exit_epoch: FAR_FUTURE_EPOCH,
            withdrawable_epoch: FAR_FUTURE_EPOCH,
        }
    }
}

/// `BeaconBlockHeader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode, TreeHash)]
pub struct BeaconBlockHeader {
    pub slot: Slot,
    pub proposer_index: ValidatorIndex,
    pub parent_root: Root,
    pub state_root: Root,
    pub body_root: Root,
}

/// `Eth1Data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode, TreeHash)]
pub struct Eth1Data {
    pub deposit_root: Root,
    pub deposit_count: u64,
    pub block_hash: Root,
}

/// `PendingAttestation` (phase0 only).
#[derive(Debug, Clone, PartialEq, Encode, Decode, TreeHash)]
pub struct PendingAttestation<E: StatePreset> {
    pub aggregation_bits: BitList<E::MaxValidatorsPerCommittee>,
    pub data: AttestationData,
    pub inclusion_delay: Slot,
    pub proposer_index: ValidatorIndex,
}

/// `SyncCommittee` (altair onwards).
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, TreeHash)]
pub struct SyncCommittee<E: StatePreset> {
    pub pubkeys: FixedVector<PublicKeyBytes, E::SyncCommitteeSize>,
    pub aggregate_pubkey: PublicKeyBytes,
}

/// `MAX_EXTRA_DATA_BYTES`-bounded `extra_data` of an execution payload.
pub type ExtraData = VariableList<u8, U32>;
/// `BYTES_PER_LOGS_BLOOM` bytes of an execution payload's logs bloom.
pub type LogsBloom = FixedVector<u8, U256Len>;
/// A 20-byte execution address.
pub type ExecutionAddress = [u8; 20];

/// Defines an `ExecutionPayloadHeader`: the bellatrix fields, in SSZ
/// order, then the fork's own.
macro_rules! execution_payload_header {
    (
        $(#[$doc:meta])*
        $name:ident { $($field:ident: $ty:ty),* $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Default, Encode, Decode, TreeHash)]
        pub struct $name {
            pub parent_hash: Root,
            pub fee_recipient: ExecutionAddress,
            pub state_root: Root,
            pub receipts_root: Root,
            pub logs_bloom: LogsBloom,
            pub prev_randao: Root,
            pub block_number: u64,
            pub gas_limit: u64,
            pub gas_used: u64,
            pub timestamp: u64,
            pub extra_data: ExtraData,
            pub base_fee_per_gas: U256,
            pub block_hash: Root,
            pub transactions_root: Root,
            $(pub $field: $ty,)*
        }
    };
}

execution_payload_header! {
    /// The bellatrix `ExecutionPayloadHeader`.
    ExecutionPayloadHeaderBellatrix {}
}

execution_payload_header! {
    /// The capella `ExecutionPayloadHeader`: bellatrix plus `withdrawals_root`.
    ExecutionPayloadHeaderCapella {
        withdrawals_root: Root,
    }
}

execution_payload_header! {
    /// The deneb `ExecutionPayloadHeader` (also electra's and fulu's):
    /// capella plus the blob gas counters.
    ExecutionPayloadHeaderDeneb {
        withdrawals_root: Root,
        blob_gas_used: u64,
        excess_blob_gas: u64,
    }
}

/// `HistoricalSummary` (capella onwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode, TreeHash)]
pub struct HistoricalSummary {
    pub block_summary_root: Root,
    pub state_summary_root: Root,
}

/// `PendingDeposit` (electra onwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, TreeHash)]
pub struct PendingDeposit {
    pub pubkey: PublicKeyBytes,
    pub withdrawal_credentials: Root,
    pub amount: u64,
    pub signature: [u8; 96],
    pub slot: Slot,
}

/// `PendingPartialWithdrawal` (electra onwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode, TreeHash)]
pub struct PendingPartialWithdrawal {
    pub validator_index: ValidatorIndex,
    pub amount: u64,
    pub withdrawable_epoch: Epoch,
}

/// `PendingConsolidation` (electra onwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode, TreeHash)]
pub struct PendingConsolidation {
    pub source_index: ValidatorIndex,
    pub target_index: ValidatorIndex,
}
