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

/// Names every `u64` constant of [`Preset`] once, for reading them all
/// (the Beacon API's `config/spec`) and for overriding them from a config.
macro_rules! preset_u64_constants {
    ($($name:ident),* $(,)?) => {
        impl Preset {
            /// Every `u64` constant as (spec name, value).
            fn u64_constants(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name)),*]
            }

            /// Every `u64` constant as (spec name, mutable value).
            fn u64_constants_mut(&mut self) -> Vec<(&'static str, &mut u64)> {
                vec![$((stringify!($name), &mut self.$name)),*]
            }
        }
    };
}

preset_u64_constants!(
    SLOTS_PER_EPOCH,
    MAX_COMMITTEES_PER_SLOT,
    TARGET_COMMITTEE_SIZE,
    TARGET_AGGREGATORS_PER_COMMITTEE,
    EPOCHS_PER_HISTORICAL_VECTOR,
    EPOCHS_PER_SLASHINGS_VECTOR,
    SLOTS_PER_HISTORICAL_ROOT,
    MIN_SEED_LOOKAHEAD,
    VALIDATOR_REGISTRY_LIMIT,
    SYNC_COMMITTEE_SIZE,
    SYNC_COMMITTEE_SUBNET_COUNT,
    TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE,
    EPOCHS_PER_SYNC_COMMITTEE_PERIOD,
);

impl Preset {
    /// Every constant as (spec name, value), `SHUFFLE_ROUND_COUNT` included.
    pub fn constants(&self) -> Vec<(&'static str, u64)> {
        let mut constants = self.u64_constants();
        constants.push(("SHUFFLE_ROUND_COUNT", u64::from(self.SHUFFLE_ROUND_COUNT)));
        constants
    }

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

    /// `GENESIS_FORK_VERSION`.
    pub fn genesis_fork_version(&self) -> Version {
        // Every constructor lists phase0 first.
        self.forks
            .first()
            .map(|(_, version, _)| *version)
            .unwrap_or_default()
    }

    /// This configuration with `fork` and every fork before it active from
    /// genesis (epoch 0) and the later ones unscheduled: the configuration
    /// of a devnet whose genesis state is of `fork`.
    pub fn with_genesis_fork(mut self, fork: ForkName) -> Self {
        for (name, _, epoch) in &mut self.forks {
            *epoch = if *name <= fork { 0 } else { FAR_FUTURE_EPOCH };
        }
        self
    }

    /// The fork active at `epoch`: the last one scheduled at or before it.
    pub fn fork_name_at_epoch(&self, epoch: Epoch) -> ForkName {
        self.forks
            .iter()
            .filter(|(_, _, activation)| *activation <= epoch)
            .map(|(name, _, _)| *name)
            .max()
            .unwrap_or(ForkName::Phase0)
    }

    /// The version and activation epoch of `fork` in this configuration.
    pub fn fork_schedule(&self, fork: ForkName) -> Option<(Version, Epoch)> {
        self.forks
            .iter()
            .find(|(name, _, _)| *name == fork)
            .map(|(_, version, epoch)| (*version, *epoch))
    }
}

/// Errors of loading or querying a chain configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown preset {0:?}: expected mainnet or minimal")]
    UnknownPreset(String),
    #[error("cannot read config file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("config has no {0}")]
    MissingKey(&'static str),
    #[error("config value {key}: {value:?} is not {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("config line {line}: {text:?} is not `KEY: value`")]
    BadLine { line: usize, text: String },
    #[error("config JSON is not the body of GET /eth/v1/config/spec: {0}")]
    BadJson(String),
    #[error("config of {0} bytes is larger than the {MAX_CONFIG_BYTES}-byte limit")]
    TooLarge(usize),
}

/// The largest config file or JSON body accepted (real ones are under 10 KiB).
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

impl PresetName {
    /// Parses `mainnet` or `minimal`.
    pub fn parse(name: &str) -> Result<Self, ConfigError> {
        match name {
            "mainnet" => Ok(PresetName::Mainnet),
            "minimal" => Ok(PresetName::Minimal),
            other => Err(ConfigError::UnknownPreset(other.to_string())),
        }
    }

    /// The preset's constants.
    pub fn preset(self) -> Preset {
        match self {
            PresetName::Mainnet => Preset::mainnet(),
            PresetName::Minimal => Preset::minimal(),
        }
    }

