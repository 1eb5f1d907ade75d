//! The interop genesis state: it decodes back through `decode_state`, its
//! registry is the interop keys with the credentials and balances the
//! oracle's pyspec-built states have, its committees partition the active
//! set, and its sync committees and fulu lookahead are what the state itself
//! determines. Bad counts and configs are errors.

mod common;

use common::oracle_state_bytes;
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::spec::{ChainSpec, ForkName, PresetName, Root, FAR_FUTURE_EPOCH};
use dv_aggregator::state::epoch_caches::EpochCommittees;
use dv_aggregator::state::forks::ForkState;
use dv_aggregator::state::genesis::{INTEROP_ETH1_BLOCK_HASH, MAX_INTEROP_VALIDATORS};
use dv_aggregator::state::{
    decode_state, interop_genesis_state, BeaconState, GenesisError, Minimal, SyncCommitteeRef,
    Validator,
};
use ssz_types::typenum::U1099511627776;
use ssz_types::VariableList;
use tree_hash::TreeHash;

const GENESIS_TIME: u64 = 1_700_000_000;

fn genesis(spec: &ChainSpec, fork: ForkName, count: u64) -> BeaconState {
    interop_genesis_state(spec, fork, count, GENESIS_TIME)
        .unwrap_or_else(|e| panic!("{fork} genesis of {count}: {e}"))
}

fn hash_tree_root_of_registry(validators: &[Validator]) -> Root {
    VariableList::<Validator, U1099511627776>::new(validators.to_vec())
        .unwrap()
        .tree_hash_root()
}

#[test]
fn every_fork_on_both_presets_decodes_back_with_its_version_and_fields() {
    for (spec, count) in [(ChainSpec::minimal(), 64), (ChainSpec::mainnet(), 600)] {
        for fork in ForkName::ALL {
            let state = genesis(&spec, fork, count);
            let decoded = decode_state(&state.as_ssz_bytes(), &spec, None).unwrap();
            assert_eq!(decoded.fork_name(), fork);
            assert_eq!(decoded.hash_tree_root(), state.hash_tree_root());
            let version = spec.fork_schedule(fork).unwrap().0;
            assert_eq!(decoded.fork().previous_version, version);
            assert_eq!(decoded.fork().current_version, version);
            assert_eq!(decoded.fork().epoch, 0);
            assert_eq!((decoded.slot(), decoded.genesis_time()), (0, GENESIS_TIME));
            assert_eq!(decoded.validators().len() as u64, count);
            assert_eq!(decoded.balances(), vec![32_000_000_000; count as usize]);
            assert!(decoded
                .randao_mixes()
                .iter()
                .all(|mix| *mix == INTEROP_ETH1_BLOCK_HASH));
            assert_eq!(
                decoded.genesis_validators_root(),
                hash_tree_root_of_registry(decoded.validators()),
                "{fork}"
            );
        }
    }
}

#[test]
fn altair_plus_states_have_one_participation_flag_and_score_per_validator() {
    let spec = ChainSpec::minimal();
    let ssz = genesis(&spec, ForkName::Fulu, 100).as_ssz_bytes();
    let ForkState::Fulu(state) =
        ForkState::<Minimal>::from_ssz_bytes(ForkName::Fulu, &ssz).unwrap()
    else {
        panic!("not fulu");
    };
    assert_eq!(state.previous_epoch_participation.len(), 100);
    assert_eq!(state.current_epoch_participation.len(), 100);
    assert_eq!(state.inactivity_scores.len(), 100);
    assert_eq!(state.eth1_deposit_index, 100);
    assert_eq!(state.eth1_data.deposit_count, 100);
    assert_eq!(state.eth1_data.block_hash, INTEROP_ETH1_BLOCK_HASH);
    assert_eq!(state.deposit_requests_start_index, u64::MAX);
}

