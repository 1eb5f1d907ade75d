//! The swap-or-not shuffle against the official `compute_shuffled_index`
//! vectors (consensus-spec tests v0.12.3), the oracle's `shuffle_cases`, and
//! the whole-list form against the per-index form on random inputs.

use std::path::{Path, PathBuf};

use dv_aggregator::state::shuffling::{
    compute_shuffled_index, shuffle_list, ShufflingError, MAX_SHUFFLE_LIST_SIZE,
};
use proptest::prelude::*;
use serde::Deserialize;

/// One vector: `mapping[i] = compute_shuffled_index(i, count, seed)`.
#[derive(Debug, Deserialize)]
struct ShuffleCase {
    seed: String,
    count: u64,
    mapping: Vec<u64>,
}

/// An oracle `shuffle_cases[]` entry, which also names its round count.
#[derive(Debug, Deserialize)]
struct OracleShuffleCase {
    #[serde(flatten)]
    case: ShuffleCase,
    rounds: u8,
}

#[derive(Debug, Deserialize)]
struct OracleVectors {
    shuffle_cases: Vec<OracleShuffleCase>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn seed_bytes(hex_seed: &str) -> [u8; 32] {
    let bytes = hex::decode(hex_seed.trim_start_matches("0x")).expect("seed is hex");
    bytes.try_into().expect("seed is 32 bytes")
}

/// Checks one vector through both forms.
fn check_case(case: &ShuffleCase, rounds: u8, name: &str) {
    let seed = seed_bytes(&case.seed);
    assert_eq!(
        case.mapping.len() as u64,
        case.count,
        "{name}: mapping length"
    );
    for (index, &expected) in case.mapping.iter().enumerate() {
        let got = compute_shuffled_index(index as u64, case.count, &seed, rounds);
        assert_eq!(got, Ok(expected), "{name}: compute_shuffled_index({index})");
    }
    // Shuffling the identity gives list[i] = compute_shuffled_index(i): the
    // mapping itself. The inverse direction would give the inverse permutation.
    let mut list: Vec<u64> = (0..case.count).collect();
    shuffle_list(&mut list, &seed, rounds).expect("vector sizes are in bounds");
    assert_eq!(list, case.mapping, "{name}: shuffle_list of the identity");
}

fn check_spec_preset(preset: &str, rounds: u8) {
    let dir = fixtures()
        .join("spec-tests-v0.12.3/tests")
        .join(preset)
        .join("phase0/shuffling/core/shuffle");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("vector folder") {
        let path = entry.expect("dir entry").path().join("mapping.yaml");
        let yaml = std::fs::read_to_string(&path).expect("mapping.yaml");
        let case: ShuffleCase = serde_yaml::from_str(&yaml).expect("mapping.yaml parses");
        check_case(&case, rounds, &path.display().to_string());
        checked += 1;
    }
    assert_eq!(checked, 300, "{preset}: number of vectors");
}

#[test]
fn official_vectors_minimal() {
    check_spec_preset("minimal", 10);
}

#[test]
fn official_vectors_mainnet() {
    check_spec_preset("mainnet", 90);
}

#[test]
fn oracle_shuffle_cases() {
    let mut folders = 0;
    for entry in std::fs::read_dir(fixtures().join("oracle")).expect("oracle folder") {
        let path = entry.expect("dir entry").path().join("vectors.json");
        let json = std::fs::read(&path).expect("vectors.json");
        let vectors: OracleVectors = serde_json::from_slice(&json).expect("vectors.json parses");
        assert_eq!(vectors.shuffle_cases.len(), 8, "{}", path.display());
        for (n, oracle) in vectors.shuffle_cases.iter().enumerate() {
            let name = format!("{} shuffle_cases[{n}]", path.display());
            check_case(&oracle.case, oracle.rounds, &name);
        }
        folders += 1;
    }
    assert_eq!(folders, 8);
}

#[test]
fn index_outside_the_list_is_an_error() {
    let seed = [7u8; 32];
    assert_eq!(
        compute_shuffled_index(5, 5, &seed, 90),
        Err(ShufflingError::IndexOutOfRange {
            index: 5,
            index_count: 5
        })
    );
    assert_eq!(
        compute_shuffled_index(0, 0, &seed, 90),
        Err(ShufflingError::IndexOutOfRange {
            index: 0,
            index_count: 0
        })
    );
}

#[test]
fn counts_above_the_bound_are_refused() {
    let seed = [7u8; 32];
    let count = MAX_SHUFFLE_LIST_SIZE + 1;
    assert_eq!(
        compute_shuffled_index(0, count, &seed, 90),
        Err(ShufflingError::ListTooLarge { count })
    );
    // Zeroed pages stay untouched: the length is refused before any work.
    let mut list = vec![0u64; count as usize];
    assert_eq!(
        shuffle_list(&mut list, &seed, 90),
        Err(ShufflingError::ListTooLarge { count })
    );
    let last = MAX_SHUFFLE_LIST_SIZE - 1;
    assert!(compute_shuffled_index(last, MAX_SHUFFLE_LIST_SIZE, &seed, 90).is_ok());
}

#[test]
fn empty_and_single_lists() {
    let seed = [3u8; 32];
    let mut empty: Vec<u64> = Vec::new();
    assert_eq!(shuffle_list(&mut empty, &seed, 90), Ok(()));
    assert!(empty.is_empty());
    let mut single = vec![42u64];
    assert_eq!(shuffle_list(&mut single, &seed, 90), Ok(()));
    assert_eq!(single, vec![42]);
    assert_eq!(compute_shuffled_index(0, 1, &seed, 90), Ok(0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The whole-list form reads every element from where the per-index form
    /// says, for any seed, round count and size (0, 1, and not multiples of 256).
    #[test]
    fn whole_list_equals_per_index(
        seed in any::<[u8; 32]>(),
        rounds in prop::sample::select(vec![10u8, 90]),
        count in prop_oneof![Just(0u64), Just(1), Just(256), Just(257), 0u64..2000],
        offset in any::<u32>(),
    ) {
        // Distinct non-identity values, so that the direction matters.
        let original: Vec<u64> = (0..count).map(|i| u64::from(offset) + 3 * i).collect();
        let mut shuffled = original.clone();
        shuffle_list(&mut shuffled, &seed, rounds).unwrap();
        for (i, &element) in shuffled.iter().enumerate() {
            let source = compute_shuffled_index(i as u64, count, &seed, rounds).unwrap();
            prop_assert_eq!(element, original[source as usize], "position {}", i);
        }
    }
}