    /// `mainnet` or `minimal`.
    pub fn as_str(self) -> &'static str {
        match self {
            PresetName::Mainnet => "mainnet",
            PresetName::Minimal => "minimal",
        }
    }
}

impl std::fmt::Display for PresetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ForkName {
    /// Every fork, oldest first.
    pub const ALL: [ForkName; 7] = [
        ForkName::Phase0,
        ForkName::Altair,
        ForkName::Bellatrix,
        ForkName::Capella,
        ForkName::Deneb,
        ForkName::Electra,
        ForkName::Fulu,
    ];

    /// The lower-case name the specs and the Beacon API use.
    pub fn as_str(self) -> &'static str {
        match self {
            ForkName::Phase0 => "phase0",
            ForkName::Altair => "altair",
            ForkName::Bellatrix => "bellatrix",
            ForkName::Capella => "capella",
            ForkName::Deneb => "deneb",
            ForkName::Electra => "electra",
            ForkName::Fulu => "fulu",
        }
    }

    /// Parses a lower-case fork name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|fork| fork.as_str() == name)
    }

    /// The config keys of this fork's version and epoch (phase0 has no epoch key).
    pub fn config_keys(self) -> (&'static str, Option<&'static str>) {
        match self {
            ForkName::Phase0 => ("GENESIS_FORK_VERSION", None),
            ForkName::Altair => ("ALTAIR_FORK_VERSION", Some("ALTAIR_FORK_EPOCH")),
            ForkName::Bellatrix => ("BELLATRIX_FORK_VERSION", Some("BELLATRIX_FORK_EPOCH")),
            ForkName::Capella => ("CAPELLA_FORK_VERSION", Some("CAPELLA_FORK_EPOCH")),
            ForkName::Deneb => ("DENEB_FORK_VERSION", Some("DENEB_FORK_EPOCH")),
            ForkName::Electra => ("ELECTRA_FORK_VERSION", Some("ELECTRA_FORK_EPOCH")),
            ForkName::Fulu => ("FULU_FORK_VERSION", Some("FULU_FORK_EPOCH")),
        }
    }
}

impl std::fmt::Display for ForkName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A flat `KEY -> value` view of a config, whichever format it came in.
pub type ConfigMap = std::collections::BTreeMap<String, String>;

impl ChainSpec {
    /// The spec of a named preset's own network (`mainnet` or `minimal`).
    pub fn from_preset_name(name: &str) -> Result<Self, ConfigError> {
        Ok(match PresetName::parse(name)? {
            PresetName::Mainnet => Self::mainnet(),
            PresetName::Minimal => Self::minimal(),
        })
    }

