//! Committees of the previous, current and next epoch built from the decoded
//! oracle states (not from the vectors' own active sets) against every
//! committee and attestation case of the oracle.

mod common;

use common::{oracle_state_bytes, oracle_vectors, u64_of, ORACLE_FOLDERS};
use dv_aggregator::spec::ChainSpec;
use dv_aggregator::state::decode_state;
use dv_aggregator::state::epoch_caches::{EpochCommittees, EpochCommitteesError};

fn committees_of(folder: &str) -> (EpochCommittees, serde_json::Value) {
    let vectors = oracle_vectors(folder);
    let spec = ChainSpec::from_preset_name(vectors["preset"].as_str().unwrap()).unwrap();
    let state = decode_state(&oracle_state_bytes(folder), &spec, None).unwrap();
    (EpochCommittees::from_state(&state).unwrap(), vectors)
}

#[test]
fn every_committee_of_three_epochs_from_the_decoded_state() {
    for folder in ORACLE_FOLDERS {
        let (committees, vectors) = committees_of(folder);
        for epoch in vectors["epochs"].as_array().unwrap() {
            let e = u64_of(&epoch["epoch"]);
            let cache = committees.for_epoch(e).unwrap();
            assert_eq!(
                cache.committees_per_slot(),
                u64_of(&epoch["committees_per_slot"])
            );
            let ours: Vec<(u64, u64, Vec<u64>)> = cache
                .committees()
                .map(|c| (c.slot, c.index, c.members.to_vec()))
                .collect();
            let expected: Vec<(u64, u64, Vec<u64>)> = epoch["committees"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let members = c["members"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(u64_of)
                        .collect();
                    (u64_of(&c["slot"]), u64_of(&c["committee_index"]), members)
                })
                .collect();
            assert_eq!(ours, expected, "{folder} epoch {e}");
        }
    }
}

#[test]
fn every_attestation_case_finds_its_committee() {
    for folder in ORACLE_FOLDERS {
        let (committees, vectors) = committees_of(folder);
        for case in vectors["attestation_cases"].as_array().unwrap() {
            let slot = u64_of(&case["slot"]);
            let index = u64_of(&case["committee_index"]);
            let committee = committees.get_beacon_committee(slot, index).unwrap();
            let what = format!("{folder} slot {slot} index {index}");
            assert_eq!(
                committee.len() as u64,
                u64_of(&case["committee_length"]),
                "{what}"
            );
            let position = u64_of(&case["position_in_committee"]) as usize;
            assert_eq!(
                committee[position],
                u64_of(&case["validator_index"]),
                "{what}"
            );
        }
    }
}

#[test]
fn epochs_outside_the_state_are_refused_with_the_range() {
    let (committees, vectors) = committees_of("deneb-minimal-2048");
    let current = u64_of(&vectors["state"]["epoch"]);
    for epoch in [current - 2, current + 2, u64::MAX] {
        let err = committees.for_epoch(epoch).unwrap_err();
        assert!(matches!(err, EpochCommitteesError::EpochOutOfRange { .. }));
        let message = err.to_string();
        assert!(
            message.contains(&format!("epoch {epoch} "))
                && message.contains(&format!("{}..={}", current - 1, current + 1)),
            "{message}"
        );
    }
    let slot_far_ahead = (current + 2) * 8;
    assert!(committees.get_beacon_committee(slot_far_ahead, 0).is_err());
}
