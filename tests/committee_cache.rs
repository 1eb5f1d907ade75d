//! The committee cache against every committee and attestation case of the
//! eight oracle folders (three epochs each), and its errors.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dv_aggregator::spec::{Preset, Root, ValidatorIndex};
use dv_aggregator::state::committee_cache::{
    get_committee_count_per_slot, AttesterPosition, CommitteeCache, CommitteeError,
    MAX_CACHED_VALIDATOR_INDEX,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct OracleVectors {
    preset: String,
    constants: Constants,
    state: StateSummary,
    epochs: Vec<EpochVectors>,
    attestation_cases: Vec<AttestationCase>,
}

#[allow(non_snake_case)]
#[derive(Debug, Deserialize)]
struct Constants {
    SLOTS_PER_EPOCH: u64,
    MAX_COMMITTEES_PER_SLOT: u64,
    TARGET_COMMITTEE_SIZE: u64,
    SHUFFLE_ROUND_COUNT: u8,
}

#[derive(Debug, Deserialize)]
struct StateSummary {
    validator_count: u64,
}

#[derive(Debug, Deserialize)]
struct EpochVectors {
    epoch: u64,
    active_validator_count: u64,
    committees_per_slot: u64,
    seed: String,
    committees: Vec<CommitteeVector>,
}

#[derive(Debug, Deserialize)]
struct CommitteeVector {
    slot: u64,
    committee_index: u64,
    members: Vec<ValidatorIndex>,
}

#[derive(Debug, Deserialize)]
struct AttestationCase {
    slot: u64,
    committee_index: u64,
    validator_index: ValidatorIndex,
    committees_at_slot: u64,
    committee_length: u64,
    epoch: u64,
    position_in_committee: u64,
}

struct Folder {
    name: String,
    vectors: OracleVectors,
    preset: Preset,
}

fn oracle_folders() -> Vec<Folder> {
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oracle");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(oracle)
        .expect("oracle folder")
        .map(|entry| entry.expect("dir entry").path())
        .collect();
    paths.sort();
    let folders: Vec<Folder> = paths.iter().map(|path| load(path)).collect();
    assert_eq!(folders.len(), 8);
    folders
}

fn load(path: &Path) -> Folder {
    let json = std::fs::read(path.join("vectors.json")).expect("vectors.json");
    let vectors: OracleVectors = serde_json::from_slice(&json).expect("vectors.json parses");
    let preset = match vectors.preset.as_str() {
        "mainnet" => Preset::mainnet(),
        "minimal" => Preset::minimal(),
        other => panic!("unknown preset {other}"),
    };
    let constants = &vectors.constants;
    assert_eq!(
        (
            preset.SLOTS_PER_EPOCH,
            preset.MAX_COMMITTEES_PER_SLOT,
            preset.TARGET_COMMITTEE_SIZE,
            preset.SHUFFLE_ROUND_COUNT
        ),
        (
            constants.SLOTS_PER_EPOCH,
            constants.MAX_COMMITTEES_PER_SLOT,
            constants.TARGET_COMMITTEE_SIZE,
            constants.SHUFFLE_ROUND_COUNT
        ),
        "preset constants of {}",
        path.display()
    );
    Folder {
        name: path.display().to_string(),
        vectors,
        preset,
    }
}

/// The epoch's active validator indices, ascending. Taken from the vectors'
/// committees rather than from `state.ssz` (the state decoder is another
/// module): the oracle's README states, and its generator asserts, that the
/// committees of an epoch partition its active set, so their union is it.
/// The count is checked against the vectors' own `active_validator_count`.
fn active_indices(epoch: &EpochVectors) -> Vec<ValidatorIndex> {
    let members: Vec<ValidatorIndex> = epoch
        .committees
        .iter()
        .flat_map(|committee| committee.members.iter().copied())
        .collect();
    let active: BTreeSet<ValidatorIndex> = members.iter().copied().collect();
    assert_eq!(
        active.len(),
        members.len(),
        "epoch {}: committees overlap",
        epoch.epoch
    );
    assert_eq!(active.len() as u64, epoch.active_validator_count);
    active.into_iter().collect()
}

fn seed(epoch: &EpochVectors) -> Root {
    let bytes = hex::decode(epoch.seed.trim_start_matches("0x")).expect("seed is hex");
    Root::from_slice(&bytes)
}

fn cache(folder: &Folder, epoch: &EpochVectors) -> CommitteeCache {
    CommitteeCache::new(
        epoch.epoch,
        active_indices(epoch),
        seed(epoch),
        &folder.preset,
    )
    .unwrap_or_else(|error| panic!("{} epoch {}: {error}", folder.name, epoch.epoch))
}

#[test]
fn every_committee_of_every_epoch() {
    for folder in oracle_folders() {
        assert_eq!(folder.vectors.epochs.len(), 3, "{}", folder.name);
        for epoch in &folder.vectors.epochs {
            let cache = cache(&folder, epoch);
            let context = format!("{} epoch {}", folder.name, epoch.epoch);
            assert_eq!(cache.epoch(), epoch.epoch, "{context}");
            assert_eq!(
                cache.active_validator_count() as u64,
                epoch.active_validator_count
            );
            assert_eq!(
                cache.committees_per_slot(),
                epoch.committees_per_slot,
                "{context}"
            );

            let committees: Vec<_> = cache.committees().collect();
            assert_eq!(committees.len(), epoch.committees.len(), "{context}");
            for (got, expected) in committees.iter().zip(&epoch.committees) {
                let at = format!(
                    "{context} slot {} index {}",
                    expected.slot, expected.committee_index
                );
                assert_eq!(
                    (got.slot, got.index),
                    (expected.slot, expected.committee_index),
                    "{at}"
                );
                assert_eq!(got.members, expected.members.as_slice(), "{at}");
                let direct = cache.get_beacon_committee(expected.slot, expected.committee_index);
                assert_eq!(direct, Ok(expected.members.as_slice()), "{at}");
            }
        }
    }
}

/// Every member of every committee finds itself through `attester_position`.
#[test]
fn attester_position_of_every_member() {
    for folder in oracle_folders() {
        for epoch in &folder.vectors.epochs {
            let cache = cache(&folder, epoch);
            for committee in &epoch.committees {
                for (position, &validator) in committee.members.iter().enumerate() {
                    let expected = AttesterPosition {
                        slot: committee.slot,
                        committee_index: committee.committee_index,
                        committee_length: committee.members.len() as u64,
                        position_in_committee: position as u64,
                        committees_at_slot: epoch.committees_per_slot,
                    };
                    assert_eq!(
                        cache.attester_position(validator),
                        Some(expected),
                        "{} epoch {} validator {validator}",
                        folder.name,
                        epoch.epoch
                    );
                }
            }
        }
    }
}

#[test]
fn attestation_cases() {
    for folder in oracle_folders() {
        let caches: Vec<CommitteeCache> = folder
            .vectors
            .epochs
            .iter()
            .map(|epoch| cache(&folder, epoch))
            .collect();
        assert!(
            !folder.vectors.attestation_cases.is_empty(),
            "{}",
            folder.name
        );
        for case in &folder.vectors.attestation_cases {
            let cache = caches
                .iter()
                .find(|cache| cache.epoch() == case.epoch)
                .expect("case epoch is one of the three");
            let expected = AttesterPosition {
                slot: case.slot,
                committee_index: case.committee_index,
                committee_length: case.committee_length,
                position_in_committee: case.position_in_committee,
                committees_at_slot: case.committees_at_slot,
            };
            assert_eq!(
                cache.attester_position(case.validator_index),
                Some(expected),
                "{} validator {} slot {}",
                folder.name,
                case.validator_index,
                case.slot
            );
        }
    }
}

/// Validators of the registry outside an epoch's active set have no position.
#[test]
fn inactive_validators_have_no_position() {
    for folder in oracle_folders() {
        for epoch in &folder.vectors.epochs {
            let cache = cache(&folder, epoch);
            let active: BTreeSet<ValidatorIndex> = active_indices(epoch).into_iter().collect();
            let inactive: Vec<ValidatorIndex> = (0..folder.vectors.state.validator_count + 2)
                .filter(|index| !active.contains(index))
                .collect();
            assert!(inactive.len() >= 2, "{}", folder.name);
            for index in inactive.into_iter().chain([u64::MAX]) {
                assert_eq!(cache.attester_position(index), None, "validator {index}");
            }
        }
    }
}

#[test]
fn slot_outside_epoch_and_index_out_of_range() {
    let folder = load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oracle/phase0-minimal-2048"),
    );
    let epoch = &folder.vectors.epochs[1];
    let cache = cache(&folder, epoch);
    let slots_per_epoch = folder.preset.SLOTS_PER_EPOCH;
    let first = epoch.epoch * slots_per_epoch;
    for (slot, slot_epoch) in [
        (first - 1, epoch.epoch - 1),
        (first + slots_per_epoch, epoch.epoch + 1),
    ] {
        assert_eq!(
            cache.get_beacon_committee(slot, 0),
            Err(CommitteeError::SlotOutsideEpoch {
                slot,
                slot_epoch,
                epoch: epoch.epoch
            })
        );
    }
    let last = first + slots_per_epoch - 1;
    let committees_per_slot = epoch.committees_per_slot;
    assert_eq!(
        cache.get_beacon_committee(last, committees_per_slot),
        Err(CommitteeError::CommitteeIndexOutOfRange {
            slot: last,
            index: committees_per_slot,
            committees_per_slot
        })
    );
    let message = cache.get_beacon_committee(last, 9).unwrap_err().to_string();
    assert!(
        message.contains(&format!("{last}")) && message.contains('9'),
        "{message}"
    );
}