#[test]
fn the_registry_is_the_interop_keys_with_the_oracles_credentials() {
    // The oracle's phase0 state was built by the Python spec from the same
    // interop keys, all with 0x00 credentials; its lifecycle groups change
    // epochs and balances only.
    let oracle_spec = ChainSpec::minimal();
    let oracle = decode_state(
        &oracle_state_bytes("phase0-minimal-2048"),
        &oracle_spec,
        None,
    )
    .unwrap();
    let state = genesis(&oracle_spec, ForkName::Deneb, 2048);
    for (i, (ours, theirs)) in state
        .validators()
        .iter()
        .zip(oracle.validators())
        .enumerate()
    {
        assert_eq!(ours.pubkey, theirs.pubkey, "validator {i}");
        assert_eq!(
            ours.withdrawal_credentials, theirs.withdrawal_credentials,
            "validator {i}"
        );
        assert_eq!(
            (ours.activation_eligibility_epoch, ours.activation_epoch),
            (0, 0)
        );
        assert_eq!(
            (ours.exit_epoch, ours.withdrawable_epoch, ours.slashed),
            (FAR_FUTURE_EPOCH, FAR_FUTURE_EPOCH, false)
        );
        assert_eq!(ours.effective_balance, 32_000_000_000);
    }
    assert!(state.validators()[0]
        .pubkey
        .to_string()
        .starts_with("0xa99a76ed"));
    let key_100 = interop_secret_key(100).public_key().to_bytes();
    assert_eq!(state.validators()[100].pubkey.0, key_100);
    // The oracle's genesis_validators_root is hash_tree_root of its
    // validators, computed the same way ours is.
    assert_eq!(
        oracle.genesis_validators_root(),
        hash_tree_root_of_registry(oracle.validators())
    );
}

#[test]
fn committees_of_genesis_partition_the_active_set() {
    let spec = ChainSpec::minimal();
    let state = genesis(&spec, ForkName::Fulu, 2048);
    let committees = EpochCommittees::from_state(&state).unwrap();
    for cache in committees.all() {
        let mut members: Vec<u64> = cache
            .committees()
            .flat_map(|c| c.members.iter().copied())
            .collect();
        members.sort_unstable();
        assert_eq!(members, state.get_active_validator_indices(cache.epoch()));
        assert_eq!(members.len(), 2048);
        // 2048 / 8 slots / 4 (TARGET_COMMITTEE_SIZE) caps at 4 per slot.
        assert_eq!(cache.committees_per_slot(), 4);
    }
}

#[test]
fn sync_committees_and_lookahead_are_what_the_state_itself_determines() {
    for preset in [PresetName::Minimal, PresetName::Mainnet] {
        let spec = match preset {
            PresetName::Minimal => ChainSpec::minimal(),
            PresetName::Mainnet => ChainSpec::mainnet(),
        };
        for fork in [ForkName::Altair, ForkName::Electra, ForkName::Fulu] {
            let state = genesis(&spec, fork, 1024);
            let expected = state.get_next_sync_committee().unwrap();
            assert_eq!(
                state.current_sync_committee(),
                Some(SyncCommitteeRef::from(&expected))
            );
            assert_eq!(
                state.next_sync_committee(),
                Some(SyncCommitteeRef::from(&expected))
            );
            // Every member is a validator of the registry.
            state
                .sync_committee_validator_indices(dv_aggregator::state::SyncPeriod::Current)
                .unwrap();
            if fork == ForkName::Fulu {
                let lookahead = state.initialize_proposer_lookahead().unwrap();
                assert_eq!(state.proposer_lookahead(), Some(&lookahead[..]));
                assert_eq!(lookahead.len() as u64, 2 * spec.preset.SLOTS_PER_EPOCH);
            } else {
                assert_eq!(state.proposer_lookahead(), None);
            }
        }
    }
    let phase0 = genesis(&ChainSpec::minimal(), ForkName::Phase0, 64);
    assert!(phase0.current_sync_committee().is_none());
}

#[test]
fn bad_counts_and_configs_are_errors() {
    let spec = ChainSpec::minimal();
    assert!(matches!(
        interop_genesis_state(&spec, ForkName::Fulu, 0, 0),
        Err(GenesisError::NoValidators)
    ));
    let error =
        interop_genesis_state(&spec, ForkName::Fulu, MAX_INTEROP_VALIDATORS + 1, 0).unwrap_err();
    assert!(matches!(error, GenesisError::TooManyValidators { .. }));
    assert!(error.to_string().contains("1048577"), "{error}");
    let mut without_fulu = ChainSpec::minimal();
    without_fulu
        .forks
        .retain(|(fork, _, _)| *fork != ForkName::Fulu);
    let error = interop_genesis_state(&without_fulu, ForkName::Fulu, 8, 0).unwrap_err();
    assert_eq!(
        error.to_string(),
        "config \"minimal\" has no fork version for fulu"
    );
}