    /// Loads a standard consensus-specs `config.yaml` (flat `KEY: value` lines).
    pub fn from_config_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::from_config_map(&parse_config_yaml(text)?)
    }

    /// Loads the JSON body of `GET /eth/v1/config/spec` (`{"data": {KEY: "value"}}`).
    /// Preset values in it (e.g. `SLOTS_PER_EPOCH`) override the named preset's.
    pub fn from_config_spec_json(text: &str) -> Result<Self, ConfigError> {
        check_size(text)?;
        #[derive(serde::Deserialize)]
        struct Body {
            data: std::collections::BTreeMap<String, serde_json::Value>,
        }
        let body: Body =
            serde_json::from_str(text).map_err(|e| ConfigError::BadJson(e.to_string()))?;
        let map = body
            .data
            .into_iter()
            .filter_map(|(key, value)| match value {
                serde_json::Value::String(s) => Some((key, s)),
                serde_json::Value::Number(n) => Some((key, n.to_string())),
                _ => None,
            })
            .collect();
        Self::from_config_map(&map)
    }

    /// Loads a config file: JSON (`/eth/v1/config/spec` body) if it starts
    /// with `{`, `config.yaml` otherwise.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if text.trim_start().starts_with('{') {
            Self::from_config_spec_json(&text)
        } else {
            Self::from_config_yaml(&text)
        }
    }

    /// What a node of this chain serves as `GET /eth/v1/config/spec` (and
    /// writes as `config.yaml`): [`Self::to_config_map`] over the consensus
    /// specs' values of the runtime keys this crate does not model
    /// ([`standard_config_values`]), which standard clients require.
    pub fn to_served_config_map(&self) -> ConfigMap {
        let mut map = standard_config_values(self.preset.name);
        map.extend(self.to_config_map());
        map
    }

    /// This spec's own values as the flat string map of `GET
    /// /eth/v1/config/spec` (a node serves them within
    /// [`Self::to_served_config_map`]), which
    /// [`from_config_spec_json`](Self::from_config_spec_json) reads back to an
    /// equal `ChainSpec`: names, fork schedule, preset constants, domain types.
    pub fn to_config_map(&self) -> ConfigMap {
        let hex = |bytes: &[u8]| format!("0x{}", hex::encode(bytes));
        let mut map = ConfigMap::new();
        map.insert("PRESET_BASE".into(), self.preset.name.as_str().to_string());
        map.insert("CONFIG_NAME".into(), self.config_name.clone());
        map.insert("SECONDS_PER_SLOT".into(), self.seconds_per_slot.to_string());
        for (fork, version, epoch) in &self.forks {
            let (version_key, epoch_key) = fork.config_keys();
            map.insert(version_key.into(), hex(version));
            if let Some(epoch_key) = epoch_key {
                map.insert(epoch_key.into(), epoch.to_string());
            }
        }
        for (key, value) in self.preset.constants() {
            map.insert(key.into(), value.to_string());
        }
        for (key, domain) in [
            ("DOMAIN_BEACON_ATTESTER", DOMAIN_BEACON_ATTESTER),
            ("DOMAIN_SELECTION_PROOF", DOMAIN_SELECTION_PROOF),
            ("DOMAIN_AGGREGATE_AND_PROOF", DOMAIN_AGGREGATE_AND_PROOF),
            (
                "DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF",
                DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF,
            ),
        ] {
            map.insert(key.into(), hex(&domain));
        }
        map
    }

    fn from_config_map(map: &ConfigMap) -> Result<Self, ConfigError> {
        let preset_base = map
            .get("PRESET_BASE")
            .ok_or(ConfigError::MissingKey("PRESET_BASE"))?;
        let mut preset = PresetName::parse(preset_base)?.preset();
        apply_preset_overrides(&mut preset, map)?;
        let mut forks = Vec::with_capacity(ForkName::ALL.len());
        for fork in ForkName::ALL {
            let (version_key, epoch_key) = fork.config_keys();
            let version = match map.get(version_key) {
                Some(value) => parse_version(version_key, value)?,
                None if fork == ForkName::Phase0 => {
                    return Err(ConfigError::MissingKey("GENESIS_FORK_VERSION"))
                }
                // A config written before this fork existed: never scheduled.
                None => [0xff, 0xff, 0xff, 0xff],
            };
            let epoch = match epoch_key.and_then(|key| map.get(key).map(|v| (key, v))) {
                Some((key, value)) => parse_u64(key, value)?,
                None if fork == ForkName::Phase0 => 0,
                None => FAR_FUTURE_EPOCH,
            };
            forks.push((fork, version, epoch));
        }
        let seconds_per_slot = match map.get("SECONDS_PER_SLOT") {
            Some(value) => parse_u64("SECONDS_PER_SLOT", value)?,
            None => return Err(ConfigError::MissingKey("SECONDS_PER_SLOT")),
        };
        if seconds_per_slot == 0 {
            return Err(ConfigError::BadValue {
                key: "SECONDS_PER_SLOT".into(),
                value: "0".into(),
                expected: "a positive number of seconds",
            });
        }
        Ok(ChainSpec {
            config_name: map
                .get("CONFIG_NAME")
                .cloned()
                .unwrap_or_else(|| preset_base.clone()),
            preset,
            seconds_per_slot,
            forks,
        })
    }
}

fn check_size(text: &str) -> Result<(), ConfigError> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge(text.len()));
    }
    Ok(())
}

