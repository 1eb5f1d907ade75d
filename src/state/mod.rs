//! The SSZ `BeaconState` of every fork phase0..fulu on the mainnet and
//! minimal presets, and the spec helpers that read it.
//!
//! - [`preset`]: the SSZ lengths of each preset as typenum types
//!   ([`StatePreset`], [`Mainnet`], [`Minimal`]).
//! - [`containers`]: the containers a state is made of ([`Validator`],
//!   [`SyncCommittee`], execution payload headers, ...).
//! - [`forks`]: one generic `BeaconState<Fork>` struct per fork and
//!   [`ForkState`], the enum of them.
//! - [`sync_committee`]: sync-committee positions and subcommittees, and
//!   `get_next_sync_committee`.
//! - `proposer`: `compute_proposer_index`, the proposers of an epoch and
//!   fulu's `initialize_proposer_lookahead`.
//! - [`sampling`]: the balance-weighted draw both of them use.
//! - `pubkey_index`: validator lookup by public key (sorted, built lazily).
//! - [`shuffling`]: the swap-or-not shuffle, per index and whole list.
//! - [`committee_cache`]: every beacon committee of one epoch from one shuffle.
//! - [`epoch_caches`]: the committee caches of a state's previous, current and
//!   next epoch.
//! - [`genesis`]: the interop genesis state of a local test network.
//! - [`transition`]: advancing a state through empty slots.
//!
//! The rest of the crate uses the non-generic [`BeaconState`] made by
//! [`decode_state`] (or converted from a [`ForkState`] built in code).

pub mod committee_cache;
pub mod containers;
pub mod epoch_caches;
pub mod forks;
pub mod genesis;
pub mod preset;
mod proposer;
mod pubkey_index;
pub mod sampling;
pub mod shuffling;
pub mod sync_committee;
pub mod transition;

use std::fmt;
use std::sync::OnceLock;

use ssz::Encode;
use tree_hash::TreeHash;

pub use containers::{BeaconBlockHeader, PublicKeyBytes, SyncCommittee, Validator};
pub use forks::ForkState;
pub use genesis::{interop_genesis_state, GenesisError};
pub use preset::{Mainnet, Minimal, StatePreset};
pub use sampling::SamplingError;
pub use sync_committee::{SyncCommitteeKeys, SyncCommitteeRef, SyncPeriod};
pub use transition::{AdvanceError, MAX_EPOCHS_PER_ADVANCE};

use pubkey_index::PubkeyIndex;

use crate::crypto::CryptoError;
use crate::spec::{
    ChainSpec, Checkpoint, DomainType, Epoch, Fork, ForkName, Preset, PresetName, Root, Slot,
    ValidatorIndex, Version,
};

/// The largest state SSZ [`decode_state`] accepts: 1 GiB. A validator costs
/// 139 bytes (record 121, balance 8, two participation flags, inactivity
/// score 8) and the fixed vectors of mainnet about 5 MiB, so this admits
/// some 7.7 million validators, over three times the mainnet registry of
/// 2025, while refusing to allocate for anything absurd.
pub const MAX_STATE_SSZ_BYTES: usize = 1 << 30;

/// Where `fork.current_version` sits in a state's SSZ: after
/// `genesis_time` (8), `genesis_validators_root` (32), `slot` (8) and
/// `fork.previous_version` (4).
const CURRENT_VERSION_OFFSET: usize = 52;

