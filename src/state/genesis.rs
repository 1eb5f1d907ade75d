//! The genesis state of a local test network from the interop keys: every
//! validator active from epoch 0 with 32 ETH, as the consensus specs' own
//! test genesis builds it (no deposit processing), for any fork
//! phase0..fulu on either preset.

use sha2::{Digest, Sha256};
use ssz_types::VariableList;
use thiserror::Error;
use tree_hash::TreeHash;

use super::containers::{Eth1Data, PublicKeyBytes, Validator};
use super::forks::{
    on_fork, BeaconStateAltair, BeaconStateBellatrix, BeaconStateCapella, BeaconStateDeneb,
    BeaconStateElectra, BeaconStateFulu, BeaconStatePhase0, ForkState,
};
use super::preset::{Mainnet, Minimal, StatePreset};
use super::{BeaconState, StateError};
use crate::crypto::interop::interop_secret_key;
use crate::spec::config::MAX_EFFECTIVE_BALANCE;
use crate::spec::{ChainSpec, Fork, ForkName, PresetName, Root, FAR_FUTURE_EPOCH, GENESIS_EPOCH};

/// The "eth1 block hash" of an interop genesis, which fills `randao_mixes`
/// and `eth1_data.block_hash`: `0xdada...da`, the value of the consensus
/// specs' test genesis (`create_genesis_state`).
pub const INTEROP_ETH1_BLOCK_HASH: Root = Root::repeat_byte(0xda);

/// The most validators an interop genesis holds: 2^20. Each key costs a
/// scalar multiplication (about 0.1 ms), so this is two minutes of key
/// derivation and a 120 MiB registry, far beyond what one local process
/// can run, and far below `VALIDATOR_REGISTRY_LIMIT` and the shuffle bound.
pub const MAX_INTEROP_VALIDATORS: u64 = 1 << 20;

/// `UNSET_DEPOSIT_REQUESTS_START_INDEX` (electra): no deposit request seen yet.
const UNSET_DEPOSIT_REQUESTS_START_INDEX: u64 = u64::MAX;

/// Why a genesis state could not be built.
#[derive(Debug, Error)]
pub enum GenesisError {
    /// A genesis without validators has no committees.
    #[error("an interop genesis needs at least one validator")]
    NoValidators,
    /// More validators than [`MAX_INTEROP_VALIDATORS`].
    #[error("{count} interop validators exceed the bound of {MAX_INTEROP_VALIDATORS}")]
    TooManyValidators { count: u64 },
    /// The registry does not fit the preset's `VALIDATOR_REGISTRY_LIMIT`.
    #[error("{count} validators exceed the preset's VALIDATOR_REGISTRY_LIMIT")]
    RegistryLimit { count: usize },
    /// The config has no version for the fork.
    #[error("config \"{config}\" has no fork version for {fork}")]
    UnknownFork { fork: ForkName, config: String },
    /// The sync committees or the proposer lookahead could not be computed.
    #[error("cannot complete the {fork} genesis state: {source}")]
    State { fork: ForkName, source: StateError },
}

/// The genesis state of `validator_count` interop validators at
/// `genesis_time` (unix seconds), of `fork` on the preset of `spec`.
///
/// Validator `i` has the interop key `i`, withdrawal credentials `0x00 ||
/// sha256(pubkey)[1:]`, 32 ETH of balance and effective balance, and is
/// eligible and active from epoch 0 without exit. `genesis_validators_root`
/// is `hash_tree_root(validators)`; `fork` is the fork's version (from
/// `spec`) as both previous and current version at epoch 0, whatever epoch
/// `spec` schedules the fork at. `randao_mixes` and `eth1_data.block_hash`
/// are [`INTEROP_ETH1_BLOCK_HASH`]; `eth1_data` counts every validator as a
/// processed deposit (its deposit root is zero). Both sync committees are
/// `get_next_sync_committee(state)`, and fulu's `proposer_lookahead` is
/// `initialize_proposer_lookahead(state)`.
///
/// Left at their defaults: `latest_block_header` (so its `body_root` is
/// zero rather than the root of an empty block body: no block of this chain
/// is ever built or checked against it), the execution payload header (no
/// payload before the first block), and every history, slashing and queue
/// field.
pub fn interop_genesis_state(
    spec: &ChainSpec,
    fork: ForkName,
    validator_count: u64,
    genesis_time: u64,
) -> Result<BeaconState, GenesisError> {
    if validator_count == 0 {
        return Err(GenesisError::NoValidators);
    }
    if validator_count > MAX_INTEROP_VALIDATORS {
        return Err(GenesisError::TooManyValidators {
            count: validator_count,
        });
    }
    let (version, _) = spec
        .fork_schedule(fork)
        .ok_or_else(|| GenesisError::UnknownFork {
            fork,
            config: spec.config_name.clone(),
        })?;
    let genesis_fork = Fork {
        previous_version: version,
        current_version: version,
        epoch: GENESIS_EPOCH,
    };
    let validators: Vec<Validator> = (0..validator_count).map(interop_validator).collect();
    let mut state: BeaconState = match spec.preset.name {
        PresetName::Mainnet => {
            registry_state::<Mainnet>(fork, genesis_fork, genesis_time, validators)?.into()
        }
        PresetName::Minimal => {
            registry_state::<Minimal>(fork, genesis_fork, genesis_time, validators)?.into()
        }
    };
    complete_committees(&mut state).map_err(|source| GenesisError::State { fork, source })?;
    Ok(state)
}