/// The consensus specs' values (`configs/mainnet.yaml`, `configs/minimal.yaml`)
/// of the runtime configuration keys this crate does not model: the genesis
/// rules, the eth1 deposit contract, churn and inactivity. A node that serves
/// a spec it made itself (the devnet's) serves these beside
/// [`ChainSpec::to_config_map`], since standard validator clients refuse a
/// `config/spec` without them (Lighthouse needs every one to decode it).
pub fn standard_config_values(preset: PresetName) -> ConfigMap {
    let (genesis, delay, shard, follow, churn, quotient, chain, contract) = match preset {
        PresetName::Mainnet => (
            ("16384", "1606824000"),
            "604800",
            "256",
            "2048",
            ("4", "8"),
            "65536",
            "1",
            "0x00000000219ab540356cBB839Cbe05303d7705Fa",
        ),
        PresetName::Minimal => (
            ("64", "1578009600"),
            "300",
            "64",
            "16",
            ("2", "4"),
            "32",
            "5",
            "0x1234567890123456789012345678901234567890",
        ),
    };
    [
        ("MIN_GENESIS_ACTIVE_VALIDATOR_COUNT", genesis.0),
        ("MIN_GENESIS_TIME", genesis.1),
        ("GENESIS_DELAY", delay),
        ("SECONDS_PER_ETH1_BLOCK", "14"),
        ("MIN_VALIDATOR_WITHDRAWABILITY_DELAY", "256"),
        ("SHARD_COMMITTEE_PERIOD", shard),
        ("ETH1_FOLLOW_DISTANCE", follow),
        ("INACTIVITY_SCORE_BIAS", "4"),
        ("INACTIVITY_SCORE_RECOVERY_RATE", "16"),
        ("EJECTION_BALANCE", "16000000000"),
        ("MIN_PER_EPOCH_CHURN_LIMIT", churn.0),
        ("MAX_PER_EPOCH_ACTIVATION_CHURN_LIMIT", churn.1),
        ("CHURN_LIMIT_QUOTIENT", quotient),
        ("PROPOSER_SCORE_BOOST", "40"),
        ("DEPOSIT_CHAIN_ID", chain),
        ("DEPOSIT_NETWORK_ID", chain),
        ("DEPOSIT_CONTRACT_ADDRESS", contract),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect()
}

/// A config map as a flat `config.yaml`: numbers bare, everything else in
/// double quotes (so that YAML keeps `0x00000000` a string), sorted by key.
pub fn config_yaml(map: &ConfigMap) -> String {
    map.iter()
        .map(|(key, value)| {
            if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                format!("{key}: {value}\n")
            } else {
                format!("{key}: \"{value}\"\n")
            }
        })
        .collect()
}

/// `config.yaml` is flat `KEY: value` with comments; parsing it as text keeps
/// `0x00000000` a 4-byte version instead of the integer a YAML 1.2 parser sees.
fn parse_config_yaml(text: &str) -> Result<ConfigMap, ConfigError> {
    check_size(text)?;
    let mut map = ConfigMap::new();
    for (number, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim_end();
        // Nested values (e.g. the entries of BLOB_SCHEDULE) belong to keys this
        // crate does not read.
        if line.trim().is_empty() || line == "---" || line.starts_with([' ', '\t', '-']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(ConfigError::BadLine {
                line: number + 1,
                text: raw.to_string(),
            });
        };
        let value = value.trim().trim_matches(|c| c == '\'' || c == '"');
        map.insert(key.trim().to_string(), value.to_string());
    }
    Ok(map)
}

fn parse_u64(key: &str, value: &str) -> Result<u64, ConfigError> {
    value.parse().map_err(|_| ConfigError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        expected: "an unsigned 64-bit integer",
    })
}

fn parse_version(key: &str, value: &str) -> Result<Version, ConfigError> {
    let bad = || ConfigError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        expected: "a 4-byte 0x-hex version",
    };
    let hex_digits = value.strip_prefix("0x").ok_or_else(bad)?;
    let bytes = hex::decode(hex_digits).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// Overrides preset constants that the config names (the Beacon API's
/// `config/spec` lists the preset too; a devnet may change them).
fn apply_preset_overrides(preset: &mut Preset, map: &ConfigMap) -> Result<(), ConfigError> {
    for (key, field) in preset.u64_constants_mut() {
        if let Some(value) = map.get(key) {
            let parsed = parse_u64(key, value)?;
            if parsed == 0 {
                return Err(ConfigError::BadValue {
                    key: key.to_string(),
                    value: value.clone(),
                    expected: "a positive integer",
                });
            }
            *field = parsed;
        }
    }
    if let Some(value) = map.get("SHUFFLE_ROUND_COUNT") {
        preset.SHUFFLE_ROUND_COUNT = value.parse().map_err(|_| ConfigError::BadValue {
            key: "SHUFFLE_ROUND_COUNT".into(),
            value: value.clone(),
            expected: "an integer from 0 to 255",
        })?;
    }
    Ok(())
}

