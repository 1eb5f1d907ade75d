//! Presets and chain configuration.
//!
//! A [`Preset`] holds the compile-time constants of the consensus specs
//! (`SLOTS_PER_EPOCH`, `SHUFFLE_ROUND_COUNT`, ...); a [`ChainSpec`] adds the
//! runtime configuration of one network (fork versions and epochs, timing).

use super::primitives::{DomainType, Epoch, Version, FAR_FUTURE_EPOCH};

/// The name of a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresetName {
    Mainnet,
    Minimal,
}

/// Every preset constant this crate uses, named as in the consensus specs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(non_snake_case)]
pub struct Preset {
    pub name: PresetName,
    pub SLOTS_PER_EPOCH: u64,
    pub MAX_COMMITTEES_PER_SLOT: u64,
    pub TARGET_COMMITTEE_SIZE: u64,
    pub SHUFFLE_ROUND_COUNT: u8,
    pub TARGET_AGGREGATORS_PER_COMMITTEE: u64,
    pub EPOCHS_PER_HISTORICAL_VECTOR: u64,
    pub EPOCHS_PER_SLASHINGS_VECTOR: u64,
    pub SLOTS_PER_HISTORICAL_ROOT: u64,
    pub MIN_SEED_LOOKAHEAD: u64,
    pub VALIDATOR_REGISTRY_LIMIT: u64,
    pub SYNC_COMMITTEE_SIZE: u64,
    pub SYNC_COMMITTEE_SUBNET_COUNT: u64,
    pub TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE: u64,
    pub EPOCHS_PER_SYNC_COMMITTEE_PERIOD: u64,
}

impl Preset {
    /// The mainnet preset.
    pub fn mainnet() -> Self {
        Preset {
            name: PresetName::Mainnet,
            SLOTS_PER_EPOCH: 32,
            MAX_COMMITTEES_PER_SLOT: 64,
            TARGET_COMMITTEE_SIZE: 128,
            SHUFFLE_ROUND_COUNT: 90,
            TARGET_AGGREGATORS_PER_COMMITTEE: 16,
            EPOCHS_PER_HISTORICAL_VECTOR: 65536,
            EPOCHS_PER_SLASHINGS_VECTOR: 8192,
            SLOTS_PER_HISTORICAL_ROOT: 8192,
            MIN_SEED_LOOKAHEAD: 1,
            VALIDATOR_REGISTRY_LIMIT: 1 << 40,
            SYNC_COMMITTEE_SIZE: 512,
            SYNC_COMMITTEE_SUBNET_COUNT: 4,
            TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE: 16,
            EPOCHS_PER_SYNC_COMMITTEE_PERIOD: 256,
        }
    }

    /// The minimal preset (fast test networks).
    pub fn minimal() -> Self {
        Preset {
            name: PresetName::Minimal,
            SLOTS_PER_EPOCH: 8,
            MAX_COMMITTEES_PER_SLOT: 4,
            TARGET_COMMITTEE_SIZE: 4,
            SHUFFLE_ROUND_COUNT: 10,
            TARGET_AGGREGATORS_PER_COMMITTEE: 16,
            EPOCHS_PER_HISTORICAL_VECTOR: 64,
            EPOCHS_PER_SLASHINGS_VECTOR: 64,
            SLOTS_PER_HISTORICAL_ROOT: 64,
            MIN_SEED_LOOKAHEAD: 1,
            VALIDATOR_REGISTRY_LIMIT: 1 << 40,
            SYNC_COMMITTEE_SIZE: 32,
            SYNC_COMMITTEE_SUBNET_COUNT: 4,
            TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE: 16,
            EPOCHS_PER_SYNC_COMMITTEE_PERIOD: 8,
        }
    }
}

/// The forks this crate understands, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ForkName {
    Phase0,
    Altair,
    Bellatrix,
    Capella,
    Deneb,
    Electra,
    Fulu,
}

/// The configuration of one network: a preset plus the fork schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSpec {
    pub config_name: String,
    pub preset: Preset,
    pub seconds_per_slot: u64,
    /// `(fork, version, epoch)` for every fork, phase0 first; an unscheduled
    /// fork has epoch `FAR_FUTURE_EPOCH`.
    pub forks: Vec<(ForkName, Version, Epoch)>,
}

impl ChainSpec {
    /// Ethereum mainnet.
    pub fn mainnet() -> Self {
        ChainSpec {
            config_name: "mainnet".into(),
            preset: Preset::mainnet(),
            seconds_per_slot: 12,
            forks: vec![
                (ForkName::Phase0, [0, 0, 0, 0], 0),
                (ForkName::Altair, [1, 0, 0, 0], 74240),
                (ForkName::Bellatrix, [2, 0, 0, 0], 144896),
                (ForkName::Capella, [3, 0, 0, 0], 194048),
                (ForkName::Deneb, [4, 0, 0, 0], 269568),
                (ForkName::Electra, [5, 0, 0, 0], 364032),
                (ForkName::Fulu, [6, 0, 0, 0], 411392),
            ],
        }
    }

    /// The consensus specs' minimal configuration: minimal preset, fork
    /// versions ending in `01`, no fork scheduled after phase0.
    pub fn minimal() -> Self {
        let far = FAR_FUTURE_EPOCH;
        ChainSpec {
            config_name: "minimal".into(),
            preset: Preset::minimal(),
            seconds_per_slot: 6,
            forks: vec![
                (ForkName::Phase0, [0, 0, 0, 1], 0),
                (ForkName::Altair, [1, 0, 0, 1], far),
                (ForkName::Bellatrix, [2, 0, 0, 1], far),
                (ForkName::Capella, [3, 0, 0, 1], far),
                (ForkName::Deneb, [4, 0, 0, 1], far),
                (ForkName::Electra, [5, 0, 0, 1], far),
                (ForkName::Fulu, [6, 0, 0, 1], far),
            ],
        }
    }

    /// The fork whose version is `version` in this configuration.
    pub fn fork_name_of_version(&self, version: &Version) -> Option<ForkName> {
        self.forks
            .iter()
            .find(|(_, v, _)| v == version)
            .map(|(name, _, _)| *name)
    }

    /// The version of `fork` in this configuration.
    pub fn fork_version(&self, fork: ForkName) -> Version {
        self.forks
            .iter()
            .find(|(name, _, _)| *name == fork)
            .map(|(_, version, _)| *version)
            .unwrap_or_default()
    }
}

/// Errors of loading or querying a chain configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown preset {0:?}: expected mainnet or minimal")]
    UnknownPreset(String),
}

/// `DOMAIN_BEACON_ATTESTER`.
pub const DOMAIN_BEACON_ATTESTER: DomainType = [1, 0, 0, 0];
/// `DOMAIN_SELECTION_PROOF`.
pub const DOMAIN_SELECTION_PROOF: DomainType = [5, 0, 0, 0];
/// `DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF`.
pub const DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF: DomainType = [8, 0, 0, 0];