/// The genesis record of interop validator `index`.
fn interop_validator(index: u64) -> Validator {
    let pubkey = PublicKeyBytes(interop_secret_key(index).public_key().to_bytes());
    // BLS_WITHDRAWAL_PREFIX (0x00) followed by sha256(pubkey)[1:].
    let mut withdrawal_credentials: [u8; 32] = Sha256::digest(pubkey.0).into();
    withdrawal_credentials[0] = 0x00;
    Validator {
        pubkey,
        withdrawal_credentials: Root::from(withdrawal_credentials),
        effective_balance: MAX_EFFECTIVE_BALANCE,
        slashed: false,
        activation_eligibility_epoch: GENESIS_EPOCH,
        activation_epoch: GENESIS_EPOCH,
        exit_epoch: FAR_FUTURE_EPOCH,
        withdrawable_epoch: FAR_FUTURE_EPOCH,
    }
}

/// A `fork` state with the registry and every field that does not need
/// state accessors; the committees come after.
fn registry_state<E: StatePreset>(
    fork: ForkName,
    genesis_fork: Fork,
    genesis_time: u64,
    validators: Vec<Validator>,
) -> Result<ForkState<E>, GenesisError> {
    let count = validators.len();
    let mut state = empty_state::<E>(fork, count)?;
    let validators = registry_list(validators)?;
    let balances = registry_list(vec![MAX_EFFECTIVE_BALANCE; count])?;
    on_fork!(&mut state, s => {
        s.genesis_time = genesis_time;
        s.genesis_validators_root = validators.tree_hash_root();
        s.fork = genesis_fork;
        s.eth1_data = Eth1Data {
            deposit_root: Root::ZERO,
            deposit_count: count as u64,
            block_hash: INTEROP_ETH1_BLOCK_HASH,
        };
        s.eth1_deposit_index = count as u64;
        s.validators = validators;
        s.balances = balances;
        s.randao_mixes.fill(INTEROP_ETH1_BLOCK_HASH);
    });
    Ok(state)
}

/// A list of one entry per validator.
fn registry_list<T, N: ssz_types::typenum::Unsigned>(
    entries: Vec<T>,
) -> Result<VariableList<T, N>, GenesisError> {
    let count = entries.len();
    VariableList::new(entries).map_err(|_| GenesisError::RegistryLimit { count })
}

/// The default state of `fork` with the per-validator lists of altair and
/// later (participation flags, inactivity scores) sized for `count`
/// validators, and electra's unset deposit request index.
fn empty_state<E: StatePreset>(fork: ForkName, count: usize) -> Result<ForkState<E>, GenesisError> {
    let flags = registry_list(vec![0u8; count])?;
    let inactivity_scores = registry_list(vec![0u64; count])?;
    macro_rules! altair_family {
        ($variant:ident, $ty:ident { $($field:ident: $value:expr),* }) => {
            ForkState::$variant($ty {
                previous_epoch_participation: flags.clone(),
                current_epoch_participation: flags,
                inactivity_scores,
                $($field: $value,)*
                ..$ty::default()
            })
        };
    }
    Ok(match fork {
        ForkName::Phase0 => ForkState::Phase0(BeaconStatePhase0::default()),
        ForkName::Altair => altair_family!(Altair, BeaconStateAltair {}),
        ForkName::Bellatrix => altair_family!(Bellatrix, BeaconStateBellatrix {}),
        ForkName::Capella => altair_family!(Capella, BeaconStateCapella {}),
        ForkName::Deneb => altair_family!(Deneb, BeaconStateDeneb {}),
        ForkName::Electra => altair_family!(
            Electra,
            BeaconStateElectra {
                deposit_requests_start_index: UNSET_DEPOSIT_REQUESTS_START_INDEX
            }
        ),
        ForkName::Fulu => altair_family!(
            Fulu,
            BeaconStateFulu {
                deposit_requests_start_index: UNSET_DEPOSIT_REQUESTS_START_INDEX
            }
        ),
    })
}

/// Fills the sync committees (altair on) and the proposer lookahead (fulu),
/// which the registry and the seeds of the finished state determine.
fn complete_committees(state: &mut BeaconState) -> Result<(), StateError> {
    if state.current_sync_committee().is_some() {
        let committee = state.get_next_sync_committee()?;
        state.set_sync_committees(&committee, &committee)?;
    }
    if state.proposer_lookahead().is_some() {
        let lookahead = state.initialize_proposer_lookahead()?;
        state.set_proposer_lookahead(&lookahead)?;
    }
    Ok(())
}
