//! `advance_empty_slots` on the oracle states and on interop genesis
//! states: the committees of the epoch reached are those the earlier state
//! predicted (and, for the oracle's next epoch, those the Python spec
//! listed); randao mixes are carried into the next epoch; sync committees
//! rotate at a period boundary; fulu's lookahead shifts; block roots repeat
//! the latest block's root. Bad targets are errors that leave the state
//! unchanged.

mod common;

use common::{oracle_state_bytes, oracle_vectors, u64_of, ORACLE_FOLDERS};
use dv_aggregator::spec::config::DOMAIN_BEACON_ATTESTER;
use dv_aggregator::spec::{ChainSpec, ForkName, Root};
use dv_aggregator::state::epoch_caches::{committee_cache_at, EpochCommittees};
use dv_aggregator::state::forks::ForkState;
use dv_aggregator::state::{
    decode_state, interop_genesis_state, AdvanceError, BeaconBlockHeader, BeaconState, Minimal,
    SyncCommitteeKeys, SyncCommitteeRef, SyncPeriod, MAX_EPOCHS_PER_ADVANCE,
};
use serde_json::Value;
use tree_hash::TreeHash;

fn decoded(folder: &str) -> (BeaconState, Value) {
    let vectors = oracle_vectors(folder);
    let spec = ChainSpec::from_preset_name(vectors["preset"].as_str().unwrap()).unwrap();
    let state = decode_state(&oracle_state_bytes(folder), &spec, None).unwrap();
    (state, vectors)
}

fn advanced(state: &BeaconState, slot: u64) -> BeaconState {
    let mut state = state.clone();
    state.advance_empty_slots(slot).unwrap();
    assert_eq!(state.slot(), slot);
    state
}

/// Every committee of `epoch` as (slot, index, members).
fn committees(state: &BeaconState, epoch: u64) -> Vec<(u64, u64, Vec<u64>)> {
    committee_cache_at(state, epoch)
        .unwrap()
        .committees()
        .map(|c| (c.slot, c.index, c.members.to_vec()))
        .collect()
}

fn predicted(state: &BeaconState, epoch: u64) -> Vec<(u64, u64, Vec<u64>)> {
    EpochCommittees::from_state(state)
        .unwrap()
        .for_epoch(epoch)
        .unwrap()
        .committees()
        .map(|c| (c.slot, c.index, c.members.to_vec()))
        .collect()
}

fn oracle_committees(vectors: &Value, epoch: u64) -> Vec<(u64, u64, Vec<u64>)> {
    let case = vectors["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| u64_of(&e["epoch"]) == epoch)
        .unwrap();
    case["committees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let members = c["members"].as_array().unwrap().iter().map(u64_of);
            (
                u64_of(&c["slot"]),
                u64_of(&c["committee_index"]),
                members.collect(),
            )
        })
        .collect()
}

/// `get_seed(state, epoch, DOMAIN_BEACON_ATTESTER)` written out for a given mix.
fn attester_seed(epoch: u64, mix: Root) -> Root {
    let mut preimage = DOMAIN_BEACON_ATTESTER.to_vec();
    preimage.extend_from_slice(&epoch.to_le_bytes());
    preimage.extend_from_slice(mix.as_slice());
    Root::from_slice(&ethereum_hashing::hash(&preimage))
}

#[test]
fn committees_reached_are_those_predicted_one_epoch_ahead() {
    for folder in ORACLE_FOLDERS {
        let (state, vectors) = decoded(folder);
        let slots = state.preset().SLOTS_PER_EPOCH;
        let epoch = state.get_current_epoch();
        let mut previous = state;
        for next in epoch + 1..=epoch + 3 {
            let reached = advanced(&previous, next * slots);
            assert_eq!(reached.get_current_epoch(), next);
            assert_eq!(
                committees(&reached, next),
                predicted(&previous, next),
                "{folder} epoch {next}"
            );
            if next == epoch + 1 {
                // The Python spec's committees of the oracle's next epoch.
                assert_eq!(
                    committees(&reached, next),
                    oracle_committees(&vectors, next),
                    "{folder}"
                );
            }
            previous = reached;
        }
    }
}

#[test]
fn randao_mixes_are_carried_into_each_next_epoch() {
    let (state, _) = decoded("electra-mainnet-1000");
    let slots = state.preset().SLOTS_PER_EPOCH;
    let original = state.randao_mixes().to_vec();
    // Epoch 5 to the last slot of epoch 5: no epoch boundary yet.
    let before = advanced(&state, 6 * slots - 1);
    assert_eq!(before.randao_mixes(), original);
    let after = advanced(&state, 8 * slots);
    let mixes = after.randao_mixes();
    assert_eq!(
        (mixes[6], mixes[7], mixes[8]),
        (original[5], original[5], original[5])
    );
    assert_ne!(original[6], original[5], "the oracle's mixes are random");
    assert_eq!(mixes[..6], original[..6]);
    assert_eq!(mixes[9..], original[9..]);
    // Epoch 8's seed reads the mix of epoch 6: the carried one.
    assert_eq!(
        after.get_seed(8, DOMAIN_BEACON_ATTESTER),
        attester_seed(8, original[5])
    );
}