/// Errors of decoding or querying a [`BeaconState`].
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The input is larger than [`MAX_STATE_SSZ_BYTES`].
    #[error("state SSZ of {len} bytes exceeds the bound of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// The input ends before the fork version.
    #[error(
        "state SSZ of {len} bytes is too short: a BeaconState holds its fork version at bytes {}..{}",
        CURRENT_VERSION_OFFSET,
        CURRENT_VERSION_OFFSET + 4
    )]
    TooShort { len: usize },
    /// The state's fork version is none of the config's.
    #[error(
        "state fork version 0x{} is not a fork version of config \"{config}\" (whose versions are {known}); \
         a state of another network or preset?",
        hex::encode(version)
    )]
    UnknownVersion {
        version: Version,
        config: String,
        known: String,
    },
    /// The fork override contradicts the state's known fork version.
    #[error(
        "expected a {expected} state, found fork version 0x{} which is {found} in config \"{config}\"",
        hex::encode(version)
    )]
    ForkMismatch {
        expected: ForkName,
        found: ForkName,
        version: Version,
        config: String,
    },
    /// The bytes do not fit the schema of the fork and preset.
    #[error(
        "cannot decode {len} bytes (fork version 0x{}) as a {fork} BeaconState of the {preset} preset: {reason}",
        hex::encode(version)
    )]
    Decode {
        len: usize,
        fork: ForkName,
        preset: PresetName,
        version: Version,
        reason: String,
    },
    /// Sync committees asked of a phase0 state.
    #[error("a {fork} state has no sync committees (they start at altair)")]
    NoSyncCommittees { fork: ForkName },
    /// A validator index beyond the registry.
    #[error("validator index {index} is not in the registry of {count} validators")]
    UnknownValidator { index: ValidatorIndex, count: usize },
    /// An epoch whose sync committee the state does not hold.
    #[error(
        "epoch {epoch} is in sync committee period {period}; the state at epoch {state_epoch} \
         knows periods {current_period} (current) and {} (next)",
        current_period.saturating_add(1)
    )]
    SyncPeriodOutOfRange {
        epoch: Epoch,
        period: u64,
        state_epoch: Epoch,
        current_period: u64,
    },
    /// The epoch after the state's does not fit in a `u64`.
    #[error("the epoch after epoch {epoch} overflows u64")]
    EpochOverflow { epoch: Epoch },
    /// The first slot of an epoch does not fit in a `u64`.
    #[error("the start slot of epoch {epoch} overflows u64")]
    SlotOverflow { epoch: Epoch },
    /// A balance-weighted draw (sync committee, proposers) failed.
    #[error("cannot draw the {purpose} of epoch {epoch}: {source}")]
    Sampling {
        purpose: &'static str,
        epoch: Epoch,
        source: SamplingError,
    },
    /// A validator drawn into a sync committee has a key that is not a
    /// valid BLS public key, so the committee has no aggregate key.
    #[error(
        "validator {index}, drawn to sync committee position {position}, has an invalid key: {source}"
    )]
    InvalidSyncCommitteeKey {
        index: ValidatorIndex,
        position: usize,
        source: CryptoError,
    },
    /// The keys of a sync committee do not aggregate (they cancel out).
    #[error("the sync committee's keys do not aggregate: {0}")]
    SyncCommitteeAggregate(CryptoError),
    /// A sync committee of the wrong length for the preset.
    #[error("a sync committee of {got} keys does not fit SYNC_COMMITTEE_SIZE {expected}")]
    SyncCommitteeSize { expected: usize, got: usize },
    /// A proposer lookahead asked of a state before fulu.
    #[error("a {fork} state has no proposer lookahead (it starts at fulu)")]
    NoProposerLookahead { fork: ForkName },
    /// A proposer lookahead of the wrong length for the preset.
    #[error(
        "a proposer lookahead of {got} slots does not fit (MIN_SEED_LOOKAHEAD + 1) * SLOTS_PER_EPOCH = {expected}"
    )]
    ProposerLookaheadSize { expected: usize, got: usize },
    /// A sync committee key that no validator has.
    #[error(
        "sync committee member {pubkey} (position {position}) is not in the validator registry"
    )]
    SyncMemberNotInRegistry {
        pubkey: PublicKeyBytes,
        position: usize,
    },
}

/// The states of both presets, so that [`BeaconState`] needs no generics.
#[derive(Clone)]
enum PresetState {
    Mainnet(ForkState<Mainnet>),
    Minimal(ForkState<Minimal>),
}

