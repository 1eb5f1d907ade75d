//! `get_next_sync_committee` and `initialize_proposer_lookahead` against the
//! oracle vectors: every altair+ oracle state was built with both sync
//! committees set to `get_next_sync_committee(state)`, and every fulu state
//! with `proposer_lookahead = initialize_proposer_lookahead(state)`, so
//! recomputing them from the decoded state must give exactly what it holds
//! (and what vectors.json lists). Changing one effective balance must change
//! the draw.

mod common;

use common::{hex_bytes, oracle_state_bytes, oracle_vectors, u64_of, ORACLE_FOLDERS};
use dv_aggregator::spec::{ChainSpec, ForkName};
use dv_aggregator::state::forks::ForkState;
use dv_aggregator::state::{
    decode_state, BeaconState, Mainnet, Minimal, PublicKeyBytes, StateError, SyncCommitteeRef,
};
use serde_json::Value;

fn spec_of(vectors: &Value) -> ChainSpec {
    ChainSpec::from_preset_name(vectors["preset"].as_str().unwrap()).unwrap()
}

fn decoded(folder: &str) -> (BeaconState, Value) {
    let vectors = oracle_vectors(folder);
    let state = decode_state(&oracle_state_bytes(folder), &spec_of(&vectors), None).unwrap();
    (state, vectors)
}

fn u64s(value: &Value) -> Vec<u64> {
    value.as_array().unwrap().iter().map(u64_of).collect()
}

/// The altair+ folders (phase0 has no sync committee).
fn sync_folders() -> impl Iterator<Item = &'static str> {
    ORACLE_FOLDERS
        .into_iter()
        .filter(|folder| !folder.starts_with("phase0"))
}

#[test]
fn next_sync_committee_of_every_altair_plus_oracle_state_is_the_committee_it_holds() {
    for folder in sync_folders() {
        let (state, vectors) = decoded(folder);
        let expected = &vectors["sync_committee"];
        assert_eq!(
            state.get_next_sync_committee_indices().unwrap(),
            u64s(&expected["current_sync_committee_validator_indices"]),
            "{folder}"
        );
        let committee = state.get_next_sync_committee().unwrap();
        let computed = SyncCommitteeRef::from(&committee);
        assert_eq!(Some(computed), state.current_sync_committee(), "{folder}");
        assert_eq!(Some(computed), state.next_sync_committee(), "{folder}");
        assert_eq!(
            committee.aggregate_pubkey,
            PublicKeyBytes(hex_bytes(&expected["aggregate_pubkey"])),
            "{folder}"
        );
        assert_eq!(
            committee.pubkeys.len() as u64,
            state.preset().SYNC_COMMITTEE_SIZE
        );
    }
}

#[test]
fn electra_draw_weights_compounding_validators_by_their_high_balance() {
    let (state, vectors) = decoded("electra-mainnet-1000");
    let indices = state.get_next_sync_committee_indices().unwrap();
    let compounding = u64s(&vectors["state"]["validator_groups"]["compounding_high_balance"]);
    let seats_of_compounding = indices.iter().filter(|i| compounding.contains(i)).count();
    // 3 of ~1000 validators, but with up to 64 times the weight of 32 ETH.
    assert!(
        seats_of_compounding > 3,
        "compounding validators hold {seats_of_compounding} of 512 seats"
    );
}

/// Decodes a folder's state, changes one validator's effective balance and
/// returns the changed state.
fn with_effective_balance(folder: &str, index: usize, effective_balance: u64) -> BeaconState {
    let vectors = oracle_vectors(folder);
    let fork = match vectors["fork"].as_str().unwrap() {
        "altair" => ForkName::Altair,
        "electra" => ForkName::Electra,
        other => panic!("{other}: not used here"),
    };
    let bytes = oracle_state_bytes(folder);
    macro_rules! set {
        ($preset:ty) => {{
            let mut state = ForkState::<$preset>::from_ssz_bytes(fork, &bytes).unwrap();
            match &mut state {
                ForkState::Altair(s) => s.validators[index].effective_balance = effective_balance,
                ForkState::Electra(s) => s.validators[index].effective_balance = effective_balance,
                _ => unreachable!(),
            }
            BeaconState::from(state)
        }};
    }
    match vectors["preset"].as_str().unwrap() {
        "mainnet" => set!(Mainnet),
        _ => set!(Minimal),
    }
}

#[test]
fn one_changed_effective_balance_changes_the_draw() {
    for folder in ["altair-minimal-2048", "electra-mainnet-1000"] {
        let (state, _) = decoded(folder);
        let original = state.get_next_sync_committee_indices().unwrap();
        // The first member drawn, at zero balance, passes only on a zero
        // random value.
        let first = original[0] as usize;
        let changed = with_effective_balance(folder, first, 0);
        let redrawn = changed.get_next_sync_committee_indices().unwrap();
        assert_ne!(redrawn, original, "{folder}");
        assert_ne!(redrawn[0], original[0], "{folder}");
        assert_ne!(
            changed.get_next_sync_committee().unwrap().aggregate_pubkey,
            state.get_next_sync_committee().unwrap().aggregate_pubkey,
            "{folder}"
        );
    }
}

#[test]
fn a_phase0_state_has_no_next_sync_committee() {
    let (state, _) = decoded("phase0-minimal-2048");
    assert!(matches!(
        state.get_next_sync_committee(),
        Err(StateError::NoSyncCommittees {
            fork: ForkName::Phase0
        })
    ));
}

#[test]
fn proposer_lookahead_of_every_fulu_oracle_state_is_initialize_proposer_lookahead() {
    for folder in ["fulu-minimal-2048", "fulu-mainnet-1024"] {
        let (state, vectors) = decoded(folder);
        let expected = u64s(&vectors["state"]["proposer_lookahead"]);
        let computed = state.initialize_proposer_lookahead().unwrap();
        assert_eq!(computed, expected, "{folder}");
        assert_eq!(state.proposer_lookahead(), Some(&expected[..]), "{folder}");
        // Its two halves are the proposers of the current and the next epoch.
        let epoch = state.get_current_epoch();
        let slots = state.preset().SLOTS_PER_EPOCH as usize;
        assert_eq!(
            state.get_beacon_proposer_indices(epoch + 1).unwrap(),
            expected[slots..],
            "{folder}"
        );
    }
}

#[test]
fn a_state_before_fulu_has_no_lookahead_but_proposers_by_its_own_rule() {
    let (state, _) = decoded("deneb-minimal-2048");
    assert_eq!(state.proposer_lookahead(), None);
    let proposers = state
        .get_beacon_proposer_indices(state.get_current_epoch())
        .unwrap();
    assert_eq!(proposers.len() as u64, state.preset().SLOTS_PER_EPOCH);
    let epoch = state.get_current_epoch();
    assert!(proposers
        .iter()
        .all(|&p| state.validator(p).unwrap().is_active_validator(epoch)));
}
