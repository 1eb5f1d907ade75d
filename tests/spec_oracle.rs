//! `spec` against the oracle vectors of every fork and preset: constants, fork
//! versions, domains, signing roots and both aggregator-selection rules.

mod common;

use common::{hex_bytes, oracle_vectors, u64_of, ORACLE_FOLDERS};
use dv_aggregator::spec::config::{
    DOMAIN_BEACON_ATTESTER, DOMAIN_SELECTION_PROOF, DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF,
};
use dv_aggregator::spec::selection::{
    aggregator_modulo, is_aggregator, is_sync_committee_aggregator, selection_proof_hash_prefix,
    sync_aggregator_modulo,
};
use dv_aggregator::spec::signing::{
    compute_fork_data_root, get_domain, selection_proof_signing_root,
    sync_selection_proof_signing_root,
};
use dv_aggregator::spec::{ChainSpec, Fork, ForkName, Root, SyncAggregatorSelectionData};
use serde_json::Value;
use tree_hash::TreeHash;

fn spec_of(vectors: &Value) -> ChainSpec {
    ChainSpec::from_preset_name(vectors["preset"].as_str().unwrap()).unwrap()
}

fn root(value: &Value) -> Root {
    Root::from(hex_bytes::<32>(value))
}

fn state_fork(vectors: &Value) -> (Fork, Root) {
    let state = &vectors["state"];
    let fork = Fork {
        previous_version: hex_bytes(&state["fork"]["previous_version"]),
        current_version: hex_bytes(&state["fork"]["current_version"]),
        epoch: u64_of(&state["fork"]["epoch"]),
    };
    (fork, root(&state["genesis_validators_root"]))
}

#[test]
fn preset_constants_and_fork_versions_match_the_spec() {
    for folder in ORACLE_FOLDERS {
        let vectors = oracle_vectors(folder);
        let spec = spec_of(&vectors);
        let constants = &vectors["constants"];
        // Every constant the vectors list must equal ours; phase0 lists no sync ones.
        let mut checked = 0;
        for (name, ours) in spec.preset.constants() {
            if let Some(value) = constants.get(name) {
                assert_eq!(u64_of(value), ours, "{folder}: {name}");
                checked += 1;
            }
        }
        let expected = if vectors["fork"] == "phase0" { 10 } else { 14 };
        assert_eq!(checked, expected, "{folder}: constants compared");
        for (name, ours) in [
            ("DOMAIN_BEACON_ATTESTER", DOMAIN_BEACON_ATTESTER),
            ("DOMAIN_SELECTION_PROOF", DOMAIN_SELECTION_PROOF),
            (
                "DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF",
                DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF,
            ),
        ] {
            if let Some(value) = constants.get(name) {
                assert_eq!(hex_bytes::<4>(value), ours, "{folder}: {name}");
            }
        }
        let mut versions_checked = 0;
        for fork in ForkName::ALL {
            let key = match fork {
                ForkName::Phase0 => "GENESIS_FORK_VERSION".to_string(),
                other => format!("{}_FORK_VERSION", other.as_str().to_uppercase()),
            };
            if let Some(version) = constants.get(&key) {
                let (ours, _) = spec.fork_schedule(fork).unwrap();
                assert_eq!(hex_bytes::<4>(version), ours, "{folder}: {key}");
                versions_checked += 1;
            }
        }
        assert!(
            versions_checked >= 1,
            "{folder}: no fork version in constants"
        );
        let state_version = hex_bytes::<4>(&vectors["state"]["fork"]["current_version"]);
        assert_eq!(
            spec.fork_name_of_version(&state_version)
                .map(|f| f.as_str()),
            vectors["fork"].as_str(),
            "{folder}: fork of the state's version"
        );
    }
}

#[test]
fn domains_of_every_epoch() {
    for folder in ORACLE_FOLDERS {
        let vectors = oracle_vectors(folder);
        let (fork, gvr) = state_fork(&vectors);
        for epoch in vectors["epochs"].as_array().unwrap() {
            let e = u64_of(&epoch["epoch"]);
            let version = hex_bytes::<4>(&epoch["fork_version"]);
            assert_eq!(
                compute_fork_data_root(version, gvr),
                root(&epoch["fork_data_root"]),
                "{folder} epoch {e}: fork_data_root"
            );
            let cases = [
                ("domain_beacon_attester", DOMAIN_BEACON_ATTESTER),
                ("domain_selection_proof", DOMAIN_SELECTION_PROOF),
                (
                    "domain_sync_committee_selection_proof",
                    DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF,
                ),
            ];
            let mut checked = 0;
            for (key, domain_type) in cases {
                if let Some(expected) = epoch.get(key).filter(|v| !v.is_null()) {
                    assert_eq!(
                        get_domain(&fork, gvr, domain_type, e),
                        root(expected),
                        "{folder} epoch {e}: {key}"
                    );
                    checked += 1;
                }
            }
            assert!(
                checked >= 2,
                "{folder} epoch {e}: domains missing from vectors"
            );
        }
    }
}