/// `DOMAIN_BEACON_ATTESTER`.
pub const DOMAIN_BEACON_ATTESTER: DomainType = [1, 0, 0, 0];
/// `DOMAIN_AGGREGATE_AND_PROOF`.
pub const DOMAIN_AGGREGATE_AND_PROOF: DomainType = [6, 0, 0, 0];
/// `DOMAIN_SELECTION_PROOF`.
pub const DOMAIN_SELECTION_PROOF: DomainType = [5, 0, 0, 0];
/// `DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF`.
pub const DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF: DomainType = [8, 0, 0, 0];
/// `DOMAIN_BEACON_PROPOSER`: seeds proposer selection.
pub const DOMAIN_BEACON_PROPOSER: DomainType = [0, 0, 0, 0];
/// `DOMAIN_SYNC_COMMITTEE`: seeds sync committee selection.
pub const DOMAIN_SYNC_COMMITTEE: DomainType = [7, 0, 0, 0];

/// `MAX_VALIDATORS_PER_COMMITTEE`: the same in the mainnet and minimal presets.
pub const MAX_VALIDATORS_PER_COMMITTEE: u64 = 2048;
/// `ATTESTATION_PROPAGATION_SLOT_RANGE` (p2p): how many slots an attestation
/// or aggregate stays valid for gossip.
pub const ATTESTATION_PROPAGATION_SLOT_RANGE: u64 = 32;