/// Evaluates `$body` with `$s` bound to the [`ForkState`] of either preset.
macro_rules! on_preset {
    ($state:expr, $s:ident => $body:expr) => {
        match $state {
            $crate::state::PresetState::Mainnet($s) => $body,
            $crate::state::PresetState::Minimal($s) => $body,
        }
    };
}
pub(crate) use on_preset;

/// A `BeaconState` of any fork and either preset.
#[derive(Clone)]
pub struct BeaconState {
    state: PresetState,
    preset: Preset,
    /// Built on the first pubkey lookup: decoding must not pay for it.
    pubkey_index: OnceLock<PubkeyIndex>,
}

impl From<ForkState<Mainnet>> for BeaconState {
    fn from(state: ForkState<Mainnet>) -> Self {
        BeaconState::new(PresetState::Mainnet(state), Mainnet::preset())
    }
}

impl From<ForkState<Minimal>> for BeaconState {
    fn from(state: ForkState<Minimal>) -> Self {
        BeaconState::new(PresetState::Minimal(state), Minimal::preset())
    }
}

impl fmt::Debug for BeaconState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BeaconState")
            .field("fork", &self.fork_name())
            .field("preset", &self.preset_name())
            .field("slot", &self.slot())
            .field("validators", &self.validators().len())
            .finish_non_exhaustive()
    }
}

/// Decodes the SSZ of a `BeaconState`.
///
/// The fork comes from `fork.current_version` looked up in `spec` unless
/// `fork_override` names it; the preset is `spec.preset`. An override must
/// not contradict a version the config knows; with a version the config
/// does not know (a custom devnet) the override is trusted. Input above
/// [`MAX_STATE_SSZ_BYTES`] is refused before anything is allocated.
pub fn decode_state(
    bytes: &[u8],
    spec: &ChainSpec,
    fork_override: Option<ForkName>,
) -> Result<BeaconState, StateError> {
    if bytes.len() > MAX_STATE_SSZ_BYTES {
        return Err(StateError::TooLarge {
            len: bytes.len(),
            max: MAX_STATE_SSZ_BYTES,
        });
    }
    let version = state_fork_version(bytes)?;
    let fork = state_fork(spec, version, fork_override)?;
    let decode_error = |e: ssz::DecodeError| StateError::Decode {
        len: bytes.len(),
        fork,
        preset: spec.preset.name,
        version,
        reason: format!("{e:?}"),
    };
    Ok(match spec.preset.name {
        PresetName::Mainnet => ForkState::<Mainnet>::from_ssz_bytes(fork, bytes)
            .map_err(decode_error)?
            .into(),
        PresetName::Minimal => ForkState::<Minimal>::from_ssz_bytes(fork, bytes)
            .map_err(decode_error)?
            .into(),
    })
}

/// `fork.current_version` read from a state's SSZ without decoding it.
fn state_fork_version(bytes: &[u8]) -> Result<Version, StateError> {
    bytes
        .get(CURRENT_VERSION_OFFSET..CURRENT_VERSION_OFFSET + 4)
        .and_then(|v| v.try_into().ok())
        .ok_or(StateError::TooShort { len: bytes.len() })
}