#[test]
fn attestation_selection_signing_roots_and_decisions() {
    let mut cases_seen = 0;
    let mut aggregators = 0;
    for folder in ORACLE_FOLDERS {
        let vectors = oracle_vectors(folder);
        let spec = spec_of(&vectors);
        let (fork, gvr) = state_fork(&vectors);
        for case in vectors["attestation_cases"].as_array().unwrap() {
            let slot = u64_of(&case["slot"]);
            let what = format!("{folder} slot {slot} validator {}", case["validator_index"]);
            assert_eq!(
                selection_proof_signing_root(slot, &fork, gvr, &spec.preset),
                root(&case["signing_root"]),
                "{what}: signing root"
            );
            let proof = hex_bytes::<96>(&case["selection_proof"]);
            let length = u64_of(&case["committee_length"]);
            assert_eq!(
                selection_proof_hash_prefix(&proof),
                u64_of(&case["selection_proof_hash_prefix_u64"]),
                "{what}: hash prefix"
            );
            assert_eq!(
                aggregator_modulo(length, &spec.preset),
                u64_of(&case["modulo"]),
                "{what}"
            );
            let expected = case["is_aggregator"].as_bool().unwrap();
            assert_eq!(
                is_aggregator(length, &proof, &spec.preset),
                expected,
                "{what}"
            );
            cases_seen += 1;
            aggregators += usize::from(expected);
        }
    }
    assert!(cases_seen > 2000 && aggregators > 0 && aggregators < cases_seen);
}

#[test]
fn pure_is_aggregator_cases() {
    for folder in ORACLE_FOLDERS {
        let vectors = oracle_vectors(folder);
        let spec = spec_of(&vectors);
        for case in vectors["is_aggregator_pure_cases"].as_array().unwrap() {
            let proof = hex_bytes::<96>(&case["signature"]);
            let length = u64_of(&case["committee_length"]);
            assert_eq!(
                selection_proof_hash_prefix(&proof),
                u64_of(&case["hash_prefix_u64"])
            );
            assert_eq!(
                aggregator_modulo(length, &spec.preset),
                u64_of(&case["modulo"])
            );
            assert_eq!(
                is_aggregator(length, &proof, &spec.preset),
                case["is_aggregator"].as_bool().unwrap(),
                "{folder}: committee length {length}"
            );
        }
        for case in vectors["sync_pure_cases"].as_array().unwrap() {
            let what = format!("{folder}: sync pure case {}", case["signature"]);
            assert_sync_decision(case, &case["signature"], &spec, &what);
        }
    }
}

#[test]
fn sync_selection_signing_roots_and_decisions() {
    let mut seen = 0;
    for folder in ORACLE_FOLDERS {
        let vectors = oracle_vectors(folder);
        let spec = spec_of(&vectors);
        let (fork, gvr) = state_fork(&vectors);
        for case in vectors["sync_cases"].as_array().unwrap() {
            let slot = u64_of(&case["slot"]);
            let subcommittee_index = u64_of(&case["subcommittee_index"]);
            let what = format!("{folder} slot {slot} subcommittee {subcommittee_index}");
            let data = SyncAggregatorSelectionData {
                slot,
                subcommittee_index,
            };
            assert_eq!(
                data.tree_hash_root(),
                root(&case["selection_data_root"]),
                "{what}"
            );
            assert_eq!(
                sync_selection_proof_signing_root(
                    slot,
                    subcommittee_index,
                    &fork,
                    gvr,
                    &spec.preset
                ),
                root(&case["signing_root"]),
                "{what}: signing root"
            );
            assert_sync_decision(case, &case["selection_proof"], &spec, &what);
            seen += 1;
        }
    }
    // Every folder but phase0 has sync cases.
    assert!(seen >= 7 * 48, "only {seen} sync cases");
}

/// The sync-aggregator modulo and decision of one case with proof `proof`.
fn assert_sync_decision(case: &Value, proof: &Value, spec: &ChainSpec, what: &str) {
    let proof = hex_bytes::<96>(proof);
    assert_eq!(
        sync_aggregator_modulo(&spec.preset),
        u64_of(&case["modulo"]),
        "{what}"
    );
    assert_eq!(
        is_sync_committee_aggregator(&proof, &spec.preset),
        case["is_aggregator"].as_bool().unwrap(),
        "{what}"
    );
}
