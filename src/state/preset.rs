//! The SSZ list and vector lengths of each preset as typenum types, so that
//! one generic container definition serves mainnet and minimal.

use std::fmt::Debug;

use ssz_types::typenum::{
    Unsigned, U1024, U1099511627776, U134217728, U16, U16777216, U2048, U262144, U32, U4096, U512,
    U64, U65536, U8192,
};

use crate::spec::{Preset, PresetName};

/// A typenum list or vector length, with the bounds the containers'
/// derives need.
pub trait Length: Unsigned + Clone + Debug + PartialEq + Eq + Send + Sync {}

impl<N: Unsigned + Clone + Debug + PartialEq + Eq + Send + Sync> Length for N {}

/// The lengths a `BeaconState` schema depends on, named after the spec
/// constants (or the spec expression) they come from.
pub trait StatePreset:
    'static + Clone + Copy + Debug + Default + PartialEq + Eq + Send + Sync
{
    /// `SLOTS_PER_HISTORICAL_ROOT`.
    type SlotsPerHistoricalRoot: Length;
    /// `HISTORICAL_ROOTS_LIMIT`.
    type HistoricalRootsLimit: Length;
    /// `EPOCHS_PER_ETH1_VOTING_PERIOD * SLOTS_PER_EPOCH`.
    type Eth1DataVotesLimit: Length;
    /// `VALIDATOR_REGISTRY_LIMIT`.
    type ValidatorRegistryLimit: Length;
    /// `EPOCHS_PER_HISTORICAL_VECTOR`.
    type EpochsPerHistoricalVector: Length;
    /// `EPOCHS_PER_SLASHINGS_VECTOR`.
    type EpochsPerSlashingsVector: Length;
    /// `MAX_ATTESTATIONS * SLOTS_PER_EPOCH` (phase0 pending attestations).
    type PendingAttestationsLimit: Length;
    /// `MAX_VALIDATORS_PER_COMMITTEE`.
    type MaxValidatorsPerCommittee: Length;
    /// `SYNC_COMMITTEE_SIZE`.
    type SyncCommitteeSize: Length;
    /// `PENDING_DEPOSITS_LIMIT`.
    type PendingDepositsLimit: Length;
    /// `PENDING_PARTIAL_WITHDRAWALS_LIMIT`.
    type PendingPartialWithdrawalsLimit: Length;
    /// `PENDING_CONSOLIDATIONS_LIMIT`.
    type PendingConsolidationsLimit: Length;
    /// `(MIN_SEED_LOOKAHEAD + 1) * SLOTS_PER_EPOCH` (fulu proposer lookahead).
    type ProposerLookaheadSize: Length;

    /// The runtime constants of the same preset.
    fn preset() -> Preset;

    /// The name of the preset.
    fn name() -> PresetName {
        Self::preset().name
    }
}

/// The mainnet preset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mainnet;

impl StatePreset for Mainnet {
    type SlotsPerHistoricalRoot = U8192;
    type HistoricalRootsLimit = U16777216;
    type Eth1DataVotesLimit = U2048;
    type ValidatorRegistryLimit = U1099511627776;
    type EpochsPerHistoricalVector = U65536;
    type EpochsPerSlashingsVector = U8192;
    type PendingAttestationsLimit = U4096;
    type MaxValidatorsPerCommittee = U2048;
    type SyncCommitteeSize = U512;
    type PendingDepositsLimit = U134217728;
    type PendingPartialWithdrawalsLimit = U134217728;
    type PendingConsolidationsLimit = U262144;
    type ProposerLookaheadSize = U64;

    fn preset() -> Preset {
        Preset::mainnet()
    }
}

/// The minimal preset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minimal;

impl StatePreset for Minimal {
    type SlotsPerHistoricalRoot = U64;
    type HistoricalRootsLimit = U16777216;
    type Eth1DataVotesLimit = U32;
    type ValidatorRegistryLimit = U1099511627776;
    type EpochsPerHistoricalVector = U64;
    type EpochsPerSlashingsVector = U64;
    type PendingAttestationsLimit = U1024;
    type MaxValidatorsPerCommittee = U2048;
    type SyncCommitteeSize = U32;
    type PendingDepositsLimit = U134217728;
    type PendingPartialWithdrawalsLimit = U64;
    type PendingConsolidationsLimit = U64;
    type ProposerLookaheadSize = U16;

    fn preset() -> Preset {
        Preset::minimal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typenum lengths must agree with the runtime preset the helpers use.
    fn assert_consistent<E: StatePreset>() {
        let preset = E::preset();
        assert_eq!(preset.name, E::name());
        assert_eq!(
            E::SlotsPerHistoricalRoot::to_u64(),
            preset.SLOTS_PER_HISTORICAL_ROOT
        );
        assert_eq!(
            E::EpochsPerHistoricalVector::to_u64(),
            preset.EPOCHS_PER_HISTORICAL_VECTOR
        );
        assert_eq!(
            E::EpochsPerSlashingsVector::to_u64(),
            preset.EPOCHS_PER_SLASHINGS_VECTOR
        );
        assert_eq!(
            E::ValidatorRegistryLimit::to_u64(),
            preset.VALIDATOR_REGISTRY_LIMIT
        );
        assert_eq!(E::SyncCommitteeSize::to_u64(), preset.SYNC_COMMITTEE_SIZE);
        assert_eq!(
            E::ProposerLookaheadSize::to_u64(),
            (preset.MIN_SEED_LOOKAHEAD + 1) * preset.SLOTS_PER_EPOCH
        );
    }

    #[test]
    fn typenum_lengths_match_runtime_presets() {
        assert_consistent::<Mainnet>();
        assert_consistent::<Minimal>();
    }
}