#[test]
fn committee_count_per_slot_follows_the_spec_formula() {
    for folder in oracle_folders() {
        for epoch in &folder.vectors.epochs {
            assert_eq!(
                get_committee_count_per_slot(epoch.active_validator_count, &folder.preset),
                Ok(epoch.committees_per_slot),
                "{}",
                folder.name
            );
        }
    }
    let mut broken = Preset::minimal();
    broken.SLOTS_PER_EPOCH = 0;
    assert_eq!(
        get_committee_count_per_slot(100, &broken),
        Err(CommitteeError::ZeroPresetConstant {
            name: "SLOTS_PER_EPOCH"
        })
    );
}

#[test]
fn malformed_active_sets_are_refused() {
    let preset = Preset::minimal();
    let seed = Root::repeat_byte(1);
    assert_eq!(
        CommitteeCache::new(0, vec![1, 5, 5, 8], seed, &preset),
        Err(CommitteeError::ActiveIndicesNotAscending {
            position: 2,
            previous: 5,
            index: 5
        })
    );
    assert_eq!(
        CommitteeCache::new(0, vec![1, MAX_CACHED_VALIDATOR_INDEX], seed, &preset),
        Err(CommitteeError::ValidatorIndexTooLarge {
            index: MAX_CACHED_VALIDATOR_INDEX
        })
    );
    assert!(matches!(
        CommitteeCache::new(u64::MAX, vec![1, 2], seed, &preset),
        Err(CommitteeError::Overflow {
            epoch: u64::MAX,
            ..
        })
    ));
}

/// With no active validator every committee exists and is empty, as in the spec.
#[test]
fn empty_active_set() {
    let preset = Preset::minimal();
    let cache = CommitteeCache::new(3, Vec::new(), Root::repeat_byte(2), &preset).unwrap();
    assert_eq!(cache.committees_per_slot(), 1);
    assert_eq!(cache.committees().count() as u64, preset.SLOTS_PER_EPOCH);
    assert!(cache
        .committees()
        .all(|committee| committee.members.is_empty()));
    assert_eq!(cache.get_beacon_committee(24, 0), Ok(&[][..]));
    assert_eq!(cache.attester_position(0), None);
}
