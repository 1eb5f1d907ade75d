//! The `BeaconState` container of each fork phase0..fulu, generic over the
//! preset, and [`ForkState`], the enum of them that encodes, decodes and
//! hashes as whichever fork it holds.

use ssz::{Decode, DecodeError};
use ssz_derive::{Decode, Encode};
use ssz_types::typenum::U4;
use ssz_types::{BitVector, FixedVector, VariableList};
use tree_hash_derive::TreeHash;

use super::containers::{
    BeaconBlockHeader, Checkpoint, Eth1Data, ExecutionPayloadHeaderBellatrix,
    ExecutionPayloadHeaderCapella, ExecutionPayloadHeaderDeneb, HistoricalSummary,
    PendingAttestation, PendingConsolidation, PendingDeposit, PendingPartialWithdrawal,
    SyncCommittee, Validator,
};
use super::preset::StatePreset;
use crate::spec::{Fork, ForkName, Root, Slot, ValidatorIndex};

/// `JUSTIFICATION_BITS_LENGTH` bits.
pub type JustificationBits = BitVector<U4>;

/// Defines one fork's `BeaconState`. Every fork shares the fields up to
/// `slashings` and the justification fields; the epoch records between
/// them (phase0 pending attestations, altair participation flags) and the
/// tail after them vary. SSZ order is the order written here.
macro_rules! beacon_state {
    (
        $(#[$doc:meta])*
        $name:ident {
            epoch_records: { $($record:ident: $record_ty:ty),* $(,)? },
            tail: { $($field:ident: $ty:ty),* $(,)? } $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Default, Encode, Decode, TreeHash)]
        pub struct $name<E: StatePreset> {
            pub genesis_time: u64,
            pub genesis_validators_root: Root,
            pub slot: Slot,
            pub fork: Fork,
            pub latest_block_header: BeaconBlockHeader,
            pub block_roots: FixedVector<Root, E::SlotsPerHistoricalRoot>,
            pub state_roots: FixedVector<Root, E::SlotsPerHistoricalRoot>,
            pub historical_roots: VariableList<Root, E::HistoricalRootsLimit>,
            pub eth1_data: Eth1Data,
            pub eth1_data_votes: VariableList<Eth1Data, E::Eth1DataVotesLimit>,
            pub eth1_deposit_index: u64,
            pub validators: VariableList<Validator, E::ValidatorRegistryLimit>,
            pub balances: VariableList<u64, E::ValidatorRegistryLimit>,
            pub randao_mixes: FixedVector<Root, E::EpochsPerHistoricalVector>,
            pub slashings: FixedVector<u64, E::EpochsPerSlashingsVector>,
            $(pub $record: $record_ty,)*
            pub justification_bits: JustificationBits,
            pub previous_justified_checkpoint: Checkpoint,
            pub current_justified_checkpoint: Checkpoint,
            pub finalized_checkpoint: Checkpoint,
            $(pub $field: $ty,)*
        }
    };
}