/// `MAX_EFFECTIVE_BALANCE` in Gwei (32 ETH): the cap of balance-weighted
/// selection up to deneb. The same in the mainnet and minimal presets.
pub const MAX_EFFECTIVE_BALANCE: u64 = 32_000_000_000;
/// `MAX_EFFECTIVE_BALANCE_ELECTRA` in Gwei (2048 ETH): the cap of
/// balance-weighted selection from electra on. The same in both presets.
pub const MAX_EFFECTIVE_BALANCE_ELECTRA: u64 = 2_048_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_genesis_fork_activates_it_and_every_earlier_fork_at_epoch_zero() {
        let spec = ChainSpec::minimal().with_genesis_fork(ForkName::Deneb);
        let epochs: Vec<(ForkName, Epoch)> = spec.forks.iter().map(|(n, _, e)| (*n, *e)).collect();
        let far = FAR_FUTURE_EPOCH;
        assert_eq!(
            epochs,
            [
                (ForkName::Phase0, 0),
                (ForkName::Altair, 0),
                (ForkName::Bellatrix, 0),
                (ForkName::Capella, 0),
                (ForkName::Deneb, 0),
                (ForkName::Electra, far),
                (ForkName::Fulu, far),
            ]
        );
        let back = ChainSpec::from_config_map(&spec.to_config_map()).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn config_yaml_of_mainnet_equals_the_built_in_mainnet() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/config/mainnet-config.yaml"
        );
        let loaded = ChainSpec::from_file(std::path::Path::new(path)).unwrap();
        assert_eq!(loaded, ChainSpec::mainnet());
    }

    #[test]
    fn config_spec_json_overrides_preset_values() {
        // The shape of GET /eth/v1/config/spec of a minimal devnet with 2-second slots.
        let body = r#"{"data":{"PRESET_BASE":"minimal","CONFIG_NAME":"dev","SECONDS_PER_SLOT":"2",
            "SLOTS_PER_EPOCH":"8","SHUFFLE_ROUND_COUNT":"10","GENESIS_FORK_VERSION":"0x00000001",
            "ALTAIR_FORK_VERSION":"0x01000001","ALTAIR_FORK_EPOCH":"0",
            "DOMAIN_SELECTION_PROOF":"0x05000000","BLOB_SCHEDULE":[]}}"#;
        let spec = ChainSpec::from_config_spec_json(body).unwrap();
        assert_eq!(spec.config_name, "dev");
        assert_eq!(spec.seconds_per_slot, 2);
        assert_eq!(spec.preset, Preset::minimal());
        assert_eq!(
            spec.fork_schedule(ForkName::Altair),
            Some(([1, 0, 0, 1], 0))
        );
        assert_eq!(
            spec.fork_schedule(ForkName::Capella).unwrap().1,
            FAR_FUTURE_EPOCH
        );
        assert_eq!(
            spec.fork_name_of_version(&[1, 0, 0, 1]),
            Some(ForkName::Altair)
        );
    }

    #[test]
    fn config_map_loads_back_to_the_same_spec() {
        for spec in [ChainSpec::mainnet(), ChainSpec::minimal()] {
            let body = serde_json::json!({ "data": spec.to_config_map() }).to_string();
            assert_eq!(ChainSpec::from_config_spec_json(&body).unwrap(), spec);
        }
        let mut custom = ChainSpec::minimal();
        custom.preset.SLOTS_PER_EPOCH = 4;
        custom.preset.SHUFFLE_ROUND_COUNT = 7;
        let body = serde_json::json!({ "data": custom.to_config_map() }).to_string();
        assert_eq!(ChainSpec::from_config_spec_json(&body).unwrap(), custom);
    }

    #[test]
    fn bad_configs_name_the_culprit() {
        let missing = ChainSpec::from_config_yaml("CONFIG_NAME: x\n").unwrap_err();
        assert_eq!(missing.to_string(), "config has no PRESET_BASE");
        let preset = ChainSpec::from_config_yaml("PRESET_BASE: gnosis\n").unwrap_err();
        assert!(preset.to_string().contains("\"gnosis\""), "{preset}");
        let version = ChainSpec::from_config_yaml(
            "PRESET_BASE: mainnet\nGENESIS_FORK_VERSION: 0x0000\nSECONDS_PER_SLOT: 12\n",
        )
        .unwrap_err();
        assert!(
            version.to_string().contains("GENESIS_FORK_VERSION"),
            "{version}"
        );
        assert!(version.to_string().contains("4-byte"), "{version}");
        let epoch = ChainSpec::from_config_yaml(
            "PRESET_BASE: mainnet\nGENESIS_FORK_VERSION: 0x00000000\nALTAIR_FORK_EPOCH: soon\nSECONDS_PER_SLOT: 12\n",
        )
        .unwrap_err();
        assert!(
            epoch.to_string().contains("ALTAIR_FORK_EPOCH: \"soon\""),
            "{epoch}"
        );
        let line = ChainSpec::from_config_yaml("PRESET_BASE mainnet\n").unwrap_err();
        assert!(line.to_string().starts_with("config line 1"), "{line}");
        let json = ChainSpec::from_config_spec_json("{\"data\": 3}").unwrap_err();
        assert!(json.to_string().contains("config/spec"), "{json}");
        let zero = ChainSpec::from_config_yaml(
            "PRESET_BASE: minimal\nGENESIS_FORK_VERSION: 0x00000001\nSECONDS_PER_SLOT: 12\nSLOTS_PER_EPOCH: 0\n",
        )
        .unwrap_err();
        assert!(zero.to_string().contains("SLOTS_PER_EPOCH"), "{zero}");
    }

    #[test]
    fn standard_config_values_are_the_consensus_specs_values() {
        for (preset, file) in [
            (PresetName::Mainnet, "mainnet-standard-values.yaml"),
            (PresetName::Minimal, "minimal-standard-values.yaml"),
        ] {
            let path = format!(
                "{}/tests/fixtures/config/{file}",
                env!("CARGO_MANIFEST_DIR")
            );
            let published = parse_config_yaml(&std::fs::read_to_string(path).unwrap()).unwrap();
            assert_eq!(standard_config_values(preset), published, "{file}");
        }
    }

    #[test]
    fn a_written_config_yaml_reads_back_as_the_same_spec() {
        for spec in [
            ChainSpec::minimal().with_genesis_fork(ForkName::Fulu),
            ChainSpec::mainnet().with_genesis_fork(ForkName::Deneb),
        ] {
            let map = spec.to_served_config_map();
            let text = config_yaml(&map);
            assert!(text.contains("GENESIS_FORK_VERSION: \"0x"), "{text}");
            assert!(text.contains("MIN_GENESIS_TIME: "), "{text}");
            assert_eq!(ChainSpec::from_config_yaml(&text).unwrap(), spec);
            assert_eq!(parse_config_yaml(&text).unwrap(), map);
        }
    }
}