/// The fork to decode as: the override, checked against the version.
fn state_fork(
    spec: &ChainSpec,
    version: Version,
    fork_override: Option<ForkName>,
) -> Result<ForkName, StateError> {
    match (fork_override, spec.fork_name_of_version(&version)) {
        (Some(expected), Some(found)) if expected != found => Err(StateError::ForkMismatch {
            expected,
            found,
            version,
            config: spec.config_name.clone(),
        }),
        (Some(fork), _) | (None, Some(fork)) => Ok(fork),
        (None, None) => Err(StateError::UnknownVersion {
            version,
            config: spec.config_name.clone(),
            known: spec
                .forks
                .iter()
                .map(|(name, v, _)| format!("{name} 0x{}", hex::encode(v)))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

impl BeaconState {
    fn new(state: PresetState, preset: Preset) -> Self {
        BeaconState {
            state,
            preset,
            pubkey_index: OnceLock::new(),
        }
    }

    /// The fork whose schema this state has.
    pub fn fork_name(&self) -> ForkName {
        on_preset!(&self.state, s => s.fork_name())
    }

    /// The preset of this state.
    pub fn preset_name(&self) -> PresetName {
        self.preset.name
    }

    /// The preset constants of this state.
    pub fn preset(&self) -> &Preset {
        &self.preset
    }

    /// `state.slot`.
    pub fn slot(&self) -> Slot {
        on_preset!(&self.state, s => s.slot())
    }

    /// `state.genesis_time`.
    pub fn genesis_time(&self) -> u64 {
        on_preset!(&self.state, s => s.genesis_time())
    }

    /// `state.genesis_validators_root`.
    pub fn genesis_validators_root(&self) -> Root {
        on_preset!(&self.state, s => s.genesis_validators_root())
    }

    /// `state.fork`.
    pub fn fork(&self) -> Fork {
        on_preset!(&self.state, s => s.fork())
    }

    /// `state.validators`.
    pub fn validators(&self) -> &[Validator] {
        on_preset!(&self.state, s => s.validators())
    }

    /// The validator at `index`, if the registry has one.
    pub fn validator(&self, index: ValidatorIndex) -> Option<&Validator> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.validators().get(i))
    }

    /// `state.latest_block_header`.
    pub fn latest_block_header(&self) -> &BeaconBlockHeader {
        on_preset!(&self.state, s => s.latest_block_header())
    }

    /// `state.previous_justified_checkpoint`.
    pub fn previous_justified_checkpoint(&self) -> Checkpoint {
        on_preset!(&self.state, s => s.previous_justified_checkpoint())
    }

    /// `state.current_justified_checkpoint`.
    pub fn current_justified_checkpoint(&self) -> Checkpoint {
        on_preset!(&self.state, s => s.current_justified_checkpoint())
    }

    /// `state.randao_mixes`.
    pub fn randao_mixes(&self) -> &[Root] {
        on_preset!(&self.state, s => s.randao_mixes())
    }

    /// `get_block_root_at_slot(state, slot)`: `None` unless `slot` is one of
    /// the `SLOTS_PER_HISTORICAL_ROOT` slots before the state's (where the
    /// spec asserts).
    pub fn get_block_root_at_slot(&self, slot: Slot) -> Option<Root> {
        let history = self.preset.SLOTS_PER_HISTORICAL_ROOT;
        if slot >= self.slot() || self.slot() > slot.checked_add(history)? {
            return None;
        }
        let roots = on_preset!(&self.state, s => s.block_roots());
        roots.get(usize::try_from(slot % history).ok()?).copied()
    }

    /// `state.balances`, one per validator, in Gwei.
    pub fn balances(&self) -> &[u64] {
        on_preset!(&self.state, s => match s {
            ForkState::Phase0(s) => &s.balances,
            ForkState::Altair(s) => &s.balances,
            ForkState::Bellatrix(s) => &s.balances,
            ForkState::Capella(s) => &s.balances,
            ForkState::Deneb(s) => &s.balances,
            ForkState::Electra(s) => &s.balances,
            ForkState::Fulu(s) => &s.balances,
        })
    }

    /// `state.previous_epoch_participation`: each validator's flags
    /// (`TIMELY_SOURCE` 1, `TIMELY_TARGET` 2, `TIMELY_HEAD` 4) for the
    /// previous epoch; `None` in phase0.
    pub fn previous_epoch_participation(&self) -> Option<&[u8]> {
        on_preset!(&self.state, s => s.previous_epoch_participation())
    }

    /// `state.current_epoch_participation`; `None` in phase0.
    pub fn current_epoch_participation(&self) -> Option<&[u8]> {
        on_preset!(&self.state, s => s.current_epoch_participation())
    }

    /// `hash_tree_root(state)`.
    pub fn hash_tree_root(&self) -> Root {
        on_preset!(&self.state, s => s.tree_hash_root())
    }

    /// The SSZ encoding of the state.
    pub fn as_ssz_bytes(&self) -> Vec<u8> {
        on_preset!(&self.state, s => s.as_ssz_bytes())
    }

    /// `get_current_epoch`.
    pub fn get_current_epoch(&self) -> Epoch {
        self.slot() / self.preset.SLOTS_PER_EPOCH
    }

    /// `get_previous_epoch`: the current epoch minus one, but never before
    /// genesis (`GENESIS_EPOCH` is 0, so saturation is the spec's `max`).
    pub fn get_previous_epoch(&self) -> Epoch {
        self.get_current_epoch().saturating_sub(1)
    }

    /// `get_active_validator_indices`.
    pub fn get_active_validator_indices(&self, epoch: Epoch) -> Vec<ValidatorIndex> {
        (0..)
            .zip(self.validators())
            .filter(|(_, v)| v.is_active_validator(epoch))
            .map(|(i, _)| i)
            .collect()
    }

    /// `get_randao_mix`: the mix at `epoch % EPOCHS_PER_HISTORICAL_VECTOR`.
    pub fn get_randao_mix(&self, epoch: Epoch) -> Root {
        let mixes = self.randao_mixes();
        // The vector's length is the preset's non-zero
        // EPOCHS_PER_HISTORICAL_VECTOR, so the remainder is in range.
        let index = epoch % mixes.len() as u64;
        mixes[index as usize]
    }

    /// `get_seed`: `sha256(domain_type ++ uint_to_bytes(epoch) ++
    /// get_randao_mix(epoch + EPOCHS_PER_HISTORICAL_VECTOR - MIN_SEED_LOOKAHEAD - 1))`.
    pub fn get_seed(&self, epoch: Epoch, domain_type: DomainType) -> Root {
        let vector = self.preset.EPOCHS_PER_HISTORICAL_VECTOR;
        // Reduced modulo the vector first so that no epoch overflows; the
        // mix index is the same.
        let mix_epoch = epoch % vector + vector - self.preset.MIN_SEED_LOOKAHEAD - 1;
        let mix = self.get_randao_mix(mix_epoch);
        let mut preimage = [0u8; 4 + 8 + 32];
        preimage[..4].copy_from_slice(&domain_type);
        preimage[4..12].copy_from_slice(&epoch.to_le_bytes());
        preimage[12..].copy_from_slice(mix.as_slice());
        Root::from_slice(&ethereum_hashing::hash(&preimage))
    }

    /// The index of the validator with `pubkey` (the lowest, should a
    /// malformed registry hold a key twice). The first call sorts the
    /// registry's keys; later calls are binary searches.
    pub fn validator_index_by_pubkey(&self, pubkey: &PublicKeyBytes) -> Option<ValidatorIndex> {
        self.pubkey_index
            .get_or_init(|| PubkeyIndex::build(self.validators()))
            .get(self.validators(), pubkey)
    }
}

#[cfg(test)]
mod tests {
    use super::forks::{BeaconStateFulu, BeaconStatePhase0};
    use super::*;
    use ssz_types::{FixedVector, VariableList};

    fn pubkey(i: u64) -> PublicKeyBytes {
        let mut bytes = [0; 48];
        bytes[..8].copy_from_slice(&i.to_le_bytes());
        PublicKeyBytes(bytes)
    }

    /// A fulu minimal state built in code: validators 0..n, activated at
    /// epoch `i % 3`, sync committee seats taken round-robin.
    fn fulu_state(n: u64) -> BeaconStateFulu<Minimal> {
        let spec = ChainSpec::minimal();
        let validators = (0..n)
            .map(|i| Validator {
                activation_epoch: i % 3,
                ..Validator::pending(pubkey(i))
            })
            .collect();
        let seats = (0..32).map(|seat| pubkey(seat % n)).collect();
        BeaconStateFulu::<Minimal> {
            slot: 17,
            fork: Fork {
                current_version: spec.fork_schedule(ForkName::Fulu).unwrap().0,
                ..Fork::default()
            },
            validators: VariableList::new(validators).unwrap(),
            current_sync_committee: SyncCommittee {
                pubkeys: FixedVector::new(seats).unwrap(),
                ..SyncCommittee::default()
            },
            ..BeaconStateFulu::default()
        }
    }

    #[test]
    fn a_state_built_in_code_round_trips_through_decode_state() {
        let built = BeaconState::from(ForkState::Fulu(fulu_state(10)));
        let decoded = decode_state(&built.as_ssz_bytes(), &ChainSpec::minimal(), None).unwrap();
        assert_eq!(decoded.fork_name(), ForkName::Fulu);
        assert_eq!(decoded.preset_name(), PresetName::Minimal);
        assert_eq!(decoded.hash_tree_root(), built.hash_tree_root());
        assert_eq!(decoded.get_current_epoch(), 2);
        assert_eq!(decoded.get_previous_epoch(), 1);
        assert_eq!(
            decoded.get_active_validator_indices(1),
            [0, 1, 3, 4, 6, 7, 9]
        );
        assert_eq!(decoded.validator_index_by_pubkey(&pubkey(7)), Some(7));
        assert_eq!(decoded.validator_index_by_pubkey(&pubkey(10)), None);
    }

    #[test]
    fn a_validator_with_several_seats_has_every_position_and_each_subnet_once() {
        let state = BeaconState::from(ForkState::Fulu(fulu_state(10)));
        // Seats 3, 13, 23: subcommittees of 8 seats, so subnets 0, 1, 2.
        assert_eq!(
            state
                .sync_committee_positions(3, SyncPeriod::Current)
                .unwrap(),
            [3, 13, 23]
        );
        assert_eq!(
            state
                .sync_subcommittee_indices(3, SyncPeriod::Current)
                .unwrap(),
            [0, 1, 2]
        );
        // Seats 1, 11, 21, 31: subnets 0, 1, 2, 3.
        assert_eq!(
            state
                .sync_subcommittee_indices(1, SyncPeriod::Current)
                .unwrap(),
            [0, 1, 2, 3]
        );
        // The next committee is all zero keys: no seat for validator 6.
        assert!(state
            .sync_committee_positions(6, SyncPeriod::Next)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn phase0_has_no_sync_committees() {
        let state = BeaconState::from(ForkState::Phase0(BeaconStatePhase0::<Mainnet>::default()));
        assert!(state.current_sync_committee().is_none());
        let error = state.sync_subcommittee_indices(0, SyncPeriod::Current);
        assert!(matches!(
            error,
            Err(StateError::NoSyncCommittees {
                fork: ForkName::Phase0
            })
        ));
    }

    #[test]
    fn seeds_and_mixes_of_extreme_epochs_do_not_overflow() {
        let mut fulu = fulu_state(1);
        fulu.randao_mixes[63] = Root::repeat_byte(9);
        let state = BeaconState::from(ForkState::Fulu(fulu));
        assert_eq!(state.get_randao_mix(u64::MAX), Root::repeat_byte(9));
        // u64::MAX % 64 = 63, so the seed reads mix 61 (zero), not mix 63.
        let mut preimage = vec![1, 0, 0, 0];
        preimage.extend_from_slice(&u64::MAX.to_le_bytes());
        preimage.extend_from_slice(&[0; 32]);
        assert_eq!(
            state.get_seed(u64::MAX, [1, 0, 0, 0]).as_slice(),
            ethereum_hashing::hash(&preimage)
        );
    }
}