#[test]
fn sync_committees_rotate_at_the_period_boundary_only() {
    let spec = ChainSpec::minimal();
    let genesis = interop_genesis_state(&spec, ForkName::Altair, 256, 0).unwrap();
    let genesis_committee = SyncCommitteeKeys::from(genesis.current_sync_committee().unwrap());
    // EPOCHS_PER_SYNC_COMMITTEE_PERIOD is 8 on minimal: slot 63 ends period 0.
    let last_of_period = advanced(&genesis, 63);
    assert_eq!(
        last_of_period.current_sync_committee(),
        genesis.current_sync_committee()
    );
    assert_eq!(
        last_of_period.next_sync_committee(),
        genesis.next_sync_committee()
    );
    let drawn_at_boundary = last_of_period.get_next_sync_committee().unwrap();
    assert_ne!(drawn_at_boundary, genesis_committee);

    let next_period = advanced(&last_of_period, 64);
    assert_eq!(
        next_period.current_sync_committee(),
        Some(SyncCommitteeRef::from(&genesis_committee))
    );
    assert_eq!(
        next_period.next_sync_committee(),
        Some(SyncCommitteeRef::from(&drawn_at_boundary))
    );
    // Sync duties of period 1 now come from the current committee.
    assert_eq!(
        next_period.sync_period_of_epoch(8).unwrap(),
        SyncPeriod::Current
    );

    // And the oracle state (epoch 5): its next committee becomes current at epoch 8.
    let (oracle, _) = decoded("altair-minimal-2048");
    let rotated = advanced(&oracle, 64);
    assert_eq!(
        rotated.current_sync_committee(),
        oracle.next_sync_committee()
    );
    assert_ne!(rotated.next_sync_committee(), oracle.next_sync_committee());
    let advanced_to_63 = advanced(&oracle, 63);
    assert_eq!(
        rotated.next_sync_committee(),
        Some(SyncCommitteeRef::from(
            &advanced_to_63.get_next_sync_committee().unwrap()
        ))
    );
}

#[test]
fn fulu_lookahead_shifts_by_one_epoch_and_appends_the_epoch_after_next() {
    for folder in ["fulu-minimal-2048", "fulu-mainnet-1024"] {
        let (state, vectors) = decoded(folder);
        let slots = state.preset().SLOTS_PER_EPOCH as usize;
        let oracle: Vec<u64> = vectors["state"]["proposer_lookahead"]
            .as_array()
            .unwrap()
            .iter()
            .map(u64_of)
            .collect();
        let next = advanced(&state, 6 * slots as u64);
        let lookahead = next.proposer_lookahead().unwrap();
        assert_eq!(lookahead[..slots], oracle[slots..], "{folder}");
        assert_eq!(
            lookahead[slots..],
            next.get_beacon_proposer_indices(7).unwrap(),
            "{folder}"
        );
        assert_eq!(
            lookahead,
            next.initialize_proposer_lookahead().unwrap(),
            "{folder}"
        );
    }
}

#[test]
fn block_roots_repeat_the_latest_block_root() {
    let spec = ChainSpec::minimal();
    let genesis = interop_genesis_state(&spec, ForkName::Fulu, 64, 0).unwrap();
    // The genesis block: the latest header once its state root is filled in.
    let genesis_block_root = BeaconBlockHeader {
        state_root: genesis.hash_tree_root(),
        ..*genesis.latest_block_header()
    }
    .tree_hash_root();
    let state = advanced(&genesis, 20);
    assert_eq!(
        state.latest_block_header().state_root,
        genesis.hash_tree_root()
    );
    for slot in 0..20 {
        assert_eq!(state.get_block_root_at_slot(slot), Some(genesis_block_root));
    }
    // A header that already has its state root (the oracle's) keeps it.
    let (oracle, _) = decoded("deneb-minimal-2048");
    let header = *oracle.latest_block_header();
    assert_ne!(header.state_root, Root::ZERO);
    let state = advanced(&oracle, 50);
    assert_eq!(*state.latest_block_header(), header);
    assert_eq!(
        state.get_block_root_at_slot(49),
        Some(header.tree_hash_root())
    );
}

#[test]
fn bad_targets_are_errors_and_leave_the_state_unchanged() {
    let (state, _) = decoded("fulu-minimal-2048");
    let root = state.hash_tree_root();
    let mut same = state.clone();
    same.advance_empty_slots(state.slot()).unwrap();
    assert_eq!(same.hash_tree_root(), root);

    let mut earlier = state.clone();
    let error = earlier.advance_empty_slots(42).unwrap_err();
    assert!(matches!(
        error,
        AdvanceError::TargetBeforeState {
            slot: 43,
            target: 42
        }
    ));
    assert_eq!(earlier.hash_tree_root(), root);

    let mut far = state.clone();
    let too_far = (5 + MAX_EPOCHS_PER_ADVANCE + 1) * 8;
    let error = far.advance_empty_slots(too_far).unwrap_err();
    assert!(
        matches!(error, AdvanceError::TooFar { epochs: 257, .. }),
        "{error}"
    );
    assert_eq!(far.hash_tree_root(), root);
    // The bound itself is allowed.
    far.advance_empty_slots(too_far - 8).unwrap();
}

#[test]
fn a_failing_epoch_leaves_the_state_as_it_was() {
    // Every validator exits at epoch 2: the lookahead of epoch 2, drawn at
    // the end of epoch 0, has nobody to draw from.
    let spec = ChainSpec::minimal();
    let genesis = interop_genesis_state(&spec, ForkName::Fulu, 64, 0).unwrap();
    let ssz = genesis.as_ssz_bytes();
    let mut fork_state = ForkState::<Minimal>::from_ssz_bytes(ForkName::Fulu, &ssz).unwrap();
    if let ForkState::Fulu(s) = &mut fork_state {
        for validator in s.validators.iter_mut() {
            validator.exit_epoch = 2;
        }
    }
    let mut state = BeaconState::from(fork_state);
    let root = state.hash_tree_root();
    let error = state.advance_empty_slots(10).unwrap_err();
    assert_eq!(
        error.to_string(),
        "epoch processing at slot 7: cannot draw the proposers of epoch 2: \
         there is no active validator to draw from"
    );
    assert_eq!(state.hash_tree_root(), root);
    assert_eq!(state.slot(), 0);
}