/// Defines a fork from altair on: participation flags, inactivity scores
/// and the two sync committees, then the fork's own fields.
macro_rules! altair_family_state {
    (
        $(#[$doc:meta])*
        $name:ident { $($field:ident: $ty:ty),* $(,)? }
    ) => {
        beacon_state! {
            $(#[$doc])*
            $name {
                epoch_records: {
                    previous_epoch_participation: ParticipationFlags<E>,
                    current_epoch_participation: ParticipationFlags<E>,
                },
                tail: {
                    inactivity_scores: VariableList<u64, E::ValidatorRegistryLimit>,
                    current_sync_committee: SyncCommittee<E>,
                    next_sync_committee: SyncCommittee<E>,
                    $($field: $ty,)*
                },
            }
        }
    };
}

/// One `ParticipationFlags` byte per validator (altair onwards).
pub type ParticipationFlags<E> = VariableList<u8, <E as StatePreset>::ValidatorRegistryLimit>;
/// The capella `historical_summaries` list.
pub type HistoricalSummaries<E> =
    VariableList<HistoricalSummary, <E as StatePreset>::HistoricalRootsLimit>;

beacon_state! {
    /// The phase0 `BeaconState`.
    BeaconStatePhase0 {
        epoch_records: {
            previous_epoch_attestations: VariableList<PendingAttestation<E>, E::PendingAttestationsLimit>,
            current_epoch_attestations: VariableList<PendingAttestation<E>, E::PendingAttestationsLimit>,
        },
        tail: {},
    }
}

altair_family_state! {
    /// The altair `BeaconState`.
    BeaconStateAltair {}
}

altair_family_state! {
    /// The bellatrix `BeaconState`: altair plus the latest execution payload header.
    BeaconStateBellatrix {
        latest_execution_payload_header: ExecutionPayloadHeaderBellatrix,
    }
}

altair_family_state! {
    /// The capella `BeaconState`: withdrawals and historical summaries.
    BeaconStateCapella {
        latest_execution_payload_header: ExecutionPayloadHeaderCapella,
        next_withdrawal_index: u64,
        next_withdrawal_validator_index: ValidatorIndex,
        historical_summaries: HistoricalSummaries<E>,
    }
}

altair_family_state! {
    /// The deneb `BeaconState`: capella with the deneb payload header.
    BeaconStateDeneb {
        latest_execution_payload_header: ExecutionPayloadHeaderDeneb,
        next_withdrawal_index: u64,
        next_withdrawal_validator_index: ValidatorIndex,
        historical_summaries: HistoricalSummaries<E>,
    }
}

/// Defines electra and later: deneb plus the electra balance queues.
macro_rules! electra_family_state {
    (
        $(#[$doc:meta])*
        $name:ident { $($field:ident: $ty:ty),* $(,)? }
    ) => {
        altair_family_state! {
            $(#[$doc])*
            $name {
                latest_execution_payload_header: ExecutionPayloadHeaderDeneb,
                next_withdrawal_index: u64,
                next_withdrawal_validator_index: ValidatorIndex,
                historical_summaries: HistoricalSummaries<E>,
                deposit_requests_start_index: u64,
                deposit_balance_to_consume: u64,
                exit_balance_to_consume: u64,
                earliest_exit_epoch: u64,
                consolidation_balance_to_consume: u64,
                earliest_consolidation_epoch: u64,
                pending_deposits: VariableList<PendingDeposit, E::PendingDepositsLimit>,
                pending_partial_withdrawals:
                    VariableList<PendingPartialWithdrawal, E::PendingPartialWithdrawalsLimit>,
                pending_consolidations:
                    VariableList<PendingConsolidation, E::PendingConsolidationsLimit>,
                $($field: $ty,)*
            }
        }
    };
}

electra_family_state! {
    /// The electra `BeaconState`: deposit, withdrawal and consolidation queues.
    BeaconStateElectra {}
}

electra_family_state! {
    /// The fulu `BeaconState`: electra plus the proposer lookahead.
    BeaconStateFulu {
        proposer_lookahead: FixedVector<ValidatorIndex, E::ProposerLookaheadSize>,
    }
}

/// A `BeaconState` of any fork of one preset. Encodes and hashes as the
/// state it holds (no union selector).
#[derive(Debug, Clone, PartialEq, Encode, TreeHash)]
#[ssz(enum_behaviour = "transparent")]
#[tree_hash(enum_behaviour = "transparent")]
pub enum ForkState<E: StatePreset> {
    /// A phase0 state.
    Phase0(BeaconStatePhase0<E>),
    /// A altair state.
    Altair(BeaconStateAltair<E>),
    /// A bellatrix state.
    Bellatrix(BeaconStateBellatrix<E>),
    /// A capella state.
    Capella(BeaconStateCapella<E>),
    /// A deneb state.
    Deneb(BeaconStateDeneb<E>),
    /// A electra state.
    Electra(BeaconStateElectra<E>),
    /// A fulu state.
    Fulu(BeaconStateFulu<E>),
}

/// Evaluates `$body` with `$s` bound to the fork's state, whatever the fork;
/// for the fields every fork shares.
macro_rules! on_fork {
    ($state:expr, $s:ident => $body:expr) => {
        match $state {
            $crate::state::forks::ForkState::Phase0($s) => $body,
            $crate::state::forks::ForkState::Altair($s) => $body,
            $crate::state::forks::ForkState::Bellatrix($s) => $body,
            $crate::state::forks::ForkState::Capella($s) => $body,
            $crate::state::forks::ForkState::Deneb($s) => $body,
            $crate::state::forks::ForkState::Electra($s) => $body,
            $crate::state::forks::ForkState::Fulu($s) => $body,
        }
    };
}
pub(crate) use on_fork;

/// Evaluates `$body` with `$s` bound to the fork's state for the forks
/// from altair on, which all have sync committees; `$phase0` otherwise.
macro_rules! on_altair_family {
    ($state:expr, $s:ident => $body:expr, phase0 => $phase0:expr) => {
        match $state {
            $crate::state::forks::ForkState::Phase0(_) => $phase0,
            $crate::state::forks::ForkState::Altair($s) => $body,
            $crate::state::forks::ForkState::Bellatrix($s) => $body,
            $crate::state::forks::ForkState::Capella($s) => $body,
            $crate::state::forks::ForkState::Deneb($s) => $body,
            $crate::state::forks::ForkState::Electra($s) => $body,
            $crate::state::forks::ForkState::Fulu($s) => $body,
        }
    };
}

impl<E: StatePreset> ForkState<E> {
    /// Decodes `bytes` as the `BeaconState` of `fork`.
    pub fn from_ssz_bytes(fork: ForkName, bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(match fork {
            ForkName::Phase0 => ForkState::Phase0(Decode::from_ssz_bytes(bytes)?),
            ForkName::Altair => ForkState::Altair(Decode::from_ssz_bytes(bytes)?),
            ForkName::Bellatrix => ForkState::Bellatrix(Decode::from_ssz_bytes(bytes)?),
            ForkName::Capella => ForkState::Capella(Decode::from_ssz_bytes(bytes)?),
            ForkName::Deneb => ForkState::Deneb(Decode::from_ssz_bytes(bytes)?),
            ForkName::Electra => ForkState::Electra(Decode::from_ssz_bytes(bytes)?),
            ForkName::Fulu => ForkState::Fulu(Decode::from_ssz_bytes(bytes)?),
        })
    }

    /// The fork whose schema this state has.
    pub fn fork_name(&self) -> ForkName {
        match self {
            ForkState::Phase0(_) => ForkName::Phase0,
            ForkState::Altair(_) => ForkName::Altair,
            ForkState::Bellatrix(_) => ForkName::Bellatrix,
            ForkState::Capella(_) => ForkName::Capella,
            ForkState::Deneb(_) => ForkName::Deneb,
            ForkState::Electra(_) => ForkName::Electra,
            ForkState::Fulu(_) => ForkName::Fulu,
        }
    }

    /// `state.genesis_time`.
    pub fn genesis_time(&self) -> u64 {
        on_fork!(self, s => s.genesis_time)
    }

    /// `state.genesis_validators_root`.
    pub fn genesis_validators_root(&self) -> Root {
        on_fork!(self, s => s.genesis_validators_root)
    }

    /// `state.slot`.
    pub fn slot(&self) -> Slot {
        on_fork!(self, s => s.slot)
    }

    /// `state.fork`.
    pub fn fork(&self) -> Fork {
        on_fork!(self, s => s.fork)
    }

    /// `state.validators`.
    pub fn validators(&self) -> &[Validator] {
        on_fork!(self, s => &s.validators)
    }

    /// `state.randao_mixes`.
    pub fn randao_mixes(&self) -> &[Root] {
        on_fork!(self, s => &s.randao_mixes)
    }

    /// `state.previous_epoch_participation` (altair on; `None` in phase0).
    pub fn previous_epoch_participation(&self) -> Option<&[u8]> {
        on_altair_family!(self, s => Some(&s.previous_epoch_participation[..]), phase0 => None)
    }

    /// `state.current_epoch_participation` (altair on; `None` in phase0).
    pub fn current_epoch_participation(&self) -> Option<&[u8]> {
        on_altair_family!(self, s => Some(&s.current_epoch_participation[..]), phase0 => None)
    }

    /// `state.block_roots`: the last `SLOTS_PER_HISTORICAL_ROOT` block roots, by slot modulo.
    pub fn block_roots(&self) -> &[Root] {
        on_fork!(self, s => &s.block_roots)
    }

    /// `state.current_sync_committee` and `state.next_sync_committee`;
    /// `None` before altair.
    pub fn sync_committees(&self) -> Option<(&SyncCommittee<E>, &SyncCommittee<E>)> {
        on_altair_family!(self,
            s => Some((&s.current_sync_committee, &s.next_sync_committee)),
            phase0 => None)
    }

    /// `state.latest_block_header`.
    pub fn latest_block_header(&self) -> &BeaconBlockHeader {
        on_fork!(self, s => &s.latest_block_header)
    }

    /// `state.previous_justified_checkpoint`.
    pub fn previous_justified_checkpoint(&self) -> Checkpoint {
        on_fork!(self, s => s.previous_justified_checkpoint)
    }

    /// `state.current_justified_checkpoint`.
    pub fn current_justified_checkpoint(&self) -> Checkpoint {
        on_fork!(self, s => s.current_justified_checkpoint)
    }

    /// `state.proposer_lookahead`; `None` before fulu.
    pub fn proposer_lookahead(&self) -> Option<&[ValidatorIndex]> {
        match self {
            ForkState::Fulu(s) => Some(&s.proposer_lookahead),
            _ => None,
        }
    }

    // Mutable views of the fields that empty slots and genesis write
    // (`super::transition`, `super::sync_committee`, `super::proposer`), so
    // that the non-generic `BeaconState` changes no other field.

    /// `state.slot`, mutable.
    pub(crate) fn slot_mut(&mut self) -> &mut Slot {
        on_fork!(self, s => &mut s.slot)
    }

    /// `state.randao_mixes`, mutable.
    pub(crate) fn randao_mixes_mut(&mut self) -> &mut [Root] {
        on_fork!(self, s => &mut s.randao_mixes)
    }

    /// `state.block_roots`, mutable.
    pub(crate) fn block_roots_mut(&mut self) -> &mut [Root] {
        on_fork!(self, s => &mut s.block_roots)
    }

    /// `state.latest_block_header`, mutable.
    pub(crate) fn latest_block_header_mut(&mut self) -> &mut BeaconBlockHeader {
        on_fork!(self, s => &mut s.latest_block_header)
    }

    /// The two sync committees, mutable, current first; `None` before altair.
    pub(crate) fn sync_committees_mut(
        &mut self,
    ) -> Option<(&mut SyncCommittee<E>, &mut SyncCommittee<E>)> {
        on_altair_family!(self,
            s => Some((&mut s.current_sync_committee, &mut s.next_sync_committee)),
            phase0 => None)
    }

    /// `state.proposer_lookahead`, mutable; `None` before fulu.
    pub(crate) fn proposer_lookahead_mut(&mut self) -> Option<&mut [ValidatorIndex]> {
        match self {
            ForkState::Fulu(s) => Some(&mut s.proposer_lookahead),
            _ => None,
        }
    }
}
